# shellcheck shell=sh
# The Linux guest's workloads: run as its init payload (scripts/linux_guest.sh
# --init), checked line by line by the linux.boot tests (boot_linux.cmake) and
# timed by bench/linux/compare.sh. The same file runs on the host with the
# guest's static busybox, which gives the tests their expected lines and the
# benchmark its native times:
#
#   sh workloads.sh native BUSYBOX
#
# Every line is "NAME: RESULT". "time: NAME MICROSECONDS" lines time the
# workload before them with the machine's own clock. In the guest the results
# of uname, cpuinfo, meminfo and mount come first; the rest is the same on the
# host, where a temporary directory stands in for the tmpfs.

if [ "${1-}" = native ]; then
  # PATH holds only busybox's applets, so that every command, and the
  # fork+exec loop's path, is the same program the guest runs.
  busybox=${2:?workloads.sh native needs the busybox binary}
  applets=$(mktemp -d)
  trap 'rm -rf "$applets"' EXIT
  "$busybox" --install -s "$applets" || exit 1
  PATH=$applets "$busybox" sh "$0" host
  exit
fi

# Microseconds since the epoch; ts is busybox's only clock finer than 10 ms.
now() {
  stamp=$(echo | ts %.s)
  stamp=${stamp%% *}
  echo "${stamp%.*}${stamp#*.}"
}

timed() {
  echo "time: $1 $(($(now) - $2))"
}

echo "start: libbt Linux workloads"
if [ "${1-}" = host ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
else
  # The kernel logs at any time (the TSC clocksource switch can come after
  # init starts); the init keeps such messages off the console, which this
  # one, logged as a warning, checks.
  echo "<4>libbt: a kernel message amid the workloads" >/dev/kmsg
  echo "uname: $(uname -a)"
  grep -m 1 -E '^vendor_id' /proc/cpuinfo | sed 's/^/cpuinfo: /'
  grep -m 1 -E '^model name' /proc/cpuinfo | sed 's/^/cpuinfo: /'
  grep -m 1 -E '^flags' /proc/cpuinfo | sed 's/^/cpuinfo: /'
  grep -m 1 -E '^MemTotal:' /proc/meminfo | sed 's/^/meminfo: /'
  dir=/tmp
  mount -t tmpfs -o size=32m tmpfs "$dir"
  grep -m 1 " $dir " /proc/mounts | sed 's/^/mount: /'
fi

echo "libbt wrote this" >"$dir/note"
echo "tmpfs: $(cat "$dir/note")"
seq 1 1200000 | head -c 8388608 >"$dir/data"
echo "tmpfs: $(wc -c <"$dir/data") bytes"
start=$(now)
echo "sha256: $(sha256sum <"$dir/data")"
timed sha256 "$start"

start=$(now)
i=0 s=0
while [ $i -lt 100000 ]; do
  i=$((i + 1))
  s=$(((s * 31 + i) % 1000003))
done
echo "loop: $i $s"
timed loop "$start"

# A path, not a name: busybox's shell runs an applet named bare without an
# exec (and true is its builtin); a path is a fork and an execve every time.
true_path=$(which true)
start=$(now)
i=0 ok=0
while [ $i -lt 300 ]; do
  "$true_path" && ok=$((ok + 1))
  i=$((i + 1))
done
echo "forkexec: $ok of $i"
timed forkexec "$start"

start=$(now)
echo "sortgzip: $(seq 1 100000 | sort -r | gzip -c | tee "$dir/sorted.gz" | gunzip -c | sha256sum)"
echo "sortgzip: $(sha256sum <"$dir/sorted.gz")"
timed sortgzip "$start"
