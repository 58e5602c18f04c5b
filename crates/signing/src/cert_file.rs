//! Certificate files and directories of them, as trust anchors and keyring sources are given:
//! one file holding PEM certificates (a bundle) or a single DER certificate, or a directory of
//! such files.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cert::{CertError, Certificate};

/// Certificate files larger than this are refused unread: certificates are a few KiB, so a
/// larger file is not one and reading it would only waste memory.
pub const MAX_CERT_FILE_LEN: u64 = 1 << 20;

/// Why a certificate file or directory could not be used; every variant names the path, so a
/// caller need not add it.
#[derive(Debug, thiserror::Error)]
pub enum CertFileError {
    // Causes are part of the message rather than `source()`, so that a printed error chain does
    // not repeat them.
    #[error("cannot read certificate file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "certificate file {path}: larger than {MAX_CERT_FILE_LEN} bytes, not a certificate file"
    )]
    TooLarge { path: PathBuf },
    #[error("certificate file {path}: {error}")]
    Parse { path: PathBuf, error: CertError },
    #[error("cannot read certificate directory {path}: {error}")]
    ReadDir {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl CertFileError {
    /// Whether the file or directory does not exist, for callers to whom a missing default
    /// location means "no certificates" rather than an error.
    pub fn is_not_found(&self) -> bool {
        match self {
            CertFileError::Read { error, .. } | CertFileError::ReadDir { error, .. } => {
                error.kind() == std::io::ErrorKind::NotFound
            }
            CertFileError::TooLarge { .. } | CertFileError::Parse { .. } => false,
        }
    }
}

/// One certificate file and the certificates in it (at least one).
#[derive(Debug, Clone)]
pub struct CertFile {
    pub path: PathBuf,
    pub certs: Vec<Certificate>,
}

/// Every certificate in the file at `path`: PEM (one or more `CERTIFICATE` blocks; other blocks
/// are skipped) or one DER certificate. A file with no certificate, or with one that does not
/// parse, is an error.
pub fn read_cert_file(path: &Path) -> Result<Vec<Certificate>, CertFileError> {
    let read_err = |error| CertFileError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut data = Vec::new();
    file.take(MAX_CERT_FILE_LEN + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() as u64 > MAX_CERT_FILE_LEN {
        return Err(CertFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Certificate::parse_all(&data).map_err(|error| CertFileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// The certificate files of `dir`: regular files (symlinks followed), hidden ones skipped, in
/// name order. Hidden files are skipped because that is where editors and package managers keep
/// their temporary copies; subdirectories are not searched, so trust never comes from further
/// down than the directory an administrator configured. Name order makes listings and the
/// order of loading stable.
pub fn cert_dir_files(dir: &Path) -> Result<Vec<PathBuf>, CertFileError> {
    let dir_err = |error| CertFileError::ReadDir {
        path: dir.to_path_buf(),
        error,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Every certificate file of `dir` (chosen as [`cert_dir_files`] says) with its certificates.
/// Strict: the first file that cannot be read or holds no valid certificate is the error, since
/// a trust directory that silently loses a certificate would fail later and less clearly.
/// Callers that report on each file instead use [`cert_dir_files`] and [`read_cert_file`].
pub fn read_cert_dir(dir: &Path) -> Result<Vec<CertFile>, CertFileError> {
    cert_dir_files(dir)?
        .into_iter()
        .map(|path| {
            let certs = read_cert_file(&path)?;
            Ok(CertFile { path, certs })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_PEM: &[u8] = include_bytes!("../../../tests/data/cert.pem");

    fn der() -> Vec<u8> {
        Certificate::parse(CERT_PEM).unwrap().der().to_vec()
    }

    #[test]
    fn reads_pem_bundle_and_der() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.pem");
        std::fs::write(&bundle, [CERT_PEM, b"text between\n", CERT_PEM].concat()).unwrap();
        assert_eq!(read_cert_file(&bundle).unwrap().len(), 2);
        let single = dir.path().join("c.der");
        std::fs::write(&single, der()).unwrap();
        let certs = read_cert_file(&single).unwrap();
        assert_eq!(certs, vec![Certificate::parse(CERT_PEM).unwrap()]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = read_cert_file(&missing).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, b"not a certificate").unwrap();
        let e = read_cert_file(&junk).unwrap_err();
        assert!(matches!(e, CertFileError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("junk.crt"), "{e}");

        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = read_cert_file(&key_only).unwrap_err();
        assert!(
            matches!(
                e,
                CertFileError::Parse {
                    error: CertError::NoCertificate,
                    ..
                }
            ),
            "{e}"
        );

        let big = dir.path().join("big.pem");
        let mut data = CERT_PEM.to_vec();
        data.resize(MAX_CERT_FILE_LEN as usize + 1, b'\n');
        std::fs::write(&big, &data).unwrap();
        let e = read_cert_file(&big).unwrap_err();
        assert!(matches!(e, CertFileError::TooLarge { .. }), "{e}");
        assert!(!e.is_not_found());
        // Exactly at the limit is still read.
        data.truncate(MAX_CERT_FILE_LEN as usize);
        std::fs::write(&big, &data).unwrap();
        assert_eq!(read_cert_file(&big).unwrap().len(), 1);
    }

    #[test]
    fn directory_in_name_order_without_hidden_files_or_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.pem"), CERT_PEM).unwrap();
        std::fs::write(d.join("a.der"), der()).unwrap();
        std::fs::write(d.join(".a.pem.swp"), b"junk").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/c.pem"), b"junk").unwrap();
        std::os::unix::fs::symlink(d.join("b.pem"), d.join("c.pem")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.pem")).unwrap();

        let names: Vec<String> = cert_dir_files(d)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.der", "b.pem", "c.pem"]);
        let files = read_cert_dir(d).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files.iter().all(|f| f.certs.len() == 1));

        std::fs::write(d.join("d.pem"), b"junk").unwrap();
        let e = read_cert_dir(d).unwrap_err();
        assert!(e.to_string().contains("d.pem"), "{e}");

        let e = read_cert_dir(&d.join("absent")).unwrap_err();
        assert!(
            matches!(e, CertFileError::ReadDir { .. }) && e.is_not_found(),
            "{e}"
        );
    }
}
