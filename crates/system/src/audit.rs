//! `audit`: `rpm -V` for fs-verity. For every signed installed file that `enable` would
//! handle: is verity on, with the package's signature, and does every block still read?
//!
//! Verity files are not re-hashed: the measured digest (FS_IOC_MEASURE_VERITY) must be the one
//! the package signed, shown by a configured certificate or, on a kernel that checks built-in
//! signatures, by the stored signature (FS_IOC_READ_VERITY_METADATA) being the package's
//! ([`check::verity_verdict`]); reading the file through makes the kernel check each block (EIO
//! at a tampered one). Only files without verity are hashed in user space.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use fsverity::linux::{self, MeasureError, OpenError};
use rayon::prelude::*;
use serde::Serialize;

use crate::check::{self, ContentCheck, ReadFailure, Trust, VerityVerdict};
use crate::installed::{self, InstalledFile, InstalledPackage, InstalledSystem, NotInstalled};
use crate::outcome::{self, named_enum, FileOutcome, FileRef, Finding, RunVerdict};
use crate::root::ResolveError;

named_enum! {
    /// The verdict on one file (or, for `Unsigned` and rpmdb `Error`s, one package or row).
    /// Everything but `Ok` is a problem.
    pub enum Status {
        Ok = "OK",
        NotEnabled = "NOT-ENABLED",
        Modified = "MODIFIED",
        Swapped = "SWAPPED",
        /// More hard links than the package explains.
        Hardlinked = "HARDLINKED",
        Corrupted = "CORRUPTED",
        Missing = "MISSING",
        Unsigned = "UNSIGNED",
        /// A file of a signed package that its signer chose not to sign (`sign --files`,
        /// `--exclude`, `--executables`): not a problem.
        UnsignedByPolicy = "UNSIGNED-BY-POLICY",
        CertMissing = "CERT-MISSING",
        Error = "ERROR",
    }
}

impl Status {
    pub fn is_problem(self) -> bool {
        !matches!(self, Status::Ok | Status::UnsignedByPolicy)
    }
}

pub type Outcome = FileOutcome<Status>;

/// The files to audit, and the selected packages that have no signatures at all.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub files: Vec<FileRef>,
    pub unsigned_packages: Vec<usize>,
    /// Files of signed packages left unsigned by the signer's choice.
    pub unsigned_by_policy: Vec<FileRef>,
}

/// The signed files of the packages named (all packages when none are), less those `enable`
/// would skip; `config` keeps %config files that are not executable.
pub fn plan(
    pkgs: &[InstalledPackage],
    names: &[String],
    config: bool,
) -> Result<Plan, NotInstalled> {
    if let Some(n) = names.iter().find(|n| !pkgs.iter().any(|p| p.matches(n))) {
        return Err(NotInstalled(n.clone()));
    }
    let mut plan = Plan::default();
    for (package, p) in pkgs.iter().enumerate() {
        if !names.is_empty() && !names.iter().any(|n| p.matches(n)) {
            continue;
        }
        if !p.has_signatures {
            if p.files.iter().any(|f| f.is_regular() && !f.is_ghost()) {
                plan.unsigned_packages.push(package);
            }
            continue;
        }
        for (file, f) in p.files.iter().enumerate() {
            match installed::skip_reason(f, config, true) {
                None => plan.files.push(FileRef { package, file }),
                Some(installed::UNSIGNED_BY_POLICY) => {
                    plan.unsigned_by_policy.push(FileRef { package, file })
                }
                Some(_) => {}
            }
        }
    }
    Ok(plan)
}

#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// Read verity files through so that the kernel checks every block (slower, but the only
    /// way to find corrupted blocks).
    pub read: bool,
    /// Worker threads.
    pub jobs: usize,
    /// Whether the running kernel has fs-verity (`None`: cannot tell). Without it no file can
    /// be enabled, and the advice to run `enable` is left out.
    pub kernel_fs_verity: Option<bool>,
    /// Whether the kernel checks built-in signatures ([`linux::builtin_signatures`]). Without
    /// that, a stored signature proves nothing and only a configured certificate can vouch.
    pub kernel_checks_signatures: bool,
}

