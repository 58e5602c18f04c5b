//! Installed packages as `enable` and `audit` need them: files with their verity signatures.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fsverity::HashAlgorithm;
use rpm_format::{tags, FileList, Header};
use verity_package::VeritySignatures;

use crate::certs::TrustedCerts;
use crate::error::{HeaderError, OpenError, PackageRowError};
use crate::root::Root;
use crate::rpmdb::{PackageRow, Rpmdb};

/// Which file of which package: indices into the package list, so that work items are small,
/// `Copy`, and the packages themselves are shared read-only between the worker threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileRef {
    pub package: usize,
    pub file: usize,
}

/// One file of an installed package, in header order.
#[derive(Debug, Clone)]
pub struct InstalledFile {
    /// Absolute path as recorded by rpm (bytes; may be non-UTF-8).
    pub path: Vec<u8>,
    pub mode: u16,
    pub flags: u32,
    pub size: u64,
    /// The decoded PKCS#7 signature from tag 276, `None` when absent or empty.
    pub signature: Option<Vec<u8>>,
    /// How many names the package gives this file's inode: the size of its hardlink set
    /// (FILEINODES/FILEDEVICES), 1 for a file outside any set.
    pub links: u32,
}

impl InstalledFile {
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
    pub fn is_regular(&self) -> bool {
        u32::from(self.mode) & rpm_format::files::S_IFMT == rpm_format::files::S_IFREG
    }
    pub fn is_ghost(&self) -> bool {
        self.flags & tags::FILE_GHOST != 0
    }
    pub fn is_config(&self) -> bool {
        self.flags & tags::FILE_CONFIG != 0
    }
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }

    /// Why a file with `nlink` links on disk must not be enabled: more names than the package
    /// gives it means another name shares the inode, perhaps outside the root, and enabling
    /// verity would make that name read-only too (and `audit` would vouch for a file someone
    /// else can reach under any name). `None` when the package explains every link.
    pub fn unexplained_links(&self, nlink: u64) -> Option<String> {
        let explained = u64::from(self.links.max(1));
        (nlink > explained).then(|| {
            let names = if explained == 1 {
                "1 name".to_string()
            } else {
                format!("{explained} names (its hardlink set)")
            };
            format!(
                "has {nlink} hard links but its package gives it {names}: another name, \
                 perhaps outside the root, shares this inode, and enabling verity would make \
                 it read-only too"
            )
        })
    }
}

/// An installed package: identity, verity algorithm (tag 277, SHA-256 when absent as in rpm's
/// plugin) and files.
#[derive(Debug, Clone)]
pub struct InstalledPackage {
    /// rpm's header number (the `Packages.hnum` row), for messages and `--json`.
    #[allow(dead_code)]
    pub hnum: i64,
    pub name: String,
    /// `name-version-release.arch` (epoch left out, as `rpm -q` prints it).
    pub nevra: String,
    pub algorithm: HashAlgorithm,
    /// Tag 276 present with one entry per file.
    pub has_signatures: bool,
    pub files: Vec<InstalledFile>,
}

impl InstalledPackage {
    /// Whether `spec` names this package: `name`, `name-version-release` or the full nevra.
    pub fn matches(&self, spec: &str) -> bool {
        if spec == self.name || spec == self.nevra {
            return true;
        }
        self.nevra
            .rsplit_once('.')
            .is_some_and(|(nvr, _)| nvr == spec)
    }
}

/// Turns one rpmdb header into an [`InstalledPackage`]. Errors say what is wrong with the
/// header; the caller adds which row it was.
pub fn package_from_header(hnum: i64, h: &Header) -> Result<InstalledPackage, HeaderError> {
    let get = |tag| -> Result<String, HeaderError> {
        Ok(h.get_string(tag)?.unwrap_or_else(|| "?".to_string()))
    };
    let name = get(tags::NAME)?;
    let nevra = format!(
        "{name}-{}-{}.{}",
        get(tags::VERSION)?,
        get(tags::RELEASE)?,
        get(tags::ARCH)?
    );
    let list = FileList::from_header(h)?;
    let algorithm = verity_package::signatures::algorithm(h)?;
    // rpm only uses the array when its count equals the file count (lib/rpmfi.c); so do we.
    let sigs = VeritySignatures::read(h)?.filter(|s| s.check_count(list.len()).is_ok());
    let has_signatures = sigs.is_some() && !list.is_empty();
    let mut files = Vec::with_capacity(list.len());
    for (i, f) in list.files().iter().enumerate() {
        let signature = match &sigs {
            Some(s) => s.get(i).map_err(|source| HeaderError::FileSignature {
                path: f.path_lossy(),
                source,
            })?,
            None => None,
        };
        files.push(InstalledFile {
            path: f.path.clone(),
            mode: f.mode,
            flags: f.flags,
            size: f.size,
            signature,
            links: list.hardlink_set(i).map_or(1, |set| set.len() as u32),
        });
    }
    Ok(InstalledPackage {
        hnum,
        name,
        nevra,
        algorithm,
        has_signatures,
        files,
    })
}

/// All packages of the database. Unreadable rows are returned as errors naming the row, so one
/// damaged header does not hide the others.
pub fn load_packages(
    db: &Rpmdb,
) -> Result<Vec<Result<InstalledPackage, PackageRowError>>, crate::rpmdb::Error> {
    let rows = db.packages()?;
    Ok(rows
        .into_iter()
        .map(|PackageRow { hnum, header }| {
            let h = header?;
            package_from_header(hnum, &h).map_err(|source| PackageRowError::Header { hnum, source })
        })
        .collect())
}

