//! Signing keys: loaded once at start, each behind the `Signer` trait; several per name, each
//! signing while its certificate (narrowed by the config) is valid.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use verity_signing::Signer;

use super::audit::rfc3339;
use super::config::KeyConfig;
use super::setup_error::{KeyError, PrivateFileError};

/// One name's keys: several while a key is being rotated, each signing inside its validity.
pub struct Key {
    pub name: String,
    pub versions: Vec<KeyVersion>,
}

/// One key and certificate of a name.
pub struct KeyVersion {
    pub signer: Arc<dyn Signer>,
    pub cert_pem: String,
    /// The certificate's validity, narrowed by the config's `not_before`/`not_after`.
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial: String,
    /// The certificate file, for messages.
    pub cert_path: String,
}

impl KeyVersion {
    fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Why it does not sign at `now`, or `None` when it does.
    fn invalid_reason(&self, now: SystemTime) -> Option<String> {
        let what = format!("certificate {} (serial {})", self.cert_path, self.serial);
        if now > self.not_after {
            Some(format!("{what} expired at {}", rfc3339(self.not_after)))
        } else if now < self.not_before {
            Some(format!(
                "{what} is not valid before {}",
                rfc3339(self.not_before)
            ))
        } else {
            None
        }
    }
}

impl Key {
    /// The version that signs at `now`: of those valid then, the one that became valid last, so
    /// a new key listed beside the old one takes over at its `not_before`. The error says why
    /// none does.
    pub fn current(&self, now: SystemTime) -> Result<&KeyVersion, String> {
        self.versions
            .iter()
            .filter(|v| v.valid_at(now))
            .max_by_key(|v| v.not_before)
            .ok_or_else(|| {
                let reasons: Vec<String> = self
                    .versions
                    .iter()
                    .filter_map(|v| v.invalid_reason(now))
                    .collect();
                format!(
                    "key {:?} has no certificate valid now ({}): {}",
                    self.name,
                    rfc3339(now),
                    reasons.join("; ")
                )
            })
    }

    /// What `GET /v1/keys` shows: the version signing now, else the one that will sign next (or
    /// signed last), so a client always gets a certificate.
    pub fn shown(&self, now: SystemTime) -> &KeyVersion {
        self.current(now).unwrap_or_else(|_| {
            self.versions
                .iter()
                .min_by_key(|v| {
                    v.not_before
                        .duration_since(now)
                        .or_else(|_| now.duration_since(v.not_after))
                        .unwrap_or_default()
                })
                .unwrap_or(&self.versions[0])
        })
    }
}

/// Loads every configured key, grouped by name. A name none of whose certificates is valid now
/// stops the start; versions that expired are reported on stderr and kept (they sign nothing).
pub fn load_all(cfgs: &[KeyConfig]) -> Result<BTreeMap<String, Key>, KeyError> {
    let mut keys: BTreeMap<String, Key> = BTreeMap::new();
    for cfg in cfgs {
        let version = load(cfg)?;
        keys.entry(cfg.name.clone())
            .or_insert_with(|| Key {
                name: cfg.name.clone(),
                versions: Vec::new(),
            })
            .versions
            .push(version);
    }
    let now = SystemTime::now();
    for key in keys.values() {
        let current = key.current(now).map_err(KeyError::NoValidCertificate)?;
        for v in &key.versions {
            if let Some(reason) = v.invalid_reason(now) {
                eprintln!(
                    "rpm-verity serve: key {:?}: {reason}; it signs nothing now",
                    key.name
                );
            }
        }
        eprintln!(
            "rpm-verity serve: key {:?} signs with certificate {} (serial {}) until {}",
            key.name,
            current.cert_path,
            current.serial,
            rfc3339(current.not_after)
        );
    }
    Ok(keys)
}

