#!/bin/bash
# Guest side of crates/cli/tests/vm_enable.rs: rpm-verity enable/audit on a root installed by
# rpm on the host, on Debian's fs-verity kernel. One "STEP <name> rc=<n>: <output>" line per
# step (newlines shown as |); the host test asserts on them.
# $1 = phase: "first" (fresh image, cert loaded, require_signatures=1) or "reboot".
set -u
RV=rpm-verity
D=/data
step() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "STEP $name rc=$rc: $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}
files=$(cat $D/eligible.txt)
mtimes() { for f in $files; do stat -c "%n %Y.%y" "/mnt$f"; done; }
measure() { for f in $files; do fsverity measure "/mnt$f" 2>&1; done; }

phase=${1:-first}
if [ "$phase" = first ]; then
    step load-cert $RV keyring load $D/cert.pem
    step reqsig sh -c 'echo 1 > /proc/sys/fs/verity/require_signatures && cat /proc/sys/fs/verity/require_signatures'
    step mtimes-before mtimes
    step enable $RV enable --root /mnt --all
    step enable-json $RV enable --root /mnt --all --json
    step measure measure
    step mtimes-after mtimes
    step audit $RV audit --root /mnt
    # An escaping root: its files must not be enabled, the victim outside stays non-verity.
    step evil-enable $RV enable --root /mnt/evil --all --json
    step evil-victim fsverity measure /mnt/victim/alpha-tool
    # ext4 without the verity feature, and tmpfs: clear message, nothing enabled.
    mkdir -p /mnt2 && mount -t ext4 /dev/vdb /mnt2
    step noverity-enable $RV enable --root /mnt2 --all
    step noverity-measure fsverity measure /mnt2/usr/bin/alpha-tool
    umount /mnt2
    mkdir -p /tmp/r && cp -a $D/plainroot/. /tmp/r/
    step tmpfs-enable $RV enable --root /tmp/r --all
    # Tampering for the second boot: swap two signed files by rename, replace one by a new
    # file with other content, one by an identical copy (verity off).
    cd /mnt/usr/lib/beta
    mv one.bin x && mv two.bin one.bin && mv x two.bin
    rm three.bin && echo 'new content' > three.bin
    cd /mnt/usr/bin && cp alpha-tool /tmp/t && rm alpha-tool && cp /tmp/t alpha-tool
    cd /
    step tampered true
    # The new three.bin verity-enabled WITHOUT a signature (require_signatures=0 allows it):
    # verity on, digest not the package's. Never OK/ALREADY, whatever the stored signature.
    echo 0 > /proc/sys/fs/verity/require_signatures
    step unsigned-enable fsverity enable /mnt/usr/lib/beta/three.bin
    step unsigned-audit $RV audit --root /mnt --cert $D/cert.pem --json
    step unsigned-audit-nocert $RV audit --root /mnt --json
    step unsigned-rv-enable $RV enable --root /mnt --cert $D/cert.pem --json /usr/lib/beta/three.bin
    step unsigned-rv-enable-nocert $RV enable --root /mnt --json /usr/lib/beta/three.bin
    # The package's content verity-enabled without a signature, no certificate configured:
    # only the one in the .fs-verity keyring can vouch (KEYCTL_PKEY_VERIFY). Then restored
    # (with the package's signature) for the second boot.
    c=/mnt/etc/alpha-exec.conf
    cp $c /tmp/c && rm $c && cp /tmp/c $c && fsverity enable $c
    step keyring-only-audit $RV audit --root /mnt --json
    rm $c && cp /tmp/c $c
    step keyring-only-restore $RV enable --root /mnt /etc/alpha-exec.conf
else
    step keys cat /proc/keys
    step audit-nocert $RV audit --root /mnt --cert $D/cert.pem
    step status $RV status /mnt
    step keyring-load $RV keyring load $D/cert.pem
    step audit $RV audit --root /mnt --cert $D/cert.pem --json
    step audit-text $RV audit --root /mnt --cert $D/cert.pem
fi
exit 0
