//! Reading a built-in signature back: exactly one signer named by issuer and serial, detached
//! content, no signed attributes, DER only. Anything else is refused with the reason, because a
//! signature this crate accepts has to be one the kernel would read the same way.

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::{
    DigestAlgorithm, SignatureAlgorithm, SignerId, MAX_SIGNATURE_LEN, OID_DATA, OID_ECDSA_SHA256,
    OID_ECDSA_SHA512, OID_RSA_ENCRYPTION, OID_SHA256, OID_SHA256_WITH_RSA, OID_SHA384, OID_SHA512,
    OID_SHA512_WITH_RSA, OID_SIGNED_DATA,
};

/// Why bytes are not a built-in signature this crate can check. The messages are the ones
/// [`crate::VerifyError`] shows for the same problems, so either error reads the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed PKCS#7 signature: {0}")]
    Malformed(String),
    #[error("unsupported PKCS#7 signature: {0}")]
    UnsupportedAlgorithm(String),
}

/// A parsed fs-verity built-in signature.
#[derive(Clone, Debug)]
pub struct Pkcs7Signature {
    signer: SignerId,
    digest_algorithm: DigestAlgorithm,
    signature_algorithm: SignatureAlgorithm,
    signature: Vec<u8>,
}

fn malformed(what: &str) -> impl Fn(der::Error) -> ParseError + '_ {
    move |e| ParseError::Malformed(format!("{what}: {e}"))
}

/// Checks that an AlgorithmIdentifier's parameters are absent or NULL, which is all that digest,
/// RSA and ECDSA identifiers may carry.
fn check_no_parameters(alg: &AlgorithmIdentifierOwned, what: &str) -> Result<(), ParseError> {
    match &alg.parameters {
        None => Ok(()),
        Some(p) if p.tag() == Tag::Null && p.value().is_empty() => Ok(()),
        Some(p) if p.tag() == Tag::Null => Err(ParseError::Malformed(format!(
            "{what}: NULL parameters with contents"
        ))),
        Some(p) => Err(ParseError::Malformed(format!(
            "{what}: parameters are {} instead of NULL",
            p.tag()
        ))),
    }
}

impl Pkcs7Signature {
    /// Parses DER PKCS#7 SignedData with exactly one signer and detached content. Trailing bytes,
    /// encodings other than DER, embedded content and signed attributes are errors; embedded
    /// certificates and CRLs are allowed and ignored, as trust comes from the caller's.
    pub fn from_der(der: &[u8]) -> Result<Self, ParseError> {
        if der.len() > MAX_SIGNATURE_LEN {
            return Err(ParseError::Malformed(format!(
                "signature is {} bytes, more than the {MAX_SIGNATURE_LEN} the kernel accepts",
                der.len()
            )));
        }
        match Self::parse_content(der)? {
            (_, Some(_)) => Err(ParseError::Malformed(
                "signature is not detached (it embeds content)".into(),
            )),
            (parsed, None) => Ok(parsed),
        }
    }

    /// Parses DER PKCS#7 SignedData with exactly one signer that carries its content (an IPE
    /// policy), with the same strictness as [`Pkcs7Signature::from_der`]; the signer and the
    /// content. Detached signatures are refused: there would be nothing for the kernel to read.
    /// No size bound here: the caller knows its own limit.
    pub fn from_der_attached(der: &[u8]) -> Result<(Self, Vec<u8>), ParseError> {
        match Self::parse_content(der)? {
            (parsed, Some(content)) => Ok((parsed, content)),
            (_, None) => Err(ParseError::Malformed(
                "the signature is detached: it carries no content".into(),
            )),
        }
    }

    fn parse_content(der: &[u8]) -> Result<(Self, Option<Vec<u8>>), ParseError> {
        if der.is_empty() {
            return Err(ParseError::Malformed("empty signature".into()));
        }
        let content_info = ContentInfo::from_der(der).map_err(malformed("ContentInfo"))?;
        if content_info.content_type != OID_SIGNED_DATA {
            return Err(ParseError::Malformed(
                "content type is not signedData".into(),
            ));
        }
        let signed_data: SignedData = content_info
            .content
            .decode_as()
            .map_err(malformed("SignedData"))?;
        // Decoding sorts SET OF elements it finds out of order; the kernel matches the signer's
        // issuer by its bytes, so a signature that only matches once normalised must not pass.
        let reencoded = signed_data.to_der().map_err(malformed("SignedData"))?;
        let received = content_info
            .content
            .to_der()
            .map_err(malformed("SignedData"))?;
        if reencoded != received {
            return Err(ParseError::Malformed(
                "SignedData is not DER (a SET OF is out of order)".into(),
            ));
        }

        if signed_data.version != CmsVersion::V1 {
            return Err(ParseError::Malformed("SignedData version is not 1".into()));
        }
        for alg in signed_data.digest_algorithms.iter() {
            check_no_parameters(alg, "SignedData digestAlgorithms")?;
        }
        let encapsulated = &signed_data.encap_content_info;
        if encapsulated.econtent_type != OID_DATA {
            return Err(ParseError::Malformed(
                "signed content type is not data".into(),
            ));
        }
        let content = match &encapsulated.econtent {
            None => None,
            Some(any) if any.tag() == Tag::OctetString => Some(any.value().to_vec()),
            Some(any) => {
                return Err(ParseError::Malformed(format!(
                    "embedded content is {} instead of an OCTET STRING",
                    any.tag()
                )))
            }
        };
        let signer_info = match signed_data.signer_infos.0.as_slice() {
            [] => return Err(ParseError::Malformed("no signer".into())),
            [one] => one,
            _ => return Err(ParseError::Malformed("more than one signer".into())),
        };
        let parsed = Self::from_signer_info(signer_info)?;
        let listed = signed_data
            .digest_algorithms
            .iter()
            .any(|alg| alg.oid == parsed.digest_algorithm.oid());
        if !listed {
            return Err(ParseError::Malformed(
                "signer's digest algorithm is not in digestAlgorithms".into(),
            ));
        }
        Ok((parsed, content))
    }

