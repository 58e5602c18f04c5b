//! The kernel's `.fs-verity` keyring and `fs.verity.require_signatures`: loading certificates,
//! listing keys, flipping the sysctl, and saying in the user's terms why one of them cannot be
//! used.
//!
//! The keyring is empty after every boot, and a signed verity file cannot even be opened
//! (ENOKEY) until its certificate is back, so `load` is what the boot integration (systemd
//! unit, initramfs hooks) runs. It has to be idempotent because it runs from several places
//! (initramfs, then the unit) and by hand: a certificate already there is recognised by the
//! description the kernel would give it ([`Certificate::kernel_key_description`]), since the
//! asymmetric key type cannot be read back.
use std::path::{Path, PathBuf};

use fsverity::linux::{self, KernelSupport, KeySerial, KeyringError, KeyringKey, SysctlError};
use serde::Serialize;
use verity_signing::{CertFileError, Certificate, KeyAlgorithm};

use crate::certs::unusable_reason;
use crate::outcome::named_enum;

/// Why the `.fs-verity` keyring cannot be used. Each message carries its cause in words, so
/// none has a `source()`: a printed chain would only say it again.
#[derive(Debug, thiserror::Error)]
pub enum KeyringAccessError {
    #[error(
        "this kernel has no fs-verity built-in signature support \
         (/proc/sys/fs/verity/require_signatures is missing), so there is no .fs-verity \
         keyring: it needs CONFIG_FS_VERITY=y and CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y"
    )]
    NoKernelSupport,
    /// The keyring is invisible to other users in /proc/keys.
    #[error("the .fs-verity keyring is only visible to root: run this as root")]
    NotRoot,
    #[error("not permitted to use the .fs-verity keyring: run this as root")]
    NotPermitted,
    /// An EC certificate the kernel cannot use: add_key said the algorithm is missing, or
    /// the kernel is known to lack ECDSA.
    #[error("{}", crate::probe::NO_ECDSA)]
    EcdsaUnavailable,
    #[error("{0}")]
    Kernel(KeyringError),
}

impl KeyringAccessError {
    /// Tells the cases apart that the kernel reports alike (a missing keyring and one root
    /// alone can see), from what else can be seen of the kernel and the caller.
    pub fn explain(e: KeyringError, kernel: &KernelSupport, is_root: bool) -> Self {
        match e {
            KeyringError::NoKeyring if !kernel.builtin_signatures => Self::NoKernelSupport,
            KeyringError::NoKeyring if !is_root => Self::NotRoot,
            KeyringError::KeyringPermission if !is_root => Self::NotPermitted,
            e => Self::Kernel(e),
        }
    }

    fn from_kernel(e: KeyringError) -> Self {
        Self::explain(e, &linux::kernel_support(), euid() == Some(0))
    }
}

/// The process's effective uid: the owner of /proc/self is the caller's euid (no libc call
/// needed, so the crate stays free of unsafe code).
pub fn euid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The `.fs-verity` keyring's serial.
pub fn open_keyring() -> Result<KeySerial, KeyringAccessError> {
    linux::fs_verity_keyring().map_err(KeyringAccessError::from_kernel)
}

/// One key in the keyring, as `list` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: KeySerial,
    #[serde(rename = "type")]
    pub key_type: String,
    pub description: String,
    pub uid: u32,
    pub gid: u32,
    /// The permission mask as keyctl prints it (8 hex digits).
    pub perm: String,
}

