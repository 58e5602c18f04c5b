//! Why a package could not be digested, signed, verified, reported on or shown, one enum per
//! engine. A message says what went wrong in words a user can act on and keeps the cause as its
//! source; the package path is not repeated in it, since every caller names the package (an
//! outcome's `package` field, or the CLI's prefix). Paths other than the package's (an output
//! file, a directory) are in the variant.
use std::io;
use std::path::PathBuf;

use fsverity::HashAlgorithm;
use thiserror::Error;

use crate::signatures::SignaturesError;

/// Reading a package and computing its files' fs-verity digests ([`crate::digest`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DigestError {
    #[error("cannot open")]
    Open(#[source] io::Error),
    #[error("cannot stat")]
    Stat(#[source] io::Error),
    #[error("is a directory, not a package")]
    IsDirectory,
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error("no header digest (SHA-256 or SHA-1): the package cannot be checked")]
    NoHeaderDigest,
    #[error("no payload digest (PAYLOADDIGEST or MD5): the package cannot be checked")]
    NoPayloadDigest,
    #[error("unknown file digest algorithm {0} (FILEDIGESTALGO)")]
    UnknownFileDigestAlgorithm(u32),
    #[error("payload entry index {0} out of range")]
    EntryOutOfRange(usize),
    #[error("reading {path} from the payload")]
    ReadContent {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("starting hashing threads")]
    StartThreads(#[source] io::Error),
    /// The pool was shut down while a package still wanted it: a caller's bug, not the
    /// package's.
    #[error("hashing pool stopped")]
    PoolStopped,
    #[error("reading {path} from the payload: hashing worker stopped")]
    WorkerStopped { path: String },
    #[error("a hashing worker failed")]
    WorkerFailed,
}

/// Signing or stripping one package, or checking a run's destinations before it starts
/// ([`crate::sign`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error(transparent)]
    Signer(#[from] verity_signing::SignerError),
    #[error("cannot open")]
    Open(#[source] io::Error),
    #[error("cannot stat")]
    Stat(#[source] io::Error),
    #[error("is a directory, not a package")]
    IsDirectory,
    #[error("not a file name")]
    NotAFileName,
    #[error("output directory {}", .path.display())]
    OutputDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} would be written over itself ({}); nothing signed",
        .package.display(),
        .dest.display()
    )]
    OverItself { package: PathBuf, dest: PathBuf },
    #[error(
        "{} and {} would both be written to {}; nothing signed",
        .first.display(),
        .second.display(),
        .dest.display()
    )]
    SameDestination {
        first: PathBuf,
        second: PathBuf,
        dest: PathBuf,
    },
    /// The payload's own digests or sizes are wrong.
    #[error("corrupt package, not signed")]
    Corrupt(#[source] rpm_format::Error),
    /// Files whose content is not what the header's file digests say: `path` is the first,
    /// `more` the number of others.
    #[error(
        "corrupt package, not signed: {path}: content does not match the header's digest{}",
        match .more { 0 => String::new(), n => format!(" (and {n} more)") }
    )]
    ContentMismatch { path: String, more: usize },
    #[error("package changed while it was being signed; nothing written")]
    Changed,
    #[error("signer returned {got} signatures for {expected} digests")]
    SignatureCount { expected: usize, got: usize },
    /// Writing the signed package to `path` (a new file) failed.
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Box<SignError>,
    },
    #[error("cannot create a file beside {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open for writing")]
    OpenForWriting(#[source] io::Error),
    #[error(transparent)]
    Interrupted(io::Error),
    #[error("writing the lead")]
    WriteLead(#[source] io::Error),
    #[error("reading the lead")]
    ReadLead(#[source] io::Error),
    #[error("writing the signature header")]
    WriteHeader(#[source] io::Error),
    #[error("seeking to the main header")]
    Seek(#[source] io::Error),
    #[error("fsync")]
    Fsync(#[source] io::Error),
    #[error("copying header and payload")]
    Copy(#[source] io::Error),
    #[error("the copy thread failed")]
    CopyThread,
    #[error("starting the copy thread")]
    StartCopyThread(#[source] io::Error),
    #[error("duplicating the output descriptor")]
    DuplicateOutput(#[source] io::Error),
    #[error("setting the file mode")]
    SetMode(#[source] io::Error),
    #[error("replacing the package")]
    Replace(#[source] io::Error),
}

/// Why a package could not be checked at all ([`crate::verify`]); bad files are not errors but
/// part of the verdict.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error(transparent)]
    Signatures(#[from] SignaturesError),
    #[error("cannot open")]
    Open(#[source] io::Error),
    #[error("no hashing pool for {0}")]
    NoPool(HashAlgorithm),
    #[error("no fs-verity signatures (tag 276) in the package")]
    NoSignatures,
}

/// Sizing signatures and reading packages for `report` ([`crate::report`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error("cannot open")]
    Open(#[source] io::Error),
    #[error("cannot stat")]
    Stat(#[source] io::Error),
    #[error("cannot read {}", .path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the RSA key")]
    RsaKey,
    #[error("EC P-521 keys cannot sign here (only P-256 and P-384)")]
    P521,
    #[error("cannot compute the signature length")]
    SignatureLength,
    #[error(transparent)]
    Certificate(#[from] verity_signing::CertError),
    #[error(transparent)]
    Build(#[from] verity_signing::pkcs7::build::BuildError),
}

/// Why a package's signatures cannot be shown ([`crate::show`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ShowError {
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error(transparent)]
    Signatures(#[from] SignaturesError),
    #[error("cannot open")]
    Open(#[source] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;

    /// A caller can tell the failures apart without parsing messages, and the message keeps the
    /// cause.
    #[test]
    fn digest_errors_are_variants_with_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::HashPool::new(1, HashAlgorithm::Sha256).unwrap();
        let digest = |p: &std::path::Path| {
            crate::digest_package(p, HashAlgorithm::Sha256, &pool, &crate::NoProgress)
                .map(|_| ())
                .unwrap_err()
        };
        assert!(matches!(digest(dir.path()), DigestError::IsDirectory));
        let e = digest(&dir.path().join("absent.rpm"));
        assert!(
            matches!(&e, DigestError::Open(io) if io.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert_eq!(
            error_chain(&e),
            "cannot open: No such file or directory (os error 2)"
        );
        let junk = dir.path().join("junk.rpm");
        std::fs::write(&junk, b"not a package").unwrap();
        assert!(matches!(
            digest(&junk),
            DigestError::Format(rpm_format::Error::NotRpm(_))
        ));
        pool.shutdown();
    }

    #[test]
    fn sign_errors_name_the_file_and_keep_the_chain() {
        let e = SignError::Write {
            path: "/out/x.rpm".into(),
            source: Box::new(SignError::Replace(io::Error::from_raw_os_error(13))),
        };
        assert_eq!(
            error_chain(&e),
            "writing /out/x.rpm: replacing the package: Permission denied (os error 13)"
        );

        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("out"),
        );
        for d in [&a, &b, &out] {
            std::fs::create_dir(d).unwrap();
        }
        let (x, y) = (a.join("x.rpm"), b.join("x.rpm"));
        std::fs::write(&x, b"").unwrap();
        std::fs::write(&y, b"").unwrap();
        let opts = crate::sign::SignOptions {
            hash_alg: HashAlgorithm::Sha256,
            output_dir: Some(out.clone()),
            include_source: false,
            list_files: false,
            selection: Default::default(),
        };
        match crate::sign::check_destinations(&[x.clone(), y.clone()], &opts) {
            Err(SignError::SameDestination {
                first,
                second,
                dest,
            }) => {
                assert_eq!((&first, &second), (&x, &y));
                assert_eq!(dest, out.canonicalize().unwrap().join("x.rpm"));
            }
            other => panic!("{other:?}"),
        }
        let opts = crate::sign::SignOptions {
            output_dir: Some(dir.path().join("absent")),
            ..opts
        };
        let e = crate::sign::check_destinations(&[x], &opts).unwrap_err();
        assert!(matches!(&e, SignError::OutputDir { path, .. } if path.ends_with("absent")));
    }
}
