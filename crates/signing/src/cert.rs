//! X.509 certificates: only what signing and verification need (issuer, serial, public key).
//!
//! The kernel finds the signing certificate by issuer + serial, so those are kept exactly as DER.

use der::{Decode, Encode, Reader};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use crate::pem;

/// Certificates larger than this are refused: real ones are a few KiB.
const MAX_CERT_LEN: usize = 64 * 1024;

/// The public-key algorithm of a certificate, as far as fs-verity signatures care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    /// EC key on the named curve (P-256, P-384 or P-521).
    Ec(EcCurve),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no certificate found (expected PEM \"CERTIFICATE\" or DER X.509)")]
    NoCertificate,
    #[error("invalid PEM: {0}")]
    Pem(#[from] pem::PemError),
    #[error("invalid X.509 certificate: {0}")]
    Der(String),
    #[error("certificate is larger than {MAX_CERT_LEN} bytes")]
    TooLarge,
    #[error("unsupported certificate public key algorithm {0}")]
    UnsupportedKey(String),
}

/// A parsed X.509 certificate with its original DER.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    issuer_der: Vec<u8>,
    serial_der: Vec<u8>,
    issuer: String,
    subject: String,
    serial: Vec<u8>,
    /// Kept decoded for what is read from it later: the PKCS#7 signer (issuer and serial), the
    /// kernel's key description and the subject's common name.
    x509: x509_cert::Certificate,
    key_algorithm: KeyAlgorithm,
    /// Contents of subjectPublicKey: `RSAPublicKey` DER for RSA, the EC point for EC.
    public_key: Vec<u8>,
    /// The whole SubjectPublicKeyInfo DER.
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("serial", &self.serial_hex())
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for Certificate {}

const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.35");

impl Certificate {
    /// Parses one DER certificate; trailing bytes are an error.
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, CertError> {
        if der_bytes.len() > MAX_CERT_LEN {
            return Err(CertError::TooLarge);
        }
        let cert = x509_cert::Certificate::from_der(der_bytes)
            .map_err(|e| CertError::Der(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let enc = |r: der::Result<Vec<u8>>| r.map_err(|e| CertError::Der(e.to_string()));
        let (issuer_der, serial_der) = der_issuer_and_serial(der_bytes, tbs)?;
        let spki = &tbs.subject_public_key_info;
        let spki_der = enc(spki.to_der())?;
        let key_algorithm = if spki.algorithm.oid == OID_RSA {
            KeyAlgorithm::Rsa
        } else if spki.algorithm.oid == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == OID_P256 => KeyAlgorithm::Ec(EcCurve::P256),
                Some(c) if c == OID_P384 => KeyAlgorithm::Ec(EcCurve::P384),
                Some(c) if c == OID_P521 => KeyAlgorithm::Ec(EcCurve::P521),
                other => {
                    return Err(CertError::UnsupportedKey(format!(
                        "EC curve {}",
                        other.map_or_else(|| "(missing)".to_string(), |c| c.to_string())
                    )))
                }
            }
        } else {
            return Err(CertError::UnsupportedKey(spki.algorithm.oid.to_string()));
        };
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| CertError::Der("public key BIT STRING has unused bits".into()))?
            .to_vec();
        Ok(Self {
            der: der_bytes.to_vec(),
            issuer_der,
            serial_der,
            issuer: name_to_string(&tbs.issuer),
            subject: name_to_string(&tbs.subject),
            serial: tbs.serial_number.as_bytes().to_vec(),
            key_algorithm,
            public_key,
            spki_der,
            x509: cert,
        })
    }

    /// The first certificate in `data`, PEM (other blocks such as a private key are skipped) or DER.
    pub fn parse(data: &[u8]) -> Result<Self, CertError> {
        if pem::is_pem(data) {
            let blocks = pem::parse_blocks(data)?;
            let block = blocks
                .iter()
                .find(|b| is_cert_label(&b.label))
                .ok_or(CertError::NoCertificate)?;
            Self::from_der(&block.der)
        } else {
            Self::from_der(data)
        }
    }

    /// Every certificate in `data`: a PEM bundle, or a single DER certificate. At least one.
    pub fn parse_all(data: &[u8]) -> Result<Vec<Self>, CertError> {
        if pem::is_pem(data) {
            let certs = pem::parse_blocks(data)?
                .iter()
                .filter(|b| is_cert_label(&b.label))
                .map(|b| Self::from_der(&b.der))
                .collect::<Result<Vec<_>, _>>()?;
            if certs.is_empty() {
                return Err(CertError::NoCertificate);
            }
            Ok(certs)
        } else {
            Ok(vec![Self::from_der(data)?])
        }
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// DER of the issuer Name, as the PKCS#7 IssuerAndSerialNumber carries it.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    /// DER of the serial INTEGER (tag and length included).
    pub fn serial_der(&self) -> &[u8] {
        &self.serial_der
    }

    /// Issuer in OpenSSL's one-line style, e.g. `C=AU, ST=Some-State, O=Internet Widgits Pty Ltd`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Big-endian serial number bytes (two's complement, minimal).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// notBefore and notAfter: when the certificate may be used to sign (the kernel does not
    /// check them, so the signer must).
    pub fn validity(&self) -> (std::time::SystemTime, std::time::SystemTime) {
        let v = &self.x509.tbs_certificate.validity;
        (v.not_before.to_system_time(), v.not_after.to_system_time())
    }

    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.key_algorithm
    }

    /// `RSAPublicKey` DER (RSA) or the uncompressed EC point (EC).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The longest signature value this certificate's key can make: the modulus length for RSA
    /// (every PKCS#1 v1.5 signature has it), the longest DER `ECDSA-Sig-Value` for EC (two
    /// INTEGERs of the curve's size plus a sign byte each; real ones are often a byte or two
    /// shorter). What a layout made before signing must reserve. `None` when an RSA key cannot
    /// be read.
    pub fn max_signature_value_len(&self) -> Option<usize> {
        match self.key_algorithm {
            KeyAlgorithm::Rsa => rsa_modulus_len(&self.public_key),
            // SEQUENCE (2 bytes of header) of two INTEGERs of 2 + 33 bytes.
            KeyAlgorithm::Ec(EcCurve::P256) => Some(72),
            // SEQUENCE (2 bytes) of two INTEGERs of 2 + 49 bytes.
            KeyAlgorithm::Ec(EcCurve::P384) => Some(104),
            // SEQUENCE with a long-form length (3 bytes) of two INTEGERs of 2 + 67 bytes.
            KeyAlgorithm::Ec(EcCurve::P521) => Some(141),
        }
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// What the kernel names this certificate's key when it is added to a keyring without a
    /// description; see [`kernel_key_description`].
    pub fn kernel_key_description(&self) -> String {
        key_description(&self.x509.tbs_certificate)
    }

    /// The subject's common name; see [`subject_common_name`].
    pub fn subject_common_name(&self) -> Option<String> {
        common_name(&self.x509.tbs_certificate.subject)
    }

    /// Decoded issuer, whose encoding is [`Certificate::issuer_der`] (checked at parse time).
    pub(crate) fn issuer_name(&self) -> &Name {
        &self.x509.tbs_certificate.issuer
    }

    /// Decoded serial, whose encoding is [`Certificate::serial_der`] (checked at parse time).
    pub(crate) fn serial_number(&self) -> &SerialNumber {
        &self.x509.tbs_certificate.serial_number
    }
}

