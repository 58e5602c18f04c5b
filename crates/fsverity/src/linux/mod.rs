//! The kernel's fs-verity interface, as safe functions with typed errors: enabling and
//! measuring verity, reading its metadata, the `.fs-verity` keyring and
//! `fs.verity.require_signatures`.
//!
//! The raw calls live in the private `sys` module; this one decides what each errno means for the
//! operation that got it (see the error types), because a bare errno is what makes rpm's
//! plugin unhelpful.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::sys::{ioctl as sys_ioctl, sysctl as sys_sysctl};
use crate::{FileDigest, HashAlgorithm};

mod error;
mod keyring;

pub use crate::params::MAX_SALT_SIZE;
pub use crate::sys::ioctl::{
    FS_IOC_ENABLE_VERITY, FS_IOC_MEASURE_VERITY, FS_IOC_READ_VERITY_METADATA, FS_VERITY_FL,
};
pub use crate::sys::keyring::KeySerial;
pub use crate::sys::sysctl::REQUIRE_SIGNATURES_SYSCTL;
pub use error::{
    EnableError, IsVerityError, KeyringError, MeasureError, OpenError, RestrictError, SysctlError,
};
pub use keyring::{
    add_certificate, add_certificate_to, describe_key, find_keyring, fs_verity_keyring,
    is_restricted, list_keyring, list_keyring_of, pkey_verify, restrict_keyring, KeyringKey,
    Restriction, KEYRING_NAME,
};

/// Longest built-in signature the kernel accepts (`FS_VERITY_MAX_SIGNATURE_SIZE`, EMSGSIZE above).
pub const MAX_SIGNATURE_SIZE: usize = 16128;

/// What FS_IOC_READ_VERITY_METADATA can read back from a verity file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataKind {
    /// The Merkle tree blocks, as stored by the filesystem.
    MerkleTree = 1,
    /// The 256-byte `fsverity_descriptor` (whose hash is the file digest).
    Descriptor = 2,
    /// The built-in PKCS#7 signature given at enable time, if any.
    Signature = 3,
}

// ---------------------------------------------------------------------------------------------
// ioctls
// ---------------------------------------------------------------------------------------------

/// Turn fs-verity on for the file behind `fd`.
///
/// `fd` must be open read-only with no writer anywhere (the kernel denies write access for the
/// duration); rpm 4.18's plugin fails precisely because it passes its O_WRONLY fd. Nothing
/// changes on failure. On ext4 this sets mtime/ctime to now: callers that care (rpm -V) must
/// put mtime back afterwards.
pub fn enable_verity(
    fd: BorrowedFd<'_>,
    alg: HashAlgorithm,
    block_size: u32,
    salt: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), EnableError> {
    let sig = signature.unwrap_or(&[]);
    if salt.len() > MAX_SALT_SIZE || sig.len() > MAX_SIGNATURE_SIZE {
        return Err(EnableError::TooLarge);
    }
    sys_ioctl::enable(fd, u32::from(alg.id()), block_size, salt, sig)
        .map_err(|e| EnableError::from_errno(e.raw_os_error()))
}

/// Convenience for callers holding a `File`.
pub fn enable_verity_file(
    file: &impl AsFd,
    alg: HashAlgorithm,
    block_size: u32,
    salt: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), EnableError> {
    enable_verity(file.as_fd(), alg, block_size, salt, signature)
}

/// The file's fs-verity digest as the kernel computed it, or `None` when verity is off.
pub fn measure_verity(fd: BorrowedFd<'_>) -> Result<Option<FileDigest>, MeasureError> {
    let m = match sys_ioctl::measure(fd) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == libc::ENODATA => return Ok(None),
        Err(e) => {
            return Err(MeasureError::from_errno(
                "FS_IOC_MEASURE_VERITY",
                e.raw_os_error(),
            ))
        }
    };
    let (alg, size) = (m.algorithm, m.size);
    let digest = HashAlgorithm::from_id(u32::from(alg))
        .and_then(|a| FileDigest::new(a, m.digest.get(..usize::from(size))?));
    digest
        .map(Some)
        .ok_or(MeasureError::UnexpectedDigest { alg, size })
}

