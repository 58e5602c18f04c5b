//! Verdicts users can trust: `sign` and `verify` used the way people get them wrong, or fed
//! packages that pass rpm's own checks yet cannot be installed. Each case once printed OK, lost
//! a package or signed something rpm refuses; packages come from the real rpmbuild.

use verity_test_support::rpmbuild as support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rpm_format::{tags, Package};
use sha1::Digest as _;
use support::{build_rpm, build_rpm_custom, Contents};
use verity_test_support::{openssl, run, s, text};

fn rv(args: &[&str]) -> Output {
    Command::new(verity_test_support::bin!())
        .args(args)
        .output()
        .expect("run rpm-verity")
}

fn openssl_key(dir: &Path) -> (PathBuf, PathBuf) {
    openssl::rsa_key_cert(dir, "k", 2048, "misuse")
}

fn sign(key: &Path, cert: &Path, more: &[&str]) -> Output {
    let mut args = vec!["sign", "--key", s(key), "--cert", s(cert)];
    args.extend_from_slice(more);
    rv(&args)
}

#[test]
fn verify_without_cert_is_unchecked_not_ok() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let pkg = build_rpm(dir, "nocert", "w19.zstdio", Contents::RPMSIGN_SAFE);
    assert!(sign(&key, &cert, &[s(&pkg)]).status.success());

    let out = rv(&["verify", s(&pkg)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    assert!(all.contains(": UNCHECKED ("), "{all}");
    assert!(all.contains("signatures not checked"), "{all}");
    assert!(!all.contains(" good") && !all.contains(": OK"), "{all}");

    let out = rv(&["verify", "--json", s(&pkg)]);
    assert_eq!(out.status.code(), Some(4));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &doc["packages"][0];
    assert_eq!(p["ok"], false, "{doc}");
    assert_eq!(p["checked"], false, "{doc}");
    assert_eq!(p["good"], 0, "{doc}");
    assert_eq!(doc["verified"], 0, "{doc}");
    assert_eq!(doc["unchecked"], 1, "{doc}");

    // Asked for on purpose: structure fine → 0, still not called OK.
    let out = rv(&["verify", "--no-cert", s(&pkg)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains(": UNCHECKED ("), "{all}");
    assert!(!all.contains("note:"), "{all}");

    let out = rv(&["verify", "--cert", s(&cert), s(&pkg)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains(": OK ("), "{all}");
    assert_eq!(
        rv(&["verify", "--cert", s(&cert), "--no-cert", s(&pkg)])
            .status
            .code(),
        Some(2)
    );

    // The exit code is documented where scripts look.
    let top = String::from_utf8_lossy(&rv(&["--help"]).stdout).into_owned();
    assert!(top.contains("4  verify only"), "{top}");
    let help = String::from_utf8_lossy(&rv(&["verify", "--help"]).stdout).into_owned();
    assert!(
        help.contains("--no-cert") && help.contains("  4  "),
        "{help}"
    );
}

#[test]
fn output_dir_collisions_refused_before_signing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let one = build_rpm(dir, "clash", "w19.zstdio", Contents::ONE_FILE);
    let two = build_rpm(dir, "clash2", "w19.zstdio", Contents::ONE_FILE);
    let (a, b) = (dir.join("a"), dir.join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let ax = a.join("x.rpm");
    let bx = b.join("x.rpm");
    fs::copy(&one, &ax).unwrap();
    fs::copy(&two, &bx).unwrap();
    let out_dir = dir.join("out");
    fs::create_dir(&out_dir).unwrap();

    let out = sign(&key, &cert, &["--output-dir", s(&out_dir), s(&ax), s(&bx)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(s(&ax)) && err.contains(s(&bx)) && err.contains("both"),
        "{err}"
    );
    assert!(
        fs::read_dir(&out_dir).unwrap().next().is_none(),
        "nothing written"
    );
    assert_eq!(fs::read(&ax).unwrap(), fs::read(&one).unwrap());
    assert_eq!(fs::read(&bx).unwrap(), fs::read(&two).unwrap());

    // An input that is its own output, spelled differently.
    let out = Command::new(verity_test_support::bin!())
        .current_dir(&a)
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .args(["--output-dir", ".", "./x.rpm"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("x.rpm") && err.contains("itself"), "{err}");
    assert_eq!(fs::read(&ax).unwrap(), fs::read(&one).unwrap());
    assert_eq!(fs::read_dir(&a).unwrap().count(), 1, "no stray files");

    // The same package twice, in place: refused too.
    let out = sign(&key, &cert, &[s(&ax), &format!("{}/../a/x.rpm", s(&a))]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(fs::read(&ax).unwrap(), fs::read(&one).unwrap());
}

/// Rewrites hello.txt's bytes in an uncompressed payload and recomputes everything `rpm -K`
/// checks, as someone hiding a change would.
fn tamper(orig: &Path) -> Vec<u8> {
    edit_and_redigest(orig, |bytes, payload_off| {
        let at = payload_off
            + bytes[payload_off..]
                .windows(12)
                .position(|w| w == b"hello world\n")
                .unwrap();
        bytes[at..at + 12].copy_from_slice(b"HELLO WORLD\n");
    })
}

/// Applies `edit` (same-length changes, given the payload's offset) to an uncompressed
/// package and recomputes PAYLOADDIGEST and PAYLOADDIGESTALT, header SHA-256 and SHA-1, MD5.
fn edit_and_redigest(orig: &Path, edit: impl FnOnce(&mut [u8], usize)) -> Vec<u8> {
    let mut bytes = fs::read(orig).unwrap();
    let p = Package::open_unverified(fs::File::open(orig).unwrap()).unwrap();
    let (main_off, payload_off) = (p.main_header_offset() as usize, p.payload_offset() as usize);
    let old_payload = hex::encode(sha2::Sha256::digest(&bytes[payload_off..]));
    let old_main = bytes[main_off..payload_off].to_vec();
    let old_md5 = md5::Md5::digest(&bytes[main_off..]);

    edit(&mut bytes, payload_off);
    let new_payload = hex::encode(sha2::Sha256::digest(&bytes[payload_off..]));
    let n = replace_all(
        &mut bytes[main_off..payload_off],
        old_payload.as_bytes(),
        new_payload.as_bytes(),
    );
    assert!(n >= 1, "PAYLOADDIGEST found");
    let new_main = bytes[main_off..payload_off].to_vec();
    let sig = &mut bytes[..main_off];
    for (old, new) in [
        (
            hex::encode(sha2::Sha256::digest(&old_main)),
            hex::encode(sha2::Sha256::digest(&new_main)),
        ),
        (
            hex::encode(sha1::Sha1::digest(&old_main)),
            hex::encode(sha1::Sha1::digest(&new_main)),
        ),
    ] {
        assert_eq!(replace_all(sig, old.as_bytes(), new.as_bytes()), 1);
    }
    let new_md5 = md5::Md5::digest(&bytes[main_off..]);
    assert_eq!(replace_all(&mut bytes[..main_off], &old_md5, &new_md5), 1);
    bytes
}

fn replace_all(hay: &mut [u8], old: &[u8], new: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + old.len() <= hay.len() {
        if &hay[i..i + old.len()] == old {
            hay[i..i + old.len()].copy_from_slice(new);
            n += 1;
            i += old.len();
        } else {
            i += 1;
        }
    }
    n
}

#[test]
fn content_not_matching_the_header_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm(dir, "tamper", "w0.ufdio", Contents::RPMSIGN_SAFE);
    let bad = dir.join("tampered.rpm");
    let data = tamper(&orig);
    fs::write(&bad, &data).unwrap();

    // rpm's own package check accepts it; installing it fails.
    let k = run(Command::new("rpm").args(["-K", "--nosignature"]).arg(&bad));
    assert!(String::from_utf8_lossy(&k.stdout).contains("digests OK"));
    let root = dir.join("root");
    fs::create_dir(&root).unwrap();
    run(Command::new("rpmdb").args(["--root", s(&root), "--initdb"]));
    let i = Command::new("rpm")
        .args([
            "--root",
            s(&root),
            "-i",
            "--nodeps",
            "--nosignature",
            "--noscripts",
        ])
        .args(["--define", "__transaction_fsverity %{nil}"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!i.status.success(), "rpm -i accepted it: {}", text(&i));
    assert!(text(&i).contains("Digest mismatch"), "{}", text(&i));

    let out = sign(&key, &cert, &[s(&bad)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("corrupt package, not signed: /opt/t/hello.txt: content does not match the header's digest"),
        "{err}"
    );
    assert!(err.contains("tampered.rpm"), "{err}");
    assert_eq!(fs::read(&bad).unwrap(), data, "unchanged");

    // Signed anyway by a signer that does not look (the library's own pieces): verify
    // names the file, though its fs-verity signature matches its content.
    let pool = verity_package::HashPool::new(1, fsverity::HashAlgorithm::Sha256).unwrap();
    let d = verity_package::digest_package(
        &bad,
        fsverity::HashAlgorithm::Sha256,
        &pool,
        &verity_package::NoProgress,
    )
    .unwrap();
    pool.shutdown();
    let signer = verity_signing::LocalSigner::load(&key, Some(&cert), None).unwrap();
    let sigs = verity_signing::Signer::sign_digests(&signer, &d.digests).unwrap();
    let plan = d.headers.signature.with_verity(&sigs, 1).unwrap();
    let off = d.headers.main_header_offset() as usize;
    let mut signed = data[..96].to_vec();
    signed.extend_from_slice(&plan.signature_bytes);
    signed.extend_from_slice(&data[off..]);
    let signed_path = dir.join("tampered-signed.rpm");
    fs::write(&signed_path, signed).unwrap();
    let out = rv(&["verify", "--cert", s(&cert), s(&signed_path)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("CORRUPT   /opt/t/hello.txt: content does not match"),
        "{all}"
    );
    assert!(all.contains(": FAILED ("), "{all}");
}

/// The same for a file streamed in pieces (3 MiB: chunks lent whole to the hashing threads),
/// changed in its middle: the check sees the bytes however they reach the hashing.
#[test]
fn streamed_content_not_matching_the_header_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm_custom(
        dir,
        "tamperbig",
        "w0.ufdio",
        "mkdir -p %{buildroot}/opt/b\n\
         yes 'streamed text' | head -c 3145745 > %{buildroot}/opt/b/big\n\
         printf 'after\\n' > %{buildroot}/opt/b/later\n",
        "/opt/b/big\n/opt/b/later\n",
    );
    let bad = dir.join("tampered-big.rpm");
    let data = edit_and_redigest(&orig, |bytes, payload_off| {
        let at = payload_off + 2_000_000;
        assert!(bytes[at].is_ascii_lowercase() || bytes[at] == b' ' || bytes[at] == b'\n');
        bytes[at] = b'#';
    });
    let err = refused_and_original_signs(&key, &cert, &bad, &data, &orig);
    assert!(
        err.contains("/opt/b/big: content does not match the header's digest"),
        "{err}"
    );
}

/// Writes `data` (an edit of `orig`) to `bad`; `sign` must refuse it with exit 1 and leave it
/// unchanged, and sign the untouched `orig` (so the check does not refuse everything).
/// Returns the refusal's stderr.
fn refused_and_original_signs(
    key: &Path,
    cert: &Path,
    bad: &Path,
    data: &[u8],
    orig: &Path,
) -> String {
    fs::write(bad, data).unwrap();
    let out = sign(key, cert, &[s(bad)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(fs::read(bad).unwrap(), data, "unchanged");
    let out = sign(key, cert, &[s(orig)]);
    assert!(out.status.success(), "{}", text(&out));
    err
}

/// The members of a hardlink set of empty files are checked too: each one's FILEDIGESTS entry
/// must be the empty content's digest (none of them carries content for the others).
#[test]
fn empty_hardlinks_not_matching_the_header_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm_custom(
        dir,
        "emptylinks",
        "w0.ufdio",
        "mkdir -p %{buildroot}/opt/e\n\
         : > %{buildroot}/opt/e/a\n\
         ln %{buildroot}/opt/e/a %{buildroot}/opt/e/b\n\
         printf 'x\\n' > %{buildroot}/opt/e/other\n",
        "/opt/e/a\n/opt/e/b\n/opt/e/other\n",
    );
    let empty = hex::encode(sha2::Sha256::digest(b""));
    let wrong = hex::encode(sha2::Sha256::digest(b"x"));
    let bad = dir.join("empty-links.rpm");
    let data = edit_and_redigest(&orig, |bytes, payload_off| {
        let n = replace_all(
            &mut bytes[..payload_off],
            empty.as_bytes(),
            wrong.as_bytes(),
        );
        assert_eq!(n, 2, "one FILEDIGESTS entry per empty member");
    });
    let err = refused_and_original_signs(&key, &cert, &bad, &data, &orig);
    assert!(
        err.contains("/opt/e/a: content does not match the header's digest")
            || err.contains("/opt/e/b: content does not match the header's digest"),
        "{err}"
    );
}

/// PAYLOADDIGESTALT (the uncompressed payload's digest) is checked too: a package whose
/// compressed bytes match PAYLOADDIGEST but whose PAYLOADDIGESTALT disagrees is refused, with
/// every other digest (header SHA-256/SHA-1, MD5) recomputed so that only that check can see it.
#[test]
fn uncompressed_payload_digest_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm(dir, "alt", "w0.ufdio", Contents::ONE_FILE);
    let flip_alt = |bytes: &mut [u8], payload_off: usize| {
        // Uncompressed: PAYLOADDIGEST and PAYLOADDIGESTALT hold the same hex string; tag
        // order puts PAYLOADDIGESTALT (5097) after PAYLOADDIGEST (5092) in the data store.
        let hex = hex::encode(sha2::Sha256::digest(&bytes[payload_off..]));
        let main = &bytes[..payload_off];
        let first = main.windows(64).position(|w| w == hex.as_bytes()).unwrap();
        let second = first
            + 64
            + main[first + 64..]
                .windows(64)
                .position(|w| w == hex.as_bytes())
                .expect("PAYLOADDIGESTALT present");
        bytes[second] = if bytes[second] == b'0' { b'1' } else { b'0' };
    };
    let bad = dir.join("alt-digest.rpm");
    let data = edit_and_redigest(&orig, flip_alt);
    fs::write(&bad, &data).unwrap();

    let out = sign(&key, &cert, &[s(&bad)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("alt-digest.rpm") && err.contains("PAYLOADDIGESTALT"),
        "{err}"
    );
    assert_eq!(fs::read(&bad).unwrap(), data, "unchanged");

    // The untouched package signs and verifies: the check is not refusing everything. The
    // same edit made after signing is caught by verify.
    let out = sign(&key, &cert, &[s(&orig)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = rv(&["verify", "--cert", s(&cert), s(&orig)]);
    assert!(out.status.success(), "{}", text(&out));
    let signed_bad = dir.join("signed-alt-digest.rpm");
    fs::write(&signed_bad, edit_and_redigest(&orig, flip_alt)).unwrap();
    let out = rv(&["verify", "--cert", s(&cert), s(&signed_bad)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("PAYLOADDIGESTALT"), "{}", text(&out));
}

#[test]
fn package_without_digests_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm(dir, "nodig", "w19.zstdio", Contents::ONE_FILE);
    let data = fs::read(&orig).unwrap();
    let p = Package::open_unverified(fs::File::open(&orig).unwrap()).unwrap();
    let plan = p
        .signature
        .rewrite(|b| {
            for tag in [tags::SIG_SHA1, tags::SIG_SHA256, tags::SIG_MD5] {
                b.remove(tag);
            }
            Ok(())
        })
        .unwrap();
    let mut stripped = data[..96].to_vec();
    stripped.extend_from_slice(&plan.signature_bytes);
    stripped.extend_from_slice(&data[p.main_header_offset() as usize..]);
    let pkg = dir.join("nodigest.rpm");
    fs::write(&pkg, &stripped).unwrap();

    let out = sign(&key, &cert, &[s(&pkg)]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nodigest.rpm") && err.contains("no header digest"),
        "{err}"
    );
    assert_eq!(fs::read(&pkg).unwrap(), stripped);
    let out = rv(&["verify", "--no-cert", s(&pkg)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn symlinked_package_signs_the_target_and_keeps_the_link() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    let orig = build_rpm(dir, "linked", "w19.zstdio", Contents::RPMSIGN_SAFE);
    let before = fs::read(&orig).unwrap();
    let check = |p: &Path| rv(&["verify", "--cert", s(&cert), s(p)]).status.code();

    // Rewrite mode (--output-dir): the copy is named as given, link and target untouched.
    let link = dir.join("link.rpm");
    std::os::unix::fs::symlink(&orig, &link).unwrap();
    let out_dir = dir.join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = sign(&key, &cert, &["--output-dir", s(&out_dir), s(&link)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(fs::symlink_metadata(out_dir.join("link.rpm"))
        .unwrap()
        .is_file());
    assert_eq!(check(&out_dir.join("link.rpm")), Some(0));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&orig).unwrap(), before);

    // In place, both when the signature fits (ONE_FILE) and when the file is rewritten: the
    // target is signed, the link stays a link.
    for (name, c) in [
        ("inplace", Contents::ONE_FILE),
        ("rewrite", Contents::RPMSIGN_SAFE),
    ] {
        let target = build_rpm(dir, name, "w19.zstdio", c);
        let link = dir.join(format!("{name}-link.rpm"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let out = sign(&key, &cert, &[s(&link)]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name}: link kept"
        );
        assert_eq!(check(&target), Some(0), "{name}: target signed");
    }
}

#[test]
fn control_characters_in_file_names_are_escaped() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = openssl_key(dir);
    // rpmbuild refuses control characters in names: build with a stand-in, then put the
    // escape into header and payload alike, as a hostile packager's own tools would.
    let built = build_rpm_custom(
        dir,
        "esc",
        "w0.ufdio",
        "mkdir -p %{buildroot}/opt/e\nprintf x > '%{buildroot}/opt/e/redQ[31mX'\n",
        "/opt/e/redQ[31mX\n",
    );
    let data = edit_and_redigest(&built, |bytes, _| {
        assert_eq!(replace_all(bytes, b"redQ[31mX", b"red\x1b[31mX"), 2);
    });
    let pkg = dir.join("esc.rpm");
    fs::write(&pkg, data).unwrap();
    let out = sign(&key, &cert, &["-v", s(&pkg)]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("/opt/e/red\\x1b[31mX"), "{all}");
    assert!(!all.contains('\x1b'), "raw escape printed: {all:?}");
    let out = rv(&["verify", "-v", "--cert", s(&cert), s(&pkg)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("/opt/e/red\\x1b[31mX"), "{all}");
    assert!(!all.contains('\x1b'), "raw escape printed: {all:?}");
    // JSON keeps the name exact (serde escapes it).
    let out = rv(&["verify", "--json", "--cert", s(&cert), s(&pkg)]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["packages"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"/opt/e/red\x1b[31mX"), "{names:?}");
}

/// The files docs/misuse.md describes, in `src`.
fn misuse_fixture(src: &Path, build: &Path) {
    for (name, cn) in [("k", "misuse"), ("other", "other")] {
        let (key, crt) = (
            src.join(format!("{name}.key")),
            src.join(format!("{name}.crt")),
        );
        let subj = format!("/CN={cn}");
        // A fixed 20-byte serial: openssl's random one is a byte shorter one time in 128,
        // which changes the signature length and so the growth the table records.
        let serial = Some("0x1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c");
        let rsa = openssl::rsa(2048);
        openssl::self_signed(src, s(&key), s(&crt), &rsa, &subj, 2, serial);
    }
    let (key, enc) = (src.join("k.key"), src.join("enc.key"));
    openssl::encrypt_key(src, s(&key), s(&enc), "pass:secret");
    // Uncompressed, so that sizes in messages do not change from build to build.
    let one = build_rpm(build, "one", "w0.ufdio", Contents::ONE_FILE);
    let many = build_rpm(build, "many", "w19.zstdio", Contents::RPMSIGN_SAFE);
    fs::copy(&one, src.join("one.rpm")).unwrap();
    fs::copy(&many, src.join("many.rpm")).unwrap();
    fs::copy(&one, src.join("signed.rpm")).unwrap();
    let k = (src.join("k.key"), src.join("k.crt"));
    assert!(sign(&k.0, &k.1, &[s(&src.join("signed.rpm"))])
        .status
        .success());
    fs::write(src.join("notes.txt"), "not a package\n").unwrap();
    for d in ["pkgs", "ro", "a", "b", "out"] {
        fs::create_dir(src.join(d)).unwrap();
    }
    fs::copy(&many, src.join("ro/many.rpm")).unwrap();
    fs::copy(&one, src.join("a/one.rpm")).unwrap();
    fs::copy(&one, src.join("b/one.rpm")).unwrap();
    let middle = |pkg: &Path| {
        let bytes = fs::read(pkg).unwrap();
        let p = Package::open_unverified(fs::File::open(pkg).unwrap()).unwrap();
        let payload = p.payload_offset() as usize;
        let at = payload + (bytes.len() - payload) / 2;
        (bytes, at)
    };
    let (bytes, at) = middle(&one);
    fs::write(src.join("trunc.rpm"), &bytes[..at]).unwrap();
    let (mut bytes, at) = middle(&many);
    bytes[at] ^= 0x55;
    fs::write(src.join("corrupt.rpm"), bytes).unwrap();
}

/// What each case does to its copy of the fixture before the command runs.
const MISUSE_CASES: &[(&str, &[(&str, u32)])] = &[
    ("wrong-cert", &[]),
    ("missing-key", &[]),
    ("encrypted-key-no-passphrase", &[]),
    ("wrong-passphrase", &[]),
    ("not-an-rpm", &[]),
    ("directory", &[]),
    ("read-only-package", &[("one.rpm", 0o444)]),
    ("read-only-directory", &[("ro", 0o555)]),
    ("missing-output-dir", &[]),
    ("output-dir-collision", &[]),
    ("re-signing", &[]),
    ("verify-without-cert", &[]),
    ("verify-wrong-cert", &[]),
    ("truncated-package", &[]),
    ("corrupt-payload", &[]),
];

/// A markdown table row's cells (`\|` is a `|` inside a cell).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

fn unquote(cell: &str) -> &str {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

/// An output line with what changes from run to run replaced: the case directory, durations,
/// certificate serial numbers, digests (the packages' payloads hold build times).
fn normalize(line: &str, dir: &str) -> String {
    let line = line.replace(dir, "$PWD");
    let mut words: Vec<String> = Vec::new();
    for w in line.split(' ') {
        let core = w.trim_end_matches([',', ')', ';', ':']);
        let tail = &w[core.len()..];
        let is_secs = core
            .strip_suffix('s')
            .and_then(|n| n.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        let is_serial = words.last().is_some_and(|p| p == "serial")
            && !core.is_empty()
            && core.bytes().all(|c| c.is_ascii_hexdigit());
        let is_digest = core.len() >= 32 && core.bytes().all(|c| c.is_ascii_hexdigit());
        words.push(if is_secs {
            format!("N.NNs{tail}")
        } else if is_serial {
            format!("SERIAL{tail}")
        } else if is_digest {
            format!("HEX{tail}")
        } else {
            w.to_string()
        });
    }
    words.join(" ")
}

/// Every row of docs/misuse.md's table of mistakes, run: the exit code and the output are
/// the documented ones, and every case this test knows is documented.
#[test]
fn documented_mistakes_give_the_documented_message() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/misuse.md");
    let doc = fs::read_to_string(&doc_path).unwrap();
    let rows: Vec<Vec<String>> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(cells)
        .filter(|c| c.len() == 5)
        .collect();
    let documented: Vec<&str> = rows.iter().map(|r| unquote(&r[0])).collect();
    let known: Vec<&str> = MISUSE_CASES.iter().map(|c| c.0).collect();
    assert_eq!(documented, known, "docs/misuse.md's cases");

    let t = tempfile::tempdir().unwrap();
    let dir = fs::canonicalize(t.path()).unwrap();
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    misuse_fixture(&src, &dir.join("build"));
    // As root, run as nobody: permissions are what several mistakes are about.
    let root = String::from_utf8_lossy(&run(Command::new("id").arg("-u")).stdout).trim() == "0";
    if root {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut wrong = Vec::new();
    for (row, (id, modes)) in rows.iter().zip(MISUSE_CASES) {
        let case = dir.join(id);
        run(Command::new("cp").arg("-a").arg(&src).arg(&case));
        if root {
            run(Command::new("chown").args(["-R", "65534:65534"]).arg(&case));
        }
        for (path, mode) in *modes {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(case.join(path), fs::Permissions::from_mode(*mode)).unwrap();
        }
        let words: Vec<&str> = unquote(&row[2]).split_whitespace().collect();
        let at = words.iter().position(|w| *w == "rpm-verity").unwrap();
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(verity_test_support::bin!());
            c
        } else {
            Command::new(verity_test_support::bin!())
        };
        cmd.args(&words[at + 1..])
            .current_dir(&case)
            .env_remove(verity_signing::KEY_PASSPHRASE_ENV);
        for env in &words[..at] {
            let (k, v) = env.split_once('=').unwrap();
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .filter(|l| !l.trim().is_empty())
            .map(|l| normalize(l, s(&case)))
            .collect();
        let message = lines
            .iter()
            .map(|l| format!("`{}`", l.replace('|', "\\|")))
            .collect::<Vec<_>>()
            .join("<br>");
        let code = out.status.code().map(|c| c.to_string()).unwrap_or_default();
        if code != row[3] || message != row[4] {
            wrong.push(format!(
                "| `{id}` | {} | {} | {code} | {message} |",
                row[1], row[2]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/misuse.md differs from what the program does; the rows as they are:\n{}",
        wrong.join("\n")
    );
}
