# rpm-verity in the initramfs: what the dracut pre-mount hook (dist/dracut/90rpm-verity) and the
# initramfs-tools init-premount script (dist/initramfs-tools) both do, defined once. Installed
# as /usr/lib/rpm-verity/initramfs.sh and copied into the initramfs by either generator; the
# hooks source it and call rpm_verity_initramfs. In the order docs/boot.md explains:
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
# Sourced by both generators' shells (dash in initramfs-tools, bash in dracut): POSIX sh only,
# no `exit`, and `warn` is the caller's when it has one.
command -v warn >/dev/null 2>&1 || warn() { echo "rpm-verity: $*" >&2; }

# Each line also goes to the kernel log, which outlives the initramfs and is read into the
# journal: that is where an administrator looks for why a machine booted unlocked.
rpm_verity_kmsg() {
    rpm_verity_level=$1
    shift
    printf '%s\n' "$*" | while IFS= read -r rpm_verity_line; do
        # rpm-verity's own messages already start with "rpm-verity: ".
        rpm_verity_line=${rpm_verity_line#rpm-verity: }
        [ -n "$rpm_verity_line" ] && echo "<$rpm_verity_level>rpm-verity: $rpm_verity_line" >/dev/kmsg 2>/dev/null
    done
    return 0
}

# Whether rd.rpm-verity.lockdown=0 (or no, off, false) is on the kernel command line: dracut's
# own parser where there is one, the same reading of /proc/cmdline elsewhere.
rpm_verity_lockdown_skipped() {
    if command -v getargbool >/dev/null 2>&1; then
        ! getargbool 1 rd.rpm-verity.lockdown
        return
    fi
    for rpm_verity_arg in $(cat /proc/cmdline 2>/dev/null); do
        case $rpm_verity_arg in
        rd.rpm-verity.lockdown=0 | rd.rpm-verity.lockdown=no | rd.rpm-verity.lockdown=off | rd.rpm-verity.lockdown=false)
            return 0
            ;;
        esac
    done
    return 1
}

rpm_verity_lockdown() {
    rpm_verity_policy=$2/lockdown/policy.p7b
    [ -f "$rpm_verity_policy" ] || return 0
    if rpm_verity_lockdown_skipped; then
        rpm_verity_kmsg 4 "lockdown skipped (rd.rpm-verity.lockdown=0 on the kernel command line): booting unlocked"
        return 0
    fi
    [ -d /sys/kernel/security/ipe ] || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
    if rpm_verity_out=$("$1" lockdown apply "$rpm_verity_policy" --certs "$2/certs" 2>&1); then
        rpm_verity_kmsg 5 "$rpm_verity_out"
        rpm_verity_kmsg 5 "lockdown applied from $rpm_verity_policy: only fs-verity files with a valid signature may execute"
    else
        rpm_verity_kmsg 3 "$rpm_verity_out"
        rpm_verity_kmsg 3 "lockdown NOT applied from $rpm_verity_policy: booting unlocked (see docs/lockdown.md)"
        warn "lockdown NOT applied: $rpm_verity_out"
    fi
    return 0
}

rpm_verity_initramfs() {
    rpm_verity_bin=/usr/bin/rpm-verity
    rpm_verity_conf=/etc/rpm-verity
    [ -x "$rpm_verity_bin" ] || return 0
    if [ ! -d /proc/sys/fs/verity ]; then
        warn "kernel has no fs-verity built-in signatures; certificates not loaded"
        return 0
    fi
    if [ -d "$rpm_verity_conf/certs" ]; then
        "$rpm_verity_bin" keyring load --dir "$rpm_verity_conf/certs" ||
            warn "loading certificates from $rpm_verity_conf/certs into .fs-verity failed"
    fi
    "$rpm_verity_bin" keyring require-signatures --from-file "$rpm_verity_conf/require-signatures" ||
        warn "setting fs.verity.require_signatures from $rpm_verity_conf/require-signatures failed"
    rpm_verity_lockdown "$rpm_verity_bin" "$rpm_verity_conf"
    return 0
}