/// The issuer Name and serial INTEGER as encoded in the certificate, once they are known to be
/// what re-encoding the decoded values gives. OpenSSL copies these bytes into the PKCS#7 and the
/// kernel compares them as bytes, while a PKCS#7 is built from decoded values: a certificate
/// whose issuer only DER-decodes after sorting (a multi-valued RDN out of order) would be named
/// by bytes the kernel does not recognise, so it is refused here rather than at signing time.
fn der_issuer_and_serial(
    cert: &[u8],
    tbs: &x509_cert::TbsCertificate,
) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let der_err = |e: der::Error| CertError::Der(e.to_string());
    let mut reader = der::SliceReader::new(cert).map_err(der_err)?;
    let (issuer, serial) = reader
        .sequence(|certificate| {
            let found = certificate.sequence(|tbs| {
                if tbs.peek_tag()? != der::Tag::Integer {
                    tbs.tlv_bytes()?; // [0] version
                }
                let serial = tbs.tlv_bytes()?;
                tbs.tlv_bytes()?; // signature AlgorithmIdentifier
                let issuer = tbs.tlv_bytes()?;
                // The rest of the TBSCertificate was checked by the full decode.
                let rest = tbs.remaining_len();
                tbs.read_slice(rest)?;
                Ok((issuer, serial))
            })?;
            let rest = certificate.remaining_len();
            certificate.read_slice(rest)?;
            Ok(found)
        })
        .map_err(der_err)?;
    if tbs.issuer.to_der().map_err(der_err)? != issuer {
        return Err(CertError::Der(
            "issuer name is not DER (attributes of a multi-valued RDN out of order), so no \
             PKCS#7 built here could name this certificate the way the kernel matches it"
                .into(),
        ));
    }
    if tbs.serial_number.to_der().map_err(der_err)? != serial {
        return Err(CertError::Der("serial number is not DER".into()));
    }
    Ok((issuer.to_vec(), serial.to_vec()))
}

