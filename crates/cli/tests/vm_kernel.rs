//! VM test: `fsverity::linux` against Debian's fs-verity kernel booted under qemu (TCG).
//!
//! Kept in its own test binary (`cargo test -p rpm-verity --test vm_kernel`): it downloads the
//! kernel once (tests/vm/setup.sh, cached), boots it twice (~5-10 s each) and needs qemu,
//! busybox, openssl, fsverity, keyctl and e2fsprogs on the host. Nothing here is mocked: the
//! inputs are made with openssl and fsverity-utils, the expectations come from them too.
use std::path::PathBuf;
use std::process::Command;

use verity_test_support::vm::{
    boot, der, fsverity_digest_alg as fsverity_digest, fsverity_sign as sign, make_cert, mkfs_ext4,
    pattern, repo_root, run, sha256_file, vm_script,
};

/// Build `crates/fsverity/examples/vm_probe.rs` into this test's target dir. Cargo releases
/// its build lock before running tests, so the nested build does not deadlock.
fn build_probe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/vm_kernel-HASH
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args([
            "build",
            "-q",
            "-p",
            "fsverity",
            "--example",
            "vm_probe",
            "--target-dir",
        ])
        .arg(target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    run(&mut cmd);
    let probe = profile_dir.join("examples/vm_probe");
    assert!(probe.is_file(), "{} not built", probe.display());
    probe
}

