//! IPE's securityfs interface (`<securityfs>/ipe/`): reading its state, deploying, updating and
//! activating a policy, with every errno turned into what went wrong and how to fix it.
//!
//! Plain file I/O on securityfs; the one rule the kernel imposes on it is that a policy arrives
//! in a single `write()`, since `new_policy` parses whatever one write hands it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::policy::{sha256_hex, PolicyVersion};

/// Where securityfs is normally mounted.
pub const SECURITYFS: &str = "/sys/kernel/security";

/// What the kernel said to a policy write or activation, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum IpeError {
    #[error(
        "securityfs is not mounted at {0} (mount -t securityfs securityfs /sys/kernel/security)"
    )]
    NoSecurityfs(PathBuf),
    #[error(
        "this kernel has no IPE (the LSM list is {lsm:?}): lockdown needs Linux 6.12 or later \
         with CONFIG_SECURITY_IPE=y, and `ipe` in the lsm= boot parameter if one is given"
    )]
    NoIpe { lsm: String },
    #[error(
        "the policy signer is not enrolled: enrol it as a MOK or in the UEFI db, see \
         docs/lockdown.md (the kernel found no trusted key for the policy's signature: ENOKEY)"
    )]
    SignerNotEnrolled,
    #[error(
        "the kernel refused the policy signature (EKEYREJECTED): the file was changed after \
         it was signed, or the signing key is not the enrolled certificate's"
    )]
    SignatureRejected,
    #[error(
        "the kernel refused the policy as malformed (EBADMSG): not a PKCS#7-signed policy, or \
         its text has a syntax error"
    )]
    Malformed,
    #[error(
        "policy {name} version {ours} is not higher than the deployed version {deployed} \
         (ESTALE): an update must raise policy_version (lockdown policy --version)"
    )]
    Stale {
        name: String,
        ours: PolicyVersion,
        deployed: PolicyVersion,
    },
    #[error(
        "the kernel refused the policy version (EINVAL/ERANGE): policy_version must be \
         MAJOR.MINOR.REVISION, each 0-65535"
    )]
    BadVersion,
    #[error(
        "cannot activate policy {name}: the active policy {active} has a higher version \
         ({active_version}) and IPE forbids going back within a boot (EINVAL); sign this policy \
         with a version of at least {active_version}"
    )]
    Rollback {
        name: String,
        active: String,
        active_version: String,
    },
    #[error(
        "not permitted to {op} (EPERM/EACCES): it needs CAP_MAC_ADMIN (run as root, outside \
         a container)"
    )]
    Permission { op: &'static str },
    #[error("the kernel could not take a policy this large ({0} bytes; ENOMEM)")]
    TooLarge(usize),
    #[error("the kernel took {written} of the {len} bytes of the policy in one write")]
    ShortWrite { written: usize, len: usize },
    #[error("{op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

/// A policy the kernel holds, as `ipe/policies/NAME/` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DeployedPolicy {
    pub name: String,
    pub version: String,
    pub active: bool,
    /// sha256 of the signed policy (`pkcs7`), the same as of the file that was deployed.
    pub sha256: Option<String>,
}