/// A package named on the command line that no installed package matches.
#[derive(Debug, thiserror::Error)]
#[error("package {0} is not installed")]
pub struct NotInstalled(pub String);

/// The installed system `enable` and `audit` work on: the root, its packages, the rows of the
/// rpmdb that could not be read (reported, never fatal, so one damaged header does not hide
/// the other packages) and the certificates trusted for user-space checks.
pub struct InstalledSystem {
    pub root: Root,
    pub db_path: PathBuf,
    pub packages: Vec<InstalledPackage>,
    pub row_errors: Vec<PackageRowError>,
    pub trusted: TrustedCerts,
}

impl InstalledSystem {
    /// Opens `root` and its rpmdb (`dbpath` inside the root, else the standard places) and
    /// loads the trusted certificates (`certs`, else [`crate::certs::DEFAULT_CERT_DIR`]).
    pub fn open(root: &Path, dbpath: Option<&Path>, certs: &[PathBuf]) -> Result<Self, OpenError> {
        let root_dir = Root::open(root)?;
        let db = Rpmdb::open(root, dbpath)?;
        let mut packages = Vec::new();
        let mut row_errors = Vec::new();
        for p in load_packages(&db)? {
            match p {
                Ok(p) => packages.push(p),
                Err(e) => row_errors.push(e),
            }
        }
        let trusted = crate::certs::trusted_certs(certs)?;
        Ok(InstalledSystem {
            root: root_dir,
            db_path: db.path().to_path_buf(),
            packages,
            row_errors,
            trusted,
        })
    }

    pub fn file(&self, r: FileRef) -> (&InstalledPackage, &InstalledFile) {
        let pkg = &self.packages[r.package];
        (pkg, &pkg.files[r.file])
    }

    /// Bytes to read for `files`, for progress bars.
    pub fn total_size(&self, files: &[FileRef]) -> u64 {
        files.iter().map(|&r| self.file(r).1.size).sum()
    }

    /// The unreadable rpmdb rows, each as its one-line error chain.
    pub fn row_error_messages(&self) -> Vec<String> {
        self.row_errors
            .iter()
            .map(|e| verity_package::error_chain(e))
            .collect()
    }

    /// Fails on the first name that matches no installed package.
    pub fn check_installed(&self, names: &[String]) -> Result<(), NotInstalled> {
        match names
            .iter()
            .find(|n| !self.packages.iter().any(|p| p.matches(n)))
        {
            Some(n) => Err(NotInstalled(n.clone())),
            None => Ok(()),
        }
    }
}

/// Index from installed path to (package, file) for `--files-from` and positional paths.
pub fn path_index(pkgs: &[InstalledPackage]) -> HashMap<&[u8], (usize, usize)> {
    let mut m = HashMap::new();
    for (p, pkg) in pkgs.iter().enumerate() {
        for (i, f) in pkg.files.iter().enumerate() {
            // Shared files (multilib, directories): a later package with a signature wins
            // over one without.
            let e = m.entry(f.path.as_slice()).or_insert((p, i));
            if pkgs[e.0].files[e.1].signature.is_none() && f.signature.is_some() {
                *e = (p, i);
            }
        }
    }
    m
}

/// Signature bytes → the path of the installed file that carries it (first one wins; files
/// with identical content share a signature).
pub fn signature_owners(pkgs: &[InstalledPackage]) -> HashMap<&[u8], String> {
    let mut m = HashMap::new();
    for p in pkgs {
        for f in &p.files {
            if let Some(s) = &f.signature {
                m.entry(s.as_slice()).or_insert_with(|| f.path_lossy());
            }
        }
    }
    m
}

/// The skip reason of a file its package's signer chose not to sign.
pub const UNSIGNED_BY_POLICY: &str = "unsigned-by-policy";

/// Why a file is not a candidate for verity, as rpm's plugin decides (spec §6.1). A file
/// without a signature in a package that has signatures for others (`package_signed`) was left
/// out by the signer's choice (`sign --files/--exclude/--executables`): `unsigned-by-policy`.
pub fn skip_reason(f: &InstalledFile, config: bool, package_signed: bool) -> Option<&'static str> {
    if f.is_ghost() {
        Some("ghost")
    } else if !f.is_regular() {
        Some("not-regular")
    } else if f.is_config() && !f.is_executable() && !config {
        Some("config")
    } else if f.signature.is_none() && package_signed {
        Some(UNSIGNED_BY_POLICY)
    } else if f.signature.is_none() {
        Some("unsigned")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_matching() {
        let p = InstalledPackage {
            hnum: 1,
            name: "foo".into(),
            nevra: "foo-1.0-1.x86_64".into(),
            algorithm: HashAlgorithm::Sha256,
            has_signatures: false,
            files: vec![],
        };
        assert!(p.matches("foo"));
        assert!(p.matches("foo-1.0-1"));
        assert!(p.matches("foo-1.0-1.x86_64"));
        assert!(!p.matches("fo"));
        assert!(!p.matches("foo-1.0"));
    }

    #[test]
    fn links_beyond_the_hardlink_set_are_unexplained() {
        let f = |links| InstalledFile {
            path: b"/usr/bin/a".to_vec(),
            mode: 0o100755,
            flags: 0,
            size: 1,
            signature: None,
            links,
        };
        assert_eq!(f(1).unexplained_links(1), None);
        let why = f(1).unexplained_links(2).unwrap();
        assert!(
            why.starts_with("has 2 hard links but its package gives it 1 name:"),
            "{why}"
        );
        assert_eq!(f(3).unexplained_links(3), None);
        let why = f(3).unexplained_links(4).unwrap();
        assert!(why.contains("3 names (its hardlink set)"), "{why}");
    }
}
