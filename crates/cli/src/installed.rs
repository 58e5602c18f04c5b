//! Installed packages as `enable` and `audit` need them (files with their verity signatures),
//! and a strict resolver that opens a package's file inside `--root` without ever following a
//! symlink out of it.
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use fsverity::HashAlgorithm;
use rpm_format::{tags, FileList, Header};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::rpmdb::{PackageRow, Rpmdb};

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
pub fn package_from_header(hnum: i64, h: &Header) -> anyhow::Result<InstalledPackage> {
    let get = |tag| -> anyhow::Result<String> {
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
    let algorithm = match h.get_u32(tags::SIG_VERITYSIGNATUREALGO)? {
        None => HashAlgorithm::Sha256,
        Some(id) => HashAlgorithm::from_id(id)
            .ok_or_else(|| anyhow::anyhow!("unknown fs-verity algorithm {id} in tag 277"))?,
    };
    let sigs = h.get_string_array_bytes(tags::SIG_VERITYSIGNATURES)?;
    // rpm only uses the array when its count equals the file count (lib/rpmfi.c); so do we.
    let sigs = sigs.filter(|s| s.len() == list.len());
    let has_signatures = sigs.is_some() && !list.is_empty();
    let mut files = Vec::with_capacity(list.len());
    for (i, f) in list.files().iter().enumerate() {
        let signature = match &sigs {
            Some(s) if !s[i].is_empty() => {
                let der = rpm_format::base64::decode_lenient(s[i])
                    .map_err(|e| anyhow::anyhow!("signature of {}: {e}", f.path_lossy()))?;
                (!der.is_empty()).then_some(der)
            }
            _ => None,
        };
        files.push(InstalledFile {
            path: f.path.clone(),
            mode: f.mode,
            flags: f.flags,
            size: f.size,
            signature,
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
pub fn load_packages(db: &Rpmdb) -> anyhow::Result<Vec<anyhow::Result<InstalledPackage>>> {
    let rows = db.packages()?;
    Ok(rows
        .into_iter()
        .map(|PackageRow { hnum, header }| {
            let h = header?;
            package_from_header(hnum, &h).map_err(|e| {
                anyhow::anyhow!("rpmdb row hnum={hnum}: {}", crate::util::error_chain(&e))
            })
        })
        .collect())
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

// ---------------------------------------------------------------------------------------------
// Strict resolution inside the root
// ---------------------------------------------------------------------------------------------

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
    pub fn open(path: &Path) -> anyhow::Result<Root> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow::anyhow!("root {}: {}", path.display(), io::Error::from(e)))?;
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
}

// ---------------------------------------------------------------------------------------------
// Checks shared by enable and audit
// ---------------------------------------------------------------------------------------------

/// Where `enable`/`audit` look for trusted certificates when no `--cert` is given: the same
/// directory the boot integration loads into `.fs-verity`.
pub const DEFAULT_CERT_DIR: &str = "/etc/rpm-verity/certs";

/// Certificates to check signatures against in user space: `--cert` files, else every file in
/// [`DEFAULT_CERT_DIR`] (missing directory = none).
pub fn trusted_certs(
    certs: &[PathBuf],
) -> anyhow::Result<(Vec<verity_signing::Certificate>, String)> {
    use anyhow::Context;
    let mut out = Vec::new();
    let mut files = certs.to_vec();
    let mut source = "--cert".to_string();
    if files.is_empty() {
        source = DEFAULT_CERT_DIR.to_string();
        if let Ok(rd) = std::fs::read_dir(DEFAULT_CERT_DIR) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
    }
    for c in &files {
        let data = verity_signing::read_bounded(c)
            .with_context(|| format!("certificate {}", c.display()))?;
        let certs = verity_signing::Certificate::parse_all(&data)
            .with_context(|| format!("certificate {}", c.display()))?;
        out.extend(certs);
    }
    Ok((out, source))
}

/// A read that failed with EIO at a known offset: on a verity file, a block that does not
/// match the Merkle tree.
#[derive(Debug)]
pub enum ReadFailure {
    Eio { offset: u64 },
    Io(io::Error),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Eio { offset } => write!(
                f,
                "I/O error reading at offset {offset} (block {})",
                offset / 4096
            ),
            ReadFailure::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Reads through `file` in user space, which makes the kernel check every block of a verity
/// file against its Merkle tree. The offset of the first EIO says which block was tampered.
pub fn read_through(file: &File) -> Result<u64, ReadFailure> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        match file.read_at(&mut buf, off) {
            Ok(0) => return Ok(off),
            Ok(n) => off += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                return Err(ReadFailure::Eio { offset: off })
            }
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
}

/// The fs-verity digest computed in user space (the same value the kernel would measure).
pub fn userspace_digest(
    file: &File,
    size: u64,
    alg: HashAlgorithm,
) -> Result<fsverity::FileDigest, ReadFailure> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    struct Counting<'a> {
        f: &'a File,
        pos: Arc<AtomicU64>,
    }
    impl io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            use std::os::unix::fs::FileExt;
            let off = self.pos.load(Ordering::Relaxed);
            let n = self.f.read_at(buf, off)?;
            self.pos.store(off + n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }
    let params = fsverity::Params::new(alg, fsverity::params::DEFAULT_BLOCK_SIZE, &[])
        .map_err(|e| ReadFailure::Io(io::Error::other(e.to_string())))?;
    let pos = Arc::new(AtomicU64::new(0));
    let mut b = fsverity::DigestBuilder::new(&params);
    let r = b.read_from_sized(
        Counting {
            f: file,
            pos: pos.clone(),
        },
        Some(size),
        |_| {},
    );
    match r {
        Ok(_) => Ok(b.finish()),
        Err(e) if e.raw_os_error() == Some(libc::EIO) => Err(ReadFailure::Eio {
            offset: pos.load(Ordering::Relaxed),
        }),
        Err(e) => Err(ReadFailure::Io(e)),
    }
}

/// The outcome of checking a digest against a package signature in user space.
#[derive(Debug)]
pub enum ContentCheck {
    /// The signature is valid for this digest; the subject of the certificate that says so.
    Matches(String),
    /// A trusted certificate made the signature, but not over this digest.
    Differs,
    /// No trusted certificate for the signer (or none at all), or an unreadable signature.
    Unverifiable(String),
}

pub fn check_digest(
    sig: &[u8],
    digest: &fsverity::FileDigest,
    trusted: &[verity_signing::Certificate],
) -> ContentCheck {
    use verity_signing::VerifyError;
    match verity_signing::verify_signature(sig, digest, trusted) {
        Ok(c) => ContentCheck::Matches(c.subject().to_string()),
        Err(VerifyError::BadSignature(_)) | Err(VerifyError::DigestAlgorithmMismatch { .. }) => {
            ContentCheck::Differs
        }
        Err(VerifyError::UnknownSigner(s)) if trusted.is_empty() => ContentCheck::Unverifiable(
            format!("signed by {s}; no trusted certificate given (--cert or {DEFAULT_CERT_DIR})"),
        ),
        Err(e) => ContentCheck::Unverifiable(e.to_string()),
    }
}

/// Who made a package signature, for messages ("cert X is not in the keyring").
pub fn signer_of(sig: &[u8]) -> String {
    match verity_signing::Pkcs7Signature::parse(sig) {
        Ok(p) => p.signer().to_string(),
        Err(e) => format!("unparseable signature ({e})"),
    }
}

/// What a file that already has fs-verity on says about itself.
#[derive(Debug)]
pub enum VerityVerdict {
    /// Its stored built-in signature is the package's (the kernel checked it against the
    /// content when the file was opened), or its measured digest verifies with a trusted cert.
    Good(fsverity::FileDigest),
    /// It carries the signature of another installed file: content swapped by rename.
    Swapped {
        other: String,
        digest: fsverity::FileDigest,
    },
    /// Its digest is not the one the package signed.
    Modified(fsverity::FileDigest),
    /// Verity is on but neither the stored signature nor a trusted cert can tell.
    Unverifiable(fsverity::FileDigest, String),
}

/// Checks a verity file without re-hashing it: FS_IOC_READ_VERITY_METADATA for the stored
/// signature, FS_IOC_MEASURE_VERITY for the digest.
pub fn check_verity_file(
    file: &File,
    expected: &[u8],
    sig_owner: &HashMap<&[u8], String>,
    self_path: &str,
    trusted: &[verity_signing::Certificate],
) -> Result<VerityVerdict, fsverity::linux::MeasureError> {
    use fsverity::linux;
    let digest = linux::measure_verity(file.as_fd())?.ok_or(linux::MeasureError::NoMetadata)?;
    let stored = match linux::read_signature(file.as_fd()) {
        Ok(s) => s,
        Err(linux::MeasureError::NoMetadata) => None,
        Err(e) => return Err(e),
    };
    if let Some(stored) = &stored {
        if stored.as_slice() == expected {
            return Ok(VerityVerdict::Good(digest));
        }
        if let Some(other) = sig_owner.get(stored.as_slice()) {
            if other != self_path {
                return Ok(VerityVerdict::Swapped {
                    other: other.clone(),
                    digest,
                });
            }
        }
    }
    Ok(match check_digest(expected, &digest, trusted) {
        ContentCheck::Matches(_) => VerityVerdict::Good(digest),
        ContentCheck::Differs => VerityVerdict::Modified(digest),
        ContentCheck::Unverifiable(why) => VerityVerdict::Unverifiable(digest, why),
    })
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

/// Why a file is not a candidate for verity, as rpm's plugin decides (spec §6.1).
pub fn skip_reason(f: &InstalledFile, config: bool) -> Option<&'static str> {
    if f.is_ghost() {
        Some("ghost")
    } else if !f.is_regular() {
        Some("not-regular")
    } else if f.is_config() && !f.is_executable() && !config {
        Some("config")
    } else if f.signature.is_none() {
        Some("unsigned")
    } else {
        None
    }
}
