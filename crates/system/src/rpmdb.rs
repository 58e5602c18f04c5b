//! Reading installed packages from the rpmdb (sqlite backend), read-only.
//!
//! We read the database ourselves instead of linking librpm so that `enable`/`audit` work on a
//! `--root` image from any host and at boot, and so that nothing we do can write to it: the
//! connection is opened `SQLITE_OPEN_READ_ONLY`, never creates the file, and waits (busy
//! timeout) instead of failing while rpm holds a write transaction.
use std::path::{Path, PathBuf};
use std::time::Duration;

use rpm_format::Header;
use rusqlite::{Connection, OpenFlags};

/// Where rpm keeps its database when `%_dbpath` is not given: Fedora/RHEL ≥ 36 use
/// /usr/lib/sysimage/rpm (with /var/lib/rpm a symlink), older systems and Debian /var/lib/rpm.
pub const DEFAULT_DBPATHS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

/// Largest header blob we accept; rpm itself caps headers at 256 MiB (`headerMaxbytes`), and a
/// real one is at most a few MiB. Bounds the allocation for a hostile row.
pub const MAX_BLOB: usize = 256 << 20;

/// The database files rpm's backends use (lib/backend/*.c `path`), in rpm's detection order.
const BACKEND_FILES: [(&str, &str); 4] = [
    ("rpmdb.sqlite", "sqlite"),
    ("data.mdb", "lmdb"),
    ("Packages.db", "ndb"),
    ("Packages", "bdb"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no rpm database found under {root}: looked for rpmdb.sqlite in {searched} (use --dbpath)"
    )]
    NotFound { root: String, searched: String },
    #[error(
        "unsupported rpmdb backend {backend} in {dir} ({file}): only the sqlite backend \
         (rpmdb.sqlite) can be read; convert with `rpmdb --rebuilddb --define '_db_backend sqlite'`"
    )]
    UnsupportedBackend {
        backend: &'static str,
        dir: String,
        file: &'static str,
    },
    #[error("cannot open rpm database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read rpm database {path}: {source}")]
    Query {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// An open, read-only rpm database.
pub struct Rpmdb {
    conn: Connection,
    path: PathBuf,
}

/// One row of `Packages`: rpm's header number and the header, or why it could not be parsed.
pub struct PackageRow {
    pub hnum: i64,
    pub header: Result<Header, RowError>,
}

/// A row that is not a usable header. Names the row, so a damaged database points at itself.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("rpmdb row hnum={hnum}: {reason}")]
    Bad { hnum: i64, reason: String },
}

