//! The file trigger of `dist/rpm-verity.spec` when it cannot work: `rpm --root DIR -i` into a
//! root without /proc mounted. rpm runs the trigger chrooted there; it must say on stderr that
//! nothing was protected and fail, so that rpm reports the scriptlet as failed, instead of
//! exiting 0 in silence. No fs-verity is needed for that, so this runs on the host.

use std::path::Path;
use std::process::Command;

use verity_test_support::installed::{make_cert, run, s};
use verity_test_support::rpmbuild;

fn bin() -> &'static str {
    verity_test_support::bin!()
}

#[test]
fn trigger_without_proc_says_so_and_fails() {
    let td = tempfile::tempdir().unwrap();
    let t = td.path();
    let stripped = t.join("rpm-verity");
    verity_test_support::strip_debug(Path::new(bin()), &stripped);
    let rv_rpm = rpmbuild::build_rpm_verity_package(t, &stripped);

    // A signed package whose files the trigger should have enabled.
    let (key, cert) = make_cert(t, "trigger");
    let pkg = rpmbuild::build_rpm_custom(
        t,
        "payload",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/share/payload\n\
         head -c 5000 /dev/urandom > %{buildroot}/usr/share/payload/data\n",
        "/usr/share/payload/data\n",
    );
    run(Command::new(bin())
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .arg(&pkg));

    // The root has a shell for the scriptlets (a static busybox) and nothing else: no /proc.
    let root = t.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    run(Command::new("cp")
        .arg("/usr/bin/busybox")
        .arg(root.join("bin/sh")));
    assert!(!root.join("proc").exists());
    run(Command::new("rpmdb").args(["--root", s(&root), "--dbpath", "/var/lib/rpm", "--initdb"]));
    let out = Command::new("rpm")
        .args([
            "--root",
            s(&root),
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--nodeps",
        ])
        .args(["--define", "__transaction_fsverity %{nil}"])
        .arg(&rv_rpm)
        .arg(&pkg)
        .output()
        .expect("run rpm");
    let all = format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rpm-verity: /proc is not mounted where this transaction runs")
            && stderr.contains("fs-verity was NOT enabled"),
        "{all}"
    );
    assert!(
        stderr.contains("%transfiletriggerin(rpm-verity-")
            && stderr.contains("scriptlet failed, exit status 1"),
        "{all}"
    );
    // Both packages are installed all the same: the trigger never undoes a transaction.
    assert!(
        Path::new(&root.join("usr/share/payload/data")).is_file(),
        "{all}"
    );
    assert!(root.join("usr/bin/rpm-verity").is_file(), "{all}");
}
