//! `rpm-verity enable`: turn fs-verity on for installed files, with their packages' signatures,
//! the way rpm's fsverity plugin meant to but cannot (it passes its O_WRONLY fd: ETXTBSY/EBADF).
//!
//! Each file is opened O_RDONLY|O_NOFOLLOW strictly inside `--root`, enabled with its signature
//! (so the kernel checks it: EKEYREJECTED = the content changed), and its mtime/atime are put
//! back (ext4 sets mtime to now, which `rpm -V` would report).
//!
//! Exit status: 0 every eligible file is verity (or, with `--dry-run`, would be); 1 failures
//! (modified, busy, cert missing, errors, or a fatal error); 3 no failures but some files sit on
//! a filesystem without fs-verity support and were left unchanged.
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use fsverity::linux::{self, EnableError, MeasureError, OpenError};
use rayon::prelude::*;
use serde::Serialize;

use verity_system::check::{self, VerityVerdict};
use verity_system::installed::{self, InstalledPackage};
use verity_system::root::{ResolveError, Root};
use verity_system::rpmdb::Rpmdb;

#[derive(clap::Args)]
pub struct Args {
    /// Packages (name, name-version-release or name-version-release.arch) or installed file
    /// paths (starting with `/`).
    #[arg(value_name = "PKG|PATH")]
    pub targets: Vec<String>,

    /// Every installed package.
    #[arg(long, conflicts_with = "targets")]
    pub all: bool,

    /// Read installed file paths, one per line, from FILE (`-` = stdin; what rpm's
    /// `%transfiletriggerin` passes).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,

    /// The installed system's root directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,

    /// rpm database directory inside the root (default: /var/lib/rpm, /usr/lib/sysimage/rpm).
    #[arg(long, value_name = "DIR")]
    pub dbpath: Option<PathBuf>,

    /// Trusted certificate (PEM or DER) for user-space checks (--dry-run, cert not in the
    /// keyring); repeatable. Default: the files in /etc/rpm-verity/certs.
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<PathBuf>,

    /// Also enable %config files that are not executable (rpm's %_fsverity_sign_config_files).
    #[arg(long)]
    pub config: bool,

    /// Check in user space what would be enabled; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,

    /// Print every file, not only problems.
    #[arg(long, short)]
    pub verbose: bool,

    #[command(flatten)]
    pub jobs: crate::args::JobsOption,
}

/// Per-file outcome. The first four are success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum Status {
    #[serde(rename = "ENABLED")]
    Enabled,
    #[serde(rename = "ALREADY")]
    Already,
    #[serde(rename = "WOULD-ENABLE")]
    WouldEnable,
    #[serde(rename = "UNSUPPORTED")]
    Unsupported,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "SWAPPED")]
    Swapped,
    #[serde(rename = "MISSING")]
    Missing,
    #[serde(rename = "BUSY")]
    Busy,
    #[serde(rename = "CERT-MISSING")]
    CertMissing,
    #[serde(rename = "REFUSED")]
    Refused,
    #[serde(rename = "ERROR")]
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Enabled => "ENABLED",
            Status::Already => "ALREADY",
            Status::WouldEnable => "WOULD-ENABLE",
            Status::Unsupported => "UNSUPPORTED",
            Status::Modified => "MODIFIED",
            Status::Swapped => "SWAPPED",
            Status::Missing => "MISSING",
            Status::Busy => "BUSY",
            Status::CertMissing => "CERT-MISSING",
            Status::Refused => "REFUSED",
            Status::Error => "ERROR",
        }
    }
    fn is_failure(self) -> bool {
        self > Status::Unsupported
    }
}

#[derive(Serialize)]
struct FileResult {
    package: String,
    path: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Work item: (package index, file index).
type Item = (usize, usize);

struct Ctx<'a> {
    pkgs: &'a [InstalledPackage],
    root: &'a Root,
    trusted: &'a [verity_signing::Certificate],
    sig_owner: HashMap<&'a [u8], String>,
    dry_run: bool,
    /// Devices whose filesystem refused verity (ENOTTY/EOPNOTSUPP): message, files left.
    unsupported: Mutex<HashMap<u64, (String, usize)>>,
    /// Signers the kernel answered ENOKEY for: later files go straight to user space.
    missing_signers: Mutex<HashSet<String>>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.all && args.targets.is_empty() && args.files_from.is_none() {
        bail!("say what to enable: PKG..., PATH..., --all or --files-from FILE");
    }
    let root = Root::open(&args.root)?;
    let db = Rpmdb::open(&args.root, args.dbpath.as_deref())?;
    let mut pkgs = Vec::new();
    let mut row_errors = Vec::new();
    for p in installed::load_packages(&db)? {
        match p {
            Ok(p) => pkgs.push(p),
            Err(e) => row_errors.push(format!("{e:#}")),
        }
    }
    for e in &row_errors {
        eprintln!("rpm-verity: error: {}: {e}", db.path().display());
    }
    let (trusted, cert_source) = verity_system::certs::trusted_certs(&args.cert)?;

