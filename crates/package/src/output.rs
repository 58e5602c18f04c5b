//! Output files that appear whole or not at all: a failed run never leaves a partial package,
//! signature or digest file behind, and a crash between write and rename leaves the original.
//!
//! Where the filesystem allows it, the new file has no name until it is complete: it is
//! opened with `O_TMPFILE` in the destination's directory, written, fsync'ed, then linked
//! (through `/proc/self/fd`) to a unique temporary name that is renamed over the destination at
//! once. A process killed while writing (even by SIGKILL) leaves nothing behind; only the
//! microseconds between link and rename can leave a named file. Elsewhere (`O_TMPFILE`
//! refused, no `/proc`) the file is written under that temporary name from the start.
//!
//! Named temporary files are registered while they exist, so that a program that catches
//! SIGINT/SIGTERM removes them with [`exit_removing_temp_files`], and a later run recognises a
//! file of the same pattern whose process is gone ([`remove_stale_temp_files`]).
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Named temporary files that exist right now, and whether the process is exiting on a
/// signal (then no new one is created).
struct Registry {
    exiting: bool,
    names: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    exiting: false,
    names: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn exiting_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted by a signal")
}

/// Removes every registered temporary file and ends the process with `code`, for a signal
/// handler (SIGINT, SIGTERM) running on an ordinary thread. The registry stays locked until
/// the process is gone, so no thread creates, links or renames a file in between, and an
/// [`Uninterrupted`] section (an in-place write) is finished first.
pub fn exit_removing_temp_files(code: i32) -> ! {
    let mut reg = registry();
    reg.exiting = true;
    for name in reg.names.drain(..) {
        let _ = fs::remove_file(name);
    }
    std::process::exit(code)
}

/// A section [`exit_removing_temp_files`] waits for: a signal arriving meanwhile ends the
/// process after it, not in the middle (used for writes into the original package).
pub struct Uninterrupted(#[allow(dead_code)] MutexGuard<'static, Registry>);

/// Starts an [`Uninterrupted`] section; an error if the process is already exiting.
pub fn uninterrupted() -> io::Result<Uninterrupted> {
    let reg = registry();
    if reg.exiting {
        return Err(exiting_error());
    }
    Ok(Uninterrupted(reg))
}

/// Directory and file name of `dest`.
fn split(dest: &Path) -> io::Result<(PathBuf, OsString)> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok((dir, name.to_os_string()))
}

/// `.NAME.tmpPID.N` in `dir`: the temporary name of an output file.
fn temp_name(dir: &Path, name: &OsStr, n: u32) -> PathBuf {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp{}.{n}", std::process::id()));
    dir.join(tmp)
}

/// How many temporary names are tried before giving up.
const MAX_TRIES: u32 = 1000;

enum Temp {
    /// `O_TMPFILE`: no name until commit.
    Anonymous,
    /// Written under this (registered) name.
    Named(PathBuf),
}

