//! `rpm-verity sign-file` against fsverity-utils: the known-answer signature, byte equality with
//! `fsverity sign` for keys made here with openssl, and clean failures on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use verity_test_support::openssl::{cert_for_key, encrypt_key, genpkey_ec, openssl};
use verity_test_support::s;

const BIN: &str = env!("CARGO_BIN_EXE_rpm-verity");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// fsverity-utils' test pattern P(n) (spec §1.5).
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 11) + (i % 439) + (i % 1103)) as u8)
        .collect()
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .env_remove("RPM_VERITY_KEY_PASS")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> Output {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// RSA key of `bits` (PKCS#8 PEM, `NAME.key`), its PKCS#1 form (`NAME.pkcs1`) and a self-signed
/// certificate (`NAME.crt`).
fn make_key(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let pkcs1 = dir.join(format!("{name}.pkcs1"));
    let cert = dir.join(format!("{name}.crt"));
    openssl(dir, &["genrsa", "-out", s(&key), &bits.to_string()]);
    openssl(
        dir,
        &["rsa", "-in", s(&key), "-traditional", "-out", s(&pkcs1)],
    );
    cert_for_key(dir, s(&key), s(&cert), &format!("/CN={name}"), 1);
    (key, pkcs1, cert)
}

/// `openssl smime -verify` arguments: the DER signature `sig` over `content`, by `cert`'s key
/// (no chain checked).
fn smime_verify<'a>(sig: &'a Path, content: &'a Path, cert: &'a Path) -> [&'a str; 14] {
    [
        "smime",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        s(sig),
        "-content",
        s(content),
        "-noverify",
        "-certfile",
        s(cert),
        "-out",
        "/dev/null",
    ]
}

/// Names of files in `dir`, to check that failures leave nothing behind (not even temp files).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn reproduces_fsverity_utils_file_sig() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("P1000000");
    std::fs::write(&input, pattern(1_000_000)).unwrap();
    let out = dir.path().join("out.sig");
    let o = ok(
        BIN,
        &[
            "sign-file",
            s(&input),
            s(&out),
            "--salt=61626364",
            "--key",
            s(&data("key.pem")),
            "--cert",
            s(&data("cert.pem")),
        ],
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(data("file.sig")).unwrap()
    );
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!(
            "Signed file '{}' (sha256:917900b0d299454aa304d5debc6f39e4af7b5abe33bdbc568d5d8f1e5c4d8652)\n",
            input.display()
        )
    );
}

/// Runs both tools with the same arguments and compares signatures and standard output.
fn same_as_fsverity(dir: &Path, input: &Path, key_args: &[&str], extra: &[&str]) {
    let ours = dir.join("ours.sig");
    let theirs = dir.join("theirs.sig");
    let mut a = vec!["sign-file", s(input), s(&ours)];
    a.extend_from_slice(key_args);
    a.extend_from_slice(extra);
    let our_out = ok(BIN, &a);
    let mut b = vec!["sign", s(input), s(&theirs)];
    b.extend_from_slice(key_args);
    b.extend_from_slice(extra);
    let their_out = ok("fsverity", &b);
    let (x, y) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert!(
        x == y,
        "signatures differ for {key_args:?} {extra:?}: {} vs {} bytes",
        x.len(),
        y.len()
    );
    assert_eq!(
        String::from_utf8_lossy(&our_out.stdout),
        String::from_utf8_lossy(&their_out.stdout),
        "{key_args:?} {extra:?}"
    );
}

#[test]
fn matches_fsverity_sign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = [
        ("empty", vec![]),
        ("hello", b"hello\n".to_vec()),
        ("p100000", pattern(100_000)),
    ];
    for (name, bytes) in &inputs {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    for (name, bits) in [("rsa2048", 2048), ("rsa4096", 4096)] {
        let (key, pkcs1, cert) = make_key(d, name, bits);
        for key_file in [&key, &pkcs1] {
            for extra in [
                &[][..],
                &["--hash-alg=sha512"],
                &["--block-size=1024", "--salt=00"],
                &["--hash-alg", "sha512", "--salt", "61626364"],
            ] {
                for (input, _) in &inputs {
                    same_as_fsverity(
                        d,
                        &d.join(input),
                        &["--key", s(key_file), "--cert", s(&cert)],
                        extra,
                    );
                }
            }
        }
        // Key and certificate in one file, no --cert.
        let combined = d.join(format!("{name}.combined"));
        std::fs::write(
            &combined,
            [std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap()].concat(),
        )
        .unwrap();
        same_as_fsverity(d, &d.join("hello"), &["--key", s(&combined)], &[]);
    }
}

