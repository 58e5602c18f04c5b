//! The PKCS#7 SignedData of fs-verity built-in signatures: [`build`] writes it exactly as
//! libfsverity does, [`parse`] reads it back strictly. Both go through the `cms` crate's types, so
//! the layout is stated once, as RFC 5652 has it; DER being canonical is what makes the built
//! bytes identical to OpenSSL's.

use der::asn1::ObjectIdentifier;
use fsverity::HashAlgorithm;

use crate::cert::Certificate;

pub mod build;
pub mod parse;

pub use build::{
    attached_signed_data, build_rsa_signed_data, ecdsa_signed_data, longest_signed_data_len,
    rsa_signed_data, signed_data, BuildError,
};
pub use parse::{ParseError, Pkcs7Signature};

/// Largest signature the kernel's ASN.1 decoder accepts; larger input is refused unparsed.
pub const MAX_SIGNATURE_LEN: usize = 65535;

pub(crate) const OID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const OID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const OID_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const OID_SHA512: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const OID_SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const OID_ECDSA_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const OID_ECDSA_SHA512: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

/// Who made a signature: the issuer and serial of the signing certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerId {
    /// Readable issuer, e.g. `C=AU, ST=Some-State, O=Internet Widgits Pty Ltd`.
    pub issuer: String,
    /// Serial number in lower-case hex.
    pub serial: String,
    pub(crate) issuer_der: Vec<u8>,
    pub(crate) serial_der: Vec<u8>,
}

impl SignerId {
    /// Whether `cert` is the certificate this signer names (issuer and serial, byte for byte).
    pub fn matches(&self, cert: &Certificate) -> bool {
        self.issuer_der == cert.issuer_der() && self.serial_der == cert.serial_der()
    }
}

impl std::fmt::Display for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "issuer \"{}\", serial {}", self.issuer, self.serial)
    }
}

/// Digest algorithm named in a SignerInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The fs-verity hash with this digest, if fs-verity has one (it has no SHA-384).
    pub fn fsverity(self) -> Option<HashAlgorithm> {
        match self {
            DigestAlgorithm::Sha256 => Some(HashAlgorithm::Sha256),
            DigestAlgorithm::Sha512 => Some(HashAlgorithm::Sha512),
            DigestAlgorithm::Sha384 => None,
        }
    }

    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha256 => OID_SHA256,
            DigestAlgorithm::Sha384 => OID_SHA384,
            DigestAlgorithm::Sha512 => OID_SHA512,
        }
    }
}

impl From<HashAlgorithm> for DigestAlgorithm {
    fn from(hash: HashAlgorithm) -> Self {
        match hash {
            HashAlgorithm::Sha256 => DigestAlgorithm::Sha256,
            HashAlgorithm::Sha512 => DigestAlgorithm::Sha512,
        }
    }
}

/// Signature algorithm named in a SignerInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 (`rsaEncryption`, or `sha*WithRSAEncryption`).
    RsaPkcs1,
    /// ECDSA, DER-encoded (r, s).
    Ecdsa,
}
