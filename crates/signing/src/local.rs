//! A signer holding the private key in this process.

use crate::distinct::DistinctDigests;
use std::io::Read;
use std::path::{Path, PathBuf};

use fsverity::FileDigest;
use rayon::prelude::*;

use crate::cert::{CertError, Certificate, KeyAlgorithm};
use crate::key::{KeyError, SigningKey};
use crate::pkcs7::SignatureAlgorithm;
use crate::{pem, pkcs7, Signer, SignerError};

/// Batches with at least this many distinct digests are signed on the rayon pool; below it the
/// thread hand-off costs more than it saves (an RSA-2048 signature is well under a millisecond).
const PARALLEL_THRESHOLD: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // Causes are part of the message rather than `source()`, so that a printed error chain does
    // not repeat them.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{path}: larger than {} bytes, not a key or certificate file",
        pem::MAX_PEM_LEN
    )]
    TooLarge { path: PathBuf },
    #[error("key {path}: {error}")]
    Key { path: PathBuf, error: KeyError },
    #[error("certificate {path}: {error}")]
    Cert { path: PathBuf, error: CertError },
    #[error("key {key} does not match certificate {cert}")]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("key {key}: a key on a PKCS#11 token needs its certificate given as a file (--cert, or cert = in the config)")]
    NoCertForToken { key: PathBuf },
}

#[derive(Debug, thiserror::Error)]
#[error("key does not match certificate")]
pub struct KeyMismatch;

/// Signs with a local key; each signature names `cert` as the signer.
pub struct LocalSigner {
    key: SigningKey,
    cert: Certificate,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("key", &self.key)
            .field("cert", &self.cert)
            .finish()
    }
}

/// Reads a key or certificate file, refusing anything too large to be one.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_err = |error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut data = Vec::new();
    file.take(pem::MAX_PEM_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() > pem::MAX_PEM_LEN {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(data)
}

impl LocalSigner {
    /// Refuses a key that `cert` does not certify: the kernel would reject every signature.
    pub fn new(key: SigningKey, cert: Certificate) -> Result<Self, KeyMismatch> {
        if !key.matches(&cert) {
            return Err(KeyMismatch);
        }
        Ok(Self { key, cert })
    }

    /// Loads the key (PEM; `passphrase` for an encrypted one) and the certificate (PEM or DER)
    /// from files. Without `cert_path` the certificate is read from the key file, like
    /// `fsverity sign` does. Errors name the file.
    ///
    /// A `key_path` that is a `pkcs11:` URI names a key on a token instead; `passphrase` is then
    /// its PIN unless the URI has a `pin-source`.
    pub fn load(
        key_path: &Path,
        cert_path: Option<&Path>,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, LoadError> {
        if let Some(uri) = key_path.to_str().filter(|k| crate::is_pkcs11_uri(k)) {
            let cert_path = cert_path.ok_or_else(|| LoadError::NoCertForToken {
                key: key_path.to_path_buf(),
            })?;
            return Self::load_token(uri, cert_path, passphrase);
        }
        let key_data = read_bounded(key_path)?;
        let key = SigningKey::from_pem(&key_data, passphrase).map_err(|error| LoadError::Key {
            path: key_path.to_path_buf(),
            error,
        })?;
        let cert_path = cert_path.unwrap_or(key_path);
        let cert_data = if cert_path == key_path {
            key_data
        } else {
            read_bounded(cert_path)?
        };
        let cert = Certificate::parse(&cert_data).map_err(|error| LoadError::Cert {
            path: cert_path.to_path_buf(),
            error,
        })?;
        Self::new(key, cert).map_err(|_| LoadError::Mismatch {
            key: key_path.to_path_buf(),
            cert: cert_path.to_path_buf(),
        })
    }

    fn load_token(uri: &str, cert_path: &Path, pin: Option<&[u8]>) -> Result<Self, LoadError> {
        // The certificate first: it is the cheaper mistake to find.
        let cert_data = read_bounded(cert_path)?;
        let cert = Certificate::parse(&cert_data).map_err(|error| LoadError::Cert {
            path: cert_path.to_path_buf(),
            error,
        })?;
        let name = PathBuf::from(uri.split('?').next().unwrap_or(uri));
        let sessions = rayon::current_num_threads()
            .max(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let key = SigningKey::from_pkcs11(uri, pin, sessions).map_err(|error| LoadError::Key {
            path: name.clone(),
            error,
        })?;
        Self::new(key, cert).map_err(|_| LoadError::Mismatch {
            key: name,
            cert: cert_path.to_path_buf(),
        })
    }

    /// [`LocalSigner::load`] with a separate certificate file.
    pub fn from_files(
        key_path: &Path,
        cert_path: &Path,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, LoadError> {
        Self::load(key_path, Some(cert_path), passphrase)
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The PKCS#7 built-in signature of one digest, byte-identical to `fsverity sign`.
    pub fn sign_digest(&self, digest: &FileDigest) -> Result<Vec<u8>, SignerError> {
        let hash = digest.algorithm();
        let sig = self
            .key
            .sign(hash, &digest.formatted())
            .map_err(|e| SignerError::Crypto(e.to_string()))?;
        pkcs7::signed_data(hash, self.signature_algorithm(), &self.cert, &sig)
            .map_err(|e| SignerError::Crypto(e.to_string()))
    }

    /// `content` signed inside a PKCS#7 SignedData (SHA-256, no signed attributes, no
    /// certificates): the form the kernel reads an IPE policy in. Local keys only: a remote
    /// signer signs fs-verity digests and nothing else, by design.
    pub fn sign_attached(&self, content: &[u8]) -> Result<Vec<u8>, SignerError> {
        let hash = fsverity::HashAlgorithm::Sha256;
        let sig = self
            .key
            .sign(hash, content)
            .map_err(|e| SignerError::Crypto(e.to_string()))?;
        pkcs7::attached_signed_data(hash, self.signature_algorithm(), &self.cert, content, &sig)
            .map_err(|e| SignerError::Crypto(e.to_string()))
    }

    fn signature_algorithm(&self) -> SignatureAlgorithm {
        match self.key.algorithm() {
            KeyAlgorithm::Rsa => SignatureAlgorithm::RsaPkcs1,
            KeyAlgorithm::Ec(_) => SignatureAlgorithm::Ecdsa,
        }
    }
}

impl Signer for LocalSigner {
    /// Identical digests (common: empty files, duplicated files across packages) are signed once.
    fn sign_digests(&self, digests: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError> {
        let distinct = DistinctDigests::new(digests);
        let unique = &distinct.unique;
        let signed: Vec<Vec<u8>> = if unique.len() >= PARALLEL_THRESHOLD {
            unique
                .par_iter()
                .map(|d| self.sign_digest(d))
                .collect::<Result<_, _>>()?
        } else {
            unique
                .iter()
                .map(|d| self.sign_digest(d))
                .collect::<Result<_, _>>()?
        };
        distinct
            .spread(&signed)
            .ok_or_else(|| SignerError::Crypto("a signature went missing".into()))
    }

    fn sign_one(&self, digest: &FileDigest) -> Result<Vec<u8>, SignerError> {
        self.sign_digest(digest)
    }

    fn certificate_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// Exact for RSA; for ECDSA the longest a signature can be (its DER integers vary in length),
    /// which callers laying out output must allow for.
    fn signature_len(&self, hash: fsverity::HashAlgorithm) -> Option<usize> {
        let dummy = vec![0u8; self.key.signature_len()];
        pkcs7::signed_data(hash, self.signature_algorithm(), &self.cert, &dummy)
            .ok()
            .map(|der| der.len())
    }
}