#[test]
fn encrypted_key_with_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, _, cert) = make_key(d, "k", 2048);
    let enc = d.join("enc.pem");
    encrypt_key(d, s(&key), s(&enc), "pass:open sesame");
    let pass = d.join("pass");
    std::fs::write(&pass, "open sesame\n").unwrap();
    let input = d.join("in");
    std::fs::write(&input, pattern(5000)).unwrap();
    let reference = d.join("ref.sig");
    ok(
        "fsverity",
        &[
            "sign",
            s(&input),
            s(&reference),
            "--key",
            s(&key),
            "--cert",
            s(&cert),
        ],
    );

    let out = d.join("out.sig");
    ok(
        BIN,
        &[
            "sign-file",
            s(&input),
            s(&out),
            "--key",
            s(&enc),
            "--cert",
            s(&cert),
            "--key-pass-file",
            s(&pass),
        ],
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );

    std::fs::remove_file(&out).unwrap();
    let o = Command::new(BIN)
        .args([
            "sign-file",
            s(&input),
            s(&out),
            "--key",
            s(&enc),
            "--cert",
            s(&cert),
        ])
        .env("RPM_VERITY_KEY_PASS", "open sesame")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

/// Expects exit code 1, one line on stderr mentioning every string in `needles`, and no new file
/// in the output directory.
fn fails(args: &[&str], out_dir: &Path, needles: &[&str]) {
    let before = listing(out_dir);
    let o = run(BIN, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("rpm-verity: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in {err}");
    }
    assert!(o.stdout.is_empty(), "{args:?}");
    assert_eq!(listing(out_dir), before, "{args:?} left files behind");
}

