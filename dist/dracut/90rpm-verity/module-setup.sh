#!/bin/bash
# dracut module 90rpm-verity: put rpm-verity, /etc/rpm-verity/certs,
# /etc/rpm-verity/require-signatures and the signed IPE policy /etc/rpm-verity/lockdown/policy.p7b
# into the initramfs; at boot (pre-mount hook, before the root file system is mounted) load the
# certificates into the kernel's .fs-verity keyring, so that files opened before or right after
# switch_root (systemd, /sbin/init, their libraries) may carry fs-verity built-in signatures,
# and, when there is a policy, apply it (`rpm-verity lockdown apply`) so that nothing from the
# root file system runs without a valid signature. See docs/boot.md.
#
# The initramfs holds a copy: after adding or replacing a certificate or the policy, run
# dracut -f.

# Included by default when there are certificates to load.
check() {
    require_binaries rpm-verity || return 1
    [ -r /usr/lib/rpm-verity/initramfs.sh ] || return 1
    for f in /etc/rpm-verity/certs/*; do
        [ -f "$f" ] && return 0
    done
    return 255
}

depends() {
    return 0
}

install() {
    inst_binary rpm-verity
    inst_simple /usr/lib/rpm-verity/initramfs.sh
    inst_dir /etc/rpm-verity/certs
    local f
    for f in /etc/rpm-verity/certs/*; do
        [ -f "$f" ] && inst_simple "$f"
    done
    [ -f /etc/rpm-verity/require-signatures ] && inst_simple /etc/rpm-verity/require-signatures
    [ -f /etc/rpm-verity/lockdown/policy.p7b ] && inst_simple /etc/rpm-verity/lockdown/policy.p7b
    inst_hook pre-mount 10 "$moddir/rpm-verity-load.sh"
}
