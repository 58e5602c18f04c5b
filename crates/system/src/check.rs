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
#[derive(Debug, PartialEq, Eq)]
pub enum VerityVerdict {
    /// Its measured digest verifies with the package's signature and a configured certificate,
    /// or the kernel checked its stored signature, the package's, against a loaded one.
    Good(fsverity::FileDigest),
    /// It carries the signature of another installed file: content swapped by rename.
    Swapped {
        other: String,
        digest: fsverity::FileDigest,
    },
    /// Its digest is not the one the package signed.
    Modified(fsverity::FileDigest),
    /// Verity is on but neither a certificate nor the kernel can tell whether its digest is
    /// the one the package signed.
    Unverifiable(fsverity::FileDigest, String),
}

/// What a verdict on a verity file may rely on besides the file itself.
pub struct Trust<'a> {
    /// Certificates configured for user-space checks (`--cert` or the certificate directory).
    pub certs: &'a [verity_signing::Certificate],
    /// Whether the kernel checks built-in signatures (CONFIG_FS_VERITY_BUILTIN_SIGNATURES):
    /// then a file whose stored signature is the package's could only be opened because the
    /// kernel verified that signature over the file's digest with a loaded certificate.
    /// Without it the kernel keeps any signature unchecked, and it proves nothing.
    pub kernel_checks_signatures: bool,
    /// Signature bytes → the installed file that carries them.
    pub sig_owner: &'a HashMap<&'a [u8], String>,
    /// Certificates only the kernel holds: whether one of them verifies a package signature
    /// over a measured digest (the key's description if so). [`keyring_vouches`] on a real
    /// system; tests pass their own.
    pub kernel_keys: &'a (dyn Fn(&[u8], &fsverity::FileDigest) -> Option<String> + Sync),
}

/// Checks a package signature over `digest` with each certificate in the `.fs-verity`
/// keyring, in the kernel (KEYCTL_PKEY_VERIFY): the certificates `keyring load` put there at
/// boot count even when none is configured for user space, and the kernel's answer does not
/// depend on CONFIG_FS_VERITY_BUILTIN_SIGNATURES or on the file carrying a signature.
pub fn keyring_vouches(sig: &[u8], digest: &fsverity::FileDigest) -> Option<String> {
    use verity_signing::SignatureAlgorithm;
    let p = verity_signing::Pkcs7Signature::parse(sig).ok()?;
    let encoding = match p.signature_algorithm() {
        SignatureAlgorithm::RsaPkcs1 => "pkcs1",
        SignatureAlgorithm::Ecdsa => "x962",
    };
    let message_digest = p.message_digest_for(digest);
    let keys = fsverity::linux::list_keyring().ok()?;
    keys.iter()
        .filter(|k| k.key_type == "asymmetric")
        .find(|k| {
            fsverity::linux::pkey_verify(
                k.id,
                encoding,
                p.digest_algorithm().name(),
                &message_digest,
                p.signature_value(),
            )
            .unwrap_or(false)
        })
        .map(|k| k.description.clone())
}

/// No kernel keyring (tests, or a root that is not the running system's).
pub fn no_kernel_keys(_: &[u8], _: &fsverity::FileDigest) -> Option<String> {
    None
}

/// The verdict on a verity file from its measured digest (FS_IOC_MEASURE_VERITY), the
/// signature stored with it (`None`: enabled without one) and the package's signature for it.
/// The measured digest decides: it must be the digest the package signed, which a configured
/// certificate shows in user space whatever the kernel does. Only when no configured
/// certificate can tell does a stored signature count, and only on a kernel that checks it.
pub fn verity_verdict(
    measured: &fsverity::FileDigest,
    stored: Option<&[u8]>,
    expected: &[u8],
    self_path: &str,
    trust: &Trust,
) -> VerityVerdict {
    let digest = measured.clone();
    // Another installed file's signature, vouched for by the kernel or by a certificate.
    let swapped_with = || {
        let other = trust.sig_owner.get(stored?)?;
        let vouched = trust.kernel_checks_signatures
            || matches!(
                check_digest(stored?, measured, trust.certs),
                ContentCheck::Matches(_)
            );
        (other != self_path && vouched).then(|| other.clone())
    };
    match check_digest(expected, measured, trust.certs) {
        ContentCheck::Matches(_) => VerityVerdict::Good(digest),
        ContentCheck::Differs => match swapped_with() {
            Some(other) => VerityVerdict::Swapped { other, digest },
            None => VerityVerdict::Modified(digest),
        },
        ContentCheck::Unverifiable(why) => {
            if (trust.kernel_keys)(expected, measured).is_some() {
                return VerityVerdict::Good(digest);
            }
            if trust.kernel_checks_signatures && stored == Some(expected) {
                return VerityVerdict::Good(digest);
            }
            if let Some(other) = swapped_with() {
                return VerityVerdict::Swapped { other, digest };
            }
            let why = match (stored, trust.kernel_checks_signatures) {
                (None, _) => format!("verity was enabled without a signature, and {why}"),
                (Some(_), false) => format!(
                    "this kernel does not check built-in signatures \
                     (no CONFIG_FS_VERITY_BUILTIN_SIGNATURES), and {why}"
                ),
                (Some(_), true) => why,
            };
            VerityVerdict::Unverifiable(digest, why)
        }
    }
}