#[test]
fn bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    let (key, _, cert) = make_key(k, "a", 2048);
    let (_, _, other_cert) = make_key(k, "b", 2048);
    let enc = k.join("enc.pem");
    encrypt_key(k, s(&key), s(&enc), "pass:pw");
    let wrong_pass = k.join("wrong");
    std::fs::write(&wrong_pass, "nope\n").unwrap();
    let garbage = k.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let noise = k.join("noise.pem");
    std::fs::write(&noise, "just some text\n").unwrap();
    let input = k.join("input");
    std::fs::write(&input, b"data").unwrap();
    let out = d.join("out.sig");
    let (i, o) = (s(&input), s(&out));
    let (key_s, cert_s) = (s(&key), s(&cert));

    let missing = k.join("missing");
    fails(
        &[
            "sign-file",
            s(&missing),
            o,
            "--key",
            key_s,
            "--cert",
            cert_s,
        ],
        d,
        &[s(&missing), "No such file"],
    );
    fails(
        &["sign-file", s(k), o, "--key", key_s, "--cert", cert_s],
        d,
        &[s(k), "directory"],
    );
    let under_file = input.join("x");
    fails(
        &[
            "sign-file",
            s(&under_file),
            o,
            "--key",
            key_s,
            "--cert",
            cert_s,
        ],
        d,
        &[s(&under_file), "Not a directory"],
    );
    fails(
        &["sign-file", i, o, "--key", key_s, "--cert", s(&other_cert)],
        d,
        &[&format!(
            "key {key_s} does not match certificate {}",
            s(&other_cert)
        )],
    );
    fails(
        &["sign-file", i, o, "--key", s(&enc), "--cert", cert_s],
        d,
        &[s(&enc), "no passphrase"],
    );
    fails(
        &[
            "sign-file",
            i,
            o,
            "--key",
            s(&enc),
            "--cert",
            cert_s,
            "--key-pass-file",
            s(&wrong_pass),
        ],
        d,
        &[s(&enc), "wrong passphrase"],
    );
    fails(
        &["sign-file", i, o, "--key", s(&garbage), "--cert", cert_s],
        d,
        &[s(&garbage), "base64"],
    );
    fails(
        &["sign-file", i, o, "--key", s(&noise), "--cert", cert_s],
        d,
        &[s(&noise), "no private key"],
    );
    fails(
        &["sign-file", i, o, "--key", key_s, "--cert", s(&noise)],
        d,
        &[s(&noise), "certificate"],
    );
    fails(
        &["sign-file", i, o, "--key", key_s],
        d,
        &[key_s, "no certificate"],
    );
    fails(
        &["sign-file", i, o, "--key", s(&missing), "--cert", cert_s],
        d,
        &[s(&missing), "No such file"],
    );
    let no_dir = d.join("no/such/dir/out.sig");
    fails(
        &["sign-file", i, s(&no_dir), "--key", key_s, "--cert", cert_s],
        d,
        &[s(&no_dir)],
    );
    fails(
        &[
            "sign-file",
            i,
            o,
            "--key",
            key_s,
            "--cert",
            cert_s,
            "--block-size=32",
        ],
        d,
        &["too small"],
    );

    // Usage errors exit with 2, like fsverity.
    for args in [
        &["sign-file", i, o][..],
        &["sign-file", i, "--key", key_s],
        &["sign-file", i, o, "--key", key_s, "--hash-alg=md5"],
        &["sign-file", i, o, "--key", key_s, "--salt=xyz"],
    ] {
        let r = run(BIN, args);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    assert!(listing(d).is_empty());

    // An existing output file is replaced only on success.
    std::fs::write(&out, b"old").unwrap();
    fails(
        &["sign-file", i, o, "--key", key_s, "--cert", s(&other_cert)],
        d,
        &["does not match"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
}

/// EC key on `curve` in the form `openssl genpkey` writes (PKCS#8), its SEC1 form
/// (`openssl ec`) and a self-signed certificate.
fn make_ec_key(dir: &Path, name: &str, curve: &str) -> (PathBuf, PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let sec1 = dir.join(format!("{name}.sec1"));
    let cert = dir.join(format!("{name}.crt"));
    genpkey_ec(dir, s(&key), curve);
    openssl(dir, &["ec", "-in", s(&key), "-out", s(&sec1)]);
    cert_for_key(dir, s(&key), s(&cert), "/CN=fsverity-test", 1);
    (key, sec1, cert)
}

/// ECDSA keys: signatures are deterministic (RFC 6979), OpenSSL verifies them over the formatted
/// digest `fsverity` prints, their SignerInfo names the algorithms `fsverity sign` names, and
/// they are well under RSA-2048's size (ecdsa.md: 210–213 against 407 bytes).
#[test]
fn ecdsa_signatures_are_deterministic_and_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hello"), b"hello\n").unwrap();
    std::fs::write(d.join("p100000"), pattern(100_000)).unwrap();
    let (rsa_key, _, rsa_cert) = make_key(d, "rsa", 2048);
    let rsa_sig = d.join("rsa.sig");
    ok(
        BIN,
        &[
            "sign-file",
            s(&d.join("hello")),
            s(&rsa_sig),
            "--key",
            s(&rsa_key),
            "--cert",
            s(&rsa_cert),
        ],
    );
    let rsa_len = std::fs::read(&rsa_sig).unwrap().len();
    for (curve, max) in [("P-256", 213), ("P-384", 245)] {
        let (key, sec1, cert) = make_ec_key(d, curve, curve);
        for (hash, sig_alg) in [
            ("sha256", "ecdsa-with-SHA256"),
            ("sha512", "ecdsa-with-SHA512"),
        ] {
            for input in ["hello", "p100000"] {
                let input = d.join(input);
                let mut sigs = Vec::new();
                for (i, key_file) in [&key, &key, &sec1].into_iter().enumerate() {
                    let out = d.join(format!("ec{i}.sig"));
                    ok(
                        BIN,
                        &[
                            "sign-file",
                            s(&input),
                            s(&out),
                            "--key",
                            s(key_file),
                            "--cert",
                            s(&cert),
                            "--hash-alg",
                            hash,
                        ],
                    );
                    sigs.push(std::fs::read(&out).unwrap());
                }
                assert_eq!(sigs[0], sigs[1], "{curve} {hash}: not deterministic");
                assert_eq!(sigs[0], sigs[2], "{curve} {hash}: SEC1 key differs");
                assert!(sigs[0].len() <= max, "{curve}: {} bytes", sigs[0].len());
                assert!(
                    sigs[0].len() * 10 < rsa_len * 7,
                    "{curve} vs RSA-2048 {rsa_len}"
                );
                // The formatted digest fs-verity signs, as `fsverity` prints it.
                let hex = ok(
                    "fsverity",
                    &[
                        "digest",
                        s(&input),
                        "--for-builtin-sig",
                        "--compact",
                        &format!("--hash-alg={hash}"),
                    ],
                );
                let formatted = hex::decode(String::from_utf8(hex.stdout).unwrap().trim()).unwrap();
                assert!(formatted.starts_with(b"FSVerity"));
                let fmt = d.join("formatted");
                std::fs::write(&fmt, &formatted).unwrap();
                let sig = d.join("ec0.sig");
                ok("openssl", &smime_verify(&sig, &fmt, &cert));
                // Another digest does not verify.
                std::fs::write(&fmt, [&formatted[..formatted.len() - 1], &[0x5a]].concat())
                    .unwrap();
                let bad = run("openssl", &smime_verify(&sig, &fmt, &cert));
                assert!(
                    !bad.status.success(),
                    "{curve} {hash}: tampered digest verified"
                );
                // Same structure as `fsverity sign` writes (its nonce is random, so not its bytes).
                let theirs = d.join("theirs.sig");
                ok(
                    "fsverity",
                    &[
                        "sign",
                        s(&input),
                        s(&theirs),
                        "--key",
                        s(&key),
                        "--cert",
                        s(&cert),
                        &format!("--hash-alg={hash}"),
                    ],
                );
                // `openssl asn1parse` lines without offsets, lengths and the signature value.
                let shape = |p: &Path| -> Vec<String> {
                    let o = ok("openssl", &["asn1parse", "-inform", "DER", "-in", s(p)]);
                    String::from_utf8(o.stdout)
                        .unwrap()
                        .lines()
                        .filter(|l| !l.contains("OCTET STRING"))
                        .map(|l| {
                            let depth = l
                                .split_once(":d=")
                                .map_or("", |x| x.1.split_whitespace().next().unwrap_or(""));
                            let rest = l.rsplit_once("l=").map_or(l, |x| x.1).trim_start();
                            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                            format!("{depth} {}", rest.trim())
                        })
                        .collect()
                };
                let ours_shape = shape(&sig);
                assert_eq!(ours_shape, shape(&theirs), "{curve} {hash}");
                assert!(
                    ours_shape.iter().any(|l| l.contains(sig_alg)),
                    "{ours_shape:?}"
                );
            }
        }
    }
}
