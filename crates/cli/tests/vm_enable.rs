//! VM test: `rpm-verity enable`/`audit` on Debian's fs-verity kernel (qemu TCG, tests/vm).
//!
//! The root is installed on the host by the real rpm from packages signed with `rpm-verity
//! sign`, put into an ext4 `-O verity` image, and booted twice: first with the cert loaded and
//! `require_signatures=1` (enable, measure, mtimes, audit, escaping root, ext4 without verity,
//! tmpfs, then tampering by rename/replace), then — after a data block was overwritten in the
//! image on the host — without the cert (audit says so, `keyring load` fixes it, audit finds
//! CORRUPTED/SWAPPED/MODIFIED/NOT-ENABLED exactly where they were made).

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::Command;

use verity_test_support::installed::*;
use verity_test_support::vm::{boot, der, mkfs_ext4 as mkfs, overwrite_block, vm_script};

fn bin() -> &'static str {
    verity_test_support::bin!()
}

#[test]
fn enable_and_audit_on_a_real_fs_verity_kernel() {
    let td = tempfile::tempdir().unwrap();
    let t = td.path();
    let l = installed_root(bin(), t, &[]);
    let data = t.join("data");
    std::fs::create_dir_all(&data).unwrap();
    der(&l.cert, &data.join("cert.der"));
    std::fs::copy(&l.cert, data.join("cert.pem")).unwrap();
    std::fs::write(data.join("eligible.txt"), ELIGIBLE.join("\n") + "\n").unwrap();
    let expected: HashMap<&str, String> = ELIGIBLE
        .iter()
        .map(|p| (*p, fsverity_digest(&l.root.join(&p[1..]))))
        .collect();

    // Plain copies for the no-verity ext4 and tmpfs cases.
    let plain = data.join("plainroot");
    run(Command::new("cp").arg("-a").arg(&l.root).arg(&plain));
    // An escaping root inside the image: /evil with usr/bin -> ../../victim (outside /evil),
    // usr/lib/beta -> /data (absolute, the initramfs). The victim holds an exact copy of
    // alpha-tool, so a resolver that followed the link would succeed in enabling it.
    let evil = l.root.join("evil");
    run(Command::new("cp").arg("-a").arg(&plain).arg(&evil));
    let victim = l.root.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::copy(l.root.join("usr/bin/alpha-tool"), victim.join("alpha-tool")).unwrap();
    std::fs::remove_dir_all(evil.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("../../victim", evil.join("usr/bin")).unwrap();
    std::fs::remove_dir_all(evil.join("usr/lib/beta")).unwrap();
    std::os::unix::fs::symlink("/data", evil.join("usr/lib/beta")).unwrap();

    let img = t.join("root.img");
    let img2 = t.join("noverity.img");
    mkfs(&l.root, &img, true, "64M");
    mkfs(&plain, &img2, false, "32M");

    let guest = vm_script("guests/enable.sh");
    let common: Vec<OsString> = vec![
        "--bin".into(),
        bin().into(),
        "--file".into(),
        data.join("cert.der").into(),
        "--file".into(),
        data.join("cert.pem").into(),
        "--file".into(),
        data.join("eligible.txt").into(),
    ];

    // --- first boot ----------------------------------------------------------------------------
    let mut args = common.clone();
    args.extend([
        "--file".into(),
        plain.clone().into(),
        "--disk".into(),
        img.clone().into(),
        "--disk".into(),
        img2.clone().into(),
        guest.clone().into(),
        "first".into(),
    ]);
    let s = boot(args);
    s.rc("load-cert", 0);
    assert_eq!(s.rc("reqsig", 0), "1");
    let out = s.rc("enable", 0);
    assert!(
        out.ends_with("7 files: 7 enabled (skipped: 1 config, 1 ghost, 4 not-regular, 1 unsigned)")
            || out.contains("7 files: 7 enabled"),
        "{out}"
    );
    assert!(out.contains("UNSIGNED     gamma-1.0-1.x86_64"), "{out}");
    // Again: everything is already verity with the package's signature.
    let doc = s.json("enable-json", 0);
    for f in doc["files"].as_array().unwrap() {
        assert_eq!(f["status"], "ALREADY", "{f}");
        let p = f["path"].as_str().unwrap();
        assert_eq!(
            format!("sha256:{}", f["digest"].as_str().unwrap()),
            expected[p],
            "{p}"
        );
    }
    let measured = s.lines("measure", 0);
    assert_eq!(measured.len(), ELIGIBLE.len());
    for (line, p) in measured.iter().zip(ELIGIBLE) {
        assert_eq!(line, &format!("{} /mnt{p}", expected[p]));
    }
    assert_eq!(s.rc("mtimes-before", 0), s.rc("mtimes-after", 0));
    let audit = s.rc("audit", 1);
    // Only gamma (unsigned) is a finding; then one summary per package, then the total.
    assert!(
        audit.starts_with("UNSIGNED     gamma-1.0-1.x86_64: package has no fs-verity signatures|")
            && audit.ends_with("|audit: 7 files checked in 3 packages: 7 OK, 1 UNSIGNED"),
        "{audit}"
    );
    assert!(
        audit.contains("|alpha-1.0-1.x86_64: 4 files: 4 OK|")
            && audit.contains("|beta-1.0-1.x86_64: 3 files: 3 OK|"),
        "{audit}"
    );
    assert_eq!(audit.matches('|').count(), 3, "{audit}");

    let doc = s.json("evil-enable", 1);
    let files = doc["files"].as_array().unwrap();
    for p in [
        "/usr/bin/alpha-tool",
        "/usr/lib/beta/one.bin",
        "/usr/lib/beta/two.bin",
    ] {
        let f = files.iter().find(|f| f["path"] == p).unwrap();
        assert_eq!(f["status"], "ERROR", "{f}");
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .contains("leads outside the root"),
            "{f}"
        );
    }
    // The evil root's own, non-escaping files are fine.
    let ok = files
        .iter()
        .find(|f| f["path"] == "/usr/share/alpha/data.bin")
        .unwrap();
    assert_eq!(ok["status"], "ENABLED", "{ok}");
    let (rc, out) = s.get("evil-victim");
    assert_ne!(*rc, 0, "victim outside the root became verity: {out}");

    let out = s.rc("noverity-enable", 3);
    assert!(
        out.contains("cannot do fs-verity") && out.contains("tune2fs -O verity"),
        "{out}"
    );
    assert_eq!(out.matches("cannot do fs-verity").count(), 1, "{out}");
    assert!(out.contains("7 unsupported"), "{out}");
    let (rc, out) = s.get("noverity-measure");
    assert_ne!(*rc, 0, "{out}");
    let out = s.rc("tmpfs-enable", 3);
    assert!(
        out.contains("filesystem does not support fs-verity"),
        "{out}"
    );
    assert!(out.contains("7 unsupported"), "{out}");
    s.rc("tampered", 0);

    // three.bin, replaced by other content and verity-enabled without a signature: MODIFIED
    // with the certificate, and without one at least never OK/ALREADY.
    s.rc("unsigned-enable", 0);
    let status_of = |name: &str, key: &str, rc: i32| -> (String, String) {
        let doc = s.json(name, rc);
        let f = doc[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "/usr/lib/beta/three.bin")
            .unwrap_or_else(|| panic!("{name}: {doc}"))
            .clone();
        (
            f["status"].as_str().unwrap().to_string(),
            f["detail"].as_str().unwrap_or("").to_string(),
        )
    };
    let (st, why) = status_of("unsigned-audit", "findings", 1);
    assert_eq!(st, "MODIFIED", "{why}");
    assert!(why.contains("verity is on"), "{why}");
    let (st, why) = status_of("unsigned-rv-enable", "files", 1);
    assert_eq!(st, "MODIFIED", "{why}");
    for (name, key) in [
        ("unsigned-audit-nocert", "findings"),
        ("unsigned-rv-enable-nocert", "files"),
    ] {
        let (st, why) = status_of(name, key, 1);
        assert!(
            st != "OK" && st != "ALREADY" && st != "ENABLED",
            "{name}: {st} {why}"
        );
        assert!(why.contains("enabled without a signature"), "{name}: {why}");
    }

    // Unmodified content enabled without a signature, no certificate configured: the
    // certificate in the kernel keyring verifies the package's signature over its measured
    // digest, so it is OK (and three.bin, still modified, is not).
    let (st, why) = status_of("keyring-only-audit", "findings", 1);
    assert!(st != "OK", "three.bin: {st} {why}");
    let doc = s.json("keyring-only-audit", 1);
    let conf = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/alpha-exec.conf")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(conf["status"], "OK", "{doc}");
    s.rc("keyring-only-restore", 0);

    // --- between boots: overwrite block 5 of data.bin in the image ------------------------------
    overwrite_block(&img, "/usr/share/alpha/data.bin", 5);

    // --- second boot: empty keyring --------------------------------------------------------------
    let mut args = common;
    args.extend(["--disk".into(), img.into(), guest.into(), "reboot".into()]);
    let s = boot(args);
    let out = s.rc("audit-nocert", 1);
    for p in [
        "/usr/share/alpha/data.bin",
        "/usr/share/alpha/empty",
        "/etc/alpha-exec.conf",
    ] {
        assert!(
            out.contains(&format!(
                "CERT-MISSING {p}: verity is on, but the certificate"
            )),
            "{p}: {out}"
        );
    }
    s.rc("keyring-load", 0);
    let doc = s.json("audit", 1);
    let got: HashMap<String, String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"].is_string())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: HashMap<String, String> = [
        ("/etc/alpha-exec.conf", "OK"),
        ("/usr/bin/alpha-tool", "NOT-ENABLED"),
        ("/usr/lib/beta/one.bin", "SWAPPED"),
        ("/usr/lib/beta/two.bin", "SWAPPED"),
        ("/usr/lib/beta/three.bin", "MODIFIED"),
        ("/usr/share/alpha/data.bin", "CORRUPTED"),
        ("/usr/share/alpha/empty", "OK"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{doc}");
    let text = s.rc("audit-text", 1);
    assert!(
        text.contains(
            "CORRUPTED    /usr/share/alpha/data.bin: I/O error reading at offset 20480 (block 5)"
        ),
        "{text}"
    );
    assert!(
        text.contains("SWAPPED      /usr/lib/beta/one.bin: verity is on, but this is the content of /usr/lib/beta/two.bin"),
        "{text}"
    );
}
