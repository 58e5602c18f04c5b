#!/bin/bash
# Guest side of crates/cli/tests/vm_ecdsa.rs: ECDSA-signed packages on Debian's kernels. One
# "STEP <name> rc=<n>: <output>" line per step (newlines shown as |).
# $1 = phase: "6.12-first" (load the P-256 cert, require_signatures=1, enable, audit),
# "6.12-reboot" (after a block was overwritten on the host: load again, audit) or "6.1" (no
# ECDSA in the kernel: keyring load, status, enable explain it).
set -u
RV=rpm-verity
D=/data
step() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "STEP $name rc=$rc: $(echo "$out" | tr '\n' '|' | sed 's/|$//')"
}
mkdir -p /etc/rpm-verity/certs
case ${1:-} in
6.12-first)
    cp $D/ec.pem /etc/rpm-verity/certs/
    step status-before $RV status --json
    step keyring-load $RV keyring load
    step reqsig $RV keyring require-signatures on
    step enable $RV enable --root /mnt/self --all --json
    step audit $RV audit --root /mnt/self --json
    step measure fsverity measure /mnt/self/usr/share/ec/data.bin
    ;;
6.12-reboot)
    cp $D/ec.pem /etc/rpm-verity/certs/
    step keyring-load $RV keyring load
    step audit $RV audit --root /mnt/self --json
    ;;
6.1)
    cp $D/ec.pem $D/leaf.pem /etc/rpm-verity/certs/
    step status $RV status --json
    step status-text $RV status
    step load-self $RV keyring load --json $D/ec.pem
    step load-self-text $RV keyring load $D/ec.pem
    step load-leaf $RV keyring load --json $D/leaf.pem
    step enable-leaf $RV enable --root /mnt/leaf --all --json
    ;;
*)
    echo "unknown phase ${1:-}"; exit 2 ;;
esac
