//! `rpm-verity keyring` and `status` on this host, whose kernel has no fs-verity: commands
//! that need the kernel must say so plainly and fail; `status` must still report everything it
//! can. The real-kernel behaviour is in vm_boot.rs.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rpm-verity")
}

fn rv(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run rpm-verity")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cert(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-keyout", "/dev/null", "-subj"])
        .arg(format!("/CN={name}/O=Throwaway"))
        .arg("-out")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    p
}

/// Guard: these tests describe a kernel without fs-verity; on one with it they would be wrong,
/// so fail loudly rather than pass for the wrong reason.
fn assert_host_has_no_fs_verity() {
    assert!(
        !Path::new("/proc/sys/fs/verity").exists(),
        "this test expects a host kernel without fs-verity built-in signatures"
    );
}

const NO_KERNEL: &str = "this kernel has no fs-verity built-in signature support";

#[test]
fn load_and_list_fail_clearly_without_kernel_support() {
    assert_host_has_no_fs_verity();
    let td = tempfile::tempdir().unwrap();
    let c = cert(td.path(), "host test");
    for args in [
        vec!["keyring", "load", c.to_str().unwrap()],
        vec!["keyring", "load", "--dir", td.path().to_str().unwrap()],
        vec!["keyring", "list"],
        vec!["keyring", "list", "--json"],
    ] {
        let out = rv(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.starts_with("rpm-verity: error: ") && err.contains(NO_KERNEL),
            "{args:?}: {err}"
        );
        assert!(err.contains("CONFIG_FS_VERITY_BUILTIN_SIGNATURES"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}: no partial output");
    }
}

#[test]
fn require_signatures_fails_clearly_without_kernel_support() {
    assert_host_has_no_fs_verity();
    for args in [
        vec!["keyring", "require-signatures"],
        vec!["keyring", "require-signatures", "on"],
    ] {
        let out = rv(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("no fs.verity.require_signatures")
                && err.contains("/proc/sys/fs/verity/require_signatures is missing"),
            "{err}"
        );
    }
    // Bad words are refused by the argument parser before anything else.
    let out = rv(&["keyring", "require-signatures", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected on or off"));
}

#[test]
fn load_reports_missing_files_and_directories() {
    let out = rv(&["keyring", "load", "--dir", "/nonexistent/certs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("certificate directory /nonexistent/certs"),
        "{}",
        text(&out.stderr)
    );
    let out = rv(&["keyring", "load", "/nonexistent/cert.pem"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/cert.pem"));
}

#[test]
fn status_reports_an_unsupported_kernel_and_the_configured_certs() {
    assert_host_has_no_fs_verity();
    let td = tempfile::tempdir().unwrap();
    let certs = td.path().join("certs");
    fs::create_dir(&certs).unwrap();
    cert(&certs, "status test");
    fs::write(certs.join("notes.txt"), "not a cert").unwrap();

    let out = rv(&["status", "--certs-dir", certs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("built-in signatures:                   no"),
        "{t}"
    );
    assert!(
        t.contains(".fs-verity keyring:                    missing"),
        "{t}"
    );
    assert!(
        t.contains("fs.verity.require_signatures:          unavailable"),
        "{t}"
    );
    assert!(
        t.contains(
            "status test.pem: CN=status test, O=Throwaway (RSA): unknown (keyring unreadable)"
        ) || t.contains("status test.pem: O=Throwaway, CN=status test (RSA): unknown"),
        "{t}"
    );
    assert!(t.contains("notes.txt: skipped"), "{t}");
    assert!(
        t.contains("problems:\n  - the kernel has no fs-verity"),
        "{t}"
    );

    let out = rv(&[
        "status",
        "--json",
        "--certs-dir",
        certs.to_str().unwrap(),
        td.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernel"]["builtin_signatures"], false, "{v}");
    assert_eq!(v["kernel"]["keyring_present"], false, "{v}");
    assert!(v["kernel"]["require_signatures"].is_null(), "{v}");
    assert!(
        v["keyring"]["error"].as_str().unwrap().contains(NO_KERNEL),
        "{v}"
    );
    assert_eq!(v["certs"]["certs"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["certs"]["certs"][0]["loaded"].is_null(), "{v}");
    assert_eq!(v["certs"]["certs"][0]["key"], "RSA", "{v}");
    assert!(v["certs"]["skipped"][0]["reason"].as_str().is_some(), "{v}");
    // This host's filesystem answers the probe with EOPNOTSUPP (ext4: the kernel lacks
    // fs-verity) or ENOTTY (a filesystem without verity at all).
    let p = &v["path"];
    assert!(p["fs_type"].as_str().is_some(), "{v}");
    match p["verity"].as_str().unwrap() {
        "kernel-unsupported" => assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("kernel lacks fs-verity"),
            "{v}"
        ),
        "unsupported" => assert!(p["detail"].as_str().unwrap().contains("ENOTTY"), "{v}"),
        other => panic!("unexpected verdict {other}: {v}"),
    }
    assert!(!v["problems"].as_array().unwrap().is_empty());
}

#[test]
fn status_of_tmpfs_and_of_a_file() {
    let out = rv(&["status", "--json", "/dev/shm"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"]["fs_type"], "tmpfs", "{v}");
    assert_eq!(v["path"]["verity"], "unsupported", "{v}");
    assert!(v["path"]["file_verity"].is_null());

    let td = tempfile::tempdir().unwrap();
    let f = td.path().join("plain.txt");
    fs::write(&f, "x").unwrap();
    let out = rv(&["status", "--json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"]["file_verity"], false, "{v}");
    // The probe creates nothing and changes nothing.
    assert_eq!(fs::read_dir(td.path()).unwrap().count(), 1);
    assert_eq!(fs::read(&f).unwrap(), b"x");

    let out = rv(&["status", "/nonexistent/path"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/path"));
}
