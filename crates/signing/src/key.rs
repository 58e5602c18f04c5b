//! Private keys: the PEM kinds `openssl` writes (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8): RSA,
//! and EC on P-256 and P-384.
//!
//! RSA is what every kernel with built-in signatures accepts and signs with aws-lc-rs. ECDSA
//! needs a kernel with `CONFIG_CRYPTO_ECDSA` (Debian's 6.1 lacks it) but makes signatures less
//! than half the size; it signs with RustCrypto's `p256`/`p384`, whose nonces are deterministic
//! (RFC 6979), so a package signed twice is byte-identical, unlike with OpenSSL's random nonces.

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{KeyPair as _, RsaEncoding, RSA_PKCS1_SHA256, RSA_PKCS1_SHA512};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use der::Decode;
use fsverity::HashAlgorithm;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;

use crate::cert::{Certificate, EcCurve, KeyAlgorithm};
use crate::pem;
use crate::pkcs11::TokenKeyKind;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\", \"EC PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\")"
    )]
    NoKey,
    #[error("invalid PEM: {0}")]
    Pem(#[from] pem::PemError),
    #[error("key is encrypted and no passphrase was given")]
    PassphraseRequired,
    #[error("wrong passphrase, or the encrypted key is corrupt")]
    WrongPassphrase,
    #[error(
        "OpenSSL \"traditional\" encrypted keys are not supported; convert with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
    )]
    TraditionalEncrypted,
    #[error(
        "unsupported key type {0}: only RSA and EC P-256/P-384 keys can make fs-verity signatures here"
    )]
    Unsupported(String),
    #[error("invalid RSA private key ({0}); RSA keys must be 2048 to 8192 bits")]
    InvalidRsa(String),
    #[error("invalid EC private key ({0})")]
    InvalidEc(String),
    #[error("invalid encrypted key: {0}")]
    InvalidEncrypted(String),
    #[error("signing failed")]
    SignFailed,
    #[error("{0}")]
    Pkcs11(#[from] crate::pkcs11::Pkcs11Error),
}

/// Environment variable holding the passphrase of an encrypted key when no passphrase file is
/// given: lets unattended signing avoid a prompt without putting the passphrase on a command line.
pub const KEY_PASSPHRASE_ENV: &str = "RPM_VERITY_KEY_PASS";

#[derive(Debug, thiserror::Error)]
#[error("cannot read passphrase file {path}: {error}")]
pub struct PassphraseError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// The passphrase of an encrypted key: the first line of `file` (without its `\n` or `\r\n`),
/// else the value of [`KEY_PASSPHRASE_ENV`], else none. A file given but unreadable is an error
/// rather than a fall-back to the environment, so a typo in the path is not silently ignored.
pub fn read_key_passphrase(file: Option<&Path>) -> Result<Option<Vec<u8>>, PassphraseError> {
    passphrase_from(file, std::env::var_os(KEY_PASSPHRASE_ENV))
}

fn passphrase_from(
    file: Option<&Path>,
    env: Option<OsString>,
) -> Result<Option<Vec<u8>>, PassphraseError> {
    if let Some(path) = file {
        let data = std::fs::read(path).map_err(|error| PassphraseError {
            path: path.to_path_buf(),
            error,
        })?;
        let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Ok(Some(line.to_vec()));
    }
    Ok(env.map(|v| {
        use std::os::unix::ffi::OsStringExt;
        v.into_vec()
    }))
}

const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

const OID_EC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// A private key that can sign formatted fs-verity digests.
pub struct SigningKey {
    inner: Inner,
}

enum Inner {
    Rsa(RsaKeyPair),
    /// The key and its public point, uncompressed (as certificates carry it).
    P256(p256::ecdsa::SigningKey, Vec<u8>),
    P384(p384::ecdsa::SigningKey, Vec<u8>),
    /// On a PKCS#11 token: only a handle here.
    Token(crate::pkcs11::Pkcs11Key),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Rsa(_) => write!(f, "SigningKey(RSA-{})", self.bits()),
            Inner::Token(k) => write!(f, "SigningKey(PKCS#11 {k:?})"),
            _ => write!(f, "SigningKey(EC P-{})", self.bits()),
        }
    }
}

fn rsa(rsa: RsaKeyPair) -> SigningKey {
    SigningKey {
        inner: Inner::Rsa(rsa),
    }
}

fn p256_key(secret: p256::SecretKey) -> SigningKey {
    let point = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    SigningKey {
        inner: Inner::P256(secret.into(), point),
    }
}

