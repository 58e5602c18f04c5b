//! Whole-crate tests: the fsverity-utils known answer, sign/verify round trips, and key loading
//! for every PEM kind, with keys made by `openssl` at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

use fsverity::{FileDigest, HashAlgorithm};

use crate::*;

const KEY_PEM: &[u8] = include_bytes!("../../../tests/data/key.pem");
const CERT_PEM: &[u8] = include_bytes!("../../../tests/data/cert.pem");
const FILE_SIG: &[u8] = include_bytes!("../../../tests/data/file.sig");
const KAT_DIGEST: &str = "917900b0d299454aa304d5debc6f39e4af7b5abe33bdbc568d5d8f1e5c4d8652";

fn kat_digest() -> FileDigest {
    FileDigest::new(HashAlgorithm::Sha256, &hex::decode(KAT_DIGEST).unwrap()).unwrap()
}

fn test_signer() -> LocalSigner {
    LocalSigner::new(
        SigningKey::from_pem(KEY_PEM, None).unwrap(),
        Certificate::parse(CERT_PEM).unwrap(),
    )
    .unwrap()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh RSA key (PKCS#8 PEM) and a self-signed certificate for it.
fn make_key(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    openssl(&["genrsa", "-out", key.to_str().unwrap(), &bits.to_string()]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "1",
        "-out",
        cert.to_str().unwrap(),
    ]);
    (key, cert)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn reproduces_fsverity_utils_file_sig() {
    let signer = test_signer();
    let sig = signer.sign_digest(&kat_digest()).unwrap();
    assert_eq!(sig.len(), 708);
    assert_eq!(hex::encode(&sig), hex::encode(FILE_SIG));
}

#[test]
fn batch_signing_dedupes_and_keeps_order() {
    let signer = test_signer();
    let a = kat_digest();
    let b = FileDigest::new(HashAlgorithm::Sha256, &[7u8; 32]).unwrap();
    let c = FileDigest::new(HashAlgorithm::Sha512, &[7u8; 64]).unwrap();
    let batch = vec![
        a.clone(),
        b.clone(),
        a.clone(),
        c.clone(),
        b.clone(),
        a.clone(),
    ];
    let sigs = signer.sign_digests(&batch).unwrap();
    assert_eq!(sigs.len(), batch.len());
    assert_eq!(sigs[0], FILE_SIG);
    assert_eq!(sigs[2], FILE_SIG);
    assert_eq!(sigs[5], FILE_SIG);
    assert_eq!(sigs[1], sigs[4]);
    assert_ne!(sigs[1], sigs[0]);
    let certs = [signer.certificate().clone()];
    for (d, s) in batch.iter().zip(&sigs) {
        verify_signature(s, d, &certs).unwrap();
    }
    // Large enough to take the parallel path.
    let many: Vec<FileDigest> = (0..40u8)
        .map(|i| FileDigest::new(HashAlgorithm::Sha256, &[i; 32]).unwrap())
        .collect();
    let sigs = signer.sign_digests(&many).unwrap();
    for (d, s) in many.iter().zip(&sigs) {
        assert_eq!(s, &signer.sign_digest(d).unwrap());
    }
    assert!(signer.sign_digests(&[]).unwrap().is_empty());
    assert_eq!(
        signer.certificate_der(),
        Certificate::parse(CERT_PEM).unwrap().der()
    );
}

#[test]
fn parses_known_signature() {
    let p = Pkcs7Signature::parse(FILE_SIG).unwrap();
    assert_eq!(
        p.signer().issuer,
        "C=AU, ST=Some-State, O=Internet Widgits Pty Ltd"
    );
    let cert = Certificate::parse(CERT_PEM).unwrap();
    assert_eq!(p.signer().serial, cert.serial_hex());
    assert_eq!(p.digest_algorithm(), DigestAlgorithm::Sha256);
    assert_eq!(p.signature_algorithm(), SignatureAlgorithm::RsaPkcs1);
    assert_eq!(p.signature_value().len(), 512);
    let certs = [cert];
    let who = p.verify(&kat_digest(), &certs).unwrap();
    assert_eq!(who, &certs[0]);
}

#[test]
fn verify_rejects_wrong_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, other_cert) = make_key(dir.path(), "other", 2048);
    let other = Certificate::parse(&read(&other_cert)).unwrap();
    let cert = Certificate::parse(CERT_PEM).unwrap();
    let digest = kat_digest();

    // Signer not among the trusted certificates.
    let e = verify_signature(FILE_SIG, &digest, std::slice::from_ref(&other)).unwrap_err();
    assert!(matches!(e, VerifyError::UnknownSigner(_)), "{e}");
    assert!(e.to_string().contains("Internet Widgits"), "{e}");
    let e = verify_signature(FILE_SIG, &digest, &[]).unwrap_err();
    assert!(matches!(e, VerifyError::UnknownSigner(_)), "{e}");

    // A different digest of the same algorithm.
    let mut bytes = hex::decode(KAT_DIGEST).unwrap();
    bytes[0] ^= 1;
    let wrong = FileDigest::new(HashAlgorithm::Sha256, &bytes).unwrap();
    let e = verify_signature(FILE_SIG, &wrong, std::slice::from_ref(&cert)).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature(_)), "{e}");

    // Same bytes claimed as a SHA-512 digest: algorithm mismatch.
    let sha512 = FileDigest::new(HashAlgorithm::Sha512, &[bytes.clone(), bytes].concat()).unwrap();
    let e = verify_signature(FILE_SIG, &sha512, std::slice::from_ref(&cert)).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::DigestAlgorithmMismatch {
                signature: "sha256",
                digest: "sha512"
            }
        ),
        "{e}"
    );

    // Every single flipped byte is caught, as malformed, unknown signer, or bad signature.
    for i in 0..FILE_SIG.len() {
        let mut s = FILE_SIG.to_vec();
        s[i] ^= 0x01;
        assert!(
            verify_signature(&s, &digest, std::slice::from_ref(&cert)).is_err(),
            "flip at {i} accepted"
        );
    }
    // The signature value itself: bad signature specifically.
    let mut s = FILE_SIG.to_vec();
    let last = s.len() - 1;
    s[last] ^= 0x80;
    let e = verify_signature(&s, &digest, std::slice::from_ref(&cert)).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature(_)), "{e}");

    // Trailing garbage and every truncation.
    let mut s = FILE_SIG.to_vec();
    s.push(0);
    assert!(matches!(
        Pkcs7Signature::parse(&s),
        Err(VerifyError::Malformed(_))
    ));
    for n in 0..FILE_SIG.len() {
        assert!(
            matches!(
                Pkcs7Signature::parse(&FILE_SIG[..n]),
                Err(VerifyError::Malformed(_))
            ),
            "truncation to {n} accepted"
        );
    }
    assert!(Pkcs7Signature::parse(&vec![0x30; 70000]).is_err());
}

