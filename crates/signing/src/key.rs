//! Private keys: the PEM kinds `openssl` writes (PKCS#8, PKCS#1, encrypted PKCS#8), RSA only.
//!
//! RSA is what every kernel with built-in signatures accepts; ECDSA only works on ≥ 5.13 and makes
//! non-deterministic signatures, so it is refused here with a clear message.

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{KeyPair as _, RsaEncoding, RSA_PKCS1_SHA256, RSA_PKCS1_SHA512};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use der::Decode;
use fsverity::HashAlgorithm;

use crate::cert::{Certificate, KeyAlgorithm};
use crate::pem;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\")"
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
    #[error("unsupported key type {0}: only RSA keys can make fs-verity signatures here")]
    Unsupported(String),
    #[error("invalid RSA private key ({0}); RSA keys must be 2048 to 8192 bits")]
    InvalidRsa(String),
    #[error("invalid encrypted key: {0}")]
    InvalidEncrypted(String),
    #[error("RSA signing failed")]
    SignFailed,
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

/// A private key that can sign formatted fs-verity digests.
pub struct SigningKey {
    rsa: RsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(RSA-{})", self.bits())
    }
}

impl SigningKey {
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
                "EC PRIVATE KEY" => return Err(KeyError::Unsupported("EC".into())),
                "DSA PRIVATE KEY" => return Err(KeyError::Unsupported("DSA".into())),
                _ => {}
            }
        }
        Err(KeyError::NoKey)
    }

    /// A DER key: PKCS#8 `PrivateKeyInfo` or PKCS#1 `RSAPrivateKey`.
    pub fn from_der(data: &[u8]) -> Result<Self, KeyError> {
        if pkcs8::PrivateKeyInfo::from_der(data).is_ok() {
            return Self::from_pkcs8_der(data);
        }
        RsaKeyPair::from_der(data)
            .map(|rsa| Self { rsa })
            .map_err(|_| KeyError::NoKey)
    }

    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der_bytes)
            .map_err(|e| KeyError::InvalidRsa(e.to_string()))?;
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
            .map(|rsa| Self { rsa })
            .map_err(|e| KeyError::InvalidRsa(e.to_string()))
    }

    pub fn from_pkcs1_der(der_bytes: &[u8]) -> Result<Self, KeyError> {
        RsaKeyPair::from_der(der_bytes)
            .map(|rsa| Self { rsa })
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
            Err(KeyError::InvalidRsa(_))
                if pkcs8::PrivateKeyInfo::from_der(doc.as_bytes()).is_err() =>
            {
                Err(KeyError::WrongPassphrase)
            }
            other => other,
        }
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.rsa.public_modulus_len() * 8
    }

    /// Length of every signature this key makes.
    pub fn signature_len(&self) -> usize {
        self.rsa.public_modulus_len()
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Rsa
    }

    /// `RSAPublicKey` DER of the public half.
    pub fn public_key_der(&self) -> &[u8] {
        self.rsa.public_key().as_ref()
    }

    /// Whether `cert` certifies this key (same public key).
    pub fn matches(&self, cert: &Certificate) -> bool {
        cert.key_algorithm() == KeyAlgorithm::Rsa && cert.public_key() == self.public_key_der()
    }

    /// RSASSA-PKCS1-v1_5 over `message` hashed with `hash` (what OpenSSL's PKCS7_sign does without
    /// signed attributes). Deterministic.
    pub fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let encoding: &'static dyn RsaEncoding = match hash {
            HashAlgorithm::Sha256 => &RSA_PKCS1_SHA256,
            HashAlgorithm::Sha512 => &RSA_PKCS1_SHA512,
        };
        let mut sig = vec![0u8; self.rsa.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.rsa
            .sign(encoding, &rng, message, &mut sig)
            .map_err(|_| KeyError::SignFailed)?;
        Ok(sig)
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