/// A file written in the destination's directory, fsync'ed and renamed over the destination
/// on [`AtomicFile::commit`]. Dropped without commit, it is gone, so a failure never leaves
/// partial output behind.
pub struct AtomicFile {
    file: Option<File>,
    temp: Temp,
    dir: PathBuf,
    name: OsString,
    dest: PathBuf,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> io::Result<Self> {
        let (dir, name) = split(dest)?;
        let (file, temp) = match open_anonymous(&dir) {
            Some(file) => (file, Temp::Anonymous),
            None => {
                let (file, tmp) = create_named(&dir, &name)?;
                (file, Temp::Named(tmp))
            }
        };
        Ok(Self {
            file: Some(file),
            temp,
            dir,
            name,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    pub fn file_ref(&self) -> &File {
        self.file.as_ref().expect("file present until commit")
    }

    /// Path of the temporary file, when it has one (`None`: an `O_TMPFILE` file, nameless
    /// until commit; set permissions through [`AtomicFile::file_ref`] instead).
    pub fn temp_path(&self) -> Option<&Path> {
        match &self.temp {
            Temp::Anonymous => None,
            Temp::Named(p) => Some(p),
        }
    }

    /// Fsyncs the file and puts it at the destination (replacing what was there), then
    /// fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("file present until commit");
        file.sync_all()?;
        match &self.temp {
            Temp::Anonymous => link_and_rename(&file, &self.dir, &self.name, &self.dest)?,
            Temp::Named(tmp) => {
                let mut reg = registry();
                if reg.exiting {
                    return Err(exiting_error());
                }
                let renamed = fs::rename(tmp, &self.dest);
                if renamed.is_ok() {
                    reg.names.retain(|n| n != tmp);
                } else {
                    // Leave it to Drop (file is taken: put it back so Drop removes it).
                    drop(reg);
                    self.file = Some(file);
                    return renamed;
                }
            }
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// An unnamed file in `dir` (`O_TMPFILE`), or `None` where that is not possible (the
/// filesystem or kernel refuses it, no `/proc/self/fd` to link it by later, or the directory
/// cannot be written: the named path then reports why).
fn open_anonymous(dir: &Path) -> Option<File> {
    if std::env::var_os("RPM_VERITY_NO_TMPFILE").is_some() || !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )
    .ok()
    .map(File::from)
}

/// A new file `.NAME.tmpPID.N` in `dir`, registered for removal on a signal.
fn create_named(dir: &Path, name: &OsStr) -> io::Result<(File, PathBuf)> {
    let mut reg = registry();
    if reg.exiting {
        return Err(exiting_error());
    }
    let mut n = 0u32;
    loop {
        let tmp = temp_name(dir, name, n);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => {
                reg.names.push(tmp.clone());
                return Ok((file, tmp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < MAX_TRIES => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Gives an `O_TMPFILE` file a unique temporary name and renames that over `dest` at once,
/// with the registry locked throughout, so that a caught signal never finds the name there.
fn link_and_rename(file: &File, dir: &Path, name: &OsStr, dest: &Path) -> io::Result<()> {
    let reg = registry();
    if reg.exiting {
        return Err(exiting_error());
    }
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let mut n = 0u32;
    let tmp = loop {
        let tmp = temp_name(dir, name, n);
        let linked = match rustix::fs::linkat(CWD, &proc_path, CWD, &tmp, AtFlags::SYMLINK_FOLLOW) {
            // No /proc after all: AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH).
            Err(Errno::NOENT) => rustix::fs::linkat(file, "", CWD, &tmp, AtFlags::EMPTY_PATH),
            other => other,
        };
        match linked {
            Ok(()) => break tmp,
            Err(Errno::EXIST) if n < MAX_TRIES => n += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let renamed = fs::rename(&tmp, dest);
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    drop(reg);
    renamed
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            if let Temp::Named(tmp) = &self.temp {
                let mut reg = registry();
                let _ = fs::remove_file(tmp);
                reg.names.retain(|n| n != tmp);
            }
        }
    }
}

/// Writes `data` to `dest` atomically (temp file, fsync, rename).
pub fn write_atomic(dest: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(data)?;
    f.commit()
}

/// The destination name and process id in a temporary name `.NAME.tmpPID.N`, if `file` is
/// one.
fn parse_temp_name(file: &OsStr) -> Option<(&str, u32)> {
    let rest = file.to_str()?.strip_prefix('.')?;
    let (rest, n) = rest.rsplit_once('.')?;
    let (name, pid) = rest.rsplit_once(".tmp")?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if name.is_empty() || !all_digits(pid) || !all_digits(n) {
        return None;
    }
    Some((name, pid.parse().ok()?))
}

/// Whether process `pid` is gone (not merely someone else's: that counts as running).
fn process_gone(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// Removes the temporary files of `dests` (`.NAME.tmpPID.N` beside each, regular files) that a
/// killed run left: those whose process no longer exists. Returns, for each destination, the
/// paths removed. Each directory is read once, however many destinations it holds. A process
/// id is only meaningful in this PID namespace: a directory shared with another namespace's
/// writers should not be cleaned this way.
pub fn remove_stale_temp_files(dests: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let mut removed = vec![Vec::new(); dests.len()];
    let mut by_dir: std::collections::HashMap<PathBuf, Vec<(String, usize)>> = Default::default();
    for (i, d) in dests.iter().enumerate() {
        if let Ok((dir, name)) = split(d) {
            if let Some(name) = name.to_str() {
                by_dir.entry(dir).or_default().push((name.to_string(), i));
            }
        }
    }
    let me = std::process::id();
    for (dir, names) in by_dir {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name();
            let Some((name, pid)) = parse_temp_name(&file) else {
                continue;
            };
            let Some(&(_, i)) = names.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if pid == me || !process_gone(pid) {
                continue;
            }
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let path = e.path();
            if fs::remove_file(&path).is_ok() {
                removed[i].push(path);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_replaces_and_drop_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("x.rpm");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        // While written: only the original has a name (O_TMPFILE) or one temp file.
        assert!(listing(t.path()).len() <= 2);
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(listing(t.path()), ["x.rpm"]);

        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"abandoned").unwrap();
        drop(f);
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(listing(t.path()), ["x.rpm"]);

        write_atomic(&t.path().join("y"), b"y").unwrap();
        assert_eq!(listing(t.path()), ["x.rpm", "y"]);
    }

    /// On a filesystem with O_TMPFILE (ext4, xfs, btrfs, tmpfs) the file being written has no
    /// name at all.
    #[test]
    fn unnamed_while_written_where_possible() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("p.rpm");
        let f = AtomicFile::create(&dest).unwrap();
        if f.temp_path().is_none() {
            assert!(listing(t.path()).is_empty());
        } else {
            assert_eq!(listing(t.path()).len(), 1);
        }
        drop(f);
        assert!(listing(t.path()).is_empty());
    }

    #[test]
    fn temp_names_are_recognised() {
        fn p(s: &str) -> Option<(&str, u32)> {
            parse_temp_name(OsStr::new(s))
        }
        assert_eq!(p(".a.rpm.tmp123.0"), Some(("a.rpm", 123)));
        assert_eq!(p(".a.rpm.tmp123.45"), Some(("a.rpm", 123)));
        assert_eq!(p(".x.tmp7.tmp123.45"), Some(("x.tmp7", 123)));
        for other in [
            "a.rpm",
            ".a.rpm.tmp.0",
            ".a.rpm.tmp12",
            ".a.rpm.tmp12.x",
            ".a.rpm.tmp1.0.rpm",
            "..tmp1.0",
            "a.rpm.tmp1.0",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
    }

    /// A temporary file of a process that is gone is removed; one of a live process, of
    /// another package or of this process stays.
    #[test]
    fn stale_temp_files_removed() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("s.rpm");
        fs::write(&dest, b"pkg").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = t.path().join(format!(".s.rpm.tmp{dead}.0"));
        fs::write(&stale, b"partial").unwrap();
        let live = t.path().join(".s.rpm.tmp1.0"); // init: always running
        fs::write(&live, b"x").unwrap();
        let mine = t.path().join(format!(".s.rpm.tmp{}.3", std::process::id()));
        fs::write(&mine, b"x").unwrap();
        let other = t.path().join(format!(".o.rpm.tmp{dead}.0"));
        fs::write(&other, b"x").unwrap();
        let second = t.path().join(format!(".b.rpm.tmp{dead}.2"));
        fs::write(&second, b"x").unwrap();
        let dests = [dest, t.path().join("b.rpm"), t.path().join("none.rpm")];
        assert_eq!(
            remove_stale_temp_files(&dests),
            vec![vec![stale.clone()], vec![second.clone()], vec![]]
        );
        assert!(!stale.exists() && !second.exists());
        assert!(live.exists() && mine.exists() && other.exists());
    }

    /// The named fallback registers its file while it exists.
    #[test]
    fn named_files_registered_while_they_exist() {
        let t = tempfile::tempdir().unwrap();
        let (f, tmp) = create_named(t.path(), OsStr::new("r.rpm")).unwrap();
        assert!(registry().names.contains(&tmp));
        let a = AtomicFile {
            file: Some(f),
            temp: Temp::Named(tmp.clone()),
            dir: t.path().to_path_buf(),
            name: "r.rpm".into(),
            dest: t.path().join("r.rpm"),
        };
        a.commit().unwrap();
        assert!(!registry().names.contains(&tmp));
        assert!(t.path().join("r.rpm").exists() && !tmp.exists());
    }
}
