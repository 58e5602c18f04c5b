#!/usr/bin/env bash
# Boot Debian's fs-verity kernel under qemu (TCG) with a throwaway initramfs, run one guest
# script, print its output, and exit with its exit status.
#
# usage: tests/vm/run.sh [options] GUEST_SCRIPT [ARGS...]
#   --disk IMG          attach IMG (raw) as the next virtio disk (/dev/vda, /dev/vdb, ...);
#                       /dev/vda is mounted (ext4) at /mnt before the script runs
#   --no-mount          do not mount /dev/vda
#   --bin PATH[:DEST]   copy an executable (plus the shared libraries ldd lists) into the
#                       initramfs, by default as /usr/local/bin/<name>; may repeat
#   --file PATH[:DEST]  copy a file or directory into the initramfs (default DEST: /data/<name>)
#   --env NAME=VALUE    export in the guest script's environment; may repeat
#   --pre SCRIPT        run SCRIPT (with bash) inside the initramfs before /dev/vda is mounted
#                       (e.g. load a cert into .fs-verity the way an initramfs hook would)
#   --switch-root INIT  instead of running GUEST_SCRIPT in the initramfs, switch_root into
#                       /dev/vda and exec INIT there (GUEST_SCRIPT is then ignored; INIT must
#                       write its output to /dev/ttyS1 and print the end marker itself, see
#                       README.md)
#   --timeout SECS      kill qemu after SECS (default 300); exit status 124
#   --append ARGS       extra kernel command line
#   --console FILE      keep the serial console (kernel messages) in FILE
#   --verbose           print the console log to stderr even on success
#   --kernel SERIES     6.1 (default, Debian 12's kernel) or 6.12 (IPE, ECDSA); same as
#                       RPM_VERITY_VM_KERNEL=SERIES
#   --ovmf VARS.fd      boot through UEFI firmware (OVMF_CODE_4M.fd of Debian's `ovmf`, or
#                       $RPM_VERITY_VM_OVMF_CODE) with a copy of the variable store VARS.fd
#                       (e.g. made by `virt-fw-vars --add-db`), so the kernel's EFI stub
#                       runs and UEFI db certificates land in .platform; implies the bzImage
# Environment: RPM_VERITY_VM_CACHE (kernel cache dir), RPM_VERITY_VM_BOOT=bzimage (boot the
# compressed kernel instead of the extracted vmlinux), RPM_VERITY_VM_KPKG (pin the kernel
# package, see setup.sh).
#
# Output: the guest script's stdout+stderr on stdout (it travels over a second serial port,
# so kernel messages never mix into it). Exit status: the script's, 124 on timeout, 125 when
# the guest died before reporting one (console log is then printed to stderr).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "vm/run: error: $*" >&2; exit 2; }

disks=() bins=() files=() envs=()
mount_root=1 pre= switch_init= timeout=300 append= console_out= verbose=0 ovmf_vars=
while (($#)); do
    case $1 in
        --disk) disks+=("$2"); shift 2 ;;
        --no-mount) mount_root=0; shift ;;
        --bin) bins+=("$2"); shift 2 ;;
        --file) files+=("$2"); shift 2 ;;
        --env) envs+=("$2"); shift 2 ;;
        --pre) pre=$2; shift 2 ;;
        --switch-root) switch_init=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --console) console_out=$2; shift 2 ;;
        --verbose) verbose=1; shift ;;
        --kernel) export RPM_VERITY_VM_KERNEL=$2; shift 2 ;;
        --ovmf) ovmf_vars=$2; shift 2 ;;
        --) shift; break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
