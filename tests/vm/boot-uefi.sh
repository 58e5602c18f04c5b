#!/usr/bin/env bash
# Boot a real root through OVMF (UEFI) with the 6.12 test kernel as an EFI-stub bzImage, for the
# real-boot test (crates/cli/tests/vm_lockdown_boot.rs). The guest reports on its second serial
# port framed like tests/vm/init's output (tests/vm/guests/real-boot-check.sh); this prints the
# framed part and exits with the reported status, 124 on timeout, 125 without a report.
#
# usage: boot-uefi.sh --vars VARS.fd --initrd IMG --disk IMG [--append ARGS] [--console FILE]
#                     [--timeout SECS]
# VARS.fd is copied (OVMF writes to its variable store); make it with virt-fw-vars.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "vm/boot-uefi: error: $*" >&2; exit 2; }
vars= initrd= disk= append= console_out= timeout=600
while (($#)); do
    case $1 in
        --vars) vars=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --disk) disk=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --console) console_out=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
[[ -f $vars && -f $initrd && -f $disk ]] || die "--vars, --initrd and --disk are required"
code=/usr/share/OVMF/OVMF_CODE_4M.fd
[[ -f $code ]] || die "$code missing (Debian package ovmf)"
kdir=$(RPM_VERITY_VM_KERNEL=6.12 "$here/setup.sh")

work=$(mktemp -d "${TMPDIR:-/tmp}/rpm-verity-uefi.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$vars" "$work/vars.fd"
console=${console_out:-$work/console.log}
: >"$work/guest.out"
start=$(date +%s%N)
set +e
timeout -k 5 "$timeout" qemu-system-x86_64 \
    -machine q35 -accel tcg -cpu max -m 1G -smp 1 \
    -nodefaults -display none -no-reboot \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code" \
    -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd" \
    -serial "file:$console" -serial "file:$work/guest.out" \
    -kernel "$kdir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 root=/dev/vda rw panic=-1 $append" \
    -drive "if=virtio,format=raw,file=$disk" </dev/null
qrc=$?
set -e
ms=$((($(date +%s%N) - start) / 1000000))
echo "vm/boot-uefi: qemu exited $qrc after $((ms / 1000)).$(printf %03d $((ms % 1000)))s" >&2
out=$work/guest.out
tr -d '\r' <"$out" >"$out.lf"
body=$(awk '/^=== rpm-verity-vm: end rc=[0-9]* ===$/ { exit } on { print } /^=== rpm-verity-vm: begin ===$/ { on = 1 }' "$out.lf")
rc=$(sed -n 's/^=== rpm-verity-vm: end rc=\([0-9]*\) ===$/\1/p' "$out.lf" | tail -n1)
[[ -n $body ]] && printf '%s\n' "$body"
if [[ $qrc == 124 || $qrc == 137 ]]; then
    echo "vm/boot-uefi: timed out after ${timeout}s" >&2
    tail -n 60 "$console" >&2 || true
    exit 124
fi
if [[ -z $rc ]]; then
    echo "vm/boot-uefi: the guest did not report (qemu exit $qrc); console tail:" >&2
    tail -n 80 "$console" >&2 || true
    exit 125
fi
exit "$rc"
