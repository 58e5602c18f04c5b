//! One error type per kernel operation.
//!
//! The same errno means different things for different calls (EPERM on enable is
//! `require_signatures`, EPERM on the keyring is a missing privilege), and rpm's plugin shows
//! how unhelpful a bare "Operation not permitted" is; so each operation gets its own enum,
//! holding only the variants that call can produce, each with a message in the user's terms.
//! `errno()` keeps the raw value for reports and tests. Variants that several operations share
//! keep the same name and message everywhere, so a user reads one text for one cause.

use std::io;

use super::MAX_SIGNATURE_SIZE;
use crate::params::MAX_SALT_SIZE;

const FILESYSTEM_UNSUPPORTED: &str = "filesystem does not support fs-verity";
const NOT_ENABLED: &str = "fs-verity not enabled: kernel lacks CONFIG_FS_VERITY or the \
                           filesystem's verity feature is off (tune2fs -O verity)";
const CERT_NOT_IN_KEYRING: &str = "the signing certificate is not in the .fs-verity keyring";
const SIGNATURE_REJECTED: &str = "signature does not match the file's content";
const SIGNATURE_REQUIRED: &str = "not permitted: fs.verity.require_signatures=1 and no \
                                  signature was given, or the file is append-only";
const MALFORMED_SIGNATURE: &str = "malformed signature: the kernel could not parse it as PKCS#7";
const NOT_READABLE: &str =
    "the file descriptor is not open for reading (fs-verity needs an O_RDONLY descriptor)";
const INTERRUPTED: &str = "interrupted by a signal while building the Merkle tree";
const UNEXPECTED: &str = "unexpected kernel output from";

/// Why FS_IOC_ENABLE_VERITY failed ([`enable_verity`](super::enable_verity)). Nothing changed
/// on the file in any of these cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnableError {
    /// ENOTTY: the filesystem has no fs-verity support at all (tmpfs, xfs, nfs...).
    #[error("{FILESYSTEM_UNSUPPORTED}")]
    FilesystemUnsupported,
    /// EOPNOTSUPP.
    #[error("{NOT_ENABLED}")]
    NotEnabled,
    /// ENOKEY.
    #[error("{CERT_NOT_IN_KEYRING}")]
    CertNotInKeyring,
    /// EKEYREJECTED.
    #[error("{SIGNATURE_REJECTED}")]
    SignatureRejected,
    /// EPERM.
    #[error("{SIGNATURE_REQUIRED}")]
    SignatureRequired,
    /// ETXTBSY.
    #[error(
        "the file is open for writing (by this or another process, or through a writable \
         mapping); fs-verity can only be enabled when there are no writers"
    )]
    FileBusy,
    /// EEXIST.
    #[error("fs-verity is already enabled on this file")]
    AlreadyEnabled,
    /// EBADMSG.
    #[error("{MALFORMED_SIGNATURE}")]
    MalformedSignature,
    /// EMSGSIZE, or caught before the call.
    #[error(
        "salt longer than {MAX_SALT_SIZE} bytes or signature longer than {MAX_SIGNATURE_SIZE} bytes"
    )]
    TooLarge,
    /// EINVAL.
    #[error(
        "invalid fs-verity parameters: unsupported hash algorithm or block size (kernels before \
         6.3 need block size = page size), or not a regular file"
    )]
    InvalidArgument,
    /// EBADF.
    #[error("{NOT_READABLE}")]
    NotReadable,
    /// EROFS.
    #[error("the filesystem is mounted read-only")]
    ReadOnlyFilesystem,
    /// EACCES.
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
    #[error("{INTERRUPTED}")]
    Interrupted,
    /// Any errno without a specific meaning for this call.
    #[error("FS_IOC_ENABLE_VERITY failed: {source}")]
    Other { source: io::Error },
}