/// The description the kernel's X.509 parser gives a certificate added with an empty one
/// (crypto/asymmetric_keys: x509_fabricate_name + x509_key_preparse): `<name>: <key id hex>`,
/// where name is "O: CN", or just CN when CN starts with O (or they share 7 leading bytes), or
/// whichever of CN, O, email exists; key id is the subjectKeyIdentifier, else the serial.
/// The asymmetric key type has no read operation, so this is the only way to tell whether a
/// certificate is already in a keyring. `None` if `cert_der` is not an X.509 certificate; any
/// key type will do, unlike [`Certificate::from_der`].
pub fn kernel_key_description(cert_der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    Some(key_description(&cert.tbs_certificate))
}

fn key_description(tbs: &x509_cert::TbsCertificate) -> String {
    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const EMAIL: &str = "1.2.840.113549.1.9.1";
    const SKID: &str = "2.5.29.14";
    let (mut cn, mut o, mut email) = (None::<&[u8]>, None::<&[u8]>, None::<&[u8]>);
    // The kernel keeps the last occurrence of each attribute.
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            let v = atv.value.value();
            match atv.oid.to_string().as_str() {
                CN => cn = Some(v),
                O => o = Some(v),
                EMAIL => email = Some(v),
                _ => {}
            }
        }
    }
    let name: Vec<u8> = match (cn, o) {
        (Some(cn), Some(o)) => {
            if (cn.len() >= o.len() && cn.starts_with(o))
                || (cn.len() >= 7 && o.len() >= 7 && cn[..7] == o[..7])
            {
                cn.to_vec()
            } else {
                [o, b": ", cn].concat()
            }
        }
        (Some(cn), None) => cn.to_vec(),
        (None, Some(o)) => o.to_vec(),
        (None, None) => email.unwrap_or_default().to_vec(),
    };
    // The kernel uses strlen() on the name.
    let name = match name.iter().position(|&b| b == 0) {
        Some(n) => &name[..n],
        None => &name[..],
    };
    let skid = tbs.extensions.as_ref().and_then(|exts| {
        exts.iter()
            .find(|e| e.extn_id.to_string() == SKID)
            .and_then(|e| {
                let v = e.extn_value.as_bytes();
                // An OCTET STRING with a short length, as the kernel insists.
                (v.len() >= 3 && v[0] == 0x04 && usize::from(v[1]) == v.len() - 2)
                    .then(|| v[2..].to_vec())
            })
    });
    let id = skid.unwrap_or_else(|| tbs.serial_number.as_bytes().to_vec());
    format!("{}: {}", String::from_utf8_lossy(name), hex::encode(id))
}

/// Subject common name of a DER certificate (the last CN if there are several, as the most
/// specific one), or `None` if it has none or is not an X.509 certificate. Takes DER rather than
/// a [`Certificate`] because TLS peers may use key types that cannot sign fs-verity digests.
pub fn subject_common_name(cert_der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    common_name(&cert.tbs_certificate.subject)
}

fn common_name(subject: &Name) -> Option<String> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    const CN: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    let mut found = None;
    for rdn in subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != CN {
                continue;
            }
            let v = &atv.value;
            let s = Utf8StringRef::try_from(v)
                .map(|s| s.as_str().to_string())
                .or_else(|_| PrintableStringRef::try_from(v).map(|s| s.as_str().to_string()))
                .or_else(|_| Ia5StringRef::try_from(v).map(|s| s.as_str().to_string()));
            if let Ok(s) = s {
                found = Some(s);
            }
        }
    }
    found
}

fn is_cert_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

/// RDNs in certificate order, joined the way `openssl x509 -issuer` prints them.
pub(crate) fn name_to_string(name: &x509_cert::name::Name) -> String {
    let parts: Vec<String> = name.0.iter().map(|rdn| rdn.to_string()).collect();
    parts.join(", ")
}

