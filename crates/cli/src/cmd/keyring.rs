//! `rpm-verity keyring`: the command line of [`verity_system::keyring`] — load certificates
//! into the kernel's `.fs-verity` keyring, list it, and flip `fs.verity.require_signatures`.
use std::path::PathBuf;
use std::process::ExitCode;

use verity_system::certs::DEFAULT_CERT_DIR;
use verity_system::keyring::{self, CertSource, KeyringListing, LoadReport, LoadStatus};

use crate::args::JsonOption;
use crate::render;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Load X.509 certificates (PEM, several per file, or DER) into the .fs-verity keyring.
    /// A certificate already there is reported, not added again.
    Load(LoadArgs),
    /// List the keys in the .fs-verity keyring.
    List(ListArgs),
    /// Show or set fs.verity.require_signatures (1: every verity file must carry a valid
    /// signature; unsigned ones can no longer be opened or enabled).
    RequireSignatures(RequireArgs),
    /// Print the help of keyring or of one of its commands.
    Help(crate::HelpArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// Certificate files; without any, every file in --dir is loaded.
    #[arg(value_name = "CERT", conflicts_with = "dir")]
    certs: Vec<PathBuf>,
    /// Load every certificate file in DIR (files that are not certificates are skipped with a
    /// notice). Default: /etc/rpm-verity/certs.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    json: JsonOption,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    json: JsonOption,
}

#[derive(clap::Args)]
struct RequireArgs {
    /// on|off (also 1|0, yes|no, true|false); without it the current value is printed.
    #[arg(value_name = "on|off", value_parser = keyring::parse_on_off, conflicts_with = "from_file")]
    value: Option<bool>,
    /// Read the value from FILE (one word, as above); a missing FILE leaves the sysctl alone.
    /// This is what the boot integration runs with /etc/rpm-verity/require-signatures.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Load(a) => load(a),
        Sub::List(a) => list(a),
        Sub::RequireSignatures(a) => require(a),
        Sub::Help(a) => {
            let path: Vec<String> = std::iter::once("keyring".to_string())
                .chain(a.command)
                .collect();
            crate::help(&path)
        }
    }
}

fn load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let from_dir = a.certs.is_empty();
    let source = if from_dir {
        CertSource::Dir(a.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CERT_DIR)))
    } else {
        CertSource::Files(a.certs)
    };
    let files = keyring::read_source(&source)?;
    if let (CertSource::Dir(dir), true, false) = (&source, files.is_empty(), a.json.json) {
        eprintln!(
            "rpm-verity: notice: no certificate files in {}",
            dir.display()
        );
    }
    let report = keyring::load(&files, from_dir)?;
    if a.json.json {
        render::print_json(&report)?;
    } else {
        print_load(&report);
    }
    Ok(if report.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_load(r: &LoadReport) {
    for e in &r.entries {
        let desc = e.description.as_deref().unwrap_or("?");
        let id = e.key_id.map(|i| format!(" (key {i})")).unwrap_or_default();
        let reason = e.reason.as_deref().unwrap_or("");
        match e.status {
            LoadStatus::Loaded => println!("loaded          {}: {desc}{id}", e.path),
            LoadStatus::AlreadyLoaded => println!("already loaded  {}: {desc}{id}", e.path),
            LoadStatus::Skipped => {
                eprintln!("rpm-verity: notice: skipping {}: {reason}", e.path)
            }
            LoadStatus::Error => {
                let subject = e.subject.as_deref().map(|s| format!("{s}: "));
                let subject = subject.unwrap_or_default();
                eprintln!("rpm-verity: error: {}: {subject}{reason}", e.path)
            }
        }
        if let Some(w) = &e.warning {
            eprintln!("rpm-verity: warning: {}: {w}", e.path);
        }
    }
    println!(
        "{} loaded, {} already in the keyring, {} skipped, {} failed{}",
        r.loaded,
        r.already_loaded,
        r.skipped,
        r.errors,
        match r.warnings {
            0 => String::new(),
            n => format!(", {n} unusable on this kernel"),
        }
    );
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let listing = keyring::list()?;
    if a.json.json {
        render::print_json(&listing)?;
    } else {
        print_list(&listing);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(l: &KeyringListing) {
    for k in &l.keys {
        println!("{:<11} {:<10} {}", k.id, k.key_type, k.description);
    }
    println!("{} key(s) in .fs-verity", l.keys.len());
}

fn require(a: RequireArgs) -> anyhow::Result<ExitCode> {
    let current = keyring::require_signatures()?;
    let wanted = match (a.value, &a.from_file) {
        (Some(v), _) => v,
        (None, Some(file)) => match keyring::setting_from_file(file)? {
            Some(v) => v,
            None => {
                println!(
                    "{} does not exist: fs.verity.require_signatures left at {}",
                    file.display(),
                    u8::from(current)
                );
                return Ok(ExitCode::SUCCESS);
            }
        },
        (None, None) => {
            println!("{}", u8::from(current));
            return Ok(ExitCode::SUCCESS);
        }
    };
    keyring::set_require_signatures(wanted)?;
    println!(
        "fs.verity.require_signatures = {} (was {})",
        u8::from(wanted),
        u8::from(current)
    );
    if wanted && !current {
        eprintln!(
            "rpm-verity: notice: applies to verity files opened from now on; files already in \
             use keep working until they leave the inode cache"
        );
    }
    Ok(ExitCode::SUCCESS)
}
