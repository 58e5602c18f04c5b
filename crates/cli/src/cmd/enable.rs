//! `rpm-verity enable`: the command line of [`verity_system::enable`], and its report as text
//! or JSON.
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use verity_system::enable::{self, EnableOptions, EnableReport, FileResult, Selection};
use verity_system::outcome::plural;

use crate::args::{InstalledOptions, Verbosity};
use crate::render;

const EXIT_STATUS: &str = "\
Exit status:
  0  every selected file is verity (with --dry-run: would be)
  1  some files failed (modified, missing, busy, certificate missing, errors), or a fatal error
  2  usage error
  3  no failures, but some files sit on a filesystem without fs-verity and were left unchanged";

#[derive(clap::Args)]
#[command(after_help = EXIT_STATUS)]
pub struct Args {
    /// Packages (name, name-version-release or name-version-release.arch) or installed file
    /// paths (starting with `/`).
    #[arg(value_name = "PKG|PATH")]
    pub targets: Vec<String>,

    /// Every installed package.
    #[arg(long, conflicts_with = "targets")]
    pub all: bool,

    /// Read installed file paths, one per line, from FILE (`-` = stdin; what rpm's
    /// `%transfiletriggerin` passes).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,

    /// Check in user space what would be enabled; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub installed: InstalledOptions,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.all && args.targets.is_empty() && args.files_from.is_none() {
        bail!("say what to enable: PKG..., PATH..., --all or --files-from FILE");
    }
    let o = &args.installed;
    let sys = o.open()?;
    for e in sys.row_error_messages() {
        eprintln!("rpm-verity: error: {}: {e}", sys.db_path.display());
    }
    let listed = match &args.files_from {
        Some(f) => read_files_from(f)?,
        None => Vec::new(),
    };
    let selection = Selection::from_targets(&args.targets, args.all, listed);
    let plan = enable::plan(&sys.packages, &selection, o.config)?;
    let what = if args.dry_run { "checking" } else { "enabling" };
    let pb = render::progress_bar(sys.total_size(&plan.files), what);
    let (json, verbose) = (o.json.json, o.verbosity.verbose);
    let show = |r: &FileResult, size: u64| {
        pb.inc(size);
        if !json && (verbose || r.status.is_failure()) {
            pb.suspend(|| println!("{}", file_line(r)));
        }
    };
    let opts = EnableOptions {
        dry_run: args.dry_run,
        jobs: o.jobs.count(),
    };
    let report = enable::run(&sys, plan, opts, &show)?;
    pb.finish_and_clear();
    if json {
        render::print_json(&report)?;
    } else {
        print_text(&report, o.verbosity);
    }
    Ok(ExitCode::from(report.verdict().exit_code()))
}

fn read_files_from(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let what = || format!("--files-from {}", path.display());
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(what)?,
        ))
    };
    enable::read_path_list(reader).with_context(what)
}

fn file_line(r: &FileResult) -> String {
    render::status_line(r.status.name(), r.subject(), r.detail.as_deref())
}

fn print_text(r: &EnableReport, verbosity: Verbosity) {
    for fs in &r.unsupported_filesystems {
        eprintln!(
            "rpm-verity: {}; {} on it left unchanged",
            fs.message,
            plural(fs.files, "file")
        );
    }
    for p in &r.unsigned_packages {
        println!(
            "{}",
            render::status_line("UNSIGNED", p, Some("package has no fs-verity signatures"))
        );
    }
    for p in &r.not_owned {
        println!(
            "{}",
            render::status_line("NOT-OWNED", p, Some("not a file of any installed package"))
        );
    }
    if verbosity.quiet {
        return;
    }
    let skipped: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "{}{}: {}{}",
        if r.dry_run { "dry run: " } else { "" },
        plural(r.files.len(), "file"),
        render::counts(&r.counts, true, "nothing to do"),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", skipped.join(", "))
        }
    );
}