/// Length in bytes of the modulus in an `RSAPublicKey` DER (`SEQUENCE { INTEGER n, INTEGER e }`),
/// without the sign byte DER puts in front of a modulus whose top bit is set.
pub(crate) fn rsa_modulus_len(der_bytes: &[u8]) -> Option<usize> {
    fn tlv(d: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = d.split_first()?;
        let (&l, rest) = rest.split_first()?;
        if t != tag {
            return None;
        }
        let (len, rest) = if l < 0x80 {
            (usize::from(l), rest)
        } else {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (seq, _) = tlv(der_bytes, 0x30)?;
    let (n, _) = tlv(seq, 0x02)?;
    let n = match n.split_first() {
        Some((0, rest)) => rest,
        _ => n,
    };
    (!n.is_empty()).then_some(n.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_PEM: &[u8] = include_bytes!("../../../tests/data/cert.pem");

    #[test]
    fn parses_fsverity_test_cert() {
        let c = Certificate::parse(CERT_PEM).unwrap();
        assert_eq!(
            c.issuer(),
            "C=AU, ST=Some-State, O=Internet Widgits Pty Ltd"
        );
        assert_eq!(c.key_algorithm(), KeyAlgorithm::Rsa);
        assert!(c.serial_hex().starts_with("61a4"), "{}", c.serial_hex());
        assert!(c.serial_hex().ends_with("dfea"), "{}", c.serial_hex());
        // DER round trip: PEM body == DER, and DER parses alone.
        let again = Certificate::parse(c.der()).unwrap();
        assert_eq!(again, c);
        assert_eq!(c.issuer_der()[0], 0x30);
        assert_eq!(c.serial_der()[0], 0x02);
    }

    /// A self-signed RSA certificate from `openssl req` for `subj`, with `extra` arguments, as DER.
    fn openssl_cert(subj: &str, extra: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.der");
        let st = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-keyout", "/dev/null", "-outform", "der", "-subj", subj])
            .args(extra)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::fs::read(cert).unwrap()
    }

    fn skid_hex(der_bytes: &[u8]) -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "x509",
                "-inform",
                "der",
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(der_bytes)?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .nth(1)
            .unwrap()
            .trim()
            .replace(':', "")
            .to_lowercase()
    }

    #[test]
    fn description_combines_o_and_cn() {
        let der = openssl_cert("/CN=rpm-verity test/O=Throwaway", &[]);
        let d = kernel_key_description(&der).unwrap();
        assert_eq!(d, format!("Throwaway: rpm-verity test: {}", skid_hex(&der)));
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.kernel_key_description(), d);
    }

    #[test]
    fn description_uses_cn_alone_when_it_starts_with_o() {
        let der = openssl_cert("/O=Example/CN=Example signing key", &[]);
        let d = kernel_key_description(&der).unwrap();
        assert_eq!(d, format!("Example signing key: {}", skid_hex(&der)));
    }

    #[test]
    fn description_falls_back_to_serial_without_skid() {
        let der = openssl_cert(
            "/CN=noskid",
            &[
                "-addext",
                "subjectKeyIdentifier=none",
                "-set_serial",
                "0x1234ab",
            ],
        );
        assert_eq!(kernel_key_description(&der).unwrap(), "noskid: 1234ab");
        assert_eq!(kernel_key_description(b"not a certificate"), None);
    }

    #[test]
    fn subject_common_name_is_the_last_cn() {
        let der = openssl_cert("/CN=first/O=Org/CN=second", &[]);
        assert_eq!(subject_common_name(&der).as_deref(), Some("second"));
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject_common_name().as_deref(), Some("second"));
        // The fsverity-utils test certificate has no CN.
        let no_cn = Certificate::parse(CERT_PEM).unwrap();
        assert_eq!(no_cn.subject_common_name(), None);
        assert_eq!(subject_common_name(b"junk"), None);
    }

    /// The issuer with the two attributes of its multi-valued RDN swapped: x509-cert decodes it
    /// (sorting them), but a PKCS#7 built from the decoded name would not carry these bytes.
    #[test]
    fn rejects_issuer_that_is_not_der() {
        let der = openssl_cert("/O=x+CN=y", &[]);
        assert!(Certificate::from_der(&der).is_ok());
        let cn: &[u8] = &[0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'y'];
        let o: &[u8] = &[0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'x'];
        let sorted = [cn, o].concat();
        let at = der
            .windows(sorted.len())
            .position(|w| w == sorted)
            .expect("issuer RDN in DER order");
        let mut swapped = der.clone();
        swapped[at..at + sorted.len()].copy_from_slice(&[o, cn].concat());
        assert!(x509_cert::Certificate::from_der(&swapped).is_ok());
        let e = Certificate::from_der(&swapped).unwrap_err();
        assert!(e.to_string().contains("issuer name is not DER"), "{e}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Certificate::parse(b"hello"),
            Err(CertError::Der(_))
        ));
        assert!(matches!(
            Certificate::parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertError::NoCertificate)
        ));
        let c = Certificate::parse(CERT_PEM).unwrap();
        let mut trailing = c.der().to_vec();
        trailing.push(0);
        assert!(Certificate::from_der(&trailing).is_err());
        assert!(Certificate::from_der(&c.der()[..c.der().len() - 1]).is_err());
    }
}
