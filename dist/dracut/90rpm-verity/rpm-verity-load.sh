#!/bin/sh
# dracut pre-mount hook (installed by module-setup.sh): load the certificates into .fs-verity and
# apply the signed IPE policy if there is one. What that means and in which order is defined
# once, in /usr/lib/rpm-verity/initramfs.sh (dist/lib/initramfs.sh), shared with the
# initramfs-tools script; docs/boot.md explains it.
#
# dracut sources hooks: no `exit` here.
if [ -r /usr/lib/rpm-verity/initramfs.sh ]; then
    . /usr/lib/rpm-verity/initramfs.sh
    rpm_verity_initramfs
    unset -f rpm_verity_initramfs rpm_verity_lockdown rpm_verity_lockdown_skipped rpm_verity_kmsg
else
    echo "<3>rpm-verity: /usr/lib/rpm-verity/initramfs.sh missing from the initramfs: certificates not loaded, no lockdown" >/dev/kmsg 2>/dev/null
    echo "rpm-verity: /usr/lib/rpm-verity/initramfs.sh missing from the initramfs: certificates not loaded, no lockdown" >&2
fi
