//! `rpm-verity lockdown policy` against openssl, `lockdown apply`'s refusals of bad input
//! before anything reaches the kernel, and `audit --lockdown` on an installed root. The kernel
//! side is in vm_lockdown.rs.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use verity_test_support::installed::{install_into, make_cert, run, s};
use verity_test_support::rpmbuild as rpmsupport;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rpm-verity")
}

fn rv(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn policy_args<'a>(cert: &'a Path, key: &'a Path) -> Vec<&'a str> {
    vec![
        "lockdown",
        "policy",
        "--signer-cert",
        s(cert),
        "--signer-key",
        s(key),
    ]
}

/// The text openssl finds inside a signed policy (signature checked against the certificate
/// the PKCS#7 carries; `-noverify` only skips the chain to a CA).
fn openssl_content(p7b: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("content.txt");
    run(Command::new("openssl")
        .args([
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "der",
            "-noverify",
            "-in",
        ])
        .arg(p7b)
        .arg("-out")
        .arg(&out));
    fs::read(out).unwrap()
}

#[test]
fn policy_is_signed_exactly_as_openssl_smime_signs_it() {
    let t = tempfile::tempdir().unwrap();
    let (key, cert) = make_cert(t.path(), "pol");
    let p7b = t.path().join("p.p7b");
    let mut args = policy_args(&cert, &key);
    args.extend([
        "--name",
        "site_lock",
        "--version",
        "1.2.3",
        "--allow-initramfs",
    ]);
    args.extend(["--print", "-o", s(&p7b)]);
    let out = run(Command::new(bin()).args(&args));
    let text = out.stdout;
    assert_eq!(
        String::from_utf8_lossy(&text),
        "policy_name=site_lock policy_version=1.2.3\nDEFAULT action=ALLOW\n\
         DEFAULT op=EXECUTE action=DENY\nop=EXECUTE boot_verified=TRUE action=ALLOW\n\
         op=EXECUTE fsverity_signature=TRUE action=ALLOW\n"
    );
    assert_eq!(openssl_content(&p7b, t.path()), text);
    // The reference form of ipe.md: RSA PKCS#1 v1.5 is deterministic, so the bytes must match.
    let pol = t.path().join("p.pol");
    fs::write(&pol, &text).unwrap();
    let reference = t.path().join("ref.p7b");
    run(Command::new("openssl")
        .args([
            "smime",
            "-sign",
            "-noattr",
            "-nodetach",
            "-nosmimecap",
            "-binary",
        ])
        .args([
            "-outform",
            "der",
            "-in",
            s(&pol),
            "-signer",
            s(&cert),
            "-inkey",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&reference));
    assert_eq!(fs::read(&reference).unwrap(), fs::read(&p7b).unwrap());
    // And its structure, as openssl reads it: attached data, no signed attributes.
    let dump = run(Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "der", "-in"])
        .arg(&p7b))
    .stdout;
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("signedAttrs:\n          <ABSENT>"), "{dump}");
    assert!(
        dump.contains("eContent: \n        0000 - 70 6f 6c 69"),
        "{dump}"
    );
}

#[test]
fn ecdsa_policy_verifies_with_openssl_and_digest_rules_name_the_files() {
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("ec.key");
    let cert = t.path().join("ec.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ec policy",
            "-keyout",
            s(&key),
        ])
        .arg("-out")
        .arg(&cert));
    let allowed = t.path().join("allowed.bin");
    fs::write(&allowed, vec![7u8; 10000]).unwrap();
    let p7b = t.path().join("ec.p7b");
    let mut args = policy_args(&cert, &key);
    args.extend(["--allow-digest", s(&allowed), "--print", "-o", s(&p7b)]);
    let text = run(Command::new(bin()).args(&args)).stdout;
    let digest =
        String::from_utf8(run(Command::new("fsverity").arg("digest").arg(&allowed)).stdout)
            .unwrap();
    let digest = digest.split_whitespace().next().unwrap().to_string();
    let rule = format!("op=EXECUTE fsverity_digest={digest} action=ALLOW\n");
    assert!(
        String::from_utf8_lossy(&text).ends_with(&rule),
        "{}",
        String::from_utf8_lossy(&text)
    );
    assert!(digest.starts_with("sha256:"));
    assert_eq!(openssl_content(&p7b, t.path()), text);
}

