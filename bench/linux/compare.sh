#!/usr/bin/env bash
# Boots Debian's i386 kernel with the linux.boot tests' workloads
# (tests/linux/workloads.sh) under btvm and under QEMU TCG, runs the same
# workloads natively with the guest's static busybox, and prints each one's
# seconds with its ratio to native and btvm's ratio to QEMU, next to the
# targets of issue 5. The first row is the wall-clock time from launching the
# machine to the first line the workloads print, read off the serial console
# with this script's timestamps; the workloads are timed inside each machine
# with its own clock (busybox ts), which tracks the host's.
#
#   bench/linux/compare.sh [--build DIR] [--btvm PATH] [--qemu PATH]
#
# DIR is the CMake build directory (default: build/ in the source tree); the
# guest is DIR/guest-linux as scripts/linux_guest.sh makes it (this script
# only rebuilds its initramfs). btvm defaults to DIR/btvm and QEMU to
# qemu-system-i386 on PATH; without QEMU its columns are left out. Exits
# non-zero when a run fails or a workload's result differs from native.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/guest_runs.sh"
parse_options "$@"

guest=$build/guest-linux
workloads=$root/tests/linux/workloads.sh
[ -n "$btvm" ] || btvm=$build/btvm
if [ ! -x "$btvm" ]; then
  echo "compare.sh: no btvm at $btvm; build it: cmake -S . -B build -G Ninja && ninja -C build btvm" >&2
  exit 2
fi
if [ ! -f "$guest/bzImage" ] || [ ! -x "$guest/busybox" ]; then
  echo "compare.sh: no Linux guest in $guest; make it: scripts/linux_guest.sh --dir $guest" >&2
  exit 2
fi
[ -n "$qemu" ] || qemu=$(command -v qemu-system-i386 || true)
if [ -z "$qemu" ] || [ ! -x "$qemu" ]; then
  echo "compare.sh: no QEMU${qemu:+ at $qemu}, its columns are left out" >&2
  qemu=
fi

initramfs=$guest/initramfs-workloads.cpio.gz
bash "$root/scripts/linux_guest.sh" --dir "$guest" --init "$workloads" \
  --initramfs "$initramfs" 2>/dev/null ||
  { echo "compare.sh: scripts/linux_guest.sh could not build $initramfs" >&2; exit 1; }

launched=()

# Runs COMMAND with each line of its output after the time it arrived
# (seconds since the epoch); "launched" gets the time it started.
# shellcheck disable=SC2317  # run calls it
stamped() {
  local line
  launched+=("$EPOCHREALTIME")
  "$@" </dev/null | while IFS= read -r line; do
    printf '%s %s\n' "$EPOCHREALTIME" "${line%$'\r'}"
  done
}

# quiet: the kernel's log would time the serial port more than the boot.
command_line="console=ttyS0 quiet nokaslr"
run native 0 stamped sh "$workloads" native "$guest/busybox"
run btvm 0 stamped "$btvm" --kernel "$guest/bzImage" --initrd "$initramfs" \
  --append "$command_line" --mem 128M --time-limit 600
if [ -n "$qemu" ]; then
  run qemu 0 stamped timeout 600 "$qemu" -M pc -m 128 -nographic -no-reboot \
    -kernel "$guest/bzImage" -initrd "$initramfs" -append "$command_line"
fi

# Lines look like "1795257476.060914 loop: 100000 36212" and
# "1795257476.332497 time: loop 271583" (microseconds).
awk -v names="${runs[*]}" -v starts="${launched[*]}" '
  BEGIN {
    n = split(names, run, " ")
    split(starts, launch, " ")
    for (i = 1; i <= n; i++) index_of[run[i]] = i
    for (i = 1; i < ARGC; i++) file_run[ARGV[i]] = i
  }
  { r = file_run[FILENAME]; stamp = $1; sub(/^[^ ]* /, "") }
  $0 == "start: libbt Linux workloads" && !(r in first) { first[r] = stamp - launch[r]; started[r] = 1 }
  !started[r] { next }
  $1 == "time:" { seconds[r, $2] = $3 / 1e6; next }
  $1 ~ /^(tmpfs|sha256|loop|forkexec|sortgzip):$/ { results[r] = results[r] "\n  " $0 }
  $1 == "tmpfs:" && $3 == "bytes" { bytes = $2 }
  $1 == "loop:" { iterations = $2; host_loop[r] = stamp - previous[r] }
  { previous[r] = stamp }
  $1 == "forkexec:" { forks = $4 }
  function cell(r, w) { return (r, w) in seconds ? sprintf("%.3f", seconds[r, w]) : "-" }
  function ratio(a, b, w) {
    return (a, w) in seconds && (b, w) in seconds && seconds[b, w] > 0 ? sprintf("%.2f", seconds[a, w] / seconds[b, w]) : "-"
  }
  function verdict(value, limit) { return value == "-" ? "" : value + 0 <= limit ? "  met" : "  missed" }
  END {
    for (i = 2; i <= n; i++) {
      if (!(i in first)) { printf "%s: the workloads did not start\n", run[i]; bad = 1; continue }
      seconds[i, "first"] = first[i]
      if (results[i] != results[1]) {
        printf "%s: results differ from native:%s\nnative:%s\n", run[i], results[i], results[1]; bad = 1
      }
    }
    label["first"] = "first userspace line"
    label["loop"] = sprintf("shell loop, %d iterations", iterations)
    label["forkexec"] = sprintf("fork+exec, %d runs", forks)
    label["sha256"] = sprintf("sha256 of %g MiB", bytes / 1048576)
    label["sortgzip"] = "seq|sort|gzip|gunzip"
    goal["first"] = 0.5; versus["first"] = "qemu"
    goal["loop"] = 1.5; versus["loop"] = "native"
    goal["forkexec"] = 3; versus["forkexec"] = "native"
    printf "%-30s %8s", "seconds", run[1]
    for (i = 2; i <= n; i++) printf " %8s %8s", run[i], "/" run[1]
    if (n > 2) printf " %9s", run[2] "/" run[3]
    printf "   target\n"
    split("first loop forkexec sha256 sortgzip", rows, " ")
    for (k = 1; k <= 5; k++) {
      w = rows[k]
      printf "%-30s %8s", label[w], cell(1, w)
      for (i = 2; i <= n; i++) printf " %8s %8s", cell(i, w), ratio(i, 1, w)
      if (n > 2) printf " %9s", ratio(2, 3, w)
      if (w in goal) {
        j = index_of[versus[w]]
        printf "   btvm/%s <= %s%s", versus[w], goal[w], j ? verdict(ratio(2, j, w), goal[w]) : " (no " versus[w] " run)"
      }
      printf "\n"
    }
    printf "clock check, the shell loop by the guest'"'"'s clock / by the serial lines'"'"' arrival:"
    sep = ""
    for (i = 2; i <= n; i++) {
      if ((i, "loop") in seconds) printf "%s %s %.3f / %.3f s", sep, run[i], seconds[i, "loop"], host_loop[i]
      else printf "%s %s -", sep, run[i]
      sep = ","
    }
    printf "\n"
    if (!bad) print "results: every run agrees with native"
    exit bad
  }
' "${runs[@]/#/$out/}" || failed=1
exit "$failed"
