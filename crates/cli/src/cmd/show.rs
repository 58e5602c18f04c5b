//! `rpm-verity show`: each file's fs-verity signature as the package carries it (signer,
//! hash, key, size), unchecked; the engine is `verity_package::show`.

use std::path::PathBuf;
use std::process::ExitCode;

use verity_package::show::{self, ShownPackage};

use crate::args::JsonOption;
use crate::render::{self, escape};

#[derive(clap::Args)]
pub struct Args {
    /// Packages to show.
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    #[command(flatten)]
    pub json: JsonOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let results: Vec<ShownPackage> = args
        .packages
        .iter()
        .map(|p| show::show_package(p))
        .collect();
    if args.json.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            packages: &'a [ShownPackage],
        }
        render::print_json(&Doc { packages: &results })?;
    } else {
        for p in &results {
            print_text(p);
        }
    }
    let failed = results.iter().any(|p| p.error.is_some());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(p: &ShownPackage) {
    if let Some(e) = &p.error {
        eprintln!(
            "rpm-verity: error: {}",
            escape(&format!("{}: {e}", p.package))
        );
        return;
    }
    let algorithm = p.algorithm.unwrap_or("no signatures");
    println!("{} ({algorithm}):", escape(&p.package));
    for f in &p.files {
        let mut line = format!("  {:<9} {}", f.status.name(), f.path);
        if let Some(s) = &f.signer {
            line.push_str(&format!(
                " [{}, {}, {} bytes, {s}]",
                f.hash.unwrap_or("?"),
                f.key.as_deref().unwrap_or("?"),
                f.signature_bytes.unwrap_or(0)
            ));
        }
        if let Some(e) = &f.error {
            line.push_str(": ");
            line.push_str(e);
        }
        println!("{}", escape(&line));
    }
    let mut summary = format!(
        "  {}: {} signed, {} unsigned",
        render::plural(p.files.len(), "file"),
        p.signed,
        p.unsigned
    );
    if p.malformed > 0 {
        summary.push_str(&format!(", {} malformed", p.malformed));
    }
    println!("{summary}");
    for s in &p.signers {
        let line = format!("  signer {}: {}", s.signer, render::plural(s.files, "file"));
        println!("{}", escape(&line));
    }
}