if [[ -z $switch_init ]]; then
    (($#)) || die "no guest script given"
    script=$1; shift
    [[ -f $script ]] || die "guest script $script not found"
fi
script_args=("$@")

for t in qemu-system-x86_64 busybox cpio ldd; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done

kdir=$("$here/setup.sh")
kver=$(cat "$kdir/version")
# RPM_VERITY_VM_BOOT=bzimage forces the compressed image (to compare, or if PVH boot breaks).
if [[ -z $ovmf_vars && -f $kdir/vmlinux && ${RPM_VERITY_VM_BOOT:-} != bzimage ]]; then
    kernel=$kdir/vmlinux
else
    kernel=$kdir/vmlinuz
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rpm-verity-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
ir=$work/initramfs
mkdir -p "$ir"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib,lib64,etc,proc,sys,dev,tmp,mnt,run,root,data}

# --- initramfs content ----------------------------------------------------------------------
cp "$(command -v busybox)" "$ir/bin/busybox"
for a in $(busybox --list); do
    [[ -e $ir/bin/$a ]] || ln -s busybox "$ir/bin/$a"
done

# Copy an executable and the libraries it links to (same paths as on the host).
copy_libs() {
    local exe=$1 lib
    while read -r lib; do
        [[ -n $lib && -f $lib ]] || continue
        local dst=$ir$lib
        [[ -e $dst ]] && continue
        mkdir -p "$(dirname "$dst")"
        cp -L "$lib" "$dst"
    done < <(ldd "$exe" 2>/dev/null | grep -o '/[^ ]*' || true)
}
add_bin() {
    local src=$1 dst=$2
    [[ -f $src ]] || die "binary $src not found"
    mkdir -p "$(dirname "$ir$dst")"
    # Debug builds carry hundreds of MB of DWARF; the guest has 512 MiB of RAM.
    if ! strip --strip-debug -o "$ir$dst" "$src" 2>/dev/null; then cp -L "$src" "$ir$dst"; fi
    chmod 755 "$ir$dst"
    copy_libs "$src"
}

# Real tools go to /usr/bin so that bash (and PATH order) finds them before busybox applets.
for t in bash fsverity keyctl debugfs; do
    p=$(command -v "$t") || die "missing tool: $t"
    add_bin "$p" "/usr/bin/$t"
done
command -v openssl >/dev/null && add_bin "$(command -v openssl)" /usr/bin/openssl

for spec in "${bins[@]}"; do
    src=${spec%%:*}; dst=${spec#*:}
    [[ $spec == *:* ]] || dst=/usr/local/bin/$(basename "$src")
    add_bin "$src" "$dst"
done
for spec in "${files[@]}"; do
    src=${spec%%:*}; dst=${spec#*:}
    [[ $spec == *:* ]] || dst=/data/$(basename "$src")
    [[ -e $src ]] || die "file $src not found"
    mkdir -p "$(dirname "$ir$dst")"
    cp -a "$src" "$ir$dst"
done

mkdir -p "$ir/lib/modules/$kver"
cp "$kdir"/modules/*.ko "$kdir/modules/load-order" "$ir/lib/modules/$kver/"
[[ -f $kdir/modules/modules.dep ]] && cp "$kdir/modules/modules.dep" "$ir/lib/modules/$kver/"

if [[ -z $switch_init ]]; then
    cp "$script" "$ir/guest.sh"
    printf '%q ' "${script_args[@]}" >"$ir/guest.args"
fi
[[ -n $pre ]] && cp "$pre" "$ir/pre.sh"
: >"$ir/guest.env"
for e in "${envs[@]}"; do
    printf 'export %s=%q\n' "${e%%=*}" "${e#*=}" >>"$ir/guest.env"
done
echo "KVER=$kver" >"$ir/etc/vm.conf"
echo "MOUNT_ROOT=$mount_root" >>"$ir/etc/vm.conf"
printf 'SWITCH_INIT=%q\n' "$switch_init" >>"$ir/etc/vm.conf"
echo 'root:x:0:0:root:/root:/bin/sh' >"$ir/etc/passwd"
echo 'root:x:0:' >"$ir/etc/group"
cp "$here/init" "$ir/init"
chmod 755 "$ir/init"

(cd "$ir" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"

# --- boot -----------------------------------------------------------------------------------
drives=()
for d in "${disks[@]}"; do
    [[ -f $d ]] || die "disk image $d not found"
    drives+=(-drive "if=virtio,format=raw,file=$d")
done
# UEFI: OVMF loads the -kernel bzImage through its EFI stub (no PVH), and the EFI stub hands
# the kernel the db, which it loads into .platform. The variable store is copied: OVMF writes it.
firmware=()
if [[ -n $ovmf_vars ]]; then
    code=${RPM_VERITY_VM_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
    [[ -f $code ]] || die "OVMF firmware $code not found (Debian package ovmf)"
    [[ -f $ovmf_vars ]] || die "OVMF variable store $ovmf_vars not found"
    cp "$ovmf_vars" "$work/vars.fd"
    firmware=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
              -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd")
fi
console=${console_out:-$work/console.log}
: >"$work/guest.out"
start=$(date +%s%N)
set +e
timeout -k 5 "$timeout" qemu-system-x86_64 \
    -accel tcg -cpu max -m 512M -smp 1 \
    -nodefaults -display none -no-reboot "${firmware[@]}" \
    -serial "file:$console" -serial "file:$work/guest.out" \
    -kernel "$kernel" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init $append" \
    "${drives[@]}" </dev/null
qrc=$?
set -e
ms=$((($(date +%s%N) - start) / 1000000))
echo "vm/run: qemu exited $qrc after $((ms / 1000)).$(printf %03d $((ms % 1000)))s" >&2

# Guest output is framed by markers written by init; anything outside them is noise.
out=$work/guest.out
# (Up to EOF when the guest died without an end marker: the partial output still helps.)
# (The begin marker is not anchored: OVMF clears the screen on every serial port before Linux.)
body=$(awk '/^=== rpm-verity-vm: end rc=[0-9]* ===$/ { exit } on { print } /=== rpm-verity-vm: begin ===$/ { on = 1 }' "$out")
rc=$(sed -n 's/^=== rpm-verity-vm: end rc=\([0-9]*\) ===$/\1/p' "$out" | tail -n1)
[[ -n $body ]] && printf '%s\n' "$body"
if [[ $qrc == 124 || $qrc == 137 ]]; then
    echo "vm/run: timed out after ${timeout}s" >&2
    tail -n 50 "$console" >&2 || true
    exit 124
fi
if [[ -z $rc ]]; then
    echo "vm/run: the guest did not report an exit status (qemu exit $qrc); console log:" >&2
    [[ -z $body ]] && cat "$out" >&2
    tail -n 80 "$console" >&2 || true
    exit 125
fi
((verbose)) && cat "$console" >&2
exit "$rc"
