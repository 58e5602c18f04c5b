//! `enable`: turn fs-verity on for installed files, with their packages' signatures, the way
//! rpm's fsverity plugin meant to but cannot (it passes its O_WRONLY fd: ETXTBSY/EBADF).
//!
//! Each file is opened O_RDONLY|O_NOFOLLOW strictly inside the root, enabled with its signature
//! (so a kernel with built-in signatures checks it: EKEYREJECTED = the content changed), and its
//! mtime/atime are put back (ext4 sets mtime to now, which `rpm -V` would report). The verdict
//! never rests on the kernel alone: a kernel without CONFIG_FS_VERITY_BUILTIN_SIGNATURES stores
//! any signature unchecked, so there the content is checked against a configured certificate
//! before enabling, and after enabling the measured digest must be the one the package signed
//! ([`check::verity_verdict`]).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use fsverity::linux::{self, EnableError, MeasureError, OpenError};
use rayon::prelude::*;
use serde::Serialize;

use crate::check::{self, ContentCheck, Trust, VerityVerdict};
use crate::installed::{self, InstalledFile, InstalledPackage, InstalledSystem, NotInstalled};
use crate::outcome::{self, named_enum, FileOutcome, FileRef, Finding, RunVerdict};
use crate::root::{OpenedFile, ResolveError};

named_enum! {
    /// What happened to one file. Everything after `Unsupported` is a failure.
    pub enum Status {
        Enabled = "ENABLED",
        Already = "ALREADY",
        WouldEnable = "WOULD-ENABLE",
        Unsupported = "UNSUPPORTED",
        Modified = "MODIFIED",
        /// More hard links than the package explains: refused, nothing changed.
        Hardlinked = "HARDLINKED",
        Swapped = "SWAPPED",
        Missing = "MISSING",
        Busy = "BUSY",
        CertMissing = "CERT-MISSING",
        Refused = "REFUSED",
        Error = "ERROR",
    }
}

impl Status {
    pub fn is_failure(self) -> bool {
        self > Status::Unsupported
    }
}

pub type Outcome = FileOutcome<Status>;
pub type FileResult = Finding<Status>;

/// Which files to enable, as the command line names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Every installed package.
    pub all: bool,
    /// Package names (name, name-version-release or the full nevra).
    pub packages: Vec<String>,
    /// Installed file paths, as rpm records them.
    pub paths: Vec<Vec<u8>>,
}

impl Selection {
    /// Positional targets are paths when they start with `/` (rpm paths are absolute),
    /// packages otherwise; `listed` are the paths from `--files-from`.
    pub fn from_targets(targets: &[String], all: bool, listed: Vec<Vec<u8>>) -> Selection {
        let (paths, packages): (Vec<&String>, Vec<&String>) =
            targets.iter().partition(|t| t.starts_with('/'));
        let mut sel = Selection {
            all,
            packages: packages.into_iter().cloned().collect(),
            paths: paths.into_iter().map(|p| p.as_bytes().to_vec()).collect(),
        };
        sel.paths.extend(listed);
        sel
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.packages.is_empty() && self.paths.is_empty()
    }
}

/// Paths one per line, as rpm's `%transfiletriggerin` passes them: bytes (paths need not be
/// UTF-8), CRLF tolerated, empty lines ignored.
pub fn read_path_list(r: impl BufRead) -> io::Result<Vec<Vec<u8>>> {
    let mut paths = Vec::new();
    for line in r.split(b'\n') {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if !line.is_empty() {
            paths.push(line.to_vec());
        }
    }
    Ok(paths)
}

/// The files a selection comes to, and what it leaves out and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub files: Vec<FileRef>,
    /// Files passed over, by [`installed::skip_reason`].
    pub skipped: BTreeMap<&'static str, usize>,
    /// Selected packages without fs-verity signatures.
    pub unsigned_packages: Vec<String>,
    /// Selected paths no installed package owns (a trigger passes directories and such).
    pub not_owned: Vec<String>,
}

/// Collects the plan, each file once however often it is selected.
struct Planner<'a> {
    pkgs: &'a [InstalledPackage],
    config: bool,
    plan: Plan,
    seen: HashSet<FileRef>,
}

