#!/bin/sh
# dracut pre-mount hook (installed by module-setup.sh): load the certificates in the
# initramfs's /etc/rpm-verity/certs into the kernel's .fs-verity keyring and optionally set
# fs.verity.require_signatures from /etc/rpm-verity/require-signatures.
#
# The keyring is empty after every boot, and a file carrying an fs-verity built-in signature
# cannot be opened or executed (ENOKEY) until its certificate is loaded; the real root's init
# is opened right after switch_root, before any unit of the real system runs.
#
# dracut sources hooks: no `exit` here. Never fails the boot by itself.
command -v warn >/dev/null 2>&1 || warn() { echo "rpm-verity: $*" >&2; }

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
    return 0
}

rpm_verity_load
unset -f rpm_verity_load
