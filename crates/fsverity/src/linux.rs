//! Kernel interface: FS_IOC_ENABLE_VERITY / MEASURE / READ_METADATA and the `.fs-verity` keyring.
//! The only module of the crate allowed to use `unsafe` (raw syscalls).
//!
//! Every kernel errno is turned into an [`Error`] variant whose message says what it means for
//! the user, because the same errno means different things for different calls (EPERM on enable
//! is `require_signatures`, EPERM on the keyring is a missing privilege) and because rpm's plugin
//! shows how unhelpful a bare "Operation not permitted" is. [`Error::errno`] keeps the raw value
//! for reports and tests.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::ioctl::{self, opcode, Ioctl, IoctlOutput, Opcode};

use crate::{FileDigest, HashAlgorithm};

// ---------------------------------------------------------------------------------------------
// UAPI (include/uapi/linux/fsverity.h, fs.h)
// ---------------------------------------------------------------------------------------------

/// `struct fsverity_enable_arg`: 128 bytes, native endianness.
#[repr(C)]
#[derive(Debug, Default)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `struct fsverity_digest` header; the digest bytes follow it (see [`DigestBuf`]).
#[repr(C)]
#[derive(Debug, Default)]
struct DigestHeader {
    digest_algorithm: u16,
    digest_size: u16,
}

/// The header plus room for the largest digest (SHA-512), so one ioctl always fits.
#[repr(C)]
#[derive(Debug)]
struct DigestBuf {
    header: DigestHeader,
    digest: [u8; MAX_DIGEST_SIZE],
}

/// `struct fsverity_read_metadata_arg`: 40 bytes.
#[repr(C)]
#[derive(Debug, Default)]
struct ReadMetadataArg {
    metadata_type: u64,
    offset: u64,
    length: u64,
    buf_ptr: u64,
    reserved: u64,
}

/// `_IOW('f', 133, struct fsverity_enable_arg)` = 0x40806685.
pub const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<EnableArg>(b'f', 133);
/// `_IOWR('f', 134, struct fsverity_digest)` = 0xC0046686.
pub const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<DigestHeader>(b'f', 134);
/// `_IOWR('f', 135, struct fsverity_read_metadata_arg)` = 0xC0286687.
pub const FS_IOC_READ_VERITY_METADATA: Opcode = opcode::read_write::<ReadMetadataArg>(b'f', 135);
/// `FS_IOC_GETFLAGS` = `_IOR('f', 1, long)`; the kernel actually transfers an `int`.
const FS_IOC_GETFLAGS: Opcode = opcode::read::<libc::c_long>(b'f', 1);
/// Inode flag reported by FS_IOC_GETFLAGS on verity files.
pub const FS_VERITY_FL: u32 = 0x0010_0000;

/// Longest salt the kernel accepts (EMSGSIZE above).
pub const MAX_SALT_SIZE: usize = 32;
/// Longest built-in signature the kernel accepts (`FS_VERITY_MAX_SIGNATURE_SIZE`, EMSGSIZE above).
pub const MAX_SIGNATURE_SIZE: usize = 16128;
const MAX_DIGEST_SIZE: usize = 64;

/// Where the kernel publishes `fs.verity.require_signatures`; exists only with
/// CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y.
pub const REQUIRE_SIGNATURES_SYSCTL: &str = "/proc/sys/fs/verity/require_signatures";
/// Name of the keyring holding the certificates built-in signatures are checked against.
pub const KEYRING_NAME: &str = ".fs-verity";

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
// Errors
// ---------------------------------------------------------------------------------------------

