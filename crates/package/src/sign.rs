//! Adding fs-verity signatures (tags 276/277) to RPM packages, byte-compatible with
//! `rpmsign --signverity` of rpm 4.18, without GPG, and without rpmsign's crashes on hardlinks
//! and sized `%ghost` files; and removing them (`rpmsign --delfilesign`).

mod copy;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use fsverity::{FileDigest, HashAlgorithm};
use rpm_format::{Lead, Package, RewriteMode, RewritePlan};
use serde::Serialize;
use verity_signing::{DistinctDigests, Signer};

use crate::digest::{self, HashPool, Progress};
use crate::error::SignError;
use crate::output::AtomicFile;
use crate::select::FileSelection;
use crate::signatures::VeritySignatures;
use copy::EarlyCopy;

/// What to do to each package.
#[derive(Clone, Copy)]
pub enum Action<'a> {
    /// Add signatures made by this signer (replacing any there are).
    Sign(&'a dyn Signer),
    /// Remove the verity tags.
    Delete,
}

pub struct SignOptions {
    /// fs-verity hash algorithm of the signed digests (tag 277).
    pub hash_alg: HashAlgorithm,
    /// Write signed copies here instead of changing the packages.
    pub output_dir: Option<PathBuf>,
    /// Also sign source packages (skipped by default, as rpm 6 does).
    pub include_source: bool,
    /// Report every file's path and fs-verity digest in the outcome.
    pub list_files: bool,
    /// Which files get a signature; the others an empty entry in tag 276.
    pub selection: FileSelection,
}

/// What happened to one package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignStatus {
    Signed,
    Deleted,
    Skipped,
    Error,
}

/// How the new signature header was written: over the old one (it fit, thanks to rpm's
/// reserved space) or into a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    InPlace,
    Rewrite,
}

/// The verity signatures a package carried before: what `--delete` removed or a re-sign
/// replaced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PreviousSignatures {
    /// Files that had an entry in tag 276 (several may share one signature).
    pub files: usize,
    /// Distinct signers (issuer and serial) of the entries that parse.
    pub signers: Vec<String>,
}

impl PreviousSignatures {
    fn of(h: &rpm_format::Header) -> Option<PreviousSignatures> {
        let sigs = VeritySignatures::read(h).ok()??;
        let mut signers: Vec<String> = Vec::new();
        for i in 0..sigs.len() {
            let Ok(Some(der)) = sigs.get(i) else { continue };
            if let Ok(p) = verity_signing::Pkcs7Signature::parse(&der) {
                let who = p.signer().to_string();
                if !signers.contains(&who) {
                    signers.push(who);
                }
            }
        }
        Some(PreviousSignatures {
            files: sigs.len(),
            signers,
        })
    }
}

/// A file of the package and the fs-verity digest that was signed for it.
#[derive(Clone, Debug, Serialize)]
pub struct SignedFile {
    pub path: String,
    pub digest: String,
}

/// One package's result, in the shape `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SignOutcome {
    pub package: String,
    pub status: SignStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub files: usize,
    pub bytes_hashed: u64,
    pub signatures_made: usize,
    /// Files that got a signature; the others (left out by `SignOptions::selection`) have an
    /// empty entry.
    pub files_signed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WriteMode>,
    pub signature_header_before: usize,
    pub signature_header_after: usize,
    pub signature_header_growth: i64,
    pub file_growth: i64,
    /// Size of the package before, for growth in percent of the package.
    pub package_size: u64,
    /// Tag 276 as it was before (`None`: the package had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<PreviousSignatures>,
    /// Every file's fs-verity digest, when asked for (`SignOptions::list_files`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_digests: Vec<SignedFile>,
    /// Temporary files of this package that an earlier, killed run left beside the
    /// destination, removed before writing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale_removed: Vec<String>,
    pub seconds: f64,
}

impl SignOutcome {
    fn new(package: &Path) -> SignOutcome {
        SignOutcome {
            package: package.display().to_string(),
            status: SignStatus::Error,
            output: None,
            error: None,
            files: 0,
            bytes_hashed: 0,
            signatures_made: 0,
            files_signed: 0,
            mode: None,
            signature_header_before: 0,
            signature_header_after: 0,
            signature_header_growth: 0,
            file_growth: 0,
            package_size: 0,
            replaced: None,
            file_digests: Vec::new(),
            stale_removed: Vec::new(),
            seconds: 0.0,
        }
    }

