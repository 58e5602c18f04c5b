//! `status`: what the running kernel offers, what the `.fs-verity` keyring holds, whether the
//! certificates of the certificate directory are loaded, and whether a path's filesystem can
//! do fs-verity, with every condition that will make signed files fail named as a problem.
//!
//! The point is the situations that otherwise surface as a bare errno: after a reboot the
//! keyring is empty and signed files fail to open (ENOKEY). Status never needs write access and
//! creates nothing.
use std::path::Path;

use fsverity::linux::{self, KeySerial};
use serde::Serialize;

use crate::certs::{unusable_reason, DEFAULT_CERT_DIR};
use crate::keyring::KeyringAccessError;
use crate::probe::{self, KernelStatus, PathStatus, VeritySupport};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub kernel: KernelStatus,
    pub keyring: KeyringStatus,
    pub certs: CertDirStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathStatus>,
    /// Everything that will make signed files fail, one sentence each.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyringStatus {
    pub id: Option<KeySerial>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_display"
    )]
    pub error: Option<KeyringAccessError>,
    pub keys: Vec<Key>,
}

#[derive(Debug, Serialize)]
pub struct Key {
    pub id: KeySerial,
    #[serde(rename = "type")]
    pub key_type: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct CertDirStatus {
    pub dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub certs: Vec<CertStatus>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct CertStatus {
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub description: Option<String>,
    /// The certificate's key: `RSA`, `EC P-256`, `EC P-384`, `EC P-521`.
    pub key: String,
    /// None when the keyring could not be read.
    pub loaded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeySerial>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// Gathers the report; only an unusable `path` is an error (it was asked about explicitly).
pub fn report(
    certs_dir: &Path,
    path: Option<&Path>,
) -> Result<StatusReport, crate::error::PathError> {
    let kernel = probe::kernel_status();
    let keyring = keyring_status();
    let certs = cert_dir_status(certs_dir, &keyring);
    let path = path.map(probe::path_status).transpose()?;
    let problems = problems(&kernel, &keyring, &certs, path.as_ref());
    Ok(StatusReport {
        kernel,
        keyring,
        certs,
        path,
        problems,
    })
}

pub fn keyring_status() -> KeyringStatus {
    let explain = |e| {
        KeyringAccessError::explain(
            e,
            &linux::kernel_support(),
            crate::keyring::euid() == Some(0),
        )
    };
    let (id, listed) = match linux::fs_verity_keyring() {
        Ok(id) => (Some(id), linux::list_keyring_of(id).map_err(explain)),
        Err(e) => (None, Err(explain(e))),
    };
    match listed {
        Ok(keys) => KeyringStatus {
            id,
            error: None,
            keys: keys
                .into_iter()
                .map(|k| Key {
                    id: k.id,
                    key_type: k.key_type,
                    description: k.description,
                })
                .collect(),
        },
        Err(e) => KeyringStatus {
            id,
            error: Some(e),
            keys: Vec::new(),
        },
    }
}

/// Each certificate of `dir` and whether the keyring holds it. Files that are not
/// certificates, or cannot be read, are listed as skipped rather than hiding the others.
pub fn cert_dir_status(dir: &Path, keyring: &KeyringStatus) -> CertDirStatus {
    let mut out = CertDirStatus {
        dir: dir.display().to_string(),
        error: None,
        certs: Vec::new(),
        skipped: Vec::new(),
    };
    let files = match verity_signing::cert_dir_files(dir) {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(crate::outcome::error_chain(&e));
            return out;
        }
    };
    let readable = keyring.error.is_none();
    for path in files {
        let shown = path.display().to_string();
        let certs = match verity_signing::read_cert_file(&path) {
            Ok(c) => c,
            Err(e) => {
                let reason = unusable_reason(&e).unwrap_or_else(|| e.to_string());
                out.skipped.push(Skipped {
                    path: shown,
                    reason,
                });
                continue;
            }
        };
        for c in certs {
            let description = c.kernel_key_description();
            let key = keyring.keys.iter().find(|k| k.description == description);
            out.certs.push(CertStatus {
                path: shown.clone(),
                subject: c.subject().to_string(),
                issuer: c.issuer().to_string(),
                serial: c.serial_hex(),
                description: Some(description),
                key: probe::key_name(c.key_algorithm()).to_string(),
                loaded: readable.then_some(key.is_some()),
                key_id: key.map(|k| k.id),
            });
        }
    }
    out
}

fn problems(
    kernel: &KernelStatus,
    keyring: &KeyringStatus,
    certs: &CertDirStatus,
    path: Option<&PathStatus>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if kernel.fs_verity == Some(false) || !kernel.builtin_signatures {
        problems.push(if kernel.fs_verity == Some(true) {
            format!(
                "the kernel has fs-verity but no built-in signatures \
                 (CONFIG_FS_VERITY_BUILTIN_SIGNATURES; {} is missing): it stores a file's \
                 signature without checking it and enforces none, so a tampered file can be \
                 enabled with a package's signature; enable and audit vouch for a file only \
                 when a configured certificate (--cert or {DEFAULT_CERT_DIR}) verifies its digest",
                linux::REQUIRE_SIGNATURES_SYSCTL
            )
        } else {
            "the kernel has no fs-verity built-in signature support (CONFIG_FS_VERITY, \
             CONFIG_FS_VERITY_BUILTIN_SIGNATURES): files cannot be protected here"
                .to_string()
        });
    } else if let Some(e) = &keyring.error {
        problems.push(format!("cannot read the .fs-verity keyring: {e}"));
    }
    for c in certs.certs.iter().filter(|c| c.loaded == Some(false)) {
        problems.push(format!(
            "certificate {} ({}) is not in the .fs-verity keyring: files signed with it cannot \
             be opened (ENOKEY) until `rpm-verity keyring load` runs",
            c.path, c.subject
        ));
    }
    if kernel.ecdsa == Some(false) {
        for c in certs.certs.iter().filter(|c| c.key.starts_with("EC")) {
            problems.push(format!(
                "certificate {} ({}) has an {} key, but {}: its files cannot be \
                 protected on this kernel",
                c.path,
                c.subject,
                c.key,
                probe::NO_ECDSA
            ));
        }
    }
    if let Some(st) = path {
        if st.verity != VeritySupport::Supported {
            problems.push(format!("{}: {}", st.path, st.detail));
        }
        if let Some(e) = &st.file_error {
            problems.push(format!("{}: {e}", st.path));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(fs_verity: Option<bool>, builtin: bool) -> KernelStatus {
        KernelStatus {
            release: Some("6.1.0".into()),
            fs_verity,
            builtin_signatures: builtin,
            keyring_present: builtin,
            require_signatures: builtin.then_some(false),
            ext4_verity: fs_verity,
            ecdsa: None,
        }
    }

    fn problems_of(k: &KernelStatus) -> Vec<String> {
        let keyring = KeyringStatus {
            id: None,
            error: None,
            keys: vec![],
        };
        let certs = cert_dir_status(Path::new("/nonexistent-rpm-verity-certs"), &keyring);
        problems(k, &keyring, &certs, None)
    }

    /// fs-verity without built-in signatures stores signatures unchecked: a warning, not the
    /// claim that signed files cannot be enabled (they can, and that is the danger).
    #[test]
    fn a_kernel_without_builtin_signatures_is_a_warning() {
        let p = problems_of(&kernel(Some(true), false));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("without checking it")
                && p[0].contains("/proc/sys/fs/verity/require_signatures is missing")
                && p[0].contains("configured certificate"),
            "{p:?}"
        );
        assert!(problems_of(&kernel(Some(true), true)).is_empty());
        let p = problems_of(&kernel(Some(false), false));
        assert!(p[0].contains("files cannot be protected"), "{p:?}");
    }
}