/// Checks a verity file without re-hashing it: FS_IOC_MEASURE_VERITY for the digest,
/// FS_IOC_READ_VERITY_METADATA for the stored signature, then [`verity_verdict`].
pub fn check_verity_file(
    file: &File,
    expected: &[u8],
    self_path: &str,
    trust: &Trust,
) -> Result<VerityVerdict, fsverity::linux::MeasureError> {
    use fsverity::linux;
    let digest = linux::measure_verity(file.as_fd())?.ok_or(linux::MeasureError::NoMetadata)?;
    let stored = match linux::read_signature(file.as_fd()) {
        Ok(s) => s,
        Err(linux::MeasureError::NoMetadata) => None,
        Err(e) => return Err(e),
    };
    Ok(verity_verdict(
        &digest,
        stored.as_deref(),
        expected,
        self_path,
        trust,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsverity::{FileDigest, HashAlgorithm};
    use verity_signing::LocalSigner;

    fn signer(dir: &std::path::Path) -> LocalSigner {
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=verdict test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{out:?}");
        LocalSigner::from_files(&key, &cert, None).unwrap()
    }

    fn digest(byte: u8) -> FileDigest {
        FileDigest::new(HashAlgorithm::Sha256, &[byte; 32]).unwrap()
    }

    /// The case a kernel without CONFIG_FS_VERITY_BUILTIN_SIGNATURES makes possible: the
    /// package's signature stored with a file whose content (measured digest) is another. The
    /// stored signature must count for nothing there, and a configured certificate must win
    /// over it whatever the kernel says.
    #[test]
    fn a_measured_digest_the_package_did_not_sign_is_never_good() {
        let d = tempfile::tempdir().unwrap();
        let s = signer(d.path());
        let certs = [s.certificate().clone()];
        let (signed, other, tampered) = (digest(1), digest(2), digest(3));
        let sig = s.sign_digest(&signed).unwrap();
        let other_sig = s.sign_digest(&other).unwrap();
        let owners: HashMap<&[u8], String> = [
            (sig.as_slice(), "/usr/bin/a".to_string()),
            (other_sig.as_slice(), "/usr/bin/b".to_string()),
        ]
        .into_iter()
        .collect();
        let trust = |certs, kernel| Trust {
            certs,
            kernel_checks_signatures: kernel,
            sig_owner: &owners,
            kernel_keys: &no_kernel_keys,
        };
        let verdict = |measured: &FileDigest, stored: Option<&[u8]>, t: &Trust| {
            verity_verdict(measured, stored, &sig, "/usr/bin/a", t)
        };

        // Stub kernel, package's signature stored over tampered content.
        let v = verdict(&tampered, Some(&sig), &trust(&[], false));
        assert!(
            matches!(&v, VerityVerdict::Unverifiable(_, why) if why.contains("does not check")),
            "{v:?}"
        );
        for kernel in [false, true] {
            let v = verdict(&tampered, Some(&sig), &trust(&certs, kernel));
            assert_eq!(
                v,
                VerityVerdict::Modified(tampered.clone()),
                "kernel {kernel}"
            );
            // Enabled without a signature.
            let v = verdict(&tampered, None, &trust(&certs, kernel));
            assert_eq!(
                v,
                VerityVerdict::Modified(tampered.clone()),
                "kernel {kernel}"
            );
            let v = verdict(&tampered, None, &trust(&[], kernel));
            assert!(
                matches!(&v, VerityVerdict::Unverifiable(_, why) if why.contains("without a signature")),
                "{v:?}"
            );
            // The real content is good with a certificate, signature stored or not.
            for stored in [None, Some(sig.as_slice())] {
                let v = verdict(&signed, stored, &trust(&certs, kernel));
                assert_eq!(v, VerityVerdict::Good(signed.clone()));
            }
        }
        // Only a kernel that checked the stored signature can vouch without a certificate.
        let v = verdict(&signed, Some(&sig), &trust(&[], true));
        assert_eq!(v, VerityVerdict::Good(signed.clone()));

        // Another file's signature: swapped when a certificate or the kernel says it fits.
        let swapped = VerityVerdict::Swapped {
            other: "/usr/bin/b".into(),
            digest: other.clone(),
        };
        assert_eq!(
            verdict(&other, Some(&other_sig), &trust(&certs, false)),
            swapped
        );
        assert_eq!(
            verdict(&other, Some(&other_sig), &trust(&[], true)),
            swapped
        );
        let v = verdict(&other, Some(&other_sig), &trust(&[], false));
        assert!(matches!(v, VerityVerdict::Unverifiable(..)), "{v:?}");
        // A certificate only the kernel holds vouches for the signed digest, whatever is
        // stored and whatever the kernel enforces; it cannot make another digest good.
        let keyring = |sig: &[u8], d: &FileDigest| {
            verity_signing::verify_signature(sig, d, &certs)
                .ok()
                .map(|c| c.subject().to_string())
        };
        for (stored, kernel) in [(None, false), (Some(sig.as_slice()), false), (None, true)] {
            let t = Trust {
                kernel_keys: &keyring,
                ..trust(&[], kernel)
            };
            assert_eq!(
                verdict(&signed, stored, &t),
                VerityVerdict::Good(signed.clone())
            );
            let v = verdict(&tampered, stored, &t);
            assert!(matches!(v, VerityVerdict::Unverifiable(..)), "{v:?}");
        }
        // ... and merely modified when that signature does not fit the content either.
        let v = verdict(&tampered, Some(&other_sig), &trust(&certs, false));
        assert_eq!(v, VerityVerdict::Modified(tampered.clone()));
    }
}
