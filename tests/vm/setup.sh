#!/usr/bin/env bash
# Fetch Debian's fs-verity capable kernel and prepare what run.sh boots:
#   $CACHE/<kver>/vmlinux       uncompressed ELF (PVH direct boot, ~3 s faster under TCG than bzImage)
#   $CACHE/<kver>/vmlinuz       the bzImage (fallback when vmlinux extraction fails)
#   $CACHE/<kver>/modules/      the few modules the guest needs, decompressed, plus load-order
#   $CACHE/current              symlink to <kver>
# Idempotent: does nothing when the cache is complete. Prints the kernel dir on stdout.
set -euo pipefail

CACHE=${RPM_VERITY_VM_CACHE:-$HOME/.cache/rpm-verity-vm}
mkdir -p "$CACHE"
# Tests boot VMs in parallel; only one of them may populate the cache.
exec 9>"$CACHE/.lock"
flock 9

log() { echo "vm/setup: $*" >&2; }
die() { echo "vm/setup: error: $*" >&2; exit 1; }

for t in apt-cache apt-get dpkg-deb xz od dd flock; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done

# Module load order for Debian 6.1 (no modprobe in the guest: dependencies first).
# crc32c_generic must precede ext4 (ext4 asks the crypto API for crc32c at mount time).
MODULES=(
    crc32c_generic
    virtio_pci_modern_dev virtio_pci_legacy_dev virtio_ring virtio virtio_pci virtio_blk
    jbd2 mbcache crc16 ext4
    loop
    sha512_generic
)

# Which kernel package: RPM_VERITY_VM_KERNEL=6.1 (default) is the current dependency of the
# linux-image-amd64 metapackage (Debian 12's 6.1); RPM_VERITY_VM_KERNEL=6.12 is the newest
# linux-image-6.12.*-amd64[-unsigned] (bookworm-backports/updates: IPE, ECDSA). Pin an exact
# package with RPM_VERITY_VM_KPKG=linux-image-6.1.0-NN-amd64.
series=${RPM_VERITY_VM_KERNEL:-6.1}
resolve() {
    case $series in
        6.1)
            apt-cache depends linux-image-amd64 2>/dev/null |
                sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1 ;;
        6.12)
            apt-cache search --names-only '^linux-image-6\.12\.[0-9.]+\+deb[0-9]+-amd64(-unsigned)?$' 2>/dev/null |
                awk '{print $1}' | sort -V | tail -n1 ;;
        *) die "RPM_VERITY_VM_KERNEL must be 6.1 or 6.12, not $series" ;;
    esac
}
pkg=${RPM_VERITY_VM_KPKG:-}
if [[ -z $pkg ]]; then
    pkg=$(resolve)
    if [[ -z $pkg && $(id -u) == 0 ]]; then
        log "no package lists: apt-get update"
        apt-get update -qq >&2 || true
        pkg=$(resolve)
    fi
    [[ -n $pkg ]] || die "cannot resolve linux-image-amd64's dependency (run apt-get update)"