    fn from_signer_info(info: &SignerInfo) -> Result<Self, ParseError> {
        let issuer_and_serial =
            match (&info.version, &info.sid) {
                (CmsVersion::V1, SignerIdentifier::IssuerAndSerialNumber(ias)) => ias,
                _ => return Err(ParseError::Malformed(
                    "SignerInfo version is not 1 (only issuer-and-serial signers are supported)"
                        .into(),
                )),
            };
        let serial = issuer_and_serial.serial_number.as_bytes();
        if serial.is_empty() {
            return Err(ParseError::Malformed("empty signer serial".into()));
        }

        check_no_parameters(&info.digest_alg, "SignerInfo digestAlgorithm")?;
        let digest_algorithm = match info.digest_alg.oid {
            OID_SHA256 => DigestAlgorithm::Sha256,
            OID_SHA384 => DigestAlgorithm::Sha384,
            OID_SHA512 => DigestAlgorithm::Sha512,
            other => {
                return Err(ParseError::UnsupportedAlgorithm(format!("digest {other}")));
            }
        };
        if info.signed_attrs.is_some() {
            return Err(ParseError::UnsupportedAlgorithm(
                "signed attributes (libfsverity and rpmsign never write them)".into(),
            ));
        }
        check_no_parameters(&info.signature_algorithm, "SignerInfo signatureAlgorithm")?;
        let signature_algorithm = match info.signature_algorithm.oid {
            OID_RSA_ENCRYPTION => SignatureAlgorithm::RsaPkcs1,
            OID_SHA256_WITH_RSA if digest_algorithm == DigestAlgorithm::Sha256 => {
                SignatureAlgorithm::RsaPkcs1
            }
            OID_SHA512_WITH_RSA if digest_algorithm == DigestAlgorithm::Sha512 => {
                SignatureAlgorithm::RsaPkcs1
            }
            OID_ECDSA_SHA256 if digest_algorithm == DigestAlgorithm::Sha256 => {
                SignatureAlgorithm::Ecdsa
            }
            OID_ECDSA_SHA512 if digest_algorithm == DigestAlgorithm::Sha512 => {
                SignatureAlgorithm::Ecdsa
            }
            other => {
                return Err(ParseError::UnsupportedAlgorithm(format!(
                    "signature {other} with digest {}",
                    digest_algorithm.name()
                )))
            }
        };
        let signature = info.signature.as_bytes();
        if signature.is_empty() {
            return Err(ParseError::Malformed("empty signature value".into()));
        }

        let issuer_der = issuer_and_serial
            .issuer
            .to_der()
            .map_err(malformed("signer issuer"))?;
        let serial_der = issuer_and_serial
            .serial_number
            .to_der()
            .map_err(malformed("signer serial"))?;
        Ok(Self {
            signer: SignerId {
                issuer: crate::cert::name_to_string(&issuer_and_serial.issuer),
                serial: hex::encode(serial),
                issuer_der,
                serial_der,
            },
            digest_algorithm,
            signature_algorithm,
            signature: signature.to_vec(),
        })
    }