    let mut skipped: HashMap<&'static str, usize> = HashMap::new();
    let mut unsigned_pkgs: Vec<String> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut not_owned: Vec<String> = Vec::new();
    let mut seen: HashSet<Item> = HashSet::new();

    let mut paths: Vec<Vec<u8>> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for t in &args.targets {
        if t.starts_with('/') {
            paths.push(t.as_bytes().to_vec());
        } else {
            names.push(t);
        }
    }
    if let Some(ff) = &args.files_from {
        let reader: Box<dyn BufRead> = if ff.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(ff)
                    .with_context(|| format!("--files-from {}", ff.display()))?,
            ))
        };
        for line in reader.split(b'\n') {
            let line = line.context("reading --files-from")?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if !line.is_empty() {
                paths.push(line.to_vec());
            }
        }
    }

    let mut want_pkg = |pi: usize, items: &mut Vec<Item>, skipped: &mut HashMap<_, _>| {
        let p = &pkgs[pi];
        if !p.has_signatures && !p.files.is_empty() {
            unsigned_pkgs.push(p.nevra.clone());
        }
        for (fi, f) in p.files.iter().enumerate() {
            match installed::skip_reason(f, args.config) {
                Some(r) => *skipped.entry(r).or_insert(0) += 1,
                None => {
                    if seen.insert((pi, fi)) {
                        items.push((pi, fi));
                    }
                }
            }
        }
    };
    if args.all {
        for pi in 0..pkgs.len() {
            want_pkg(pi, &mut items, &mut skipped);
        }
    }
    for n in &names {
        let hits: Vec<usize> = (0..pkgs.len()).filter(|&i| pkgs[i].matches(n)).collect();
        if hits.is_empty() {
            bail!("package {n} is not installed");
        }
        for pi in hits {
            want_pkg(pi, &mut items, &mut skipped);
        }
    }
    if !paths.is_empty() {
        let index = installed::path_index(&pkgs);
        for p in &paths {
            match index.get(p.as_slice()) {
                None => not_owned.push(String::from_utf8_lossy(p).into_owned()),
                Some(&(pi, fi)) => match installed::skip_reason(&pkgs[pi].files[fi], args.config) {
                    Some(r) => *skipped.entry(r).or_insert(0) += 1,
                    None => {
                        if seen.insert((pi, fi)) {
                            items.push((pi, fi));
                        }
                    }
                },
            }
        }
    }

    let ctx = Ctx {
        pkgs: &pkgs,
        root: &root,
        trusted: &trusted,
        sig_owner: installed::signature_owners(&pkgs),
        dry_run: args.dry_run,
        unsupported: Mutex::new(HashMap::new()),
        missing_signers: Mutex::new(HashSet::new()),
    };
    let total_bytes: u64 = items.iter().map(|&(p, f)| pkgs[p].files[f].size).sum();
    let pb = crate::render::progress_bar(
        total_bytes,
        if args.dry_run { "checking" } else { "enabling" },
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.count())
        .build()
        .context("thread pool")?;
    let json = args.json;
    let verbose = args.verbose;
    let results: Vec<FileResult> = pool.install(|| {
        items
            .par_iter()
            .map(|&(pi, fi)| {
                let r = process(&ctx, pi, fi);
                pb.inc(pkgs[pi].files[fi].size);
                if !json && (verbose || r.status.is_failure()) {
                    pb.suspend(|| print_line(&r));
                }
                r
            })
            .collect()
    });
    pb.finish_and_clear();

    let mut counts: HashMap<Status, usize> = HashMap::new();
    for r in &results {
        *counts.entry(r.status).or_insert(0) += 1;
    }
    let unsupported = ctx.unsupported.into_inner().unwrap_or_default();
    let failures = results.iter().filter(|r| r.status.is_failure()).count() + row_errors.len();
    let n_unsupported = counts.get(&Status::Unsupported).copied().unwrap_or(0);

    if json {
        let mut sorted: Vec<&FileResult> = results.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let doc = serde_json::json!({
            "dry_run": args.dry_run,
            "root": args.root.display().to_string(),
            "files": sorted,
            "summary": counts.iter().map(|(k, v)| (k.name(), *v)).collect::<HashMap<_, _>>(),
            "skipped": skipped,
            "unsigned_packages": unsigned_pkgs,
            "not_owned": not_owned,
            "unsupported_filesystems": unsupported.values().map(|(m, n)| serde_json::json!({"message": m, "files": n})).collect::<Vec<_>>(),
            "rpmdb_errors": row_errors,
            "certificates": cert_source,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (msg, n) in unsupported.values() {
            eprintln!("rpm-verity: {msg}; {n} files on it left unchanged");
        }
        for p in &unsigned_pkgs {
            println!("UNSIGNED     {p}: package has no fs-verity signatures");
        }
        for p in &not_owned {
            println!("NOT-OWNED    {p}: not a file of any installed package");
        }
        let mut parts: Vec<String> = [
            Status::Enabled,
            Status::Already,
            Status::WouldEnable,
            Status::Unsupported,
            Status::Modified,
            Status::Swapped,
            Status::Missing,
            Status::Busy,
            Status::CertMissing,
            Status::Refused,
            Status::Error,
        ]
        .iter()
        .filter_map(|s| {
            counts
                .get(s)
                .map(|n| format!("{n} {}", s.name().to_lowercase()))
        })
        .collect();
        if parts.is_empty() {
            parts.push("nothing to do".into());
        }
        let mut sk: Vec<String> = skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        sk.sort();
        println!(
            "{}{} files: {}{}",
            if args.dry_run { "dry run: " } else { "" },
            results.len(),
            parts.join(", "),
            if sk.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", sk.join(", "))
            }
        );
    }
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else if n_unsupported > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_line(r: &FileResult) {
    let mut line = format!("{:<12} {}", r.status.name(), r.path);
    if let Some(d) = &r.detail {
        line.push_str(": ");
        line.push_str(d);
    }
    println!("{line}");
}

fn process(ctx: &Ctx, pi: usize, fi: usize) -> FileResult {
    let pkg = &ctx.pkgs[pi];
    let f = &pkg.files[fi];
    let path = f.path_lossy();
    let mut res = FileResult {
        package: pkg.nevra.clone(),
        path: path.clone(),
        status: Status::Error,
        digest: None,
        detail: None,
    };
    let sig = f
        .signature
        .as_deref()
        .expect("only signed files are queued");
    let (status, detail, digest) = enable_one(ctx, pkg, f, &path, sig);
    res.status = status;
    res.detail = detail;
    res.digest = digest.map(|d| d.to_hex());
    res
}

type Outcome = (Status, Option<String>, Option<fsverity::FileDigest>);

fn enable_one(
    ctx: &Ctx,
    pkg: &InstalledPackage,
    f: &installed::InstalledFile,
    path: &str,
    sig: &[u8],
) -> Outcome {
    let opened = match ctx.root.open_file(&f.path) {
        Ok(o) => o,
        Err(ResolveError::Missing) => return (Status::Missing, None, None),
        Err(ResolveError::Verity(OpenError::CertNotInKeyring)) => {
            return (
                Status::CertMissing,
                Some(format!(
                    "verity is on but the certificate of {} is not in the .fs-verity keyring \
                     (rpm-verity keyring load)",
                    check::signer_of(sig)
                )),
                None,
            )
        }
        Err(ResolveError::Verity(e)) => return (Status::Refused, Some(e.to_string()), None),
        Err(e @ (ResolveError::Symlink | ResolveError::NotRegular)) => {
            return (Status::Modified, Some(e.to_string()), None)
        }
        Err(e) => return (Status::Error, Some(e.to_string()), None),
    };
    let file = &opened.file;
    let dev = opened.stat.st_dev;
    if let Some(v) = ctx.unsupported.lock().unwrap().get_mut(&dev) {
        v.1 += 1;
        return (Status::Unsupported, None, None);
    }

    match linux::is_verity(file.as_fd()) {
        Ok(true) => return already(ctx, file, sig, path),
        Ok(false) => {}
        Err(e) => return (Status::Error, Some(e.to_string()), None),
    }

    let signer = check::signer_of(sig);
    if ctx.dry_run || ctx.missing_signers.lock().unwrap().contains(&signer) {
        return userspace(ctx, file, f.size, pkg, sig, &signer, ctx.dry_run);
    }

    let mut attempt = 0;
    let r = loop {
        match linux::enable_verity(file.as_fd(), pkg.algorithm, 4096, &[], Some(sig)) {
            Err(EnableError::FileBusy) if attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            r => break r,
        }
    };
    match r {
        Ok(()) => {
            // ext4 sets mtime (and ctime) to now on enable: put mtime/atime back so rpm -V
            // stays quiet. ctime cannot be set, and nothing compares it.
            let st = &opened.stat;
            let ts = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: st.st_atime as _,
                    tv_nsec: st.st_atime_nsec as _,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: st.st_mtime as _,
                    tv_nsec: st.st_mtime_nsec as _,
                },
            };
            match rustix::fs::futimens(file, &ts) {
                Ok(()) => (Status::Enabled, None, None),
                Err(e) => (
                    Status::Error,
                    Some(format!(
                        "verity enabled, but restoring mtime failed: {}",
                        std::io::Error::from(e)
                    )),
                    None,
                ),
            }
        }
        Err(EnableError::AlreadyEnabled) => already(ctx, file, sig, path),
        Err(EnableError::SignatureRejected) => (
            Status::Modified,
            Some("content does not match the package's signature (EKEYREJECTED); left unchanged".into()),
            None,
        ),
        Err(EnableError::FileBusy) => (
            Status::Busy,
            Some("open for writing by some process (ETXTBSY) after 1 s of retries".into()),
            None,
        ),
        Err(e) if e.is_unsupported() => {
            let mut m = ctx.unsupported.lock().unwrap();
            let entry = m.entry(dev).or_insert_with(|| {
                (
                    format!(
                        "{}: filesystem of {path} (device {}:{}) cannot do fs-verity: {e}",
                        ctx.root.path().display(),
                        rustix::fs::major(dev),
                        rustix::fs::minor(dev)
                    ),
                    0,
                )
            });
            entry.1 += 1;
            (Status::Unsupported, None, None)
        }
        Err(EnableError::CertNotInKeyring) => {
            ctx.missing_signers.lock().unwrap().insert(signer.clone());
            userspace(ctx, file, f.size, pkg, sig, &signer, false)
        }
        Err(EnableError::SignatureRequired) => (
            Status::Refused,
            Some("refused with EPERM: the file is append-only/immutable, or fs.verity.require_signatures=1 rejected it".into()),
            None,
        ),
        Err(e) => (Status::Error, Some(e.to_string()), None),
    }
}

