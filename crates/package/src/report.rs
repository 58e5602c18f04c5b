//! What fs-verity signing costs, from the headers alone: for each package, the growth of the
//! package file when its signatures are added (exact, laid out as `sign` would, without
//! signing or writing anything), and the Merkle tree bytes fs-verity stores at install time.
//! The answer to "signatures make packages too big" with numbers.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use fsverity::{HashAlgorithm, Params};
use rayon::prelude::*;
use rpm_format::{Package, RewriteMode};
use serde::Serialize;
use verity_signing::cert::EcCurve;
use verity_signing::{Certificate, KeyAlgorithm, SignatureAlgorithm};

use crate::error::ReportError;
use crate::sign::WriteMode;

/// The certificate the `--key-type` estimates name as signer: a throwaway self-signed P-256
/// certificate, issuer `CN=rpm-verity package signing key` (one UTF8String common name of 30
/// characters) and a 20-byte serial (what `openssl req -x509` gives by default). Only its issuer
/// and serial go into a signature, so the estimate is exact for any certificate whose issuer
/// and serial encode to the same lengths, and off by the difference otherwise (a few bytes per
/// file); `--cert` gives the exact figure.
const REPRESENTATIVE_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBpjCCAU2gAwIBAgIUWhfA/+5aF8D/7loXwP/uWhfA/+4wCgYIKoZIzj0EAwIw
KTEnMCUGA1UEAwwecnBtLXZlcml0eSBwYWNrYWdlIHNpZ25pbmcga2V5MB4XDTI2
MTEzMDEyNDUzOVoXDTM2MTEyNzEyNDUzOVowKTEnMCUGA1UEAwwecnBtLXZlcml0
eSBwYWNrYWdlIHNpZ25pbmcga2V5MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
PGPM3CLjy/WVfEKm5nt0LUPx0NzOvacikkGciiE1A6TDQNB7//bgZlKTMrdbEdXv
mG/MjxmecVt18oGGMsGzVqNTMFEwHQYDVR0OBBYEFI7dAP9S0y7n2TYxh18HPOwc
8Dv9MB8GA1UdIwQYMBaAFI7dAP9S0y7n2TYxh18HPOwc8Dv9MA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgIwC4t6xYoldw0BoeZUGJiOF0qMjr6BBA
Yzu5wByGj/UCIGeDeuPW5G58wEDOg0h+4+vtHmxhPpHRAGzz9MRmUbEO
-----END CERTIFICATE-----
";

/// The key types `report` can estimate for without a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    Rsa4096,
    P256,
    P384,
}

/// The length of every signature the report assumes, and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureSize {
    /// Bytes of one PKCS#7 signature (DER, before base64): exact for RSA, the longest possible
    /// for ECDSA (what `sign` reserves in the layout).
    pub bytes: usize,
    /// RSA modulus bits, or the EC curve's size.
    pub key_bits: usize,
    /// "RSA-2048", "P-256", ...
    pub key: String,
    /// Computed from the signing certificate (true) or from the representative one (false).
    pub exact: bool,
    /// The growth is an upper bound, not the exact figure: ECDSA signatures vary in length
    /// and `sign` lays out for the longest, so a package grows by at most the figure (it is
    /// reached when `sign` rewrites the package, and in place the growth is zero anyway).
    pub upper_bound: bool,
    /// What the figure is based on, for the reader.
    pub basis: String,
    #[serde(serialize_with = "ser_alg")]
    pub hash: HashAlgorithm,
}

