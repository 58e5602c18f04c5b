//! Checks shared by `enable` and `audit`: reading a file through the kernel's verification,
//! its digest in user space, and what a file with fs-verity on says about itself.
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use fsverity::HashAlgorithm;

use crate::certs::DEFAULT_CERT_DIR;

/// A read that failed with EIO at a known offset: on a verity file, a block that does not
/// match the Merkle tree.
#[derive(Debug)]
pub enum ReadFailure {
    Eio { offset: u64 },
    Io(io::Error),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Eio { offset } => write!(
                f,
                "I/O error reading at offset {offset} (block {})",
                offset / 4096
            ),
            ReadFailure::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Reads through `file` in user space, which makes the kernel check every block of a verity
/// file against its Merkle tree. The offset of the first EIO says which block was tampered.
pub fn read_through(file: &File) -> Result<u64, ReadFailure> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        match file.read_at(&mut buf, off) {
            Ok(0) => return Ok(off),
            Ok(n) => off += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                return Err(ReadFailure::Eio { offset: off })
            }
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
}

/// The fs-verity digest computed in user space (the same value the kernel would measure).
pub fn userspace_digest(
    file: &File,
    size: u64,
    alg: HashAlgorithm,
) -> Result<fsverity::FileDigest, ReadFailure> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    struct Counting<'a> {
        f: &'a File,
        pos: Arc<AtomicU64>,
    }
    impl io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            use std::os::unix::fs::FileExt;
            let off = self.pos.load(Ordering::Relaxed);
            let n = self.f.read_at(buf, off)?;
            self.pos.store(off + n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }
    let params = fsverity::Params::for_rpm(alg);
    let pos = Arc::new(AtomicU64::new(0));
    let mut b = fsverity::DigestBuilder::new(&params);
    let r = b.read_from_sized(
        Counting {
            f: file,
            pos: pos.clone(),
        },
        Some(size),
        |_| {},
    );
    match r {
        Ok(_) => Ok(b.finish()),
        Err(e) if e.raw_os_error() == Some(libc::EIO) => Err(ReadFailure::Eio {
            offset: pos.load(Ordering::Relaxed),
        }),
        Err(e) => Err(ReadFailure::Io(e)),
    }
}

/// The outcome of checking a digest against a package signature in user space.
#[derive(Debug)]
pub enum ContentCheck {
    /// The signature is valid for this digest; the subject of the certificate that says so.
    Matches(String),
    /// A trusted certificate made the signature, but not over this digest.
    Differs,
    /// No trusted certificate for the signer (or none at all), or an unreadable signature.
    Unverifiable(String),
}

pub fn check_digest(
    sig: &[u8],
    digest: &fsverity::FileDigest,
    trusted: &[verity_signing::Certificate],
) -> ContentCheck {
    use verity_signing::VerifyError;
    match verity_signing::verify_signature(sig, digest, trusted) {
        Ok(c) => ContentCheck::Matches(c.subject().to_string()),
        Err(VerifyError::BadSignature(_)) | Err(VerifyError::DigestAlgorithmMismatch { .. }) => {
            ContentCheck::Differs
        }
        Err(VerifyError::UnknownSigner(s)) if trusted.is_empty() => ContentCheck::Unverifiable(
            format!("signed by {s}; no trusted certificate given (--cert or {DEFAULT_CERT_DIR})"),
        ),
        Err(e) => ContentCheck::Unverifiable(e.to_string()),
    }
}

/// Who made a package signature, for messages ("cert X is not in the keyring").
pub fn signer_of(sig: &[u8]) -> String {
    match verity_signing::Pkcs7Signature::parse(sig) {
        Ok(p) => p.signer().to_string(),
        Err(e) => format!("unparseable signature ({e})"),
    }
}

/// What a file that already has fs-verity on says about itself.
#[derive(Debug)]
pub enum VerityVerdict {
    /// Its stored built-in signature is the package's (the kernel checked it against the
    /// content when the file was opened), or its measured digest verifies with a trusted cert.
    Good(fsverity::FileDigest),
    /// It carries the signature of another installed file: content swapped by rename.
    Swapped {
        other: String,
        digest: fsverity::FileDigest,
    },
    /// Its digest is not the one the package signed.
    Modified(fsverity::FileDigest),
    /// Verity is on but neither the stored signature nor a trusted cert can tell.
    Unverifiable(fsverity::FileDigest, String),
}

/// Checks a verity file without re-hashing it: FS_IOC_READ_VERITY_METADATA for the stored
/// signature, FS_IOC_MEASURE_VERITY for the digest.
pub fn check_verity_file(
    file: &File,
    expected: &[u8],
    sig_owner: &HashMap<&[u8], String>,
    self_path: &str,
    trusted: &[verity_signing::Certificate],
) -> Result<VerityVerdict, fsverity::linux::MeasureError> {
    use fsverity::linux;
    let digest = linux::measure_verity(file.as_fd())?.ok_or(linux::MeasureError::NoMetadata)?;
    let stored = match linux::read_signature(file.as_fd()) {
        Ok(s) => s,
        Err(linux::MeasureError::NoMetadata) => None,
        Err(e) => return Err(e),
    };
    if let Some(stored) = &stored {
        if stored.as_slice() == expected {
            return Ok(VerityVerdict::Good(digest));
        }
        if let Some(other) = sig_owner.get(stored.as_slice()) {
            if other != self_path {
                return Ok(VerityVerdict::Swapped {
                    other: other.clone(),
                    digest,
                });
            }
        }
    }
    Ok(match check_digest(expected, &digest, trusted) {
        ContentCheck::Matches(_) => VerityVerdict::Good(digest),
        ContentCheck::Differs => VerityVerdict::Modified(digest),
        ContentCheck::Unverifiable(why) => VerityVerdict::Unverifiable(digest, why),
    })
}
