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
#   [RUNS=N] bench/linux/compare.sh [--build DIR] [--btvm PATH] [--qemu PATH]
#
# DIR is the CMake build directory (default: build/ in the source tree); the
# guest is DIR/guest-linux as scripts/linux_guest.sh makes it (this script
# only rebuilds its initramfs). btvm defaults to DIR/btvm and QEMU to
# qemu-system-i386 on PATH; without QEMU its columns are left out. RUNS
# (default 1) runs every machine that many times and shows each one's
# fastest. Exits non-zero when a run fails or a workload's result differs
# from native.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/guest_runs.sh"
parse_options "$@"

rounds=${RUNS:-1}
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
  echo "compare.sh: RUNS must be a positive number, not '$rounds'" >&2
  exit 2
fi
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
# Round by round, so that a busy spell on the host slows every machine alike.
for round in $(seq "$rounds"); do
  run "native-$round" 0 stamped sh "$workloads" native "$guest/busybox"
  run "btvm-$round" 0 stamped "$btvm" --kernel "$guest/bzImage" --initrd "$initramfs" \
    --append "$command_line" --mem 128M --time-limit 600
  if [ -n "$qemu" ]; then
    run "qemu-$round" 0 stamped timeout 600 "$qemu" -M pc -m 128 -nographic -no-reboot \
      -kernel "$guest/bzImage" -initrd "$initramfs" -append "$command_line"
  fi
done

# Lines look like "1795257476.060914 loop: 100000 36212" and
# "1795257476.332497 time: loop 271583" (microseconds). Runs are named
# MACHINE-ROUND; a machine's cell is its fastest run.
awk -v names="${runs[*]}" -v starts="${launched[*]}" -v rounds="$rounds" '
  BEGIN {
    n = split(names, run, " ")
    split(starts, launch, " ")
    for (i = 1; i <= n; i++) {
      m = run[i]; sub(/-[0-9]+$/, "", m)
      if (!(m in column)) { column[m] = ++columns; machine[columns] = m }
      column_of[i] = column[m]
    }
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
  function cell(c, w) { return (c, w) in best ? sprintf("%.3f", best[c, w]) : "-" }
  function ratio(a, b, w) {
    return (a, w) in best && (b, w) in best && best[b, w] > 0 ? sprintf("%.2f", best[a, w] / best[b, w]) : "-"
  }
  function verdict(value, limit) { return value == "-" ? "" : value + 0 <= limit ? "  met" : "  missed" }
  END {
    split("first loop forkexec sha256 sortgzip", rows, " ")
    for (r = 1; r <= n; r++) {
      if (!started[r]) { printf "%s: the workloads did not start\n", run[r]; bad = 1; continue }
      if (results[r] != results[1]) {
        printf "%s: results differ from %s:%s\n%s:%s\n", run[r], run[1], results[r], run[1], results[1]; bad = 1
      }
      c = column_of[r]
      if (c > 1) seconds[r, "first"] = first[r]
      for (k = 1; k <= 5; k++) {
        w = rows[k]
        if (!((r, w) in seconds) || ((c, w) in best && best[c, w] <= seconds[r, w])) continue
        best[c, w] = seconds[r, w]
        if (w == "loop") best_host_loop[c] = host_loop[r]
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
    printf "%-30s %8s", (rounds > 1 ? "seconds, fastest of " rounds : "seconds"), machine[1]
    for (c = 2; c <= columns; c++) printf " %8s %8s", machine[c], "/" machine[1]
    if (columns > 2) printf " %9s", machine[2] "/" machine[3]
    printf "   target\n"
    for (k = 1; k <= 5; k++) {
      w = rows[k]
      printf "%-30s %8s", label[w], cell(1, w)
      for (c = 2; c <= columns; c++) printf " %8s %8s", cell(c, w), ratio(c, 1, w)
      if (columns > 2) printf " %9s", ratio(2, 3, w)
      if (w in goal) {
        j = column[versus[w]]
        printf "   btvm/%s <= %s%s", versus[w], goal[w], j ? verdict(ratio(2, j, w), goal[w]) : " (no " versus[w] " run)"
      }
      printf "\n"
    }
    printf "clock check, the shell loop by the guest'"'"'s clock / by the serial lines'"'"' arrival:"
    sep = ""
    for (c = 2; c <= columns; c++) {
      if ((c, "loop") in best) printf "%s %s %.3f / %.3f s", sep, machine[c], best[c, "loop"], best_host_loop[c]
      else printf "%s %s -", sep, machine[c]
      sep = ","
    }
    printf "\n"
    if (!bad) print "results: every run agrees with native"
    exit bad
  }
' "${runs[@]/#/$out/}" || failed=1
exit "$failed"
