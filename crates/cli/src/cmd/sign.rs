//! `rpm-verity sign`: add fs-verity signatures (tags 276/277) to RPM packages, like
//! `rpmsign --signverity` without GPG; the engine is `verity_package::sign`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context};
use fsverity::HashAlgorithm;
use verity_package::select::{FileSelection, Glob};
use verity_package::sign::{
    self, Action, SignOptions, SignOutcome, SignProgress, SignStatus, WriteMode,
};
use verity_package::Progress;
use verity_signing::{LocalSigner, Signer};

use crate::args::{parse_hash_alg, JobsOption, JsonOption, Verbosity};
use crate::render;
use crate::rpm_defaults::SigningMacros;

#[derive(clap::Args)]
pub struct Args {
    /// Packages to sign (in place unless --output-dir is given).
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or encrypted PKCS#8), or a key on a PKCS#11 token as an
    /// RFC 7512 URI (`pkcs11:token=T;object=K?module-path=M&pin-source=file:F`; the PIN from
    /// pin-source, --key-pass-file or $RPM_VERITY_KEY_PASS). Default: rpm's
    /// %_file_signing_key (and then %_file_signing_cert), as rpmsign.
    #[arg(long, visible_alias = "fskpath", value_name = "KEY")]
    pub key: Option<PathBuf>,

    /// PEM or DER X.509 certificate of the key (default: the key file, if it holds one).
    #[arg(long, visible_alias = "certpath", value_name = "CERT")]
    pub cert: Option<PathBuf>,

    /// File holding the passphrase of an encrypted key, or the PIN of a token (else
    /// $RPM_VERITY_KEY_PASS).
    #[arg(long, value_name = "FILE")]
    pub key_pass_file: Option<PathBuf>,

    /// The key has a passphrase (rpmsign's flag): from --key-pass-file or
    /// $RPM_VERITY_KEY_PASS when given, else asked on the terminal.
    #[arg(long)]
    pub fskpass: bool,

    /// fs-verity hash algorithm (any case, as rpmsign takes it). Default: rpm's
    /// %_verity_algorithm, else sha256.
    #[arg(long, visible_alias = "verityalgo", value_parser = parse_hash_alg)]
    pub hash_alg: Option<HashAlgorithm>,

    /// Write signed copies into DIR instead of changing the packages.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Remove fs-verity signatures instead of adding them (like rpmsign --delfilesign).
    #[arg(long, conflicts_with_all = ["key", "cert"])]
    pub delete: bool,

    /// Also sign source packages (skipped by default, as rpm 6 does).
    #[arg(long)]
    pub include_source: bool,

    #[command(flatten)]
    pub selection: SelectionArgs,

    #[command(flatten)]
    pub jobs: JobsOption,

    #[command(flatten)]
    pub json: JsonOption,

    #[command(flatten)]
    pub verbosity: Verbosity,

