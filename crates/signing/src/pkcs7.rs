//! The PKCS#7 SignedData of fs-verity built-in signatures, written exactly as libfsverity's
//! `PKCS7_sign(..., PKCS7_BINARY|PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_NOCERTS)` + `i2d_PKCS7` does,
//! and read back strictly.

use fsverity::HashAlgorithm;

use crate::asn1::{self, Asn1Error, Reader, Tlv};
use crate::cert::Certificate;
use crate::verify::VerifyError;

/// Largest signature the kernel's ASN.1 decoder accepts; larger input is refused unparsed.
pub const MAX_SIGNATURE_LEN: usize = 65535;

pub(crate) const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
pub(crate) const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
pub(crate) const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
pub(crate) const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
pub(crate) const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const OID_SHA256_WITH_RSA: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
pub(crate) const OID_SHA512_WITH_RSA: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
pub(crate) const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
pub(crate) const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];

fn hash_oid(hash: HashAlgorithm) -> &'static [u8] {
    match hash {
        HashAlgorithm::Sha256 => OID_SHA256,
        HashAlgorithm::Sha512 => OID_SHA512,
    }
}

fn hash_oid_of(d: DigestAlgorithm) -> &'static [u8] {
    match d {
        DigestAlgorithm::Sha256 => OID_SHA256,
        DigestAlgorithm::Sha384 => OID_SHA384,
        DigestAlgorithm::Sha512 => OID_SHA512,
    }
}

/// `AlgorithmIdentifier { oid, NULL }`, the form OpenSSL writes for digests and rsaEncryption.
fn alg_id_null(oid: &[u8]) -> Vec<u8> {
    let oid = asn1::tlv(asn1::TAG_OID, &[oid]);
    let null = asn1::tlv(asn1::TAG_NULL, &[]);
    asn1::tlv(asn1::TAG_SEQUENCE, &[&oid, &null])
}

/// Builds the DER PKCS#7 for an RSA `signature` of a formatted digest hashed with `hash`, naming
/// `cert`'s issuer and serial as the signer.
pub fn build_rsa_signed_data(hash: HashAlgorithm, cert: &Certificate, signature: &[u8]) -> Vec<u8> {
    use asn1::*;
    let digest_alg = alg_id_null(hash_oid(hash));
    let sig_alg = alg_id_null(OID_RSA_ENCRYPTION);
    let version = tlv(TAG_INTEGER, &[&[1]]);
    let issuer_and_serial = tlv(TAG_SEQUENCE, &[cert.issuer_der(), cert.serial_der()]);
    let sig = tlv(TAG_OCTET_STRING, &[signature]);
    let signer_info = tlv(
        TAG_SEQUENCE,
        &[&version, &issuer_and_serial, &digest_alg, &sig_alg, &sig],
    );
    let digest_algs = tlv(TAG_SET, &[&digest_alg]);
    let content_info = tlv(TAG_SEQUENCE, &[&tlv(TAG_OID, &[OID_DATA])]);
    let signer_infos = tlv(TAG_SET, &[&signer_info]);
    let signed_data = tlv(
        TAG_SEQUENCE,
        &[&version, &digest_algs, &content_info, &signer_infos],
    );
    let explicit = tlv(TAG_CTX0, &[&signed_data]);
    tlv(
        TAG_SEQUENCE,
        &[&tlv(TAG_OID, &[OID_SIGNED_DATA]), &explicit],
    )
}

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

    pub fn fsverity(self) -> Option<HashAlgorithm> {
        match self {
            DigestAlgorithm::Sha256 => Some(HashAlgorithm::Sha256),
            DigestAlgorithm::Sha512 => Some(HashAlgorithm::Sha512),
            DigestAlgorithm::Sha384 => None,
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

/// A parsed fs-verity built-in signature.
#[derive(Clone, Debug)]
pub struct Pkcs7Signature {
    signer: SignerId,
    digest_algorithm: DigestAlgorithm,
    signature_algorithm: SignatureAlgorithm,
    signature: Vec<u8>,
}

fn malformed(what: &str) -> impl Fn(Asn1Error) -> VerifyError + '_ {
    move |e| VerifyError::Malformed(format!("{what}: {e}"))
}

/// An AlgorithmIdentifier whose parameters are absent or NULL, which is all that digest, RSA and
/// ECDSA identifiers may carry.
fn read_alg_id<'a>(r: &mut Reader<'a>, what: &str) -> Result<Tlv<'a>, VerifyError> {
    let seq = r.expect(asn1::TAG_SEQUENCE).map_err(malformed(what))?;
    let mut a = Reader::new(seq.content);
    let oid = a.expect(asn1::TAG_OID).map_err(malformed(what))?;
    if let Some(params) = a.optional(asn1::TAG_NULL).map_err(malformed(what))? {
        if !params.content.is_empty() {
            return Err(VerifyError::Malformed(format!(
                "{what}: NULL parameters with contents"
            )));
        }
    }
    a.finish("AlgorithmIdentifier").map_err(malformed(what))?;
    Ok(oid)
}

