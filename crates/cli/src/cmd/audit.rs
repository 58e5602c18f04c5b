//! `rpm-verity audit`: `rpm -V` for fs-verity. For every signed installed file that `enable`
//! would handle: is verity on, with the package's signature, and does every block still read?
//!
//! Verity files are not re-hashed: the stored signature (FS_IOC_READ_VERITY_METADATA) and the
//! measured digest (FS_IOC_MEASURE_VERITY) say what the file is, and reading it through makes
//! the kernel check each block (EIO at a tampered one). Only files without verity are hashed in
//! user space.
//!
//! Exit status: 0 no problems; 1 problems (any status but OK) or a fatal error.
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fsverity::linux::{self, MeasureError, OpenError};
use rayon::prelude::*;
use serde::Serialize;

use verity_system::check::{self, ContentCheck, VerityVerdict};
use verity_system::installed::{self, InstalledPackage};
use verity_system::root::{ResolveError, Root};
use verity_system::rpmdb::Rpmdb;

#[derive(clap::Args)]
pub struct Args {
    /// Packages to audit (default: all installed packages).
    #[arg(value_name = "PKG")]
    pub packages: Vec<String>,

    /// The installed system's root directory.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,

    /// rpm database directory inside the root (default: /var/lib/rpm, /usr/lib/sysimage/rpm).
    #[arg(long, value_name = "DIR")]
    pub dbpath: Option<PathBuf>,

    /// Trusted certificate (PEM or DER) for checking files whose signature the kernel has not
    /// checked (verity off); repeatable. Default: the files in /etc/rpm-verity/certs.
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<PathBuf>,

    /// Also audit %config files that are not executable.
    #[arg(long)]
    pub config: bool,

    /// Do not read verity files through (faster; corrupted blocks go unnoticed).
    #[arg(long)]
    pub no_read: bool,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,

    /// Print OK files too.
    #[arg(long, short)]
    pub verbose: bool,

    #[command(flatten)]
    pub jobs: crate::args::JobsOption,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum Status {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "NOT-ENABLED")]
    NotEnabled,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "SWAPPED")]
    Swapped,
    #[serde(rename = "CORRUPTED")]
    Corrupted,
    #[serde(rename = "MISSING")]
    Missing,
    #[serde(rename = "UNSIGNED")]
    Unsigned,
    #[serde(rename = "CERT-MISSING")]
    CertMissing,
    #[serde(rename = "ERROR")]
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotEnabled => "NOT-ENABLED",
            Status::Modified => "MODIFIED",
            Status::Swapped => "SWAPPED",
            Status::Corrupted => "CORRUPTED",
            Status::Missing => "MISSING",
            Status::Unsigned => "UNSIGNED",
            Status::CertMissing => "CERT-MISSING",
            Status::Error => "ERROR",
        }
    }
    const ALL: [Status; 9] = [
        Status::Ok,
        Status::NotEnabled,
        Status::Modified,
        Status::Swapped,
        Status::Corrupted,
        Status::Missing,
        Status::Unsigned,
        Status::CertMissing,
        Status::Error,
    ];
}

#[derive(Serialize)]
struct Finding {
    package: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = Root::open(&args.root)?;
    let db = Rpmdb::open(&args.root, args.dbpath.as_deref())?;
    let mut pkgs: Vec<InstalledPackage> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    for p in installed::load_packages(&db)? {
        match p {
            Ok(p) => pkgs.push(p),
            Err(e) => findings.push(Finding {
                package: db.path().display().to_string(),
                path: None,
                status: Status::Error,
                digest: None,
                detail: Some(format!("{e:#}")),
            }),
        }
    }
    for n in &args.packages {
        if !pkgs.iter().any(|p| p.matches(n)) {
            anyhow::bail!("package {n} is not installed");
        }
    }
    let (trusted, _) = verity_system::certs::trusted_certs(&args.cert)?;
    let sig_owner = installed::signature_owners(&pkgs);

    let mut items = Vec::new();
    for (pi, p) in pkgs.iter().enumerate() {
        if !args.packages.is_empty() && !args.packages.iter().any(|n| p.matches(n)) {
            continue;
        }
        if !p.has_signatures {
            if p.files.iter().any(|f| f.is_regular() && !f.is_ghost()) {
                findings.push(Finding {
                    package: p.nevra.clone(),
                    path: None,
                    status: Status::Unsigned,
                    digest: None,
                    detail: Some("package has no fs-verity signatures".into()),
                });
            }
            continue;
        }
        for (fi, f) in p.files.iter().enumerate() {
            if installed::skip_reason(f, args.config).is_none() {
                items.push((pi, fi));
            }
        }
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.count())
        .build()
        .context("thread pool")?;
    let total: u64 = items.iter().map(|&(p, f)| pkgs[p].files[f].size).sum();
    let pb = crate::render::progress_bar(total, "auditing");
    let mut file_findings: Vec<Finding> = pool.install(|| {
        items
            .par_iter()
            .map(|&(pi, fi)| {
                let p = &pkgs[pi];
                let f = &p.files[fi];
                let path = f.path_lossy();
                let sig = f
                    .signature
                    .as_deref()
                    .expect("only signed files are queued");
                let (status, detail, digest) =
                    audit_one(&root, p, f, &path, sig, &sig_owner, &trusted, !args.no_read);
                pb.inc(f.size);
                Finding {
                    package: p.nevra.clone(),
                    path: Some(path),
                    status,
                    digest: digest.map(|d| d.to_hex()),
                    detail,
                }
            })
            .collect()
    });
    pb.finish_and_clear();
    file_findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings.extend(file_findings);

