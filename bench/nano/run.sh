#!/usr/bin/env bash
# Runs the nanobenchmarks (nano.c) natively and under btvm, and with --qemu
# under QEMU TCG too, then prints each operation's ns per operation with its
# ratio to native (runner / native; "-" where the host has no equivalent).
#
#   bench/nano/run.sh [--build DIR] [--btvm PATH] [--qemu]
#
# DIR is the CMake build directory (default: build/ in the source tree); it
# must hold bench/nano/nano_native and bench/nano/nano.elf (this script
# builds nothing). btvm defaults to DIR/btvm; QEMU is $QEMU or
# qemu-system-i386 on PATH. Every runner reports rdtsc cycles; they become ns
# through the TSC rate nano_native measures against CLOCK_MONOTONIC (btvm and
# QEMU TCG hand the guest the host's TSC). Each guest also times the TSC
# against its PIT and the header shows that rate as a cross-check. Exits
# non-zero when a run fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
btvm=
with_qemu=0
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --btvm) btvm=$2; shift 2 ;;
    --qemu) with_qemu=1; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

native=$build/bench/nano/nano_native
guest=$build/bench/nano/nano.elf
[ -n "$btvm" ] || btvm=$build/btvm
missing=
for f in "$native" "$guest" "$btvm"; do [ -e "$f" ] || missing="$missing $f"; done
if [ -n "$missing" ]; then
  echo "run.sh: not built:$missing" >&2
  echo "run.sh: build first: cmake -S . -B build -G Ninja && ninja -C build" >&2
  exit 2
fi
qemu=
if [ "$with_qemu" = 1 ]; then
  qemu=${QEMU:-$(command -v qemu-system-i386 || true)}
  if [ -z "$qemu" ] || [ ! -x "$qemu" ]; then
    echo "run.sh: --qemu: no qemu-system-i386 on PATH (or set QEMU)" >&2
    exit 2
  fi
fi

. "$root/bench/guest_runs.sh"

run native 0 "$native"
run btvm 1 "$btvm" --kernel "$guest"
if [ -n "$qemu" ]; then
  run_qemu "$qemu" "$guest"
fi

# Lines look like "syscall 1453.91" (TSC cycles per operation), "in n/a"
# and "tsc_hz 2596145310".
awk -v names="${runs[*]}" '
  BEGIN {
    n = split(names, run, " ")
    for (i = 1; i < ARGC; i++) file_run[ARGV[i]] = i
  }
  { r = file_run[FILENAME] }
  $1 == "tsc_hz" && NF == 2 { hz[r] = $2 + 0; next }
  NF == 2 && ($2 ~ /^[0-9]+(\.[0-9]+)?$/ || $2 == "n/a") {
    b = $1
    if (!(b in seen)) { seen[b] = 1; order[++count] = b }
    value[r, b] = $2 == "n/a" ? "n/a" : $2 + 0
  }
  function cell(r, b) {
    if (!((r, b) in value)) return "missing"
    if (value[r, b] == "n/a") return "n/a"
    return sprintf("%.1f", value[r, b] * 1e9 / hz[1])
  }
  function number(r, b) { return ((r, b) in value) && value[r, b] != "n/a" }
  END {
    if (!(1 in hz) || hz[1] <= 0) { print "run.sh: the native run printed no tsc_hz" > "/dev/stderr"; exit 1 }
    printf "TSC %.1f MHz (native, against CLOCK_MONOTONIC)", hz[1] / 1e6
    sep = "; guest PIT estimates:"
    for (i = 2; i <= n; i++) if (i in hz) { printf "%s %s %.1f MHz", sep, run[i], hz[i] / 1e6; sep = "," }
    printf "\n"
    printf "%-10s %14s", "benchmark", "native ns/op"
    for (i = 2; i <= n; i++) printf " %14s %8s", run[i] " ns/op", "ratio"
    printf "\n"
    for (k = 1; k <= count; k++) {
      b = order[k]
      printf "%-10s %14s", b, cell(1, b)
      for (i = 2; i <= n; i++) {
        ratio = number(1, b) && number(i, b) && value[1, b] > 0 ? sprintf("%.2f", value[i, b] / value[1, b]) : "-"
        printf " %14s %8s", cell(i, b), ratio
        if (!((i, b) in value)) bad = 1
      }
      printf "\n"
    }
    exit bad
  }
' "${runs[@]/#/$out/}" || failed=1
exit "$failed"
