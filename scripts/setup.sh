#!/usr/bin/env bash
# Sets up a Debian 12 / Ubuntu machine for libbt and builds it in ./build.
#
#   scripts/setup.sh                  install what is missing, configure, build
#   scripts/setup.sh run [ARGS...]    ... then run build/btvm ARGS; with no ARGS,
#                                     build the Linux guest (scripts/linux_guest.sh)
#                                     and boot it to a busybox shell
#   scripts/setup.sh test             ... then run the test suite
#
# BT_BUILD_TYPE picks the CMake build type of a new build directory
# (default RelWithDebInfo).
set -euo pipefail

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0"
}

# gcc-multilib and g++-multilib build the 32-bit guests; qemu-system-x86 runs
# the same guests under QEMU so the tests can compare the two.
packages=(
  build-essential cmake ninja-build g++ gcc-multilib g++-multilib
  libzydis-dev libasmjit-dev libboost-dev doctest-dev libbenchmark-dev
  qemu-system-x86
)

install_packages() {
  local missing=()
  local package
  for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return
  fi
  echo "setup: installing ${missing[*]}" >&2
  local sudo=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
      echo "setup: need root or sudo to install: ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

build() {
  # An existing build directory keeps its generator and build type.
  if [[ -f build/CMakeCache.txt ]]; then
    cmake -S . -B build
  else
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BT_BUILD_TYPE:-RelWithDebInfo}"
  fi
  cmake --build build --parallel "$(nproc)"
}

command="${1:-}"
case "$command" in
  "" | run | test) ;;
  -h | --help | help)
    usage
    exit 0
    ;;
  *)
    echo "setup: unknown command '$command'" >&2
    usage >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
install_packages
build >&2  # stdout is left to btvm and ctest

case "$command" in
  run)
    shift
    if (($# == 0)); then
      scripts/linux_guest.sh --dir build/guest-linux >&2
      set -- --kernel build/guest-linux/bzImage --initrd build/guest-linux/initramfs.cpio.gz \
        --append 'console=ttyS0 nokaslr quiet'
    fi
    exec build/btvm "$@"
    ;;
  test)
    exec ctest --test-dir build --output-on-failure -j2
    ;;
esac