impl Rpmdb {
    /// Finds the database directory: `root` + `dbpath` if given, else the first of
    /// [`DEFAULT_DBPATHS`] that contains any rpm database file; then opens it.
    pub fn open(root: &Path, dbpath: Option<&Path>) -> Result<Rpmdb, Error> {
        let candidates: Vec<PathBuf> = match dbpath {
            Some(p) => vec![join_root(root, p)],
            None => DEFAULT_DBPATHS
                .iter()
                .map(|p| join_root(root, Path::new(p)))
                .collect(),
        };
        for dir in &candidates {
            for (file, backend) in BACKEND_FILES {
                if dir.join(file).exists() {
                    if backend != "sqlite" {
                        return Err(Error::UnsupportedBackend {
                            backend,
                            dir: dir.display().to_string(),
                            file,
                        });
                    }
                    return Self::open_file(&dir.join(file));
                }
            }
        }
        Err(Error::NotFound {
            root: root.display().to_string(),
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Opens `rpmdb.sqlite` itself, read-only. rpm runs the database in WAL mode: a reader never
    /// blocks rpm and sees the last committed state; the busy timeout covers the short windows
    /// where rpm checkpoints.
    pub fn open_file(path: &Path) -> Result<Rpmdb, Error> {
        let shown = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}?mode=ro", uri_escape(path));
        let conn = Connection::open_with_flags(&uri, flags).map_err(|source| Error::Open {
            path: shown.clone(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|source| Error::Open {
                path: shown.clone(),
                source,
            })?;
        // Opening is lazy in sqlite: touch the schema now so a non-database file fails here
        // with its name, not later.
        let has_packages: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='Packages'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|source| Error::Open {
                path: shown.clone(),
                source,
            })?;
        if !has_packages {
            return Err(Error::Open {
                path: shown,
                source: rusqlite::Error::InvalidQuery,
            });
        }
        Ok(Rpmdb {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row of `Packages`, in hnum order. A row whose blob is missing, too big or not a
    /// header comes back as a [`RowError`]; the other rows are still returned.
    pub fn packages(&self) -> Result<Vec<PackageRow>, Error> {
        let q = |source| Error::Query {
            path: self.path.display().to_string(),
            source,
        };
        // length() first, so an oversized blob is refused before it is copied out.
        let mut stmt = self
            .conn
            .prepare("SELECT hnum, length(blob), typeof(blob) FROM Packages ORDER BY hnum")
            .map_err(q)?;
        let rows: Vec<(i64, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(q)?
            .collect::<Result<_, _>>()
            .map_err(q)?;
        let mut blob_stmt = self
            .conn
            .prepare("SELECT blob FROM Packages WHERE hnum = ?1")
            .map_err(q)?;
        let mut out = Vec::with_capacity(rows.len());
        for (hnum, len, ty) in rows {
            let bad = |reason: String| RowError::Bad { hnum, reason };
            let header = match (ty.as_str(), len) {
                ("blob", Some(len)) if len as u64 > MAX_BLOB as u64 => Err(bad(format!(
                    "header blob of {len} bytes exceeds the {MAX_BLOB}-byte limit"
                ))),
                ("blob", Some(_)) => {
                    let blob: Vec<u8> = blob_stmt.query_row([hnum], |r| r.get(0)).map_err(q)?;
                    Header::from_rpmdb_blob(&blob).map_err(|e| bad(e.to_string()))
                }
                (other, _) => Err(bad(format!("blob column holds {other}, not a header"))),
            };
            out.push(PackageRow { hnum, header });
        }
        Ok(out)
    }
}

/// `root` joined with an absolute `p` (rpm's `--root` + `--dbpath` semantics).
fn join_root(root: &Path, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    root.join(rel)
}

/// Percent-escapes what sqlite's URI parser would otherwise interpret (`?`, `#`, `%`).
fn uri_escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in p.as_os_str().as_bytes() {
        match b {
            b'?' | b'#' | b'%' => s.push_str(&format!("%{b:02X}")),
            b if b.is_ascii_graphic() || b == b' ' => s.push(b as char),
            b => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escape_keeps_query_chars_out() {
        assert_eq!(uri_escape(Path::new("/a b/c?d#e%f")), "/a b/c%3Fd%23e%25f");
    }

    #[test]
    fn join_root_handles_absolute_dbpath() {
        assert_eq!(
            join_root(Path::new("/r"), Path::new("/var/lib/rpm")),
            PathBuf::from("/r/var/lib/rpm")
        );
    }

    #[test]
    fn detects_other_backends_and_missing_db() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("var/lib/rpm");
        std::fs::create_dir_all(&db).unwrap();
        assert!(matches!(
            Rpmdb::open(d.path(), None),
            Err(Error::NotFound { .. })
        ));
        std::fs::write(db.join("Packages"), b"bdb").unwrap();
        let e = Rpmdb::open(d.path(), None).err().unwrap();
        assert!(
            e.to_string().contains("unsupported rpmdb backend bdb"),
            "{e}"
        );
        std::fs::write(db.join("Packages.db"), b"ndb").unwrap();
        let e = Rpmdb::open(d.path(), None).err().unwrap();
        assert!(
            e.to_string().contains("unsupported rpmdb backend ndb"),
            "{e}"
        );
        // A file named rpmdb.sqlite that is not a database: named in the error, not created.
        std::fs::write(db.join("rpmdb.sqlite"), b"not sqlite at all, just text").unwrap();
        let e = Rpmdb::open(d.path(), None).err().unwrap();
        assert!(e.to_string().contains("rpmdb.sqlite"), "{e}");
        assert_eq!(
            std::fs::read(db.join("rpmdb.sqlite")).unwrap(),
            b"not sqlite at all, just text"
        );
    }
}