fn ser_alg<S: serde::Serializer>(a: &HashAlgorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

fn key_name(alg: KeyAlgorithm, bits: usize) -> String {
    match alg {
        KeyAlgorithm::Rsa => format!("RSA-{bits}"),
        KeyAlgorithm::Ec(_) => format!("P-{bits}"),
    }
}

impl SignatureSize {
    /// The length `LocalSigner::signature_len` gives for a key certified by `cert` (every RSA
    /// PKCS#1 v1.5 signature is the modulus length; an ECDSA one at most its longest DER; the
    /// PKCS#7 around it names the certificate's issuer and serial).
    pub fn for_certificate(cert: &Certificate, hash: HashAlgorithm) -> Result<Self, ReportError> {
        let alg = cert.key_algorithm();
        let bits = match alg {
            KeyAlgorithm::Rsa => cert.max_signature_value_len().ok_or(ReportError::RsaKey)? * 8,
            KeyAlgorithm::Ec(EcCurve::P256) => 256,
            KeyAlgorithm::Ec(EcCurve::P384) => 384,
            KeyAlgorithm::Ec(EcCurve::P521) => return Err(ReportError::P521),
        };
        let bytes = verity_signing::longest_signed_data_len(hash, cert)
            .ok_or(ReportError::SignatureLength)?;
        Ok(SignatureSize {
            bytes,
            key_bits: bits,
            key: key_name(alg, bits),
            exact: true,
            upper_bound: alg != KeyAlgorithm::Rsa,
            basis: format!("certificate {}", cert.subject()),
            hash,
        })
    }

    /// An estimate for a key of `key` type and a certificate like [`REPRESENTATIVE_CERT`].
    pub fn estimate(key: KeyType, hash: HashAlgorithm) -> Result<Self, ReportError> {
        let cert = Certificate::parse(REPRESENTATIVE_CERT.as_bytes())?;
        let (alg, bits, value_len) = match key {
            KeyType::Rsa2048 => (KeyAlgorithm::Rsa, 2048, 256),
            KeyType::Rsa4096 => (KeyAlgorithm::Rsa, 4096, 512),
            KeyType::P256 => (KeyAlgorithm::Ec(EcCurve::P256), 256, 72),
            KeyType::P384 => (KeyAlgorithm::Ec(EcCurve::P384), 384, 104),
        };
        let algorithm = match alg {
            KeyAlgorithm::Rsa => SignatureAlgorithm::RsaPkcs1,
            KeyAlgorithm::Ec(_) => SignatureAlgorithm::Ecdsa,
        };
        let dummy = vec![0u8; value_len];
        let name = key_name(alg, bits);
        Ok(SignatureSize {
            bytes: verity_signing::signed_data(hash, algorithm, &cert, &dummy)?.len(),
            key_bits: bits,
            key: name.clone(),
            exact: false,
            upper_bound: alg != KeyAlgorithm::Rsa,
            basis: format!(
                "estimate for {name} and an issuer of 30 characters with a 20-byte serial"
            ),
            hash,
        })
    }
}

/// Regular files by size: what decides the tree (none up to one block) and the signature's
/// share of the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SizeClasses {
    pub empty: u64,
    pub up_to_4k: u64,
    pub up_to_64k: u64,
    pub up_to_1m: u64,
    pub over_1m: u64,
}

impl SizeClasses {
    fn add_file(&mut self, size: u64) {
        let class = match size {
            0 => &mut self.empty,
            1..=4096 => &mut self.up_to_4k,
            4097..=65536 => &mut self.up_to_64k,
            65537..=1048576 => &mut self.up_to_1m,
            _ => &mut self.over_1m,
        };
        *class += 1;
    }

    fn add(&mut self, o: &SizeClasses) {
        self.empty += o.empty;
        self.up_to_4k += o.up_to_4k;
        self.up_to_64k += o.up_to_64k;
        self.up_to_1m += o.up_to_1m;
        self.over_1m += o.over_1m;
    }
}