#[test]
fn sign_then_verify_with_fresh_keys_and_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = make_key(dir.path(), "fresh", 2048);
    let signer = LocalSigner::load(&key, Some(&cert), None).unwrap();
    assert_eq!(signer.key().bits(), 2048);
    let (_, other_cert) = make_key(dir.path(), "other", 2048);
    let other = Certificate::parse(&read(&other_cert)).unwrap();
    for (alg, n) in [(HashAlgorithm::Sha256, 32), (HashAlgorithm::Sha512, 64)] {
        let d = FileDigest::new(alg, &vec![0xab; n]).unwrap();
        let sig = signer.sign_digest(&d).unwrap();
        let trusted = [other.clone(), signer.certificate().clone()];
        assert_eq!(verify_signature(&sig, &d, &trusted).unwrap(), &trusted[1]);
        let p = Pkcs7Signature::parse(&sig).unwrap();
        assert_eq!(p.signer().issuer, "CN=fresh");
        assert_eq!(p.digest_algorithm().fsverity(), Some(alg));
        assert_eq!(signer.signature_len(alg), Some(sig.len()));
    }
    for (bits, alg) in [(4096, HashAlgorithm::Sha512), (3072, HashAlgorithm::Sha256)] {
        let (key, cert) = make_key(dir.path(), &format!("k{bits}"), bits);
        let s = LocalSigner::load(&key, Some(&cert), None).unwrap();
        let d = FileDigest::new(alg, &vec![7; alg.digest_size()]).unwrap();
        let sig = s.sign_digests(std::slice::from_ref(&d)).unwrap();
        assert_eq!(s.signature_len(alg), Some(sig[0].len()), "RSA-{bits} {alg}");
    }
    // A signature by another key that names this certificate is a bad signature, not a pass.
    let d = kat_digest();
    let forged = build_rsa_signed_data(
        HashAlgorithm::Sha256,
        signer.certificate(),
        test_signer()
            .key()
            .sign(HashAlgorithm::Sha256, &d.formatted())
            .unwrap()
            .as_slice(),
    );
    let e = verify_signature(&forged, &d, std::slice::from_ref(signer.certificate())).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature(_)), "{e}");
}