impl EnableError {
    /// The mapping for FS_IOC_ENABLE_VERITY (kernel doc, fs/verity/enable.c).
    pub fn from_errno(errno: i32) -> Self {
        use EnableError::*;
        match errno {
            libc::ENOTTY => FilesystemUnsupported,
            libc::EOPNOTSUPP => NotEnabled,
            libc::ENOKEY => CertNotInKeyring,
            libc::EKEYREJECTED => SignatureRejected,
            libc::EPERM => SignatureRequired,
            libc::ETXTBSY => FileBusy,
            libc::EEXIST => AlreadyEnabled,
            libc::EBADMSG => MalformedSignature,
            libc::EMSGSIZE => TooLarge,
            libc::EINVAL => InvalidArgument,
            libc::EBADF => NotReadable,
            libc::EROFS => ReadOnlyFilesystem,
            libc::EACCES => AccessDenied,
            libc::EFBIG => FileTooLarge,
            libc::ENOPKG => AlgorithmUnavailable,
            libc::EBUSY => Busy,
            libc::EISDIR => IsDirectory,
            libc::EINTR => Interrupted,
            e => Other {
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// The errno the kernel returned (EMSGSIZE also when the size check before the call
    /// refused).
    pub fn errno(&self) -> Option<i32> {
        use EnableError::*;
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
            Other { source } => return source.raw_os_error(),
        })
    }

    /// True when the filesystem or kernel cannot do fs-verity at all (ENOTTY/EOPNOTSUPP): the
    /// cases rpm's plugin ignores, and where retrying other files on the same filesystem is
    /// pointless.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            EnableError::FilesystemUnsupported | EnableError::NotEnabled
        )
    }
}

