//! VM test: ECDSA-signed packages on Debian's kernels (qemu TCG, tests/vm).
//!
//! One package, signed with a self-signed P-256 key and again with an EC key whose certificate
//! an RSA CA issued, is installed twice by the real rpm into one ext4 `-O verity` image. On
//! 6.12 (ECDSA built in): `keyring load`, `require_signatures=1`, `enable --all` and a clean
//! `audit`; then a data block is overwritten in the image on the host and, after a reboot,
//! `audit` finds the file CORRUPTED. On 6.1 (no CONFIG_CRYPTO_ECDSA): `status` and `keyring
//! load` say the kernel cannot verify ECDSA, the self-signed certificate cannot be loaded, the
//! RSA-issued one loads with a warning, and `enable` does not call its rejected signatures a
//! modified file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use verity_test_support::installed::install_into;
use verity_test_support::openssl::{self, Issuer};
use verity_test_support::rpmbuild::build_rpm_custom;
use verity_test_support::vm::{boot, fsverity_digest, mkfs_ext4, overwrite_block, run, vm_script};

fn bin() -> &'static str {
    verity_test_support::bin!()
}

/// ec.key/ec.pem: self-signed P-256. leaf.key/leaf.pem: P-256 key, certificate issued by the
/// RSA CA ca.key/ca.pem.
fn keys(d: &Path) {
    let ec = openssl::ec("P-256");
    let subj = "/CN=rpm-verity ecdsa test/O=Throwaway";
    openssl::self_signed(d, "ec.key", "ec.pem", &ec, subj, 2, None);
    let (rsa, subj) = (openssl::rsa(2048), "/CN=rpm-verity RSA CA/O=Throwaway");
    openssl::self_signed(d, "ca.key", "ca.pem", &rsa, subj, 2, None);
    let subj = "/CN=rpm-verity ecdsa leaf/O=Throwaway";
    openssl::new_csr(d, "leaf.key", "leaf.csr", &ec, subj);
    let issuer = Issuer::Ca {
        cert: "ca.pem",
        key: "ca.key",
    };
    openssl::sign_csr(d, "leaf.csr", issuer, 2, None, "leaf.pem");
}