#[test]
fn a_key_that_does_not_match_the_certificate_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (key, cert_a) = make_cert(t.path(), "a");
    let (_, other) = make_cert(t.path(), "b");
    let p7b = t.path().join("p.p7b");
    let mut args = policy_args(&other, &key);
    args.extend(["-o", s(&p7b)]);
    let out = rv(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match certificate"),
        "{}",
        stderr(&out)
    );
    assert!(!p7b.exists());
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        4,
        "a temporary file was left"
    );
    let mut args = policy_args(&cert_a, &key);
    args.extend(["--name", "a/b", "--print"]);
    let out = rv(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A stand-in securityfs with IPE in it: a refused file must leave `new_policy` untouched.
fn fake_securityfs(dir: &Path) -> PathBuf {
    let sfs = dir.join("securityfs");
    fs::create_dir_all(sfs.join("ipe/policies")).unwrap();
    fs::write(sfs.join("lsm"), "capability,ipe").unwrap();
    fs::write(sfs.join("ipe/new_policy"), "").unwrap();
    fs::write(sfs.join("ipe/enforce"), "1").unwrap();
    sfs
}

#[test]
fn apply_refuses_bad_policy_files_before_touching_the_kernel() {
    let t = tempfile::tempdir().unwrap();
    let (key, cert) = make_cert(t.path(), "pol");
    let certs = t.path().join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(&cert, certs.join("files.pem")).unwrap();
    let sfs = fake_securityfs(t.path());
    let good = t.path().join("good.p7b");
    let mut args = policy_args(&cert, &key);
    args.extend(["-o", s(&good)]);
    run(Command::new(bin()).args(&args));
    let bytes = fs::read(&good).unwrap();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            bytes[..bytes.len() - 10].to_vec(),
            "is not a signed IPE policy",
        ),
        ("empty", Vec::new(), "is not a signed IPE policy"),
        (
            "oversized",
            {
                let mut b = bytes.clone();
                b.resize(4 << 20, 0);
                b
            },
            "more than the 4194303 bytes the kernel accepts",
        ),
        (
            "text",
            b"policy_name=x policy_version=0.0.1\nDEFAULT action=ALLOW\n".to_vec(),
            "is not a signed IPE policy",
        ),
    ];
    // Corrupt the policy text's header inside an intact structure: `policy_name=` becomes
    // `policy_nbme=`, which the kernel would refuse after the signature check.
    let mut header = bytes.clone();
    let at = header
        .windows(12)
        .position(|w| w == b"policy_name=")
        .unwrap();
    header[at + 8] = b'b';
    cases.push((
        "header",
        header,
        "is not `policy_name=NAME policy_version=A.B.C`",
    ));
    for (name, data, words) in cases {
        let f = t.path().join(format!("{name}.p7b"));
        fs::write(&f, data).unwrap();
        let out = rv(&[
            "lockdown",
            "apply",
            s(&f),
            "--certs",
            s(&certs),
            "--securityfs",
            s(&sfs),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(err.contains(s(&f)) && err.contains(words), "{name}: {err}");
        assert_eq!(fs::read(sfs.join("ipe/new_policy")).unwrap(), b"", "{name}");
    }
    // No certificates to load: refused too, before the kernel.
    let empty = t.path().join("no-certs");
    fs::create_dir_all(&empty).unwrap();
    let out = rv(&[
        "lockdown",
        "apply",
        s(&good),
        "--certs",
        s(&empty),
        "--securityfs",
        s(&sfs),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no usable certificate in"),
        "{}",
        stderr(&out)
    );
    // A securityfs without IPE.
    fs::write(sfs.join("lsm"), "capability,apparmor").unwrap();
    let out = rv(&[
        "lockdown",
        "apply",
        s(&good),
        "--certs",
        s(&certs),
        "--securityfs",
        s(&sfs),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("this kernel has no IPE"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(sfs.join("ipe/new_policy")).unwrap(), b"");
}

#[test]
fn audit_lockdown_lists_exactly_what_would_be_refused() {
    let t = tempfile::tempdir().unwrap();
    let (key, cert) = make_cert(t.path(), "files");
    let build = t.path().join("build");
    fs::create_dir_all(&build).unwrap();
    let signed = rpmsupport::build_rpm_custom(
        &build,
        "tools",
        "w9.gzdio",
        "mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib64 %{buildroot}/usr/libexec %{buildroot}/usr/share/doc/tools\n\
         cp /usr/bin/true %{buildroot}/usr/bin/tool\n\
         cp /usr/bin/true %{buildroot}/usr/lib64/libtool.so.1\n\
         printf '#!/bin/sh\\necho helper\\n' > %{buildroot}/usr/libexec/helper\n\
         printf '#!/bin/sh\\necho other\\n' > %{buildroot}/usr/libexec/other\n\
         chmod 0755 %{buildroot}/usr/libexec/helper %{buildroot}/usr/libexec/other\n\
         printf 'docs\\n' > %{buildroot}/usr/share/doc/tools/README\n",
        "/usr/bin/tool\n/usr/lib64/libtool.so.1\n/usr/libexec/helper\n/usr/libexec/other\n/usr/share/doc/tools/README\n",
    );
    let unsigned = rpmsupport::build_rpm_custom(
        &build,
        "plain",
        "w9.gzdio",
        "mkdir -p %{buildroot}/usr/sbin\ncp /usr/bin/true %{buildroot}/usr/sbin/plain-tool\n",
        "/usr/sbin/plain-tool\n",
    );
    run(Command::new(bin())
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .arg(&signed));
    let root = t.path().join("root");
    install_into(&root, &[&signed, &unsigned]);
    let audit = |root: &Path| {
        rv(&[
            "audit",
            "--lockdown",
            "--json",
            "--root",
            s(root),
            "--cert",
            s(&cert),
        ])
    };
    let listed = |out: &Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut paths: Vec<String> = v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["files"].as_array().unwrap().clone())
            .chain(v["unowned"].as_array().unwrap().iter().cloned())
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        paths.sort();
        paths
    };
    // Before anything is planted: only the unsigned package's program.
    let out = audit(&root);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(listed(&out), ["/usr/sbin/plain-tool"]);

    // Three unsigned executables and a library planted, one signed script modified, and
    // files that are not executable (by content) planted beside them.
    let plant = |p: &str, data: &[u8]| {
        let f = root.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, data).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    };
    let elf = fs::read("/usr/bin/true").unwrap();
    plant("usr/bin/planted", &elf);
    plant("usr/sbin/planted.sh", b"#!/bin/sh\necho planted\n");
    plant("usr/libexec/sub/planted-helper", &elf);
    plant("usr/lib64/libplanted.so.1", &elf);
    plant("usr/bin/notes.txt", b"just text\n");
    plant("usr/lib64/data.bin", b"\x00\x01binary but not ELF");
    plant("usr/libexec/helper", b"#!/bin/sh\necho changed\n");
    let out = audit(&root);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        listed(&out),
        [
            "/usr/bin/planted",
            "/usr/lib64/libplanted.so.1",
            "/usr/libexec/helper",
            "/usr/libexec/sub/planted-helper",
            "/usr/sbin/plain-tool",
            "/usr/sbin/planted.sh",
        ]
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "offline");
    assert_eq!(v["refused"], 6);
    // tool, libtool, helper, other, plain-tool + the four planted
    assert_eq!(v["executables"], 9);
    let text = String::from_utf8(
        rv(&[
            "audit",
            "--lockdown",
            "--root",
            s(&root),
            "--cert",
            s(&cert),
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        text.contains("tools-1.0-1.x86_64: 1 file\n  /usr/libexec/helper (script): modified"),
        "{text}"
    );
    assert!(text.contains("not owned by any package: 4 files"), "{text}");
    assert!(
        text.contains("6 of 9 executable files would be refused execution"),
        "{text}"
    );

    // A root where everything executable is signed and intact passes.
    let clean = t.path().join("clean");
    install_into(&clean, &[&signed]);
    let out = audit(&clean);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(listed(&out), Vec::<String>::new());
}
