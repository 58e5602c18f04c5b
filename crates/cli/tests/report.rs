//! `rpm-verity report` and `show` on packages built by rpmbuild: the predicted growth is what
//! `sign` then does, byte for byte; tree sizes follow fs-verity's layout, computed here from
//! rpm's own file list; directories are searched recursively and add up; `show` names every
//! file's signer after signing and none after `sign --delete`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use verity_test_support::rpmbuild::{build_rpm, build_rpm_custom, Contents};
use verity_test_support::{openssl, run, s};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rpm-verity")
}

fn rv(args: &[&str]) -> Output {
    run(Command::new(bin()).args(args))
}

fn rv_json(args: &[&str]) -> Value {
    serde_json::from_slice(&rv(args).stdout).unwrap()
}

/// RSA key and self-signed certificate; `serial` (hex) fixed when given.
fn cert(dir: &Path, name: &str, bits: u32, cn: &str, serial: Option<&str>) -> (PathBuf, PathBuf) {
    key_and_cert(dir, name, &openssl::rsa(bits), cn, serial)
}

/// EC key on `curve` ("P-256", "P-384") and self-signed certificate.
fn ec_cert(
    dir: &Path,
    name: &str,
    curve: &str,
    cn: &str,
    serial: Option<&str>,
) -> (PathBuf, PathBuf) {
    key_and_cert(dir, name, &openssl::ec(curve), cn, serial)
}

fn key_and_cert(
    dir: &Path,
    name: &str,
    newkey: &[String],
    cn: &str,
    serial: Option<&str>,
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    let subj = format!("/CN={cn}");
    openssl::self_signed(dir, s(&key), s(&cert), newkey, &subj, 2, serial);
    (key, cert)
}

fn size(p: &Path) -> i64 {
    fs::metadata(p).unwrap().len() as i64
}

fn only_package(doc: &Value) -> &Value {
    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 1, "{doc}");
    &pkgs[0]
}

/// One package that `sign` changes in place (one file: the signature fits rpm's reserved
/// space) and one it rewrites (many files): the report predicts the growth to the byte and the
/// mode, with the certificate `sign` then uses.
#[test]
fn predicted_growth_is_what_sign_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, crt) = cert(d, "k", 2048, "report test", None);
    for (name, contents, mode) in [
        ("small", Contents::ONE_FILE, "in-place"),
        ("large", Contents::ALL, "rewrite"),
    ] {
        let pkg = build_rpm(d, name, "w9.gzdio", contents);
        let before = size(&pkg);
        let doc = rv_json(&["report", "--json", "--cert", s(&crt), s(&pkg)]);
        assert_eq!(doc["signature"]["exact"], true);
        let p = only_package(&doc);
        assert_eq!(p["mode"], mode, "{name}: {p}");
        let predicted = p["signature_growth"].as_i64().unwrap();
        assert_eq!(p["package_bytes"].as_i64().unwrap(), before);

        let out = rv_json(&[
            "sign",
            "--json",
            "--key",
            s(&key),
            "--cert",
            s(&crt),
            s(&pkg),
        ]);
        let o = only_package(&out);
        assert_eq!(o["mode"], mode, "{name}: {o}");
        assert_eq!(size(&pkg) - before, predicted, "{name}");
        if mode == "rewrite" {
            assert!(predicted > 0);
        } else {
            assert_eq!(predicted, 0);
        }
        // Signed already: re-signing with the same key lays out the same header again.
        let again = rv_json(&["report", "--json", "--cert", s(&crt), s(&pkg)]);
        assert_eq!(only_package(&again)["signature_growth"], 0, "{name}");
    }
}

/// 600 small files in 30 directories: the shape where signatures weigh most.
fn many_small_files(d: &Path, name: &str) -> PathBuf {
    let install = "for i in $(seq 1 30); do mkdir -p %{buildroot}/usr/share/m/d$i; \
                   for j in $(seq 1 20); do echo \"file $i $j\" > %{buildroot}/usr/share/m/d$i/f$j.txt; \
                   done; done\n";
    build_rpm_custom(d, name, "w19.zstdio", install, "/usr/share/m\n")
}

/// `sign` with `key`/`crt` on a copy of `pkg`: the real growth.
fn signed_growth(d: &Path, pkg: &Path, key: &Path, crt: &Path, tag: &str) -> i64 {
    let copy = d.join(format!(
        "{tag}-{}",
        pkg.file_name().unwrap().to_str().unwrap()
    ));
    fs::copy(pkg, &copy).unwrap();
    rv(&["sign", "--key", s(key), "--cert", s(crt), s(&copy)]);
    size(&copy) - size(pkg)
}

