#!/bin/sh
# dracut pre-mount hook (installed by module-setup.sh), in the order docs/boot.md explains:
# 1. load the certificates in the initramfs's /etc/rpm-verity/certs into the kernel's .fs-verity
#    keyring and optionally set fs.verity.require_signatures from
#    /etc/rpm-verity/require-signatures;
# 2. if the initramfs holds a signed IPE policy (/etc/rpm-verity/lockdown/policy.p7b), apply it
#    with `rpm-verity lockdown apply` (restrict .fs-verity, deploy, activate), so that from here
#    on only fs-verity files with a valid signature may execute: the root file system is not
#    even mounted yet, so nothing from it has run.
#
# The keyring is empty after every boot, and a file carrying an fs-verity built-in signature
# cannot be opened or executed (ENOKEY) until its certificate is loaded; the real root's init
# is opened right after switch_root, before any unit of the real system runs.
#
# Never fails the boot by itself: when the policy cannot be applied (its signer not enrolled in
# the UEFI db or as a MOK, ENOKEY), the system boots unlocked and says so in the kernel log
# (dmesg, and the journal) with rpm-verity's explanation. rd.rpm-verity.lockdown=0 on the kernel
# command line skips step 2 (the way back, with ipe.enforce=0: docs/boot.md).
#
# dracut sources hooks: no `exit` here.
command -v warn >/dev/null 2>&1 || warn() { echo "rpm-verity: $*" >&2; }

# Each line also goes to the kernel log, which outlives the initramfs and is read into the
# journal: that is where an administrator looks for why a machine booted unlocked.
rpm_verity_kmsg() {
    local level=$1 line
    shift
    printf '%s\n' "$*" | while IFS= read -r line; do
        # rpm-verity's own messages already start with "rpm-verity: ".
        line=${line#rpm-verity: }
        [ -n "$line" ] && echo "<$level>rpm-verity: $line" >/dev/kmsg 2>/dev/null
    done
    return 0
}

rpm_verity_lockdown() {
    local bin=$1 conf=$2 policy=$2/lockdown/policy.p7b out
    [ -f "$policy" ] || return 0
    if command -v getargbool >/dev/null 2>&1 && ! getargbool 1 rd.rpm-verity.lockdown; then
        rpm_verity_kmsg 4 "lockdown skipped (rd.rpm-verity.lockdown=0 on the kernel command line): booting unlocked"
        return 0
    fi
    [ -d /sys/kernel/security/ipe ] || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
    if out=$("$bin" lockdown apply "$policy" --certs "$conf/certs" 2>&1); then
        rpm_verity_kmsg 5 "$out"
        rpm_verity_kmsg 5 "lockdown applied from $policy: only fs-verity files with a valid signature may execute"
    else
        rpm_verity_kmsg 3 "$out"
        rpm_verity_kmsg 3 "lockdown NOT applied from $policy: booting unlocked (see docs/lockdown.md)"
        warn "lockdown NOT applied: $out"
    fi
    return 0
}

rpm_verity_load() {
    local bin=/usr/bin/rpm-verity conf=/etc/rpm-verity
    [ -x "$bin" ] || return 0
    if [ ! -d /proc/sys/fs/verity ]; then
        warn "kernel has no fs-verity built-in signatures; certificates not loaded"
        return 0
    fi
    if [ -d "$conf/certs" ]; then
        "$bin" keyring load --dir "$conf/certs" ||
            warn "loading certificates from $conf/certs into .fs-verity failed"
    fi
    "$bin" keyring require-signatures --from-file "$conf/require-signatures" ||
        warn "setting fs.verity.require_signatures from $conf/require-signatures failed"
    rpm_verity_lockdown "$bin" "$conf"
    return 0
}

rpm_verity_load
unset -f rpm_verity_load rpm_verity_lockdown rpm_verity_kmsg
