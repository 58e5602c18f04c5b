//! `lockdown apply`: the boot-time sequence that makes IPE refuse every executable without a
//! valid fs-verity signature, in the order the kernel requires (see `docs/lockdown.md`):
//! certificates into `.fs-verity`, the keyring restricted, optionally
//! `require_signatures=1`, the signed policy deployed in one write, then activated.
//!
//! Everything that can be checked without the kernel is checked first (the policy file, the
//! certificate files), so a bad input changes nothing. Running it again within a boot is a
//! success that changes nothing: a policy of the same name already active at the same or a
//! higher version, certificates already loaded, a keyring already restricted.

use std::path::{Path, PathBuf};

use fsverity::linux::{self, RestrictError, Restriction};
use serde::Serialize;
use verity_signing::CertFileError;

use super::ipe::{Ipe, IpeError};
use super::policy::{read_policy_file, PolicyFile, PolicyFileError, PolicyVersion};
use crate::keyring::{self, CertSource, KeyringAccessError, LoadReport, SysctlAccessError};
use crate::outcome::named_enum;

/// How `.fs-verity` is restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestrictMode {
    /// After loading the certificates: nothing can be added any more.
    Closed,
    /// Before loading them: only certificates issued by a key in the builtin or secondary
    /// trusted keyrings (a MOK-enrolled CA) can be added, now and later.
    BuiltinAndSecondary,
}

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub policy: PathBuf,
    /// Directory of file-signing certificates.
    pub certs: PathBuf,
    pub restrict: RestrictMode,
    pub require_signatures: bool,
    /// Where securityfs is mounted.
    pub securityfs: PathBuf,
}

named_enum! {
    pub enum Step {
        Done = "done",
        AlreadyDone = "already-done",
    }
}

named_enum! {
    pub enum Deployment {
        Deployed = "deployed",
        Updated = "updated",
        /// A policy of this name with the same or a higher version is already deployed.
        AlreadyDeployed = "already-deployed",
    }
}

#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub policy_file: String,
    pub name: String,
    pub version: PolicyVersion,
    pub sha256: String,
    pub signer: String,
    pub certificates: LoadReport,
    pub restricted: Step,
    pub restriction: &'static str,
    /// `Some(true)` when `require_signatures` was asked for (done or already on).
    pub require_signatures: Option<Step>,
    pub deployment: Deployment,
    /// The version the kernel holds under this name after the run (ours, or a higher one).
    pub deployed_version: String,
    pub activation: Step,
    pub enforce: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    #[error("certificates: {0}")]
    Certs(#[from] CertFileError),
    #[error(
        "no usable certificate in {0}: with the lockdown on, nothing signed by another key \
         could run; nothing was changed"
    )]
    NoCertificates(PathBuf),
    #[error(transparent)]
    Keyring(#[from] KeyringAccessError),
    #[error("cannot load {path} into .fs-verity: {reason} (the policy was not deployed)")]
    LoadFailed { path: String, reason: String },
    #[error("cannot restrict the .fs-verity keyring: {0} (the policy was not deployed)")]
    Restrict(RestrictError),
    #[error("cannot set fs.verity.require_signatures: {0} (the policy was not deployed)")]
    Sysctl(#[from] SysctlAccessError),
    #[error(transparent)]
    Ipe(#[from] IpeError),
    #[error(
        "policy {name} version {deployed} is deployed but not active, and activating it would \
         not be this file's policy ({ours}); sign this policy with a version above {deployed}"
    )]
    NewerInactive {
        name: String,
        deployed: String,
        ours: PolicyVersion,
    },
}

/// Checks the inputs without touching the kernel: the policy file and the certificates.
pub fn check_inputs(
    opts: &ApplyOptions,
) -> Result<(PolicyFile, Vec<keyring::SourceFile>), ApplyError> {
    let policy = read_policy_file(&opts.policy)?;
    let files = keyring::read_source(&CertSource::Dir(opts.certs.clone()))?;
    if !files
        .iter()
        .any(|f| matches!(&f.certs, Ok(c) if !c.is_empty()))
    {
        return Err(ApplyError::NoCertificates(opts.certs.clone()));
    }
    Ok((policy, files))
}