#[test]
fn linux_module_against_a_real_fs_verity_kernel() {
    let probe = build_probe();
    let td = tempfile::tempdir().unwrap();
    let t = td.path();
    let root = t.join("root");
    let data = t.join("data");
    let root2 = t.join("root2");
    for d in [&root, &data, &root2] {
        std::fs::create_dir(d).unwrap();
    }
    let files: [(&str, usize); 8] = [
        ("plain.bin", 100_000),
        ("plain512.bin", 70_000),
        ("signed.bin", 50_000),
        ("wrong.bin", 9_000),
        ("nocert.bin", 5_000),
        ("unsigned.bin", 4096),
        ("busy.bin", 12_345),
        ("bs1024.bin", 3000),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        std::fs::write(root.join(name), pattern(*len, i as u32)).unwrap();
    }
    std::fs::write(data.join("other.bin"), pattern(9_000, 99)).unwrap();
    std::fs::write(root2.join("noverity.bin"), pattern(777, 7)).unwrap();

    let (key, cert) = make_cert(t, "cert", "vm");
    let (key2, cert2) = make_cert(t, "cert2", "vm");
    der(&cert, &data.join("cert.der"));
    std::fs::copy(&cert, data.join("cert.pem")).unwrap();
    sign(
        &root.join("signed.bin"),
        &data.join("signed.sig"),
        &key,
        &cert,
    );
    sign(
        &data.join("other.bin"),
        &data.join("other.sig"),
        &key,
        &cert,
    );
    sign(
        &root.join("nocert.bin"),
        &data.join("nocert.sig"),
        &key2,
        &cert2,
    );
    std::fs::write(data.join("garbage.sig"), pattern(300, 5)).unwrap();

    let plain_digest = fsverity_digest(&root.join("plain.bin"), "sha256");
    let plain512_digest = fsverity_digest(&root.join("plain512.bin"), "sha512");
    let signed_digest = fsverity_digest(&root.join("signed.bin"), "sha256");
    let signed_sig = std::fs::read(data.join("signed.sig")).unwrap();
    let signed_sig_line = format!(
        "signature {} bytes sha256 {}",
        signed_sig.len(),
        sha256_file(&data.join("signed.sig"))
    );

    let img = t.join("verity.img");
    let img2 = t.join("noverity.img");
    mkfs_ext4(&root, &img, true, "32M");
    mkfs_ext4(&root2, &img2, false, "8M");

    let guest = vm_script("guests/kernel.sh");
    let probe_arg = format!("{}:/usr/local/bin/vm_probe", probe.display());
    let mut common: Vec<std::ffi::OsString> = vec!["--bin".into(), probe_arg.into()];
    for f in [
        "cert.der",
        "cert.pem",
        "signed.sig",
        "other.sig",
        "nocert.sig",
        "garbage.sig",
    ] {
        common.push("--file".into());
        common.push(data.join(f).into());
    }

    // --- first boot ----------------------------------------------------------------------------
    let mut args = common.clone();
    args.extend([
        "--disk".into(),
        img.clone().into(),
        "--disk".into(),
        img2.clone().into(),
    ]);
    args.extend([guest.clone().into(), "first".into()]);
    let s = boot(&args);

    assert!(s.ok("uname").starts_with("6."), "{}", s.ok("uname"));
    let support = s.ok("support");
    assert!(
        support.starts_with("builtin_signatures=true keyring=0x")
            && support.ends_with("require_signatures=false ext4_verity=true"),
        "{support}"
    );
    s.ok_eq("keys-empty", "0 keys");
    s.ok_eq("reqsig-initial", "0");

    s.ok_eq("enable-plain", "enabled");
    s.ok_eq("measure-plain", &plain_digest);
    s.ok_eq(
        "fsverity-measure-plain",
        &format!("{plain_digest} /mnt/plain.bin"),
    );
    s.ok_eq("is-verity-plain", "true");
    s.ok_eq("read-sig-plain", "no-signature");
    s.err("enable-plain-again", "AlreadyEnabled", 17);
    s.ok_eq("enable-sha512", "enabled");
    s.ok_eq("measure-sha512", &plain512_digest);
    s.ok_eq("is-verity-unenabled", "false");
    s.ok_eq("measure-unenabled", "not-verity");
    s.err("enable-bs1024", "InvalidArgument", 22);

    s.err("enable-signed-nocert", "CertNotInKeyring", 126);
    s.err("enable-other-cert", "CertNotInKeyring", 126);
    let key_line = s.ok("add-cert").to_string();
    assert!(key_line.starts_with("key "), "{key_line}");
    // The asymmetric key type has no update op: adding the same cert again makes a new key
    // that replaces the old one's link, so the keyring still holds exactly one.
    let key_line = s.ok("add-cert-again").to_string();
    assert!(key_line.starts_with("key "), "{key_line}");
    s.err("add-cert-pem", "CertificateNotDer", -1);
    s.err("add-cert-garbage", "BadCertificate", -1);
    let keys = s.ok("keys-loaded");
    assert!(
        keys.starts_with("1 keys|")
            && keys.contains(&format!("{key_line} asymmetric "))
            && keys.contains("rpm-verity vm cert"),
        "{keys}"
    );

    s.ok_eq("reqsig-on", "ok");
    s.ok_eq("reqsig-get", "1");
    s.err("enable-unsigned-required", "SignatureRequired", 1);
    s.ok_eq("enable-signed", "enabled");
    s.ok_eq("measure-signed", &signed_digest);
    s.ok_eq("read-sig-signed", &signed_sig_line);
    s.err("enable-wrong-content", "SignatureRejected", 129);
    s.err("enable-garbage-sig", "MalformedSignature", 74);
    s.err("enable-other-cert-loaded", "CertNotInKeyring", 126);
    s.err("enable-busy-writer", "FileBusy", 26);
    // rpm 4.18's plugin: enable through the O_WRONLY fd. ETXTBSY on 6.1, EBADF from 6.3 on.
    let (rc, out) = s.get("enable-busy-wrfd");
    assert_eq!(*rc, 1, "{out}");
    assert!(
        out.starts_with("error FileBusy errno=26") || out.starts_with("error NotReadable errno=9"),
        "{out}"
    );
    s.ok_eq("reqsig-off", "ok");
    s.err("enable-tmpfs", "FilesystemUnsupported", 25);
    s.err("measure-tmpfs", "FilesystemUnsupported", 25);
    s.err("enable-ext4-noverity", "NotEnabled", 95);
    s.ok_eq("is-verity-busy", "false");

    // --- second boot of the same image: empty keyring --------------------------------------------
    let mut args = common;
    args.extend(["--disk".into(), img.into(), guest.into(), "reboot".into()]);
    let s = boot(&args);
    s.ok_eq("keys-after-reboot", "0 keys");
    s.ok_eq("measure-plain-reboot", &plain_digest);
    s.err("measure-signed-reboot", "CertNotInKeyring", 126);
    assert!(s.ok("add-cert-reboot").starts_with("key "));
    s.ok_eq("measure-signed-after-load", &signed_digest);
    s.ok_eq("read-sig-reboot", &signed_sig_line);
    let (rc, out) = s.get("write-verity");
    assert_ne!(*rc, 0, "appending to a verity file must fail: {out}");
}