/// The audited files of one package, counted by status (`rpm -V` users read per package).
#[derive(Debug, Clone, Serialize)]
pub struct PackageSummary {
    pub package: String,
    pub files: usize,
    pub counts: BTreeMap<Status, usize>,
}

#[derive(Serialize)]
pub struct AuditReport {
    pub root: PathBuf,
    /// rpmdb row errors and unsigned packages first, then files by path.
    pub findings: Vec<Finding<Status>>,
    pub summary: BTreeMap<Status, usize>,
    pub problems: usize,
    pub files_checked: usize,
    /// Installed packages read from the rpmdb.
    pub packages_read: usize,
    pub packages: Vec<PackageSummary>,
    pub kernel_fs_verity: Option<bool>,
}

impl AuditReport {
    pub fn verdict(&self) -> RunVerdict {
        if self.problems > 0 {
            RunVerdict::Failures
        } else {
            RunVerdict::Clean
        }
    }

    /// Files that are fine but not protected because the kernel cannot protect anything: said
    /// once for the kernel rather than once per file.
    pub fn not_enabled_for_want_of_kernel(&self) -> Option<usize> {
        (self.kernel_fs_verity == Some(false))
            .then(|| self.summary.get(&Status::NotEnabled).copied().unwrap_or(0))
    }
}

struct AuditContext<'a> {
    sys: &'a InstalledSystem,
    sig_owner: HashMap<&'a [u8], String>,
    opts: AuditOptions,
}

impl AuditContext<'_> {
    fn trust(&self) -> Trust<'_> {
        Trust {
            certs: &self.sys.trusted.certs,
            kernel_checks_signatures: self.opts.kernel_checks_signatures,
            sig_owner: &self.sig_owner,
            kernel_keys: &crate::check::keyring_vouches,
        }
    }
}

/// Audits every file of `plan`, `jobs` at a time; `on_file` sees each file's size as it is
/// done, for progress.
pub fn run(
    sys: &InstalledSystem,
    plan: Plan,
    opts: AuditOptions,
    on_file: &(dyn Fn(u64) + Sync),
) -> Result<AuditReport, crate::error::ThreadPoolError> {
    let ctx = AuditContext {
        sys,
        sig_owner: installed::signature_owners(&sys.packages),
        opts,
    };
    let pool = outcome::thread_pool(opts.jobs)?;
    let mut file_findings: Vec<Finding<Status>> = pool.install(|| {
        plan.files
            .par_iter()
            .map(|&r| {
                let finding = audit_file(&ctx, r);
                on_file(sys.file(r).1.size);
                finding
            })
            .collect()
    });
    file_findings.extend(plan.unsigned_by_policy.iter().map(|&r| {
        let (pkg, file) = sys.file(r);
        let outcome = Outcome::because(
            Status::UnsignedByPolicy,
            "left unsigned by the package's signer",
        );
        Finding::of_file(pkg, file.path_lossy(), outcome)
    }));
    file_findings.sort_by(|a, b| a.path.cmp(&b.path));
    let packages = package_summaries(&sys.packages, &file_findings);
    let mut findings = package_findings(sys, &plan);
    findings.extend(file_findings);
    let summary = outcome::count(&findings);
    Ok(AuditReport {
        root: sys.root.path().to_path_buf(),
        problems: findings.iter().filter(|f| f.status.is_problem()).count(),
        findings,
        summary,
        files_checked: plan.files.len(),
        packages_read: sys.packages.len(),
        packages,
        kernel_fs_verity: opts.kernel_fs_verity,
    })
}

/// Findings about whole rows and packages: unreadable rpmdb rows and unsigned packages.
fn package_findings(sys: &InstalledSystem, plan: &Plan) -> Vec<Finding<Status>> {
    let rows = sys.row_error_messages().into_iter().map(|detail| Finding {
        package: sys.db_path.display().to_string(),
        path: None,
        status: Status::Error,
        digest: None,
        detail: Some(detail),
    });
    let unsigned = plan.unsigned_packages.iter().map(|&i| Finding {
        package: sys.packages[i].nevra.clone(),
        path: None,
        status: Status::Unsigned,
        digest: None,
        detail: Some("package has no fs-verity signatures".into()),
    });
    rows.chain(unsigned).collect()
}