impl Pkcs7Signature {
    /// Parses DER PKCS#7 SignedData with exactly one signer and detached content. Trailing bytes,
    /// indefinite lengths, embedded content and signed attributes are errors.
    pub fn parse(der: &[u8]) -> Result<Self, VerifyError> {
        if der.is_empty() {
            return Err(VerifyError::Malformed("empty signature".into()));
        }
        if der.len() > MAX_SIGNATURE_LEN {
            return Err(VerifyError::Malformed(format!(
                "signature is {} bytes, more than the {MAX_SIGNATURE_LEN} the kernel accepts",
                der.len()
            )));
        }
        let ci = asn1::single(der, asn1::TAG_SEQUENCE, "ContentInfo")
            .map_err(malformed("ContentInfo"))?;
        let mut r = Reader::new(ci.content);
        let ct = r.expect(asn1::TAG_OID).map_err(malformed("ContentInfo"))?;
        if ct.content != OID_SIGNED_DATA {
            return Err(VerifyError::Malformed(
                "content type is not signedData".into(),
            ));
        }
        let explicit = r.expect(asn1::TAG_CTX0).map_err(malformed("ContentInfo"))?;
        r.finish("ContentInfo").map_err(malformed("ContentInfo"))?;
        let sd = asn1::single(explicit.content, asn1::TAG_SEQUENCE, "SignedData")
            .map_err(malformed("SignedData"))?;

        let mut r = Reader::new(sd.content);
        let version = r
            .expect(asn1::TAG_INTEGER)
            .map_err(malformed("SignedData version"))?;
        if version.content != [1] {
            return Err(VerifyError::Malformed("SignedData version is not 1".into()));
        }
        let digest_algs = r
            .expect(asn1::TAG_SET)
            .map_err(malformed("SignedData digestAlgorithms"))?;
        let mut d = Reader::new(digest_algs.content);
        let mut listed_digests = Vec::new();
        while !d.is_empty() {
            listed_digests.push(read_alg_id(&mut d, "SignedData digestAlgorithms")?.content);
        }
        let eci = r
            .expect(asn1::TAG_SEQUENCE)
            .map_err(malformed("SignedData contentInfo"))?;
        let mut e = Reader::new(eci.content);
        let ect = e
            .expect(asn1::TAG_OID)
            .map_err(malformed("SignedData contentInfo"))?;
        if ect.content != OID_DATA {
            return Err(VerifyError::Malformed(
                "signed content type is not data".into(),
            ));
        }
        if !e.is_empty() {
            return Err(VerifyError::Malformed(
                "signature is not detached (it embeds content)".into(),
            ));
        }
        // Embedded certificates and CRLs are allowed and ignored: trust comes from the caller's certs.
        r.optional(asn1::TAG_CTX0)
            .map_err(malformed("SignedData certificates"))?;
        r.optional(asn1::TAG_CTX1)
            .map_err(malformed("SignedData crls"))?;
        let infos = r
            .expect(asn1::TAG_SET)
            .map_err(malformed("SignedData signerInfos"))?;
        r.finish("SignedData").map_err(malformed("SignedData"))?;

        let mut s = Reader::new(infos.content);
        let info = s
            .expect(asn1::TAG_SEQUENCE)
            .map_err(malformed("SignerInfo"))?;
        if !s.is_empty() {
            return Err(VerifyError::Malformed("more than one signer".into()));
        }
        let parsed = Self::parse_signer_info(info.content)?;
        if !listed_digests.contains(&hash_oid_of(parsed.digest_algorithm)) {
            return Err(VerifyError::Malformed(
                "signer's digest algorithm is not in digestAlgorithms".into(),
            ));
        }
        Ok(parsed)
    }