    pub fn signer(&self) -> &SignerId {
        &self.signer
    }

    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.signature_algorithm
    }

    /// The raw signature value (encryptedDigest).
    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    /// The message digest this signature would sign if it were made over `digest`: the
    /// SignerInfo's hash of the formatted digest (no signed attributes, so nothing else is
    /// hashed). What a bare public key verifies, e.g. a certificate that exists only in the
    /// kernel keyring (KEYCTL_PKEY_VERIFY).
    pub fn message_digest_for(&self, digest: &fsverity::FileDigest) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self.digest_algorithm {
            DigestAlgorithm::Sha256 => &digest::SHA256,
            DigestAlgorithm::Sha384 => &digest::SHA384,
            DigestAlgorithm::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, &digest.formatted()).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
    use der::{Decode, Encode};
    use x509_cert::spki::AlgorithmIdentifierOwned;

    use super::*;

    const FILE_SIG: &[u8] = include_bytes!("../../../../tests/data/file.sig");

    /// `FILE_SIG` with its SignedData changed by `edit`, encoded again.
    fn edited(edit: impl FnOnce(&mut SignedData)) -> Vec<u8> {
        let mut content_info = ContentInfo::from_der(FILE_SIG).unwrap();
        let mut signed_data: SignedData = content_info.content.decode_as().unwrap();
        edit(&mut signed_data);
        content_info.content = Any::encode_from(&signed_data).unwrap();
        content_info.to_der().unwrap()
    }

    fn message(der: &[u8]) -> String {
        Pkcs7Signature::from_der(der).unwrap_err().to_string()
    }

    fn sha512() -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: OID_SHA512,
            parameters: Some(Any::null()),
        }
    }

    #[test]
    fn edits_round_trip_unchanged() {
        assert_eq!(edited(|_| {}), FILE_SIG);
        assert!(Pkcs7Signature::from_der(FILE_SIG).is_ok());
    }

    #[test]
    fn refuses_what_libfsverity_never_writes() {
        let mut content_info = ContentInfo::from_der(FILE_SIG).unwrap();
        content_info.content_type = OID_DATA;
        assert_eq!(
            message(&content_info.to_der().unwrap()),
            "malformed PKCS#7 signature: content type is not signedData"
        );

        let sig = edited(|sd| sd.version = CmsVersion::V3);
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: SignedData version is not 1"
        );

        let sig = edited(|sd| sd.encap_content_info.econtent_type = OID_SIGNED_DATA);
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: signed content type is not data"
        );

        let sig = edited(|sd| {
            let content = OctetString::new(&b"FSVerity"[..]).unwrap();
            sd.encap_content_info.econtent = Some(Any::encode_from(&content).unwrap());
        });
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: signature is not detached (it embeds content)"
        );

        let sig = edited(|sd| sd.digest_algorithms = SetOfVec::try_from(vec![sha512()]).unwrap());
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: signer's digest algorithm is not in digestAlgorithms"
        );

        let sig = edited(|sd| sd.signer_infos.0 = SetOfVec::new());
        assert_eq!(message(&sig), "malformed PKCS#7 signature: no signer");

        let sig = edited(|sd| {
            let mut second = sd.signer_infos.0.get(0).unwrap().clone();
            second.digest_alg = sha512();
            sd.signer_infos.0.insert(second).unwrap();
        });
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: more than one signer"
        );

        let sig = edited(|sd| {
            let mut info = sd.signer_infos.0.get(0).unwrap().clone();
            info.digest_alg.oid = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
            sd.signer_infos.0 = SetOfVec::try_from(vec![info]).unwrap();
        });
        assert_eq!(
            message(&sig),
            "unsupported PKCS#7 signature: digest 1.3.14.3.2.26"
        );

        let sig = edited(|sd| {
            let mut info = sd.signer_infos.0.get(0).unwrap().clone();
            info.signature_algorithm.oid = OID_SHA512_WITH_RSA;
            sd.signer_infos.0 = SetOfVec::try_from(vec![info]).unwrap();
        });
        assert_eq!(
            message(&sig),
            "unsupported PKCS#7 signature: signature 1.2.840.113549.1.1.13 with digest sha256"
        );

        let sig = edited(|sd| {
            let mut info = sd.signer_infos.0.get(0).unwrap().clone();
            info.digest_alg.parameters = Some(Any::encode_from(&OID_DATA).unwrap());
            sd.signer_infos.0 = SetOfVec::try_from(vec![info]).unwrap();
        });
        assert_eq!(
            message(&sig),
            "malformed PKCS#7 signature: SignerInfo digestAlgorithm: parameters are OBJECT \
             IDENTIFIER instead of NULL"
        );

        // Absent parameters are as good as NULL.
        let sig = edited(|sd| {
            let mut info = sd.signer_infos.0.get(0).unwrap().clone();
            info.signature_algorithm.parameters = None;
            sd.signer_infos.0 = SetOfVec::try_from(vec![info]).unwrap();
        });
        assert!(Pkcs7Signature::from_der(&sig).is_ok());
    }

    /// Two digest algorithms listed in the wrong order: decoding sorts them, so only the check
    /// that re-encoding reproduces the input can tell.
    #[test]
    fn refuses_sets_out_of_der_order() {
        let sig = edited(|sd| sd.digest_algorithms.insert(sha512()).unwrap());
        assert!(Pkcs7Signature::from_der(&sig).is_ok());
        let sha256 = AlgorithmIdentifierOwned {
            oid: OID_SHA256,
            parameters: Some(Any::null()),
        }
        .to_der()
        .unwrap();
        let pair = [sha256.clone(), sha512().to_der().unwrap()].concat();
        let at = sig.windows(pair.len()).position(|w| w == pair).unwrap();
        let mut swapped = sig.clone();
        swapped[at..at + pair.len()]
            .copy_from_slice(&[sha512().to_der().unwrap(), sha256].concat());
        assert_eq!(
            message(&swapped),
            "malformed PKCS#7 signature: SignedData is not DER (a SET OF is out of order)"
        );
    }
}
