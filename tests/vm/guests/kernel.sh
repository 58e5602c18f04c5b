#!/bin/bash
# Guest side of crates/cli/tests/vm_kernel.rs: exercises fsverity::linux through vm_probe.
# Prints one "STEP <name> rc=<n>: <output>" line per step; the host test asserts on them.
# $1 = phase: "first" (fresh image) or "reboot" (same image, second boot, empty keyring).
set -u
P=vm_probe
D=/data
step() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "STEP $name rc=$rc: $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}

phase=${1:-first}
step uname uname -r
step support $P support

if [ "$phase" = first ]; then
    step keys-empty $P list-keys
    step reqsig-initial $P require-signatures
    # No signature, require_signatures=0: works; the kernel's digest must equal userspace's.
    step enable-plain $P enable /mnt/plain.bin
    step measure-plain $P measure /mnt/plain.bin
    step fsverity-measure-plain fsverity measure /mnt/plain.bin
    step is-verity-plain $P is-verity /mnt/plain.bin
    step read-sig-plain $P read-sig /mnt/plain.bin
    step enable-plain-again $P enable /mnt/plain.bin
    step enable-sha512 $P enable /mnt/plain512.bin --alg sha512
    step measure-sha512 $P measure /mnt/plain512.bin
    step is-verity-unenabled $P is-verity /mnt/signed.bin
    step measure-unenabled $P measure /mnt/signed.bin
    step enable-bs1024 $P enable /mnt/bs1024.bin --block-size 1024
    # Signed by a cert that is not (yet) in the keyring.
    step enable-signed-nocert $P enable /mnt/signed.bin --sig $D/signed.sig
    step enable-other-cert $P enable /mnt/nocert.bin --sig $D/nocert.sig
    step add-cert $P add-cert $D/cert.der
    step add-cert-again $P add-cert $D/cert.der
    step add-cert-pem $P add-cert $D/cert.pem
    step add-cert-garbage $P add-cert $D/garbage.sig
    step keys-loaded $P list-keys
    step reqsig-on $P require-signatures 1
    step reqsig-get $P require-signatures
    step enable-unsigned-required $P enable /mnt/unsigned.bin
    step enable-signed $P enable /mnt/signed.bin --sig $D/signed.sig
    step measure-signed $P measure /mnt/signed.bin
    step read-sig-signed $P read-sig /mnt/signed.bin
    step enable-wrong-content $P enable /mnt/wrong.bin --sig $D/other.sig
    step enable-garbage-sig $P enable /mnt/wrong.bin --sig $D/garbage.sig
    step enable-other-cert-loaded $P enable /mnt/nocert.bin --sig $D/nocert.sig
    step enable-busy-writer $P enable /mnt/busy.bin --hold-writer
    step enable-busy-wrfd $P enable /mnt/busy.bin --use-write-fd
    step reqsig-off $P require-signatures 0
    # Filesystems without verity.
    cp /mnt/busy.bin /tmp/tmpfs.bin
    step enable-tmpfs $P enable /tmp/tmpfs.bin
    step measure-tmpfs $P measure /tmp/tmpfs.bin
    mkdir -p /mnt2 && mount -t ext4 /dev/vdb /mnt2
    step enable-ext4-noverity $P enable /mnt2/noverity.bin
    umount /mnt2
    step is-verity-busy $P is-verity /mnt/busy.bin
else
    # Second boot of the same image: verity persisted, but the keyring is empty again.
    step keys-after-reboot $P list-keys
    step measure-plain-reboot $P measure /mnt/plain.bin
    step measure-signed-reboot $P measure /mnt/signed.bin
    step add-cert-reboot $P add-cert $D/cert.der
    step measure-signed-after-load $P measure /mnt/signed.bin
    step read-sig-reboot $P read-sig /mnt/signed.bin
    step write-verity sh -c 'echo x >> /mnt/plain.bin'
fi
exit 0