/// A file that is verity already: compare instead of enabling.
fn already(ctx: &Ctx, file: &std::fs::File, sig: &[u8], path: &str) -> Outcome {
    match check::check_verity_file(file, sig, &ctx.sig_owner, path, ctx.trusted) {
        Ok(VerityVerdict::Good(d)) => (Status::Already, None, Some(d)),
        Ok(VerityVerdict::Swapped { other, digest }) => (
            Status::Swapped,
            Some(format!("verity is on, but with the signature of {other}")),
            Some(digest),
        ),
        Ok(VerityVerdict::Modified(d)) => (
            Status::Modified,
            Some("verity is on, but with a digest the package did not sign".into()),
            Some(d),
        ),
        Ok(VerityVerdict::Unverifiable(d, why)) => (
            Status::Error,
            Some(format!("verity is on with another signature or none, and the digest cannot be checked: {why}")),
            Some(d),
        ),
        Err(MeasureError::CertNotInKeyring) => (
            Status::CertMissing,
            Some("verity is on but its certificate is not in the .fs-verity keyring".into()),
            None,
        ),
        Err(e) => (Status::Error, Some(e.to_string()), None),
    }
}

/// The user-space path: `--dry-run`, or the kernel said ENOKEY. Hashes the file and checks the
/// signature against the trusted certificates.
fn userspace(
    ctx: &Ctx,
    file: &std::fs::File,
    size: u64,
    pkg: &InstalledPackage,
    sig: &[u8],
    signer: &str,
    dry_run: bool,
) -> Outcome {
    let digest = match check::userspace_digest(file, size, pkg.algorithm) {
        Ok(d) => d,
        Err(e) => return (Status::Error, Some(e.to_string()), None),
    };
    match check::check_digest(sig, &digest, ctx.trusted) {
        check::ContentCheck::Matches(subject) => {
            if dry_run {
                (
                    Status::WouldEnable,
                    Some(format!("content matches, signed by {subject}")),
                    Some(digest),
                )
            } else {
                (
                    Status::CertMissing,
                    Some(format!(
                        "content matches its signature, but the signing certificate ({subject}) \
                         is not in the .fs-verity keyring: load it (rpm-verity keyring load) and run again"
                    )),
                    Some(digest),
                )
            }
        }
        check::ContentCheck::Differs => (
            Status::Modified,
            Some("content does not match the package's signature".into()),
            Some(digest),
        ),
        check::ContentCheck::Unverifiable(why) => (
            Status::CertMissing,
            Some(if dry_run {
                why
            } else {
                format!(
                    "the certificate of {signer} is not in the .fs-verity keyring; content not checked: {why}"
                )
            }),
            Some(digest),
        ),
    }
}