pub fn apply(opts: &ApplyOptions) -> Result<ApplyReport, ApplyError> {
    let (policy, files) = check_inputs(opts)?;
    if opts.securityfs == Path::new(super::SECURITYFS) {
        super::ipe::ensure_mounted(&opts.securityfs)?;
    }
    let ipe = Ipe::open(&opts.securityfs)?;
    let keyring_id = keyring::open_keyring()?;

    let restricted_first = opts.restrict == RestrictMode::BuiltinAndSecondary;
    let mut restricted = None;
    if restricted_first {
        restricted = Some(restrict(keyring_id, Restriction::BuiltinAndSecondary)?);
    }
    let certificates = keyring::load(&files, true)?;
    if let Some(e) = certificates
        .entries
        .iter()
        .find(|e| e.status == keyring::LoadStatus::Error)
    {
        return Err(ApplyError::LoadFailed {
            path: e.path.clone(),
            reason: e.reason.clone().unwrap_or_default(),
        });
    }
    if !restricted_first {
        restricted = Some(restrict(keyring_id, Restriction::Closed)?);
    }
    let require_signatures = if opts.require_signatures {
        let was = keyring::require_signatures()?;
        if !was {
            keyring::set_require_signatures(true)?;
        }
        Some(if was { Step::AlreadyDone } else { Step::Done })
    } else {
        None
    };

    let (deployment, deployed_version) = deploy(&ipe, &policy)?;
    let name = &policy.header.name;
    let activation = match ipe.policy(name)? {
        Some(p) if p.active => Step::AlreadyDone,
        _ => {
            ipe.activate(name)?;
            Step::Done
        }
    };
    Ok(ApplyReport {
        policy_file: policy.path.display().to_string(),
        name: name.clone(),
        version: policy.header.version,
        sha256: policy.sha256.clone(),
        signer: policy.signer.to_string(),
        certificates,
        restricted: restricted.unwrap_or(Step::AlreadyDone),
        restriction: match opts.restrict {
            RestrictMode::Closed => "closed",
            RestrictMode::BuiltinAndSecondary => "builtin-and-secondary",
        },
        require_signatures,
        deployment,
        deployed_version,
        activation,
        enforce: ipe.enforce()?,
    })
}

fn restrict(keyring_id: linux::KeySerial, r: Restriction) -> Result<Step, ApplyError> {
    match linux::restrict_keyring(keyring_id, r) {
        Ok(()) => Ok(Step::Done),
        Err(RestrictError::AlreadyRestricted) => Ok(Step::AlreadyDone),
        Err(e) => Err(ApplyError::Restrict(e)),
    }
}

/// Deploys the policy, or updates a deployed one of the same name with a lower version.
fn deploy(ipe: &Ipe, policy: &PolicyFile) -> Result<(Deployment, String), ApplyError> {
    let name = &policy.header.name;
    let ours = policy.header.version;
    let existing = match ipe.policy(name)? {
        None if ipe.deploy(&policy.der)? => return Ok((Deployment::Deployed, ours.to_string())),
        // EEXIST: deployed in between (another apply running at the same time).
        None => ipe.policy(name)?,
        some => some,
    };
    let Some(existing) = existing else {
        return Ok((Deployment::Deployed, ours.to_string()));
    };
    match existing.version.parse::<PolicyVersion>() {
        Ok(deployed) if deployed < ours => {
            ipe.update(name, &policy.der, ours, deployed)?;
            Ok((Deployment::Updated, ours.to_string()))
        }
        Ok(deployed) if deployed > ours && !existing.active => Err(ApplyError::NewerInactive {
            name: name.clone(),
            deployed: existing.version,
            ours,
        }),
        _ => Ok((Deployment::AlreadyDeployed, existing.version)),
    }
}

/// The default place of the file-signing certificates.
pub fn default_certs() -> &'static Path {
    Path::new(crate::certs::DEFAULT_CERT_DIR)
}
