//! `rpm-verity sign --repo` on a real repository: packages built with rpmbuild, metadata made
//! with createrepo_c (Debian `createrepo-c`), and Debian's `dnf` as the client that checks the
//! package checksums in the metadata against the files it installs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use verity_test_support::rpmbuild::build_rpm_custom;
use verity_test_support::{openssl, run, s};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rpm-verity")
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn key_and_cert(dir: &Path) -> (PathBuf, PathBuf) {
    openssl::rsa_key_cert(dir, "repo", 2048, "repo test")
}

/// Three binary packages (one with several files, a directory and a symlink) and a source
/// package, in `repo/` (with a subdirectory, as Koji and Pungi lay repositories out), made a
/// repository by createrepo_c.
fn make_repo(t: &Path) -> PathBuf {
    let repo = t.join("repo");
    fs::create_dir_all(repo.join("Packages/b")).unwrap();
    let specs = [
        (
            "rva",
            "mkdir -p %{buildroot}/opt/rva\nprintf 'a\\n' > %{buildroot}/opt/rva/a.txt\n",
            "/opt/rva/a.txt\n",
        ),
        (
            "rvb",
            "mkdir -p %{buildroot}/opt/rvb/d\nhead -c 100000 /dev/urandom > %{buildroot}/opt/rvb/r.bin\n\
             printf '#!/bin/sh\\necho b\\n' > %{buildroot}/opt/rvb/b.sh\nln -s b.sh %{buildroot}/opt/rvb/l\n",
            "%dir /opt/rvb\n%dir /opt/rvb/d\n/opt/rvb/r.bin\n/opt/rvb/b.sh\n/opt/rvb/l\n",
        ),
        (
            "rvc",
            "mkdir -p %{buildroot}/opt/rvc\nyes c | head -c 50000 > %{buildroot}/opt/rvc/c.txt\n",
            "/opt/rvc/c.txt\n",
        ),
    ];
    for (i, (name, install, files)) in specs.iter().enumerate() {
        let rpm = build_rpm_custom(t, name, "w19.zstdio", install, files);
        let sub = if i == 1 { "Packages/b" } else { "Packages" };
        fs::copy(&rpm, repo.join(sub).join(rpm.file_name().unwrap())).unwrap();
    }
    // A real source package, from the spec build_rpm_custom wrote.
    let top = t.join("top-rva");
    run(Command::new("rpmbuild")
        .arg("-bs")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg(top.join("SPECS/rva.spec")));
    let srpm = fs::read_dir(top.join("SRPMS"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::copy(&srpm, repo.join("Packages/rva-1.0-1.src.rpm")).unwrap();
    run(Command::new("createrepo_c").arg("--quiet").arg(&repo));
    repo
}

fn files_under(dir: &Path, suffix: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn sign_repo(repo: &Path, key: &Path, cert: &Path) -> serde_json::Value {
    let out = run(Command::new(bin()).args([
        "sign",
        "--json",
        "--key",
        s(key),
        "--cert",
        s(cert),
        "--repo",
        s(repo),
    ]));
    serde_json::from_slice(&out.stdout).expect("sign --json prints JSON")
}

/// `dnf install` of `names` from `repo` into a fresh root, non-interactively and touching
/// nothing of the host's dnf setup: no system repositories, a private cache, no GPG (the
/// packages carry no OpenPGP signature; the checksums in the metadata are what is checked).
/// Debian's rpm looks for plugins in /usr/lib64/rpm-plugins, which does not exist, so dnf's
/// rpm loads no fs-verity plugin.
fn dnf_install(t: &Path, tag: &str, repo: &Path, names: &[&str]) -> Output {
    let root = t.join(format!("root-{tag}"));
    let cache = t.join(format!("cache-{tag}"));
    let mut cmd = Command::new("dnf");
    cmd.args(["-y", "-q", "--installroot", s(&root)])
        .arg("--setopt=reposdir=/dev/null")
        .arg(format!("--setopt=cachedir={}", cache.display()))
        .arg("--setopt=install_weak_deps=False")
        .arg(format!("--repofrompath=rv,{}", repo.display()))
        .args(["--repo=rv", "--nogpgcheck", "--releasever=1", "install"])
        .args(names);
    output(&mut cmd)
}

#[test]
fn sign_repo_then_dnf_installs_and_second_run_signs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let repo = make_repo(t);
    let (key, cert) = key_and_cert(t);
    let plain = t.join("plain");
    run(Command::new("cp").arg("-a").arg(&repo).arg(&plain));
    let srpm_before = files_under(&repo, ".src.rpm");
    assert_eq!(srpm_before.len(), 1);

    let first = sign_repo(&repo, &key, &cert);
    assert_eq!(first["done"], 3, "{first:#}");
    assert_eq!(first["skipped"], 0, "{first:#}");
    assert_eq!(first["failed"], 0, "{first:#}");
    assert_eq!(first["metadata"]["refreshed"], true, "{first:#}");
    assert_eq!(
        files_under(&repo, ".src.rpm"),
        srpm_before,
        "source package changed"
    );

    let out = dnf_install(t, "signed", &repo, &["rva", "rvb", "rvc"]);
    assert!(
        out.status.success(),
        "dnf refused the signed repository:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let root = t.join("root-signed");
    assert_eq!(fs::read(root.join("opt/rva/a.txt")).unwrap(), b"a\n");
    assert!(root.join("opt/rvb/r.bin").is_file());
    assert!(root.join("opt/rvc/c.txt").is_file());

    let signed = files_under(&repo, ".x86_64.rpm");
    assert_eq!(signed.len(), 3);
    for pkg in signed.keys() {
        run(Command::new(bin()).args(["verify", "--cert", s(&cert), s(pkg)]));
    }

    // Second run: nothing to sign, every package byte for byte as it was.
    let second = sign_repo(&repo, &key, &cert);
    assert_eq!(second["done"], 0, "{second:#}");
    assert_eq!(second["skipped"], 3, "{second:#}");
    for p in second["packages"].as_array().unwrap() {
        assert_eq!(p["status"], "skipped", "{p:#}");
        assert!(
            p["error"]
                .as_str()
                .unwrap()
                .starts_with("already signed by"),
            "{p:#}"
        );
    }
    assert_eq!(files_under(&repo, ".rpm").len(), 4);
    assert_eq!(
        files_under(&repo, ".x86_64.rpm"),
        signed,
        "second run changed a package"
    );
    assert_eq!(files_under(&repo, ".src.rpm"), srpm_before);

    // Without the refresh (plain `sign` on the packages of a copy), the metadata's checksums
    // no longer match and dnf refuses: what the test above would see if --repo did not refresh.
    let pkgs: Vec<PathBuf> = files_under(&plain, ".x86_64.rpm").into_keys().collect();
    run(Command::new(bin())
        .args(["sign", "-q", "--key", s(&key), "--cert", s(&cert)])
        .args(&pkgs));
    let out = dnf_install(t, "stale", &plain, &["rva"]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "dnf installed from stale metadata:\n{text}"
    );
    assert!(text.contains("incorrect checksum"), "{text}");
}

/// Another certificate: the packages are signed again (the resumption is by certificate, not
/// by "has some signature"), and a missing createrepo_c is a clear error after signing.
#[test]
fn other_certificate_resigns_and_missing_createrepo_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let repo = make_repo(t);
    let (key, cert) = key_and_cert(t);
    let other = t.join("other");
    fs::create_dir(&other).unwrap();
    let (key2, cert2) = key_and_cert(&other);
    let first = sign_repo(&repo, &key, &cert);
    assert_eq!(first["done"], 3, "{first:#}");

    // PATH without createrepo_c: the packages are signed, the run fails and says why.
    let empty = t.join("empty-path");
    fs::create_dir(&empty).unwrap();
    let out = output(Command::new(bin()).env("PATH", &empty).args([
        "sign",
        "-q",
        "--key",
        s(&key2),
        "--cert",
        s(&cert2),
        "--repo",
        s(&repo),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("createrepo_c is not installed"), "{err}");
    assert!(err.contains(s(&repo)), "{err}");
    for pkg in files_under(&repo, ".x86_64.rpm").keys() {
        run(Command::new(bin()).args(["verify", "--cert", s(&cert2), s(pkg)]));
    }
    // The stale metadata is what dnf sees until a run refreshes it; that next run signs
    // nothing and repairs it.
    let out = dnf_install(t, "stale", &repo, &["rvc"]);
    assert!(!out.status.success());
    let again = sign_repo(&repo, &key2, &cert2);
    assert_eq!(
        (again["done"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(3))
    );
    let out = dnf_install(t, "repaired", &repo, &["rvc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not a repository: a clear error naming the directory.
    let out = output(Command::new(bin()).args([
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--repo",
        s(&other),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no repodata/"), "{err}");
}