impl Planner<'_> {
    fn add_package(&mut self, package: usize) {
        let p = &self.pkgs[package];
        if !p.has_signatures && !p.files.is_empty() {
            self.plan.unsigned_packages.push(p.nevra.clone());
        }
        for file in 0..p.files.len() {
            self.add_file(FileRef { package, file });
        }
    }

    fn add_file(&mut self, r: FileRef) {
        let p = &self.pkgs[r.package];
        let f = &p.files[r.file];
        match installed::skip_reason(f, self.config, p.has_signatures) {
            Some(reason) => *self.plan.skipped.entry(reason).or_insert(0) += 1,
            None => {
                if self.seen.insert(r) {
                    self.plan.files.push(r);
                }
            }
        }
    }
}

/// Resolves `sel` against the installed packages; `config` also takes %config files that are
/// not executable (rpm's %_fsverity_sign_config_files).
pub fn plan(
    pkgs: &[InstalledPackage],
    sel: &Selection,
    config: bool,
) -> Result<Plan, NotInstalled> {
    let mut p = Planner {
        pkgs,
        config,
        plan: Plan::default(),
        seen: HashSet::new(),
    };
    if sel.all {
        (0..pkgs.len()).for_each(|i| p.add_package(i));
    }
    for name in &sel.packages {
        let hits: Vec<usize> = (0..pkgs.len()).filter(|&i| pkgs[i].matches(name)).collect();
        if hits.is_empty() {
            return Err(NotInstalled(name.clone()));
        }
        hits.into_iter().for_each(|i| p.add_package(i));
    }
    if !sel.paths.is_empty() {
        let index = installed::path_index(pkgs);
        for path in &sel.paths {
            match index.get(path.as_slice()) {
                Some(&(package, file)) => p.add_file(FileRef { package, file }),
                None => p
                    .plan
                    .not_owned
                    .push(String::from_utf8_lossy(path).into_owned()),
            }
        }
    }
    Ok(p.plan)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct EnableOptions {
    /// Check in user space what would be enabled; change nothing.
    pub dry_run: bool,
    /// Worker threads.
    pub jobs: usize,
}

/// A filesystem that refused fs-verity: named once, however many files sit on it.
#[derive(Debug, Clone, Serialize)]
pub struct UnsupportedFs {
    pub message: String,
    pub files: usize,
}

/// Everything `enable` found, for rendering and for the exit status.
#[derive(Serialize)]
pub struct EnableReport {
    pub dry_run: bool,
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<FileResult>,
    #[serde(rename = "summary")]
    pub counts: BTreeMap<Status, usize>,
    pub skipped: BTreeMap<&'static str, usize>,
    pub unsigned_packages: Vec<String>,
    pub not_owned: Vec<String>,
    pub unsupported_filesystems: Vec<UnsupportedFs>,
    /// The rpmdb rows that could not be read, each as its one-line error chain.
    pub rpmdb_errors: Vec<String>,
    #[serde(skip)]
    pub rpmdb: PathBuf,
    #[serde(rename = "certificates")]
    pub cert_source: String,
}

impl EnableReport {
    pub fn failures(&self) -> usize {
        self.files.iter().filter(|r| r.status.is_failure()).count() + self.rpmdb_errors.len()
    }

    pub fn verdict(&self) -> RunVerdict {
        if self.failures() > 0 {
            RunVerdict::Failures
        } else if self.counts.contains_key(&Status::Unsupported) {
            RunVerdict::UnsupportedFilesystem
        } else {
            RunVerdict::Clean
        }
    }
}

/// Shared by the workers of one run.
impl EnableContext<'_> {
    fn trust(&self) -> Trust<'_> {
        Trust {
            certs: &self.sys.trusted.certs,
            kernel_checks_signatures: self.kernel_checks_signatures,
            sig_owner: &self.sig_owner,
            kernel_keys: &crate::check::keyring_vouches,
        }
    }
}

struct EnableContext<'a> {
    sys: &'a InstalledSystem,
    sig_owner: HashMap<&'a [u8], String>,
    dry_run: bool,
    /// [`linux::builtin_signatures`]: whether the kernel checks the signatures it is given.
    kernel_checks_signatures: bool,
    /// Devices whose filesystem refused verity (ENOTTY/EOPNOTSUPP): later files on them are
    /// not tried again.
    unsupported: Mutex<HashMap<u64, UnsupportedFs>>,
    /// Signers the kernel answered ENOKEY for: later files go straight to user space.
    missing_signers: Mutex<HashSet<String>>,
}

