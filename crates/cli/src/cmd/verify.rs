//! `rpm-verity verify`: check a package's fs-verity signatures against its payload and
//! certificates; the engine is `verity_package::verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use verity_package::verify::{FileStatus, PackageVerdict, Verifier};

use crate::args::{JobsOption, JsonOption, Verbosity};
use crate::render;

#[derive(clap::Args)]
pub struct Args {
    /// Packages to check.
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    /// Trusted certificate (PEM or DER); repeatable. Without it the signer of each file is
    /// reported and the payload is checked, but signatures cannot be checked cryptographically.
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<PathBuf>,

    #[command(flatten)]
    pub verbosity: Verbosity,

    #[command(flatten)]
    pub jobs: JobsOption,

    #[command(flatten)]
    pub json: JsonOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let trusted = crate::util::load_certificates(&args.cert)?;
    let threads = args.jobs.count();
    crate::util::init_rayon(threads);
    let json = args.json.json;
    if trusted.is_empty() && !json {
        eprintln!("rpm-verity: note: no --cert given: reporting signers and checking payloads only; signatures are not checked");
    }
    let verifier = Verifier::new(trusted, threads)?;
    let mut results = Vec::new();
    for pkg in &args.packages {
        let r = verifier.verify(pkg);
        if !json {
            print_text(&r, args.verbosity);
        }
        results.push(r);
    }
    verifier.shutdown();
    let failed = results.iter().filter(|r| !r.ok).count();
    let verified = results.len() - failed;
    if json {
        let doc =
            serde_json::json!({ "packages": results, "verified": verified, "failed": failed });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.packages.len() > 1 && !args.verbosity.quiet {
        println!(
            "{} verified, {failed} failed",
            render::plural(verified, "package")
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Problems always, every file with `-v`, the package's summary unless `-q` (as `rpm -K`
/// and `rpm -V` report).
fn print_text(r: &PackageVerdict, verbosity: Verbosity) {
    if let Some(e) = &r.error {
        eprintln!("rpm-verity: error: {}: {e}", r.package);
        if r.files.is_empty() {
            return;
        }
    }
    for f in &r.files {
        if f.status.is_good() && !verbosity.verbose {
            continue;
        }
        let mut line = format!("{:<9} {}", f.status.name(), f.path);
        if let Some(e) = &f.error {
            line.push_str(": ");
            line.push_str(e);
        } else if let Some(s) = &f.signer {
            if f.status != FileStatus::Ok {
                line.push_str(&format!(" (signer {s})"));
            }
        }
        println!("{line}");
    }
    if verbosity.quiet {
        return;
    }
    println!(
        "{}: {} ({}: {} good, {} bad)",
        r.package,
        if r.ok { "OK" } else { "FAILED" },
        render::plural(r.files.len(), "file"),
        r.good,
        r.bad
    );
}
