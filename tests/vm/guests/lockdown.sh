# Guest side of crates/cli/tests/vm_lockdown.rs: `rpm-verity lockdown` on Debian's 6.12 kernel
# (IPE). Prints "STEP <name> rc=<n>: <output, newlines as |>" lines; the host test asserts.
# $1 = "db" (booted through OVMF with the policy signer in the UEFI db), "permissive" (the same,
# with ipe.enforce=0 on the kernel command line), "pvh" (no firmware: nothing enrolled), or
# "initramfs-tools" / "initramfs-tools-skip" (through OVMF, after the shipped initramfs-tools
# script ran as the initramfs would run it; the second with rd.rpm-verity.lockdown=0).
set -u
RV=/usr/local/bin/rpm-verity
D=/lockdown
M=/mnt
step() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "STEP $name rc=$rc: $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}
# What securityfs and the keyring hold: must not change when a bad policy is refused.
state() {
    echo "policies=[$(ls /sys/kernel/security/ipe/policies | tr '\n' ' ')]"
    echo "fs-verity=[$(grep -c asymmetri /proc/keys) asym keys, .fs-verity $(grep ' \.fs-verity:' /proc/keys | sed 's/.*\.fs-verity: //')]"
}
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo 0 >/proc/sys/kernel/printk_ratelimit

# --- the initramfs-tools script already ran (run.sh --pre), as it does before the root is
# mounted: what it left behind ("initramfs-tools"; "initramfs-tools-skip" was booted with
# rd.rpm-verity.lockdown=0).
case "${1:-db}" in
initramfs-tools*)
    step status $RV lockdown status --json
    step kmsg sh -c "dmesg | grep 'rpm-verity: ' | sed 's/^\[[^]]*\] //'"
    step enable-signed fsverity enable $M/bin/busybox-signed --signature=$D/signed.sig
    step run-signed $M/bin/busybox-signed echo signed runs
    step run-unsigned-copy $M/bin/busybox-unsigned echo unsigned runs
    exit 0
    ;;
esac

step lsm cat /sys/kernel/security/lsm
step status-before $RV lockdown status --json
step state-before state

# --- bad policy files: refused before anything reaches the kernel --------------------------
for bad in truncated corrupted oversized plain detached; do
    step "bad-$bad" $RV lockdown apply $D/bad-$bad.p7b --certs $D/certs
done
step state-after-bad state
step status-after-bad $RV lockdown status --json

if [ "${1:-db}" = pvh ]; then
    step apply-unenrolled $RV lockdown apply $D/policy.p7b --certs $D/certs
    step state-after-apply state
    # audit --lockdown on the running system (measured): packages installed into /usr/sbin and
    # /usr/libexec of the disk, bind-mounted where their rpmdb (in /var/lib/rpm) says they are.
    mkdir -p /usr/sbin /usr/libexec
    mount --bind $M/usr/sbin /usr/sbin && mount --bind $M/usr/libexec /usr/libexec
    step audit-before-enable $RV audit --lockdown --json
    step enable-tools $RV enable tools
    step audit-after-enable $RV audit --lockdown --json
    # Without securityfs (an initramfs without systemd): status says so, apply mounts it.
    umount /sys/kernel/security
    step status-unmounted $RV lockdown status --json
    step apply-unmounted $RV lockdown apply $D/policy.p7b --certs $D/certs
    step lsm-remounted cat /sys/kernel/security/lsm
    exit 0
fi

# --- booted with ipe.enforce=0: the policy deploys and activates, denials are only logged ---
if [ "${1:-db}" = permissive ]; then
    step enforce-file cat /sys/kernel/security/ipe/enforce
    step apply $RV lockdown apply $D/policy.p7b --certs $D/certs
    step enable-signed fsverity enable $M/bin/busybox-signed --signature=$D/signed.sig
    step status $RV lockdown status --json
    step status-check $RV lockdown status --check
    step run-signed $M/bin/busybox-signed echo signed runs
    step run-unsigned-copy $M/bin/busybox-unsigned echo unsigned runs
    step audit-permissive sh -c "dmesg | grep -c 'type=1420.*ipe_op=EXECUTE.*enforcing=0'"
    exit 0
fi

# --- a policy signed by a key that is not enrolled ----------------------------------------
step apply-stranger $RV lockdown apply $D/stranger.p7b --certs $D/certs
step state-after-stranger state

# --- the real thing -------------------------------------------------------------------------
# Verity files before the policy (fs-verity checks the signature against .fs-verity at enable
# and at every open; the cert was loaded and the keyring restricted by the stranger attempt).
step enable-signed fsverity enable $M/bin/busybox-signed --signature=$D/signed.sig
step enable-dyn fsverity enable $M/bin/dyn --signature=$D/dyn.sig
step enable-nosig fsverity enable $M/bin/busybox-nosig
step apply $RV lockdown apply $D/policy.p7b --certs $D/certs
step apply-again $RV lockdown apply $D/policy.p7b --certs $D/certs --json
step status $RV lockdown status --json
step status-check $RV lockdown status --check

step run-signed $M/bin/busybox-signed echo signed runs
step run-dyn $M/bin/dyn
step run-unsigned-copy $M/bin/busybox-unsigned echo should not run
cp $M/bin/busybox-signed /tmp/copy
step run-copy-tmpfs /tmp/copy echo should not run
step run-verity-nosig $M/bin/busybox-nosig echo should not run
step run-unsigned-lib env LD_LIBRARY_PATH=$M/lib $M/bin/dyn
step run-script $M/bin/script.sh
step sh-script sh $M/bin/script.sh
step read-unsigned head -c 4 $M/bin/busybox-unsigned
# A certificate added after apply: the keyring is closed, so the file it signed cannot even be
# enabled, and executing it without verity is refused.
step add-late keyctl padd asymmetric '' %keyring:.fs-verity <$D/late.der
step load-late $RV keyring load $D/late.pem
step enable-late fsverity enable $M/bin/busybox-late --signature=$D/late.sig
step run-late $M/bin/busybox-late echo should not run
# An update must raise the version; a corrupted text inside a valid structure is refused by
# the kernel's signature check.
step apply-tampered $RV lockdown apply $D/tampered.p7b --certs $D/certs
step apply-v2 $RV lockdown apply $D/policy-v2.p7b --certs $D/certs
step apply-v1-after-v2 $RV lockdown apply $D/policy.p7b --certs $D/certs
step status-v2 $RV lockdown status --json
step audit-denials sh -c "dmesg | grep -c 'type=1420.*ipe_op=EXECUTE.*enforcing=1'"
