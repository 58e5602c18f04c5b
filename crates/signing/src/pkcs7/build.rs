//! Writing the SignedData libfsverity writes (and, for IPE policies, the same with the content
//! attached):
//! `PKCS7_sign(..., PKCS7_BINARY|PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_NOCERTS)` + `i2d_PKCS7`.
//! Detached content, no certificates, no signed attributes, one signer named by issuer and
//! serial, and `NULL` parameters in every AlgorithmIdentifier but ECDSA's, which has none, as
//! OpenSSL writes them.

use cms::cert::CertificateChoices;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::CertificateSet;
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Tag};
use fsverity::HashAlgorithm;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::{
    DigestAlgorithm, SignatureAlgorithm, OID_DATA, OID_ECDSA_SHA256, OID_ECDSA_SHA512,
    OID_RSA_ENCRYPTION, OID_SIGNED_DATA,
};
use crate::cert::Certificate;

/// Why a SignedData could not be encoded: only a signature too long for DER lengths (256 MiB)
/// gets here, since the certificate's issuer and serial were checked to be DER when it was parsed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot encode PKCS#7 SignedData: {0}")]
    Encode(#[from] der::Error),
}

/// `AlgorithmIdentifier { oid, NULL }`: OpenSSL writes `NULL` parameters for digests and
/// rsaEncryption, and the bytes must be OpenSSL's.
fn algorithm_with_null(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

/// The DER PKCS#7 for an RSA `signature` of a formatted digest hashed with `hash`, naming
/// `cert`'s issuer and serial as the signer: byte for byte what `fsverity sign` writes.
pub fn rsa_signed_data(
    hash: HashAlgorithm,
    cert: &Certificate,
    signature: &[u8],
) -> Result<Vec<u8>, BuildError> {
    signed_data(hash, SignatureAlgorithm::RsaPkcs1, cert, signature)
}

/// The DER PKCS#7 for an ECDSA `signature` (a DER `ECDSA-Sig-Value`) of a formatted digest
/// hashed with `hash`: what `fsverity sign` writes with an EC key, `digestEncryptionAlgorithm`
/// `ecdsa-with-SHA256` (or `-SHA512`, the digest OpenSSL pairs it with) without parameters.
pub fn ecdsa_signed_data(
    hash: HashAlgorithm,
    cert: &Certificate,
    signature: &[u8],
) -> Result<Vec<u8>, BuildError> {
    signed_data(hash, SignatureAlgorithm::Ecdsa, cert, signature)
}

/// The length of the longest PKCS#7 a key certified by `cert` can make for `hash`: exact for
/// RSA, an upper bound for ECDSA (see [`Certificate::max_signature_value_len`]). Lets a signer
/// that has only the certificate (a remote one, `report`) lay out packages as `sign` does with
/// the key. `None` when the certificate's RSA key cannot be read.
pub fn longest_signed_data_len(hash: HashAlgorithm, cert: &Certificate) -> Option<usize> {
    let algorithm = match cert.key_algorithm() {
        crate::cert::KeyAlgorithm::Rsa => SignatureAlgorithm::RsaPkcs1,
        crate::cert::KeyAlgorithm::Ec(_) => SignatureAlgorithm::Ecdsa,
    };
    let dummy = vec![0u8; cert.max_signature_value_len()?];
    signed_data(hash, algorithm, cert, &dummy)
        .ok()
        .map(|der| der.len())
}

/// The DER PKCS#7 for a `signature` made with `algorithm` over a formatted digest hashed with
/// `hash`, naming `cert`'s issuer and serial as the signer.
pub fn signed_data(
    hash: HashAlgorithm,
    algorithm: SignatureAlgorithm,
    cert: &Certificate,
    signature: &[u8],
) -> Result<Vec<u8>, BuildError> {
    encode(hash, algorithm, cert, signature, None)
}

/// The DER PKCS#7 carrying `content` and `cert` inside it, with a `signature` made with
/// `algorithm` directly over `content` hashed with `hash`: what `openssl smime -sign -binary -nodetach -noattr
/// -nosmimecap` writes, and what the kernel reads for an IPE policy (it takes the policy text
/// from the SignedData itself, so a detached signature would leave it nothing to parse).
pub fn attached_signed_data(
    hash: HashAlgorithm,
    algorithm: SignatureAlgorithm,
    cert: &Certificate,
    content: &[u8],
    signature: &[u8],
) -> Result<Vec<u8>, BuildError> {
    encode(hash, algorithm, cert, signature, Some(content))
}

fn encode(
    hash: HashAlgorithm,
    algorithm: SignatureAlgorithm,
    cert: &Certificate,
    signature: &[u8],
    content: Option<&[u8]>,
) -> Result<Vec<u8>, BuildError> {
    let signature_algorithm = match (algorithm, hash) {
        (SignatureAlgorithm::RsaPkcs1, _) => algorithm_with_null(OID_RSA_ENCRYPTION),
        (SignatureAlgorithm::Ecdsa, HashAlgorithm::Sha256) => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA256,
            parameters: None,
        },
        (SignatureAlgorithm::Ecdsa, HashAlgorithm::Sha512) => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA512,
            parameters: None,
        },
    };
    let digest_algorithm = algorithm_with_null(DigestAlgorithm::from(hash).oid());
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.issuer_name().clone(),
            serial_number: cert.serial_number().clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: None,
        signature_algorithm,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    // With the content attached, the signer's certificate goes along too, as `openssl smime
    // -sign` puts it: the kernel then matches the enrolled key by the certificate's own key
    // identifier, and `openssl smime -verify` needs no -certfile.
    let (econtent, certificates) = match content {
        Some(content) => {
            let x509 = x509_cert::Certificate::from_der(cert.der())?;
            let set = CertificateSet(SetOfVec::try_from(vec![CertificateChoices::Certificate(
                x509,
            )])?);
            (Some(Any::new(Tag::OctetString, content)?), Some(set))
        }
        None => (None, None),
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_DATA,
            econtent,
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let content_info = ContentInfo {
        content_type: OID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    };
    Ok(content_info.to_der()?)
}

/// [`rsa_signed_data`] for signatures a key actually makes (at most a few KiB).
///
/// # Panics
///
/// If `signature` is too long for a DER length (256 MiB), the one way encoding can fail.
pub fn build_rsa_signed_data(hash: HashAlgorithm, cert: &Certificate, signature: &[u8]) -> Vec<u8> {
    match rsa_signed_data(hash, cert, signature) {
        Ok(der) => der,
        Err(e) => panic!("{e} (signature of {} bytes)", signature.len()),
    }
}