    let mut counts: HashMap<Status, usize> = HashMap::new();
    for f in &findings {
        *counts.entry(f.status).or_insert(0) += 1;
    }
    let problems = findings.iter().filter(|f| f.status != Status::Ok).count();
    if args.json {
        let doc = serde_json::json!({
            "root": args.root.display().to_string(),
            "findings": findings,
            "summary": counts.iter().map(|(k, v)| (k.name(), *v)).collect::<HashMap<_, _>>(),
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for f in &findings {
            if f.status == Status::Ok && !args.verbose {
                continue;
            }
            let mut line = format!(
                "{:<12} {}",
                f.status.name(),
                f.path.as_deref().unwrap_or(&f.package)
            );
            if let Some(d) = &f.detail {
                line.push_str(": ");
                line.push_str(d);
            }
            println!("{line}");
        }
        let parts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|s| counts.get(s).map(|n| format!("{n} {}", s.name())))
            .collect();
        println!(
            "audit: {} files checked in {} packages: {}",
            items.len(),
            pkgs.len(),
            if parts.is_empty() {
                "nothing to check".to_string()
            } else {
                parts.join(", ")
            }
        );
    }
    Ok(if problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

type Outcome = (Status, Option<String>, Option<fsverity::FileDigest>);

#[allow(clippy::too_many_arguments)]
fn audit_one(
    root: &Root,
    pkg: &InstalledPackage,
    f: &installed::InstalledFile,
    path: &str,
    sig: &[u8],
    sig_owner: &HashMap<&[u8], String>,
    trusted: &[verity_signing::Certificate],
    read: bool,
) -> Outcome {
    let opened = match root.open_file(&f.path) {
        Ok(o) => o,
        Err(ResolveError::Missing) => return (Status::Missing, None, None),
        Err(ResolveError::Verity(OpenError::CertNotInKeyring)) => {
            return (
                Status::CertMissing,
                Some(format!(
                    "verity is on, but the certificate of {} is not in the .fs-verity keyring, \
                     so the file cannot be opened (rpm-verity keyring load)",
                    check::signer_of(sig)
                )),
                None,
            )
        }
        Err(ResolveError::Verity(OpenError::SignatureRejected)) => {
            return (
                Status::Modified,
                Some("the kernel rejects the file's stored signature on open".into()),
                None,
            )
        }
        Err(e @ (ResolveError::Symlink | ResolveError::NotRegular)) => {
            return (Status::Modified, Some(e.to_string()), None)
        }
        Err(e) => return (Status::Error, Some(e.to_string()), None),
    };
    let file = &opened.file;
    let size = opened.stat.st_size as u64;
    match linux::is_verity(file.as_fd()) {
        Ok(true) => {
            let verdict = match check::check_verity_file(file, sig, sig_owner, path, trusted) {
                Ok(v) => v,
                Err(MeasureError::CertNotInKeyring) => {
                    return (
                        Status::CertMissing,
                        Some("the certificate is not in the .fs-verity keyring".into()),
                        None,
                    )
                }
                Err(e) => return (Status::Error, Some(e.to_string()), None),
            };
            let (status, detail, digest) = match verdict {
                VerityVerdict::Good(d) => (Status::Ok, None, d),
                VerityVerdict::Swapped { other, digest } => (
                    Status::Swapped,
                    Some(format!("verity is on, but this is the content of {other}")),
                    digest,
                ),
                VerityVerdict::Modified(d) => (
                    Status::Modified,
                    Some("verity is on, with a digest the package did not sign".into()),
                    d,
                ),
                VerityVerdict::Unverifiable(d, why) => (
                    Status::Error,
                    Some(format!(
                        "verity is on, but its digest cannot be checked: {why}"
                    )),
                    d,
                ),
            };
            if read {
                if let Err(e) = check::read_through(file) {
                    let status = match e {
                        check::ReadFailure::Eio { .. } => Status::Corrupted,
                        check::ReadFailure::Io(_) => Status::Error,
                    };
                    return (status, Some(e.to_string()), Some(digest));
                }
            }
            (status, detail, Some(digest))
        }
        Ok(false) => {
            let digest = match check::userspace_digest(file, size, pkg.algorithm) {
                Ok(d) => d,
                Err(e @ check::ReadFailure::Eio { .. }) => {
                    return (Status::Corrupted, Some(e.to_string()), None)
                }
                Err(e) => return (Status::Error, Some(e.to_string()), None),
            };
            match check::check_digest(sig, &digest, trusted) {
                ContentCheck::Matches(_) => (
                    Status::NotEnabled,
                    Some("content matches its signature; verity is off (rpm-verity enable)".into()),
                    Some(digest),
                ),
                ContentCheck::Differs => (
                    Status::Modified,
                    Some(
                        "verity is off and the content does not match the package's signature"
                            .into(),
                    ),
                    Some(digest),
                ),
                ContentCheck::Unverifiable(why) => (
                    Status::NotEnabled,
                    Some(format!("verity is off; content not checked: {why}")),
                    Some(digest),
                ),
            }
        }
        Err(e) => (Status::Error, Some(e.to_string()), None),
    }
}