/// RSA on many small files (besides `predicted_growth_is_what_sign_does`'s packages): byte for
/// byte. ECDSA P-256 and P-384 on many small files and on big files with hardlinks and
/// ghosts: the prediction is never below what `sign` does and within 1 % of it; the
/// `--key-type` estimate equals `--cert` for a certificate of the representative shape; `show`
/// names the curve of every signature.
#[test]
fn ecdsa_prediction_is_a_tight_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkgs = [
        many_small_files(d, "small"),
        build_rpm(d, "awkward", "w9.gzdio", Contents::ALL),
    ];
    let (rkey, rcrt) = cert(d, "rsa", 2048, "report test", None);
    let doc = rv_json(&["report", "--json", "--cert", s(&rcrt), s(&pkgs[0])]);
    let predicted = only_package(&doc)["signature_growth"].as_i64().unwrap();
    assert!(predicted > 600 * 500, "{predicted}");
    assert_eq!(signed_growth(d, &pkgs[0], &rkey, &rcrt, "rsa"), predicted);

    let cn = "abcdefghijklmnopqrstuvwxyz0123"; // the representative certificate's shape
    let serial = "0x1122334455667788990011223344556677889900";
    for (curve, ty) in [("P-256", "p256"), ("P-384", "p384")] {
        let (key, crt) = ec_cert(d, ty, curve, cn, Some(serial));
        for pkg in &pkgs {
            let doc = rv_json(&["report", "--json", "--cert", s(&crt), s(pkg)]);
            assert_eq!(doc["signature"]["upper_bound"], true);
            assert_eq!(doc["signature"]["key"], curve);
            let p = only_package(&doc);
            let predicted = p["signature_growth"].as_i64().unwrap();
            let real = signed_growth(d, pkg, &key, &crt, ty);
            assert!(real > 0, "{curve} {}: {p}", pkg.display());
            assert!(
                real <= predicted && predicted * 100 <= real * 101,
                "{curve} {}: predicted {predicted}, sign grew it by {real}",
                pkg.display()
            );
            let est = rv_json(&["report", "--json", "--key-type", ty, s(pkg)]);
            assert_eq!(only_package(&est)["signature_growth"], predicted, "{ty}");
            // `show` names the curve, without the certificate.
            let signed = d.join(format!(
                "{ty}-{}",
                pkg.file_name().unwrap().to_str().unwrap()
            ));
            let shown = rv_json(&["show", "--json", s(&signed)]);
            let files = only_package(&shown)["files"].as_array().unwrap();
            assert!(!files.is_empty());
            for f in files {
                assert_eq!(f["key"], format!("ECDSA {curve}"), "{f}");
            }
        }
        let text =
            String::from_utf8(rv(&["report", "--cert", s(&crt), s(&pkgs[0])]).stdout).unwrap();
        assert!(text.contains("at most (ECDSA"), "{text}");
        assert!(text.contains(curve), "{text}");
    }
}

/// The `--key-type` estimate is exact for a certificate shaped like the representative one
/// (30-character issuer, 20-byte serial), for 2048 and 4096 bits.
#[test]
fn estimate_matches_a_certificate_of_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = build_rpm(d, "est", "w9.gzdio", Contents::ALL);
    let cn = "abcdefghijklmnopqrstuvwxyz0123"; // 30 characters
    let serial = "0x1122334455667788990011223344556677889900";
    for (bits, ty) in [(2048, "rsa2048"), (4096, "rsa4096")] {
        let (_, crt) = cert(d, ty, bits, cn, Some(serial));
        let exact = rv_json(&["report", "--json", "--cert", s(&crt), s(&pkg)]);
        let est = rv_json(&["report", "--json", "--key-type", ty, s(&pkg)]);
        assert_eq!(est["signature"]["exact"], false);
        assert_eq!(
            exact["signature"]["bytes"], est["signature"]["bytes"],
            "{ty}"
        );
        assert_eq!(
            only_package(&exact)["signature_growth"],
            only_package(&est)["signature_growth"],
            "{ty}"
        );
        let text = String::from_utf8(rv(&["report", "--key-type", ty, s(&pkg)]).stdout).unwrap();
        assert!(text.contains("ESTIMATE"), "{text}");
    }
}

/// fs-verity's tree for 4096-byte blocks and SHA-256, level by level, rounded up to whole
/// blocks; nothing for a file of at most one block.
fn tree_bytes(size: u64) -> u64 {
    let mut total = 0;
    let mut blocks = size.div_ceil(4096);
    while blocks > 1 {
        let level = (blocks * 32).div_ceil(4096);
        total += level * 4096;
        blocks = level;
    }
    total
}