/// The figures of one package, or of all of them added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sizes {
    /// Size of the package file(s).
    pub package_bytes: u64,
    /// Entries of the header's file list (each gets a signature, as rpm 4.18 signs them).
    pub entries: u64,
    pub regular_files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Devices, fifos, sockets.
    pub other: u64,
    /// Sum of the regular files' sizes (the header's, as installed).
    pub payload_bytes: u64,
    /// How many bytes the package file grows by when signed.
    pub signature_growth: i64,
    /// `signature_growth` in percent of `package_bytes`.
    pub signature_growth_percent: f64,
    /// Merkle tree bytes fs-verity stores for the installed files (4 KiB blocks): `%ghost`
    /// files are not installed, and a hardlink set is one inode with one tree.
    pub tree_bytes: u64,
    /// `tree_bytes` in percent of `payload_bytes`.
    pub tree_percent: f64,
    pub size_classes: SizeClasses,
}

fn percent(part: f64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part * 100.0 / whole as f64
    }
}

impl Sizes {
    fn add(&mut self, o: &Sizes) {
        self.package_bytes += o.package_bytes;
        self.entries += o.entries;
        self.regular_files += o.regular_files;
        self.directories += o.directories;
        self.symlinks += o.symlinks;
        self.other += o.other;
        self.payload_bytes += o.payload_bytes;
        self.signature_growth += o.signature_growth;
        self.tree_bytes += o.tree_bytes;
        self.size_classes.add(&o.size_classes);
        self.update_percentages();
    }

    fn update_percentages(&mut self) {
        self.signature_growth_percent = percent(self.signature_growth as f64, self.package_bytes);
        self.tree_percent = percent(self.tree_bytes as f64, self.payload_bytes);
    }
}

/// One package's figures, or why it has none.
#[derive(Clone, Debug, Serialize)]
pub struct PackageReport {
    pub package: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How `sign` would write the new signature header: over the old one, or into a new file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WriteMode>,
    /// A source package (which `sign` skips unless told to include them).
    pub source: bool,
    #[serde(flatten)]
    pub sizes: Sizes,
}

/// Every package, sorted by path, and the totals over those that could be read.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub signature: SignatureSize,
    pub packages: Vec<PackageReport>,
    pub total: Sizes,
    pub failed: usize,
}