/// IPE under one securityfs mount.
#[derive(Clone, Debug)]
pub struct Ipe {
    securityfs: PathBuf,
    dir: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IpeError + 'a {
    move |error| IpeError::Io {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// The LSMs the kernel runs (`<securityfs>/lsm`), `None` when securityfs is not mounted there.
pub fn lsm_list(securityfs: &Path) -> Option<String> {
    fs::read_to_string(securityfs.join("lsm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Mounts securityfs at `securityfs` unless it is there: an initramfs without systemd does not
/// mount it, and `apply` runs there. `Ok(true)` when it was mounted now.
pub fn ensure_mounted(securityfs: &Path) -> Result<bool, IpeError> {
    if lsm_list(securityfs).is_some() {
        return Ok(false);
    }
    if !securityfs.is_dir() {
        return Err(IpeError::NoSecurityfs(securityfs.to_path_buf()));
    }
    rustix::mount::mount(
        "securityfs",
        securityfs,
        "securityfs",
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| IpeError::Io {
        op: "mount securityfs at",
        path: securityfs.to_path_buf(),
        error: e.into(),
    })?;
    Ok(true)
}

impl Ipe {
    /// IPE's directory, or why there is none.
    pub fn open(securityfs: &Path) -> Result<Ipe, IpeError> {
        let lsm =
            lsm_list(securityfs).ok_or_else(|| IpeError::NoSecurityfs(securityfs.to_path_buf()))?;
        let dir = securityfs.join("ipe");
        if !lsm.split(',').any(|l| l == "ipe") || !dir.join("new_policy").exists() {
            return Err(IpeError::NoIpe { lsm });
        }
        Ok(Ipe {
            securityfs: securityfs.to_path_buf(),
            dir,
        })
    }

    pub fn securityfs(&self) -> &Path {
        &self.securityfs
    }

    /// `ipe/enforce`: 0 means denials are only logged.
    pub fn enforce(&self) -> Result<bool, IpeError> {
        let p = self.dir.join("enforce");
        let s = fs::read_to_string(&p).map_err(io_err("read", &p))?;
        Ok(s.trim() == "1")
    }

    fn policy_dir(&self, name: &str) -> PathBuf {
        self.dir.join("policies").join(name)
    }

    /// The deployed policy `name`, if any.
    pub fn policy(&self, name: &str) -> Result<Option<DeployedPolicy>, IpeError> {
        let dir = self.policy_dir(name);
        if !dir.is_dir() {
            return Ok(None);
        }
        let read = |f: &str| {
            let p = dir.join(f);
            fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(io_err("read", &p))
        };
        let pkcs7 = fs::read(dir.join("pkcs7")).ok().filter(|d| !d.is_empty());
        Ok(Some(DeployedPolicy {
            name: read("name").unwrap_or_else(|_| name.to_string()),
            version: read("version")?,
            active: read("active")? == "1",
            sha256: pkcs7.map(|d| sha256_hex(&d)),
        }))
    }

    /// Every deployed policy, sorted by name.
    pub fn policies(&self) -> Result<Vec<DeployedPolicy>, IpeError> {
        let dir = self.dir.join("policies");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(p) = self.policy(&n)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The policy in force, if any.
    pub fn active(&self) -> Result<Option<DeployedPolicy>, IpeError> {
        Ok(self.policies()?.into_iter().find(|p| p.active))
    }

    /// Writes `der` to `new_policy` in one write. EEXIST (a policy of that name is deployed)
    /// comes back as `Ok(false)`.
    pub fn deploy(&self, der: &[u8]) -> Result<bool, IpeError> {
        let p = self.dir.join("new_policy");
        match write_once(&p, der) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(policy_write_error(e, &p, der.len(), "deploy an IPE policy")),
        }
    }

    /// Replaces the deployed policy `name` by `der` (which must carry a higher version).
    pub fn update(
        &self,
        name: &str,
        der: &[u8],
        ours: PolicyVersion,
        deployed: PolicyVersion,
    ) -> Result<(), IpeError> {
        let p = self.policy_dir(name).join("update");
        write_once(&p, der).map_err(|e| match e.raw_os_error() {
            Some(libc::ESTALE) => IpeError::Stale {
                name: name.to_string(),
                ours,
                deployed,
            },
            _ => policy_write_error(e, &p, der.len(), "update an IPE policy"),
        })
    }

    /// Makes the deployed policy `name` the active one.
    pub fn activate(&self, name: &str) -> Result<(), IpeError> {
        let p = self.policy_dir(name).join("active");
        write_once(&p, b"1").map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => {
                let active = self.active().ok().flatten();
                IpeError::Rollback {
                    name: name.to_string(),
                    active: active.as_ref().map_or("?".into(), |a| a.name.clone()),
                    active_version: active.map_or("?".into(), |a| a.version),
                }
            }
            Some(libc::EPERM) | Some(libc::EACCES) => IpeError::Permission {
                op: "activate an IPE policy",
            },
            _ => IpeError::Io {
                op: "write",
                path: p.clone(),
                error: e,
            },
        })
    }
}

/// One `write()` of all of `data`: securityfs files take their input in one piece.
fn write_once(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(data)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", data.len()),
        ));
    }
    Ok(())
}

fn policy_write_error(e: io::Error, path: &Path, len: usize, op: &'static str) -> IpeError {
    match e.raw_os_error() {
        Some(libc::ENOKEY) => IpeError::SignerNotEnrolled,
        Some(libc::EKEYREJECTED) => IpeError::SignatureRejected,
        Some(libc::EBADMSG) => IpeError::Malformed,
        Some(libc::EINVAL) | Some(libc::ERANGE) => IpeError::BadVersion,
        Some(libc::EPERM) | Some(libc::EACCES) => IpeError::Permission { op },
        Some(libc::ENOMEM) | Some(libc::E2BIG) => IpeError::TooLarge(len),
        _ if e.kind() == io::ErrorKind::WriteZero => IpeError::ShortWrite { written: 0, len },
        _ => IpeError::Io {
            op: "write",
            path: path.to_path_buf(),
            error: e,
        },
    }
}
