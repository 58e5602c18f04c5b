//! Signing a whole yum/dnf repository: every binary package under a directory, then its
//! metadata refreshed with `createrepo_c --update`, so that a client's checksums match the
//! signed files.
//!
//! Resumable: a package whose verity signatures already are what signing it now would give —
//! the same hash algorithm, every file the selection picks signed by this certificate (issuer
//! and serial), no other signer — is skipped without being read past its headers. The check
//! trusts the signatures' signer field; it does not verify them (that is `verify`'s job and
//! needs the whole payload).
//!
//! Failures: a package that fails is reported and left as it was; the others are still signed,
//! and the metadata is refreshed whenever the run got as far as signing, so the repository
//! never serves a signed package under its old checksum. If `createrepo_c` itself fails, the
//! signed packages stay signed and the metadata is stale until the next run, which skips them
//! and refreshes it again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use verity_signing::{Certificate, Signer};

use crate::show::{self, EntryStatus};
use crate::sign::{self, Action, SignOptions, SignOutcome, SignProgress, SignStatus};
use crate::Progress;

/// The program that refreshes repository metadata.
pub const CREATEREPO: &str = "createrepo_c";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("repository {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("repository {}: no repodata/ directory (make the repository with `createrepo_c {}` first)", .0.display(), .0.display())]
    NoMetadata(PathBuf),
    #[error("the signer's certificate cannot be read")]
    Certificate(#[source] verity_signing::CertError),
    #[error("signing")]
    Sign(#[source] crate::error::SignError),
    #[error("{CREATEREPO} is not installed (Debian package createrepo-c); packages signed in this run keep their signatures, but the metadata of {} was not refreshed: install it and run `{CREATEREPO} --update {}`, or run sign --repo again", dir.display(), dir.display())]
    CreaterepoMissing { dir: PathBuf },
    #[error("`{CREATEREPO} --update {}` failed ({status}): {stderr}; packages signed in this run keep their signatures, but the metadata is stale until a run succeeds (sign --repo again: it signs nothing more and refreshes)", dir.display())]
    CreaterepoFailed {
        dir: PathBuf,
        status: String,
        stderr: String,
    },
}

/// How the metadata refresh went.
#[derive(Clone, Debug, Serialize)]
pub struct MetadataRefresh {
    pub command: String,
    pub seconds: f64,
}

/// The binary packages under `dir` (recursively, sorted by path), as `sign --repo` takes them:
/// `*.rpm` but not `*.src.rpm`, nothing under `repodata/` or in hidden directories, and no
/// hidden files (a killed run's `.NAME.tmpPID.N`).
pub fn find_packages(dir: &Path) -> Result<Vec<PathBuf>, RepoError> {
    let meta = fs::metadata(dir).map_err(|source| RepoError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(RepoError::NotADirectory(dir.to_path_buf()));
    }
    if !dir.join("repodata").is_dir() {
        return Err(RepoError::NoMetadata(dir.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let read = fs::read_dir(&d).map_err(|source| RepoError::Read {
            path: d.clone(),
            source,
        })?;
        for entry in read {
            let entry = entry.map_err(|source| RepoError::Read {
                path: d.clone(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || (d == dir && name == "repodata") {
                continue;
            }
            let kind = entry.file_type().map_err(|source| RepoError::Read {
                path: entry.path(),
                source,
            })?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if name.ends_with(".rpm") && !name.ends_with(".src.rpm") {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Why `pkg` needs no signing by `cert` under `opts` (`Some(reason)`), or `None` when it must
/// be signed. Reads only the headers, through [`show::show_package`].
pub fn already_signed(pkg: &Path, cert: &Certificate, opts: &SignOptions) -> Option<String> {
    let shown = show::show_package(pkg);
    if shown.error.is_some() || !shown.has_signatures || shown.malformed > 0 {
        return None;
    }
    if shown.algorithm != Some(opts.hash_alg.name()) {
        return None;
    }
    let ours = show::Signer {
        issuer: cert.issuer().to_string(),
        serial: cert.serial_hex(),
    };
    if shown.signers.iter().any(|s| s.signer != ours) {
        return None;
    }
    let sel = &opts.selection;
    for f in &shown.files {
        let signed = f.status == EntryStatus::Signed;
        let path = f.path.as_bytes();
        let excluded = sel.exclude.iter().any(|g| g.matches(path));
        let by_glob = sel.files.iter().any(|g| g.matches(path));
        // With --executables a file outside the globs is chosen by content, which the headers
        // do not tell: either state is accepted for it.
        let decided = excluded || by_glob || !sel.executables;
        let wanted = !excluded && (by_glob || (sel.files.is_empty() && !sel.executables));
        if decided && signed != wanted {
            return None;
        }
    }
    Some(format!("already signed by {ours}"))
}

/// Signs what needs signing among `packages` (from [`find_packages`]) and refreshes the
/// metadata of `dir`. `progress` hears of every package by its index in `packages`, skipped
/// ones included. The outcomes come back in the order of `packages`; the refresh is `Err`
/// when `createrepo_c` is missing or fails.
pub fn sign_repository(
    dir: &Path,
    packages: &[PathBuf],
    opts: &SignOptions,
    signer: &dyn Signer,
    threads: usize,
    progress: &dyn SignProgress,
) -> Result<(Vec<SignOutcome>, Result<MetadataRefresh, RepoError>), RepoError> {
    let cert = Certificate::from_der(signer.certificate_der()).map_err(RepoError::Certificate)?;
    let mut outcomes: Vec<Option<SignOutcome>> = vec![None; packages.len()];
    let mut todo = Vec::new();
    let mut todo_index = Vec::new();
    // Headers only, but a distribution has tens of thousands of packages: in parallel.
    let verdicts: Vec<Option<String>> = {
        use rayon::prelude::*;
        packages
            .par_iter()
            .map(|p| already_signed(p, &cert, opts))
            .collect()
    };
    for ((i, pkg), verdict) in packages.iter().enumerate().zip(verdicts) {
        match verdict {
            Some(reason) => {
                let mut o = skipped(pkg, reason);
                o.package_size = fs::metadata(pkg).map(|m| m.len()).unwrap_or(0);
                progress.finished(i, &o);
                outcomes[i] = Some(o);
            }
            None => {
                todo.push(pkg.clone());
                todo_index.push(i);
            }
        }
    }
    let mtimes: Vec<Option<SystemTime>> = todo.iter().map(|p| modified(p)).collect();
    let mapped = Remap {
        inner: progress,
        index: &todo_index,
    };
    let signed = sign::sign_packages(&todo, opts, Action::Sign(signer), threads, &mapped)
        .map_err(RepoError::Sign)?;
    for ((o, i), before) in signed.into_iter().zip(&todo_index).zip(&mtimes) {
        if o.status == SignStatus::Signed {
            make_mtime_differ(&packages[*i], *before);
        }
        outcomes[*i] = Some(o);
    }
    let refresh = refresh_metadata(dir);
    Ok((outcomes.into_iter().flatten().collect(), refresh))
}

fn skipped(pkg: &Path, reason: String) -> SignOutcome {
    SignOutcome::skipped(pkg, reason)
}

fn modified(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `createrepo_c --update` reuses a package's old metadata when its size and mtime (in whole
/// seconds) are unchanged. Signing in place keeps the size, so a package signed within the
/// second it was last written would keep its stale checksum: move its mtime on by a second.
fn make_mtime_differ(pkg: &Path, before: Option<SystemTime>) {
    let (Some(before), Some(now)) = (before, modified(pkg)) else {
        return;
    };
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    if secs(now) > secs(before) {
        return;
    }
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(secs(before) + 1);
    if let Ok(f) = fs::File::options().write(true).open(pkg) {
        let _ = f.set_modified(later);
    }
}

/// Runs `createrepo_c --update DIR`.
pub fn refresh_metadata(dir: &Path) -> Result<MetadataRefresh, RepoError> {
    let started = std::time::Instant::now();
    let out = Command::new(CREATEREPO)
        .arg("--update")
        .arg("--quiet")
        .arg(dir)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RepoError::CreaterepoMissing {
                dir: dir.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(RepoError::CreaterepoFailed {
                dir: dir.to_path_buf(),
                status: "could not start".into(),
                stderr: e.to_string(),
            })
        }
    };
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let text = text.trim();
        let tail: String = text
            .chars()
            .skip(text.chars().count().saturating_sub(2000))
            .collect();
        return Err(RepoError::CreaterepoFailed {
            dir: dir.to_path_buf(),
            status: out.status.to_string(),
            stderr: tail,
        });
    }
    Ok(MetadataRefresh {
        command: format!("{CREATEREPO} --update {}", dir.display()),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Hands the sign engine's progress on under the packages' indices in the whole repository.
struct Remap<'a> {
    inner: &'a dyn SignProgress,
    index: &'a [usize],
}

impl Progress for Remap<'_> {
    fn started(&self, total: u64) {
        self.inner.started(total)
    }
    fn hashed(&self, n: u64) {
        self.inner.hashed(n)
    }
}

impl SignProgress for Remap<'_> {
    fn finished(&self, index: usize, outcome: &SignOutcome) {
        self.inner.finished(self.index[index], outcome)
    }
}
