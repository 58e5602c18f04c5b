#!/bin/bash
# Guest side of crates/cli/tests/vm_boot.rs, first boot: `keyring` and `status` on a real
# fs-verity kernel, the dracut hook script, the rpm file trigger, and preparing the root for
# the boot-hook boots (verity-signed /sbin/init and /bin/busybox).
# Prints "STEP <name> rc=<n>: <output, newlines as |>" and "JSON <name> <json>" lines; the
# host test asserts on them.
set -u
RV=/usr/bin/rpm-verity
D=/data
step() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "STEP $name rc=$rc: $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}
json() {
    local name=$1; shift
    echo "JSON $name $("$@" 2>/dev/null | tr -d '\n')"
}

# --- status before anything is loaded ------------------------------------------------------
mkdir -p /mnt2 && mount -t ext4 /dev/vdb /mnt2
json status-fresh $RV status --json /mnt
step status-fresh-text $RV status /mnt
json status-tmpfs $RV status --json /tmp
json status-noverity $RV status --json /mnt2
step status-noverity-text $RV status /mnt2
umount /mnt2

# --- keyring ----------------------------------------------------------------------------------
step list-empty $RV keyring list
step load-dir $RV keyring load --dir $D/certs
step load-again $RV keyring load --dir $D/certs
json list-json $RV keyring list --json
step list-text $RV keyring list
step load-explicit-notcert $RV keyring load $D/certs/README
json load-again-json $RV keyring load --json $D/certs/cert1.der
step load-missing-dir $RV keyring load --dir /nonexistent
step reqsig-get0 $RV keyring require-signatures
step reqsig-on $RV keyring require-signatures on
step reqsig-get1 $RV keyring require-signatures
step reqsig-off $RV keyring require-signatures off
step reqsig-missing-file $RV keyring require-signatures --from-file /nonexistent
echo maybe >/tmp/rs
step reqsig-bad-file $RV keyring require-signatures --from-file /tmp/rs
step nonroot-load setpriv --reuid 65534 --regid 65534 --clear-groups $RV keyring load --dir $D/certs
step nonroot-reqsig setpriv --reuid 65534 --regid 65534 --clear-groups $RV keyring require-signatures on
json status-loaded $RV status --json

# --- root for the boot-hook boots --------------------------------------------------------------
step enable-init fsverity enable --signature=$D/init.sig /mnt/sbin/init
step enable-busybox fsverity enable --signature=$D/busybox.sig /mnt/bin/busybox
step enable-unsigned fsverity enable /mnt/unsigned.bin
step measure-init fsverity measure /mnt/sbin/init
json status-init $RV status --json /mnt/sbin/init

# --- file trigger: real rpm, plugin off -----------------------------------------------------
R=/mnt/rpmroot
mount --bind /proc $R/proc
mount --bind /dev $R/dev
step rpm-install rpm --root $R --dbpath /var/lib/rpm -i --nodeps \
    --define '__transaction_fsverity %{nil}' $D/vt.rpm
step rpm-query rpm --root $R --dbpath /var/lib/rpm -qa
for f in usr/bin/vt-tool usr/share/vt/data.bin usr/share/vt/small.txt etc/vt.conf; do
    step "measure-/$f" fsverity measure $R/$f
done
umount $R/dev
umount $R/proc

# --- dracut hook script on an emptied keyring -------------------------------------------------
step keyctl-clear keyctl clear %keyring:.fs-verity
step list-cleared $RV keyring list
step reqsig-before-hook $RV keyring require-signatures
step dracut-hook sh $D/rpm-verity-load.sh
json list-after-hook $RV keyring list --json
step reqsig-after-hook $RV keyring require-signatures
exit 0