    /// A package left alone, and why.
    pub fn skipped(package: &Path, reason: String) -> SignOutcome {
        let mut o = SignOutcome::new(package);
        o.status = SignStatus::Skipped;
        o.error = Some(reason);
        o
    }
}

/// Reports of a run over several packages.
pub trait SignProgress: Progress {
    /// Package `index` (of the argument list) is done.
    fn finished(&self, index: usize, outcome: &SignOutcome);
}

/// Signs (or strips) `packages`, up to `threads` at once sharing one hashing pool, and tells
/// `progress` as each finishes. Results come back in argument order.
pub fn sign_packages(
    packages: &[PathBuf],
    opts: &SignOptions,
    action: Action<'_>,
    threads: usize,
    progress: &dyn SignProgress,
) -> Result<Vec<SignOutcome>, SignError> {
    check_destinations(packages, opts)?;
    let stale = stale_temp_files(packages, opts);
    let pool = HashPool::new(threads, opts.hash_alg)?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SignOutcome>>> =
        Mutex::new((0..packages.len()).map(|_| None).collect());
    let concurrent = threads.min(packages.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..concurrent {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(pkg) = packages.get(i) else {
                    break;
                };
                let mut out = sign_package(pkg, opts, action, &pool, progress);
                out.stale_removed = stale[i].clone();
                progress.finished(i, &out);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(out);
                }
            });
        }
    });
    pool.shutdown();
    Ok(results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect())
}

/// Removes what killed runs left beside the destinations (see
/// [`crate::output::remove_stale_temp_files`]), for each package the paths removed.
fn stale_temp_files(packages: &[PathBuf], opts: &SignOptions) -> Vec<Vec<String>> {
    let dests: Vec<PathBuf> = packages
        .iter()
        .map(|p| {
            source_and_destination(p, opts)
                .map(|(_, d)| d)
                .unwrap_or_default()
        })
        .collect();
    crate::output::remove_stale_temp_files(&dests)
        .into_iter()
        .map(|v| v.iter().map(|p| p.display().to_string()).collect())
        .collect()
}

/// Where a package is read from and written to. A symlink is resolved first, so that both
/// modes sign the package it points to and keep the link: in place, the target is replaced;
/// with an output directory, the copy gets the name the user gave.
fn source_and_destination(pkg: &Path, opts: &SignOptions) -> Result<(PathBuf, PathBuf), SignError> {
    let real = fs::canonicalize(pkg).map_err(SignError::Stat)?;
    let dest = match &opts.output_dir {
        Some(dir) => dir.join(pkg.file_name().ok_or(SignError::NotAFileName)?),
        None => real.clone(),
    };
    Ok((real, dest))
}

/// Refuses, before anything is signed, a run that would lose a package: two inputs written
/// to the same output (`--output-dir out a/x.rpm b/x.rpm`: the second rename would silently
/// replace the first), or an input that is its own output (`--output-dir .` with `./x.rpm`).
/// Paths that cannot be resolved are left to [`sign_package`], which reports them per
/// package.
pub fn check_destinations(packages: &[PathBuf], opts: &SignOptions) -> Result<(), SignError> {
    let out_dir = match &opts.output_dir {
        Some(d) => Some(fs::canonicalize(d).map_err(|source| SignError::OutputDir {
            path: d.clone(),
            source,
        })?),
        None => None,
    };
    let mut taken: std::collections::HashMap<PathBuf, &Path> = Default::default();
    for pkg in packages {
        let Ok(real) = fs::canonicalize(pkg) else {
            continue;
        };
        let dest = match (&out_dir, pkg.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            (Some(_), None) => continue,
            (None, _) => real.clone(),
        };
        if out_dir.is_some() && is_same_file(&dest, &real) {
            return Err(SignError::OverItself {
                package: pkg.clone(),
                dest,
            });
        }
        if let Some(first) = taken.insert(dest.clone(), pkg) {
            return Err(SignError::SameDestination {
                first: first.to_path_buf(),
                second: pkg.clone(),
                dest,
            });
        }
    }
    Ok(())
}