/// Why FS_IOC_MEASURE_VERITY or FS_IOC_READ_VERITY_METADATA failed ([`measure_verity`],
/// [`read_signature`], [`read_descriptor`], [`read_verity_metadata`]). One type for both,
/// because both load the file's verity info and so fail the same ways, and callers ask both
/// about the same file.
///
/// [`measure_verity`]: super::measure_verity
/// [`read_signature`]: super::read_signature
/// [`read_descriptor`]: super::read_descriptor
/// [`read_verity_metadata`]: super::read_verity_metadata
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// ENOTTY.
    #[error("{FILESYSTEM_UNSUPPORTED}")]
    FilesystemUnsupported,
    /// EOPNOTSUPP.
    #[error("{NOT_ENABLED}")]
    NotEnabled,
    /// ENODATA from READ_VERITY_METADATA (MEASURE answers "not verity" with `Ok(None)`).
    #[error("no such verity metadata: the file is not verity, or has no built-in signature")]
    NoMetadata,
    /// ENOKEY: the signature is checked again when a verity file's info is loaded (first use
    /// after boot), so a cert missing from the keyring shows up here too.
    #[error("{CERT_NOT_IN_KEYRING}")]
    CertNotInKeyring,
    /// EKEYREJECTED, for the same reason as ENOKEY.
    #[error("{SIGNATURE_REJECTED}")]
    SignatureRejected,
    /// EBADF.
    #[error("{NOT_READABLE}")]
    NotReadable,
    /// EINTR.
    #[error("{INTERRUPTED}")]
    Interrupted,
    /// FS_IOC_MEASURE_VERITY answered with something this crate does not know.
    #[error("the kernel reported a digest with unknown algorithm {alg} or bad size {size}")]
    UnexpectedDigest { alg: u16, size: u16 },
    /// A kernel answer that does not fit the request.
    #[error("{UNEXPECTED} {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
    /// Any errno without a specific meaning for this call.
    #[error("{op} failed: {source}")]
    Other {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl MeasureError {
    /// The mapping for FS_IOC_MEASURE_VERITY and FS_IOC_READ_VERITY_METADATA (`op` names the
    /// call in [`MeasureError::Other`]).
    pub(crate) fn from_errno(op: &'static str, errno: i32) -> Self {
        use MeasureError::*;
        match errno {
            libc::ENOTTY => FilesystemUnsupported,
            libc::EOPNOTSUPP => NotEnabled,
            libc::ENODATA => NoMetadata,
            libc::ENOKEY => CertNotInKeyring,
            libc::EKEYREJECTED => SignatureRejected,
            libc::EBADF => NotReadable,
            libc::EINTR => Interrupted,
            e => Other {
                op,
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// The errno the kernel returned, when this error came from one.
    pub fn errno(&self) -> Option<i32> {
        use MeasureError::*;
        Some(match self {
            FilesystemUnsupported => libc::ENOTTY,
            NotEnabled => libc::EOPNOTSUPP,
            NoMetadata => libc::ENODATA,
            CertNotInKeyring => libc::ENOKEY,
            SignatureRejected => libc::EKEYREJECTED,
            NotReadable => libc::EBADF,
            Interrupted => libc::EINTR,
            Other { source, .. } => return source.raw_os_error(),
            UnexpectedDigest { .. } | Unexpected { .. } => return None,
        })
    }

    /// True when the filesystem or kernel cannot do fs-verity at all (ENOTTY/EOPNOTSUPP).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            MeasureError::FilesystemUnsupported | MeasureError::NotEnabled
        )
    }
}

/// Why opening a file failed, with the errnos only fs-verity produces on open typed
/// ([`open_readonly`](super::open_readonly), [`map_open_error`](super::map_open_error)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// ENOKEY: a signed verity file whose cert is not in `.fs-verity` (empty after every boot).
    #[error("{CERT_NOT_IN_KEYRING}")]
    CertNotInKeyring,
    /// EKEYREJECTED: the stored signature no longer verifies.
    #[error("{SIGNATURE_REJECTED}")]
    SignatureRejected,
    /// EBADMSG: the stored signature does not parse.
    #[error("{MALFORMED_SIGNATURE}")]
    MalformedSignature,
    /// EPERM: `require_signatures=1` met an unsigned verity file.
    #[error("{SIGNATURE_REQUIRED}")]
    SignatureRequired,
    /// Any other open error, as the OS reported it.
    #[error("open failed: {source}")]
    Other { source: io::Error },
}

impl OpenError {
    /// The mapping for open(2) of a possibly-verity file.
    pub(crate) fn from_io(err: io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::ENOKEY) => OpenError::CertNotInKeyring,
            Some(libc::EKEYREJECTED) => OpenError::SignatureRejected,
            Some(libc::EBADMSG) => OpenError::MalformedSignature,
            Some(libc::EPERM) => OpenError::SignatureRequired,
            _ => OpenError::Other { source: err },
        }
    }

    /// The errno the kernel returned, when this error came from one.
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            OpenError::CertNotInKeyring => libc::ENOKEY,
            OpenError::SignatureRejected => libc::EKEYREJECTED,
            OpenError::MalformedSignature => libc::EBADMSG,
            OpenError::SignatureRequired => libc::EPERM,
            OpenError::Other { source } => return source.raw_os_error(),
        })
    }
}

/// Why [`is_verity`](super::is_verity) could not tell.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IsVerityError {
    /// FS_IOC_GETFLAGS failed with something other than "no inode flags here".
    #[error("FS_IOC_GETFLAGS failed: {source}")]
    Other { source: io::Error },
}

impl IsVerityError {
    /// The errno the kernel returned.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IsVerityError::Other { source } => source.raw_os_error(),
        }
    }
}