    fn parse_signer_info(content: &[u8]) -> Result<Self, VerifyError> {
        let mut r = Reader::new(content);
        let version = r
            .expect(asn1::TAG_INTEGER)
            .map_err(malformed("SignerInfo version"))?;
        if version.content != [1] {
            return Err(VerifyError::Malformed(
                "SignerInfo version is not 1 (only issuer-and-serial signers are supported)".into(),
            ));
        }
        let ias = r
            .expect(asn1::TAG_SEQUENCE)
            .map_err(malformed("SignerInfo issuerAndSerialNumber"))?;
        let mut i = Reader::new(ias.content);
        let issuer = i
            .expect(asn1::TAG_SEQUENCE)
            .map_err(malformed("signer issuer"))?;
        let serial = i
            .expect(asn1::TAG_INTEGER)
            .map_err(malformed("signer serial"))?;
        i.finish("issuerAndSerialNumber")
            .map_err(malformed("SignerInfo issuerAndSerialNumber"))?;
        if serial.content.is_empty() {
            return Err(VerifyError::Malformed("empty signer serial".into()));
        }

        let dig_oid = read_alg_id(&mut r, "SignerInfo digestAlgorithm")?;
        let digest_algorithm = match dig_oid.content {
            OID_SHA256 => DigestAlgorithm::Sha256,
            OID_SHA384 => DigestAlgorithm::Sha384,
            OID_SHA512 => DigestAlgorithm::Sha512,
            other => {
                return Err(VerifyError::UnsupportedAlgorithm(format!(
                    "digest {}",
                    oid_string(other)
                )))
            }
        };
        if r.peek_tag() == Some(asn1::TAG_CTX0) {
            return Err(VerifyError::UnsupportedAlgorithm(
                "signed attributes (libfsverity and rpmsign never write them)".into(),
            ));
        }
        let sig_oid = read_alg_id(&mut r, "SignerInfo signatureAlgorithm")?;
        let signature_algorithm = match sig_oid.content {
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
                return Err(VerifyError::UnsupportedAlgorithm(format!(
                    "signature {} with digest {}",
                    oid_string(other),
                    digest_algorithm.name()
                )))
            }
        };
        let sig = r
            .expect(asn1::TAG_OCTET_STRING)
            .map_err(malformed("SignerInfo signature"))?;
        if sig.content.is_empty() {
            return Err(VerifyError::Malformed("empty signature value".into()));
        }
        r.optional(asn1::TAG_CTX1)
            .map_err(malformed("SignerInfo unsignedAttrs"))?;
        r.finish("SignerInfo").map_err(malformed("SignerInfo"))?;

        let issuer_text = {
            use der::Decode;
            match x509_cert::name::Name::from_der(issuer.raw) {
                Ok(name) => crate::cert::name_to_string(&name),
                Err(_) => format!("(undecodable name {})", hex::encode(issuer.raw)),
            }
        };
        Ok(Self {
            signer: SignerId {
                issuer: issuer_text,
                serial: hex::encode(serial.content),
                issuer_der: issuer.raw.to_vec(),
                serial_der: serial.raw.to_vec(),
            },
            digest_algorithm,
            signature_algorithm,
            signature: sig.content.to_vec(),
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
}

/// Dotted form of a DER OID body, for error messages.
fn oid_string(body: &[u8]) -> String {
    let encoded = asn1::tlv(asn1::TAG_OID, &[body]);
    use der::Decode;
    der::asn1::ObjectIdentifier::from_der(&encoded)
        .map(|o| o.to_string())
        .unwrap_or_else(|_| format!("(invalid OID {})", hex::encode(body)))
}