fi
kver=${pkg#linux-image-}
kver=${kver%-unsigned}
kdir=$CACHE/$kver

if [[ -f $kdir/.complete ]]; then
    ln -sfn "$kver" "$CACHE/current"
    echo "$kdir"
    exit 0
fi

rm -rf "$kdir.tmp"
mkdir -p "$kdir.tmp"
log "downloading $pkg"
debs=("$CACHE"/"${pkg}"_*.deb)
if [[ ! -f ${debs[0]} ]]; then
    (cd "$CACHE" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
    debs=("$CACHE"/"${pkg}"_*.deb)
fi
[[ -f ${debs[0]} ]] || die "no .deb for $pkg in $CACHE"
log "extracting ${debs[0]##*/}"
dpkg-deb -x "${debs[0]}" "$kdir.tmp/root"

root=$kdir.tmp/root
bz=$root/boot/vmlinuz-$kver
[[ -f $bz ]] || die "no /boot/vmlinuz-$kver in the package"
cp "$bz" "$kdir.tmp/vmlinuz"
cp "$root/boot/config-$kver" "$kdir.tmp/config" 2>/dev/null || true

# --- vmlinux from the bzImage ---------------------------------------------------------------
# Setup header (Documentation/arch/x86/boot.rst): setup_sects at 0x1f1 (u8; 0 means 4);
# payload_offset (u32) at 0x248 and payload_length (u32) at 0x24c, relative to the start of
# the protected-mode code, which begins at (setup_sects + 1) * 512.
u8_at() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32_at() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
extract_vmlinux() {
    local img=$1 out=$2
    local magic
    magic=$(dd if="$img" bs=1 skip=$((0x202)) count=4 2>/dev/null)
    [[ $magic == HdrS ]] || return 1
    local sects off len pm
    sects=$(u8_at "$img" $((0x1f1)))
    ((sects == 0)) && sects=4
    off=$(u32_at "$img" $((0x248)))
    len=$(u32_at "$img" $((0x24c)))
    pm=$(((sects + 1) * 512))
    local head
    head=$(od -An -tx1 -j $((pm + off)) -N6 "$img" | tr -d ' \n')
    local dec
    case $head in
        fd377a585a00*) dec="xz -dc" ;;
        28b52ffd*) dec="zstd -dc" ;;
        1f8b*) dec="gzip -dc" ;;
        *) log "unknown payload compression (magic $head)"; return 1 ;;
    esac
    # tail -c +N is 1-based; the payload may carry a 4-byte size trailer the decompressor ignores
    # (xz complains about trailing garbage on some builds, so tolerate a non-zero exit if the
    # output is an ELF).
    tail -c +$((pm + off + 1)) "$img" | head -c "$len" | $dec >"$out" 2>/dev/null || true
    [[ $(head -c4 "$out" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]
}
if extract_vmlinux "$kdir.tmp/vmlinuz" "$kdir.tmp/vmlinux"; then
    log "extracted vmlinux ($(stat -c %s "$kdir.tmp/vmlinux") bytes)"
else
    log "could not extract vmlinux; run.sh will boot the bzImage (slower)"
    rm -f "$kdir.tmp/vmlinux"
fi

# --- modules --------------------------------------------------------------------------------
mroot=$root/lib/modules/$kver
[[ -d $mroot ]] || die "no /lib/modules/$kver in the package"
mkdir -p "$kdir.tmp/modules"
: >"$kdir.tmp/modules/load-order"
builtin=$mroot/modules.builtin
for m in "${MODULES[@]}"; do
    f=$(find "$mroot/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) -print -quit)
    if [[ -z $f ]]; then
        if [[ -f $builtin ]] && grep -q "/$m.ko\$" "$builtin"; then
            log "module $m is built in"
            continue
        fi
        die "module $m not found in $pkg"
    fi
    case $f in
        *.ko.xz) xz -dc "$f" >"$kdir.tmp/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$kdir.tmp/modules/$m.ko" ;;
        *) cp "$f" "$kdir.tmp/modules/$m.ko" ;;
    esac
    echo "$m" >>"$kdir.tmp/modules/load-order"
done
# The ordered list in load-order is what the guest init uses (no modprobe); modules.dep is made
# for completeness (busybox modprobe in an interactive debug shell).
if command -v busybox >/dev/null; then
    mkdir -p "$kdir.tmp/depmod/lib/modules/$kver"
    cp "$kdir.tmp"/modules/*.ko "$kdir.tmp/depmod/lib/modules/$kver/"
    busybox depmod -b "$kdir.tmp/depmod" "$kver" 2>/dev/null &&
        cp "$kdir.tmp/depmod/lib/modules/$kver/modules.dep" "$kdir.tmp/modules/" || true
    rm -rf "$kdir.tmp/depmod"
fi
echo "$kver" >"$kdir.tmp/version"

# Verity facts of this kernel, for the README and to fail early on a wrong kernel.
if [[ -f $kdir.tmp/config ]]; then
    grep -q '^CONFIG_FS_VERITY=y' "$kdir.tmp/config" || die "$pkg lacks CONFIG_FS_VERITY=y"
    grep -q '^CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y' "$kdir.tmp/config" ||
        die "$pkg lacks CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y"
fi

rm -rf "$root" "${debs[@]}"
rm -rf "$kdir"
mv "$kdir.tmp" "$kdir"
touch "$kdir/.complete"
ln -sfn "$kver" "$CACHE/current"
log "kernel $kver ready in $kdir"
echo "$kdir"
