//! `rpm-verity report`: what signing would add to packages (signature header growth, exact
//! without signing) and what fs-verity stores at install (Merkle trees); the engine is
//! `verity_package::report`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use fsverity::HashAlgorithm;
use verity_package::report::{self, PackageReport, Report, SignatureSize, Sizes};

use crate::args::JsonOption;
use crate::render::{self, escape, human_bytes};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyType {
    Rsa2048,
    Rsa4096,
    P256,
    P384,
}

#[derive(clap::Args)]
pub struct Args {
    /// Packages, or directories searched recursively for `*.rpm`.
    #[arg(required = true, value_name = "PKG|DIR")]
    pub paths: Vec<PathBuf>,

    /// Estimate for a key of this type and a typical certificate (the default: rsa2048);
    /// --cert gives the exact figure.
    #[arg(long, value_name = "TYPE", conflicts_with = "cert")]
    pub key_type: Option<KeyType>,

    /// The signing certificate (PEM or DER; RSA, EC P-256 or P-384): signature sizes as `sign`
    /// lays them out (exact for RSA; for ECDSA the longest, which `sign` reserves).
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,

    /// Also draw the signature growth and tree overhead per package as an SVG bar chart.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    #[command(flatten)]
    pub jobs: crate::args::JobsOption,

    #[command(flatten)]
    pub json: JsonOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::util::init_rayon(args.jobs.count());
    let signature = signature_size(&args)?;
    let packages = report::collect_packages(&args.paths)?;
    if packages.is_empty() {
        anyhow::bail!("no packages found");
    }
    let bar = render::count_bar(packages.len() as u64, "report");
    let result = report::report_packages(&packages, signature, &|| bar.inc(1));
    bar.finish_and_clear();
    if let Some(svg) = &args.svg {
        let doc = crate::svg::bar_chart(&result);
        verity_package::write_atomic(svg, doc.as_bytes())
            .with_context(|| format!("cannot write {}", svg.display()))?;
    }
    if args.json.json {
        render::print_json(&result)?;
    } else {
        print_text(&result);
    }
    Ok(if result.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn signature_size(args: &Args) -> anyhow::Result<SignatureSize> {
    let hash = HashAlgorithm::Sha256;
    if let Some(path) = &args.cert {
        let certs = crate::util::load_certificates(std::slice::from_ref(path))?;
        let cert = certs
            .first()
            .with_context(|| format!("{}: no certificate", path.display()))?;
        return SignatureSize::for_certificate(cert, hash)
            .with_context(|| format!("{}", path.display()));
    }
    let key = match args.key_type.unwrap_or(KeyType::Rsa2048) {
        KeyType::Rsa2048 => report::KeyType::Rsa2048,
        KeyType::Rsa4096 => report::KeyType::Rsa4096,
        KeyType::P256 => report::KeyType::P256,
        KeyType::P384 => report::KeyType::P384,
    };
    Ok(SignatureSize::estimate(key, hash)?)
}

fn print_text(r: &Report) {
    let s = &r.signature;
    let kind = if s.exact { "exact" } else { "ESTIMATE" };
    let each = if s.upper_bound {
        "at most (ECDSA signatures vary; sign reserves the longest)"
    } else {
        "each"
    };
    println!(
        "signatures: {} bytes {each}, {} ({kind}: {})",
        s.bytes,
        s.key,
        escape(&s.basis)
    );
    for p in &r.packages {
        print_package(p);
    }
    if r.packages.len() > 1 {
        let ok = r.packages.len() - r.failed;
        println!(
            "total ({}): {}",
            render::plural(ok, "package"),
            sizes_line(&r.total)
        );
    }
    let c = &r.total.size_classes;
    println!(
        "regular files by size: {} empty, {} <= 4 KiB, {} <= 64 KiB, {} <= 1 MiB, {} > 1 MiB",
        c.empty, c.up_to_4k, c.up_to_64k, c.up_to_1m, c.over_1m
    );
}

fn print_package(p: &PackageReport) {
    if let Some(e) = &p.error {
        eprintln!(
            "rpm-verity: error: {}",
            escape(&format!("{}: {e}", p.package))
        );
        return;
    }
    let mode = match p.mode {
        Some(verity_package::sign::WriteMode::InPlace) => ", in place",
        Some(verity_package::sign::WriteMode::Rewrite) => ", rewritten",
        None => "",
    };
    let source = if p.source { " (source package)" } else { "" };
    let line = format!("{}{source}: {}{mode}", p.package, sizes_line(&p.sizes));
    println!("{}", escape(&line));
}

fn sizes_line(s: &Sizes) -> String {
    format!(
        "{} {} ({} regular, {} dirs, {} symlinks, {} other), payload {}, \
         signatures +{} B ({:.3}% of {}), Merkle trees {} ({:.2}% of payload)",
        s.entries,
        if s.entries == 1 { "entry" } else { "entries" },
        s.regular_files,
        s.directories,
        s.symlinks,
        s.other,
        human_bytes(s.payload_bytes),
        s.signature_growth,
        s.signature_growth_percent,
        human_bytes(s.package_bytes),
        human_bytes(s.tree_bytes),
        s.tree_percent,
    )
}