impl From<KeyringKey> for KeyInfo {
    fn from(k: KeyringKey) -> Self {
        KeyInfo {
            id: k.id,
            key_type: k.key_type,
            description: k.description,
            uid: k.uid,
            gid: k.gid,
            perm: format!("{:08x}", k.perm),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyringListing {
    pub keyring: KeySerial,
    pub keys: Vec<KeyInfo>,
}

pub fn list() -> Result<KeyringListing, KeyringAccessError> {
    let keyring = open_keyring()?;
    let keys = linux::list_keyring_of(keyring).map_err(KeyringAccessError::from_kernel)?;
    Ok(KeyringListing {
        keyring,
        keys: keys.into_iter().map(KeyInfo::from).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------------

named_enum! {
    pub enum LoadStatus {
        Loaded = "loaded",
        AlreadyLoaded = "already-loaded",
        /// A file in the directory that is not a certificate: passed over.
        Skipped = "skipped",
        Error = "error",
    }
}

/// Where the certificates to load come from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Every file of a directory; files that are not certificates are skipped.
    Dir(PathBuf),
    /// These files; one that is not a certificate is an error.
    Files(Vec<PathBuf>),
}

/// One certificate (or one unusable file) and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadEntry {
    pub path: String,
    pub status: LoadStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeySerial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `RSA`, `EC P-256`, ... (none for a file that is not a certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'static str>,
    /// Loaded, but of no use on this kernel (an EC certificate the kernel took without being
    /// able to verify ECDSA signatures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl LoadEntry {
    fn unusable(path: &Path, status: LoadStatus, reason: String) -> Self {
        LoadEntry {
            path: path.display().to_string(),
            status,
            subject: None,
            issuer: None,
            serial: None,
            description: None,
            key_id: None,
            reason: Some(reason),
            key: None,
            warning: None,
        }
    }

    fn certificate(path: &Path, c: &Certificate) -> Self {
        LoadEntry {
            path: path.display().to_string(),
            status: LoadStatus::Loaded,
            subject: Some(c.subject().to_string()),
            issuer: Some(c.issuer().to_string()),
            serial: Some(c.serial_hex()),
            description: Some(c.kernel_key_description()),
            key_id: None,
            reason: None,
            key: Some(crate::probe::key_name(c.key_algorithm())),
            warning: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub keyring: KeySerial,
    pub entries: Vec<LoadEntry>,
    pub loaded: usize,
    pub already_loaded: usize,
    pub skipped: usize,
    pub errors: usize,
    /// Certificates loaded that the kernel cannot use.
    pub warnings: usize,
}

/// A certificate file read for loading: its certificates, or why it has none.
pub struct SourceFile {
    pub path: PathBuf,
    pub certs: Result<Vec<Certificate>, String>,
}

/// Reads the certificate files of `source`. I/O errors (a missing file or directory) are
/// fatal; content that is not a certificate is kept as the file's reason.
pub fn read_source(source: &CertSource) -> Result<Vec<SourceFile>, CertFileError> {
    let paths = match source {
        CertSource::Dir(dir) => verity_signing::cert_dir_files(dir)?,
        CertSource::Files(files) => files.clone(),
    };
    paths
        .into_iter()
        .map(|path| {
            let certs = match verity_signing::read_cert_file(&path) {
                Ok(c) => Ok(c),
                Err(e) => Err(unusable_reason(&e).ok_or(e)?),
            };
            Ok(SourceFile { path, certs })
        })
        .collect()
}

/// Adds every certificate of `files` to the keyring unless it is there already. An unusable
/// file is `skipped` when it came from a directory (`from_dir`), an `error` when named.
pub fn load(files: &[SourceFile], from_dir: bool) -> Result<LoadReport, KeyringAccessError> {
    let keyring = open_keyring()?;
    let mut present: Vec<(String, KeySerial)> = linux::list_keyring_of(keyring)
        .map_err(KeyringAccessError::from_kernel)?
        .into_iter()
        .map(|k| (k.description, k.id))
        .collect();
    let mut entries = Vec::new();
    let ecdsa = crate::probe::kernel_status().ecdsa;
    for f in files {
        match &f.certs {
            Ok(certs) => {
                for c in certs {
                    entries.push(load_one(keyring, &mut present, &f.path, c, ecdsa));
                }
            }
            Err(reason) => {
                let status = if from_dir {
                    LoadStatus::Skipped
                } else {
                    LoadStatus::Error
                };
                entries.push(LoadEntry::unusable(&f.path, status, reason.clone()));
            }
        }
    }
    let count = |s| entries.iter().filter(|e| e.status == s).count();
    Ok(LoadReport {
        keyring,
        loaded: count(LoadStatus::Loaded),
        already_loaded: count(LoadStatus::AlreadyLoaded),
        skipped: count(LoadStatus::Skipped),
        errors: count(LoadStatus::Error),
        warnings: entries.iter().filter(|e| e.warning.is_some()).count(),
        entries,
    })
}

fn load_one(
    keyring: KeySerial,
    present: &mut Vec<(String, KeySerial)>,
    path: &Path,
    c: &Certificate,
    ecdsa: Option<bool>,
) -> LoadEntry {
    let mut e = LoadEntry::certificate(path, c);
    let ec = matches!(c.key_algorithm(), KeyAlgorithm::Ec(_));
    if ec && ecdsa == Some(false) {
        e.warning = Some(format!("loaded, but {}", crate::probe::NO_ECDSA));
    }
    if let Some((_, id)) = present
        .iter()
        .find(|(d, _)| Some(d) == e.description.as_ref())
    {
        e.status = LoadStatus::AlreadyLoaded;
        e.key_id = Some(*id);
        return e;
    }
    match linux::add_certificate_to(keyring, c.der()) {
        Ok(id) => {
            e.key_id = Some(id);
            if let Ok(k) = linux::describe_key(id) {
                e.description = Some(k.description.clone());
                present.push((k.description, id));
            }
        }
        Err(err) => {
            e.status = LoadStatus::Error;
            e.warning = None;
            let err = match err {
                KeyringError::AlgorithmUnavailable if ec => KeyringAccessError::EcdsaUnavailable,
                KeyringError::BadCertificate if ec && ecdsa == Some(false) => {
                    KeyringAccessError::EcdsaUnavailable
                }
                err => KeyringAccessError::from_kernel(err),
            };
            e.reason = Some(err.to_string());
        }
    }
    e
}

// ---------------------------------------------------------------------------------------------
// require-signatures
// ---------------------------------------------------------------------------------------------

/// Why `fs.verity.require_signatures` cannot be read or set, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum SysctlAccessError {
    #[error(
        "this kernel has no fs.verity.require_signatures ({} is missing): it needs \
         CONFIG_FS_VERITY=y and CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y",
        linux::REQUIRE_SIGNATURES_SYSCTL
    )]
    NoSysctl,
    #[error("not permitted to change fs.verity.require_signatures: run this as root")]
    NotPermitted,
    #[error("{0}")]
    Kernel(SysctlError),
}

impl From<SysctlError> for SysctlAccessError {
    fn from(e: SysctlError) -> Self {
        match e {
            SysctlError::NoSysctl => Self::NoSysctl,
            SysctlError::SysctlPermission => Self::NotPermitted,
            e => Self::Kernel(e),
        }
    }
}

/// The words `require-signatures` accepts, on the command line and in its file.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        other => Err(format!("expected on or off (1/0), got {other:?}")),
    }
}

/// The value in `file` (as the boot integration keeps it in /etc/rpm-verity/require-signatures);
/// `None` when the file does not exist, which leaves the sysctl alone.
pub fn setting_from_file(file: &Path) -> Result<Option<bool>, crate::error::SettingFileError> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            parse_on_off(&text)
                .map(Some)
                .map_err(|message| crate::error::SettingFileError::Bad {
                    path: file.to_path_buf(),
                    message,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(crate::error::SettingFileError::Read {
            path: file.to_path_buf(),
            source,
        }),
    }
}

pub fn require_signatures() -> Result<bool, SysctlAccessError> {
    Ok(linux::require_signatures()?)
}

pub fn set_require_signatures(on: bool) -> Result<(), SysctlAccessError> {
    Ok(linux::set_require_signatures(on)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(builtin_signatures: bool) -> KernelSupport {
        KernelSupport {
            builtin_signatures,
            keyring: None,
            require_signatures: None,
            ext4_verity: None,
        }
    }

    #[test]
    fn keyring_errors_in_the_users_terms() {
        let e = KeyringAccessError::explain(KeyringError::NoKeyring, &support(false), true);
        assert!(matches!(e, KeyringAccessError::NoKernelSupport));
        let e = KeyringAccessError::explain(KeyringError::NoKeyring, &support(true), false);
        assert!(matches!(e, KeyringAccessError::NotRoot));
        let e = KeyringAccessError::explain(KeyringError::KeyringPermission, &support(true), false);
        assert!(matches!(e, KeyringAccessError::NotPermitted));
        let e = KeyringAccessError::explain(KeyringError::KeyringPermission, &support(true), true);
        assert!(matches!(e, KeyringAccessError::Kernel(_)));
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn on_off_words() {
        assert_eq!(parse_on_off("on\n"), Ok(true));
        assert_eq!(parse_on_off(" 0 "), Ok(false));
        assert_eq!(parse_on_off("Yes"), Ok(true));
        assert!(parse_on_off("maybe").is_err());
    }

    #[test]
    fn setting_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(setting_from_file(&dir.path().join("absent")).unwrap(), None);
        let f = dir.path().join("require-signatures");
        std::fs::write(&f, "on\n").unwrap();
        assert_eq!(setting_from_file(&f).unwrap(), Some(true));
        std::fs::write(&f, "maybe").unwrap();
        let e = setting_from_file(&f).unwrap_err();
        assert!(format!("{e:#}").contains("expected on or off"), "{e:#}");
        let e = setting_from_file(dir.path()).unwrap_err();
        let msg = crate::outcome::error_chain(&e);
        assert_eq!(msg.matches("Is a directory").count(), 1, "{msg}");
    }

    #[test]
    fn load_status_names() {
        assert_eq!(LoadStatus::AlreadyLoaded.name(), "already-loaded");
    }
}
