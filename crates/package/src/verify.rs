//! Checking that every fs-verity signature in a package parses, was made by a trusted
//! certificate, and signs the fs-verity digest of that file's actual payload content. rpm
//! itself never checks these; the kernel would only find out at install time.

use std::path::Path;
use std::sync::Arc;

use fsverity::HashAlgorithm;
use serde::Serialize;
use verity_signing::{Certificate, Pkcs7Signature};

use crate::digest::{self, HashPool, PackageDigests};
use crate::error::{DigestError, VerifyError};
use crate::signatures::{self, VeritySignatures};

/// The verdict on one file's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FileStatus {
    /// Made by a trusted certificate over this file's content.
    #[serde(rename = "OK")]
    Ok,
    /// Well-formed, for the package's algorithm, but no certificate was given to check it.
    #[serde(rename = "UNCHECKED")]
    Unchecked,
    /// Not base64 or not a PKCS#7 signature.
    #[serde(rename = "MALFORMED")]
    Malformed,
    /// Does not sign this file's content (or uses another algorithm).
    #[serde(rename = "BAD")]
    Bad,
    /// Made by a certificate that is not trusted.
    #[serde(rename = "UNTRUSTED")]
    Untrusted,
    /// The payload content does not match the header's file digest: rpm refuses to install
    /// it, whatever the signature says.
    #[serde(rename = "CORRUPT")]
    Corrupt,
    /// An empty entry in tag 276: the signer left this file out on purpose (`sign --files`,
    /// `--exclude`, `--executables`). Not a problem.
    #[serde(rename = "UNSIGNED-BY-POLICY")]
    UnsignedByPolicy,
}

impl FileStatus {
    pub fn name(self) -> &'static str {
        match self {
            FileStatus::Ok => "OK",
            FileStatus::Unchecked => "UNCHECKED",
            FileStatus::Malformed => "MALFORMED",
            FileStatus::Bad => "BAD",
            FileStatus::Untrusted => "UNTRUSTED",
            FileStatus::Corrupt => "CORRUPT",
            FileStatus::UnsignedByPolicy => "UNSIGNED-BY-POLICY",
        }
    }

    /// Whether the file counts as good in the summary: only a checked signature does, so
    /// that a run without certificates can never read as a pass.
    pub fn is_good(self) -> bool {
        self == FileStatus::Ok
    }

    /// Whether the file shows a problem (an unchecked signature is not one: nothing was
    /// wrong, it just was not checked).
    pub fn is_problem(self) -> bool {
        !matches!(
            self,
            FileStatus::Ok | FileStatus::Unchecked | FileStatus::UnsignedByPolicy
        )
    }
}

#[derive(Debug, Serialize)]
pub struct FileVerdict {
    pub path: String,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PackageVerdict {
    pub package: String,
    /// Every signature checked against a trusted certificate and found good, and the package
    /// intact. Never true without certificates.
    pub ok: bool,
    /// Whether signatures were checked against certificates at all.
    pub checked: bool,
    /// Why the package as a whole failed (unreadable, corrupt payload, no signatures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    pub files: Vec<FileVerdict>,
    pub good: usize,
    pub bad: usize,
    /// Files whose signature is well-formed but was not checked (no certificate).
    pub unchecked: usize,
    /// Files with an empty entry: left unsigned by the signer's choice.
    pub unsigned_by_policy: usize,
}

impl PackageVerdict {
    /// What could be checked was fine: no bad file and no package-level error. Without
    /// certificates this is all a verdict can say.
    pub fn structure_ok(&self) -> bool {
        self.bad == 0 && self.error.is_none()
    }
}

/// Hashing pools for both algorithms: a package's tag 277 says which one it needs.
pub struct Verifier {
    trusted: Vec<Certificate>,
    pools: [(HashAlgorithm, Arc<HashPool>); 2],
}

impl Verifier {
    pub fn new(trusted: Vec<Certificate>, threads: usize) -> Result<Verifier, DigestError> {
        Ok(Verifier {
            trusted,
            pools: [
                (
                    HashAlgorithm::Sha256,
                    HashPool::new(threads, HashAlgorithm::Sha256)?,
                ),
                (
                    HashAlgorithm::Sha512,
                    HashPool::new(threads, HashAlgorithm::Sha512)?,
                ),
            ],
        })
    }

    /// Verifies one package; a package that cannot be checked at all is a failed verdict
    /// with its reason.
    pub fn verify(&self, pkg: &Path) -> PackageVerdict {
        self.check_package(pkg).unwrap_or_else(|e| PackageVerdict {
            package: pkg.display().to_string(),
            ok: false,
            checked: !self.trusted.is_empty(),
            error: Some(crate::error_chain(&e)),
            algorithm: None,
            files: Vec::new(),
            good: 0,
            bad: 0,
            unchecked: 0,
            unsigned_by_policy: 0,
        })
    }

