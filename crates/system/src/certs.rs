//! Where the certificates trusted for user-space checks and for the keyring live, and loading
//! them with verity-signing's reader so that every command reads certificate files alike.
use std::path::{Path, PathBuf};

use serde::Serialize;
use verity_signing::{CertFileError, Certificate};

/// Where packages and admins drop certificates: the boot integration loads them into
/// `.fs-verity`, and `enable`/`audit` trust them when no `--cert` is given. Defined once so
/// that the two never disagree.
pub const DEFAULT_CERT_DIR: &str = "/etc/rpm-verity/certs";

/// The certificates user-space checks trust, and where they came from (reports name it so that
/// "no trusted certificate" can be traced to a directory or an option).
#[derive(Debug, Clone, Serialize)]
pub struct TrustedCerts {
    #[serde(skip)]
    pub certs: Vec<Certificate>,
    pub source: String,
}

/// `--cert` files, else every certificate file in [`DEFAULT_CERT_DIR`]; a missing default
/// directory means none (a system may rely on the keyring alone), but an unreadable or
/// malformed file is an error, since a trust anchor silently dropped fails later and less
/// clearly.
pub fn trusted_certs(files: &[PathBuf]) -> Result<TrustedCerts, CertFileError> {
    if !files.is_empty() {
        let mut certs = Vec::new();
        for f in files {
            certs.extend(verity_signing::read_cert_file(f)?);
        }
        return Ok(TrustedCerts {
            certs,
            source: "--cert".into(),
        });
    }
    let certs = match verity_signing::read_cert_dir(Path::new(DEFAULT_CERT_DIR)) {
        Ok(files) => files.into_iter().flat_map(|f| f.certs).collect(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(TrustedCerts {
        certs,
        source: DEFAULT_CERT_DIR.into(),
    })
}

/// Why a file in a certificate directory (or given to `keyring load`) is not used, when that is
/// the file's content rather than an I/O failure: such files are reported and passed over,
/// while I/O errors stop the command. The path is left out; the caller names the file.
pub fn unusable_reason(e: &CertFileError) -> Option<String> {
    match e {
        CertFileError::Parse { error, .. } => Some(format!("not a certificate file: {error}")),
        CertFileError::TooLarge { .. } => Some(format!(
            "not a certificate file: larger than {} bytes",
            verity_signing::MAX_CERT_FILE_LEN
        )),
        CertFileError::Read { .. } | CertFileError::ReadDir { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_problems_are_reasons_io_problems_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("notes.txt");
        std::fs::write(&junk, "not a cert").unwrap();
        let e = verity_signing::read_cert_file(&junk).unwrap_err();
        let reason = unusable_reason(&e).unwrap();
        assert!(reason.starts_with("not a certificate file: "), "{reason}");
        assert!(!reason.contains("notes.txt"), "{reason}");
        let e = verity_signing::read_cert_file(&dir.path().join("absent")).unwrap_err();
        assert_eq!(unusable_reason(&e), None);
    }

    #[test]
    fn cert_options_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let e = trusted_certs(&[dir.path().to_path_buf()]).unwrap_err();
        let msg = crate::outcome::error_chain(&e);
        assert_eq!(msg.matches("Is a directory").count(), 1, "{msg}");
    }
}
