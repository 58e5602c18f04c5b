#!/bin/busybox sh
# /sbin/init of the root image booted by crates/cli/tests/vm_boot.rs through the initramfs
# hook (run.sh --switch-root). Both this script and /bin/busybox carry fs-verity built-in
# signatures, so the kernel refuses to execute them (ENOKEY) unless the hook loaded the cert.
# Reports over /dev/ttyS1 like tests/vm/init does, then powers off.
B=/bin/busybox
out=/dev/ttyS1
step() {
    name=$1
    shift
    o=$("$@" 2>&1)
    rc=$?
    echo "STEP $name rc=$rc: $(echo "$o" | $B tr '\n' '|' | $B sed 's/|$//')" >$out
}
step init-pid echo "pid $$"
step reqsig $B cat /proc/sys/fs/verity/require_signatures
# The test's certificates in the keyring (the kernel's own trusted keys are listed too).
step keys $B grep -c 'Throwaway: rpm-verity boot' /proc/keys
step read-signed $B sh -c "$B cat /sbin/init | $B wc -c"
# Verity without a signature, while require_signatures=1: the kernel refuses to open it.
step read-unsigned $B cat /unsigned.bin
$B sync
echo "=== rpm-verity-vm: end rc=0 ===" >$out
$B poweroff -f
$B sleep 5
