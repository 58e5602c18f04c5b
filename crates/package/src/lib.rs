//! fs-verity signatures of RPM packages: what a signing host, a build-farm worker or a dnf
//! plugin calls to digest, sign and verify a package, with typed per-file and per-package
//! results. Knows nothing of the command line.
//!
//! A package flows through [`digest::digest_package`] (one streaming pass: headers checked,
//! payload decompressed on its own thread, file contents hashed on a worker pool), then
//! [`sign`] (signatures made by any [`verity_signing::Signer`], signature header rewritten as
//! rpm 4.18 does, file replaced atomically) or [`verify`] (each file's signature checked
//! against the digest of its payload content).
#![forbid(unsafe_code)]

pub mod digest;
pub mod error;
pub mod output;
pub mod repo;
pub mod report;
pub mod select;
pub mod show;
pub mod sign;
pub mod signatures;
pub mod verify;

pub use digest::{digest_package, HashPool, NoProgress, PackageDigests, Progress};
pub use error::{DigestError, ReportError, ShowError, SignError, VerifyError};
pub use output::{write_atomic, AtomicFile};
pub use signatures::{SignaturesError, VeritySignatures};

/// An error and its causes on one line, leaving out a cause the message before already
/// contains: several error types put their cause into their own message as well, and a chain
/// printed naively would then say it twice ("Is a directory: Is a directory").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let msg = c.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cause = c.source();
    }
    out
}
