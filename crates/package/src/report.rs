//! What fs-verity signing costs, from the headers alone: for each package, the growth of the
//! package file when its signatures are added (exact, laid out as `sign` would, without
//! signing or writing anything), and the Merkle tree bytes fs-verity stores at install time.
//! The answer to "signatures make packages too big" with numbers.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fsverity::{HashAlgorithm, Params};
use rayon::prelude::*;
use rpm_format::{Package, RewriteMode};
use serde::Serialize;
use verity_signing::{Certificate, KeyAlgorithm};

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

/// The length of every signature the report assumes, and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureSize {
    /// Bytes of one PKCS#7 signature (DER, before base64).
    pub bytes: usize,
    /// RSA modulus bits.
    pub key_bits: usize,
    /// Computed from the signing certificate (true) or from the representative one (false).
    pub exact: bool,
    /// What the figure is based on, for the reader.
    pub basis: String,
    #[serde(serialize_with = "ser_alg")]
    pub hash: HashAlgorithm,
}

fn ser_alg<S: serde::Serializer>(a: &HashAlgorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

impl SignatureSize {
    /// Exact: the length `LocalSigner::signature_len` gives for a key certified by `cert`
    /// (every RSA PKCS#1 v1.5 signature is the modulus length, and the PKCS#7 around it names
    /// the certificate's issuer and serial).
    pub fn for_certificate(cert: &Certificate, hash: HashAlgorithm) -> anyhow::Result<Self> {
        if cert.key_algorithm() != KeyAlgorithm::Rsa {
            bail!(
                "only RSA certificates are supported: other keys make signatures of varying length"
            );
        }
        let modulus = rsa_modulus_len(cert.public_key()).context("cannot read the RSA key")?;
        Ok(SignatureSize {
            bytes: pkcs7_len(cert, modulus, hash)?,
            key_bits: modulus * 8,
            exact: true,
            basis: format!("certificate {}", cert.subject()),
            hash,
        })
    }

    /// An estimate for an RSA key of `bits` and a certificate like [`REPRESENTATIVE_CERT`].
    pub fn estimate(bits: usize, hash: HashAlgorithm) -> anyhow::Result<Self> {
        let cert = Certificate::parse(REPRESENTATIVE_CERT.as_bytes())?;
        Ok(SignatureSize {
            bytes: pkcs7_len(&cert, bits.div_ceil(8), hash)?,
            key_bits: bits,
            exact: false,
            basis: format!(
                "estimate for RSA-{bits} and an issuer of 30 characters with a 20-byte serial"
            ),
            hash,
        })
    }
}

fn pkcs7_len(cert: &Certificate, modulus: usize, hash: HashAlgorithm) -> anyhow::Result<usize> {
    let dummy = vec![0u8; modulus];
    Ok(verity_signing::pkcs7::rsa_signed_data(hash, cert, &dummy)?.len())
}

/// Length in bytes of the modulus in an `RSAPublicKey` DER (`SEQUENCE { INTEGER n, INTEGER e }`),
/// without the sign byte DER puts in front of a modulus whose top bit is set.
fn rsa_modulus_len(der: &[u8]) -> Option<usize> {
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
    let (seq, _) = tlv(der, 0x30)?;
    let (n, _) = tlv(seq, 0x02)?;
    let n = match n.split_first() {
        Some((0, rest)) => rest,
        _ => n,
    };
    (!n.is_empty()).then_some(n.len())
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
pub fn collect_packages(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
        let ty = e.file_type()?;
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
        r.error = Some(crate::error_chain(e.as_ref()));
    }
    r
}

fn measure(pkg: &Path, signature: &SignatureSize, r: &mut PackageReport) -> anyhow::Result<()> {
    let f = File::open(pkg).context("cannot open")?;
    let package_bytes = f.metadata().context("cannot stat")?.len();
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
    fn modulus_length() {
        // SEQUENCE { INTEGER 0x00 0x80.. (3 bytes of modulus), INTEGER 3 }
        let der = [
            0x30, 0x08, 0x02, 0x04, 0x00, 0x80, 0x01, 0x02, 0x02, 0x01, 0x03,
        ];
        assert_eq!(rsa_modulus_len(&der), Some(3));
        assert_eq!(rsa_modulus_len(&der[..5]), None);
        assert_eq!(rsa_modulus_len(&[0x31, 0x00]), None);
    }

    #[test]
    fn estimate_names_the_representative_certificate() {
        let e = SignatureSize::estimate(2048, HashAlgorithm::Sha256).unwrap();
        assert!(!e.exact);
        // ContentInfo + SignedData + one SignerInfo naming a 30-character CN and a 20-byte
        // serial, around 256 bytes of signature.
        assert!(e.bytes > 256 + 100 && e.bytes < 256 + 250, "{}", e.bytes);
        let big = SignatureSize::estimate(4096, HashAlgorithm::Sha256).unwrap();
        assert_eq!(big.bytes, e.bytes + 256);
    }
}
