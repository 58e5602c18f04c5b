#!/bin/bash
# Runs as a systemd service in the real-boot test's Debian root (rpm-verity-vm-check.service,
# started once multi-user.target is reached): checks the booted system and writes the results
# to the second serial port (/dev/ttyS1), framed like tests/vm/init's, then powers off.
# `STEP name rc=N: output` lines (newlines in the output become "|"), `DMESG line`,
# `JOURNAL line`, `JSON name {...}`.
# The results are gathered in a file and written in one go: closing the port drains the UART,
# so nothing is lost to the poweroff.
res=/run/rpm-verity-vm-check.out
: >"$res"
step() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf 'STEP %s rc=%d: %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' '|')" >>"$res"
}
step system-state timeout 300 systemctl is-system-running --wait
step multi-user systemctl is-active multi-user.target
step failed-units systemctl list-units --state=failed --no-legend --plain
step signed-runs /usr/bin/true
step signed-lib-runs /usr/bin/ls /
cp /usr/bin/true /run/true-copy
step copy-tmpfs /run/true-copy
cp /usr/bin/true /root/true-copy
step copy-ext4 /root/true-copy
# From the unsigned package "planted" (installed by rpm, never verity-enabled).
step planted-exec /usr/local/bin/planted-true
step planted-script /usr/local/bin/planted-script
step planted-lib env LD_LIBRARY_PATH=/usr/local/lib/planted /usr/bin/true
if [ -x /usr/bin/rpm-verity ]; then
    step keyring rpm-verity keyring list
    printf 'JSON lockdown-status %s\n' "$(rpm-verity lockdown status --json 2>/dev/null | tr -d '\n')" >>"$res"
    step lockdown-status rpm-verity lockdown status
    printf 'JSON audit-lockdown %s\n' "$(rpm-verity audit --lockdown --json 2>/dev/null | tr -d '\n')" >>"$res"
fi
step lsm cat /sys/kernel/security/lsm
step ipe-enforce cat /sys/kernel/security/ipe/enforce
step ipe-policies ls /sys/kernel/security/ipe/policies
step cmdline cat /proc/cmdline
dmesg | sed 's/^/DMESG /' >>"$res"
journalctl -b -o short-monotonic --no-pager 2>&1 | grep -iE 'rpm-verity|ipe|audit' | sed 's/^/JOURNAL /' >>"$res"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
    echo "=== rpm-verity-vm: begin ==="
    cat "$res"
    echo "=== rpm-verity-vm: end rc=0 ==="
} >/dev/ttyS1
systemctl poweroff --no-block
