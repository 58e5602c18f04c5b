//! Helpers shared by the commands: error reporting, atomic output files, progress bars.
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prints an error chain on one line: `rpm-verity: outer: inner: root cause`.
pub fn report_error(e: &anyhow::Error) {
    eprintln!("rpm-verity: error: {}", error_chain(e));
}

/// A file written under a temporary name in the destination's directory, fsync'ed and renamed
/// over the destination on [`AtomicFile::commit`]. Dropped without commit, it is removed, so a
/// failure never leaves partial output behind.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> io::Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let mut n = 0u32;
        loop {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".tmp{}.{n}", std::process::id()));
            let tmp = dir.join(tmp_name);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(Self {
                        file: Some(file),
                        tmp,
                        dest: dest.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    pub fn file_ref(&self) -> &File {
        self.file.as_ref().expect("file present until commit")
    }

    /// Path of the temporary file (for setting permissions before the rename).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("file present until commit");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.dest)?;
        if let Some(dir) = self.dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
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
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `data` to `dest` atomically (temp file, fsync, rename).
pub fn write_atomic(dest: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(data)?;
    f.commit()
}

/// A progress bar on stderr, hidden unless stderr is a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// `--jobs N`: 0 means one per core.
pub fn jobs_or_cores(jobs: usize) -> usize {
    if jobs > 0 {
        jobs
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Sizes rayon's global pool (used for parallel hashing of big files and for signing) once.
pub fn init_rayon(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
}

/// A counting progress bar on stderr (packages, files), hidden unless stderr is a terminal.
pub fn count_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() || total < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// An error chain on one line: `outer: inner: root cause`.
pub fn error_chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The passphrase of an encrypted key: from `--key-pass-file` (first line), else from
/// `$RPM_VERITY_KEY_PASS`, else none.
pub fn read_key_passphrase(file: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    use anyhow::Context;
    if let Some(f) = file {
        let data = fs::read(f).with_context(|| format!("passphrase file {}", f.display()))?;
        let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Ok(Some(line.to_vec()));
    }
    Ok(std::env::var_os("RPM_VERITY_KEY_PASS").map(|v| {
        use std::os::unix::ffi::OsStrExt;
        v.as_bytes().to_vec()
    }))
}

/// Lowers the calling thread's scheduling priority to the lowest nice level (Linux `nice` is
/// per thread), for work that fits in the cycles the critical path (decompression) leaves
/// free: the package copy of `sign`. Measured on the 544 MB package on two cores: copy at
/// nice 0 1.24x of decompression alone, nice 10 1.20x, nice 19 1.17x. On a busy machine such a
/// thread may get almost nothing, so whatever uses it must be able to finish its work on a
/// normal thread (see `CopyJob` in `cmd/sign.rs`); nice cannot be lowered back without
/// privilege.
pub fn background_thread() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}
