//! Why the installed system could not be read or a run could not start: the errors that stop a
//! whole command, as opposed to a file's status or a keyring's access error, which are part of
//! the reports. Each names the path or rpmdb row it is about and keeps its cause as the source.
use std::io;
use std::path::PathBuf;

use thiserror::Error;
use verity_package::SignaturesError;

use crate::rpmdb::{self, RowError};

/// The directory given as the root cannot be opened.
#[derive(Debug, Error)]
#[error("root {}", .path.display())]
pub struct RootError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What is wrong with one rpmdb header as an installed package; the caller adds which row it
/// was ([`PackageRowError::Header`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error(transparent)]
    Format(#[from] rpm_format::Error),
    #[error(transparent)]
    Signatures(#[from] SignaturesError),
    #[error("signature of {path}")]
    FileSignature {
        path: String,
        #[source]
        source: rpm_format::Error,
    },
}

/// One rpmdb row that does not give an installed package.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PackageRowError {
    /// The row is not a header at all (the error names the row).
    #[error(transparent)]
    Row(#[from] RowError),
    #[error("rpmdb row hnum={hnum}")]
    Header {
        hnum: i64,
        #[source]
        source: HeaderError,
    },
}

/// Why the installed system (root, rpmdb, trusted certificates) could not be opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Rpmdb(#[from] rpmdb::Error),
    #[error(transparent)]
    Certificates(#[from] verity_signing::CertFileError),
}

/// The worker pool of `enable` or `audit` could not be started.
#[derive(Debug, Error)]
#[error("cannot start the worker threads")]
pub struct ThreadPoolError(#[source] pub rayon::ThreadPoolBuildError);

/// A path `status` was asked about cannot be resolved or read.
#[derive(Debug, Error)]
#[error("{}", .path.display())]
pub struct PathError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The `require-signatures` setting file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SettingFileError {
    /// A bad word in the file.
    #[error("{}: {message}", .path.display())]
    Bad { path: PathBuf, message: String },
    #[error("{}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::error_chain;

    #[test]
    fn open_errors_name_the_root_and_keep_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent");
        let e = match crate::installed::InstalledSystem::open(&absent, None, &[]) {
            Err(e) => e,
            Ok(_) => panic!("opened a missing root"),
        };
        match &e {
            OpenError::Root(RootError { path, source }) => {
                assert_eq!(path, &absent);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error_chain(&e),
            format!(
                "root {}: No such file or directory (os error 2)",
                absent.display()
            )
        );
        // A root without an rpmdb is the rpmdb's error, not the root's.
        let e = match crate::installed::InstalledSystem::open(dir.path(), None, &[]) {
            Err(e) => e,
            Ok(_) => panic!("opened a root without an rpmdb"),
        };
        assert!(
            matches!(e, OpenError::Rpmdb(rpmdb::Error::NotFound { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn setting_file_errors_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("require-signatures");
        std::fs::write(&f, "maybe").unwrap();
        let e = crate::keyring::setting_from_file(&f).unwrap_err();
        assert!(
            matches!(&e, SettingFileError::Bad { path, .. } if path == &f),
            "{e:?}"
        );
        let e = crate::keyring::setting_from_file(dir.path()).unwrap_err();
        assert!(
            matches!(&e, SettingFileError::Read { path, .. } if path == dir.path()),
            "{e:?}"
        );
    }
}