/// Per-package counts, in rpmdb order, of the packages that had files audited.
fn package_summaries(pkgs: &[InstalledPackage], files: &[Finding<Status>]) -> Vec<PackageSummary> {
    let mut by_pkg: HashMap<&str, PackageSummary> = HashMap::new();
    for f in files {
        let s = by_pkg
            .entry(f.package.as_str())
            .or_insert_with(|| PackageSummary {
                package: f.package.clone(),
                files: 0,
                counts: BTreeMap::new(),
            });
        s.files += 1;
        *s.counts.entry(f.status).or_insert(0) += 1;
    }
    pkgs.iter()
        .filter_map(|p| by_pkg.remove(p.nevra.as_str()))
        .collect()
}

fn audit_file(ctx: &AuditContext, r: FileRef) -> Finding<Status> {
    let (pkg, file) = ctx.sys.file(r);
    let path = file.path_lossy();
    let sig = file
        .signature
        .as_deref()
        .expect("only signed files are planned");
    let outcome = audit_one(ctx, pkg, file, &path, sig);
    Finding::of_file(pkg, path, outcome)
}

fn audit_one(
    ctx: &AuditContext,
    pkg: &InstalledPackage,
    f: &InstalledFile,
    path: &str,
    sig: &[u8],
) -> Outcome {
    let opened = match ctx.sys.root.open_file(&f.path) {
        Ok(o) => o,
        Err(e) => return open_failure(e, sig),
    };
    if let Some(why) = f.unexplained_links(opened.stat.st_nlink as u64) {
        return Outcome::because(Status::Hardlinked, why);
    }
    let file = &opened.file;
    match linux::is_verity(file.as_fd()) {
        Ok(true) => audit_verity_file(ctx, file, path, sig),
        Ok(false) => audit_plain_file(ctx, file, opened.stat.st_size as u64, pkg, sig),
        Err(e) => Outcome::because(Status::Error, e.to_string()),
    }
}

fn open_failure(e: ResolveError, sig: &[u8]) -> Outcome {
    match e {
        ResolveError::Missing => Outcome::new(Status::Missing),
        ResolveError::Verity(OpenError::CertNotInKeyring) => Outcome::because(
            Status::CertMissing,
            format!(
                "verity is on, but the certificate of {} is not in the .fs-verity keyring, so \
                 the file cannot be opened (rpm-verity keyring load)",
                check::signer_of(sig)
            ),
        ),
        ResolveError::Verity(OpenError::SignatureRejected) => {
            match crate::probe::ecdsa_rejection(sig) {
                Some(why) => Outcome::because(Status::Error, why),
                None => Outcome::because(
                    Status::Modified,
                    "the kernel rejects the file's stored signature on open",
                ),
            }
        }
        e @ (ResolveError::Symlink | ResolveError::NotRegular) => {
            Outcome::because(Status::Modified, e.to_string())
        }
        e => Outcome::because(Status::Error, e.to_string()),
    }
}

