//! Signing keys: loaded once at start, each behind the `Signer` trait.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use verity_signing::Signer;

use super::config::KeyConfig;

pub struct Key {
    pub name: String,
    pub signer: Arc<dyn Signer>,
    pub cert_pem: String,
}

/// Refuses secrets that other users could read: a signing key readable by a group is as good as
/// published on a shared host, and starting anyway would hide the problem.
pub fn check_private_file(path: &Path, what: &str) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "{what} {} has mode {mode:04o}: group or others may access it; refusing to use it (chmod 600 it)",
            path.display()
        );
    }
    Ok(())
}

pub fn load(cfg: &KeyConfig) -> anyhow::Result<Key> {
    check_private_file(&cfg.key, "key file").with_context(|| format!("key {:?}", cfg.name))?;
    let passphrase = match &cfg.passphrase_file {
        Some(p) => {
            check_private_file(p, "passphrase file")
                .with_context(|| format!("key {:?}", cfg.name))?;
            let text = std::fs::read(p)
                .with_context(|| format!("key {:?}: reading {}", cfg.name, p.display()))?;
            Some(trim_newline(text))
        }
        None => None,
    };
    let signer = load_signer(&cfg.key, &cfg.cert, passphrase.as_deref())
        .with_context(|| format!("key {:?}", cfg.name))?;
    let cert_pem = verity_signing::pem::encode("CERTIFICATE", signer.certificate_der());
    Ok(Key {
        name: cfg.name.clone(),
        signer,
        cert_pem,
    })
}

fn trim_newline(mut v: Vec<u8>) -> Vec<u8> {
    while matches!(v.last(), Some(b'\n' | b'\r')) {
        v.pop();
    }
    v
}

fn load_signer(
    key: &Path,
    cert: &Path,
    passphrase: Option<&[u8]>,
) -> anyhow::Result<Arc<dyn Signer>> {
    let signer = verity_signing::LocalSigner::from_files(key, cert, passphrase)?;
    Ok(Arc::new(signer))
}

#[cfg(test)]
mod tests {
    use super::*;

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