    #[command(flatten)]
    pub remote: crate::remote::RemoteSignerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args.jobs.count();
    crate::util::init_rayon(threads);
    crate::util::remove_temp_files_on_signal()?;
    let macros = rpm_macros(&args);
    let hash_alg = match (args.hash_alg, &macros.algorithm) {
        (Some(a), _) => a,
        (None, Some(name)) => parse_hash_alg(name)
            .map_err(|e| anyhow!("%_verity_algorithm (from rpm's macros): {e}"))?,
        (None, None) => HashAlgorithm::Sha256,
    };
    let signer = signer(&args, &macros)?;
    if let Some(dir) = &args.output_dir {
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("output directory {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("output directory {}: not a directory", dir.display());
        }
    }
    let action = match signer.as_deref() {
        Some(s) => Action::Sign(s),
        None => Action::Delete,
    };
    let opts = SignOptions {
        hash_alg,
        output_dir: args.output_dir.clone(),
        include_source: args.include_source,
        list_files: args.verbosity.verbose,
        selection: args.selection.selection(),
    };
    let report = Report::new(&args);
    let results = sign::sign_packages(&args.packages, &opts, action, threads, &report)?;
    report.finish();
    print_summary(&results, &args)?;
    let failed = results
        .iter()
        .filter(|o| o.status == SignStatus::Error)
        .count();
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Text output while packages finish: one line per package in argument order (a package that
/// finishes early waits for those before it), a count bar for several packages and a byte bar
/// for one.
struct Report {
    text: bool,
    verbosity: Verbosity,
    bar: indicatif::ProgressBar,
    bytes: bool,
    /// Next package to print, and finished ones waiting for it.
    pending: Mutex<(usize, BTreeMap<usize, SignOutcome>)>,
}

impl Report {
    fn new(args: &Args) -> Report {
        let n = args.packages.len();
        let bytes = n == 1;
        let bar = if bytes {
            render::progress_bar(0, &args.packages[0].display().to_string())
        } else {
            render::count_bar(n as u64, "signing")
        };
        Report {
            text: !args.json.json,
            verbosity: args.verbosity,
            bar,
            bytes,
            pending: Mutex::new((0, BTreeMap::new())),
        }
    }

    fn print(&self, o: &SignOutcome) {
        if !self.text {
            return;
        }
        for stale in &o.stale_removed {
            eprintln!(
                "rpm-verity: note: removed {}, left by an interrupted run",
                render::escape(stale)
            );
        }
        if o.status == SignStatus::Error {
            eprintln!("rpm-verity: error: {}", render::escape(&line(o)));
        } else if !self.verbosity.quiet {
            println!("{}", render::escape(&line(o)));
            if self.verbosity.verbose {
                for f in &o.file_digests {
                    println!("  {} {}", f.digest, render::escape(&f.path));
                }
            }
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Report {
    fn started(&self, total: u64) {
        if self.bytes {
            self.bar.set_length(total);
        }
    }
    fn hashed(&self, n: u64) {
        if self.bytes {
            self.bar.inc(n);
        }
    }
}

impl SignProgress for Report {
    fn finished(&self, index: usize, outcome: &SignOutcome) {
        if !self.bytes {
            self.bar.inc(1);
        }
        let Ok(mut guard) = self.pending.lock() else {
            return;
        };
        let (next, waiting) = &mut *guard;
        waiting.insert(index, outcome.clone());
        while let Some(o) = waiting.remove(next) {
            self.bar.suspend(|| self.print(&o));
            *next += 1;
        }
    }
}

/// rpmsign's macros, read (through `rpm --eval`) only when an option they stand for is
/// missing and the signing is local.
fn rpm_macros(args: &Args) -> SigningMacros {
    let missing = args.key.is_none() || args.hash_alg.is_none();
    if args.delete || args.remote.is_remote() || !missing {
        return SigningMacros::default();
    }
    let mut m = SigningMacros::read();
    if args.key.is_some() {
        // A key given on the command line goes with its own certificate, not rpm's.
        m.key = None;
        m.cert = None;
    }
    m
}

/// The signer `--key`/`--cert` (or rpm's macros) or `--signer` describe; `None` with `--delete`.
fn signer(args: &Args, macros: &SigningMacros) -> anyhow::Result<Option<Box<dyn Signer>>> {
    if args.delete {
        return Ok(None);
    }
    if args.remote.is_remote() {
        if args.key.is_some() || args.cert.is_some() {
            bail!("give either --key/--cert (sign here) or --signer (sign remotely), not both");
        }
        return Ok(Some(Box::new(args.remote.connect()?)));
    }
    let key = args
        .key
        .as_deref()
        .or(macros.key.as_deref())
        .ok_or_else(|| {
            anyhow!(
                "no signing key: give --key KEY (and --cert CERT), or --signer URL, \
             or define %_file_signing_key for rpm"
            )
        })?;
    let cert = args.cert.as_deref().or(macros.cert.as_deref());
    let pass = if args.fskpass {
        Some(crate::rpm_defaults::fskpass(
            key,
            args.key_pass_file.as_deref(),
        )?)
    } else {
        verity_signing::read_key_passphrase(args.key_pass_file.as_deref())?
    };
    // LoadError messages name the key and certificate files themselves.
    let signer = LocalSigner::load(key, cert, pass.as_deref())?;
    Ok(Some(Box::new(signer)))
}

fn print_summary(results: &[SignOutcome], args: &Args) -> anyhow::Result<()> {
    let count = |s: SignStatus| results.iter().filter(|o| o.status == s).count();
    let failed = count(SignStatus::Error);
    let done = count(SignStatus::Signed) + count(SignStatus::Deleted);
    let skipped = count(SignStatus::Skipped);
    if args.json.json {
        let doc = serde_json::json!({
            "packages": results,
            "done": done,
            "skipped": skipped,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.packages.len() > 1 && !args.verbosity.quiet {
        println!(
            "{} done, {skipped} skipped, {failed} failed",
            render::plural(done, "package")
        );
    }
    Ok(())
}

/// Which files get a signature (the others an empty entry in tag 276).
#[derive(clap::Args)]
pub struct SelectionArgs {
    /// Sign only files whose installed path matches GLOB (`*` within a directory, `**` across);
    /// repeatable. With --executables, these files as well as the executables.
    #[arg(long, value_name = "GLOB", value_parser = parse_glob, conflicts_with = "delete")]
    pub files: Vec<Glob>,

    /// Leave out files whose installed path matches GLOB; repeatable.
    #[arg(long, value_name = "GLOB", value_parser = parse_glob, conflicts_with = "delete")]
    pub exclude: Vec<Glob>,

    /// Sign only ELF files (programs, shared libraries) and `#!` scripts, told by content.
    #[arg(long, conflicts_with = "delete")]
    pub executables: bool,
}

impl SelectionArgs {
    fn selection(&self) -> FileSelection {
        FileSelection {
            files: self.files.clone(),
            exclude: self.exclude.clone(),
            executables: self.executables,
        }
    }
}

fn parse_glob(s: &str) -> Result<Glob, String> {
    Glob::new(s)
}

/// One package's line of text output.
fn line(o: &SignOutcome) -> String {
    match o.status {
        SignStatus::Signed => format!(
            "{}: {}{}, {} hashed, {} made, {}, {}",
            o.package,
            render::plural(o.files, "file"),
            match o.files - o.files_signed.min(o.files) {
                0 => String::new(),
                n => format!(" ({n} left unsigned by --files/--exclude/--executables)"),
            },
            render::human_bytes(o.bytes_hashed),
            render::plural(o.signatures_made, "signature"),
            previous(o),
            written(o),
        ),
        SignStatus::Deleted => format!("{}: {}, {}", o.package, previous(o), written(o)),
        SignStatus::Skipped => format!(
            "{}: skipped: {}",
            o.package,
            o.error.as_deref().unwrap_or("")
        ),
        SignStatus::Error => format!("{}: {}", o.package, o.error.as_deref().unwrap_or("failed")),
    }
}

/// What happened to the signatures the package had.
fn previous(o: &SignOutcome) -> String {
    let verb = match o.status {
        SignStatus::Deleted => "removed",
        _ => "replaced",
    };
    match &o.replaced {
        None if o.status == SignStatus::Deleted => "no signatures to remove".to_string(),
        None => "no previous signatures".to_string(),
        Some(r) => {
            let by = match r.signers.as_slice() {
                [] => String::new(),
                [one] => format!(" by {one}"),
                more => format!(" by {} signers", more.len()),
            };
            format!(
                "signatures of {} {verb}{by}",
                render::plural(r.files, "file")
            )
        }
    }
}

/// Growth of the package file (in bytes and as a share of the package), where it went, and
/// how long it took.
fn written(o: &SignOutcome) -> String {
    let pct = if o.package_size > 0 {
        100.0 * o.file_growth as f64 / o.package_size as f64
    } else {
        0.0
    };
    format!(
        "package {:+} bytes ({pct:+.1}%){}{} in {:.2}s",
        o.file_growth,
        match o.mode {
            Some(WriteMode::InPlace) => ", written in place",
            _ => "",
        },
        o.output
            .as_ref()
            .map(|p| format!(" -> {p}"))
            .unwrap_or_default(),
        o.seconds
    )
}