/// Verity is on: what the file says about itself, then (unless told not to) a read-through
/// that makes the kernel check every block.
fn audit_verity_file(ctx: &AuditContext, file: &File, path: &str, sig: &[u8]) -> Outcome {
    let verdict = match check::check_verity_file(file, sig, path, &ctx.trust()) {
        Ok(v) => v,
        Err(MeasureError::CertNotInKeyring) => {
            return Outcome::because(
                Status::CertMissing,
                "the certificate is not in the .fs-verity keyring",
            )
        }
        Err(e) => return Outcome::because(Status::Error, e.to_string()),
    };
    let (outcome, digest) = match verdict {
        VerityVerdict::Good(d) => (Outcome::new(Status::Ok), d),
        VerityVerdict::Swapped { other, digest } => (
            Outcome::because(
                Status::Swapped,
                format!("verity is on, but this is the content of {other}"),
            ),
            digest,
        ),
        VerityVerdict::Modified(d) => (
            Outcome::because(
                Status::Modified,
                "verity is on, with a digest the package did not sign",
            ),
            d,
        ),
        VerityVerdict::Unverifiable(d, why) => (
            Outcome::because(
                Status::Error,
                format!("verity is on, but its digest cannot be checked: {why}"),
            ),
            d,
        ),
    };
    let outcome = match ctx.opts.read.then(|| check::read_through(file)) {
        Some(Err(e @ ReadFailure::Eio { .. })) => {
            Outcome::because(Status::Corrupted, e.to_string())
        }
        Some(Err(e)) => Outcome::because(Status::Error, e.to_string()),
        _ => outcome,
    };
    outcome.with_digest(digest)
}

/// Verity is off: hash in user space and check against the package's signature.
fn audit_plain_file(
    ctx: &AuditContext,
    file: &File,
    size: u64,
    pkg: &InstalledPackage,
    sig: &[u8],
) -> Outcome {
    let digest = match check::userspace_digest(file, size, pkg.algorithm) {
        Ok(d) => d,
        Err(e @ ReadFailure::Eio { .. }) => {
            return Outcome::because(Status::Corrupted, e.to_string())
        }
        Err(e) => return Outcome::because(Status::Error, e.to_string()),
    };
    // Advice to run `enable` only where enabling can work.
    let advice = if ctx.opts.kernel_fs_verity == Some(false) {
        ""
    } else {
        " (rpm-verity enable)"
    };
    let outcome = match check::check_digest(sig, &digest, &ctx.sys.trusted.certs) {
        ContentCheck::Matches(_) => Outcome::because(
            Status::NotEnabled,
            format!("content matches its signature; verity is off{advice}"),
        ),
        ContentCheck::Differs => Outcome::because(
            Status::Modified,
            "verity is off and the content does not match the package's signature",
        ),
        ContentCheck::Unverifiable(why) => Outcome::because(
            Status::NotEnabled,
            format!("verity is off; content not checked: {why}"),
        ),
    };
    outcome.with_digest(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsverity::HashAlgorithm;

    fn pkg(name: &str, signed: bool) -> InstalledPackage {
        InstalledPackage {
            hnum: 1,
            name: name.into(),
            nevra: format!("{name}-1-1.noarch"),
            algorithm: HashAlgorithm::Sha256,
            has_signatures: signed,
            files: vec![InstalledFile {
                path: format!("/usr/share/{name}").into_bytes(),
                mode: 0o100644,
                flags: 0,
                size: 1,
                signature: signed.then(|| vec![1]),
                links: 1,
            }],
        }
    }

    #[test]
    fn plan_selects_signed_files_and_reports_unsigned_packages() {
        let pkgs = [pkg("a", true), pkg("b", false)];
        let p = plan(&pkgs, &[], false).unwrap();
        assert_eq!(
            p.files,
            [FileRef {
                package: 0,
                file: 0
            }]
        );
        assert_eq!(p.unsigned_packages, [1]);
        let p = plan(&pkgs, &["b".into()], false).unwrap();
        assert!(p.files.is_empty());
        assert!(plan(&pkgs, &["c".into()], false).is_err());
    }

    #[test]
    fn summaries_per_package_in_rpmdb_order() {
        let pkgs = [pkg("a", true), pkg("b", true)];
        let f = |p: &InstalledPackage, s| Finding::of_file(p, "/x".into(), Outcome::new(s));
        let files = [
            f(&pkgs[1], Status::Ok),
            f(&pkgs[0], Status::Modified),
            f(&pkgs[1], Status::Ok),
        ];
        let s = package_summaries(&pkgs, &files);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].package, "a-1-1.noarch");
        assert_eq!(s[1].files, 2);
        assert_eq!(s[1].counts[&Status::Ok], 2);
    }
}
