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

    /// Trusted certificate (PEM or DER); repeatable. Without it the signatures cannot be
    /// checked: the package is reported UNCHECKED and verify exits with 4 (see --no-cert).
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<PathBuf>,

    /// Check only what needs no certificate (the package's own digests, every file's content
    /// against its header digest, that each signature parses and names its signer), and exit
    /// with 0 when that is fine.
    #[arg(long, conflicts_with = "cert")]
    pub no_cert: bool,

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
    if trusted.is_empty() && !json && !args.no_cert {
        eprintln!("rpm-verity: note: no --cert given: signatures are not checked (exit status 4; --no-cert asks for this on purpose)");
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
    let failed = results.iter().filter(|r| !r.structure_ok()).count();
    let verified = results.iter().filter(|r| r.ok).count();
    let unchecked = results.len() - failed - verified;
    if json {
        let doc = serde_json::json!({
            "packages": results,
            "verified": verified,
            "unchecked": unchecked,
            "failed": failed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.packages.len() > 1 && !args.verbosity.quiet {
        println!(
            "{} verified, {unchecked} unchecked, {failed} failed",
            render::plural(verified, "package")
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else if unchecked > 0 && !args.no_cert {
        ExitCode::from(crate::EXIT_UNCHECKED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Problems always, every file with `-v`, the package's summary unless `-q` (as `rpm -K`
/// and `rpm -V` report).
fn print_text(r: &PackageVerdict, verbosity: Verbosity) {
    if let Some(e) = &r.error {
        let line = format!("{}: {e}", r.package);
        eprintln!("rpm-verity: error: {}", render::escape(&line));
        if r.files.is_empty() {
            return;
        }
    }
    for f in &r.files {
        if !f.status.is_problem() && !verbosity.verbose {
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
        println!("{}", render::escape(&line));
    }
    if verbosity.quiet {
        return;
    }
    let files = render::plural(r.files.len(), "file");
    let policy = match r.unsigned_by_policy {
        0 => String::new(),
        n => format!(", {n} unsigned by policy"),
    };
    let summary = if r.ok {
        format!("OK ({files}: {} good{policy})", r.good)
    } else if r.structure_ok() && !r.checked {
        format!("UNCHECKED ({files}: signatures not checked)")
    } else {
        format!("FAILED ({files}: {} good, {} bad)", r.good, r.bad)
    };
    println!("{}", render::escape(&format!("{}: {summary}", r.package)));
}