/// Payload and tree bytes from rpm's own query of the file list: regular files' sizes, and
/// one tree per installed inode (no `%ghost`, one per hardlink set).
fn expected_from_rpm(pkg: &Path) -> (u64, u64, u64) {
    let out = run(Command::new("rpm").args([
        "-qp",
        "--qf",
        "[%{FILESIZES} %{FILEMODES:perms} %{FILEFLAGS:fflags}. %{FILEINODES}\n]",
        s(pkg),
    ]));
    let (mut regular, mut payload, mut tree) = (0, 0, 0);
    let mut inodes = HashSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let size: u64 = f[0].parse().unwrap();
        if !f[1].starts_with('-') {
            continue;
        }
        regular += 1;
        payload += size;
        if !f[2].contains('g') && inodes.insert(f[3].to_string()) {
            tree += tree_bytes(size);
        }
    }
    (regular, payload, tree)
}

#[test]
fn tree_formula_checks_out() {
    assert_eq!(tree_bytes(0), 0);
    assert_eq!(tree_bytes(4096), 0);
    assert_eq!(tree_bytes(4097), 4096);
    assert_eq!(tree_bytes(128 * 4096), 4096);
    assert_eq!(tree_bytes(128 * 4096 + 1), 3 * 4096);
    assert_eq!(tree_bytes(70_000_000), (134 + 2 + 1) * 4096);
}