/// One file being enabled.
struct FileJob<'a> {
    pkg: &'a InstalledPackage,
    file: &'a InstalledFile,
    path: &'a str,
    sig: &'a [u8],
}

/// Enables every file of `plan`, `jobs` at a time. `on_file` sees each result as it comes
/// (with the file's size, for progress), so a caller can print while the run goes on.
pub fn run(
    sys: &InstalledSystem,
    plan: Plan,
    opts: EnableOptions,
    on_file: &(dyn Fn(&FileResult, u64) + Sync),
) -> Result<EnableReport, crate::error::ThreadPoolError> {
    let ctx = EnableContext {
        sys,
        sig_owner: installed::signature_owners(&sys.packages),
        dry_run: opts.dry_run,
        kernel_checks_signatures: linux::builtin_signatures(),
        unsupported: Mutex::new(HashMap::new()),
        missing_signers: Mutex::new(HashSet::new()),
    };
    let pool = outcome::thread_pool(opts.jobs)?;
    let mut files: Vec<FileResult> = pool.install(|| {
        plan.files
            .par_iter()
            .map(|&r| {
                let result = enable_file(&ctx, r);
                on_file(&result, sys.file(r).1.size);
                result
            })
            .collect()
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut unsupported: Vec<UnsupportedFs> = ctx
        .unsupported
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_values()
        .collect();
    unsupported.sort_by(|a, b| a.message.cmp(&b.message));
    Ok(EnableReport {
        dry_run: opts.dry_run,
        root: sys.root.path().to_path_buf(),
        counts: outcome::count(&files),
        files,
        skipped: plan.skipped,
        unsigned_packages: plan.unsigned_packages,
        not_owned: plan.not_owned,
        unsupported_filesystems: unsupported,
        rpmdb_errors: sys.row_error_messages(),
        rpmdb: sys.db_path.clone(),
        cert_source: sys.trusted.source.clone(),
    })
}

fn enable_file(ctx: &EnableContext, r: FileRef) -> FileResult {
    let (pkg, file) = ctx.sys.file(r);
    let path = file.path_lossy();
    let sig = file
        .signature
        .as_deref()
        .expect("only signed files are planned");
    let job = FileJob {
        pkg,
        file,
        path: &path,
        sig,
    };
    let outcome = enable_one(ctx, &job);
    Finding::of_file(pkg, path, outcome)
}

fn enable_one(ctx: &EnableContext, job: &FileJob) -> Outcome {
    let opened = match ctx.sys.root.open_file(&job.file.path) {
        Ok(o) => o,
        Err(e) => return open_failure(e, job.sig),
    };
    if let Some(why) = job.file.unexplained_links(opened.stat.st_nlink as u64) {
        return Outcome::because(Status::Hardlinked, format!("{why}; refused"));
    }
    let file = &opened.file;
    let dev = opened.stat.st_dev;
    if let Some(fs) = ctx.unsupported.lock().unwrap().get_mut(&dev) {
        fs.files += 1;
        return Outcome::new(Status::Unsupported);
    }
    match linux::is_verity(file.as_fd()) {
        Ok(true) => return already(ctx, file, job),
        Ok(false) => {}
        Err(e) => return Outcome::because(Status::Error, e.to_string()),
    }
    let signer = check::signer_of(job.sig);
    if ctx.dry_run || ctx.missing_signers.lock().unwrap().contains(&signer) {
        return userspace(ctx, file, job, &signer);
    }
    if !ctx.kernel_checks_signatures && can_do_verity(file) {
        if let Some(refused) = precheck(ctx, file, job) {
            return refused;
        }
    }
    match enable_with_retries(file, job) {
        Ok(()) => confirm_enabled(ctx, &opened, job),
        Err(EnableError::AlreadyEnabled) => already(ctx, file, job),
        Err(EnableError::CertNotInKeyring) => {
            ctx.missing_signers.lock().unwrap().insert(signer.clone());
            userspace(ctx, file, job, &signer)
        }
        Err(e) if e.is_unsupported() => unsupported_fs(ctx, dev, job.path, &e),
        Err(e) => enable_failure(e, job.sig),
    }
}

/// Opening failed: what that says about the file.
fn open_failure(e: ResolveError, sig: &[u8]) -> Outcome {
    match e {
        ResolveError::Missing => Outcome::new(Status::Missing),
        ResolveError::Verity(OpenError::CertNotInKeyring) => Outcome::because(
            Status::CertMissing,
            format!(
                "verity is on but the certificate of {} is not in the .fs-verity keyring \
                 (rpm-verity keyring load)",
                check::signer_of(sig)
            ),
        ),
        ResolveError::Verity(e) => Outcome::because(Status::Refused, e.to_string()),
        e @ (ResolveError::Symlink | ResolveError::NotRegular) => {
            Outcome::because(Status::Modified, e.to_string())
        }
        e => Outcome::because(Status::Error, e.to_string()),
    }
}

/// Whether the file's filesystem (and the kernel) can do fs-verity at all: FS_IOC_MEASURE_VERITY
/// on a file without verity answers ENODATA there, ENOTTY/EOPNOTSUPP elsewhere. Where it cannot,
/// enabling fails anyway, and checking the content first would only cost a read.
fn can_do_verity(file: &File) -> bool {
    !matches!(linux::measure_verity(file.as_fd()), Err(e) if e.is_unsupported())
}

/// A kernel without built-in signatures would store the package's signature without checking
/// it, enabling a modified file as readily as the real one: the content is checked in user space
/// first, and nothing is enabled that a configured certificate does not vouch for.
fn precheck(ctx: &EnableContext, file: &File, job: &FileJob) -> Option<Outcome> {
    let digest = match check::userspace_digest(file, job.file.size, job.pkg.algorithm) {
        Ok(d) => d,
        Err(e) => return Some(Outcome::because(Status::Error, e.to_string())),
    };
    let refused = match check::check_digest(job.sig, &digest, &ctx.sys.trusted.certs) {
        ContentCheck::Matches(_) => return None,
        ContentCheck::Differs => Outcome::because(
            Status::Modified,
            "content does not match the package's signature; left unchanged",
        ),
        ContentCheck::Unverifiable(why) => Outcome::because(
            Status::CertMissing,
            format!(
                "not enabled: this kernel does not check built-in signatures (no \
                 CONFIG_FS_VERITY_BUILTIN_SIGNATURES), so the content must be checked against \
                 a configured certificate first: {why}"
            ),
        ),
    };
    Some(refused.with_digest(digest))
}

/// Verity is on now: the verdict is what the measured digest says, not what the kernel
/// accepted. Then mtime/atime go back.
fn confirm_enabled(ctx: &EnableContext, opened: &OpenedFile, job: &FileJob) -> Outcome {
    let measured = match linux::measure_verity(opened.file.as_fd()) {
        Ok(Some(d)) => d,
        Ok(None) => return Outcome::because(Status::Error, "verity enabled, but not measurable"),
        Err(e) => {
            return Outcome::because(
                Status::Error,
                format!("verity enabled, but measuring it failed: {e}"),
            )
        }
    };
    let verdict = check::verity_verdict(&measured, Some(job.sig), job.sig, job.path, &ctx.trust());
    let outcome = match verdict {
        VerityVerdict::Good(d) => Outcome::new(Status::Enabled).with_digest(d),
        other => verity_problem(
            other,
            "verity was enabled, but the measured digest is not the one the package signed",
        ),
    };
    if let Err(e) = restore_times(opened) {
        return Outcome::because(
            Status::Error,
            format!("verity enabled, but restoring mtime failed: {e}"),
        );
    }
    outcome
}

/// ETXTBSY is usually a short-lived writer (an installer finishing up): retry for a second.
fn enable_with_retries(file: &File, job: &FileJob) -> Result<(), EnableError> {
    let mut attempt = 0;
    loop {
        match linux::enable_verity(file.as_fd(), job.pkg.algorithm, 4096, &[], Some(job.sig)) {
            Err(EnableError::FileBusy) if attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// ext4 sets mtime (and ctime) to now on enable: put mtime/atime back so that `rpm -V` stays
/// quiet. ctime cannot be set, and nothing compares it.
fn restore_times(opened: &OpenedFile) -> io::Result<()> {
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
    rustix::fs::futimens(&opened.file, &ts).map_err(io::Error::from)
}

/// The first file on a filesystem without fs-verity names the filesystem; later ones on the
/// same device only count.
fn unsupported_fs(ctx: &EnableContext, dev: u64, path: &str, e: &EnableError) -> Outcome {
    let mut m = ctx.unsupported.lock().unwrap();
    let fs = m.entry(dev).or_insert_with(|| UnsupportedFs {
        message: format!(
            "{}: filesystem of {path} (device {}:{}) cannot do fs-verity: {e}",
            ctx.sys.root.path().display(),
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        ),
        files: 0,
    });
    fs.files += 1;
    Outcome::new(Status::Unsupported)
}

fn enable_failure(e: EnableError, sig: &[u8]) -> Outcome {
    match e {
        EnableError::SignatureRejected => match crate::probe::ecdsa_rejection(sig) {
            Some(why) => Outcome::because(Status::Error, why),
            None => Outcome::because(
                Status::Modified,
                "content does not match the package's signature (EKEYREJECTED); left unchanged",
            ),
        },
        EnableError::FileBusy => Outcome::because(
            Status::Busy,
            "open for writing by some process (ETXTBSY) after 1 s of retries",
        ),
        EnableError::SignatureRequired => Outcome::because(
            Status::Refused,
            "refused with EPERM: the file is append-only/immutable, or \
             fs.verity.require_signatures=1 rejected it",
        ),
        e => Outcome::because(Status::Error, e.to_string()),
    }
}

/// A file that is verity already: compare instead of enabling.
fn already(ctx: &EnableContext, file: &File, job: &FileJob) -> Outcome {
    match check::check_verity_file(file, job.sig, job.path, &ctx.trust()) {
        Ok(VerityVerdict::Good(d)) => Outcome::new(Status::Already).with_digest(d),
        Ok(v) => verity_problem(
            v,
            "verity is on, but with a digest the package did not sign",
        ),
        Err(MeasureError::CertNotInKeyring) => Outcome::because(
            Status::CertMissing,
            "verity is on but its certificate is not in the .fs-verity keyring",
        ),
        Err(e) => Outcome::because(Status::Error, e.to_string()),
    }
}

/// A verity file whose digest is not shown to be the package's; `modified` words that case.
fn verity_problem(v: VerityVerdict, modified: &str) -> Outcome {
    match v {
        VerityVerdict::Good(d) => Outcome::new(Status::Already).with_digest(d),
        VerityVerdict::Swapped { other, digest } => Outcome::because(
            Status::Swapped,
            format!("verity is on, but with the signature of {other}"),
        )
        .with_digest(digest),
        VerityVerdict::Modified(d) => Outcome::because(Status::Modified, modified).with_digest(d),
        VerityVerdict::Unverifiable(d, why) => Outcome::because(
            Status::Error,
            format!("verity is on, but its digest cannot be checked: {why}"),
        )
        .with_digest(d),
    }
}

/// The user-space path: a dry run, or the kernel said ENOKEY. Hashes the file and checks the
/// signature against the trusted certificates.
fn userspace(ctx: &EnableContext, file: &File, job: &FileJob, signer: &str) -> Outcome {
    let digest = match check::userspace_digest(file, job.file.size, job.pkg.algorithm) {
        Ok(d) => d,
        Err(e) => return Outcome::because(Status::Error, e.to_string()),
    };
    let outcome = match check::check_digest(job.sig, &digest, &ctx.sys.trusted.certs) {
        ContentCheck::Matches(subject) if ctx.dry_run => Outcome::because(
            Status::WouldEnable,
            format!("content matches, signed by {subject}"),
        ),
        ContentCheck::Matches(subject) => Outcome::because(
            Status::CertMissing,
            format!(
                "content matches its signature, but the signing certificate ({subject}) is \
                 not in the .fs-verity keyring: load it (rpm-verity keyring load) and run again"
            ),
        ),
        ContentCheck::Differs => Outcome::because(
            Status::Modified,
            "content does not match the package's signature",
        ),
        ContentCheck::Unverifiable(why) if ctx.dry_run => {
            Outcome::because(Status::CertMissing, why)
        }
        ContentCheck::Unverifiable(why) => Outcome::because(
            Status::CertMissing,
            format!(
                "the certificate of {signer} is not in the .fs-verity keyring; content not \
                 checked: {why}"
            ),
        ),
    };
    outcome.with_digest(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsverity::HashAlgorithm;
    use rpm_format::tags;

    fn file(path: &str, mode: u16, flags: u32, signed: bool) -> InstalledFile {
        InstalledFile {
            path: path.as_bytes().to_vec(),
            mode,
            flags,
            size: 1,
            signature: signed.then(|| vec![1, 2, 3]),
            links: 1,
        }
    }

    fn pkg(name: &str, signed: bool, files: Vec<InstalledFile>) -> InstalledPackage {
        InstalledPackage {
            hnum: 1,
            name: name.into(),
            nevra: format!("{name}-1.0-1.x86_64"),
            algorithm: HashAlgorithm::Sha256,
            has_signatures: signed,
            files,
        }
    }

    fn packages() -> Vec<InstalledPackage> {
        const REG: u16 = 0o100644;
        vec![
            pkg(
                "alpha",
                true,
                vec![
                    file("/usr/bin/a", 0o100755, 0, true),
                    file("/etc/a.conf", REG, tags::FILE_CONFIG, true),
                    file("/usr/share/a", 0o040755, 0, false),
                    file("/var/a.log", REG, tags::FILE_GHOST, true),
                ],
            ),
            pkg("gamma", false, vec![file("/usr/share/g", REG, 0, false)]),
        ]
    }

    #[test]
    fn targets_split_into_packages_and_paths() {
        let sel = Selection::from_targets(
            &["alpha".into(), "/usr/bin/a".into()],
            false,
            vec![b"/listed".to_vec()],
        );
        assert_eq!(sel.packages, ["alpha"]);
        assert_eq!(sel.paths, [b"/usr/bin/a".to_vec(), b"/listed".to_vec()]);
        assert!(Selection::from_targets(&[], false, vec![]).is_empty());
        assert!(!Selection::from_targets(&[], true, vec![]).is_empty());
    }

    #[test]
    fn path_lists_tolerate_crlf_and_blank_lines() {
        let paths = read_path_list(&b"/a\r\n\n/b\xff\n/c"[..]).unwrap();
        assert_eq!(paths, [b"/a".to_vec(), b"/b\xff".to_vec(), b"/c".to_vec()]);
    }

    #[test]
    fn plan_skips_what_rpm_would_and_dedups() {
        let pkgs = packages();
        let sel = Selection {
            all: true,
            packages: vec!["alpha".into()],
            paths: vec![b"/usr/bin/a".to_vec(), b"/nowhere".to_vec()],
        };
        let p = plan(&pkgs, &sel, false).unwrap();
        assert_eq!(
            p.files,
            [FileRef {
                package: 0,
                file: 0
            }]
        );
        assert_eq!(p.not_owned, ["/nowhere"]);
        assert_eq!(p.unsigned_packages, ["gamma-1.0-1.x86_64"]);
        assert_eq!(p.skipped["ghost"], 2);
        assert_eq!(p.skipped["not-regular"], 2);
        assert_eq!(p.skipped["config"], 2);
        assert_eq!(p.skipped["unsigned"], 1);

        let sel = Selection {
            packages: vec!["alpha".into()],
            ..Selection::default()
        };
        let p = plan(&pkgs, &sel, true).unwrap();
        assert_eq!(p.files.len(), 2, "{p:?}");

        let sel = Selection {
            packages: vec!["nosuch".into()],
            ..Selection::default()
        };
        let e = plan(&pkgs, &sel, false).unwrap_err();
        assert_eq!(e.to_string(), "package nosuch is not installed");
    }

    #[test]
    fn failures_decide_the_verdict() {
        assert!(!Status::Unsupported.is_failure());
        assert!(!Status::WouldEnable.is_failure());
        assert!(Status::Modified.is_failure());
        assert_eq!(Status::CertMissing.name(), "CERT-MISSING");
        assert_eq!(
            serde_json::to_string(&Status::WouldEnable).unwrap(),
            "\"WOULD-ENABLE\""
        );
    }
}