/// Refuses secrets that other users could read: a signing key readable by a group is as good as
/// published on a shared host, and starting anyway would hide the problem.
pub fn check_private_file(path: &Path, what: &'static str) -> Result<(), PrivateFileError> {
    let meta = std::fs::metadata(path).map_err(|source| PrivateFileError::Stat {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Mode {
            what,
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn load(cfg: &KeyConfig) -> Result<KeyVersion, KeyError> {
    let key = || cfg.name.clone();
    let private = |source| KeyError::PrivateFile { key: key(), source };
    let token = cfg
        .key
        .to_str()
        .filter(|k| verity_signing::is_pkcs11_uri(k));
    match token {
        Some(uri) => {
            let parsed = verity_signing::Pkcs11Uri::parse(uri)
                .map_err(|source| KeyError::Pkcs11Uri { key: key(), source })?;
            if let Some(pin) = &parsed.pin_source {
                check_private_file(pin, "PIN file").map_err(private)?;
            }
        }
        None => check_private_file(&cfg.key, "key file").map_err(private)?,
    }
    let passphrase = match &cfg.passphrase_file {
        Some(p) => {
            check_private_file(p, "passphrase file").map_err(private)?;
            let text = std::fs::read(p).map_err(|source| KeyError::Passphrase {
                key: key(),
                path: p.clone(),
                source,
            })?;
            Some(trim_newline(text))
        }
        None => None,
    };
    let signer =
        verity_signing::LocalSigner::from_files(&cfg.key, &cfg.cert, passphrase.as_deref())
            .map_err(|source| KeyError::Load { key: key(), source })?;
    let (cert_from, cert_to) = signer.certificate().validity();
    let not_before = cfg.not_before.map_or(cert_from, |t| t.max(cert_from));
    let not_after = cfg.not_after.map_or(cert_to, |t| t.min(cert_to));
    let serial = signer.certificate().serial_hex();
    let cert_pem = verity_signing::pem::encode("CERTIFICATE", signer.certificate_der());
    Ok(KeyVersion {
        signer: Arc::new(signer),
        cert_pem,
        not_before,
        not_after,
        serial,
        cert_path: cfg.cert.display().to_string(),
    })
}

fn trim_newline(mut v: Vec<u8>) -> Vec<u8> {
    while matches!(v.last(), Some(b'\n' | b'\r')) {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn version(from: u64, to: u64, serial: &str) -> KeyVersion {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/");
        let signer = verity_signing::LocalSigner::from_files(
            Path::new(&format!("{data}key.pem")),
            Path::new(&format!("{data}cert.pem")),
            None,
        )
        .unwrap();
        KeyVersion {
            signer: Arc::new(signer),
            cert_pem: serial.into(),
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(from),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(to),
            serial: serial.into(),
            cert_path: format!("{serial}.crt"),
        }
    }

    #[test]
    fn the_newest_valid_version_signs_and_none_valid_says_why() {
        let key = Key {
            name: "k".into(),
            versions: vec![
                version(0, 100, "old"),
                version(50, 200, "new"),
                version(300, 400, "next"),
            ],
        };
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(key.current(at(10)).unwrap().serial, "old");
        // Both valid: the one that became valid last.
        assert_eq!(key.current(at(60)).unwrap().serial, "new");
        assert_eq!(key.current(at(150)).unwrap().serial, "new");
        assert_eq!(key.current(at(350)).unwrap().serial, "next");
        let e = key.current(at(250)).err().unwrap();
        assert!(
            e.contains("old.crt (serial old) expired at 1970-01-01T00:01:40.000Z"),
            "{e}"
        );
        assert!(e.contains("new.crt (serial new) expired at"), "{e}");
        assert!(
            e.contains("next.crt (serial next) is not valid before 1970-01-01T00:05:00.000Z"),
            "{e}"
        );
        // Nothing signs between 200 and 300: the list shows the next one.
        assert_eq!(key.shown(at(290)).serial, "next");
        assert_eq!(key.shown(at(210)).serial, "new");
        assert!(key.current(at(401)).is_err());
    }

    #[test]
    fn refuses_group_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private_file(&p, "key file").unwrap_err().to_string();
        assert!(e.contains("mode 0644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private_file(&p, "key file").unwrap();
    }
}
