//! `rpm-verity sign`: add fs-verity signatures (tags 276/277) to RPM packages, byte-compatible
//! with `rpmsign --signverity` of rpm 4.18, without GPG, and without rpmsign's crashes on
//! hardlinks and sized `%ghost` files.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use fsverity::{FileDigest, HashAlgorithm};
use rpm_format::{Lead, Package, RewriteMode, RewritePlan};
use serde::Serialize;
use verity_signing::{LocalSigner, Signer};

use crate::pkgdigest::{self, HashPool};
use crate::util::AtomicFile;

#[derive(clap::Args)]
pub struct Args {
    /// Packages to sign (in place unless --output-dir is given).
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or encrypted PKCS#8). rpmsign spelling: --fskpath.
    #[arg(long, visible_alias = "fskpath", value_name = "KEY")]
    pub key: Option<PathBuf>,

    /// PEM or DER X.509 certificate of the key (default: the key file, if it holds one).
    /// rpmsign spelling: --certpath.
    #[arg(long, visible_alias = "certpath", value_name = "CERT")]
    pub cert: Option<PathBuf>,

    /// File holding the passphrase of an encrypted key (else $RPM_VERITY_KEY_PASS).
    #[arg(long, value_name = "FILE")]
    pub key_pass_file: Option<PathBuf>,

    /// fs-verity hash algorithm. rpmsign spelling: --verityalgo.
    #[arg(long, visible_alias = "verityalgo", default_value = "sha256", value_parser = parse_alg)]
    pub hash_alg: HashAlgorithm,

    /// Write signed copies into DIR instead of changing the packages.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Remove fs-verity signatures instead of adding them (like rpmsign --delfilesign).
    #[arg(long, conflicts_with_all = ["key", "cert"])]
    pub delete: bool,

    /// Also sign source packages (skipped by default, as rpm 6 does).
    #[arg(long)]
    pub include_source: bool,

    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,

    /// Print one JSON document with a result per package instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub remote: crate::remote::RemoteSignerArgs,
}

fn parse_alg(s: &str) -> Result<HashAlgorithm, String> {
    HashAlgorithm::from_name(s)
        .ok_or_else(|| format!("unsupported fs-verity algorithm {s:?} (use sha256 or sha512)"))
}

/// What happened to one package, for the summary line and `--json`.
#[derive(Serialize)]
struct Outcome {
    package: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    files: usize,
    bytes_hashed: u64,
    signatures_made: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    signature_header_before: usize,
    signature_header_after: usize,
    signature_header_growth: i64,
    file_growth: i64,
    seconds: f64,
}

impl Outcome {
    fn new(package: &Path) -> Outcome {
        Outcome {
            package: package.display().to_string(),
            status: "error",
            output: None,
            error: None,
            files: 0,
            bytes_hashed: 0,
            signatures_made: 0,
            mode: None,
            signature_header_before: 0,
            signature_header_after: 0,
            signature_header_growth: 0,
            file_growth: 0,
            seconds: 0.0,
        }
    }

