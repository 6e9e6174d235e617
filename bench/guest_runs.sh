# shellcheck shell=bash disable=SC2034  # runs, failed, build, btvm and qemu are read by the caller
# Sourced by the benchmark scripts that run one workload natively, under
# btvm and under QEMU TCG and then compare the outputs: collects each run's
# stdout in "$out/NAME" and its name in "runs", and sets "failed" when a run
# exits with an unexpected status.
#
#   parse_options "$@"        --build DIR, --btvm PATH, --qemu PATH, --help
#   run NAME EXPECTED_STATUS COMMAND...
#   run_qemu QEMU GUEST_ELF    (the same machine every benchmark uses)
#
# The guest runners exit with status 1 when the guest writes 0 to the
# debug-exit port.

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
runs=()
failed=0

# Sets build (default "$root/build"), btvm and qemu (default empty) from
# the options; --help prints the caller's header comment.
parse_options() {
  build=$root/build
  btvm=
  qemu=
  while [ $# -gt 0 ]; do
    case $1 in
      --build) build=$2; shift 2 ;;
      --btvm) btvm=$2; shift 2 ;;
      --qemu) qemu=$2; shift 2 ;;
      -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
      *) echo "${0##*/}: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
  done
}

run() {
  local name=$1 expected=$2 status=0
  shift 2
  echo "running $name: $*" >&2
  "$@" >"$out/$name" || status=$?
  if [ "$status" != "$expected" ]; then
    echo "${0##*/}: $name exited with status $status, expected $expected" >&2
    grep '^FAIL' "$out/$name" >&2 || true
    failed=1
  fi
  runs+=("$name")
}

run_qemu() {
  run qemu 1 "$1" -kernel "$2" -display none -serial stdio \
    -device isa-debug-exit,iobase=0xf4,iosize=4 -m 128 -no-reboot \
    -monitor none
}
