//! A strict resolver that opens a package's file inside `--root` without ever following a
//! symlink out of it.
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Why a package path could not be opened inside the root.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such file")]
    Missing,
    #[error("path leads outside the root through a symlink or '..' ({0}); refusing to follow it")]
    Escapes(&'static str),
    #[error("is a symlink on disk, not a regular file")]
    Symlink,
    #[error("is not a regular file on disk")]
    NotRegular,
    #[error("bad path in the package: {0}")]
    BadPath(&'static str),
    /// ENOKEY/EKEYREJECTED/EPERM/EBADMSG on open: a verity file whose signature the kernel
    /// cannot check or accept.
    #[error(transparent)]
    Verity(fsverity::linux::OpenError),
    #[error("{0}")]
    Io(io::Error),
}

/// A directory every package path is resolved under.
pub struct Root {
    dir: OwnedFd,
    path: PathBuf,
    /// `/`: no confinement needed (nothing can lead further out), only O_NOFOLLOW at the end.
    is_host_root: bool,
}

/// An opened installed file plus the metadata taken from the same descriptor.
pub struct OpenedFile {
    pub file: File,
    pub stat: rustix::fs::Stat,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root, crate::error::RootError> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| crate::error::RootError {
            path: path.to_path_buf(),
            source: io::Error::from(e),
        })?;
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Root {
            dir,
            is_host_root: canon == Path::new("/"),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the running system's own root, where the kernel can be asked about files.
    pub fn is_host_root(&self) -> bool {
        self.is_host_root
    }

    /// Opens the package path `p` (absolute, as in the rpmdb) read-only under the root. Every
    /// component is resolved by the kernel below the root (`openat2` RESOLVE_BENEATH: absolute
    /// symlinks and `..` that would leave it fail with EXDEV), magic links are refused, the last
    /// component is never followed, and the result must be a regular file. O_NONBLOCK keeps a
    /// FIFO planted under a file's name from blocking us.
    pub fn open_file(&self, p: &[u8]) -> Result<OpenedFile, ResolveError> {
        let rel = relative(p)?;
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let res = if self.is_host_root {
            ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        };
        let fd = match rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), res) {
            Ok(fd) => fd,
            Err(e) if e == rustix::io::Errno::NOSYS => self.open_walk(rel, flags)?,
            Err(e) => return Err(map_open(e)),
        };
        finish_open(fd)
    }

    /// Fallback for kernels without openat2 (< 5.6): walk component by component with
    /// O_NOFOLLOW, refusing any symlinked directory (strictest reading of "no escape").
    fn open_walk(&self, rel: &[u8], flags: OFlags) -> Result<OwnedFd, ResolveError> {
        let comps: Vec<&[u8]> = rel
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let Some((last, dirs)) = comps.split_last() else {
            return Err(ResolveError::BadPath("empty path"));
        };
        let mut cur: Option<OwnedFd> = None;
        for c in dirs {
            let base = cur.as_ref().map_or(self.dir.as_fd(), |f| f.as_fd());
            let next = rustix::fs::openat(
                base,
                *c,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                    ResolveError::Escapes("symlinked directory")
                }
                e => map_open(e),
            })?;
            cur = Some(next);
        }
        let base = cur.as_ref().map_or(self.dir.as_fd(), |f| f.as_fd());
        rustix::fs::openat(base, *last, flags, Mode::empty()).map_err(map_open)
    }
}

/// Strips the leading `/`s and rejects what no rpm path contains: NUL, `.`/`..` components.
fn relative(p: &[u8]) -> Result<&[u8], ResolveError> {
    let rel = {
        let mut r = p;
        while let Some(x) = r.strip_prefix(b"/") {
            r = x;
        }
        r
    };
    if rel.is_empty() {
        return Err(ResolveError::BadPath("empty path"));
    }
    if rel.contains(&0) {
        return Err(ResolveError::BadPath("NUL byte"));
    }
    if rel.split(|&b| b == b'/').any(|c| c == b".." || c == b".") {
        return Err(ResolveError::BadPath("'.' or '..' component"));
    }
    Ok(rel)
}

fn map_open(e: rustix::io::Errno) -> ResolveError {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => ResolveError::Missing,
        Errno::XDEV => ResolveError::Escapes("openat2 RESOLVE_BENEATH"),
        Errno::LOOP => ResolveError::Symlink,
        Errno::NOTDIR => ResolveError::NotRegular,
        e => {
            let ioe = io::Error::from(e);
            match ioe.raw_os_error() {
                Some(libc::ENOKEY)
                | Some(libc::EKEYREJECTED)
                | Some(libc::EBADMSG)
                | Some(libc::EPERM) => ResolveError::Verity(fsverity::linux::map_open_error(ioe)),
                _ => ResolveError::Io(ioe),
            }
        }
    }
}

fn finish_open(fd: OwnedFd) -> Result<OpenedFile, ResolveError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| ResolveError::Io(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(ResolveError::NotRegular);
    }
    // Back to blocking reads (O_NONBLOCK was only there for the open).
    let _ = rustix::fs::fcntl_setfl(&fd, OFlags::empty());
    Ok(OpenedFile {
        file: File::from(fd),
        stat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolver_stays_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::write(r.join("usr/lib/ok"), b"inside").unwrap();
        symlink(outside.path(), r.join("usr/evil")).unwrap();
        symlink("../../..", r.join("usr/lib/up")).unwrap();
        symlink("lib", r.join("usr/rel")).unwrap();
        symlink("ok", r.join("usr/lib/link")).unwrap();
        std::fs::create_dir(r.join("usr/lib/dir")).unwrap();
        let root = Root::open(r).unwrap();

        let f = root.open_file(b"/usr/lib/ok").unwrap();
        assert_eq!(f.stat.st_size, 6);
        // A relative symlink that stays inside is fine.
        assert!(root.open_file(b"/usr/rel/ok").is_ok());
        for (p, want) in [
            (&b"/usr/evil/secret"[..], "outside the root"),
            (b"/usr/lib/up/etc/passwd", "outside the root"),
            (b"/usr/lib/link", "symlink"),
            (b"/usr/lib/dir", "not a regular file"),
            (b"/usr/lib/none", "no such file"),
            (b"/usr/../etc", "'..'"),
        ] {
            let e = root.open_file(p).err().unwrap();
            assert!(
                e.to_string().contains(want),
                "{}: {e}",
                String::from_utf8_lossy(p)
            );
        }
        // The manual walk refuses symlinked directories altogether.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        assert!(matches!(
            root.open_walk(b"usr/evil/secret", flags),
            Err(ResolveError::Escapes(_))
        ));
        assert!(root.open_walk(b"usr/lib/ok", flags).is_ok());
    }
}