    pub fn shutdown(&self) {
        for (_, p) in &self.pools {
            p.shutdown();
        }
    }

    fn check_package(&self, pkg: &Path) -> Result<PackageVerdict, VerifyError> {
        // Tag 277 decides the algorithm; read the signature header before streaming the payload.
        let alg = {
            let f = std::fs::File::open(pkg).map_err(VerifyError::Open)?;
            let p = rpm_format::Package::open_unverified(std::io::BufReader::new(f))?;
            signatures::algorithm(p.signature.header())?
        };
        let pool = match self.pools.iter().find(|(a, _)| *a == alg) {
            Some((_, pool)) => pool,
            None => return Err(VerifyError::NoPool(alg)),
        };
        let digests = digest::digest_package(pkg, alg, pool, &digest::NoProgress)?;
        check_digests(pkg, &digests, alg, &self.trusted)
    }
}

fn check_digests(
    pkg: &Path,
    digests: &PackageDigests,
    alg: HashAlgorithm,
    trusted: &[Certificate],
) -> Result<PackageVerdict, VerifyError> {
    let n = digests.files.len();
    let sigs = match VeritySignatures::read(digests.headers.signature.header())? {
        Some(s) => s,
        None if n == 0 => {
            return Ok(verdict(pkg, digests, alg, trusted, Vec::new()));
        }
        None => return Err(VerifyError::NoSignatures),
    };
    sigs.check_count(n)?;
    let files = digests
        .files
        .files()
        .iter()
        .zip(&digests.digests)
        .enumerate()
        .map(|(i, (f, digest))| {
            let mut r = check_file(sigs.get(i), digest, alg, trusted);
            r.path = f.path_lossy();
            if digests.mismatched.binary_search(&i).is_ok() {
                let was = match r.error.take() {
                    Some(e) => format!("; signature: {}: {e}", r.status.name()),
                    None => String::new(),
                };
                r.status = FileStatus::Corrupt;
                r.error = Some(format!("content does not match the header's digest{was}"));
            }
            r
        })
        .collect();
    Ok(verdict(pkg, digests, alg, trusted, files))
}

fn verdict(
    pkg: &Path,
    digests: &PackageDigests,
    alg: HashAlgorithm,
    trusted: &[Certificate],
    files: Vec<FileVerdict>,
) -> PackageVerdict {
    let integrity_error = digests
        .integrity
        .as_ref()
        .err()
        .map(|e| format!("package is corrupt: {e}"));
    let good = files.iter().filter(|f| f.status.is_good()).count();
    let unchecked = files
        .iter()
        .filter(|f| f.status == FileStatus::Unchecked)
        .count();
    let unsigned_by_policy = files
        .iter()
        .filter(|f| f.status == FileStatus::UnsignedByPolicy)
        .count();
    let bad = files.len() - good - unchecked - unsigned_by_policy;
    let checked = !trusted.is_empty();
    PackageVerdict {
        package: pkg.display().to_string(),
        ok: checked && bad == 0 && integrity_error.is_none(),
        checked,
        error: integrity_error,
        algorithm: Some(alg.name()),
        files,
        good,
        bad,
        unchecked,
        unsigned_by_policy,
    }
}

/// The verdict on one file's signature entry (the path is filled in by the caller).
fn check_file(
    entry: Result<Option<Vec<u8>>, rpm_format::Error>,
    digest: &fsverity::FileDigest,
    alg: HashAlgorithm,
    trusted: &[Certificate],
) -> FileVerdict {
    let mut r = FileVerdict {
        path: String::new(),
        status: FileStatus::Ok,
        digest: Some(digest.to_string()),
        signer: None,
        error: None,
    };
    if matches!(entry, Ok(None)) {
        r.status = FileStatus::UnsignedByPolicy;
        return r;
    }
    let parsed = entry.map_err(|e| e.to_string()).and_then(|der| {
        Pkcs7Signature::parse(der.as_deref().unwrap_or_default())
            .map_err(|e| format!("not a PKCS#7 signature: {e}"))
    });
    let sig = match parsed {
        Ok(sig) => sig,
        Err(e) => {
            r.status = FileStatus::Malformed;
            r.error = Some(e);
            return r;
        }
    };
    r.signer = Some(sig.signer().to_string());
    if sig.digest_algorithm().fsverity() != Some(alg) {
        r.status = FileStatus::Bad;
        r.error = Some(format!(
            "signature uses {} but the package's algorithm is {alg}",
            sig.digest_algorithm().name()
        ));
    } else if trusted.is_empty() {
        r.status = FileStatus::Unchecked;
    } else if let Err(e) = sig.verify(digest, trusted) {
        r.status = match e {
            verity_signing::VerifyError::UnknownSigner(_) => FileStatus::Untrusted,
            _ => FileStatus::Bad,
        };
        r.error = Some(format!("{e} (content digest {digest})"));
    }
    r
}
