//! `rpm-verity sign`: add fs-verity signatures (tags 276/277) to RPM packages, like
//! `rpmsign --signverity` without GPG; the engine is `verity_package::sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use fsverity::HashAlgorithm;
use verity_package::sign::{self, Action, SignOptions, SignOutcome, SignStatus, WriteMode};
use verity_signing::{LocalSigner, Signer};

use crate::args::{parse_hash_alg, JobsOption, JsonOption};
use crate::render;

#[derive(clap::Args)]
pub struct Args {
    /// Packages to sign (in place unless --output-dir is given).
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or encrypted PKCS#8).
    #[arg(long, visible_alias = "fskpath", value_name = "KEY")]
    pub key: Option<PathBuf>,

    /// PEM or DER X.509 certificate of the key (default: the key file, if it holds one).
    #[arg(long, visible_alias = "certpath", value_name = "CERT")]
    pub cert: Option<PathBuf>,

    /// File holding the passphrase of an encrypted key (else $RPM_VERITY_KEY_PASS).
    #[arg(long, value_name = "FILE")]
    pub key_pass_file: Option<PathBuf>,

    /// fs-verity hash algorithm (any case, as rpmsign takes it).
    #[arg(long, visible_alias = "verityalgo", default_value = "sha256", value_parser = parse_hash_alg)]
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

    #[command(flatten)]
    pub jobs: JobsOption,

    #[command(flatten)]
    pub json: JsonOption,

    #[command(flatten)]
    pub remote: crate::remote::RemoteSignerArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args.jobs.count();
    crate::util::init_rayon(threads);
    let signer = signer(&args)?;
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
        hash_alg: args.hash_alg,
        output_dir: args.output_dir.clone(),
        include_source: args.include_source,
    };
    let json = args.json.json;
    let progress = render::count_bar(args.packages.len() as u64, "signing");
    let done = |out: &SignOutcome| {
        if !json {
            progress.suspend(|| {
                if out.status == SignStatus::Error {
                    eprintln!("rpm-verity: error: {}", line(out));
                } else {
                    println!("{}", line(out));
                }
            });
        }
        progress.inc(1);
    };
    let results = sign::sign_packages(&args.packages, &opts, action, threads, &done)?;
    progress.finish_and_clear();
    print_summary(&results, json, args.packages.len())?;
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

/// The signer `--key`/`--cert` or `--signer` describe; `None` with `--delete`.
fn signer(args: &Args) -> anyhow::Result<Option<Box<dyn Signer>>> {
    if args.delete {
        return Ok(None);
    }
    if args.remote.is_remote() {
        if args.key.is_some() || args.cert.is_some() {
            bail!("give either --key/--cert (sign here) or --signer (sign remotely), not both");
        }
        return Ok(Some(Box::new(args.remote.connect()?)));
    }
    let key = args.key.as_deref().ok_or_else(|| {
        anyhow!("no signing key: give --key KEY (and --cert CERT), or --signer URL")
    })?;
    let pass = crate::util::read_key_passphrase(args.key_pass_file.as_deref())?;
    // LoadError messages name the key and certificate files themselves.
    let signer = LocalSigner::load(key, args.cert.as_deref(), pass.as_deref())?;
    Ok(Some(Box::new(signer)))
}

fn print_summary(results: &[SignOutcome], json: bool, packages: usize) -> anyhow::Result<()> {
    let count = |s: SignStatus| results.iter().filter(|o| o.status == s).count();
    let failed = count(SignStatus::Error);
    if json {
        let doc = serde_json::json!({
            "packages": results,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if packages > 1 {
        let done = count(SignStatus::Signed) + count(SignStatus::Deleted);
        let skipped = count(SignStatus::Skipped);
        println!("{done} packages done, {skipped} skipped, {failed} failed");
    }
    Ok(())
}

/// One package's line of text output.
fn line(o: &SignOutcome) -> String {
    match o.status {
        SignStatus::Signed | SignStatus::Deleted => {
            let pct = if o.signature_header_before > 0 {
                100.0 * o.signature_header_growth as f64 / o.signature_header_before as f64
            } else {
                0.0
            };
            format!(
                "{}: {} files, {} hashed, {} signatures made, signature header {:+} bytes ({:+.1}%), {}{} in {:.2}s",
                o.package,
                o.files,
                render::human_bytes(o.bytes_hashed),
                o.signatures_made,
                o.signature_header_growth,
                pct,
                match o.mode {
                    Some(WriteMode::InPlace) => "written in place".to_string(),
                    Some(WriteMode::Rewrite) => format!("file {:+} bytes", o.file_growth),
                    None => String::new(),
                },
                o.output.as_ref().map(|p| format!(" -> {p}")).unwrap_or_default(),
                o.seconds
            )
        }
        SignStatus::Skipped => format!(
            "{}: skipped: {}",
            o.package,
            o.error.as_deref().unwrap_or("")
        ),
        SignStatus::Error => format!("{}: {}", o.package, o.error.as_deref().unwrap_or("failed")),
    }
}
