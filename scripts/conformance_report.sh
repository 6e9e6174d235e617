#!/bin/sh
# Regenerates docs/conformance.md, the CPU conformance coverage table: every
# enumerated instruction form run on the host CPU and inside libbt.
#   scripts/conformance_report.sh [build-dir]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
tool="$build/tests/conformance/bt_conformance"
if [ ! -x "$tool" ]; then
  echo "conformance_report: $tool is missing; build the project first" >&2
  exit 2
fi
"$tool" forms --cases 64 --seed 1 --max-reports 0 --markdown "$root/docs/conformance.md"
echo "wrote $root/docs/conformance.md"
