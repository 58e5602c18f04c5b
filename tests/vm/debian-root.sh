#!/usr/bin/env bash
# Build (once, cached) a small Debian 12 root with systemd as PID 1 and dracut, for the real-boot
# test (crates/cli/tests/vm_lockdown_boot.rs), and print the path of its tarball.
#
#   $CACHE/debian-root-<key>.tar   mmdebstrap --variant=minbase + systemd, systemd-sysv, udev,
#                                  dracut-core, with the modules of the 6.12 test kernel that a
#                                  virtio/ext4 boot needs under /lib/modules/<kver> (depmod'ed)
#
# <key> is a hash of the package list, the kernel version and this script, so a change of any of
# them builds a new tarball; older ones are deleted. A flock lets parallel tests share it.
# Needs root (mmdebstrap's root mode: file owners and device nodes as in a real install).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${RPM_VERITY_VM_CACHE:-$HOME/.cache/rpm-verity-vm}
log() { echo "vm/debian-root: $*" >&2; }
die() { echo "vm/debian-root: error: $*" >&2; exit 1; }

for t in mmdebstrap apt-get dpkg-deb flock sha256sum; do
    command -v "$t" >/dev/null || die "missing tool: $t (scripts/install-deps installs it)"
done
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap root mode)"

kdir=$(RPM_VERITY_VM_KERNEL=6.12 "$here/setup.sh")
kver=$(cat "$kdir/version")

PACKAGES=systemd,systemd-sysv,udev,dracut-core,kmod
# Kernel modules the guest needs to find its root (no others: dracut --no-hostonly takes every
# module it finds, and a smaller initramfs boots faster under TCG).
MODULE_PATHS=(
    kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko.xz
    kernel/drivers/char/virtio_console.ko.xz
    kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz
    kernel/crypto/crc32c_generic.ko.xz kernel/arch/x86/crypto/crc32c-intel.ko.xz
    kernel/fs/efivarfs
)
key=$( (echo "$PACKAGES $kver ${MODULE_PATHS[*]}"; cat "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)
tarball=$CACHE/debian-root-$key.tar

mkdir -p "$CACHE"
exec 8>"$CACHE/.debian-root.lock"
flock 8
if [[ -f $tarball ]]; then
    echo "$tarball"
    exit 0
fi

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/rpm-verity-root.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "downloading linux-image-$kver for its modules"
(cd "$work" && apt-get download "linux-image-$kver" >&2 2>/dev/null ||
    apt-get download "linux-image-$kver-unsigned" >&2) || die "apt-get download linux-image-$kver failed"
deb=$(ls "$work"/linux-image-*.deb)
mkdir "$work/k"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/k" --wildcards \
    "./lib/modules/$kver/modules.*" $(printf "./lib/modules/$kver/%s* " "${MODULE_PATHS[@]}") 2>/dev/null || true
[[ -f $work/k/lib/modules/$kver/kernel/fs/ext4/ext4.ko.xz ]] || die "ext4 module not found in $deb"
rm -f "$deb"

log "mmdebstrap bookworm ($PACKAGES)"
# No documentation, manuals or translations: fewer files to package, sign and enable.
mmdebstrap --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="cp -a '$work/k/lib/modules' \"\$1/lib/\" && chroot \"\$1\" depmod -a '$kver'" \
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : > "$1"/etc/machine-id' \
    --customize-hook='echo rpm-verity-guest > "$1"/etc/hostname' \
    --customize-hook='chroot "$1" passwd -d root' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$work/root.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2 ||
    die "mmdebstrap failed"

rm -f "$CACHE"/debian-root-*.tar
mv "$work/root.tar" "$tarball"
log "built $tarball ($(du -m "$tarball" | cut -f1) MB) in $(($(date +%s) - start)) s"
echo "$tarball"
