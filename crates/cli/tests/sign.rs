//! `rpm-verity sign` and `verify` against the real rpm 4.18: rpmbuild makes the packages,
//! rpmsign --signverity is the reference for tags 276/277, rpmkeys/rpm query the results, and
//! openssl + fsverity-utils check every signature independently.

use verity_test_support::rpmbuild as support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use verity_test_support::{openssl, run, s};

use rpm_format::{tags, Package};
use support::{
    build_rpm, build_rpm_custom, rpm2cpio_extract, rpmsign_verity, signing_setup, Contents,
    SigningSetup,
};

const PAYLOADS: [&str; 6] = [
    "w9.gzdio",
    "w9.bzdio",
    "w6.xzdio",
    "w6.lzdio",
    "w19.zstdio",
    "w0.ufdio",
];

fn bin() -> &'static str {
    verity_test_support::bin!()
}

fn rv(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run rpm-verity")
}

/// `dir/<name>.key.pem`, `dir/<name>.cert.pem`: RSA of `bits`, subject `/CN=<name>`.
fn openssl_key(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf) {
    openssl::rsa_key_cert(dir, name, bits, name)
}

/// The command succeeded; else the test fails with its stderr.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command succeeded: its stdout; else the test fails with both outputs.
fn ok_stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `enable --dry-run --json --all` of an installed root, trusting `cert`.
fn enable_dry_run(root: &Path, cert: &Path) -> serde_json::Value {
    let out = rv(&[
        "enable",
        "--root",
        s(root),
        "--dry-run",
        "--cert",
        s(cert),
        "--json",
        "--all",
    ]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// `verify --cert CERT PKG` succeeds; else the test fails with what it printed.
fn verify_ok(cert: &Path, pkg: &Path) {
    let out = rv(&["verify", "--cert", s(cert), s(pkg)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `verify --json --cert CERT PKG`.
fn verify_json(cert: &Path, pkg: &Path) -> serde_json::Value {
    let out = rv(&["verify", "--json", "--cert", s(cert), s(pkg)]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The package's files and the fs-verity signature of each (tag 276, which must be there).
fn files_and_signatures(p: &Package<fs::File>) -> (rpm_format::FileList, Vec<Vec<u8>>) {
    let files = p.files().unwrap();
    let sigs = verity_package::VeritySignatures::read(p.signature.header())
        .unwrap()
        .expect("tag 276 present")
        .all()
        .unwrap();
    (files, sigs)
}

fn sig_header(pkg: &Path) -> rpm_format::SignatureHeader {
    Package::open_unverified(fs::File::open(pkg).unwrap())
        .unwrap()
        .signature
}

fn verity_tags(pkg: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let sh = sig_header(pkg);
    let h = sh.header();
    let get = |t| h.entry(t).map(|e| h.entry_data(e).to_vec());
    (
        get(tags::SIG_VERITYSIGNATURES),
        get(tags::SIG_VERITYSIGNATUREALGO),
    )
}

fn main_and_payload(pkg: &Path) -> Vec<u8> {
    let p = Package::open_unverified(fs::File::open(pkg).unwrap()).unwrap();
    let off = p.main_header_offset() as usize;
    fs::read(pkg).unwrap()[off..].to_vec()
}

fn rpmkeys_verdicts(pkg: &Path) -> String {
    let out = Command::new("rpmkeys")
        .arg("-Kv")
        .arg("--nosignature")
        .arg(pkg)
        .output()
        .unwrap();
    // Only the digest lines: the package name prefix differs between copies.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file's signature checked with openssl over the formatted digest that fsverity-utils
/// computes for the file rpm2cpio extracts (empty digest for what has no content).
fn check_with_openssl(dir: &Path, pkg: &Path, cert: &Path, alg: &str) {
    let p = Package::open_unverified(fs::File::open(pkg).unwrap()).unwrap();
    let (files, sigs) = files_and_signatures(&p);
    assert_eq!(sigs.len(), files.len(), "one signature per header file");
    let ex = dir.join(format!(
        "extract-{}",
        pkg.file_name().unwrap().to_str().unwrap()
    ));
    rpm2cpio_extract(pkg, &ex);
    let pubkey = dir.join("pub.pem");
    run(Command::new("openssl").args([
        "x509",
        "-in",
        s(cert),
        "-pubkey",
        "-noout",
        "-out",
        s(&pubkey),
    ]));
    let empty = dir.join("empty-file");
    fs::write(&empty, b"").unwrap();
    let mut hardlink_content: std::collections::HashMap<(u32, u32), PathBuf> = Default::default();
    for f in files.files() {
        if f.is_regular() && !f.is_ghost() {
            let path = ex.join(String::from_utf8_lossy(&f.path[1..]).to_string());
            if fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false) {
                hardlink_content.insert((f.device, f.inode), path);
            }
        }
    }
    // Three processes per file: for big packages, a spread sample (rpm-verity verify has already
    // checked every file; this is the independent cross-check).
    let step = (files.len() / 40).max(1);
    for (i, f) in files.files().iter().enumerate() {
        if i % step != 0 && i != files.len() - 1 {
            continue;
        }
        let content = if f.is_regular() && !f.is_ghost() {
            hardlink_content
                .get(&(f.device, f.inode))
                .cloned()
                .unwrap_or_else(|| empty.clone())
        } else {
            empty.clone()
        };
        let out = run(Command::new("fsverity")
            .args(["digest", "--compact", "--for-builtin-sig"])
            .arg(format!("--hash-alg={alg}"))
            .arg(&content));
        let hexmsg = String::from_utf8(out.stdout).unwrap();
        let msg = hex_decode(hexmsg.trim());
        let msg_path = dir.join("msg.bin");
        fs::write(&msg_path, &msg).unwrap();
        let der = &sigs[i];
        if is_ec(cert) {
            // ECDSA values vary in length: let openssl find the signature in the PKCS#7.
            let p7 = dir.join("sig.p7");
            fs::write(&p7, der).unwrap();
            let out = Command::new("openssl")
                .args(["smime", "-verify", "-binary", "-inform", "DER", "-noverify"])
                .args([
                    "-in",
                    s(&p7),
                    "-content",
                    s(&msg_path),
                    "-certfile",
                    s(cert),
                ])
                .args(["-out", "/dev/null"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl rejects the ECDSA signature of {} in {}: {}",
                f.path_lossy(),
                pkg.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        // No signed attributes and no certificates: the RSA signature is the DER's tail.
        let modulus = rsa_modulus_len(cert);
        let raw = dir.join("raw.sig");
        fs::write(&raw, &der[der.len() - modulus..]).unwrap();
        let out = Command::new("openssl")
            .args([
                "dgst",
                &format!("-{alg}"),
                "-verify",
                s(&pubkey),
                "-signature",
                s(&raw),
                s(&msg_path),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl rejects the signature of {} in {}: {}",
            f.path_lossy(),
            pkg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_ec(cert: &Path) -> bool {
    let out = run(Command::new("openssl").args(["x509", "-in", s(cert), "-noout", "-text"]));
    String::from_utf8_lossy(&out.stdout).contains("id-ecPublicKey")
}

fn rsa_modulus_len(cert: &Path) -> usize {
    let out = run(Command::new("openssl").args(["x509", "-in", s(cert), "-noout", "-text"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let bits: usize = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Public-Key: (")
                .and_then(|r| r.strip_suffix(" bit)"))
        })
        .expect("RSA key size in openssl output")
        .parse()
        .unwrap();
    bits / 8
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The checks every signed package must pass, whatever made it.
fn check_signed(dir: &Path, original: &Path, signed: &Path, cert: &Path, alg: &str) {
    assert_eq!(
        main_and_payload(original),
        main_and_payload(signed),
        "main header and payload unchanged"
    );
    assert_eq!(
        rpmkeys_verdicts(original),
        rpmkeys_verdicts(signed),
        "rpmkeys -Kv verdicts unchanged"
    );
    let q = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILENAMES}\t%{VERITYSIGNATURES}\n]"])
        .arg(signed));
    let text = String::from_utf8_lossy(&q.stdout);
    let nfiles = Package::open_unverified(fs::File::open(signed).unwrap())
        .unwrap()
        .files()
        .unwrap()
        .len();
    let listed = text.lines().filter(|l| l.contains('\t')).count();
    assert_eq!(listed, nfiles, "rpm lists one signature per file:\n{text}");
    assert!(text.lines().filter(|l| l.contains('\t')).all(|l| l
        .split('\t')
        .nth(1)
        .map(|s| !s.is_empty())
        .unwrap_or(false)));
    let out = rv(&["verify", "--cert", s(cert), s(signed)]);
    assert!(
        out.status.success(),
        "verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check_with_openssl(dir, signed, cert, alg);
}

/// Signs a copy of `orig` with rpmsign and one with `rpm-verity sign` (rpmsign's option names),
/// checks that tags 276/277 are byte-identical and that the signatures hold
/// (`check_signed`); returns our signed copy.
fn sign_like_rpmsign(dir: &Path, setup: &SigningSetup, orig: &Path, name: &str) -> PathBuf {
    let theirs = dir.join(format!("{name}-rpmsign.rpm"));
    let ours = dir.join(format!("{name}-ours.rpm"));
    fs::copy(orig, &theirs).unwrap();
    fs::copy(orig, &ours).unwrap();
    rpmsign_verity(setup, &theirs);
    let out = rv(&[
        "sign",
        "--fskpath",
        s(&setup.key),
        "--certpath",
        s(&setup.cert),
        s(&ours),
    ]);
    assert_ok(&out);
    let (ours276, ours277) = verity_tags(&ours);
    let (their276, their277) = verity_tags(&theirs);
    assert!(their276.is_some());
    assert_eq!(ours276, their276, "{name}: tag 276 differs from rpmsign's");
    assert_eq!(ours277, their277, "{name}: tag 277 differs from rpmsign's");
    check_signed(dir, orig, &ours, &setup.cert, "sha256");
    ours
}

#[test]
fn tags_identical_to_rpmsign_for_every_compressor() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let setup = signing_setup(dir);
    for payload in PAYLOADS {
        let name = format!("c{}", payload.replace('.', ""));
        let orig = build_rpm(dir, &name, payload, Contents::RPMSIGN_SAFE);
        sign_like_rpmsign(dir, &setup, &orig, &name);
    }
}

/// Files bigger than a decompressed chunk (1 MiB) are hashed as they stream by, mostly from
/// chunks lent whole to the hashing threads and partly from copies where a chunk holds the
/// end of one entry and the start of the next: the signatures are rpmsign's all the same.
#[test]
fn files_over_a_chunk_match_rpmsign() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let setup = signing_setup(dir);
    let install = "mkdir -p %{buildroot}/opt/b\n\
        printf 'hello\\n' > %{buildroot}/opt/b/a-small\n\
        head -c 3145745 /dev/urandom > %{buildroot}/opt/b/b-random\n\
        yes 'streamed text' | head -c 2500001 > %{buildroot}/opt/b/c-text\n\
        head -c 1048576 /dev/urandom > %{buildroot}/opt/b/d-one-chunk\n\
        printf '#!/bin/sh\\n' > %{buildroot}/opt/b/e-script\n\
        head -c 1048577 /dev/urandom >> %{buildroot}/opt/b/e-script\n";
    let files = "%dir /opt/b\n/opt/b/a-small\n/opt/b/b-random\n/opt/b/c-text\n\
        /opt/b/d-one-chunk\n/opt/b/e-script\n";
    for payload in ["w0.ufdio", "w3.zstdio", "w6.gzdio"] {
        let name = format!("b{}", payload.replace('.', ""));
        let orig = build_rpm_custom(dir, &name, payload, install, files);
        sign_like_rpmsign(dir, &setup, &orig, &name);

        // What a streamed file is comes from its first bytes, wherever the chunks fall.
        let exe = dir.join(format!("{name}-exe.rpm"));
        fs::copy(&orig, &exe).unwrap();
        let out = rv(&[
            "sign",
            "--executables",
            "--key",
            s(&setup.key),
            "--cert",
            s(&setup.cert),
            s(&exe),
        ]);
        assert_ok(&out);
        let signed = rpm_signed_entries(&exe);
        assert_eq!(
            signed.get("/opt/b/e-script"),
            Some(&true),
            "{payload}: {signed:?}"
        );
        assert_eq!(
            signed.get("/opt/b/b-random"),
            Some(&false),
            "{payload}: {signed:?}"
        );
    }
}

#[test]
fn tags_identical_to_rpmsign_rsa4096_and_sha512() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let setup = signing_setup(dir);
    let (key4096, cert4096) = openssl_key(dir, "big", 4096);
    let orig = build_rpm(dir, "algs", "w19.zstdio", Contents::RPMSIGN_SAFE);
    for (key, cert, alg) in [
        (&setup.key, &setup.cert, "sha512"),
        (&key4096, &cert4096, "sha256"),
        (&key4096, &cert4096, "sha512"),
    ] {
        let theirs = dir.join("theirs.rpm");
        let ours = dir.join("ours.rpm");
        fs::copy(&orig, &theirs).unwrap();
        fs::copy(&orig, &ours).unwrap();
        let s2 = support::SigningSetup {
            gpg_home: setup.gpg_home.clone(),
            key: key.clone(),
            cert: cert.clone(),
        };
        support::rpmsign_verity_alg(&s2, &theirs, Some(alg));
        let out = rv(&[
            "sign",
            "--key",
            s(key),
            "--cert",
            s(cert),
            "--verityalgo",
            alg,
            s(&ours),
        ]);
        assert_ok(&out);
        assert_eq!(
            verity_tags(&ours),
            verity_tags(&theirs),
            "{alg} with {}",
            key.display()
        );
        check_signed(dir, &orig, &ours, cert, alg);
    }
}

/// Where rpmsign 4.18 segfaults (hardlinks, sized ghosts), we sign: every hardlink member gets
/// the content's signature, ghosts the empty file's.
#[test]
fn hardlinks_and_ghosts_signed_where_rpmsign_crashes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir, "k", 2048);
    let orig = build_rpm(dir, "links", "w19.zstdio", Contents::ALL);
    let ours = dir.join("links-signed.rpm");
    fs::copy(&orig, &ours).unwrap();
    let out = rv(&["sign", "--key", s(&key), "--cert", s(&cert), s(&ours)]);
    assert_ok(&out);
    check_signed(dir, &orig, &ours, &cert, "sha256");
    let p = Package::open_unverified(fs::File::open(&ours).unwrap()).unwrap();
    let (files, sigs) = files_and_signatures(&p);
    let set = files
        .hardlink_sets()
        .first()
        .expect("a hardlink set")
        .clone();
    assert!(set.len() == 3);
    assert!(
        set.iter().all(|&i| sigs[i] == sigs[set[0]]),
        "hardlink members share the content signature"
    );
    let ghost = files
        .files()
        .iter()
        .position(|f| f.path.ends_with(b"ghost-sized"))
        .unwrap();
    let empty = files
        .files()
        .iter()
        .position(|f| f.path.ends_with(b"/empty"))
        .unwrap();
    assert_eq!(
        sigs[ghost], sigs[empty],
        "sized ghost gets the empty-file signature"
    );
    let hello = files
        .files()
        .iter()
        .position(|f| f.path.ends_with(b"hello.txt"))
        .unwrap();
    assert_ne!(sigs[hello], sigs[empty]);
}

#[test]
fn many_files_output_dir_json_resign_and_delete() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir, "k", 2048);
    let orig = build_rpm_custom(
        dir,
        "many",
        "w19.zstdio",
        "mkdir -p %{buildroot}/opt/many\nfor i in $(seq 1 2100); do echo \"file $i\" > %{buildroot}/opt/many/f$i; done\n\
         printf 'x' > '%{buildroot}/opt/many/\u{65e5}\u{672c}\u{8a9e}-\u{e9}.txt'\n",
        "/opt/many\n",
    );
    let outdir = dir.join("out");
    fs::create_dir(&outdir).unwrap();
    let before = fs::read(&orig).unwrap();
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--output-dir",
        s(&outdir),
        "--json",
        s(&orig),
    ]);
    assert_ok(&out);
    assert_eq!(
        fs::read(&orig).unwrap(),
        before,
        "--output-dir leaves the input alone"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let pkg = &json["packages"][0];
    assert_eq!(pkg["status"], "signed");
    assert_eq!(pkg["files"], 2102);
    // 2100 distinct "file N" contents + the non-ASCII file + the directory (empty digest).
    assert_eq!(pkg["signatures_made"], 2102);
    let signed = outdir.join(orig.file_name().unwrap());
    check_signed(dir, &orig, &signed, &cert, "sha256");

    // Re-signing with another key replaces the tags; verify with the old cert then fails.
    let (key2, cert2) = openssl_key(dir, "k2", 2048);
    let out = rv(&["sign", "--key", s(&key2), "--cert", s(&cert2), s(&signed)]);
    assert!(out.status.success());
    let out = rv(&["verify", "--cert", s(&cert), s(&signed)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("UNTRUSTED") && text.contains("/opt/many/f17"),
        "names the files: {text}"
    );
    let out = rv(&["verify", "--cert", s(&cert2), "--quiet", s(&signed)]);
    assert!(out.status.success());

    // --delete removes the tags; the package is as rpm would have it without them.
    let out = rv(&["sign", "--delete", s(&signed)]);
    assert_ok(&out);
    assert_eq!(verity_tags(&signed), (None, None));
    assert_eq!(main_and_payload(&orig), main_and_payload(&signed));
    let out = rv(&["verify", "--cert", s(&cert2), s(&signed)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no fs-verity signatures"));
}

#[test]
fn verify_names_files_with_flipped_content_and_count_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir, "k", 2048);
    let orig = build_rpm(dir, "flip", "w0.ufdio", Contents::RPMSIGN_SAFE);
    let signed = dir.join("flip-signed.rpm");
    fs::copy(&orig, &signed).unwrap();
    assert!(
        rv(&["sign", "--key", s(&key), "--cert", s(&cert), s(&signed)])
            .status
            .success()
    );

    // Flip one byte of hello.txt's content in the uncompressed payload.
    let mut bytes = fs::read(&signed).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"hello world\n")
        .expect("content in payload");
    bytes[at] ^= 0x20;
    let flipped = dir.join("flipped.rpm");
    fs::write(&flipped, &bytes).unwrap();
    let out = rv(&["verify", "--cert", s(&cert), s(&flipped)]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("/opt/t/hello.txt"), "names the file: {all}");
    assert!(all.contains("BAD"), "{all}");

    // Tag 276 with one signature too few.
    let p = Package::open_unverified(fs::File::open(&signed).unwrap()).unwrap();
    let mut sigs = verity_package::VeritySignatures::read(p.signature.header())
        .unwrap()
        .expect("tag 276 present")
        .all()
        .unwrap();
    sigs.pop();
    let plan = p.signature.with_verity(&sigs, 1).unwrap();
    let off = p.main_header_offset() as usize;
    let all_bytes = fs::read(&signed).unwrap();
    let mut short = all_bytes[..96].to_vec();
    short.extend_from_slice(&plan.signature_bytes);
    short.extend_from_slice(&all_bytes[off..]);
    let bad = dir.join("short.rpm");
    fs::write(&bad, short).unwrap();
    let out = rv(&["verify", "--cert", s(&cert), s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.rpm") && err.contains("signatures for"),
        "{err}"
    );
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Hostile and broken packages: a clear error naming the package, exit 1, the input unchanged
/// and no temp file left behind.
#[test]
fn bad_packages_refused_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir, "k", 2048);
    let good = build_rpm(dir, "bad", "w19.zstdio", Contents::RPMSIGN_SAFE);
    let ufd = build_rpm(dir, "badu", "w0.ufdio", Contents::RPMSIGN_SAFE);
    let bytes = fs::read(&good).unwrap();
    let ubytes = fs::read(&ufd).unwrap();
    let p = Package::open_unverified(fs::File::open(&good).unwrap()).unwrap();
    let main_off = p.main_header_offset() as usize;
    let payload_off = p.payload_offset() as usize;
    let pu = Package::open_unverified(fs::File::open(&ufd).unwrap()).unwrap();
    let upayload_off = pu.payload_offset() as usize;

    let work = dir.join("work");
    fs::create_dir(&work).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not-rpm",
            b"this is not a package at all, just text\n".repeat(10),
            "not an RPM",
        ),
        ("trunc-lead", bytes[..50].to_vec(), "too short"),
        ("trunc-sig", bytes[..200].to_vec(), "truncated"),
        ("trunc-main", bytes[..main_off + 100].to_vec(), "truncated"),
        (
            "trunc-payload",
            bytes[..payload_off + (bytes.len() - payload_off) / 2].to_vec(),
            "",
        ),
    ];
    // Signature header index count absurd.
    let mut b = bytes.clone();
    b[96 + 8..96 + 12].copy_from_slice(&1_000_000u32.to_be_bytes());
    cases.push(("il-absurd", b, "signature header"));
    // Main header data length absurd.
    let mut b = bytes.clone();
    b[main_off + 12..main_off + 16].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    cases.push(("dl-absurd", b, "header"));
    // First non-region entry of the main header points outside the store.
    let mut b = bytes.clone();
    let e1 = main_off + 16 + 16;
    b[e1 + 8..e1 + 12].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    cases.push(("offset-outside", b, "header"));
    // Two entries overlapping: entry 2 gets entry 1's offset.
    let mut b = bytes.clone();
    let e2 = e1 + 16;
    let off1 = b[e1 + 8..e1 + 12].to_vec();
    b[e2 + 8..e2 + 12].copy_from_slice(&off1);
    cases.push(("overlap", b, "header"));
    // Corrupt compressed stream.
    let mut b = bytes.clone();
    for x in &mut b[payload_off + 20..payload_off + 60] {
        *x ^= 0x5a;
    }
    cases.push(("corrupt-zstd", b, ""));
    // cpio entry whose name is not in the header (uncompressed payload, name edited).
    let mut b = ubytes.clone();
    let at = upayload_off
        + b[upayload_off..]
            .windows(9)
            .position(|w| w == b"hello.txt")
            .unwrap();
    b[at] = b'j';
    cases.push(("cpio-not-in-header", b, "not a file of the package header"));
    // The first cpio entry turned into the trailer: every header file is missing from the
    // payload (namesize 11, filesize 0, name "TRAILER!!!").
    let mut b = ubytes.clone();
    let e = upayload_off;
    assert_eq!(&b[e..e + 6], b"070701");
    b[e + 6 + 6 * 8..e + 6 + 7 * 8].copy_from_slice(b"00000000");
    b[e + 6 + 11 * 8..e + 6 + 12 * 8].copy_from_slice(b"0000000b");
    b[e + 110..e + 121].copy_from_slice(b"TRAILER!!!\0");
    cases.push(("missing-from-payload", b, "missing from the payload"));

    for (name, data, want) in &cases {
        let pkg = work.join(format!("{name}.rpm"));
        fs::write(&pkg, data).unwrap();
        let listing = dir_listing(&work);
        let out = rv(&["sign", "--key", s(&key), "--cert", s(&cert), s(&pkg)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: exit status; stderr: {err}"
        );
        assert!(
            err.contains(&format!("{name}.rpm")),
            "{name}: error names the package: {err}"
        );
        assert!(err.contains(want), "{name}: error says {want:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert_eq!(&fs::read(&pkg).unwrap(), data, "{name}: input unchanged");
        assert_eq!(dir_listing(&work), listing, "{name}: no stray files");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }

    // Unknown compressor: rewrite PAYLOADCOMPRESSOR's "zstd" to "zzzz" (header digests then
    // mismatch, which is also refused: check both messages are clear).
    let mut b = bytes.clone();
    let at = main_off
        + b[main_off..payload_off]
            .windows(5)
            .position(|w| w == b"zstd\0")
            .unwrap();
    b[at..at + 4].copy_from_slice(b"zzzz");
    let pkg = work.join("unknown-compressor.rpm");
    fs::write(&pkg, &b).unwrap();
    let out = rv(&["sign", "--key", s(&key), "--cert", s(&cert), s(&pkg)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown-compressor.rpm"));
    assert_eq!(fs::read(&pkg).unwrap(), b);

    // Unwritable output directory: the signed copy cannot be created; the error names the
    // package and the directory. Root ignores directory modes, so as root the command runs as
    // nobody (setpriv), with the key, cert and package made readable to it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let ro = dir.join("ro");
    fs::create_dir(&ro).unwrap();
    let pkg = ro.join("pkg.rpm");
    fs::copy(&good, &pkg).unwrap();
    let outdir = dir.join("ro-out");
    fs::create_dir(&outdir).unwrap();
    for (p, m) in [
        (dir, 0o755),
        (ro.as_path(), 0o755),
        (pkg.as_path(), 0o644),
        (key.as_path(), 0o644),
        (cert.as_path(), 0o644),
    ] {
        mode(p, m);
    }
    mode(&outdir, 0o555);
    let args = [
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--output-dir",
        s(&outdir),
        s(&pkg),
    ];
    let is_root = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let out = if is_root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
            .args(args)
            .output()
            .unwrap()
    } else {
        Command::new(bin()).args(args).output().unwrap()
    };
    mode(&outdir, 0o755);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pkg.rpm") && err.contains("ro-out"),
        "names package and directory: {err}"
    );
    assert!(err.contains("ermission denied"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(dir_listing(&outdir).is_empty());
    assert_eq!(fs::read(&pkg).unwrap(), bytes);
}

#[test]
fn source_packages_skipped_unless_asked() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir, "k", 2048);
    let top = dir.join("srctop");
    fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/src.spec");
    fs::write(
        &spec,
        "Name: srcpkg\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n%description\ns\n%files\n",
    )
    .unwrap();
    run(Command::new("rpmbuild")
        .args(["-bs", "--quiet", "--define"])
        .arg(format!("_topdir {}", top.display()))
        .arg(&spec));
    let srpm = fs::read_dir(top.join("SRPMS"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = fs::read(&srpm).unwrap();
    let out = rv(&["sign", "--key", s(&key), "--cert", s(&cert), s(&srpm)]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped"));
    assert_eq!(fs::read(&srpm).unwrap(), before);
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--include-source",
        s(&srpm),
    ]);
    assert_ok(&out);
    verify_ok(&cert, &srpm);
}

/// A package with a program, a script, a shared library and two data files.
fn mixed_package(dir: &Path) -> PathBuf {
    build_rpm_custom(
        dir,
        "mixed",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib64 %{buildroot}/usr/share/mixed\n\
         cp /bin/true %{buildroot}/usr/bin/tool\n\
         printf '#!/bin/sh\\necho hi\\n' > %{buildroot}/usr/bin/script\n\
         chmod 0755 %{buildroot}/usr/bin/script\n\
         cp /bin/true %{buildroot}/usr/lib64/libmixed.so.1\n\
         head -c 70000 /dev/urandom > %{buildroot}/usr/share/mixed/data.bin\n\
         printf 'notes\\n' > %{buildroot}/usr/share/mixed/notes.txt\n",
        "/usr/bin/tool\n/usr/bin/script\n/usr/lib64/libmixed.so.1\n\
         /usr/share/mixed/data.bin\n/usr/share/mixed/notes.txt\n",
    )
}

/// `rpm -qp` per file: path → whether its tag-276 entry is non-empty.
fn rpm_signed_entries(pkg: &Path) -> std::collections::BTreeMap<String, bool> {
    let q = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILENAMES}\t%{VERITYSIGNATURES}\n]"])
        .arg(pkg));
    String::from_utf8_lossy(&q.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(p, sig)| (p.to_string(), !sig.is_empty()))
        .collect()
}

#[test]
fn only_selected_files_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = openssl_key(d, "sel", 2048);
    let pkg = mixed_package(d);

    // --executables, less the libraries: the program and the script.
    let exe = d.join("exe");
    fs::create_dir(&exe).unwrap();
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--executables",
        "--exclude",
        "/usr/lib64/*",
        "--output-dir",
        s(&exe),
        s(&pkg),
    ]);
    let text = ok_stdout(&out);
    assert!(text.contains("(3 left unsigned by"), "{text}");
    let signed = exe.join(pkg.file_name().unwrap());
    let entries = rpm_signed_entries(&signed);
    let expect: Vec<(&str, bool)> = vec![
        ("/usr/bin/script", true),
        ("/usr/bin/tool", true),
        ("/usr/lib64/libmixed.so.1", false),
        ("/usr/share/mixed/data.bin", false),
        ("/usr/share/mixed/notes.txt", false),
    ];
    let got: Vec<(&str, bool)> = entries.iter().map(|(p, &b)| (p.as_str(), b)).collect();
    assert_eq!(got, expect);
    run(Command::new("rpm").arg("-K").arg(&signed));
    assert_eq!(main_and_payload(&pkg), main_and_payload(&signed));

    // verify: the unselected files are unsigned by policy, and the package is OK.
    let out = rv(&["verify", "-v", "--cert", s(&cert), s(&signed)]);
    let text = ok_stdout(&out);
    assert!(
        text.contains("UNSIGNED-BY-POLICY /usr/share/mixed/notes.txt"),
        "{text}"
    );
    assert!(
        text.contains("OK (5 files: 2 good, 3 unsigned by policy)"),
        "{text}"
    );
    let out = rv(&["verify", "--json", "--cert", s(&cert), s(&signed)]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &doc["packages"][0];
    assert_eq!(p["ok"], true, "{doc}");
    assert_eq!(p["unsigned_by_policy"], 3, "{doc}");
    assert_eq!(p["bad"], 0, "{doc}");

    // --files alone (a choice by path, known before streaming), in place.
    let by_path = d.join("by-path.rpm");
    fs::copy(&pkg, &by_path).unwrap();
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--files",
        "/usr/share/**",
        "--files",
        "/usr/bin/t*",
        "--exclude",
        "**/*.txt",
        s(&by_path),
    ]);
    assert_ok(&out);
    let entries = rpm_signed_entries(&by_path);
    assert!(entries["/usr/bin/tool"] && entries["/usr/share/mixed/data.bin"]);
    assert!(!entries["/usr/bin/script"] && !entries["/usr/share/mixed/notes.txt"]);
    assert!(!entries["/usr/lib64/libmixed.so.1"]);
    verify_ok(&cert, &by_path);
    // The same into --output-dir: the copy beside hashing predicts the selected layout.
    let copies = d.join("copies");
    fs::create_dir(&copies).unwrap();
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--files",
        "/usr/bin/tool",
        "--output-dir",
        s(&copies),
        s(&pkg),
    ]);
    assert_ok(&out);
    let copy = copies.join(pkg.file_name().unwrap());
    let entries = rpm_signed_entries(&copy);
    assert_eq!(entries.values().filter(|&&b| b).count(), 1, "{entries:?}");
    assert!(entries["/usr/bin/tool"]);
    assert_eq!(main_and_payload(&pkg), main_and_payload(&copy));
    run(Command::new("rpm").arg("-K").arg(&copy));
    verify_ok(&cert, &copy);

    // rpm installs it, and enable/audit count the unselected files as unsigned by policy.
    let root = d.join("root");
    verity_test_support::installed::install_into(&root, &[&signed]);
    let doc = enable_dry_run(&root, &cert);
    assert_eq!(doc["skipped"]["unsigned-by-policy"], 3, "{doc}");
    assert!(doc["skipped"].get("unsigned").is_none(), "{doc}");
    assert_eq!(
        doc["unsigned_packages"].as_array().map(Vec::len),
        Some(0),
        "{doc}"
    );
    let out = rv(&["audit", "--root", s(&root), "--cert", s(&cert), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["summary"]["UNSIGNED-BY-POLICY"], 3, "{doc}");
    assert!(doc["summary"].get("UNSIGNED").is_none(), "{doc}");
    assert_eq!(doc["files_checked"], 2, "{doc}");
}

