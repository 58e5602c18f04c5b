//! `lockdown status`: whether execution is locked down to signed files right now, and what is
//! missing if not. Nothing here changes the kernel's state (the restriction probe is built to be
//! refused, see [`fsverity::linux::is_restricted`]).

use std::path::Path;

use fsverity::linux;
use serde::Serialize;

use super::ipe::{lsm_list, DeployedPolicy, Ipe};

/// Keyrings a policy signer's certificate can be in for the kernel to accept its policies.
pub const SIGNER_KEYRINGS: &[&str] = &[
    ".builtin_trusted_keys",
    ".secondary_trusted_keys",
    ".machine",
    ".platform",
];

#[derive(Debug, Serialize)]
pub struct TrustedKeyring {
    pub name: String,
    /// Key descriptions; `None` when the keyring is absent or could not be read.
    pub keys: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct FsVerityState {
    /// `None` when the keyring cannot be found (no built-in signature support, or not root).
    pub keyring: Option<i32>,
    /// `None` when it could not be probed (not root).
    pub restricted: Option<bool>,
    pub certificates: Vec<String>,
    pub require_signatures: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LockdownStatus {
    pub securityfs: bool,
    pub lsm: Option<String>,
    pub ipe: bool,
    pub enforce: Option<bool>,
    pub active_policy: Option<DeployedPolicy>,
    pub policies: Vec<DeployedPolicy>,
    pub fs_verity: FsVerityState,
    pub signer_keyrings: Vec<TrustedKeyring>,
    /// A certificate is in `.machine` or `.platform`: keys an owner enrolled (MOK, UEFI db),
    /// which is what lets a policy be deployed at all on a distribution kernel.
    pub signer_enrolled: bool,
    /// IPE enforcing with a policy active, and `.fs-verity` restricted (or unknown).
    pub locked_down: bool,
    /// What keeps it from being locked down, in words.
    pub problems: Vec<String>,
}

fn fs_verity_state() -> FsVerityState {
    let require_signatures = linux::require_signatures().ok();
    match linux::fs_verity_keyring() {
        Ok(id) => {
            let (certificates, error) = match linux::list_keyring_of(id) {
                Ok(keys) => (keys.into_iter().map(|k| k.description).collect(), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            FsVerityState {
                keyring: Some(id),
                restricted: linux::is_restricted(id).ok(),
                certificates,
                require_signatures,
                error,
            }
        }
        Err(e) => FsVerityState {
            keyring: None,
            restricted: None,
            certificates: Vec::new(),
            require_signatures,
            error: Some(e.to_string()),
        },
    }
}

fn trusted_keyring(name: &str) -> TrustedKeyring {
    let keys = linux::find_keyring(name)
        .and_then(linux::list_keyring_of)
        .ok()
        // `.secondary_trusted_keys` links other keyrings; only keys can sign a policy.
        .map(|keys| {
            keys.into_iter()
                .filter(|k| k.key_type != "keyring")
                .map(|k| k.description)
                .collect()
        });
    TrustedKeyring {
        name: name.to_string(),
        keys,
    }
}

pub fn status(securityfs: &Path) -> LockdownStatus {
    let lsm = lsm_list(securityfs);
    let ipe = Ipe::open(securityfs).ok();
    let enforce = ipe.as_ref().and_then(|i| i.enforce().ok());
    let policies = ipe
        .as_ref()
        .and_then(|i| i.policies().ok())
        .unwrap_or_default();
    let active_policy = policies.iter().find(|p| p.active).cloned();
    let fs_verity = fs_verity_state();
    let signer_keyrings: Vec<TrustedKeyring> =
        SIGNER_KEYRINGS.iter().map(|n| trusted_keyring(n)).collect();
    let signer_enrolled = signer_keyrings.iter().any(|k| {
        (k.name == ".machine" || k.name == ".platform")
            && k.keys.as_ref().is_some_and(|keys| !keys.is_empty())
    });
    let mut problems = Vec::new();
    if lsm.is_none() {
        problems.push(format!(
            "securityfs is not mounted at {}",
            securityfs.display()
        ));
    } else if ipe.is_none() {
        problems.push("the kernel has no IPE (Linux 6.12+ with CONFIG_SECURITY_IPE)".into());
    }
    if ipe.is_some() && active_policy.is_none() {
        problems.push("no IPE policy is active (rpm-verity lockdown apply)".into());
    }
    if enforce == Some(false) {
        problems.push("IPE is not enforcing (ipe/enforce is 0): denials are only logged".into());
    }
    if fs_verity.restricted == Some(false) {
        problems.push(
            "the .fs-verity keyring is not restricted: root can add a certificate and sign its \
             own files"
                .into(),
        );
    }
    if !signer_enrolled && active_policy.is_none() {
        problems.push(
            "no certificate in .machine or .platform: a policy signer must be enrolled (MOK or \
             UEFI db, see docs/lockdown.md)"
                .into(),
        );
    }
    let locked_down = ipe.is_some()
        && enforce == Some(true)
        && active_policy.is_some()
        && fs_verity.restricted != Some(false);
    LockdownStatus {
        securityfs: lsm.is_some(),
        ipe: ipe.is_some(),
        lsm,
        enforce,
        active_policy,
        policies,
        fs_verity,
        signer_keyrings,
        signer_enrolled,
        locked_down,
        problems,
    }
}
