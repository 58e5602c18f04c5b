//! `enable` and `audit` on the host (no fs-verity here): real rpm installs signed packages into
//! a root; the commands must read its rpmdb read-only, verify content in user space with
//! `--dry-run`, say clearly that the filesystem cannot do verity, and survive hostile rpmdbs
//! and roots whose symlinks point outside.

use verity_test_support::installed as support_enable;

fn bin() -> &'static str {
    verity_test_support::bin!()
}

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support_enable::*;

fn rv(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run rpm-verity")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// path → (status, digest) from an enable/audit JSON document.
fn statuses(doc: &serde_json::Value, key: &str) -> BTreeMap<String, (String, String)> {
    doc[key]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"].is_string())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["status"].as_str().unwrap().to_string(),
                    f["digest"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn mtimes(root: &Path) -> Vec<(String, i64)> {
    use std::os::unix::fs::MetadataExt;
    ELIGIBLE
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(&p[1..])).unwrap();
            (p.to_string(), m.mtime() * 1_000_000_000 + m.mtime_nsec())
        })
        .collect()
}

#[test]
fn enable_and_audit_on_a_host_root() {
    let td = tempfile::tempdir().unwrap();
    let l = installed_root(bin(), td.path(), &[]);
    let root = s(&l.root);
    let cert = s(&l.cert);
    // rpm leaves rpmdb.sqlite-wal/-shm behind; readers only touch the -shm read marks.
    let dbdir = l.root.join("var/lib/rpm");
    let db_files = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_name().to_string_lossy().ends_with("-shm"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let db_before = db_files(&dbdir);
    let times_before = mtimes(&l.root);

    // --dry-run verifies every eligible file's content against its signature in user space.
    let o = rv(&[
        "enable",
        "--root",
        root,
        "--all",
        "--dry-run",
        "--cert",
        cert,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = json(&o);
    let st = statuses(&doc, "files");
    assert_eq!(
        st.keys().cloned().collect::<Vec<_>>(),
        ELIGIBLE.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "{doc}"
    );
    for (p, (status, digest)) in &st {
        assert_eq!(status, "WOULD-ENABLE", "{p}: {doc}");
        let want = fsverity_digest(&l.root.join(&p[1..]));
        assert_eq!(format!("sha256:{digest}"), want, "{p}");
    }
    assert_eq!(doc["unsigned_packages"][0], "gamma-1.0-1.x86_64", "{doc}");
    assert_eq!(doc["skipped"]["config"], 1, "{doc}");
    assert_eq!(doc["skipped"]["ghost"], 1, "{doc}");

    // Without a trusted certificate a dry run cannot vouch for anything.
    let o = rv(&["enable", "--root", root, "alpha", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no trusted certificate"), "{}", text(&o));

    // A real enable on the host: the filesystem cannot do verity. One clear message, exit 3,
    // nothing changed.
    let o = rv(&["enable", "--root", root, "--all"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("cannot do fs-verity").count(),
        1,
        "{}",
        text(&o)
    );
    assert!(err.contains("7 files on it left unchanged"), "{}", text(&o));
    assert_eq!(mtimes(&l.root), times_before);

    // audit: every eligible file NOT-ENABLED (content checked), gamma UNSIGNED, exit 1.
    let o = rv(&["audit", "--root", root, "--cert", cert, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let doc = json(&o);
    let st = statuses(&doc, "findings");
    assert_eq!(st.len(), ELIGIBLE.len(), "{doc}");
    assert!(st.values().all(|(s, _)| s == "NOT-ENABLED"), "{doc}");
    assert!(doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["status"] == "UNSIGNED" && f["package"] == "gamma-1.0-1.x86_64"));

    // In text, a kernel without fs-verity is said once, not once per file, and each package
    // gets a summary line; -q keeps only problems, -v shows every file.
    let o = rv(&["audit", "--root", root, "--cert", cert]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(
            "rpm-verity: this kernel has no fs-verity support (CONFIG_FS_VERITY): no file can \
             be enabled; 7 files not enabled\n"
        ),
        "{out}"
    );
    assert!(!out.contains("NOT-ENABLED  /"), "{out}");
    assert!(!out.contains("rpm-verity enable"), "{out}");
    assert!(
        out.contains("alpha-1.0-1.x86_64: 4 files: 4 NOT-ENABLED\n"),
        "{out}"
    );
    assert!(
        out.contains("beta-1.0-1.x86_64: 3 files: 3 NOT-ENABLED\n"),
        "{out}"
    );
    let o = rv(&["audit", "--root", root, "--cert", cert, "-q"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("audit:") && !out.contains("4 files"), "{out}");
    assert!(out.contains("UNSIGNED     gamma-1.0-1.x86_64"), "{out}");
    let o = rv(&["audit", "--root", root, "--cert", cert, "-v", "alpha"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("NOT-ENABLED  /").count(), 4, "{out}");
    assert!(
        out.contains("audit: 4 files checked in 3 packages"),
        "{out}"
    );

    // Tamper: change one file, remove another, replace a third by a symlink.
    std::fs::write(l.root.join("usr/lib/beta/two.bin"), b"changed").unwrap();
    std::fs::remove_file(l.root.join("usr/lib/beta/three.bin")).unwrap();
    std::fs::remove_file(l.root.join("usr/share/alpha/empty")).unwrap();
    std::os::unix::fs::symlink("data.bin", l.root.join("usr/share/alpha/empty")).unwrap();
    let o = rv(&["audit", "--root", root, "--cert", cert]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("MODIFIED     /usr/lib/beta/two.bin"), "{out}");
    assert!(
        out.contains("MISSING      /usr/lib/beta/three.bin"),
        "{out}"
    );
    assert!(
        out.contains("MODIFIED     /usr/share/alpha/empty: is a symlink"),
        "{out}"
    );
    assert!(out.contains("UNSIGNED     gamma-1.0-1.x86_64"), "{out}");
    assert!(
        out.contains("audit: 7 files checked in 3 packages"),
        "{out}"
    );

    // --files-from - (the rpm file trigger): paths from stdin, directories and unowned paths
    // are not errors.
    let mut child = Command::new(bin())
        .args([
            "enable",
            "--root",
            root,
            "--files-from",
            "-",
            "--dry-run",
            "--cert",
            cert,
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"/usr/bin/alpha-tool\n/usr/share/alpha\n/usr/lib/beta/two.bin\n/not/owned\n/usr/share/gamma/file\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let doc = json(&o);
    let st = statuses(&doc, "files");
    assert_eq!(st.len(), 2, "{doc}");
    assert_eq!(st["/usr/bin/alpha-tool"].0, "WOULD-ENABLE");
    assert_eq!(st["/usr/lib/beta/two.bin"].0, "MODIFIED");
    assert_eq!(doc["not_owned"][0], "/not/owned");
    assert_eq!(doc["skipped"]["unsigned"], 1, "{doc}");

    // Positional paths and package names work the same way.
    let o = rv(&[
        "enable",
        "--root",
        root,
        "--dry-run",
        "--cert",
        cert,
        "/usr/bin/alpha-tool",
        "beta",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("dry run: 4 files: 1 would-enable, 1 modified, 2 missing")
            || t.contains("dry run: 4 files: 2 would-enable, 1 modified, 1 missing"),
        "{t}"
    );
    let o = rv(&[
        "enable",
        "--root",
        root,
        "--dry-run",
        "--cert",
        cert,
        "/usr/bin/alpha-tool",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("dry run: 1 file: 1 would-enable\n"),
        "{}",
        text(&o)
    );
    let o = rv(&["enable", "--root", root, "--dry-run", "nosuchpkg"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("package nosuchpkg is not installed"),
        "{}",
        text(&o)
    );

    // The database was only read.
    assert!(db_files(&dbdir) == db_before, "the rpmdb changed");
}

#[test]
fn hostile_rpmdbs_and_roots() {
    let td = tempfile::tempdir().unwrap();
    let l = installed_root(bin(), td.path(), &[]);
    let cert = s(&l.cert);

    // Garbage and truncated header blobs: named by row, no panic, other packages still done.
    let bad = td.path().join("bad");
    run(Command::new("cp").arg("-a").arg(&l.root).arg(&bad));
    {
        let c = rusqlite::Connection::open(bad.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
        c.execute(
            "INSERT INTO Packages (hnum, blob) VALUES (9999, x'00000001000000ff6761726261676521')",
            [],
        )
        .unwrap();
        let (hnum, blob): (i64, Vec<u8>) = c
            .query_row(
                "SELECT hnum, blob FROM Packages p WHERE hnum = (SELECT min(hnum) FROM Packages)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        c.execute(
            "UPDATE Packages SET blob = ?1 WHERE hnum = ?2",
            rusqlite::params![&blob[..blob.len() / 2], hnum],
        )
        .unwrap();
        c.execute(
            "INSERT INTO Packages (hnum, blob) VALUES (10000, 'text, not a blob')",
            [],
        )
        .unwrap();
        c.execute("INSERT INTO Packages (hnum, blob) VALUES (10001, x'')", [])
            .unwrap();
    }
    for args in [
        vec![
            "enable",
            "--root",
            s(&bad),
            "--all",
            "--dry-run",
            "--cert",
            cert,
        ],
        vec!["audit", "--root", s(&bad), "--cert", cert],
    ] {
        let o = rv(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        for row in ["hnum=9999", "hnum=10000", "hnum=10001", "hnum=1:"] {
            assert!(t.contains(row), "{row} not named: {t}");
        }
        assert!(!t.contains("panicked"), "{t}");
        // beta's files are still handled.
        assert!(
            t.contains("beta") || t.contains("would-enable") || t.contains("NOT-ENABLED"),
            "{t}"
        );
    }

    // Other backends: a clear refusal.
    for (file, name) in [("Packages", "bdb"), ("Packages.db", "ndb")] {
        let r = td.path().join(format!("root-{name}"));
        std::fs::create_dir_all(r.join("var/lib/rpm")).unwrap();
        std::fs::write(r.join("var/lib/rpm").join(file), b"\0\0\0\0 not ours").unwrap();
        let o = rv(&["audit", "--root", s(&r)]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            text(&o).contains(&format!("unsupported rpmdb backend {name}")),
            "{}",
            text(&o)
        );
    }
    let o = rv(&["audit", "--root", s(td.path())]);
    assert!(text(&o).contains("no rpm database found"), "{}", text(&o));

    // A root whose directories point outside it: absolute and relative escapes are refused,
    // the files outside are neither read nor touched.
    let evil = td.path().join("evil");
    run(Command::new("cp").arg("-a").arg(&l.root).arg(&evil));
    let outside = td.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for f in ["one.bin", "two.bin", "three.bin", "alpha-tool"] {
        std::fs::copy(l.root.join("usr/lib/beta/one.bin"), outside.join(f)).unwrap();
    }
    std::fs::remove_dir_all(evil.join("usr/lib/beta")).unwrap();
    std::os::unix::fs::symlink(&outside, evil.join("usr/lib/beta")).unwrap();
    std::fs::remove_dir_all(evil.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("../../outside", evil.join("usr/bin")).unwrap();
    assert!(
        evil.join("usr/bin/alpha-tool").exists(),
        "relative escape set up"
    );
    use std::os::unix::fs::MetadataExt;
    let before: Vec<(i64, i64)> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| {
            let m = e.unwrap().metadata().unwrap();
            (m.mtime(), m.atime())
        })
        .collect();
    for args in [
        vec![
            "enable",
            "--root",
            s(&evil),
            "--all",
            "--dry-run",
            "--cert",
            cert,
            "--json",
        ],
        vec!["enable", "--root", s(&evil), "--all", "--json"],
        vec!["audit", "--root", s(&evil), "--cert", cert, "--json"],
    ] {
        let o = rv(&args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let doc = json(&o);
        let key = if args[0] == "audit" {
            "findings"
        } else {
            "files"
        };
        let st = doc[key].as_array().unwrap();
        for p in [
            "/usr/lib/beta/one.bin",
            "/usr/lib/beta/two.bin",
            "/usr/bin/alpha-tool",
        ] {
            let f = st
                .iter()
                .find(|f| f["path"] == p)
                .unwrap_or_else(|| panic!("{p}: {doc}"));
            assert_eq!(f["status"], "ERROR", "{p}: {doc}");
            assert!(
                f["detail"]
                    .as_str()
                    .unwrap()
                    .contains("leads outside the root"),
                "{p}: {doc}"
            );
        }
    }
    let after: Vec<(i64, i64)> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| {
            let m = e.unwrap().metadata().unwrap();
            (m.mtime(), m.atime())
        })
        .collect();
    assert_eq!(before, after, "files outside the root were touched");
}

/// A file with more hard links than its package gives it (a link from outside the root, say)
/// is refused by `enable` (enabling would make the other name read-only too) and reported by
/// `audit`; the package's own hardlink sets are fine.
#[test]
fn hardlinks_the_package_does_not_explain() {
    let td = tempfile::tempdir().unwrap();
    let t = td.path();
    let (key, cert) = make_cert(t, "signer");
    let rpm = verity_test_support::rpmbuild::build_rpm_custom(
        t,
        "links",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/lib/links\n\
         head -c 9000 /dev/urandom > %{buildroot}/usr/lib/links/a\n\
         ln %{buildroot}/usr/lib/links/a %{buildroot}/usr/lib/links/b\n\
         head -c 7000 /dev/urandom > %{buildroot}/usr/lib/links/c\n",
        "%dir /usr/lib/links\n/usr/lib/links/a\n/usr/lib/links/b\n/usr/lib/links/c\n",
    );
    run(Command::new(bin())
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .arg(&rpm));
    let root = t.join("root");
    install_into(&root, &[&rpm]);
    let dir = root.join("usr/lib/links");
    let (r, c) = (s(&root), s(&cert));
    let dry = || {
        rv(&[
            "enable",
            "--root",
            r,
            "--all",
            "--dry-run",
            "--cert",
            c,
            "--json",
        ])
    };

    let o = dry();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st = statuses(&json(&o), "files");
    assert!(st.values().all(|(s, _)| s == "WOULD-ENABLE"), "{st:?}");
    assert_eq!(st.len(), 3, "{st:?}");

    // c gets a second name outside the root, the set {a, b} a third member.
    let outside = t.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::hard_link(dir.join("c"), outside.join("c")).unwrap();
    std::fs::hard_link(dir.join("a"), outside.join("a")).unwrap();
    let o = dry();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let doc = json(&o);
    let st = statuses(&doc, "files");
    for p in ["/usr/lib/links/a", "/usr/lib/links/b", "/usr/lib/links/c"] {
        assert_eq!(st[p].0, "HARDLINKED", "{p}: {doc}");
    }
    let detail = |doc: &serde_json::Value, key: &str, p: &str| {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .map(|f| f["detail"].as_str().unwrap().to_string())
            .unwrap()
    };
    let why = detail(&doc, "files", "/usr/lib/links/c");
    assert!(
        why.starts_with("has 2 hard links but its package gives it 1 name: ")
            && why.ends_with("; refused"),
        "{why}"
    );
    let why = detail(&doc, "files", "/usr/lib/links/a");
    assert!(
        why.contains("has 3 hard links but its package gives it 2 names"),
        "{why}"
    );

    // A real enable refuses them before trying (the rest: this filesystem has no verity).
    let o = rv(&["enable", "--root", r, "--all", "--cert", c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("HARDLINKED   /usr/lib/links/c: has 2 hard links"),
        "{}",
        text(&o)
    );

    let o = rv(&["audit", "--root", r, "--cert", c, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let doc = json(&o);
    let st = statuses(&doc, "findings");
    assert_eq!(st["/usr/lib/links/c"].0, "HARDLINKED", "{doc}");
    assert!(detail(&doc, "findings", "/usr/lib/links/c").contains("shares this inode"));
    assert_eq!(doc["summary"]["HARDLINKED"], 3, "{doc}");
}