/// The same path, or another name of the same file (device and inode).
fn is_same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Signs (or strips) one package; failures are in the outcome, with whatever was learnt
/// before them.
pub fn sign_package(
    pkg: &Path,
    opts: &SignOptions,
    action: Action<'_>,
    pool: &HashPool,
    progress: &dyn Progress,
) -> SignOutcome {
    let started = Instant::now();
    let mut out = SignOutcome::new(pkg);
    if let Err(e) = process(pkg, opts, action, pool, progress, &mut out) {
        out.status = SignStatus::Error;
        out.error = Some(crate::error_chain(&e));
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

/// The identity of a file's content at the time we read it: the package must not change
/// between reading it and writing the new signature header into it.
fn fingerprint(meta: &fs::Metadata) -> (u64, u64, i64, i64) {
    (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// The new signature header, and what the outcome reports about the package.
struct Prepared {
    headers: rpm_format::PackageHeaders,
    plan: RewritePlan,
    files: usize,
    bytes_hashed: u64,
    signatures_made: usize,
    files_signed: usize,
    early: Option<EarlyCopy>,
    file_digests: Vec<SignedFile>,
}

fn process(
    pkg: &Path,
    opts: &SignOptions,
    action: Action<'_>,
    pool: &HashPool,
    progress: &dyn Progress,
    out: &mut SignOutcome,
) -> Result<(), SignError> {
    let (real, dest) = source_and_destination(pkg, opts)?;
    let pkg = real.as_path();
    let before = fs::metadata(pkg).map_err(SignError::Stat)?;
    if before.is_dir() {
        return Err(SignError::IsDirectory);
    }
    out.package_size = before.len();
    let prepared = match action {
        Action::Delete => prepare_delete(pkg, opts)?,
        Action::Sign(signer) => prepare_sign(pkg, &dest, opts, signer, pool, progress)?,
    };
    let Some(mut p) = prepared else {
        out.status = SignStatus::Skipped;
        out.error = Some("source package (use --include-source to sign it)".into());
        return Ok(());
    };
    out.replaced = PreviousSignatures::of(p.headers.signature.header());
    out.file_digests = std::mem::take(&mut p.file_digests);
    out.files = p.files;
    out.bytes_hashed = p.bytes_hashed;
    out.signatures_made = p.signatures_made;
    out.files_signed = p.files_signed;
    out.signature_header_before = p.plan.orig_size + 32;
    out.signature_header_after = p.plan.signature_bytes.len();
    out.signature_header_growth = p.plan.diff();
    out.file_growth = p.plan.file_growth();
    out.mode = Some(match p.plan.mode {
        RewriteMode::InPlace => WriteMode::InPlace,
        RewriteMode::Rewrite => WriteMode::Rewrite,
    });

    let now = fs::metadata(pkg).map_err(SignError::Stat)?;
    if fingerprint(&now) != fingerprint(&before) {
        return Err(SignError::Changed);
    }
    write_package(pkg, &dest, opts, p, &before)?;
    if opts.output_dir.is_some() {
        out.output = Some(dest.display().to_string());
    }
    out.status = match action {
        Action::Sign(_) => SignStatus::Signed,
        Action::Delete => SignStatus::Deleted,
    };
    Ok(())
}

/// The package without verity tags; `None` for a source package that is to be skipped.
fn prepare_delete(pkg: &Path, opts: &SignOptions) -> Result<Option<Prepared>, SignError> {
    let f = File::open(pkg).map_err(SignError::Open)?;
    let p = Package::open(std::io::BufReader::new(f))?;
    if p.is_source() && !opts.include_source {
        return Ok(None);
    }
    let files = p.files()?.len();
    let plan = p.signature.without_verity()?;
    let (headers, _) = p.into_parts();
    Ok(Some(Prepared {
        headers,
        plan,
        files,
        bytes_hashed: 0,
        signatures_made: 0,
        files_signed: 0,
        early: None,
        file_digests: Vec::new(),
    }))
}

/// Digests and signs every file; `None` for a source package that is to be skipped. The
/// package copy into `dest` starts first, so that it runs beside decompression and hashing.
fn prepare_sign(
    pkg: &Path,
    dest: &Path,
    opts: &SignOptions,
    signer: &dyn Signer,
    pool: &HashPool,
    progress: &dyn Progress,
) -> Result<Option<Prepared>, SignError> {
    let early = {
        let f = File::open(pkg).map_err(SignError::Open)?;
        let p = Package::open_unverified(std::io::BufReader::new(f))?;
        if p.is_source() && !opts.include_source {
            return Ok(None);
        }
        let in_place_allowed = opts.output_dir.is_none();
        copy::start_early_copy(pkg, &p, dest, in_place_allowed, opts, signer)?
    };
    let digests = digest::digest_package(pkg, opts.hash_alg, pool, progress)?;
    if let Err(e) = digests.integrity {
        return Err(SignError::Corrupt(e));
    }
    if let Some(&first) = digests.mismatched.first() {
        let path = digests.files.get(first).map(|f| f.path_lossy());
        return Err(SignError::ContentMismatch {
            path: path.unwrap_or_default(),
            more: digests.mismatched.len() - 1,
        });
    }
    let selected: Vec<bool> = digests
        .files
        .files()
        .iter()
        .zip(&digests.kinds)
        .map(|(f, &k)| opts.selection.selects(&f.path, k))
        .collect();
    let (sigs, made) = sign_selected(signer, &digests.digests, &selected)?;
    let plan = if digests.digests.is_empty() {
        // A package without files gets no verity tags (rpm 4.18 writes a lone 277 there, by
        // accident).
        digests.headers.signature.without_verity()?
    } else {
        copy::lay_out(&digests.headers.signature, &sigs, opts.hash_alg, signer)?
    };
    Ok(Some(Prepared {
        headers: digests.headers,
        plan,
        files: digests.files.len(),
        bytes_hashed: digests.bytes_hashed,
        file_digests: if opts.list_files {
            digests
                .files
                .files()
                .iter()
                .zip(&digests.digests)
                .map(|(f, d)| SignedFile {
                    path: f.path_lossy(),
                    digest: d.to_string(),
                })
                .collect()
        } else {
            Vec::new()
        },
        signatures_made: made,
        files_signed: selected.iter().filter(|&&s| s).count(),
        early,
    }))
}

/// Puts the new signature header in place: finishing the early copy when its layout was
/// right, else writing a new file or, when it fits, over the old header.
fn write_package(
    pkg: &Path,
    dest: &Path,
    opts: &SignOptions,
    p: Prepared,
    before: &fs::Metadata,
) -> Result<(), SignError> {
    let Prepared {
        headers,
        plan,
        early,
        ..
    } = p;
    if let Some(copy) = early {
        if copy.header_len == plan.signature_bytes.len() {
            let dest = copy.dest.clone();
            return finish_early_copy(copy, pkg, &plan, &headers.main, before).map_err(|e| {
                SignError::Write {
                    path: dest,
                    source: Box::new(e),
                }
            });
        }
        // The prediction missed (signatures of different lengths, e.g. a remote signer that
        // changed keys): drop the early copy and write the file the plain way.
        copy.abandon();
    }
    let main_offset = headers.main_header_offset();
    if opts.output_dir.is_some() {
        return write_new_file(pkg, dest, &plan, &headers.main, main_offset, before).map_err(|e| {
            SignError::Write {
                path: dest.to_path_buf(),
                source: Box::new(e),
            }
        });
    }
    match plan.mode {
        RewriteMode::InPlace => {
            let f = OpenOptions::new()
                .write(true)
                .open(pkg)
                .map_err(SignError::OpenForWriting)?;
            // One write of the header's bytes, which SIGINT/SIGTERM wait for.
            let _whole = crate::output::uninterrupted().map_err(SignError::Interrupted)?;
            f.write_all_at(&plan.signature_bytes, rpm_format::lead::LEAD_SIZE as u64)
                .map_err(SignError::WriteHeader)?;
            f.sync_all().map_err(SignError::Fsync)?;
            Ok(())
        }
        RewriteMode::Rewrite => write_new_file(pkg, pkg, &plan, &headers.main, main_offset, before),
    }
}

/// Signs the digests of the selected files (`selected[i]`); the others get an empty entry.
fn sign_selected(
    signer: &dyn Signer,
    digests: &[FileDigest],
    selected: &[bool],
) -> Result<(Vec<Vec<u8>>, usize), SignError> {
    if selected.iter().all(|&s| s) {
        return sign_all(signer, digests);
    }
    let chosen: Vec<FileDigest> = digests
        .iter()
        .zip(selected)
        .filter(|(_, &s)| s)
        .map(|(d, _)| d.clone())
        .collect();
    if chosen.is_empty() {
        return Ok((vec![Vec::new(); digests.len()], 0));
    }
    let (mut made, n) = sign_all(signer, &chosen)?;
    made.reverse();
    let all = selected
        .iter()
        .map(|&s| {
            if s {
                made.pop().unwrap_or_default()
            } else {
                Vec::new()
            }
        })
        .collect();
    Ok((all, n))
}

/// Signs each distinct digest once (every directory, symlink and empty file shares one) and
/// returns one signature per input digest plus the number of signatures actually made.
fn sign_all(
    signer: &dyn Signer,
    digests: &[FileDigest],
) -> Result<(Vec<Vec<u8>>, usize), SignError> {
    let distinct = DistinctDigests::new(digests);
    let unique: Vec<FileDigest> = distinct.unique.iter().map(|d| (*d).clone()).collect();
    let sigs = signer.sign_digests(&unique)?;
    let all = distinct.spread(&sigs).ok_or(SignError::SignatureCount {
        expected: unique.len(),
        got: sigs.len(),
    })?;
    Ok((all, unique.len()))
}

/// Writes lead + new signature header + the original main header and payload to a temp file
/// beside `dest`, fsyncs it and renames it over `dest`, keeping the original's mode (and owner,
/// when allowed).
fn write_new_file(
    src: &Path,
    dest: &Path,
    plan: &RewritePlan,
    main: &rpm_format::Header,
    main_offset: u64,
    src_meta: &fs::Metadata,
) -> Result<(), SignError> {
    let mut input = File::open(src).map_err(SignError::Open)?;
    let lead = new_lead(plan, main, src)?;
    let mut out = AtomicFile::create(dest).map_err(|source| SignError::Create {
        path: dest.to_path_buf(),
        source,
    })?;
    out.write_all(&lead).map_err(SignError::WriteLead)?;
    out.write_all(&plan.signature_bytes)
        .map_err(SignError::WriteHeader)?;
    input
        .seek(SeekFrom::Start(main_offset))
        .map_err(SignError::Seek)?;
    std::io::copy(&mut input, out.file()).map_err(SignError::Copy)?;
    commit_like(out, src_meta)
}

/// Joins the copy, writes lead and signature header at the front, keeps the original's mode
/// (and owner, when allowed), fsyncs and renames over the destination.
fn finish_early_copy(
    copy: EarlyCopy,
    src: &Path,
    plan: &RewritePlan,
    main: &rpm_format::Header,
    src_meta: &fs::Metadata,
) -> Result<(), SignError> {
    let mut out = copy.complete()?;
    let lead = new_lead(plan, main, src)?;
    let f = out.file();
    f.write_all_at(&lead, 0).map_err(SignError::WriteLead)?;
    f.write_all_at(&plan.signature_bytes, rpm_format::lead::LEAD_SIZE as u64)
        .map_err(SignError::WriteHeader)?;
    commit_like(out, src_meta)
}

/// Gives the new file the original's mode (and owner, when allowed), then fsyncs it and
/// renames it over the destination.
fn commit_like(out: AtomicFile, src_meta: &fs::Metadata) -> Result<(), SignError> {
    let f = out.file_ref();
    // Owner first: changing it clears set-id bits the mode then puts back.
    let _ = std::os::unix::fs::fchown(f, Some(src_meta.uid()), Some(src_meta.gid()));
    f.set_permissions(fs::Permissions::from_mode(src_meta.mode() & 0o7777))
        .map_err(SignError::SetMode)?;
    out.commit().map_err(SignError::Replace)
}

/// The lead of the new file: rpm 4.18 regenerates it (from the main header and the host's
/// arch/os numbers) when the signature header changes size, and keeps it otherwise.
fn new_lead(
    plan: &RewritePlan,
    main: &rpm_format::Header,
    src: &Path,
) -> Result<[u8; rpm_format::lead::LEAD_SIZE], SignError> {
    Ok(match plan.mode {
        RewriteMode::Rewrite => Lead::from_header_for_host(main)?.to_bytes(),
        RewriteMode::InPlace => {
            let mut b = [0u8; rpm_format::lead::LEAD_SIZE];
            File::open(src)
                .map_err(SignError::Open)?
                .read_exact(&mut b)
                .map_err(SignError::ReadLead)?;
            b
        }
    })
}