    fn line(&self) -> String {
        match self.status {
            "signed" | "deleted" => {
                let pct = if self.signature_header_before > 0 {
                    100.0 * self.signature_header_growth as f64
                        / self.signature_header_before as f64
                } else {
                    0.0
                };
                format!(
                    "{}: {} files, {} hashed, {} signatures made, signature header {:+} bytes ({:+.1}%), {}{} in {:.2}s",
                    self.package,
                    self.files,
                    human_bytes(self.bytes_hashed),
                    self.signatures_made,
                    self.signature_header_growth,
                    pct,
                    match self.mode {
                        Some("in-place") => "written in place".to_string(),
                        Some(_) => format!("file {:+} bytes", self.file_growth),
                        None => String::new(),
                    },
                    self.output.as_ref().map(|o| format!(" -> {o}")).unwrap_or_default(),
                    self.seconds
                )
            }
            "skipped" => format!(
                "{}: skipped: {}",
                self.package,
                self.error.as_deref().unwrap_or("")
            ),
            _ => format!(
                "{}: {}",
                self.package,
                self.error.as_deref().unwrap_or("failed")
            ),
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = crate::util::jobs_or_cores(args.jobs);
    crate::util::init_rayon(threads);

    let signer: Option<Box<dyn Signer>> = if args.delete {
        None
    } else if args.remote.is_remote() {
        if args.key.is_some() || args.cert.is_some() {
            bail!("give either --key/--cert (sign here) or --signer (sign remotely), not both");
        }
        Some(Box::new(crate::remote::RemoteSigner::from_args(
            &args.remote,
        )?))
    } else {
        let key = args.key.as_deref().ok_or_else(|| {
            anyhow!("no signing key: give --key KEY (and --cert CERT), or --signer URL")
        })?;
        let pass = crate::util::read_key_passphrase(args.key_pass_file.as_deref())?;
        // LoadError messages name the key and certificate files themselves.
        let signer = LocalSigner::load(key, args.cert.as_deref(), pass.as_deref())?;
        Some(Box::new(signer))
    };
    if let Some(dir) = &args.output_dir {
        let meta =
            fs::metadata(dir).with_context(|| format!("output directory {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("output directory {}: not a directory", dir.display());
        }
    }

    let pool = HashPool::new(threads, args.hash_alg)?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..args.packages.len()).map(|_| None).collect());
    let signer_ref = signer.as_deref();
    let concurrent = threads.min(args.packages.len()).max(1);
    let progress = crate::util::count_bar(args.packages.len() as u64, "signing");
    std::thread::scope(|s| {
        for _ in 0..concurrent {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(pkg) = args.packages.get(i) else {
                    break;
                };
                let started = Instant::now();
                let mut out = Outcome::new(pkg);
                if let Err(e) = process(pkg, &args, signer_ref, &pool, &mut out) {
                    out.status = "error";
                    out.error = Some(crate::util::error_chain(&e));
                }
                out.seconds = started.elapsed().as_secs_f64();
                if !args.json {
                    progress.suspend(|| {
                        if out.status == "error" {
                            eprintln!("rpm-verity: error: {}", out.line());
                        } else {
                            println!("{}", out.line());
                        }
                    });
                }
                progress.inc(1);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(out);
                }
            });
        }
    });
    progress.finish_and_clear();
    pool.shutdown();

    let results: Vec<Outcome> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let failed = results.iter().filter(|o| o.status == "error").count();
    if args.json {
        let doc = serde_json::json!({
            "packages": results,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.packages.len() > 1 {
        let done = results
            .iter()
            .filter(|o| o.status == "signed" || o.status == "deleted")
            .count();
        let skipped = results.iter().filter(|o| o.status == "skipped").count();
        println!("{done} packages done, {skipped} skipped, {failed} failed");
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The identity of a file's content at the time we read it: the package must not change
/// between reading it and writing the new signature header into it.
fn fingerprint(meta: &fs::Metadata) -> (u64, u64, i64, i64) {
    (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec())
}

fn process(
    pkg: &Path,
    args: &Args,
    signer: Option<&dyn Signer>,
    pool: &HashPool,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let before = fs::metadata(pkg).context("cannot stat")?;
    if before.is_dir() {
        bail!("is a directory, not a package");
    }
    let mut early: Option<EarlyCopy> = None;
    let (headers, plan, files, hashed, made) = match signer {
        None => {
            let f = File::open(pkg).context("cannot open")?;
            let p = Package::open(std::io::BufReader::new(f))?;
            if p.is_source() && !args.include_source {
                out.status = "skipped";
                out.error = Some("source package (use --include-source to sign it)".into());
                return Ok(());
            }
            let files = p.files()?.len();
            let plan = p.signature.without_verity()?;
            let (headers, _) = p.into_parts();
            (headers, plan, files, 0, 0)
        }
        Some(signer) => {
            if !args.include_source && is_source_package(pkg)? {
                out.status = "skipped";
                out.error = Some("source package (use --include-source to sign it)".into());
                return Ok(());
            }
            let dest = match &args.output_dir {
                Some(dir) => dir.join(pkg.file_name().ok_or_else(|| anyhow!("not a file name"))?),
                None => pkg.to_path_buf(),
            };
            early = start_early_copy(pkg, &dest, args, signer)?;
            let pd = pkgdigest::digest_package(pkg, args.hash_alg, pool)?;
            if let Err(e) = pd.integrity {
                return Err(anyhow::Error::new(e).context("corrupt package, not signed"));
            }
            let (sigs, made) = sign_all(signer, &pd.digests)?;
            let plan = if pd.digests.is_empty() {
                // A package without files gets no verity tags (rpm 4.18 writes a lone 277
                // there, by accident).
                pd.headers.signature.without_verity()?
            } else {
                pd.headers
                    .signature
                    .with_verity(&sigs, u32::from(args.hash_alg.id()))?
            };
            (pd.headers, plan, pd.files.len(), pd.bytes_hashed, made)
        }
    };
    out.files = files;
    out.bytes_hashed = hashed;
    out.signatures_made = made;
    out.signature_header_before = plan.orig_size + 32;
    out.signature_header_after = plan.signature_bytes.len();
    out.signature_header_growth = plan.diff();
    out.file_growth = plan.file_growth();
    out.mode = Some(match plan.mode {
        RewriteMode::InPlace => "in-place",
        RewriteMode::Rewrite => "rewrite",
    });

    let now = fs::metadata(pkg).context("cannot stat")?;
    if fingerprint(&now) != fingerprint(&before) {
        bail!("package changed while it was being signed; nothing written");
    }
    let main_offset = headers.main_header_offset();
    if let Some(ec) = early {
        if ec.header_len == plan.signature_bytes.len() {
            let dest = ec.dest.clone();
            finish_early_copy(ec, pkg, &plan, &headers.main, &before)
                .with_context(|| format!("writing {}", dest.display()))?;
            if args.output_dir.is_some() {
                out.output = Some(dest.display().to_string());
            }
            out.status = "signed";
            return Ok(());
        }
        // The prediction missed (signatures of different lengths, e.g. a remote signer that
        // changed keys): drop the early copy and write the file the plain way.
        ec.abandon();
    }
    match &args.output_dir {
        Some(dir) => {
            let name = pkg.file_name().ok_or_else(|| anyhow!("not a file name"))?;
            let dest = dir.join(name);
            write_new_file(pkg, &dest, &plan, &headers.main, main_offset, &before)
                .with_context(|| format!("writing {}", dest.display()))?;
            out.output = Some(dest.display().to_string());
        }
        None => match plan.mode {
            RewriteMode::InPlace => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(pkg)
                    .context("cannot open for writing")?;
                f.write_all_at(&plan.signature_bytes, rpm_format::lead::LEAD_SIZE as u64)
                    .context("writing the signature header")?;
                f.sync_all().context("fsync")?;
            }
            RewriteMode::Rewrite => {
                write_new_file(pkg, pkg, &plan, &headers.main, main_offset, &before)?;
            }
        },
    }
    out.status = if signer.is_some() {
        "signed"
    } else {
        "deleted"
    };
    Ok(())
}

fn is_source_package(pkg: &Path) -> anyhow::Result<bool> {
    let f = File::open(pkg).context("cannot open")?;
    let p = Package::open_unverified(std::io::BufReader::new(f))?;
    Ok(p.is_source())
}

/// Signs each distinct digest once (every directory, symlink and empty file shares one) and
/// returns one signature per input digest plus the number of signatures actually made.
fn sign_all(signer: &dyn Signer, digests: &[FileDigest]) -> anyhow::Result<(Vec<Vec<u8>>, usize)> {
    let mut unique: Vec<FileDigest> = Vec::new();
    let mut slot: HashMap<&FileDigest, usize> = HashMap::new();
    let idx: Vec<usize> = digests
        .iter()
        .map(|d| {
            *slot.entry(d).or_insert_with(|| {
                unique.push(d.clone());
                unique.len() - 1
            })
        })
        .collect();
    let sigs = signer.sign_digests(&unique)?;
    if sigs.len() != unique.len() {
        bail!(
            "signer returned {} signatures for {} digests",
            sigs.len(),
            unique.len()
        );
    }
    Ok((
        idx.into_iter().map(|i| sigs[i].clone()).collect(),
        unique.len(),
    ))
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
) -> anyhow::Result<()> {
    let mut input = File::open(src).context("cannot open")?;
    let lead = new_lead(plan, main, src)?;
    let mut out = AtomicFile::create(dest)
        .with_context(|| format!("cannot create a file beside {}", dest.display()))?;
    out.write_all(&lead)?;
    out.write_all(&plan.signature_bytes)?;
    input.seek(SeekFrom::Start(main_offset))?;
    std::io::copy(&mut input, out.file()).context("copying header and payload")?;
    fs::set_permissions(
        out.temp_path(),
        fs::Permissions::from_mode(src_meta.mode() & 0o7777),
    )?;
    let _ = std::os::unix::fs::chown(out.temp_path(), Some(src_meta.uid()), Some(src_meta.gid()));
    out.commit().context("replacing the package")?;
    Ok(())
}

/// The main header and payload copied into the new file while the payload is still being
/// hashed. The new signature header's length is known before its signatures are: every
/// signature made with one key and certificate has the same length, which a local signer
/// computes without signing and a remote one tells by one probe signature (of the empty file's
/// digest, which most packages need anyway); that fixes the layout, and the copy
/// (and its fdatasync) can run at its final offset beside decompression and hashing. Signing
/// then only has to write the lead and the signature header at the front.
struct EarlyCopy {
    out: AtomicFile,
    dest: PathBuf,
    header_len: usize,
    job: Arc<CopyJob>,
    copier: std::thread::JoinHandle<std::io::Result<()>>,
}

impl EarlyCopy {
    fn abandon(self) {
        self.job.cancel();
        let _ = self.copier.join();
        drop(self.out);
    }

    /// Copies whatever the background thread has not claimed yet, on the calling thread at
    /// normal priority, then waits for the piece the background thread is on.
    fn complete(self) -> anyhow::Result<AtomicFile> {
        let mine = self.job.run();
        let theirs = self
            .copier
            .join()
            .map_err(|_| anyhow!("the copy thread failed"))?;
        mine.and(theirs).context("copying header and payload")?;
        Ok(self.out)
    }
}

/// Main header and payload, copied to their new offset in pieces that the background copy
/// thread and, once hashing is done, the signing thread claim in turn. The background thread
/// runs at the lowest priority so that it only takes cycles decompression leaves free; on a
/// busy machine that could be almost none, so whatever it has not done when the signatures are
/// ready is done at normal priority then, and `sign` never waits on a starved thread for more
/// than one piece.
struct CopyJob {
    src: File,
    dst: File,
    src_offset: u64,
    dst_offset: u64,
    len: u64,
    claimed: AtomicU64,
}

/// One claim: small enough that waiting for a starved thread to finish one is short.
const COPY_PIECE: u64 = 1 << 20;

impl CopyJob {
    fn run(&self) -> std::io::Result<()> {
        loop {
            let at = self.claimed.fetch_add(COPY_PIECE, Ordering::SeqCst);
            if at >= self.len {
                return Ok(());
            }
            let n = COPY_PIECE.min(self.len - at);
            copy_range(
                &self.src,
                self.src_offset + at,
                &self.dst,
                self.dst_offset + at,
                n,
            )?;
        }
    }

    fn cancel(&self) {
        self.claimed.store(u64::MAX / 2, Ordering::SeqCst);
    }
}

/// `n` bytes from `src` at `from` to `dst` at `to`: `copy_file_range` (in-kernel, a reflink
/// where the filesystem can), positioned reads and writes where it is refused.
fn copy_range(
    src: &File,
    mut from: u64,
    dst: &File,
    mut to: u64,
    mut n: u64,
) -> std::io::Result<()> {
    while n > 0 {
        let want = n.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), want) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "package shorter than its size",
                ))
            }
            Ok(k) => n -= k as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) => {
                let mut buf = vec![0u8; want.min(COPY_PIECE as usize)];
                src.read_exact_at(&mut buf, from)?;
                dst.write_all_at(&buf, to)?;
                from += buf.len() as u64;
                to += buf.len() as u64;
                n -= buf.len() as u64;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Starts an [`EarlyCopy`] when the package will be written to a new file (rewrite mode or
/// `--output-dir`); `None` when it will be changed in place or has no files.
fn start_early_copy(
    pkg: &Path,
    dest: &Path,
    args: &Args,
    signer: &dyn Signer,
) -> anyhow::Result<Option<EarlyCopy>> {
    let f = File::open(pkg).context("cannot open")?;
    let p = Package::open_unverified(std::io::BufReader::new(f))?;
    let n = p.files()?.len();
    if n == 0 {
        return Ok(None);
    }
    let params = fsverity::Params::new(args.hash_alg, 4096, &[]).map_err(|e| anyhow!("{e}"))?;
    let len = match signer.signature_len(args.hash_alg) {
        Some(len) => len,
        None => {
            let probe = signer.sign_digests(&[fsverity::empty_file_digest(&params)])?;
            probe.first().map(|s| s.len()).unwrap_or(0)
        }
    };
    let predicted = p
        .signature
        .with_verity(&vec![vec![0u8; len]; n], u32::from(args.hash_alg.id()))?;
    if args.output_dir.is_none() && predicted.mode == RewriteMode::InPlace {
        return Ok(None);
    }
    let header_len = predicted.signature_bytes.len();
    let src = File::open(pkg).context("cannot open")?;
    let src_len = src.metadata().context("cannot stat")?.len();
    let src_offset = p.main_header_offset();
    let out = AtomicFile::create(dest)
        .with_context(|| format!("cannot create a file beside {}", dest.display()))?;
    let dst = out
        .file_ref()
        .try_clone()
        .context("duplicating the output descriptor")?;
    let job = Arc::new(CopyJob {
        src,
        dst,
        src_offset,
        dst_offset: (rpm_format::lead::LEAD_SIZE + header_len) as u64,
        len: src_len.saturating_sub(src_offset),
        claimed: AtomicU64::new(0),
    });
    let bg = Arc::clone(&job);
    let copier = std::thread::Builder::new()
        .name("copy".into())
        .spawn(move || {
            crate::util::background_thread();
            bg.run()?;
            // Early writeback: the final fsync then finds little left to write.
            bg.dst.sync_data()
        })
        .context("starting the copy thread")?;
    Ok(Some(EarlyCopy {
        out,
        dest: dest.to_path_buf(),
        header_len,
        job,
        copier,
    }))
}

/// Joins the copy, writes lead and signature header at the front, keeps the original's mode
/// (and owner, when allowed), fsyncs and renames over the destination.
fn finish_early_copy(
    ec: EarlyCopy,
    src: &Path,
    plan: &RewritePlan,
    main: &rpm_format::Header,
    src_meta: &fs::Metadata,
) -> anyhow::Result<()> {
    let mut out = ec.complete()?;
    let lead = new_lead(plan, main, src)?;
    let f = out.file();
    f.write_all_at(&lead, 0)?;
    f.write_all_at(&plan.signature_bytes, rpm_format::lead::LEAD_SIZE as u64)?;
    fs::set_permissions(
        out.temp_path(),
        fs::Permissions::from_mode(src_meta.mode() & 0o7777),
    )?;
    let _ = std::os::unix::fs::chown(out.temp_path(), Some(src_meta.uid()), Some(src_meta.gid()));
    out.commit().context("replacing the package")?;
    Ok(())
}

/// The lead of the new file: rpm 4.18 regenerates it (from the main header and the host's
/// arch/os numbers) when the signature header changes size, and keeps it otherwise.
fn new_lead(
    plan: &RewritePlan,
    main: &rpm_format::Header,
    src: &Path,
) -> anyhow::Result<[u8; rpm_format::lead::LEAD_SIZE]> {
    Ok(match plan.mode {
        RewriteMode::Rewrite => Lead::from_header_for_host(main)?.to_bytes(),
        RewriteMode::InPlace => {
            let mut b = [0u8; rpm_format::lead::LEAD_SIZE];
            File::open(src)
                .context("cannot open")?
                .read_exact(&mut b)
                .context("reading the lead")?;
            b
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &Path, data: &[u8], src_offset: u64, dst_offset: u64) -> (Arc<CopyJob>, PathBuf) {
        let src = dir.join("src");
        let dst = dir.join("dst");
        fs::write(&src, data).unwrap();
        let job = Arc::new(CopyJob {
            src: File::open(&src).unwrap(),
            dst: OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&dst)
                .unwrap(),
            src_offset,
            dst_offset,
            len: data.len() as u64 - src_offset,
            claimed: AtomicU64::new(0),
        });
        (job, dst)
    }

    /// The pieces land at their offsets whoever copies them: one thread alone, or two at
    /// once (the background thread and the signing thread finishing the rest).
    #[test]
    fn copy_job_pieces_from_any_thread() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(5 * COPY_PIECE as usize + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let (j, dst) = job(dir.path(), &data, 1000, 96);
        j.run().unwrap();
        let out = fs::read(&dst).unwrap();
        assert_eq!(&out[96..], &data[1000..]);

        let (j, dst) = job(dir.path(), &data, 7, 0);
        let other = Arc::clone(&j);
        let t = std::thread::spawn(move || other.run());
        j.run().unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(fs::read(&dst).unwrap(), &data[7..]);

        // Cancelled: nothing more is claimed.
        let (j, dst) = job(dir.path(), &data, 0, 0);
        j.cancel();
        j.run().unwrap();
        assert_eq!(fs::read(&dst).unwrap().len(), 0);
    }

    /// A source shorter than the job says is an error, not a short file.
    #[test]
    fn copy_job_short_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = job(dir.path(), &[1u8; 5000], 0, 0);
        let j = Arc::into_inner(j).unwrap();
        let j = CopyJob { len: 9000, ..j };
        let e = j.run().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