fn p384_key(secret: p384::SecretKey) -> SigningKey {
    let point = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    SigningKey {
        inner: Inner::P384(secret.into(), point),
    }
}

/// The curve an EC `PrivateKeyInfo` names, for messages.
fn ec_curve_name(info: &pkcs8::PrivateKeyInfo<'_>) -> String {
    match info
        .algorithm
        .parameters_oid()
        .ok()
        .map(|o| o.to_string())
        .as_deref()
    {
        Some("1.3.132.0.35") => "EC P-521".into(),
        Some("1.3.132.0.10") => "EC secp256k1".into(),
        Some(other) => format!("EC curve {other}"),
        None => "EC without a named curve".into(),
    }
}

impl SigningKey {
    /// The key on a PKCS#11 token that `uri` names (see [`crate::pkcs11`]); `pin` is used when
    /// the URI has no `pin-source`, `sessions` is how many threads will sign at once.
    pub fn from_pkcs11(uri: &str, pin: Option<&[u8]>, sessions: usize) -> Result<Self, KeyError> {
        Ok(Self {
            inner: Inner::Token(crate::pkcs11::Pkcs11Key::open(uri, pin, sessions)?),
        })
    }

    /// Loads the first private key in a PEM file (certificate blocks are skipped, so a combined
    /// key + certificate file works). A DER PKCS#8 or PKCS#1 key is accepted too.
    /// `passphrase` is only used for an encrypted key.
    pub fn from_pem(data: &[u8], passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        if !pem::is_pem(data) {
            return Self::from_der(data);
        }
        for block in pem::parse_blocks(data)? {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der),
                "RSA PRIVATE KEY" if block.has_headers => {
                    return Err(KeyError::TraditionalEncrypted)
                }
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der),
                "ENCRYPTED PRIVATE KEY" => {
                    let pass = passphrase.ok_or(KeyError::PassphraseRequired)?;
                    return Self::from_encrypted_pkcs8_der(&block.der, pass);
                }
                "EC PRIVATE KEY" if block.has_headers => {
                    return Err(KeyError::TraditionalEncrypted)
                }
                "EC PRIVATE KEY" => return Self::from_sec1_der(&block.der),
                "DSA PRIVATE KEY" => return Err(KeyError::Unsupported("DSA".into())),
                _ => {}
            }
        }
        Err(KeyError::NoKey)
    }

    /// A DER key: PKCS#8 `PrivateKeyInfo`, PKCS#1 `RSAPrivateKey` or SEC1 `ECPrivateKey`.
    pub fn from_der(data: &[u8]) -> Result<Self, KeyError> {
        if pkcs8::PrivateKeyInfo::from_der(data).is_ok() {
            return Self::from_pkcs8_der(data);
        }
        if let Ok(k) = RsaKeyPair::from_der(data) {
            return Ok(rsa(k));
        }
        Self::from_sec1_der(data).map_err(|_| KeyError::NoKey)
    }

    /// SEC1 `ECPrivateKey` (`openssl ecparam -genkey`'s "EC PRIVATE KEY") on P-256 or P-384.
    pub fn from_sec1_der(der_bytes: &[u8]) -> Result<Self, KeyError> {
        let parsed = sec1::EcPrivateKey::from_der(der_bytes)
            .map_err(|e| KeyError::InvalidEc(e.to_string()))?;
        if let Some(curve) = parsed.parameters.and_then(|p| p.named_curve()) {
            match curve.to_string().as_str() {
                "1.2.840.10045.3.1.7" | "1.3.132.0.34" => {}
                "1.3.132.0.35" => return Err(KeyError::Unsupported("EC P-521".into())),
                other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
            }
        }
        if let Ok(k) = p256::SecretKey::from_sec1_der(der_bytes) {
            return Ok(p256_key(k));
        }
        p384::SecretKey::from_sec1_der(der_bytes)
            .map(p384_key)
            .map_err(|e| KeyError::InvalidEc(e.to_string()))
    }

    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der_bytes)
            .map_err(|e| KeyError::InvalidRsa(e.to_string()))?;
        if info.algorithm.oid == OID_EC {
            use p256::pkcs8::DecodePrivateKey as _;
            let curve = info.algorithm.parameters_oid().ok();
            return match curve.map(|o| o.to_string()).as_deref() {
                Some("1.2.840.10045.3.1.7") => p256::SecretKey::from_pkcs8_der(der_bytes)
                    .map(p256_key)
                    .map_err(|e| KeyError::InvalidEc(e.to_string())),
                Some("1.3.132.0.34") => p384::SecretKey::from_pkcs8_der(der_bytes)
                    .map(p384_key)
                    .map_err(|e| KeyError::InvalidEc(e.to_string())),
                _ => Err(KeyError::Unsupported(ec_curve_name(&info))),
            };
        }
        if info.algorithm.oid != OID_RSA {
            let name = match info.algorithm.oid.to_string().as_str() {
                "1.2.840.10045.2.1" => "EC".to_string(),
                "1.3.101.112" => "Ed25519".to_string(),
                "1.3.101.113" => "Ed448".to_string(),
                "1.2.840.113549.1.1.10" => "RSA-PSS".to_string(),
                other => other.to_string(),
            };
            return Err(KeyError::Unsupported(name));
        }
        RsaKeyPair::from_pkcs8(der_bytes)
            .map(rsa)
            .map_err(|e| KeyError::InvalidRsa(e.to_string()))
    }

    pub fn from_pkcs1_der(der_bytes: &[u8]) -> Result<Self, KeyError> {
        RsaKeyPair::from_der(der_bytes)
            .map(rsa)
            .map_err(|e| KeyError::InvalidRsa(e.to_string()))
    }

    /// PBES2 (PBKDF2 or scrypt, AES-CBC) as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
    pub fn from_encrypted_pkcs8_der(der_bytes: &[u8], passphrase: &[u8]) -> Result<Self, KeyError> {
        let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(der_bytes)
            .map_err(|e| KeyError::InvalidEncrypted(e.to_string()))?;
        let doc = match enc.decrypt(passphrase) {
            Ok(doc) => doc,
            // pkcs5 0.7 reports bad padding after decryption as `EncryptFailed`.
            Err(pkcs8::Error::EncryptedPrivateKey(
                pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
            )) => return Err(KeyError::WrongPassphrase),
            // A wrong passphrase that happens to leave valid padding yields garbage that is not DER.
            Err(pkcs8::Error::Asn1(_)) => return Err(KeyError::WrongPassphrase),
            Err(e) => return Err(KeyError::InvalidEncrypted(e.to_string())),
        };
        match Self::from_pkcs8_der(doc.as_bytes()) {
            Err(KeyError::InvalidRsa(_) | KeyError::InvalidEc(_))
                if pkcs8::PrivateKeyInfo::from_der(doc.as_bytes()).is_err() =>
            {
                Err(KeyError::WrongPassphrase)
            }
            other => other,
        }
    }

    /// Modulus size in bits (RSA), or the curve's size (EC: 256 or 384).
    pub fn bits(&self) -> usize {
        match &self.inner {
            Inner::Rsa(k) => k.public_modulus_len() * 8,
            Inner::P256(..) => 256,
            Inner::P384(..) => 384,
            Inner::Token(k) => match k.kind {
                TokenKeyKind::Rsa(n) => n * 8,
                TokenKeyKind::Ec(EcCurve::P256) => 256,
                TokenKeyKind::Ec(_) => 384,
            },
        }
    }

    /// Length of every signature this key makes (RSA), or the longest (EC: a DER
    /// `ECDSA-Sig-Value` of two INTEGERs is up to 72 bytes on P-256 and 104 on P-384, usually a
    /// byte or two less).
    pub fn signature_len(&self) -> usize {
        match &self.inner {
            Inner::Rsa(k) => k.public_modulus_len(),
            Inner::P256(..) => 72,
            Inner::P384(..) => 104,
            Inner::Token(k) => match k.kind {
                TokenKeyKind::Rsa(n) => n,
                TokenKeyKind::Ec(EcCurve::P256) => 72,
                TokenKeyKind::Ec(_) => 104,
            },
        }
    }

    /// Whether every signature has the same length (RSA) or not (ECDSA).
    pub fn fixed_signature_len(&self) -> bool {
        match &self.inner {
            Inner::Rsa(_) => true,
            Inner::Token(k) => matches!(k.kind, TokenKeyKind::Rsa(_)),
            _ => false,
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match &self.inner {
            Inner::Rsa(_) => KeyAlgorithm::Rsa,
            Inner::P256(..) => KeyAlgorithm::Ec(EcCurve::P256),
            Inner::P384(..) => KeyAlgorithm::Ec(EcCurve::P384),
            Inner::Token(k) => match k.kind {
                TokenKeyKind::Rsa(_) => KeyAlgorithm::Rsa,
                TokenKeyKind::Ec(c) => KeyAlgorithm::Ec(c),
            },
        }
    }

    /// The public half as certificates carry it: `RSAPublicKey` DER (RSA) or the uncompressed
    /// point (EC).
    pub fn public_key_der(&self) -> &[u8] {
        match &self.inner {
            Inner::Rsa(k) => k.public_key().as_ref(),
            Inner::P256(_, point) | Inner::P384(_, point) => point,
            Inner::Token(k) => &k.public,
        }
    }

    /// Whether `cert` certifies this key (same public key).
    pub fn matches(&self, cert: &Certificate) -> bool {
        if cert.key_algorithm() != self.algorithm() {
            return false;
        }
        match &self.inner {
            Inner::Rsa(_) => cert.public_key() == self.public_key_der(),
            // A certificate may hold the point compressed: compare points, not bytes.
            Inner::P256(k, _) => p256::PublicKey::from_sec1_bytes(cert.public_key())
                .is_ok_and(|p| p == p256::PublicKey::from(k.verifying_key())),
            Inner::P384(k, _) => p384::PublicKey::from_sec1_bytes(cert.public_key())
                .is_ok_and(|p| p == p384::PublicKey::from(k.verifying_key())),
            // The token may not show the public half (EC private key objects lack it), and
            // showing it proves nothing about the key that signs: sign and check instead.
            Inner::Token(_) => self.signs_for(cert),
        }
    }

    /// Whether a signature made now verifies with `cert`'s public key.
    fn signs_for(&self, cert: &Certificate) -> bool {
        use aws_lc_rs::signature::{self, UnparsedPublicKey};
        let msg = b"rpm-verity: does this key match its certificate?";
        let Ok(sig) = self.sign(HashAlgorithm::Sha256, msg) else {
            return false;
        };
        let alg: &'static dyn signature::VerificationAlgorithm = match cert.key_algorithm() {
            KeyAlgorithm::Rsa => &signature::RSA_PKCS1_2048_8192_SHA256,
            KeyAlgorithm::Ec(EcCurve::P256) => &signature::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::Ec(EcCurve::P384) => &signature::ECDSA_P384_SHA256_ASN1,
            KeyAlgorithm::Ec(EcCurve::P521) => return false,
        };
        UnparsedPublicKey::new(alg, cert.public_key())
            .verify(msg, &sig)
            .is_ok()
    }

    /// The signature value of `message` hashed with `hash`, as OpenSSL's PKCS7_sign makes it
    /// without signed attributes: RSASSA-PKCS1-v1_5, or ECDSA as a DER `ECDSA-Sig-Value` (the
    /// hash truncated or widened to the curve's size as ECDSA does). Deterministic for both: ECDSA
    /// nonces come from RFC 6979.
    pub fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        let prehash = || {
            let alg = match hash {
                HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
                HashAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
            };
            aws_lc_rs::digest::digest(alg, message)
        };
        match &self.inner {
            Inner::Rsa(k) => {
                let encoding: &'static dyn RsaEncoding = match hash {
                    HashAlgorithm::Sha256 => &RSA_PKCS1_SHA256,
                    HashAlgorithm::Sha512 => &RSA_PKCS1_SHA512,
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                k.sign(encoding, &rng, message, &mut sig)
                    .map_err(|_| KeyError::SignFailed)?;
                Ok(sig)
            }
            Inner::P256(k, _) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(prehash().as_ref())
                    .map_err(|_| KeyError::SignFailed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Inner::P384(k, _) => {
                let sig: p384::ecdsa::Signature = k
                    .sign_prehash(prehash().as_ref())
                    .map_err(|_| KeyError::SignFailed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Inner::Token(k) => Ok(k.sign(hash, message)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_is_the_first_line_of_the_file_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        let env = || Some(OsString::from("from env"));
        for (contents, expected) in [
            (&b"sekret\nsecond line\n"[..], &b"sekret"[..]),
            (b"crlf\r\n", b"crlf"),
            (b"no newline", b"no newline"),
            (b"", b""),
            (b"\nafter empty first line", b""),
        ] {
            std::fs::write(&file, contents).unwrap();
            let got = passphrase_from(Some(&file), env()).unwrap();
            assert_eq!(got.as_deref(), Some(expected));
        }
        assert_eq!(
            passphrase_from(None, env()).unwrap().as_deref(),
            Some(&b"from env"[..])
        );
        assert_eq!(passphrase_from(None, None).unwrap(), None);
        let missing = dir.path().join("missing");
        let e = passphrase_from(Some(&missing), env()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
