//! `rpm-verity audit`: the command line of [`verity_system::audit`], and its report as text
//! (`rpm -V` style: problems, then a summary per package) or JSON.
use std::process::ExitCode;

use verity_system::audit::{self, AuditOptions, AuditReport, Status};
use verity_system::outcome::plural;

use crate::args::{InstalledOptions, Verbosity};
use crate::render;

const EXIT_STATUS: &str = "\
Exit status:
  0  no problems
  1  problems (any status but OK), or a fatal error
  2  usage error";

#[derive(clap::Args)]
#[command(after_help = EXIT_STATUS)]
pub struct Args {
    /// Packages to audit (default: all installed packages).
    #[arg(value_name = "PKG")]
    pub packages: Vec<String>,

    /// Do not read verity files through (faster; corrupted blocks go unnoticed).
    #[arg(long)]
    pub no_read: bool,

    /// List every executable, shared library and script (by content: ELF, `#!`) that IPE
    /// would refuse to execute under `lockdown`: installed files by package, then files in
    /// the program and library directories that no package owns. Exit 1 if there is any.
    #[arg(long, conflicts_with_all = ["packages", "no_read"])]
    pub lockdown: bool,

    #[command(flatten)]
    pub installed: InstalledOptions,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let o = &args.installed;
    let sys = o.open()?;
    if args.lockdown {
        return lockdown(&sys, o);
    }
    let plan = audit::plan(&sys.packages, &args.packages, o.config)?;
    let pb = render::progress_bar(sys.total_size(&plan.files), "auditing");
    let opts = AuditOptions {
        read: !args.no_read,
        jobs: o.jobs.count(),
        kernel_fs_verity: verity_system::probe::kernel_status().fs_verity,
        kernel_checks_signatures: fsverity::linux::builtin_signatures(),
    };
    let report = audit::run(&sys, plan, opts, &|size| pb.inc(size))?;
    pb.finish_and_clear();
    if o.json.json {
        render::print_json(&report)?;
    } else {
        print_text(&report, o.verbosity);
    }
    Ok(ExitCode::from(report.verdict().exit_code()))
}

fn print_text(r: &AuditReport, verbosity: Verbosity) {
    // Without fs-verity in the kernel, "not enabled" is the kernel's doing, not the files':
    // say it once instead of once per file, and do not advise an `enable` that cannot work.
    let no_kernel = r.not_enabled_for_want_of_kernel().filter(|&n| n > 0);
    if let Some(n) = no_kernel {
        println!(
            "rpm-verity: this kernel has no fs-verity support (CONFIG_FS_VERITY): no file can \
             be enabled; {} not enabled",
            plural(n, "file")
        );
    }
    for f in &r.findings {
        let shown = verbosity.verbose
            || (f.status.is_problem() && !(no_kernel.is_some() && f.status == Status::NotEnabled));
        if shown {
            let line = render::status_line(f.status.name(), f.subject(), f.detail.as_deref());
            println!("{line}");
        }
    }
    if verbosity.quiet {
        return;
    }
    for p in &r.packages {
        let counts = render::counts(&p.counts, false, "none");
        let line = format!("{}: {}: {counts}", p.package, plural(p.files, "file"));
        println!("{}", render::escape(&line));
    }
    println!(
        "audit: {} checked in {}: {}",
        plural(r.files_checked, "file"),
        plural(r.packages_read, "package"),
        render::counts(&r.summary, false, "nothing to check")
    );
}

fn lockdown(
    sys: &verity_system::installed::InstalledSystem,
    o: &InstalledOptions,
) -> anyhow::Result<ExitCode> {
    let kernel = verity_system::probe::kernel_status().fs_verity == Some(true);
    let r = verity_system::lockdown::audit::audit(sys, kernel);
    if o.json.json {
        render::print_json(&r)?;
    } else {
        for p in &r.packages {
            println!(
                "{}: {}",
                render::escape(&p.package),
                plural(p.files.len(), "file")
            );
            for f in &p.files {
                let line = format!("  {} ({}): {}", f.path, f.kind, f.reason);
                println!("{}", render::escape(&line));
            }
        }
        if !r.unowned.is_empty() {
            println!(
                "not owned by any package: {}",
                plural(r.unowned.len(), "file")
            );
            for f in &r.unowned {
                let line = format!("  {} ({}): {}", f.path, f.kind, f.reason);
                println!("{}", render::escape(&line));
            }
        }
        println!(
            "audit --lockdown ({}): {} of {} would be refused execution",
            r.mode,
            r.refused,
            plural(r.executables, "executable file")
        );
        println!("checked: {}", r.checked);
    }
    Ok(ExitCode::from(u8::from(r.refused > 0)))
}
