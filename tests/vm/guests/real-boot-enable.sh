# Guest side of the real-boot test's preparation boot (tests/vm/run.sh --kernel 6.12): the root
# installed from signed RPMs is on /dev/vda (mounted at /mnt); load the file-signing certificate
# and enable fs-verity on every installed file with its signature, as the rpm file trigger
# would have done had the packages been installed on the running system.
rpm-verity keyring load /data/files.pem >/dev/null
echo "STEP keyring-load rc=$?:"
out=$(rpm-verity enable --all --root /mnt --json 2>&1)
rc=$?
echo "STEP enable rc=$rc: $(printf '%s' "$out" | tr '\n' '|')"