/// The packages named: files as they are, directories replaced by every `*.rpm` below them
/// (symlinks not followed), sorted by path, each once.
pub fn collect_packages(args: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            walk(a, &mut out)?;
        } else {
            out.push(a.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let cannot_read = |source| ReportError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    for e in std::fs::read_dir(dir).map_err(cannot_read)? {
        let e = e.map_err(cannot_read)?;
        let ty = e.file_type().map_err(cannot_read)?;
        let path = e.path();
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() && path.extension().is_some_and(|x| x == "rpm") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reports on `packages` in parallel on rayon's pool, calling `done` after each; the result
/// keeps their order. Only the headers are read, one package per worker at a time.
pub fn report_packages(
    packages: &[PathBuf],
    signature: SignatureSize,
    done: &(dyn Fn() + Sync),
) -> Report {
    let results: Vec<PackageReport> = packages
        .par_iter()
        .map(|p| {
            let r = report_package(p, &signature);
            done();
            r
        })
        .collect();
    let mut total = Sizes::default();
    let mut failed = 0;
    for r in &results {
        if r.error.is_some() {
            failed += 1;
        } else {
            total.add(&r.sizes);
        }
    }
    Report {
        signature,
        packages: results,
        total,
        failed,
    }
}

/// One package's figures; an unreadable package is a report with its error.
pub fn report_package(pkg: &Path, signature: &SignatureSize) -> PackageReport {
    let mut r = PackageReport {
        package: pkg.display().to_string(),
        error: None,
        mode: None,
        source: false,
        sizes: Sizes::default(),
    };
    if let Err(e) = measure(pkg, signature, &mut r) {
        r.error = Some(crate::error_chain(&e));
    }
    r
}

fn measure(
    pkg: &Path,
    signature: &SignatureSize,
    r: &mut PackageReport,
) -> Result<(), ReportError> {
    let f = File::open(pkg).map_err(ReportError::Open)?;
    let package_bytes = f.metadata().map_err(ReportError::Stat)?.len();
    let p = Package::open_unverified(BufReader::new(f))?;
    let files = p.files()?;
    let n = files.len();
    // What `sign` lays out: every entry signed (directories and symlinks with the empty
    // file's digest), all signatures the same length; no files, no verity tags.
    let plan = if n == 0 {
        p.signature.without_verity()?
    } else {
        let dummies = vec![vec![0u8; signature.bytes]; n];
        p.signature
            .with_verity(&dummies, u32::from(signature.hash.id()))?
    };
    let s = &mut r.sizes;
    s.package_bytes = package_bytes;
    s.entries = n as u64;
    s.signature_growth = plan.file_growth();
    let params = Params::for_rpm(HashAlgorithm::Sha256);
    for (i, f) in files.files().iter().enumerate() {
        if f.is_regular() {
            s.regular_files += 1;
            s.payload_bytes += f.size;
            s.size_classes.add_file(f.size);
            // One tree per installed inode: the first of a hardlink set carries it.
            let first_link = files.hardlink_set(i).is_none_or(|set| set[0] == i);
            if !f.is_ghost() && first_link {
                s.tree_bytes += fsverity::tree_size(&params, f.size);
            }
        } else if f.is_dir() {
            s.directories += 1;
        } else if f.is_symlink() {
            s.symlinks += 1;
        } else {
            s.other += 1;
        }
    }
    s.update_percentages();
    r.mode = Some(match plan.mode {
        RewriteMode::InPlace => WriteMode::InPlace,
        RewriteMode::Rewrite => WriteMode::Rewrite,
    });
    r.source = p.is_source();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_bounds() {
        let mut c = SizeClasses::default();
        for s in [0, 1, 4096, 4097, 65536, 65537, 1 << 20, (1 << 20) + 1] {
            c.add_file(s);
        }
        assert_eq!(
            c,
            SizeClasses {
                empty: 1,
                up_to_4k: 2,
                up_to_64k: 2,
                up_to_1m: 2,
                over_1m: 1
            }
        );
    }

    #[test]
    fn estimate_names_the_representative_certificate() {
        let e = SignatureSize::estimate(KeyType::Rsa2048, HashAlgorithm::Sha256).unwrap();
        assert!(!e.exact);
        // ContentInfo + SignedData + one SignerInfo naming a 30-character CN and a 20-byte
        // serial, around 256 bytes of signature.
        assert!(e.bytes > 256 + 100 && e.bytes < 256 + 250, "{}", e.bytes);
        let big = SignatureSize::estimate(KeyType::Rsa4096, HashAlgorithm::Sha256).unwrap();
        assert_eq!(big.bytes, e.bytes + 256);
        assert!(!e.upper_bound && !big.upper_bound);
        // ECDSA: the RSA PKCS#7 minus the NULL parameters of rsaEncryption, with the longest
        // DER ECDSA-Sig-Value (72 and 104 bytes) in place of the RSA value.
        let p256 = SignatureSize::estimate(KeyType::P256, HashAlgorithm::Sha256).unwrap();
        let p384 = SignatureSize::estimate(KeyType::P384, HashAlgorithm::Sha256).unwrap();
        assert!(p256.upper_bound && p384.upper_bound);
        assert_eq!((p256.key.as_str(), p384.key.as_str()), ("P-256", "P-384"));
        // 32 more bytes of value; an enclosing DER length may cross 255 and take a byte more.
        assert!(
            (32..=35).contains(&(p384.bytes - p256.bytes)),
            "{p256:?} {p384:?}"
        );
        // 184 bytes less of value, ecdsa-with-SHA256 3 bytes shorter than rsaEncryption with
        // its NULL, and the signature's and up to 6 enclosing DER lengths a byte shorter each.
        let less = e.bytes - p256.bytes;
        assert!(
            (184 + 3 + 1..=184 + 3 + 7).contains(&less),
            "{} {}",
            e.bytes,
            p256.bytes
        );
    }
}