/// What went wrong, in the user's terms. Which variant an errno becomes depends on the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ENOTTY: the filesystem has no fs-verity support at all (tmpfs, xfs, nfs...).
    #[error("filesystem does not support fs-verity")]
    FilesystemUnsupported,
    /// EOPNOTSUPP.
    #[error(
        "fs-verity not enabled: kernel lacks CONFIG_FS_VERITY or the filesystem's verity feature \
         is off (tune2fs -O verity)"
    )]
    NotEnabled,
    /// ENOKEY on enable or open.
    #[error("the signing certificate is not in the .fs-verity keyring")]
    CertNotInKeyring,
    /// EKEYREJECTED.
    #[error("signature does not match the file's content")]
    SignatureRejected,
    /// EPERM on enable.
    #[error(
        "not permitted: fs.verity.require_signatures=1 and no signature was given, \
         or the file is append-only"
    )]
    SignatureRequired,
    /// ETXTBSY.
    #[error(
        "the file is open for writing (by this or another process, or through a writable \
         mapping); fs-verity can only be enabled when there are no writers"
    )]
    FileBusy,
    /// EEXIST on enable.
    #[error("fs-verity is already enabled on this file")]
    AlreadyEnabled,
    /// EBADMSG on enable.
    #[error("malformed signature: the kernel could not parse it as PKCS#7")]
    MalformedSignature,
    /// EMSGSIZE, or caught before the call.
    #[error(
        "salt longer than {MAX_SALT_SIZE} bytes or signature longer than {MAX_SIGNATURE_SIZE} bytes"
    )]
    TooLarge,
    /// EINVAL on enable.
    #[error(
        "invalid fs-verity parameters: unsupported hash algorithm or block size (kernels before \
         6.3 need block size = page size), or not a regular file"
    )]
    InvalidArgument,
    /// EBADF.
    #[error(
        "the file descriptor is not open for reading (fs-verity needs an O_RDONLY descriptor)"
    )]
    NotReadable,
    /// EROFS.
    #[error("the filesystem is mounted read-only")]
    ReadOnlyFilesystem,
    /// EACCES on enable.
    #[error("permission denied: enabling fs-verity needs write permission on the file")]
    AccessDenied,
    /// EFBIG.
    #[error("file too large for fs-verity")]
    FileTooLarge,
    /// ENOPKG.
    #[error(
        "hash algorithm not available in the kernel's crypto API (load its module, e.g. \
         sha512_generic)"
    )]
    AlgorithmUnavailable,
    /// EBUSY.
    #[error("fs-verity is being enabled on this file by another process right now")]
    Busy,
    /// EISDIR.
    #[error("is a directory: fs-verity applies to regular files only")]
    IsDirectory,
    /// EINTR.
    #[error("interrupted by a signal while building the Merkle tree")]
    Interrupted,
    /// ENODATA from READ_VERITY_METADATA.
    #[error("no such verity metadata: the file is not verity, or has no built-in signature")]
    NoMetadata,
    /// FS_IOC_MEASURE_VERITY answered with something this crate does not know.
    #[error("the kernel reported a digest with unknown algorithm {alg} or bad size {size}")]
    UnexpectedDigest { alg: u16, size: u16 },
    /// The `.fs-verity` keyring is not in /proc/keys.
    #[error(
        "the .fs-verity keyring does not exist: the kernel lacks \
         CONFIG_FS_VERITY_BUILTIN_SIGNATURES"
    )]
    NoKeyring,
    /// EACCES/EPERM on the keyring.
    #[error(
        "not permitted to modify the .fs-verity keyring (needs root; the keyring may also be \
         restricted with keyctl restrict_keyring)"
    )]
    KeyringPermission,
    /// EBADMSG/EINVAL/ENOPKG/EKEYREJECTED from add_key.
    #[error(
        "the kernel rejected the certificate: it must be a DER X.509 certificate with a key type \
         the kernel supports (RSA is safe everywhere)"
    )]
    BadCertificate,
    /// Caught before add_key: the kernel only parses DER.
    #[error("the certificate is PEM; the kernel needs DER (openssl x509 -in CERT -outform der)")]
    CertificateNotDer,
    /// /proc/sys/fs/verity/require_signatures is missing.
    #[error(
        "fs.verity.require_signatures does not exist: the kernel lacks fs-verity built-in \
         signature support (CONFIG_FS_VERITY_BUILTIN_SIGNATURES)"
    )]
    NoSysctl,
    /// EACCES/EPERM writing the sysctl.
    #[error("not permitted to change fs.verity.require_signatures (needs root)")]
    SysctlPermission,
    /// A kernel answer that does not parse (e.g. /proc/keys or KEYCTL_DESCRIBE output).
    #[error("unexpected kernel output from {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
    /// Any errno without a specific meaning for this call.
    #[error("{op} failed: {source}")]
    Other {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The errno the kernel returned, when this error came from one.
    pub fn errno(&self) -> Option<i32> {
        use Error::*;
        Some(match self {
            FilesystemUnsupported => libc::ENOTTY,
            NotEnabled => libc::EOPNOTSUPP,
            CertNotInKeyring => libc::ENOKEY,
            SignatureRejected => libc::EKEYREJECTED,
            SignatureRequired => libc::EPERM,
            FileBusy => libc::ETXTBSY,
            AlreadyEnabled => libc::EEXIST,
            MalformedSignature => libc::EBADMSG,
            TooLarge => libc::EMSGSIZE,
            InvalidArgument => libc::EINVAL,
            NotReadable => libc::EBADF,
            ReadOnlyFilesystem => libc::EROFS,
            AccessDenied => libc::EACCES,
            FileTooLarge => libc::EFBIG,
            AlgorithmUnavailable => libc::ENOPKG,
            Busy => libc::EBUSY,
            IsDirectory => libc::EISDIR,
            Interrupted => libc::EINTR,
            NoMetadata => libc::ENODATA,
            Other { source, .. } => return source.raw_os_error(),
            UnexpectedDigest { .. }
            | NoKeyring
            | KeyringPermission
            | BadCertificate
            | CertificateNotDer
            | NoSysctl
            | SysctlPermission
            | Unexpected { .. } => return None,
        })
    }

    /// True when the filesystem or kernel cannot do fs-verity at all (ENOTTY/EOPNOTSUPP): the
    /// cases rpm's plugin ignores, and where retrying other files on the same filesystem is
    /// pointless.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::FilesystemUnsupported | Error::NotEnabled)
    }

    /// Mapping for FS_IOC_ENABLE_VERITY (kernel doc, fs/verity/enable.c).
    pub fn from_enable_errno(errno: i32) -> Self {
        match errno {
            libc::ENOTTY => Error::FilesystemUnsupported,
            libc::EOPNOTSUPP => Error::NotEnabled,
            libc::ENOKEY => Error::CertNotInKeyring,
            libc::EKEYREJECTED => Error::SignatureRejected,
            libc::EPERM => Error::SignatureRequired,
            libc::ETXTBSY => Error::FileBusy,
            libc::EEXIST => Error::AlreadyEnabled,
            libc::EBADMSG => Error::MalformedSignature,
            libc::EMSGSIZE => Error::TooLarge,
            libc::EINVAL => Error::InvalidArgument,
            libc::EBADF => Error::NotReadable,
            libc::EROFS => Error::ReadOnlyFilesystem,
            libc::EACCES => Error::AccessDenied,
            libc::EFBIG => Error::FileTooLarge,
            libc::ENOPKG => Error::AlgorithmUnavailable,
            libc::EBUSY => Error::Busy,
            libc::EISDIR => Error::IsDirectory,
            libc::EINTR => Error::Interrupted,
            e => Error::Other {
                op: "FS_IOC_ENABLE_VERITY",
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// Mapping for FS_IOC_MEASURE_VERITY and FS_IOC_READ_VERITY_METADATA. ENOKEY and
    /// EKEYREJECTED show up here because the signature is checked again when a verity file's
    /// info is loaded (first open after boot).
    fn from_query_errno(op: &'static str, errno: i32) -> Self {
        match errno {
            libc::ENOTTY => Error::FilesystemUnsupported,
            libc::EOPNOTSUPP => Error::NotEnabled,
            libc::ENODATA => Error::NoMetadata,
            libc::ENOKEY => Error::CertNotInKeyring,
            libc::EKEYREJECTED => Error::SignatureRejected,
            libc::EBADF => Error::NotReadable,
            libc::EINTR => Error::Interrupted,
            e => Error::Other {
                op,
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// Mapping for add_key/keyctl on the `.fs-verity` keyring.
    fn from_keyring_errno(op: &'static str, errno: i32) -> Self {
        match errno {
            libc::EACCES | libc::EPERM => Error::KeyringPermission,
            libc::EBADMSG | libc::EINVAL | libc::ENOPKG | libc::EKEYREJECTED | libc::ENOKEY
                if op == "add_key" =>
            {
                Error::BadCertificate
            }
            libc::ENOKEY | libc::EKEYREVOKED => Error::NoKeyring,
            e => Error::Other {
                op,
                source: io::Error::from_raw_os_error(e),
            },
        }
    }
}

fn errno_of(e: rustix::io::Errno) -> i32 {
    e.raw_os_error()
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
) -> Result<()> {
    let sig = signature.unwrap_or(&[]);
    if salt.len() > MAX_SALT_SIZE || sig.len() > MAX_SIGNATURE_SIZE {
        return Err(Error::TooLarge);
    }
    let arg = EnableArg {
        version: 1,
        hash_algorithm: u32::from(alg.id()),
        block_size,
        salt_size: salt.len() as u32,
        salt_ptr: if salt.is_empty() {
            0
        } else {
            salt.as_ptr() as u64
        },
        sig_size: sig.len() as u32,
        reserved1: 0,
        sig_ptr: if sig.is_empty() {
            0
        } else {
            sig.as_ptr() as u64
        },
        reserved2: [0; 11],
    };
    // SAFETY: the opcode is FS_IOC_ENABLE_VERITY and EnableArg is its argument struct; the
    // kernel only reads through salt_ptr/sig_ptr, which borrow `salt`/`signature` for the
    // duration of the call, with the sizes given next to them.
    let res = unsafe {
        ioctl::ioctl(
            fd,
            ioctl::Setter::<FS_IOC_ENABLE_VERITY, EnableArg>::new(arg),
        )
    };
    res.map_err(|e| Error::from_enable_errno(errno_of(e)))
}

/// The file's fs-verity digest as the kernel computed it, or `None` when verity is off.
pub fn measure_verity(fd: BorrowedFd<'_>) -> Result<Option<FileDigest>> {
    let mut buf = DigestBuf {
        header: DigestHeader {
            digest_algorithm: 0,
            digest_size: MAX_DIGEST_SIZE as u16,
        },
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY reads `digest_size` (the capacity after the header) and
    // writes at most that many bytes after the header; DigestBuf has exactly that room.
    let res = unsafe {
        ioctl::ioctl(
            fd,
            ioctl::Updater::<FS_IOC_MEASURE_VERITY, DigestBuf>::new(&mut buf),
        )
    };
    match res {
        Ok(()) => {}
        Err(e) if errno_of(e) == libc::ENODATA => return Ok(None),
        Err(e) => {
            return Err(Error::from_query_errno(
                "FS_IOC_MEASURE_VERITY",
                errno_of(e),
            ))
        }
    }
    let DigestHeader {
        digest_algorithm: alg,
        digest_size: size,
    } = buf.header;
    let digest = HashAlgorithm::from_id(u32::from(alg))
        .and_then(|a| FileDigest::new(a, buf.digest.get(..usize::from(size))?));
    digest
        .map(Some)
        .ok_or(Error::UnexpectedDigest { alg, size })
}

/// FS_IOC_READ_VERITY_METADATA with the byte count as output (the rustix patterns drop it).
struct ReadMetadata<'a> {
    arg: ReadMetadataArg,
    _buf: std::marker::PhantomData<&'a mut [u8]>,
}

// SAFETY: the opcode matches ReadMetadataArg; buf_ptr/length describe a live, exclusively
// borrowed buffer (lifetime 'a) that the kernel writes at most `length` bytes into.
unsafe impl Ioctl for ReadMetadata<'_> {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        FS_IOC_READ_VERITY_METADATA
    }

    fn as_ptr(&mut self) -> *mut libc::c_void {
        (&mut self.arg as *mut ReadMetadataArg).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut libc::c_void) -> rustix::io::Result<usize> {
        usize::try_from(out).map_err(|_| rustix::io::Errno::INVAL)
    }
}

/// Read verity metadata like `pread`: up to `buf.len()` bytes from `offset`; 0 at the end.
/// Needs Linux 5.12. [`Error::NoMetadata`] when the file is not verity or, for
/// [`MetadataKind::Signature`], was enabled without a signature.
pub fn read_verity_metadata(
    fd: BorrowedFd<'_>,
    kind: MetadataKind,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize> {
    let req = ReadMetadata {
        arg: ReadMetadataArg {
            metadata_type: kind as u64,
            offset,
            length: buf.len() as u64,
            buf_ptr: buf.as_mut_ptr() as u64,
            reserved: 0,
        },
        _buf: std::marker::PhantomData,
    };
    // SAFETY: see the `Ioctl` impl; `buf` outlives the call.
    let res = unsafe { ioctl::ioctl(fd, req) };
    match res {
        Ok(n) if n <= buf.len() => Ok(n),
        Ok(n) => Err(Error::Unexpected {
            what: "FS_IOC_READ_VERITY_METADATA",
            detail: format!("returned {n} bytes for a {}-byte buffer", buf.len()),
        }),
        Err(e) => Err(Error::from_query_errno(
            "FS_IOC_READ_VERITY_METADATA",
            errno_of(e),
        )),
    }
}

/// Read a whole metadata item, at most `limit` bytes; `None` when there is none.
fn read_metadata_all(
    fd: BorrowedFd<'_>,
    kind: MetadataKind,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = match read_verity_metadata(fd, kind, out.len() as u64, &mut chunk) {
            Ok(n) => n,
            Err(Error::NoMetadata) => return Ok(None),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > limit {
            return Err(Error::Unexpected {
                what: "FS_IOC_READ_VERITY_METADATA",
                detail: format!("metadata larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The built-in signature stored with the file, `None` if it was enabled without one (or is
/// not verity).
pub fn read_signature(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>> {
    read_metadata_all(fd, MetadataKind::Signature, MAX_SIGNATURE_SIZE)
}

/// The 256-byte `fsverity_descriptor` as the kernel stores it (signature fields zeroed), `None`
/// if the file is not verity.
pub fn read_descriptor(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>> {
    read_metadata_all(fd, MetadataKind::Descriptor, 256)
}

/// Open a file read-only for the calls above, with the kernel's verity-specific open errors
/// typed: opening a signed verity file fails with ENOKEY when its cert is not in `.fs-verity`
/// (the keyring is empty after every boot), and with EKEYREJECTED/EBADMSG/EPERM when the stored
/// signature no longer verifies or `require_signatures=1` meets an unsigned file.
pub fn open_readonly(path: &Path) -> Result<fs::File> {
    fs::File::open(path).map_err(map_open_error)
}

/// The [`open_readonly`] mapping, for callers opening files their own way (O_NOFOLLOW, openat).
pub fn map_open_error(err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::ENOKEY) => Error::CertNotInKeyring,
        Some(libc::EKEYREJECTED) => Error::SignatureRejected,
        Some(libc::EBADMSG) => Error::MalformedSignature,
        Some(libc::EPERM) => Error::SignatureRequired,
        _ => Error::Other {
            op: "open",
            source: err,
        },
    }
}

/// Whether fs-verity is on for the file: statx's STATX_ATTR_VERITY (5.5+), else the inode
/// flag from FS_IOC_GETFLAGS. Does not open the verity info, so it works when the cert is
/// missing (where measure would fail with ENOKEY).
pub fn is_verity(fd: BorrowedFd<'_>) -> Result<bool> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags};
    if let Ok(st) = statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS) {
        if st.stx_attributes_mask.contains(StatxAttributes::VERITY) {
            return Ok(st.stx_attributes.contains(StatxAttributes::VERITY));
        }
    }
    // SAFETY: FS_IOC_GETFLAGS writes one int; Getter provides a c_int-sized output slot.
    let res = unsafe { ioctl::ioctl(fd, ioctl::Getter::<FS_IOC_GETFLAGS, libc::c_int>::new()) };
    match res {
        Ok(flags) => Ok(flags as u32 & FS_VERITY_FL != 0),
        // No inode flags at all (tmpfs before 6.0, procfs...): cannot be verity either.
        Err(e) if errno_of(e) == libc::ENOTTY || errno_of(e) == libc::EOPNOTSUPP => Ok(false),
        Err(e) => Err(Error::Other {
            op: "FS_IOC_GETFLAGS",
            source: io::Error::from_raw_os_error(errno_of(e)),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only file mapping (input of `digest` and `sign-file`)
// ---------------------------------------------------------------------------------------------

/// A whole regular file mapped read-only, so that hashing threads read the page cache directly
/// instead of one thread copying every byte into a buffer first (that copy was a quarter of
/// the CPU time of a parallel digest).
///
/// A mapping has one hazard `read()` does not: touching a page the file no longer has (it was
/// truncated meanwhile) or cannot read (I/O error, a corrupt fs-verity block) raises SIGBUS.
/// [`MappedFile::populate`] faults pages in with `MADV_POPULATE_READ`, which reports those
/// cases as errors instead, so callers populate each range just before reading it; only a
/// truncation in the microseconds between the two can still kill the process. Callers that
/// expect I/O errors (auditing verity files) should read instead.
///
/// Crate-private: the slice it hands out can change under a shared mapping or fault, which a
/// safe public API could not promise against; only the digest code, which checks, uses it.
pub(crate) struct MappedFile {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; `&MappedFile` only hands out shared slices.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps the first `len` bytes (the size the caller saw in its metadata; not zero).
    pub(crate) fn map(file: &fs::File, len: usize) -> io::Result<MappedFile> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh shared read-only mapping chosen by the kernel aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                file,
                0,
            )
        }
        .map_err(io::Error::from)?;
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(MappedFile { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes alive as long as `self`; nothing in this
        // process writes it (a truncation by another process is the SIGBUS case described on
        // the type, not undefined behaviour of this slice's contents).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Makes the pages under `part` (a sub-slice of [`MappedFile::bytes`]) present, so reading
    /// them cannot fault. Kernels before 5.14 lack `MADV_POPULATE_READ`; there pages fault in on
    /// first touch as with any mapping.
    pub(crate) fn populate(&self, part: &[u8]) -> io::Result<()> {
        let base = self.ptr.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if part.is_empty() || start < base || start + part.len() > base + self.len {
            return Ok(());
        }
        let page = rustix::param::page_size();
        let aligned = start & !(page - 1);
        let len = start + part.len() - aligned;
        // SAFETY: the range lies inside our own mapping; populating changes no contents.
        let r = unsafe {
            rustix::mm::madvise(
                aligned as *mut libc::c_void,
                len,
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
        match r {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) => Ok(()),
            // What SIGBUS would have been: past the end of a file that shrank, or an I/O
            // error; the caller tells which from the file's size.
            Err(rustix::io::Errno::FAULT) => {
                Err(io::Error::other("the file's pages could not be read"))
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

impl MappedFile {
    /// Drops this process's page-table entries for `part` once it has been read, so resident
    /// memory stays at one window instead of growing to the file size (the page cache keeps
    /// the data; nothing is written back, the mapping is read-only).
    pub(crate) fn release(&self, part: &[u8]) {
        let base = self.ptr.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if part.is_empty() || start < base || start + part.len() > base + self.len {
            return;
        }
        let page = rustix::param::page_size();
        // Only whole pages inside `part`: a page shared with the next part stays mapped.
        let first = (start + page - 1) & !(page - 1);
        let end = (start + part.len()) & !(page - 1);
        if end <= first {
            return;
        }
        // SAFETY: the range lies inside our own read-only mapping; later reads fault the
        // same file pages back in.
        let _ = unsafe {
            rustix::mm::madvise(
                first as *mut libc::c_void,
                end - first,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; no slice of it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.len)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Keyring
// ---------------------------------------------------------------------------------------------

/// A key serial number (`key_serial_t`).
pub type KeySerial = i32;

const KEYCTL_DESCRIBE: libc::c_int = 6;
const KEYCTL_READ: libc::c_int = 11;
/// Bound on the keyring listing: far above any real `.fs-verity` keyring.
const MAX_KEYS: usize = 65536;

/// One key linked into the keyring, as KEYCTL_DESCRIBE reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringKey {
    pub id: KeySerial,
    /// `asymmetric` for certificates.
    pub key_type: String,
    pub uid: u32,
    pub gid: u32,
    pub perm: u32,
    /// For X.509 certs the kernel derives it: `<subject CN or O>: <subject key id hex>`.
    pub description: String,
}

/// Find the `.fs-verity` keyring's serial in /proc/keys. That is how keyutils resolves
/// `%keyring:.fs-verity` too: the keyring is not linked into any process keyring, so
/// request_key/KEYCTL_SEARCH cannot find it.
pub fn fs_verity_keyring() -> Result<KeySerial> {
    let text = match fs::read_to_string("/proc/keys") {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Unexpected {
                what: "/proc/keys",
                detail: "missing (kernel without CONFIG_KEYS, or /proc not mounted)".into(),
            })
        }
        Err(e) => {
            return Err(Error::Other {
                op: "read /proc/keys",
                source: e,
            })
        }
    };
    find_keyring_in_proc_keys(&text, KEYRING_NAME).ok_or(Error::NoKeyring)
}

/// Parse /proc/keys lines (`id flags usage timeout perm uid gid type description: summary`;
/// the type column is cut to 9 characters) and return the serial of keyring `name`, preferring
/// one owned by root.
fn find_keyring_in_proc_keys(text: &str, name: &str) -> Option<KeySerial> {
    let mut found: Option<(KeySerial, bool)> = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(id), Some(_flags), Some(_usage), Some(_timeout), Some(_perm)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let (Some(uid), Some(_gid), Some(ktype)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if ktype != "keyring" {
            continue;
        }
        let rest: Vec<&str> = fields.collect();
        let desc = rest.join(" ");
        let desc_name = desc.split(':').next().unwrap_or("");
        if desc_name != name {
            continue;
        }
        let Ok(id) = u32::from_str_radix(id, 16) else {
            continue;
        };
        let root = uid == "0";
        if found.is_none_or(|(_, was_root)| root && !was_root) {
            found = Some((id as KeySerial, root));
        }
    }
    found.map(|(id, _)| id)
}

fn keyctl(cmd: libc::c_int, id: KeySerial, buf: &mut [u8]) -> std::result::Result<usize, i32> {
    // SAFETY: KEYCTL_READ / KEYCTL_DESCRIBE write at most `buf.len()` bytes into `buf` and
    // return the full size of the data (which may exceed the buffer).
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            cmd as libc::c_long,
            id as libc::c_long,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as usize)
    }
}

/// Call a size-returning keyctl until the buffer is big enough, bounded by `limit`.
fn keyctl_alloc(
    cmd: libc::c_int,
    id: KeySerial,
    op: &'static str,
    limit: usize,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = keyctl(cmd, id, &mut buf).map_err(|e| Error::from_keyring_errno(op, e))?;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if n > limit {
            return Err(Error::Unexpected {
                what: op,
                detail: format!("{n} bytes, more than the {limit}-byte bound"),
            });
        }
        buf.resize(n, 0);
    }
}

/// Add a DER X.509 certificate to the `.fs-verity` keyring (what `keyctl padd asymmetric ''
/// %keyring:.fs-verity < cert.der` does). Returns the key's serial; adding the same cert twice
/// returns the same key.
pub fn add_certificate(der: &[u8]) -> Result<KeySerial> {
    add_certificate_to(fs_verity_keyring()?, der)
}

/// [`add_certificate`] into a given keyring.
pub fn add_certificate_to(keyring: KeySerial, der: &[u8]) -> Result<KeySerial> {
    if der.starts_with(b"-----BEGIN") {
        return Err(Error::CertificateNotDer);
    }
    // The kernel caps key payloads at 1 MiB; a cert is a few KiB.
    if der.is_empty() || der.len() > 1 << 20 {
        return Err(Error::BadCertificate);
    }
    let key_type: &CStr = c"asymmetric";
    // An empty description makes the asymmetric key type derive one from the certificate.
    let description: &CStr = c"";
    // SAFETY: add_key reads two NUL-terminated strings and `der.len()` bytes of payload, all of
    // which live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            key_type.as_ptr(),
            description.as_ptr(),
            der.as_ptr(),
            der.len(),
            keyring as libc::c_long,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return Err(Error::from_keyring_errno("add_key", e));
    }
    Ok(r as KeySerial)
}

/// The keys linked into the `.fs-verity` keyring.
pub fn list_keyring() -> Result<Vec<KeyringKey>> {
    list_keyring_of(fs_verity_keyring()?)
}

/// [`list_keyring`] for a given keyring.
pub fn list_keyring_of(keyring: KeySerial) -> Result<Vec<KeyringKey>> {
    let raw = keyctl_alloc(KEYCTL_READ, keyring, "KEYCTL_READ", MAX_KEYS * 4)?;
    let mut keys = Vec::new();
    for chunk in raw.chunks_exact(4) {
        let id = KeySerial::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        match describe_key(id) {
            Ok(k) => keys.push(k),
            // Unlinked or revoked between the two calls, or not viewable: skip it.
            Err(Error::NoKeyring) | Err(Error::KeyringPermission) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(keys)
}

/// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`.
pub fn describe_key(id: KeySerial) -> Result<KeyringKey> {
    let raw = keyctl_alloc(KEYCTL_DESCRIBE, id, "KEYCTL_DESCRIBE", 64 * 1024)?;
    parse_description(id, &raw)
}

fn parse_description(id: KeySerial, raw: &[u8]) -> Result<KeyringKey> {
    let bad = |detail: &str| Error::Unexpected {
        what: "KEYCTL_DESCRIBE",
        detail: detail.to_string(),
    };
    let text = raw.strip_suffix(b"\0").unwrap_or(raw);
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.splitn(5, ';');
    let (Some(t), Some(uid), Some(gid), Some(perm), Some(desc)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad(text));
    };
    Ok(KeyringKey {
        id,
        key_type: t.to_string(),
        uid: uid.parse().map_err(|_| bad(text))?,
        gid: gid.parse().map_err(|_| bad(text))?,
        perm: u32::from_str_radix(perm, 16).map_err(|_| bad(text))?,
        description: desc.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// sysctl and support
// ---------------------------------------------------------------------------------------------

/// `fs.verity.require_signatures`: when on, every verity file must carry a valid built-in
/// signature, checked at enable and whenever a file's verity info is loaded.
pub fn require_signatures() -> Result<bool> {
    read_require_signatures(Path::new(REQUIRE_SIGNATURES_SYSCTL))
}

fn read_require_signatures(path: &Path) -> Result<bool> {
    match fs::read_to_string(path) {
        Ok(s) => match s.trim() {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(Error::Unexpected {
                what: "fs.verity.require_signatures",
                detail: format!("value {other:?}"),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoSysctl),
        Err(e) => Err(Error::Other {
            op: "read fs.verity.require_signatures",
            source: e,
        }),
    }
}

/// Set `fs.verity.require_signatures`. Set it early at boot: it only applies to files whose
/// verity info is loaded afterwards.
pub fn set_require_signatures(on: bool) -> Result<()> {
    let path = Path::new(REQUIRE_SIGNATURES_SYSCTL);
    match fs::write(path, if on { "1\n" } else { "0\n" }) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoSysctl),
        Err(e)
            if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            Err(Error::SysctlPermission)
        }
        Err(e) => Err(Error::Other {
            op: "write fs.verity.require_signatures",
            source: e,
        }),
    }
}

/// What the running kernel offers, without touching any file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    /// /proc/sys/fs/verity exists: fs-verity with built-in signatures is compiled in.
    /// (A kernel with CONFIG_FS_VERITY but no built-in signatures cannot be told apart from
    /// one without fs-verity here; only an enable attempt says.)
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
    let builtin_signatures = Path::new("/proc/sys/fs/verity").is_dir();
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

/// Convenience for callers holding a `File`.
pub fn enable_verity_file(
    file: &impl AsFd,
    alg: HashAlgorithm,
    block_size: u32,
    salt: &[u8],
    signature: Option<&[u8]>,
) -> Result<()> {
    enable_verity(file.as_fd(), alg, block_size, salt, signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};
    use std::os::fd::AsFd;

    #[test]
    fn struct_layouts_match_uapi() {
        assert_eq!(size_of::<EnableArg>(), 128);
        assert_eq!(offset_of!(EnableArg, version), 0);
        assert_eq!(offset_of!(EnableArg, hash_algorithm), 4);
        assert_eq!(offset_of!(EnableArg, block_size), 8);
        assert_eq!(offset_of!(EnableArg, salt_size), 12);
        assert_eq!(offset_of!(EnableArg, salt_ptr), 16);
        assert_eq!(offset_of!(EnableArg, sig_size), 24);
        assert_eq!(offset_of!(EnableArg, reserved1), 28);
        assert_eq!(offset_of!(EnableArg, sig_ptr), 32);
        assert_eq!(offset_of!(EnableArg, reserved2), 40);
        assert_eq!(size_of::<DigestHeader>(), 4);
        assert_eq!(offset_of!(DigestBuf, digest), 4);
        assert_eq!(size_of::<DigestBuf>(), 4 + 64);
        assert_eq!(size_of::<ReadMetadataArg>(), 40);
        assert_eq!(offset_of!(ReadMetadataArg, offset), 8);
        assert_eq!(offset_of!(ReadMetadataArg, length), 16);
        assert_eq!(offset_of!(ReadMetadataArg, buf_ptr), 24);
        assert_eq!(offset_of!(ReadMetadataArg, reserved), 32);
    }

    #[test]
    fn opcodes_match_uapi() {
        assert_eq!(FS_IOC_ENABLE_VERITY as u64, 0x4080_6685);
        assert_eq!(FS_IOC_MEASURE_VERITY as u64, 0xC004_6686);
        assert_eq!(FS_IOC_READ_VERITY_METADATA as u64, 0xC028_6687);
        assert_eq!(FS_IOC_GETFLAGS as u64, 0x8008_6601);
    }

    #[test]
    fn enable_errnos_map_to_distinct_variants_and_back() {
        let errnos = [
            libc::ENOTTY,
            libc::EOPNOTSUPP,
            libc::ENOKEY,
            libc::EKEYREJECTED,
            libc::EPERM,
            libc::ETXTBSY,
            libc::EEXIST,
            libc::EBADMSG,
            libc::EMSGSIZE,
            libc::EINVAL,
            libc::EBADF,
            libc::EROFS,
            libc::EACCES,
            libc::EFBIG,
            libc::ENOPKG,
            libc::EBUSY,
            libc::EISDIR,
            libc::EINTR,
            libc::EIO,
        ];
        let mut messages = std::collections::HashSet::new();
        for e in errnos {
            let err = Error::from_enable_errno(e);
            assert_eq!(err.errno(), Some(e), "{err}");
            assert!(
                messages.insert(err.to_string()),
                "duplicate message for {e}"
            );
        }
        assert!(matches!(
            Error::from_enable_errno(libc::ENOKEY),
            Error::CertNotInKeyring
        ));
        assert!(matches!(
            Error::from_enable_errno(libc::EKEYREJECTED),
            Error::SignatureRejected
        ));
        assert!(Error::from_enable_errno(libc::EOPNOTSUPP)
            .to_string()
            .contains("tune2fs -O verity"));
        assert!(Error::from_enable_errno(libc::EIO)
            .to_string()
            .starts_with("FS_IOC_ENABLE_VERITY failed"));
        assert!(Error::from_enable_errno(libc::ENOTTY).is_unsupported());
        assert!(!Error::from_enable_errno(libc::EPERM).is_unsupported());
    }

    #[test]
    fn keyring_errnos_depend_on_the_call() {
        assert!(matches!(
            Error::from_keyring_errno("add_key", libc::EBADMSG),
            Error::BadCertificate
        ));
        assert!(matches!(
            Error::from_keyring_errno("add_key", libc::EACCES),
            Error::KeyringPermission
        ));
        assert!(matches!(
            Error::from_keyring_errno("KEYCTL_READ", libc::ENOKEY),
            Error::NoKeyring
        ));
    }

    #[test]
    fn finds_keyring_in_proc_keys() {
        let text = "\
0b2ee0fa I--Q---     1 perm 1f3f0000     0 65534 keyring   _uid_ses.0: 1
1e35e7b2 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: empty
2c0d1f3a I------     1 perm 3f010000     0     0 asymmetri fsverity test: 1a2b3c: X509.rsa 1a2b3c []
3e0e7c61 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity-other: 1
garbage
";
        assert_eq!(
            find_keyring_in_proc_keys(text, ".fs-verity"),
            Some(0x1e35e7b2)
        );
        assert_eq!(find_keyring_in_proc_keys(text, ".ima"), None);
        // A non-root keyring of the same name loses against root's.
        let text2 = "\
00000010 I------     1 perm 1f0b0000  1000  1000 keyring   .fs-verity: 1
00000020 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: 1
";
        assert_eq!(find_keyring_in_proc_keys(text2, ".fs-verity"), Some(0x20));
    }

    #[test]
    fn parses_key_description() {
        let k = parse_description(7, b"asymmetric;0;0;3f010000;fsverity test: 1a2b;c\0").unwrap();
        assert_eq!(k.key_type, "asymmetric");
        assert_eq!(k.perm, 0x3f01_0000);
        assert_eq!(k.description, "fsverity test: 1a2b;c");
        assert!(parse_description(7, b"asymmetric;0;0").is_err());
        assert!(parse_description(7, b"a;x;0;0;d").is_err());
    }

    #[test]
    fn pem_certificate_is_refused_before_the_syscall() {
        assert!(matches!(
            add_certificate_to(0, b"-----BEGIN CERTIFICATE-----\n"),
            Err(Error::CertificateNotDer)
        ));
    }

    #[test]
    fn oversized_inputs_are_refused_before_the_syscall() {
        let f = tempfile::tempfile().unwrap();
        let big = vec![0u8; MAX_SIGNATURE_SIZE + 1];
        assert!(matches!(
            enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[], Some(&big)),
            Err(Error::TooLarge)
        ));
        assert!(matches!(
            enable_verity(f.as_fd(), HashAlgorithm::Sha256, 4096, &[0; 33], None),
            Err(Error::TooLarge)
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
                Err(Error::FilesystemUnsupported) | Err(Error::NotEnabled) | Ok(None)
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
        assert!(matches!(err, Error::FilesystemUnsupported), "{err:?}");
        assert_eq!(err.to_string(), "filesystem does not support fs-verity");
    }

    #[test]
    fn kernel_support_is_consistent() {
        let s = kernel_support();
        assert_eq!(s.builtin_signatures, s.require_signatures.is_some());
        if !s.builtin_signatures {
            assert!(matches!(require_signatures(), Err(Error::NoSysctl)));
        }
    }
}
