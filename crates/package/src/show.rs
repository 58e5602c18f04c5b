//! What a package's fs-verity signatures say, without checking them: per file, whether it is
//! signed and by whom, with which hash and key; per package, the signers and how many files
//! each signed. Needs no certificate and reads only the headers.
//!
//! The signed digest itself is not in the signature: fs-verity's PKCS#7 is detached and has
//! no signed attributes, so the digest exists only inside the RSA signature value, readable
//! with the signer's public key. What is shown instead is the signer and the signature's size.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use rpm_format::Package;
use serde::Serialize;
use verity_signing::{Pkcs7Signature, SignatureAlgorithm};

use crate::error::ShowError;
use crate::signatures::VeritySignatures;

/// The state of one file's entry in tag 276.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// A PKCS#7 signature that parses.
    Signed,
    /// An empty entry, or no tag 276 at all.
    Unsigned,
    /// Not base64, or not a signature this tool (and the kernel) can read.
    Malformed,
}

impl EntryStatus {
    pub fn name(self) -> &'static str {
        match self {
            EntryStatus::Signed => "signed",
            EntryStatus::Unsigned => "unsigned",
            EntryStatus::Malformed => "malformed",
        }
    }
}

/// Who made a signature: the issuer and serial of the signing certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Signer {
    pub issuer: String,
    pub serial: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "issuer \"{}\", serial {}", self.issuer, self.serial)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ShownFile {
    pub path: String,
    pub status: EntryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Signer>,
    /// Digest algorithm the signature names (`sha256`, `sha512`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<&'static str>,
    /// `RSA-2048` (from the signature value's length: an RSA signature is as long as the
    /// modulus) or `ECDSA P-256`/`P-384`/`P-521` (from the size of the integers r and s: they
    /// are below the curve's order, and both fitting in fewer bytes than the curve's has odds
    /// of 2^-128 or less; `ECDSA` when the value is not a valid `ECDSA-Sig-Value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes of the PKCS#7 signature (DER).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A signer and how many files it signed.
#[derive(Clone, Debug, Serialize)]
pub struct SignerCount {
    #[serde(flatten)]
    pub signer: Signer,
    pub files: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShownPackage {
    pub package: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the package has tag 276 at all.
    pub has_signatures: bool,
    /// Tag 277 (SHA-256 when absent), when there are signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    pub files: Vec<ShownFile>,
    pub signed: usize,
    pub unsigned: usize,
    pub malformed: usize,
    /// Distinct signers, sorted, with their file counts.
    pub signers: Vec<SignerCount>,
}

/// Shows one package; an unreadable one comes back with its error.
pub fn show_package(pkg: &Path) -> ShownPackage {
    let mut out = ShownPackage {
        package: pkg.display().to_string(),
        error: None,
        has_signatures: false,
        algorithm: None,
        files: Vec::new(),
        signed: 0,
        unsigned: 0,
        malformed: 0,
        signers: Vec::new(),
    };
    if let Err(e) = read(pkg, &mut out) {
        out.error = Some(crate::error_chain(&e));
    }
    out
}

fn read(pkg: &Path, out: &mut ShownPackage) -> Result<(), ShowError> {
    let f = File::open(pkg).map_err(ShowError::Open)?;
    let p = Package::open_unverified(BufReader::new(f))?;
    let files = p.files()?;
    let sigs = VeritySignatures::read(p.signature.header())?;
    if let Some(s) = &sigs {
        s.check_count(files.len())?;
        out.has_signatures = true;
        out.algorithm = Some(s.algorithm.name());
    }
    for (i, f) in files.files().iter().enumerate() {
        let entry = match &sigs {
            Some(s) => s.get(i).map_err(|e| e.to_string()),
            None => Ok(None),
        };
        out.files.push(show_file(f.path_lossy(), entry));
    }
    tally(out);
    Ok(())
}

fn show_file(path: String, entry: Result<Option<Vec<u8>>, String>) -> ShownFile {
    let mut f = ShownFile {
        path,
        status: EntryStatus::Unsigned,
        signer: None,
        hash: None,
        key: None,
        signature_bytes: None,
        error: None,
    };
    let der = match entry {
        Ok(Some(der)) => der,
        Ok(None) => return f,
        Err(e) => {
            f.status = EntryStatus::Malformed;
            f.error = Some(e);
            return f;
        }
    };
    f.signature_bytes = Some(der.len());
    match Pkcs7Signature::from_der(&der) {
        Ok(p) => {
            f.status = EntryStatus::Signed;
            f.signer = Some(Signer {
                issuer: p.signer().issuer.clone(),
                serial: p.signer().serial.clone(),
            });
            f.hash = Some(p.digest_algorithm().name());
            f.key = Some(match p.signature_algorithm() {
                SignatureAlgorithm::RsaPkcs1 => format!("RSA-{}", p.signature_value().len() * 8),
                SignatureAlgorithm::Ecdsa => match ecdsa_curve(p.signature_value()) {
                    Some(curve) => format!("ECDSA {curve}"),
                    None => "ECDSA".to_string(),
                },
            });
        }
        Err(e) => {
            f.status = EntryStatus::Malformed;
            f.error = Some(e.to_string());
        }
    }
    f
}

/// The curve of an ECDSA signature, from its DER `ECDSA-Sig-Value` (SEQUENCE of INTEGER r, s):
/// the longer of r and s without its sign byte is the curve's size, give or take a leading
/// zero byte or two (one in 2^128 signatures or fewer is shorter by a whole curve step).
fn ecdsa_curve(value: &[u8]) -> Option<&'static str> {
    fn tlv(d: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = d.split_first()?;
        let (&l, rest) = rest.split_first()?;
        let (len, rest) = match l {
            0..=0x7f => (usize::from(l), rest),
            0x81 => (usize::from(*rest.first()?), &rest[1..]),
            _ => return None,
        };
        (t == tag && rest.len() >= len).then(|| rest.split_at(len))
    }
    let (seq, tail) = tlv(value, 0x30)?;
    let (r, rest) = tlv(seq, 0x02)?;
    let (s, rest) = tlv(rest, 0x02)?;
    if !rest.is_empty() || !tail.is_empty() {
        return None;
    }
    let unsigned = |i: &[u8]| i.iter().skip_while(|&&b| b == 0).count();
    match unsigned(r).max(unsigned(s)) {
        1..=32 => Some("P-256"),
        33..=48 => Some("P-384"),
        49..=66 => Some("P-521"),
        _ => None,
    }
}

fn tally(out: &mut ShownPackage) {
    let mut signers: std::collections::BTreeMap<Signer, usize> = Default::default();
    for f in &out.files {
        match f.status {
            EntryStatus::Signed => out.signed += 1,
            EntryStatus::Unsigned => out.unsigned += 1,
            EntryStatus::Malformed => out.malformed += 1,
        }
        if let Some(s) = &f.signer {
            *signers.entry(s.clone()).or_default() += 1;
        }
    }
    out.signers = signers
        .into_iter()
        .map(|(signer, files)| SignerCount { signer, files })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig_value(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut body = vec![0x02, r.len() as u8];
        body.extend_from_slice(r);
        body.extend([0x02, s.len() as u8]);
        body.extend_from_slice(s);
        let mut v = vec![0x30];
        if body.len() > 0x7f {
            v.push(0x81);
        }
        v.push(body.len() as u8);
        v.extend(body);
        v
    }

    #[test]
    fn ecdsa_curve_from_integer_sizes() {
        // r with a sign byte, s a byte short: still the curve of the longer.
        let v = |n: usize| sig_value(&[&[0u8][..], &vec![0x80; n]].concat(), &vec![0x7f; n - 1]);
        assert_eq!(ecdsa_curve(&v(32)), Some("P-256"));
        assert_eq!(ecdsa_curve(&v(48)), Some("P-384"));
        assert_eq!(ecdsa_curve(&v(66)), Some("P-521"));
        assert_eq!(ecdsa_curve(&v(80)), None);
        // Trailing bytes, a third integer, or not a SEQUENCE: not an ECDSA-Sig-Value.
        let mut trailing = v(32);
        trailing.push(0);
        assert_eq!(ecdsa_curve(&trailing), None);
        assert_eq!(ecdsa_curve(&[0x31, 0x00]), None);
        assert_eq!(ecdsa_curve(&[0x30, 0x06, 2, 1, 1, 2, 1, 1]), Some("P-256"));
        assert_eq!(ecdsa_curve(&[0x30, 0x09, 2, 1, 1, 2, 1, 1, 2, 1, 1]), None);
    }

    #[test]
    fn entries_without_a_signature() {
        let f = show_file("/a".into(), Ok(None));
        assert_eq!(f.status, EntryStatus::Unsigned);
        let f = show_file("/a".into(), Err("bad base64".into()));
        assert_eq!(f.status, EntryStatus::Malformed);
        let f = show_file("/a".into(), Ok(Some(vec![0x30, 0x00])));
        assert_eq!(f.status, EntryStatus::Malformed);
        assert_eq!(f.signature_bytes, Some(2));
        let mut p = ShownPackage {
            package: "p".into(),
            error: None,
            has_signatures: true,
            algorithm: None,
            files: vec![f, show_file("/b".into(), Ok(None))],
            signed: 0,
            unsigned: 0,
            malformed: 0,
            signers: Vec::new(),
        };
        tally(&mut p);
        assert_eq!((p.signed, p.unsigned, p.malformed), (0, 1, 1));
        assert!(p.signers.is_empty());
    }
}
