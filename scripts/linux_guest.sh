#!/usr/bin/env bash
# Builds the Linux guest that btvm boots: Debian 12's stock i386 kernel
# (linux-image-686) and an initramfs with a static busybox.
#
#   scripts/linux_guest.sh [--dir DIR] [--init SCRIPT] [--initramfs FILE]
#
#   --dir DIR          cache and output directory (default build/guest-linux)
#   --init SCRIPT      run SCRIPT (a busybox sh script) instead of the
#                      interactive shell; the guest powers off when it ends
#   --initramfs FILE   where to write the initramfs (default
#                      DIR/initramfs.cpio.gz, or DIR/initramfs-NAME.cpio.gz
#                      for --init NAME[.sh])
#
# Writes DIR/bzImage, DIR/busybox and the initramfs, then prints the btvm
# command that boots them. Downloaded packages are kept in DIR/debs and not
# fetched again. Needs root or sudo only to add the i386 architecture to dpkg
# (and refresh the package lists) or to install cpio; the rest runs as any user.
set -euo pipefail

usage() {
  sed -n '2,18s/^# \{0,1\}//p' "$0"
}

die() {
  echo "linux_guest: $*" >&2
  exit 1
}

say() {
  echo "linux_guest: $*" >&2
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

apt_update() {
  say "refreshing the package lists"
  # A mirror in mid-sync fails some lists and not others; what we need is
  # checked afterwards.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
    say "apt-get update reported errors (see above); going on with the lists apt has"
}

ensure_tools() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "needs apt-get and dpkg-deb (Debian or Ubuntu)"
  fi
  local missing=()
  command -v cpio >/dev/null || missing+=(cpio)
  command -v gzip >/dev/null || missing+=(gzip)
  ((${#missing[@]} == 0)) && return
  say "installing ${missing[*]}"
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    die "could not install ${missing[*]}"
}

# The i386 package lists are there when apt knows a candidate for the kernel
# metapackage.
has_i386_candidate() {
  local policy
  policy=$(apt-cache policy linux-image-686:i386 2>/dev/null)
  [[ "$policy" =~ Candidate:\ [0-9] ]]
}

ensure_i386_lists() {
  local foreign
  foreign=$(dpkg --print-foreign-architectures)
  if ! grep -qx i386 <<<"$foreign" &&
    [[ "$(dpkg --print-architecture)" != i386 ]]; then
    say "adding the i386 architecture to dpkg"
    as_root dpkg --add-architecture i386
  fi
  has_i386_candidate && return
  apt_update
  has_i386_candidate ||
    die "apt has no linux-image-686:i386 even after apt-get update; this needs Debian 12 (bookworm) package sources"
}

# linux-image-686 is a metapackage; the kernel is in the package it depends on.
kernel_package() {
  local package
  package=$(apt-cache depends linux-image-686:i386 |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-686\)\(:i386\)\{0,1\}$/\1/p' | head -n 1)
  [[ -n "$package" ]] || die "cannot tell which kernel package linux-image-686:i386 depends on"
  echo "$package"
}

# Downloads PACKAGE:i386 into $debs unless a .deb of it is already there, and
# prints the .deb's path.
fetch() {
  local package=$1 deb
  deb=$(find "$debs" -maxdepth 1 -name "${package}_*_i386.deb" | sort | tail -n 1)
  if [[ -z "$deb" ]]; then
    say "downloading $package:i386"
    (cd "$debs" && apt-get download -q "$package:i386" >&2) ||
      die "apt-get download $package:i386 failed"
    deb=$(find "$debs" -maxdepth 1 -name "${package}_*_i386.deb" | sort | tail -n 1)
    [[ -n "$deb" ]] || die "apt-get download left no ${package}_*_i386.deb in $debs"
  fi
  echo "$deb"
}

# Extracts DEB into DIR once; a stamp names the .deb the tree came from.
extract() {
  local deb=$1 dir=$2
  if [[ -f "$dir/.from" && "$(cat "$dir/.from")" == "$(basename "$deb")" ]]; then
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  dpkg-deb -x "$deb" "$dir" || die "cannot extract $deb"
  basename "$deb" >"$dir/.from"
}

# One newc header (the kernel's initramfs format, Documentation/driver-api/
# early-userspace/buffer-format.rst) for an entry without data: the device
# nodes, which only root could create on disk for cpio to copy.
newc_entry() {
  local name=$1 mode=$2 rdev_major=$3 rdev_minor=$4 ino=$5
  local namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$ino" "$mode" 0 0 1 0 0 0 0 "$rdev_major" "$rdev_minor" "$namesize" 0
  printf '%s\0' "$name"
  # The header is 110 bytes; name and header together pad to 4 bytes.
  local pad=$(((4 - (110 + namesize) % 4) % 4))
  head -c "$pad" /dev/zero
}

device_nodes_archive() {
  local char_device=$((0020000 | 0600))
  # Inode numbers clear of the ones cpio gives the main archive.
  newc_entry dev/console "$char_device" 5 1 900001
  newc_entry dev/ttyS0 "$char_device" 4 64 900002
  newc_entry TRAILER!!! 0 0 0 0
}

write_init() {
  local init=$1 payload=$2
  cat >"$init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
EOF
  if [[ -n "$payload" ]]; then
    # Kernel messages come asynchronously and would split the payload's
    # lines; only emergencies still reach the console once it starts.
    cat >>"$init" <<'EOF'
dmesg -n 1
echo "libbt guest: running /payload.sh"
sh /payload.sh
echo "libbt guest: /payload.sh exited with status $?"
poweroff -f
EOF
  else
    cat >>"$init" <<'EOF'
echo "libbt guest: busybox shell on ttyS0"
setsid cttyhack sh
poweroff -f
EOF
  fi
  chmod 755 "$init"
}

build_initramfs() {
  local output=$1 payload=$2
  local staging
  staging=$(mktemp -d "$dir/initramfs.XXXXXX")
  mkdir -p "$staging"/{bin,dev,proc,sys,tmp,root,etc}
  cp "$dir/busybox" "$staging/bin/busybox"
  write_init "$staging/init" "$payload"
  if [[ -n "$payload" ]]; then
    cp "$payload" "$staging/payload.sh"
  fi
  local partial="$output.partial"
  # Two archives back to back, which the kernel unpacks in turn: the tree,
  # then the device nodes inside its /dev.
  {
    (cd "$staging" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
    device_nodes_archive
  } | gzip -9 >"$partial"
  mv "$partial" "$output"
  rm -rf "$staging"
}

dir=build/guest-linux
payload=
initramfs=
while (($#)); do
  case "$1" in
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    --dir=*) dir=${1#*=}; shift ;;
    --init) payload=${2:?--init needs a script}; shift 2 ;;
    --init=*) payload=${1#*=}; shift ;;
    --initramfs) initramfs=${2:?--initramfs needs a file name}; shift 2 ;;
    --initramfs=*) initramfs=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
if [[ -n "$payload" && ! -r "$payload" ]]; then
  die "cannot read the init script $payload"
fi
if [[ -z "$initramfs" ]]; then
  if [[ -n "$payload" ]]; then
    name=$(basename "$payload")
    initramfs="$dir/initramfs-${name%.sh}.cpio.gz"
  else
    initramfs="$dir/initramfs.cpio.gz"
  fi
fi

mkdir -p "$dir/debs" || die "cannot create $dir"
debs="$dir/debs"
ensure_tools
if [[ ! -f "$dir/bzImage" || ! -f "$dir/busybox" ]]; then
  ensure_i386_lists
  kernel_deb=$(fetch "$(kernel_package)")
  busybox_deb=$(fetch busybox-static)
  extract "$kernel_deb" "$dir/kernel-package"
  extract "$busybox_deb" "$dir/busybox-package"
  kernels=("$dir"/kernel-package/boot/vmlinuz-*)
  [[ -f "${kernels[0]}" ]] || die "$kernel_deb has no boot/vmlinuz-*"
  cp "${kernels[0]}" "$dir/bzImage.partial"
  mv "$dir/bzImage.partial" "$dir/bzImage"
  [[ -f "$dir/busybox-package/bin/busybox" ]] || die "$busybox_deb has no bin/busybox"
  cp "$dir/busybox-package/bin/busybox" "$dir/busybox.partial"
  mv "$dir/busybox.partial" "$dir/busybox"
  say "kernel from $(basename "$kernel_deb"), busybox from $(basename "$busybox_deb")"
fi
build_initramfs "$initramfs" "$payload"

say "kernel:    $dir/bzImage"
say "initramfs: $initramfs"
say "boot it:   build/btvm --kernel $dir/bzImage --initrd $initramfs --append 'console=ttyS0 earlyprintk=serial'"
