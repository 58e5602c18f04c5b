//! What `enable` and `audit` report per file, and how a run ends: shared so that both commands
//! word, serialize and count their results the same way.
use std::collections::BTreeMap;

use fsverity::FileDigest;
use serde::{Serialize, Serializer};

pub use crate::installed::FileRef;
use crate::installed::InstalledPackage;

/// Defines a status enum whose one spelling (`name`) is used by text output, JSON and counts
/// alike, so the two outputs cannot drift apart.
macro_rules! named_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// Every value, in the order summaries list them.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}
pub(crate) use named_enum;

/// The verdict on one file before it is tied to its package and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutcome<S> {
    pub status: S,
    /// Why, in words, when the status alone does not say it.
    pub detail: Option<String>,
    /// The file's fs-verity digest, when it was measured or computed.
    pub digest: Option<FileDigest>,
}

impl<S> FileOutcome<S> {
    pub fn new(status: S) -> Self {
        FileOutcome {
            status,
            detail: None,
            digest: None,
        }
    }

    pub fn because(status: S, detail: impl Into<String>) -> Self {
        FileOutcome {
            status,
            detail: Some(detail.into()),
            digest: None,
        }
    }

    pub fn with_digest(mut self, digest: FileDigest) -> Self {
        self.digest = Some(digest);
        self
    }
}

/// One line of a report: a file (or, with no path, a whole package or rpmdb row) and its
/// verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Finding<S> {
    pub package: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub status: S,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_digest"
    )]
    pub digest: Option<FileDigest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl<S> Finding<S> {
    pub fn of_file(pkg: &InstalledPackage, path: String, outcome: FileOutcome<S>) -> Self {
        Finding {
            package: pkg.nevra.clone(),
            path: Some(path),
            status: outcome.status,
            digest: outcome.digest,
            detail: outcome.detail,
        }
    }

    /// What the finding is about, for text output: the path, else the package.
    pub fn subject(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.package)
    }
}

fn serialize_digest<S: Serializer>(d: &Option<FileDigest>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_hex()),
        None => s.serialize_none(),
    }
}

/// How many findings have each status.
pub fn count<S: Copy + Ord>(findings: &[Finding<S>]) -> BTreeMap<S, usize> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.status).or_insert(0) += 1;
    }
    counts
}

/// How an `enable` or `audit` run ends, as its exit status says it to scripts (and to rpm,
/// which runs `enable` from a file trigger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunVerdict {
    /// Nothing wrong.
    Clean,
    /// At least one file failed (or an rpmdb row could not be read).
    Failures,
    /// No failures, but files on a filesystem without fs-verity were left as they are: not an
    /// error of the files, so scripts may want to tell it apart.
    UnsupportedFilesystem,
}

impl RunVerdict {
    pub fn exit_code(self) -> u8 {
        match self {
            RunVerdict::Clean => 0,
            RunVerdict::Failures => 1,
            RunVerdict::UnsupportedFilesystem => 3,
        }
    }
}

pub use verity_package::error_chain;

/// `1 file`, `2 files`: counts in summaries read as English.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A worker pool of the size the caller asked for, so that `--jobs` bounds the work of one
/// command without touching rayon's global pool.
pub(crate) fn thread_pool(jobs: usize) -> Result<rayon::ThreadPool, crate::error::ThreadPoolError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(crate::error::ThreadPoolError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(RunVerdict::Clean.exit_code(), 0);
        assert_eq!(RunVerdict::Failures.exit_code(), 1);
        assert_eq!(RunVerdict::UnsupportedFilesystem.exit_code(), 3);
    }

    #[test]
    fn chains_do_not_repeat_themselves() {
        let io = std::io::Error::from_raw_os_error(libc::EISDIR);
        #[derive(Debug, thiserror::Error)]
        #[error("reading x: {0}")]
        struct Repeats(#[source] std::io::Error);
        let e = Repeats(io);
        assert_eq!(error_chain(&e), "reading x: Is a directory (os error 21)");
        let e = crate::error::PathError {
            path: "y".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(error_chain(&e), "y: No such file or directory (os error 2)");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(0, "file"), "0 files");
        assert_eq!(plural(7, "package"), "7 packages");
    }
}