/// Our signature must verify with OpenSSL over the formatted digest, independent of our verifier.
#[test]
fn openssl_accepts_our_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = make_key(dir.path(), "ossl", 2048);
    let signer = LocalSigner::load(&key, Some(&cert), None).unwrap();
    let d = FileDigest::new(HashAlgorithm::Sha512, &[0x5a; 64]).unwrap();
    let sig_path = dir.path().join("s.p7");
    let msg_path = dir.path().join("msg");
    std::fs::write(&sig_path, signer.sign_digest(&d).unwrap()).unwrap();
    std::fs::write(&msg_path, d.formatted()).unwrap();
    openssl(&[
        "smime",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        sig_path.to_str().unwrap(),
        "-content",
        msg_path.to_str().unwrap(),
        "-certfile",
        cert.to_str().unwrap(),
        "-nointern",
        "-noverify",
        "-out",
        "/dev/null",
    ]);
}

#[test]
fn loads_every_pem_kind() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    let (key, cert) = make_key(dir.path(), "k", 2048);
    let cert_data = read(&cert);
    let c = Certificate::parse(&cert_data).unwrap();
    let reference = SigningKey::from_pem(&read(&key), None).unwrap();
    assert!(String::from_utf8_lossy(&read(&key)).contains("BEGIN PRIVATE KEY"));
    assert!(reference.matches(&c));

    // PKCS#1.
    openssl(&[
        "rsa",
        "-in",
        &s("k.key"),
        "-traditional",
        "-out",
        &s("pkcs1.pem"),
    ]);
    assert!(String::from_utf8_lossy(&read(&p("pkcs1.pem"))).contains("BEGIN RSA PRIVATE KEY"));
    let k1 = SigningKey::from_pem(&read(&p("pkcs1.pem")), None).unwrap();
    assert_eq!(k1.public_key_der(), reference.public_key_der());

    // Encrypted PKCS#8 (OpenSSL 3 default PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC).
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &s("k.key"),
        "-passout",
        "pass:sekret",
        "-out",
        &s("enc.pem"),
    ]);
    let enc = read(&p("enc.pem"));
    assert!(String::from_utf8_lossy(&enc).contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let k2 = SigningKey::from_pem(&enc, Some(b"sekret")).unwrap();
    assert_eq!(k2.public_key_der(), reference.public_key_der());
    assert!(matches!(
        SigningKey::from_pem(&enc, None),
        Err(KeyError::PassphraseRequired)
    ));
    let r = SigningKey::from_pem(&enc, Some(b"wrong"));
    assert!(matches!(r, Err(KeyError::WrongPassphrase)), "{r:?}");
    // LocalSigner::load reports the file for the missing passphrase.
    let e = LocalSigner::load(&p("enc.pem"), Some(&cert), None).unwrap_err();
    assert!(
        e.to_string().contains("enc.pem") && e.to_string().contains("passphrase"),
        "{e}"
    );

    // DER PKCS#8 and DER certificate.
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &s("k.key"),
        "-outform",
        "DER",
        "-out",
        &s("k.der"),
    ]);
    let k3 = SigningKey::from_pem(&read(&p("k.der")), None).unwrap();
    assert_eq!(k3.public_key_der(), reference.public_key_der());
    openssl(&[
        "x509",
        "-in",
        &s("k.crt"),
        "-outform",
        "DER",
        "-out",
        &s("c.der"),
    ]);
    assert_eq!(Certificate::parse(&read(&p("c.der"))).unwrap(), c);

    // Combined key + certificate, in either order; load without a separate cert path.
    for (name, parts) in [
        ("kc.pem", [read(&key), cert_data.clone()]),
        ("ck.pem", [cert_data.clone(), read(&key)]),
    ] {
        std::fs::write(p(name), parts.concat()).unwrap();
        let signer = LocalSigner::load(&p(name), None, None).unwrap();
        assert_eq!(signer.certificate(), &c);
    }
}