/// A directory: every `*.rpm` below it, sorted, nothing else; totals are the sums; the SVG has
/// a row per package.
#[test]
fn directory_mode_finds_packages_and_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let built = [
        build_rpm(d, "one", "w9.gzdio", Contents::ALL),
        build_rpm(d, "two", "w6.xzdio", Contents::ONE_FILE),
        build_rpm(d, "three", "w19.zstdio", Contents::RPMSIGN_SAFE),
    ];
    let repo = d.join("repo");
    fs::create_dir_all(repo.join("a/b")).unwrap();
    fs::create_dir_all(repo.join("c")).unwrap();
    let placed = [
        repo.join("a/b/one.rpm"),
        repo.join("c/two.rpm"),
        repo.join("three.rpm"),
    ];
    for (b, p) in built.iter().zip(&placed) {
        fs::copy(b, p).unwrap();
    }
    fs::write(repo.join("a/readme.txt"), "not a package").unwrap();
    let svg = d.join("chart.svg");
    let doc = rv_json(&["report", "--json", "--svg", s(&svg), s(&repo)]);
    let pkgs = doc["packages"].as_array().unwrap();
    let names: Vec<&str> = pkgs
        .iter()
        .map(|p| p["package"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = placed.iter().map(|p| s(p)).collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(doc["failed"], 0);

    let total = &doc["total"];
    for key in [
        "package_bytes",
        "entries",
        "regular_files",
        "directories",
        "symlinks",
        "other",
        "payload_bytes",
        "signature_growth",
        "tree_bytes",
    ] {
        let sum: i64 = pkgs.iter().map(|p| p[key].as_i64().unwrap()).sum();
        assert_eq!(total[key].as_i64().unwrap(), sum, "{key}");
    }
    for class in ["empty", "up_to_4k", "up_to_64k", "up_to_1m", "over_1m"] {
        let sum: i64 = pkgs
            .iter()
            .map(|p| p["size_classes"][class].as_i64().unwrap())
            .sum();
        assert_eq!(
            total["size_classes"][class].as_i64().unwrap(),
            sum,
            "{class}"
        );
    }
    let files: i64 = ["empty", "up_to_4k", "up_to_64k", "up_to_1m", "over_1m"]
        .iter()
        .map(|c| total["size_classes"][c].as_i64().unwrap())
        .sum();
    assert_eq!(files, total["regular_files"].as_i64().unwrap());

    for (p, path) in pkgs.iter().zip(&want) {
        let (regular, payload, tree) = expected_from_rpm(Path::new(path));
        assert_eq!(p["regular_files"].as_u64().unwrap(), regular, "{path}");
        assert_eq!(p["payload_bytes"].as_u64().unwrap(), payload, "{path}");
        assert_eq!(p["tree_bytes"].as_u64().unwrap(), tree, "{path}");
    }
    // big.txt (300001 bytes) and random.bin (70000 bytes) each need one tree block.
    let one = pkgs
        .iter()
        .find(|p| p["package"].as_str().unwrap().ends_with("one.rpm"))
        .unwrap();
    assert_eq!(one["tree_bytes"], 2 * 4096);

    let chart = fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg"), "{chart}");
    assert!(chart.trim_end().ends_with("</svg>"));
    let texts = parse_svg(&svg, 2 + 2 * 3);
    for name in ["one.rpm", "two.rpm", "three.rpm"] {
        assert!(
            texts.iter().any(|t| t == name),
            "{name} missing from the chart: {texts:?}"
        );
    }
    // A name with XML's special characters is escaped, and the chart still parses.
    let odd = d.join("odd");
    fs::create_dir_all(&odd).unwrap();
    let odd_name = "a&b<c>\"d'.rpm";
    fs::copy(&built[0], odd.join(odd_name)).unwrap();
    let odd_svg = d.join("odd.svg");
    rv(&["report", "--svg", s(&odd_svg), s(&odd)]);
    let texts = parse_svg(&odd_svg, 2 + 2);
    assert!(texts.iter().any(|t| t == odd_name), "{texts:?}");

    let text = String::from_utf8(rv(&["report", s(&repo)]).stdout).unwrap();
    assert!(text.contains("total (3 packages)"), "{text}");
}

/// Parses `svg` with Python's XML parser (expat): the root is an SVG element with a size, and
/// it has `rects` rectangles; returns the text of its `<text>` elements.
fn parse_svg(svg: &Path, rects: usize) -> Vec<String> {
    let script = r#"
import sys, json, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
assert float(root.get("width")) > 0 and float(root.get("height")) > 0
for r in root.iter(ns + "rect"):
    assert float(r.get("width")) >= 0 and float(r.get("height")) > 0, r.attrib
print(json.dumps({"rects": len(list(root.iter(ns + "rect"))),
                  "texts": [t.text for t in root.iter(ns + "text")]}))
"#;
    let out = run(Command::new("python3").args(["-c", script]).arg(svg));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rects"], rects, "{doc}");
    doc["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap_or("").to_string())
        .collect()
}

/// `show` lists every file with its signer after `sign`, and every file unsigned after
/// `sign --delete`; no certificate needed.
#[test]
fn show_signed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, crt) = cert(d, "k", 2048, "show test", None);
    let pkg = build_rpm(d, "shown", "w9.gzdio", Contents::ALL);
    let unsigned = rv_json(&["show", "--json", s(&pkg)]);
    let p = only_package(&unsigned);
    assert_eq!(p["has_signatures"], false);
    let n = p["files"].as_array().unwrap().len();
    assert!(n > 5);
    assert_eq!(p["unsigned"], n);

    rv(&["sign", "--key", s(&key), "--cert", s(&crt), s(&pkg)]);
    let serial = String::from_utf8(
        run(Command::new("openssl").args(["x509", "-noout", "-serial", "-in", s(&crt)])).stdout,
    )
    .unwrap();
    let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
    let doc = rv_json(&["show", "--json", s(&pkg)]);
    let p = only_package(&doc);
    assert_eq!(p["has_signatures"], true);
    assert_eq!(p["algorithm"], "sha256");
    let files = p["files"].as_array().unwrap();
    assert_eq!(files.len(), n);
    for f in files {
        assert_eq!(f["status"], "signed", "{f}");
        assert_eq!(f["signer"]["issuer"], "CN=show test", "{f}");
        assert_eq!(
            f["signer"]["serial"]
                .as_str()
                .unwrap()
                .trim_start_matches('0'),
            serial.trim_start_matches('0')
        );
        assert_eq!(f["hash"], "sha256");
        assert_eq!(f["key"], "RSA-2048");
        assert!(f["signature_bytes"].as_u64().unwrap() > 256);
    }
    assert_eq!(p["signed"], n);
    let signers = p["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 1);
    assert_eq!(signers[0]["files"], n);

    let text = String::from_utf8(rv(&["show", s(&pkg)]).stdout).unwrap();
    let paths: Vec<String> = run(Command::new("rpm").args(["-qpl", s(&pkg)]))
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(paths.len(), n);
    for path in &paths {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("signed") && l.contains(&format!(" {path} [")))
            .unwrap_or_else(|| panic!("{path} not listed as signed:\n{text}"));
        assert!(line.contains("issuer \"CN=show test\""), "{line}");
    }
    assert!(text.contains(&format!("{n} signed, 0 unsigned")), "{text}");

    rv(&["sign", "--delete", s(&pkg)]);
    let doc = rv_json(&["show", "--json", s(&pkg)]);
    let p = only_package(&doc);
    assert_eq!(p["has_signatures"], false);
    assert_eq!(p["unsigned"], n);
    assert!(p["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "unsigned" && f["signer"].is_null()));
    let text = String::from_utf8(rv(&["show", s(&pkg)]).stdout).unwrap();
    assert!(text.contains(&format!("0 signed, {n} unsigned")), "{text}");
}