/// The package signed with `name`'s key and certificate, installed into `top/name`.
fn signed_root(t: &Path, pkg: &Path, top: &Path, name: &str) -> PathBuf {
    let out = t.join(format!("signed-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new(bin())
        .args(["sign", "--key"])
        .arg(t.join(format!("{name}.key")))
        .arg("--cert")
        .arg(t.join(format!("{name}.pem")))
        .arg("--output-dir")
        .arg(&out)
        .arg(pkg));
    let signed = out.join(pkg.file_name().unwrap());
    let root = top.join(if name == "ec" { "self" } else { name });
    install_into(&root, &[&signed]);
    root
}

#[test]
fn ecdsa_on_debian_6_12_and_6_1() {
    let td = tempfile::tempdir().unwrap();
    let t = td.path();
    keys(t);
    let pkg = build_rpm_custom(
        t,
        "ectest",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/ec\n\
         head -c 20000 /dev/urandom > %{buildroot}/usr/bin/ec-tool\n\
         chmod 0755 %{buildroot}/usr/bin/ec-tool\n\
         head -c 70000 /dev/urandom > %{buildroot}/usr/share/ec/data.bin\n\
         : > %{buildroot}/usr/share/ec/empty\n\
         ln -s data.bin %{buildroot}/usr/share/ec/link\n",
        "%dir /usr/share/ec\n/usr/bin/ec-tool\n/usr/share/ec/data.bin\n/usr/share/ec/empty\n\
         /usr/share/ec/link\n",
    );
    let top = t.join("top");
    let self_root = signed_root(t, &pkg, &top, "ec");
    signed_root(t, &pkg, &top, "leaf");
    let img = t.join("root.img");
    mkfs_ext4(&top, &img, true, "64M");
    let want_digest = fsverity_digest(&self_root.join("usr/share/ec/data.bin"));

    let guest = vm_script("guests/ecdsa.sh");
    let args = |kernel: &str, phase: &str| -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--kernel".into(), kernel.into()];
        a.extend(["--bin".into(), bin().into()]);
        for f in ["ec.pem", "leaf.pem"] {
            a.extend(["--file".into(), t.join(f).into()]);
        }
        a.extend([
            "--disk".into(),
            img.clone().into(),
            guest.clone().into(),
            phase.into(),
        ]);
        a
    };

    // --- 6.12, first boot ------------------------------------------------------------------------
    let s1 = boot(args("6.12", "6.12-first"));
    let st = s1.json("status-before", 0);
    assert_eq!(st["kernel"]["ecdsa"], true, "{st}");
    assert!(st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| !p.as_str().unwrap().contains("ECDSA")));
    s1.rc("keyring-load", 0);
    s1.rc("reqsig", 0);
    let doc = s1.json("enable", 0);
    let enabled: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "ENABLED")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        enabled,
        [
            "/usr/bin/ec-tool",
            "/usr/share/ec/data.bin",
            "/usr/share/ec/empty"
        ],
        "{doc}"
    );
    let audit = s1.json("audit", 0);
    assert_eq!(audit["problems"], 0, "{audit}");
    assert_eq!(audit["summary"], serde_json::json!({"OK": 3}), "{audit}");
    assert!(
        s1.rc("measure", 0).starts_with(&want_digest),
        "{want_digest}"
    );

    // --- between boots: overwrite block 5 of data.bin in the image -------------------------------
    overwrite_block(&img, "/self/usr/share/ec/data.bin", 5);

    // --- 6.12, second boot -----------------------------------------------------------------------
    let s2 = boot(args("6.12", "6.12-reboot"));
    s2.rc("keyring-load", 0);
    let audit = s2.json("audit", 1);
    let findings = audit["findings"].as_array().unwrap();
    let bad: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f["path"].is_string() && f["status"] != "OK")
        .map(|f| (f["path"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(bad, [("/usr/share/ec/data.bin", "CORRUPTED")], "{audit}");

    // --- 6.1: no ECDSA ---------------------------------------------------------------------------
    let s3 = boot(args("6.1", "6.1"));
    let st = s3.json("status", 0);
    assert_eq!(st["kernel"]["ecdsa"], false, "{st}");
    let problems: Vec<&str> = st["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .filter(|p| p.contains("cannot verify ECDSA signatures"))
        .collect();
    assert_eq!(problems.len(), 2, "{st}");
    let text = s3.rc("status-text", 0);
    assert!(text.contains("ECDSA (CONFIG_CRYPTO_ECDSA):"), "{text}");
    assert!(text.contains("no (RSA only"), "{text}");

    // The self-signed EC certificate cannot be added (add_key ENOENT): said so, not "bad
    // certificate".
    let load = s3.json("load-self", 1);
    let e = &load["entries"][0];
    assert_eq!(e["status"], "error", "{load}");
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot verify ECDSA signatures") && reason.contains("CONFIG_CRYPTO_ECDSA"),
        "{reason}"
    );
    let text = s3.rc("load-self-text", 1);
    assert!(text.contains("cannot verify ECDSA signatures"), "{text}");
    // Issued by an RSA CA it loads, with a warning that it is of no use here.
    let load = s3.json("load-leaf", 0);
    let e = &load["entries"][0];
    assert_eq!(e["status"], "loaded", "{load}");
    assert_eq!(load["warnings"], 1, "{load}");
    assert!(
        e["warning"].as_str().unwrap().contains("EKEYREJECTED"),
        "{load}"
    );
    // Its signatures are then refused (EKEYREJECTED): explained, not MODIFIED.
    let doc = s3.json("enable-leaf", 1);
    let files = doc["files"].as_array().unwrap();
    let signed: Vec<&serde_json::Value> = files
        .iter()
        .filter(|f| f["path"] == "/usr/share/ec/data.bin" || f["path"] == "/usr/bin/ec-tool")
        .collect();
    assert_eq!(signed.len(), 2, "{doc}");
    for f in signed {
        assert_eq!(f["status"], "ERROR", "{f}");
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .contains("cannot verify ECDSA signatures"),
            "{f}"
        );
    }
}