#[test]
fn rejects_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key_a, _) = make_key(dir.path(), "a", 2048);
    let (_, cert_b) = make_key(dir.path(), "b", 2048);
    let e = LocalSigner::load(&key_a, Some(&cert_b), None).unwrap_err();
    assert!(matches!(e, LoadError::Mismatch { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "key {} does not match certificate {}",
            key_a.display(),
            cert_b.display()
        )
    );

    // A certificate alone is not a key; a key alone has no certificate.
    let e = LocalSigner::load(&cert_b, None, None).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Key {
                error: KeyError::NoKey,
                ..
            }
        ),
        "{e}"
    );
    let e = LocalSigner::load(&key_a, None, None).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Cert {
                error: CertError::NoCertificate,
                ..
            }
        ),
        "{e}"
    );

    // Garbage.
    assert!(SigningKey::from_pem(b"not a key at all", None).is_err());
    assert!(matches!(
        SigningKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        ),
        Err(KeyError::InvalidRsa(_))
    ));
    assert!(matches!(
        SigningKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\n%%%%\n-----END PRIVATE KEY-----\n",
            None
        ),
        Err(KeyError::Pem(_))
    ));
    let e = LocalSigner::load(&dir.path().join("missing.pem"), None, None).unwrap_err();
    assert!(
        matches!(e, LoadError::Read { .. }) && e.to_string().contains("missing.pem"),
        "{e}"
    );
    assert!(matches!(
        LocalSigner::load(dir.path(), None, None),
        Err(LoadError::Read { .. })
    ));

    // Unsupported: EC key on P-521 or secp256k1; traditional encrypted PEM; too-small RSA.
    for curve in ["P-521", "secp256k1"] {
        let ec = dir.path().join("ec.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            ec.to_str().unwrap(),
        ]);
        let e = SigningKey::from_pem(&read(&ec), None).unwrap_err();
        assert!(matches!(e, KeyError::Unsupported(_)), "{curve}: {e}");
        let sec1 = dir.path().join("ec.sec1");
        openssl(&[
            "ec",
            "-in",
            ec.to_str().unwrap(),
            "-out",
            sec1.to_str().unwrap(),
        ]);
        let e = SigningKey::from_pem(&read(&sec1), None).unwrap_err();
        assert!(matches!(e, KeyError::Unsupported(_)), "{curve} SEC1: {e}");
    }
    let trad = dir.path().join("trad.pem");
    openssl(&[
        "rsa",
        "-in",
        key_a.to_str().unwrap(),
        "-traditional",
        "-aes128",
        "-passout",
        "pass:x",
        "-out",
        trad.to_str().unwrap(),
    ]);
    assert!(matches!(
        SigningKey::from_pem(&read(&trad), Some(b"x")),
        Err(KeyError::TraditionalEncrypted)
    ));
    let small = dir.path().join("small.pem");
    openssl(&["genrsa", "-out", small.to_str().unwrap(), "1024"]);
    assert!(matches!(
        SigningKey::from_pem(&read(&small), None),
        Err(KeyError::InvalidRsa(_))
    ));
}

/// A fresh EC key on `curve` (PKCS#8 PEM), its SEC1 form, an encrypted PKCS#8 form (passphrase
/// "pw") and a self-signed certificate.
fn make_ec_key(dir: &Path, name: &str, curve: &str) -> [PathBuf; 4] {
    let key = dir.join(format!("{name}.key"));
    let sec1 = dir.join(format!("{name}.sec1"));
    let enc = dir.join(format!("{name}.enc"));
    let cert = dir.join(format!("{name}.crt"));
    let p = |p: &Path| p.to_str().unwrap().to_string();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        &format!("ec_paramgen_curve:{curve}"),
        "-out",
        &p(&key),
    ]);
    openssl(&["ec", "-in", &p(&key), "-out", &p(&sec1)]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &p(&key),
        "-passout",
        "pass:pw",
        "-out",
        &p(&enc),
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "1",
        "-out",
        &p(&cert),
    ]);
    [key, sec1, enc, cert]
}

