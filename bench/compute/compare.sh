#!/usr/bin/env bash
# Runs the compute suite natively, under btvm and under QEMU TCG, one after
# another; checks that every run computes the native checksums and prints
# each workload's cycles (rdtsc deltas) with its ratio to native.
#
#   bench/compute/compare.sh [--build DIR] [--btvm PATH] [--qemu PATH]
#
# DIR is the CMake build directory (default: build/ in the source tree).
# btvm defaults to DIR/btvm and QEMU to qemu-system-i386 on
# PATH; a runner that is not there is skipped. Exits non-zero when a run
# fails or a checksum differs.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/guest_runs.sh"
parse_options "$@"

native=$build/bench/compute/compute_native
guest=$build/bench/compute/compute.elf
if [ ! -x "$native" ] || [ ! -f "$guest" ]; then
  echo "compare.sh: build the compute and compute_native targets in $build" >&2
  exit 2
fi
[ -n "$btvm" ] || btvm=$build/btvm
[ -n "$qemu" ] || qemu=$(command -v qemu-system-i386 || true)

run native 0 "$native"
if [ -x "$btvm" ]; then
  run btvm 1 "$btvm" --kernel "$guest"
else
  echo "compare.sh: no btvm at $btvm, skipped" >&2
fi
if [ -n "$qemu" ] && [ -x "$qemu" ]; then
  run_qemu "$qemu" "$guest"
else
  echo "compare.sh: no QEMU${qemu:+ at $qemu}, skipped" >&2
fi

# Lines look like "sieve: checksum=7ad8bf60 cycles=598796432".
awk -v names="${runs[*]}" '
  BEGIN {
    n = split(names, run, " ")
    for (i = 1; i < ARGC; i++) file_run[ARGV[i]] = i
  }
  { r = file_run[FILENAME] }
  $2 ~ /^checksum=/ && $3 ~ /^cycles=/ {
    w = $1; sub(/:$/, "", w)
    if (!(w in seen)) { seen[w] = 1; order[++count] = w }
    sum[r, w] = substr($2, 10); cycles[r, w] = substr($3, 8) + 0
  }
  END {
    printf "%-14s %14s", "workload", run[1] " cycles"
    for (i = 2; i <= n; i++) printf " %14s %7s", run[i] " cycles", "ratio"
    printf "\n"
    for (k = 1; k <= count; k++) {
      w = order[k]
      printf "%-14s %14.0f", w, cycles[1, w]
      total[1] += cycles[1, w]
      for (i = 2; i <= n; i++) {
        if (!((i, w) in sum)) { printf " %14s %7s", "missing", "-"; bad = 1; continue }
        printf " %14.0f %7.2f", cycles[i, w], cycles[i, w] / cycles[1, w]
        total[i] += cycles[i, w]
        if (sum[i, w] != sum[1, w]) {
          mismatch = mismatch sprintf("%s: %s checksum %s, native %s\n", w,
                                      run[i], sum[i, w], sum[1, w])
        }
      }
      printf "\n"
    }
    printf "%-14s %14.0f", "total", total[1]
    for (i = 2; i <= n; i++) printf " %14.0f %7.2f", total[i], total[i] / total[1]
    printf "\n"
    if (mismatch != "") { printf "checksum mismatch:\n%s", mismatch; bad = 1 }
    else print "checksums: all runs agree with native"
    exit bad
  }
' "${runs[@]/#/$out/}" || failed=1
exit "$failed"