/// Read verity metadata like `pread`: up to `buf.len()` bytes from `offset`; 0 at the end.
/// Needs Linux 5.12. [`MeasureError::NoMetadata`] when the file is not verity or, for
/// [`MetadataKind::Signature`], was enabled without a signature.
pub fn read_verity_metadata(
    fd: BorrowedFd<'_>,
    kind: MetadataKind,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, MeasureError> {
    match sys_ioctl::read_metadata(fd, kind as u64, offset, buf) {
        Ok(n) if n <= buf.len() => Ok(n),
        Ok(n) => Err(MeasureError::Unexpected {
            what: "FS_IOC_READ_VERITY_METADATA",
            detail: format!("returned {n} bytes for a {}-byte buffer", buf.len()),
        }),
        Err(e) => Err(MeasureError::from_errno(
            "FS_IOC_READ_VERITY_METADATA",
            e.raw_os_error(),
        )),
    }
}

/// Read a whole metadata item, at most `limit` bytes; `None` when there is none.
fn read_metadata_all(
    fd: BorrowedFd<'_>,
    kind: MetadataKind,
    limit: usize,
) -> Result<Option<Vec<u8>>, MeasureError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = match read_verity_metadata(fd, kind, out.len() as u64, &mut chunk) {
            Ok(n) => n,
            Err(MeasureError::NoMetadata) => return Ok(None),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > limit {
            return Err(MeasureError::Unexpected {
                what: "FS_IOC_READ_VERITY_METADATA",
                detail: format!("metadata larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The built-in signature stored with the file, `None` if it was enabled without one (or is
/// not verity).
pub fn read_signature(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, MeasureError> {
    read_metadata_all(fd, MetadataKind::Signature, MAX_SIGNATURE_SIZE)
}

/// The 256-byte `fsverity_descriptor` as the kernel stores it (signature fields zeroed), `None`
/// if the file is not verity.
pub fn read_descriptor(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, MeasureError> {
    read_metadata_all(fd, MetadataKind::Descriptor, 256)
}

/// Open a file read-only for the calls above, with the kernel's verity-specific open errors
/// typed: opening a signed verity file fails with ENOKEY when its cert is not in `.fs-verity`
/// (the keyring is empty after every boot), and with EKEYREJECTED/EBADMSG/EPERM when the stored
/// signature no longer verifies or `require_signatures=1` meets an unsigned file.
pub fn open_readonly(path: &Path) -> Result<fs::File, OpenError> {
    fs::File::open(path).map_err(map_open_error)
}

/// The [`open_readonly`] mapping, for callers opening files their own way (O_NOFOLLOW, openat).
pub fn map_open_error(err: io::Error) -> OpenError {
    OpenError::from_io(err)
}

/// Whether fs-verity is on for the file: statx's STATX_ATTR_VERITY (5.5+), else the inode
/// flag from FS_IOC_GETFLAGS. Does not open the verity info, so it works when the cert is
/// missing (where measure would fail with ENOKEY).
pub fn is_verity(fd: BorrowedFd<'_>) -> Result<bool, IsVerityError> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags};
    if let Ok(st) = statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS) {
        if st.stx_attributes_mask.contains(StatxAttributes::VERITY) {
            return Ok(st.stx_attributes.contains(StatxAttributes::VERITY));
        }
    }
    match sys_ioctl::get_flags(fd) {
        Ok(flags) => Ok(flags & FS_VERITY_FL != 0),
        // No inode flags at all (tmpfs before 6.0, procfs...): cannot be verity either.
        Err(e) if e.raw_os_error() == libc::ENOTTY || e.raw_os_error() == libc::EOPNOTSUPP => {
            Ok(false)
        }
        Err(e) => Err(IsVerityError::Other {
            source: io::Error::from_raw_os_error(e.raw_os_error()),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// sysctl and support
// ---------------------------------------------------------------------------------------------

/// `fs.verity.require_signatures`: when on, every verity file must carry a valid built-in
/// signature, checked at enable and whenever a file's verity info is loaded.
pub fn require_signatures() -> Result<bool, SysctlError> {
    let text = sys_sysctl::read_require_signatures(Path::new(REQUIRE_SIGNATURES_SYSCTL))
        .map_err(SysctlError::from_read_error)?;
    parse_require_signatures(&text)
}

fn parse_require_signatures(text: &str) -> Result<bool, SysctlError> {
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(SysctlError::Unexpected {
            what: "fs.verity.require_signatures",
            detail: format!("value {other:?}"),
        }),
    }
}

/// Set `fs.verity.require_signatures`. Set it early at boot: it only applies to files whose
/// verity info is loaded afterwards.
pub fn set_require_signatures(on: bool) -> Result<(), SysctlError> {
    sys_sysctl::write_require_signatures(Path::new(REQUIRE_SIGNATURES_SYSCTL), on)
        .map_err(SysctlError::from_write_error)
}

/// Whether the running kernel checks built-in signatures (CONFIG_FS_VERITY_BUILTIN_SIGNATURES):
/// `/proc/sys/fs/verity/require_signatures` exists. When it does not, a signature passed to
/// [`enable_verity`] is stored unchecked, and a verity file's stored signature proves nothing.
pub fn builtin_signatures() -> bool {
    Path::new(REQUIRE_SIGNATURES_SYSCTL).exists()
}

/// What the running kernel offers, without touching any file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    /// /proc/sys/fs/verity/require_signatures exists: fs-verity with built-in signatures is
    /// compiled in, and the kernel checks a verity file's stored signature against the
    /// `.fs-verity` keyring before the file can be opened. Without it a stored signature is kept
    /// but never checked. (A kernel with CONFIG_FS_VERITY but no built-in signatures cannot be
    /// told apart from one without fs-verity here; only an enable attempt says.)
    pub builtin_signatures: bool,
    /// The `.fs-verity` keyring's serial, if it exists.
    pub keyring: Option<KeySerial>,
    /// `fs.verity.require_signatures`, if readable.
    pub require_signatures: Option<bool>,
    /// Whether the loaded ext4 driver supports verity (/sys/fs/ext4/features/verity); `None`
    /// when ext4 is not loaded.
    pub ext4_verity: Option<bool>,
}

/// Probe /proc and /sys for fs-verity support.
pub fn kernel_support() -> KernelSupport {
    let builtin_signatures = builtin_signatures();
    let keyring = fs_verity_keyring().ok();
    let require_signatures = require_signatures().ok();
    let ext4_verity = if Path::new("/sys/fs/ext4/features").is_dir() {
        Some(Path::new("/sys/fs/ext4/features/verity").exists())
    } else {
        None
    };
    KernelSupport {
        builtin_signatures,
        keyring,
        require_signatures,
        ext4_verity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_signatures_values() {
        assert!(!parse_require_signatures("0\n").unwrap());
        assert!(parse_require_signatures("1\n").unwrap());
        assert!(matches!(
            parse_require_signatures("2\n"),
            Err(SysctlError::Unexpected { .. })
        ));
    }

    #[test]
    fn oversized_inputs_are_refused_before_the_syscall() {
        let f = tempfile::tempfile().unwrap();
        let big = vec![0u8; MAX_SIGNATURE_SIZE + 1];
        assert!(matches!(
            enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[], Some(&big)),
            Err(EnableError::TooLarge)
        ));
        assert!(matches!(
            enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[0; 33], None),
            Err(EnableError::TooLarge)
        ));
    }

    /// The host kernel (and tmpfs) have no fs-verity: the kernel must answer with one of the two
    /// "unsupported" errnos, and we must turn it into the typed error.
    #[test]
    fn enable_on_host_file_is_typed_unsupported() {
        for dir in [std::env::temp_dir(), "/dev/shm".into()] {
            if !dir.is_dir() {
                continue;
            }
            let path = dir.join(format!("fsverity-linux-test-{}", std::process::id()));
            fs::write(&path, b"hello").unwrap();
            let f = fs::File::open(&path).unwrap();
            let err = enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[], None)
                .expect_err("enable must fail on a kernel/filesystem without fs-verity");
            assert!(err.is_unsupported(), "{dir:?}: {err:?}");
            assert!(matches!(
                measure_verity(f.as_fd()),
                Err(MeasureError::FilesystemUnsupported) | Err(MeasureError::NotEnabled) | Ok(None)
            ));
            assert!(!is_verity(f.as_fd()).unwrap());
            fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn tmpfs_gives_enotty() {
        // /dev/shm is tmpfs on Linux hosts; tmpfs has no verity ops at all.
        let path = Path::new("/dev/shm").join(format!("fsverity-enotty-{}", std::process::id()));
        fs::write(&path, b"x").unwrap();
        let f = fs::File::open(&path).unwrap();
        let err = enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[], None).unwrap_err();
        fs::remove_file(&path).unwrap();
        assert!(matches!(err, EnableError::FilesystemUnsupported), "{err:?}");
        assert_eq!(err.to_string(), "filesystem does not support fs-verity");
    }

    #[test]
    fn kernel_support_is_consistent() {
        let s = kernel_support();
        assert_eq!(s.builtin_signatures, s.require_signatures.is_some());
        if !s.builtin_signatures {
            assert!(matches!(require_signatures(), Err(SysctlError::NoSysctl)));
        }
    }
}