#[test]
fn key_from_rpm_macros_and_fskpass() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = openssl_key(d, "macro", 2048);
    let pkg = build_rpm(d, "macro", "w19.zstdio", Contents::ONE_FILE);
    let home = d.join("home");
    fs::create_dir(&home).unwrap();
    fs::write(
        home.join(".rpmmacros"),
        format!(
            "%_file_signing_key {}\n%_file_signing_cert {}\n%_verity_algorithm SHA512\n",
            key.display(),
            cert.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sign", s(&pkg)])
        .env("HOME", &home)
        .env_remove("RPM_VERITY_KEY_PASS")
        .output()
        .unwrap();
    assert_ok(&out);
    let doc = verify_json(&cert, &pkg);
    assert_eq!(doc["packages"][0]["ok"], true, "{doc}");
    assert_eq!(doc["packages"][0]["algorithm"], "sha512", "{doc}");

    // An encrypted key named by the macro, --fskpass, the passphrase in the environment.
    let enc = d.join("enc.pem");
    openssl::encrypt_key(d, s(&key), s(&enc), "pass:open sesame");
    fs::write(
        home.join(".rpmmacros"),
        format!(
            "%_file_signing_key {}\n%_file_signing_cert {}\n",
            enc.display(),
            cert.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sign", "--fskpass", s(&pkg)])
        .env("HOME", &home)
        .env("RPM_VERITY_KEY_PASS", "open sesame")
        .output()
        .unwrap();
    assert_ok(&out);
    let doc = verify_json(&cert, &pkg);
    assert_eq!(doc["packages"][0]["ok"], true, "{doc}");
    assert_eq!(doc["packages"][0]["algorithm"], "sha256", "{doc}");

    // Without rpm's macros there is no key.
    fs::remove_file(home.join(".rpmmacros")).unwrap();
    let out = Command::new(bin())
        .args(["sign", s(&pkg)])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signing key"));
}

/// An EC key on `curve` (PKCS#8 PEM, as `openssl genpkey` writes it) and a self-signed
/// certificate.
fn openssl_ec_key(dir: &Path, name: &str, curve: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    openssl::genpkey_ec(dir, s(&key), curve);
    openssl::cert_for_key(dir, s(&key), s(&cert), "/CN=rpm-format test", 1);
    (key, cert)
}

/// The decoded-length of each entry of tag 276 as stored (base64 with newlines, plus NUL).
fn entry_lens(pkg: &Path) -> Vec<usize> {
    let sh = sig_header(pkg);
    let h = sh.header();
    h.get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
        .unwrap()
        .unwrap()
        .iter()
        .map(|e| e.len() + 1)
        .collect()
}

/// ECDSA keys: a package signed twice is byte-identical (RFC 6979 nonces), in place, rewritten
/// and into an output directory; rpm, `verify` and openssl accept every signature; rpmsign's own
/// ECDSA signatures (random nonces) pass `verify` too; entries are smaller than RSA-2048's.
#[test]
fn ecdsa_signing_is_reproducible_and_accepted_by_rpm_and_rpmsign_and_openssl() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let setup = signing_setup(dir);
    let multi = build_rpm(dir, "ecmulti", "w19.zstdio", Contents::RPMSIGN_SAFE);
    let single = build_rpm(dir, "ecsingle", "w9.gzdio", Contents::ONE_FILE);
    let many = build_rpm_custom(
        dir,
        "ecmany",
        "w19.zstdio",
        "mkdir -p %{buildroot}/opt/many\nfor i in $(seq 1 300); do echo \"file $i\" > %{buildroot}/opt/many/f$i; done\n",
        "/opt/many\n",
    );
    // RSA-2048 entries, for the size comparison.
    let rsa = dir.join("rsa.rpm");
    fs::copy(&multi, &rsa).unwrap();
    rpmsign_verity(&setup, &rsa);
    let rsa_entry = *entry_lens(&rsa).iter().max().unwrap();
    for (curve, alg) in [
        ("P-256", "sha256"),
        ("P-384", "sha512"),
        ("P-384", "sha256"),
    ] {
        let (key, cert) = openssl_ec_key(dir, &format!("ec-{curve}-{alg}"), curve);
        for orig in [&multi, &single, &many] {
            let name = orig.file_name().unwrap().to_str().unwrap();
            let mut signed = Vec::new();
            for round in 0..2 {
                let ours = dir.join(format!("ours{round}-{name}"));
                fs::copy(orig, &ours).unwrap();
                let out = rv(&[
                    "sign",
                    "--key",
                    s(&key),
                    "--cert",
                    s(&cert),
                    "--verityalgo",
                    alg,
                    s(&ours),
                ]);
                assert_ok(&out);
                signed.push(fs::read(&ours).unwrap());
                // And into an output directory (the early copy beside hashing).
                let outdir = dir.join(format!("out{round}"));
                let _ = fs::remove_dir_all(&outdir);
                fs::create_dir(&outdir).unwrap();
                let out = rv(&[
                    "sign",
                    "--key",
                    s(&key),
                    "--cert",
                    s(&cert),
                    "--verityalgo",
                    alg,
                    "--output-dir",
                    s(&outdir),
                    s(orig),
                ]);
                assert_ok(&out);
                let copy = fs::read(outdir.join(name)).unwrap();
                assert_eq!(
                    copy, signed[round],
                    "{curve} {alg} {name}: output dir differs"
                );
            }
            assert!(
                signed[0] == signed[1],
                "{curve} {alg} {name}: not reproducible"
            );
            let ours = dir.join(format!("ours0-{name}"));
            check_signed(dir, orig, &ours, &cert, alg);
            if orig == &many {
                // Rewritten with the layout of the longest signatures (the one predicted for the
                // copy beside hashing): the reservation takes up what shorter ones leave. Only
                // when some entry is shorter in base64: a signature one or two bytes short of
                // the longest often encodes to the same length, and with a random key's
                // certificate that can hold for every file.
                let sh = sig_header(&ours);
                let h = sh.header();
                let reserved = h
                    .entry(tags::SIG_RESERVEDSPACE)
                    .map(|e| h.entry_data(e).len());
                let lens = entry_lens(&ours);
                let longest = lens.iter().copied().max().unwrap_or(0);
                if lens.iter().any(|&l| l < longest) {
                    assert!(
                        reserved > Some(4128),
                        "{curve} {alg}: reservation {reserved:?}"
                    );
                } else {
                    assert!(reserved >= Some(4128), "{curve} {alg}: {reserved:?}");
                }
            }
            if curve == "P-256" {
                let lens = entry_lens(&ours);
                assert!(
                    lens.iter().all(|&l| l < rsa_entry * 6 / 10),
                    "P-256 entries {lens:?} vs RSA-2048's {rsa_entry}"
                );
            }
        }
        // rpmsign with the same key: random nonces, but our verify accepts them, and tag 277
        // is the same.
        let theirs = dir.join("theirs.rpm");
        fs::copy(&multi, &theirs).unwrap();
        let ec_setup = support::SigningSetup {
            gpg_home: setup.gpg_home.clone(),
            key: key.clone(),
            cert: cert.clone(),
        };
        support::rpmsign_verity_alg(&ec_setup, &theirs, Some(alg));
        let out = rv(&["verify", "--cert", s(&cert), s(&theirs)]);
        assert!(
            out.status.success(),
            "{curve} {alg}: verify rejects rpmsign's ECDSA signatures: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        check_signed(dir, &multi, &theirs, &cert, alg);
        // Another EC key's certificate does not verify them.
        let (_, other) = openssl_ec_key(dir, "other", curve);
        let out = rv(&["verify", "--cert", s(&other), s(&theirs)]);
        assert!(
            !out.status.success(),
            "{curve}: verified with the wrong certificate"
        );
    }
}

/// `--executables` alone, on a package with an ELF program, a real shared library (0644, as
/// distributions ship them), scripts (one not even executable) and data files (one executable
/// but neither ELF nor `#!`): exactly the programs, the library and the scripts are signed, by
/// content; rpm reads the entries back, `rpm -K` passes, rpm 4.18 installs the package, and
/// `enable`/`audit` count the data files as unsigned by policy.
#[test]
fn executables_sign_programs_libraries_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = openssl_key(d, "exe", 2048);
    let pkg = build_rpm_custom(
        d,
        "exekinds",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib64 %{buildroot}/usr/libexec \
         %{buildroot}/usr/share/exekinds\n\
         cp /bin/true %{buildroot}/usr/bin/tool\n\
         cp -L /lib/x86_64-linux-gnu/libz.so.1 %{buildroot}/usr/lib64/libz.so.1\n\
         chmod 0644 %{buildroot}/usr/lib64/libz.so.1\n\
         printf '#!/bin/sh\\necho hi\\n' > %{buildroot}/usr/bin/script\n\
         chmod 0755 %{buildroot}/usr/bin/script\n\
         printf '#!/usr/bin/python3\\nprint(1)\\n' > %{buildroot}/usr/libexec/helper.py\n\
         chmod 0644 %{buildroot}/usr/libexec/helper.py\n\
         head -c 70000 /dev/urandom > %{buildroot}/usr/share/exekinds/data.bin\n\
         printf 'echo not a script without its #!\\n' > %{buildroot}/usr/share/exekinds/run.txt\n\
         chmod 0755 %{buildroot}/usr/share/exekinds/run.txt\n\
         printf 'notes\\n' > %{buildroot}/usr/share/exekinds/notes.txt\n",
        "/usr/bin/tool\n/usr/bin/script\n/usr/lib64/libz.so.1\n/usr/libexec/helper.py\n\
         %dir /usr/share/exekinds\n/usr/share/exekinds/data.bin\n/usr/share/exekinds/run.txt\n\
         /usr/share/exekinds/notes.txt\n",
    );
    // What rpm itself (libmagic) says the files are: the library really is a shared object.
    let q = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILENAMES}\t%{FILECLASS}\n]"])
        .arg(&pkg));
    let classes = String::from_utf8_lossy(&q.stdout).to_string();
    let class = |p: &str| {
        classes
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{p}\t")))
            .unwrap_or_else(|| panic!("{p} missing: {classes}"))
            .to_string()
    };
    assert!(
        class("/usr/lib64/libz.so.1").contains("shared object"),
        "{classes}"
    );
    assert!(class("/usr/bin/tool").starts_with("ELF"), "{classes}");
    assert!(class("/usr/bin/script").contains("script"), "{classes}");
    let out_dir = d.join("signed");
    fs::create_dir(&out_dir).unwrap();
    let out = rv(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        "--executables",
        "--output-dir",
        s(&out_dir),
        s(&pkg),
    ]);
    ok_stdout(&out);
    let signed = out_dir.join(pkg.file_name().unwrap());
    let entries = rpm_signed_entries(&signed);
    let got: Vec<(&str, bool)> = entries.iter().map(|(p, &b)| (p.as_str(), b)).collect();
    assert_eq!(
        got,
        [
            ("/usr/bin/script", true),
            ("/usr/bin/tool", true),
            ("/usr/lib64/libz.so.1", true),
            ("/usr/libexec/helper.py", true),
            ("/usr/share/exekinds", false),
            ("/usr/share/exekinds/data.bin", false),
            ("/usr/share/exekinds/notes.txt", false),
            ("/usr/share/exekinds/run.txt", false),
        ]
    );
    run(Command::new("rpm").arg("-K").arg(&signed));
    // rpm's own reading of the signatures: four entries, each a PKCS#7 in base64.
    let q = run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{VERITYSIGNATURES}\n]"])
        .arg(&signed));
    let sigs = String::from_utf8_lossy(&q.stdout).to_string();
    // Every signature's first base64 line is the same (same structure, signer and lengths).
    let first = sigs.lines().find(|l| !l.is_empty()).unwrap_or_default();
    assert!(first.starts_with("MII"), "{sigs}");
    assert_eq!(sigs.lines().filter(|l| *l == first).count(), 4, "{sigs}");
    verify_ok(&cert, &signed);

    let root = d.join("root");
    verity_test_support::installed::install_into(&root, &[&signed]);
    let q = run(Command::new("rpm").args([
        "--root",
        s(&root),
        "--dbpath",
        "/var/lib/rpm",
        "-q",
        "exekinds",
    ]));
    assert!(String::from_utf8_lossy(&q.stdout).starts_with("exekinds-1.0-1"));
    let doc = enable_dry_run(&root, &cert);
    assert_eq!(doc["skipped"]["unsigned-by-policy"], 3, "{doc}");
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "/usr/bin/script",
            "/usr/bin/tool",
            "/usr/lib64/libz.so.1",
            "/usr/libexec/helper.py"
        ],
        "{doc}"
    );
}