#[test]
fn ecdsa_keys_sign_deterministically_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa = test_signer().signature_len(HashAlgorithm::Sha256).unwrap();
    for (curve, bits, max_value) in [("P-256", 256, 72), ("P-384", 384, 104)] {
        let [key, sec1, enc, cert] = make_ec_key(d, &format!("ec{bits}"), curve);
        let [_, _, _, other_cert] = make_ec_key(d, &format!("other{bits}"), curve);
        let signer = LocalSigner::load(&key, Some(&cert), None).unwrap();
        assert_eq!(signer.key().bits(), bits);
        assert_eq!(signer.key().signature_len(), max_value);
        assert_eq!(
            signer.key().algorithm(),
            signer.certificate().key_algorithm()
        );
        for (form, pass) in [(&sec1, None), (&enc, Some(&b"pw"[..]))] {
            let k = LocalSigner::load(form, Some(&cert), pass).unwrap();
            assert_eq!(k.key().public_key_der(), signer.key().public_key_der());
        }
        assert!(matches!(
            LocalSigner::load(&enc, Some(&cert), Some(b"wrong")),
            Err(LoadError::Key {
                error: KeyError::WrongPassphrase,
                ..
            })
        ));
        assert!(matches!(
            LocalSigner::load(&key, Some(&other_cert), None),
            Err(LoadError::Mismatch { .. })
        ));
        let other = Certificate::parse(&read(&other_cert)).unwrap();
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let max = signer.signature_len(alg).unwrap();
            assert!(max < rsa, "{curve}: {max} >= RSA-2048's {rsa}");
            for byte in 0..20u8 {
                let digest = FileDigest::new(alg, &vec![byte; alg.digest_size()]).unwrap();
                let sig = signer.sign_digest(&digest).unwrap();
                assert_eq!(sig, signer.sign_digest(&digest).unwrap(), "RFC 6979");
                assert!(
                    sig.len() <= max && sig.len() + 4 >= max,
                    "{} vs {max}",
                    sig.len()
                );
                let trusted = [other.clone(), signer.certificate().clone()];
                assert_eq!(
                    verify_signature(&sig, &digest, &trusted).unwrap(),
                    &trusted[1]
                );
                let p = Pkcs7Signature::parse(&sig).unwrap();
                assert_eq!(p.signature_algorithm(), SignatureAlgorithm::Ecdsa);
                assert_eq!(p.digest_algorithm().fsverity(), Some(alg));
                let wrong = FileDigest::new(alg, &vec![byte ^ 1; alg.digest_size()]).unwrap();
                assert!(matches!(
                    verify_signature(&sig, &wrong, &trusted),
                    Err(VerifyError::BadSignature(_))
                ));
            }
        }
    }
    // A P-256 key against a P-384 certificate: a mismatch, not a crash.
    let [k256, ..] = make_ec_key(d, "a", "P-256");
    let [.., c384] = make_ec_key(d, "b", "P-384");
    assert!(matches!(
        LocalSigner::load(&k256, Some(&c384), None),
        Err(LoadError::Mismatch { .. })
    ));
}

#[test]
fn attached_signature_carries_its_content_and_parses_only_as_attached() {
    let signer = test_signer();
    let content = b"policy_name=x policy_version=0.0.1\nDEFAULT action=ALLOW\n";
    let der = signer.sign_attached(content).unwrap();
    let (parsed, got) = Pkcs7Signature::from_der_attached(&der).unwrap();
    assert_eq!(got, content);
    assert!(parsed.signer().matches(signer.certificate()));
    assert_eq!(parsed.digest_algorithm(), crate::DigestAlgorithm::Sha256);
    // The signature is over the content itself (no signed attributes).
    let expected = signer
        .key()
        .sign(fsverity::HashAlgorithm::Sha256, content)
        .unwrap();
    assert_eq!(parsed.signature_value(), &expected[..]);
    let e = Pkcs7Signature::from_der(&der).unwrap_err();
    assert!(e.to_string().contains("embeds content"), "{e}");
    let e = Pkcs7Signature::from_der_attached(FILE_SIG).unwrap_err();
    assert!(e.to_string().contains("detached"), "{e}");
    // Every truncation is refused, never misread.
    for n in 0..der.len() {
        assert!(Pkcs7Signature::from_der_attached(&der[..n]).is_err(), "{n}");
    }
}