/// Why a `.fs-verity` keyring operation failed ([`fs_verity_keyring`], [`add_certificate`],
/// [`list_keyring`], [`describe_key`] and their `_to`/`_of` forms).
///
/// [`fs_verity_keyring`]: super::fs_verity_keyring
/// [`add_certificate`]: super::add_certificate
/// [`list_keyring`]: super::list_keyring
/// [`describe_key`]: super::describe_key
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The `.fs-verity` keyring is not in /proc/keys, or the key went away (ENOKEY/EKEYREVOKED).
    #[error(
        "the .fs-verity keyring does not exist: the kernel lacks \
         CONFIG_FS_VERITY_BUILTIN_SIGNATURES"
    )]
    NoKeyring,
    /// EACCES/EPERM.
    #[error(
        "not permitted to modify the .fs-verity keyring (needs root; the keyring may also be \
         restricted with keyctl restrict_keyring)"
    )]
    KeyringPermission,
    /// ENOENT/ENOPKG from add_key: the certificate parsed, but the kernel has no
    /// implementation of its public-key algorithm (an EC certificate on a kernel without
    /// CONFIG_CRYPTO_ECDSA, such as Debian's 6.1: ENOENT for P-256/P-384, ENOPKG for P-521).
    #[error(
        "the kernel has no implementation of the certificate's public-key algorithm \
         (for an EC certificate: the kernel lacks CONFIG_CRYPTO_ECDSA)"
    )]
    AlgorithmUnavailable,
    /// EBADMSG/EINVAL/EKEYREJECTED/ENOKEY from add_key.
    #[error(
        "the kernel rejected the certificate: it must be a DER X.509 certificate with a key type \
         the kernel supports (RSA is safe everywhere)"
    )]
    BadCertificate,
    /// Caught before add_key: the kernel only parses DER.
    #[error("the certificate is PEM; the kernel needs DER (openssl x509 -in CERT -outform der)")]
    CertificateNotDer,
    /// A kernel answer that does not parse (/proc/keys, KEYCTL_DESCRIBE output).
    #[error("{UNEXPECTED} {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
    /// Any errno without a specific meaning for this call.
    #[error("{op} failed: {source}")]
    Other {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl KeyringError {
    /// The mapping for add_key(2) of a certificate: there ENOKEY and the parse errors mean the
    /// certificate is unusable, not that the keyring is gone.
    pub(crate) fn from_add_key_errno(errno: i32) -> Self {
        match errno {
            libc::EACCES | libc::EPERM => KeyringError::KeyringPermission,
            libc::EBADMSG | libc::EINVAL | libc::EKEYREJECTED | libc::ENOKEY => {
                KeyringError::BadCertificate
            }
            libc::ENOENT | libc::ENOPKG => KeyringError::AlgorithmUnavailable,
            libc::EKEYREVOKED => KeyringError::NoKeyring,
            e => KeyringError::Other {
                op: "add_key",
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// The mapping for keyctl(2) reads (`op` names the command in [`KeyringError::Other`]).
    pub(crate) fn from_keyctl_errno(op: &'static str, errno: i32) -> Self {
        match errno {
            libc::EACCES | libc::EPERM => KeyringError::KeyringPermission,
            libc::ENOKEY | libc::EKEYREVOKED => KeyringError::NoKeyring,
            e => KeyringError::Other {
                op,
                source: io::Error::from_raw_os_error(e),
            },
        }
    }

    /// The raw errno, for [`KeyringError::Other`] only: the typed variants stand for several
    /// errnos each.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KeyringError::Other { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Why reading or writing `fs.verity.require_signatures` failed ([`require_signatures`],
/// [`set_require_signatures`]).
///
/// [`require_signatures`]: super::require_signatures
/// [`set_require_signatures`]: super::set_require_signatures
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysctlError {
    /// /proc/sys/fs/verity/require_signatures is missing.
    #[error(
        "fs.verity.require_signatures does not exist: the kernel lacks fs-verity built-in \
         signature support (CONFIG_FS_VERITY_BUILTIN_SIGNATURES)"
    )]
    NoSysctl,
    /// EACCES/EPERM writing it.
    #[error("not permitted to change fs.verity.require_signatures (needs root)")]
    SysctlPermission,
    /// A value other than 0 or 1.
    #[error("{UNEXPECTED} {what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
    /// Any other I/O error.
    #[error("{op} failed: {source}")]
    Other {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SysctlError {
    /// The mapping for reading the sysctl file.
    pub(crate) fn from_read_error(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            SysctlError::NoSysctl
        } else {
            SysctlError::Other {
                op: "read fs.verity.require_signatures",
                source: e,
            }
        }
    }

    /// The mapping for writing the sysctl file.
    pub(crate) fn from_write_error(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            SysctlError::NoSysctl
        } else if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
            || e.kind() == io::ErrorKind::PermissionDenied
        {
            SysctlError::SysctlPermission
        } else {
            SysctlError::Other {
                op: "write fs.verity.require_signatures",
                source: e,
            }
        }
    }

    /// The raw errno, for [`SysctlError::Other`] only.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysctlError::Other { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Why KEYCTL_RESTRICT_KEYRING failed ([`restrict_keyring`]).
///
/// [`restrict_keyring`]: super::restrict_keyring
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestrictError {
    /// EEXIST: the kernel allows one restriction per keyring, and it cannot be lifted.
    #[error("the keyring is already restricted (a restriction stays until the next boot)")]
    AlreadyRestricted,
    /// EACCES/EPERM: restricting needs the setattr permission on the keyring (root).
    #[error("not permitted to restrict the keyring (needs root)")]
    Permission,
    /// ENOENT/EINVAL/ENOKEY: the restriction names something this kernel lacks, e.g.
    /// `builtin_and_secondary_trusted` without CONFIG_SECONDARY_TRUSTED_KEYRING.
    #[error("the kernel does not know the restriction `{restriction}`")]
    UnknownRestriction { restriction: String },
    /// ENOKEY/EKEYREVOKED on the keyring itself.
    #[error("the keyring does not exist")]
    NoKeyring,
    /// EDEADLK: the restriction would make the keyring depend on itself (nothing installed).
    #[error("the restriction would refer to the keyring itself")]
    Cycle,
    /// Any other errno.
    #[error("KEYCTL_RESTRICT_KEYRING failed: {source}")]
    Other {
        #[source]
        source: io::Error,
    },
}

impl RestrictError {
    pub(crate) fn from_errno(errno: i32, restriction: &str) -> Self {
        match errno {
            libc::EEXIST => RestrictError::AlreadyRestricted,
            libc::EACCES | libc::EPERM => RestrictError::Permission,
            libc::EDEADLK => RestrictError::Cycle,
            libc::EKEYREVOKED => RestrictError::NoKeyring,
            libc::ENOENT | libc::EINVAL | libc::ENOKEY => RestrictError::UnknownRestriction {
                restriction: restriction.to_string(),
            },
            e => RestrictError::Other {
                source: io::Error::from_raw_os_error(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
        let mut messages = HashSet::new();
        for e in errnos {
            let err = EnableError::from_errno(e);
            assert_eq!(err.errno(), Some(e), "{err}");
            assert!(
                messages.insert(err.to_string()),
                "duplicate message for {e}"
            );
        }
        use EnableError::*;
        assert!(matches!(
            EnableError::from_errno(libc::ENOKEY),
            CertNotInKeyring
        ));
        assert!(matches!(
            EnableError::from_errno(libc::EKEYREJECTED),
            SignatureRejected
        ));
        assert!(matches!(
            EnableError::from_errno(libc::EBADMSG),
            MalformedSignature
        ));
        assert!(matches!(EnableError::from_errno(libc::ETXTBSY), FileBusy));
        assert!(matches!(
            EnableError::from_errno(libc::EEXIST),
            AlreadyEnabled
        ));
        assert!(matches!(
            EnableError::from_errno(libc::EPERM),
            SignatureRequired
        ));
        assert!(matches!(
            EnableError::from_errno(libc::EACCES),
            AccessDenied
        ));
        assert!(EnableError::from_errno(libc::EOPNOTSUPP)
            .to_string()
            .contains("tune2fs -O verity"));
        assert!(EnableError::from_errno(libc::EIO)
            .to_string()
            .starts_with("FS_IOC_ENABLE_VERITY failed"));
        assert!(EnableError::from_errno(libc::ENOTTY).is_unsupported());
        assert!(EnableError::from_errno(libc::EOPNOTSUPP).is_unsupported());
        assert!(!EnableError::from_errno(libc::EPERM).is_unsupported());
    }

    /// The texts the CLI prints and its tests match on; they must not drift in refactors.
    #[test]
    fn messages_are_the_established_texts() {
        assert_eq!(
            EnableError::FilesystemUnsupported.to_string(),
            "filesystem does not support fs-verity"
        );
        assert_eq!(
            EnableError::NotEnabled.to_string(),
            "fs-verity not enabled: kernel lacks CONFIG_FS_VERITY or the filesystem's verity \
             feature is off (tune2fs -O verity)"
        );
        assert_eq!(
            EnableError::TooLarge.to_string(),
            "salt longer than 32 bytes or signature longer than 16128 bytes"
        );
        assert_eq!(
            EnableError::SignatureRequired.to_string(),
            "not permitted: fs.verity.require_signatures=1 and no signature was given, or the \
             file is append-only"
        );
        assert_eq!(
            MeasureError::CertNotInKeyring.to_string(),
            "the signing certificate is not in the .fs-verity keyring"
        );
        assert_eq!(
            OpenError::MalformedSignature.to_string(),
            "malformed signature: the kernel could not parse it as PKCS#7"
        );
        assert_eq!(
            MeasureError::NotReadable.to_string(),
            "the file descriptor is not open for reading (fs-verity needs an O_RDONLY descriptor)"
        );
        assert_eq!(
            KeyringError::Unexpected {
                what: "KEYCTL_DESCRIBE",
                detail: "not UTF-8".into()
            }
            .to_string(),
            "unexpected kernel output from KEYCTL_DESCRIBE: not UTF-8"
        );
        assert_eq!(
            SysctlError::Other {
                op: "read fs.verity.require_signatures",
                source: io::Error::from_raw_os_error(libc::EIO)
            }
            .to_string(),
            format!(
                "read fs.verity.require_signatures failed: {}",
                io::Error::from_raw_os_error(libc::EIO)
            )
        );
    }

    #[test]
    fn shared_causes_read_the_same_in_every_operation() {
        let enable = |e| EnableError::from_errno(e).to_string();
        let measure = |e| MeasureError::from_errno("FS_IOC_MEASURE_VERITY", e).to_string();
        let open = |e| OpenError::from_io(io::Error::from_raw_os_error(e)).to_string();
        for e in [libc::ENOKEY, libc::EKEYREJECTED] {
            assert_eq!(enable(e), measure(e));
            assert_eq!(enable(e), open(e));
        }
        for e in [libc::ENOTTY, libc::EOPNOTSUPP, libc::EBADF, libc::EINTR] {
            assert_eq!(enable(e), measure(e));
        }
        for e in [libc::EBADMSG, libc::EPERM] {
            assert_eq!(enable(e), open(e));
        }
    }

    #[test]
    fn measure_errnos() {
        use MeasureError::*;
        let m = |e| MeasureError::from_errno("FS_IOC_READ_VERITY_METADATA", e);
        assert!(matches!(m(libc::ENODATA), NoMetadata));
        assert!(matches!(m(libc::ENOKEY), CertNotInKeyring));
        assert!(matches!(m(libc::EKEYREJECTED), SignatureRejected));
        assert!(matches!(m(libc::ENOTTY), FilesystemUnsupported));
        assert!(matches!(m(libc::EOPNOTSUPP), NotEnabled));
        assert!(matches!(m(libc::EBADF), NotReadable));
        assert!(matches!(m(libc::EINTR), Interrupted));
        assert!(m(libc::ENOTTY).is_unsupported());
        assert!(!m(libc::ENODATA).is_unsupported());
        for e in [
            libc::ENODATA,
            libc::ENOKEY,
            libc::EKEYREJECTED,
            libc::ENOTTY,
            libc::EOPNOTSUPP,
            libc::EBADF,
            libc::EINTR,
            libc::EIO,
        ] {
            assert_eq!(m(e).errno(), Some(e));
        }
        let other = m(libc::EIO);
        assert!(matches!(
            other,
            Other {
                op: "FS_IOC_READ_VERITY_METADATA",
                ..
            }
        ));
        assert!(other
            .to_string()
            .starts_with("FS_IOC_READ_VERITY_METADATA failed: "));
        assert_eq!(UnexpectedDigest { alg: 9, size: 3 }.errno(), None);
    }

    #[test]
    fn open_errnos() {
        use OpenError::*;
        let o = |e| OpenError::from_io(io::Error::from_raw_os_error(e));
        assert!(matches!(o(libc::ENOKEY), CertNotInKeyring));
        assert!(matches!(o(libc::EKEYREJECTED), SignatureRejected));
        assert!(matches!(o(libc::EBADMSG), MalformedSignature));
        assert!(matches!(o(libc::EPERM), SignatureRequired));
        assert!(matches!(o(libc::ENOENT), Other { .. }));
        for e in [
            libc::ENOKEY,
            libc::EKEYREJECTED,
            libc::EBADMSG,
            libc::EPERM,
            libc::ENOENT,
        ] {
            assert_eq!(o(e).errno(), Some(e));
        }
        assert!(o(libc::ENOENT).to_string().starts_with("open failed: "));
        let not_os = OpenError::from_io(io::Error::other("x"));
        assert!(matches!(not_os, Other { .. }));
        assert_eq!(not_os.errno(), None);
    }

    #[test]
    fn keyring_errnos_depend_on_the_call() {
        use KeyringError::*;
        for e in [
            libc::EBADMSG,
            libc::EINVAL,
            libc::EKEYREJECTED,
            libc::ENOKEY,
        ] {
            assert!(matches!(
                KeyringError::from_add_key_errno(e),
                BadCertificate
            ));
        }
        for e in [libc::ENOENT, libc::ENOPKG] {
            assert!(matches!(
                KeyringError::from_add_key_errno(e),
                AlgorithmUnavailable
            ));
        }
        for e in [libc::EACCES, libc::EPERM] {
            assert!(matches!(
                KeyringError::from_add_key_errno(e),
                KeyringPermission
            ));
            assert!(matches!(
                KeyringError::from_keyctl_errno("KEYCTL_READ", e),
                KeyringPermission
            ));
        }
        assert!(matches!(
            KeyringError::from_add_key_errno(libc::EKEYREVOKED),
            NoKeyring
        ));
        for e in [libc::ENOKEY, libc::EKEYREVOKED] {
            assert!(matches!(
                KeyringError::from_keyctl_errno("KEYCTL_READ", e),
                NoKeyring
            ));
        }
        // ENOKEY means the key is gone for keyctl, but an unusable certificate for add_key.
        assert!(matches!(
            KeyringError::from_keyctl_errno("KEYCTL_DESCRIBE", libc::EINVAL),
            Other {
                op: "KEYCTL_DESCRIBE",
                ..
            }
        ));
        let other = KeyringError::from_add_key_errno(libc::EDQUOT);
        assert!(matches!(other, Other { op: "add_key", .. }));
        assert_eq!(other.errno(), Some(libc::EDQUOT));
        assert_eq!(BadCertificate.errno(), None);
        assert_eq!(CertificateNotDer.errno(), None);
    }

    #[test]
    fn sysctl_errors() {
        use SysctlError::*;
        let os = io::Error::from_raw_os_error;
        assert!(matches!(
            SysctlError::from_read_error(os(libc::ENOENT)),
            NoSysctl
        ));
        assert!(matches!(
            SysctlError::from_write_error(os(libc::ENOENT)),
            NoSysctl
        ));
        for e in [libc::EACCES, libc::EPERM] {
            assert!(matches!(
                SysctlError::from_write_error(os(e)),
                SysctlPermission
            ));
        }
        // Only a refused write is typed as a missing privilege; a refused read stays raw.
        let read = SysctlError::from_read_error(os(libc::EACCES));
        assert!(matches!(read, Other { .. }));
        assert_eq!(read.errno(), Some(libc::EACCES));
        let write = SysctlError::from_write_error(os(libc::EIO));
        assert!(write
            .to_string()
            .starts_with("write fs.verity.require_signatures failed: "));
        assert_eq!(NoSysctl.errno(), None);
    }
}
