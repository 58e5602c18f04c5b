#!/bin/bash
# dracut module 90rpm-verity: put rpm-verity, /etc/rpm-verity/certs and
# /etc/rpm-verity/require-signatures into the initramfs and load the certificates into the
# kernel's .fs-verity keyring before the root file system is mounted (pre-mount hook), so that
# files opened before or right after switch_root (systemd, /sbin/init, their libraries) may
# carry fs-verity built-in signatures.
#
# The initramfs holds a copy: after adding or replacing a certificate, run dracut -f.

# Included by default when there are certificates to load.
check() {
    require_binaries rpm-verity || return 1
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
    inst_dir /etc/rpm-verity/certs
    local f
    for f in /etc/rpm-verity/certs/*; do
        [ -f "$f" ] && inst_simple "$f"
    done
    [ -f /etc/rpm-verity/require-signatures ] && inst_simple /etc/rpm-verity/require-signatures
    inst_hook pre-mount 10 "$moddir/rpm-verity-load.sh"
}
