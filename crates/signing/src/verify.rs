//! Checking a built-in signature the way the kernel does: find the signer among trusted
//! certificates by issuer + serial, then verify the signature over the formatted digest.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use fsverity::FileDigest;

use crate::cert::{Certificate, EcCurve, KeyAlgorithm};
use crate::pkcs7::{DigestAlgorithm, ParseError, Pkcs7Signature, SignatureAlgorithm, SignerId};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed PKCS#7 signature: {0}")]
    Malformed(String),
    #[error("unsupported PKCS#7 signature: {0}")]
    UnsupportedAlgorithm(String),
    #[error("signed with {signature} but the file digest is {digest}")]
    DigestAlgorithmMismatch {
        signature: &'static str,
        digest: &'static str,
    },
    #[error("unknown signer ({0}): no trusted certificate has that issuer and serial")]
    UnknownSigner(SignerId),
    #[error("signature does not match the file digest (or was not made by {0})")]
    BadSignature(SignerId),
}

impl From<ParseError> for VerifyError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Malformed(m) => VerifyError::Malformed(m),
            ParseError::UnsupportedAlgorithm(m) => VerifyError::UnsupportedAlgorithm(m),
        }
    }
}

impl Pkcs7Signature {
    /// [`Pkcs7Signature::from_der`] for callers about to verify: one error type covers both
    /// steps, and an unreadable signature is just one more reason verification fails.
    pub fn parse(der: &[u8]) -> Result<Self, VerifyError> {
        Ok(Self::from_der(der)?)
    }

    /// Verifies this signature over `digest`'s formatted digest, with the signer looked up in
    /// `trusted`. Returns the certificate that verified it.
    pub fn verify<'c>(
        &self,
        digest: &FileDigest,
        trusted: &'c [Certificate],
    ) -> Result<&'c Certificate, VerifyError> {
        let hash = digest.algorithm();
        if self.digest_algorithm().fsverity() != Some(hash) {
            return Err(VerifyError::DigestAlgorithmMismatch {
                signature: self.digest_algorithm().name(),
                digest: hash.name(),
            });
        }
        let signer = self.signer();
        let cert = trusted
            .iter()
            .find(|c| signer.matches(c))
            .ok_or_else(|| VerifyError::UnknownSigner(signer.clone()))?;
        let alg = verification_algorithm(
            self.signature_algorithm(),
            cert.key_algorithm(),
            self.digest_algorithm(),
        )
        .ok_or_else(|| VerifyError::BadSignature(signer.clone()))?;
        UnparsedPublicKey::new(alg, cert.public_key())
            .verify(&digest.formatted(), self.signature_value())
            .map_err(|_| VerifyError::BadSignature(signer.clone()))?;
        Ok(cert)
    }
}

/// Parses `sig` and verifies it in one step.
pub fn verify_signature<'c>(
    sig: &[u8],
    digest: &FileDigest,
    trusted: &'c [Certificate],
) -> Result<&'c Certificate, VerifyError> {
    Pkcs7Signature::parse(sig)?.verify(digest, trusted)
}

fn verification_algorithm(
    sig: SignatureAlgorithm,
    key: KeyAlgorithm,
    digest: DigestAlgorithm,
) -> Option<&'static dyn VerificationAlgorithm> {
    use DigestAlgorithm::*;
    Some(match (sig, key, digest) {
        (SignatureAlgorithm::RsaPkcs1, KeyAlgorithm::Rsa, Sha256) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (SignatureAlgorithm::RsaPkcs1, KeyAlgorithm::Rsa, Sha512) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P256), Sha256) => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P256), Sha512) => {
            &signature::ECDSA_P256_SHA512_ASN1
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P384), Sha256) => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P384), Sha512) => {
            &signature::ECDSA_P384_SHA512_ASN1
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P521), Sha256) => {
            &signature::ECDSA_P521_SHA256_ASN1
        }
        (SignatureAlgorithm::Ecdsa, KeyAlgorithm::Ec(EcCurve::P521), Sha512) => {
            &signature::ECDSA_P521_SHA512_ASN1
        }
        _ => return None,
    })
}
