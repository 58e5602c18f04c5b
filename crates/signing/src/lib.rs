//! Signing of fs-verity digests: key and certificate loading, PKCS#7 SignedData exactly as
//! libfsverity builds it, verification, and the [`Signer`] trait. Knows nothing about RPM.
#![forbid(unsafe_code)]

use fsverity::FileDigest;

pub mod cert;
pub mod cert_file;
mod distinct;
pub mod key;
mod local;
pub mod pem;
pub mod pkcs11;
pub mod pkcs7;
pub mod verify;

pub use cert::{kernel_key_description, subject_common_name, CertError, Certificate, KeyAlgorithm};
pub use cert_file::{
    cert_dir_files, read_cert_dir, read_cert_file, CertFile, CertFileError, MAX_CERT_FILE_LEN,
};
pub use distinct::{DistinctDigests, Spreader};
pub use key::{read_key_passphrase, KeyError, PassphraseError, SigningKey, KEY_PASSPHRASE_ENV};
pub use local::{read_bounded, KeyMismatch, LoadError, LocalSigner};
pub use pkcs11::{is_pkcs11_uri, Pkcs11Error, Pkcs11Key, Pkcs11Uri, PKCS11_MODULE_ENV};
pub use pkcs7::{
    attached_signed_data, build_rsa_signed_data, ecdsa_signed_data, longest_signed_data_len,
    signed_data, BuildError, DigestAlgorithm, ParseError, Pkcs7Signature, SignatureAlgorithm,
    SignerId,
};
pub use verify::{verify_signature, VerifyError};

/// Something that turns fs-verity file digests into PKCS#7 built-in signatures: a local key, or a
/// remote signing service. Callers hand over whole batches so that a remote signer can make one
/// round trip per batch and a local one can sign in parallel.
///
/// Implementations build the formatted digest themselves, so a signer only ever signs fs-verity
/// digests. Signatures come back in the order of `digests`, one per digest.
pub trait Signer: Send + Sync {
    fn sign_digests(&self, digests: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError>;

    /// One digest, for callers that schedule signing themselves (the service's first-in,
    /// first-out signing threads). `LocalSigner` signs it on the calling thread; the default is
    /// a batch of one, which an implementation may still hand elsewhere (a `RemoteSigner`
    /// sends it as one request).
    fn sign_one(&self, digest: &FileDigest) -> Result<Vec<u8>, SignerError> {
        let mut sigs = self.sign_digests(std::slice::from_ref(digest))?;
        match (sigs.pop(), sigs.is_empty()) {
            (Some(sig), true) => Ok(sig),
            (last, _) => Err(SignerError::CountMismatch {
                expected: 1,
                got: sigs.len() + usize::from(last.is_some()),
            }),
        }
    }

    /// DER of the certificate whose key makes the signatures (for reporting and verification).
    fn certificate_der(&self) -> &[u8];

    /// The length of every signature this signer makes for `hash`, when it is known without
    /// signing (an RSA PKCS#1 v1.5 signature is always the modulus length, so the PKCS#7 around
    /// it has a fixed size), or for ECDSA the longest one (the DER integers r and s vary in
    /// length, so a signature may be a few bytes shorter): callers lay out output before any
    /// signature exists, and must check the layout the real signatures give.
    /// `None` (the default) means "sign something to find out".
    fn signature_len(&self, hash: fsverity::HashAlgorithm) -> Option<usize> {
        let _ = hash;
        None
    }
}

/// Why a batch could not be signed. Remote signers map transport and server errors here.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("signing failed: {0}")]
    Crypto(String),
    #[error("signing service: {0}")]
    Remote(String),
    #[error("signer returned {got} signatures for {expected} digests")]
    CountMismatch { expected: usize, got: usize },
}

#[cfg(test)]
mod tests;
