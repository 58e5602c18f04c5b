//! `rpm-verity`: fs-verity for RPM packages, end to end. This crate is the command line only:
//! clap definitions and the rendering of the library crates' typed results as text or JSON.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod args;
mod cmd;
mod manpage;
mod remote;
mod render;
mod rpm_defaults;
mod svg;
mod util;

/// The exit codes every command shares; commands with more say so in their own help.
const EXIT_STATUS: &str = "\
Exit status:
  0  success: everything asked for was done and checked
  1  failure: a package or file failed a check, or an error stopped the command
  2  usage error (unknown option, bad value)
  3  enable only: no failure, but some files are on a filesystem without fs-verity
  4  verify only: no failure, but signatures were not checked (no --cert, no --no-cert)";

const VERIFY_EXIT_STATUS: &str = "\
Exit status:
  0  every signature checked against --cert and good (with --no-cert: digests and structure fine)
  1  a package or file failed a check, or an error stopped the command
  2  usage error
  4  nothing failed, but signatures were not checked: no --cert was given (and no --no-cert)";

/// `verify` without certificates: nothing failed, but nothing was vouched for either, so a
/// script that tests the exit status must not read it as a pass.
pub(crate) const EXIT_UNCHECKED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "rpm-verity",
    version,
    about = "fs-verity for RPM packages: digest, sign, verify, enable, audit",
    after_help = EXIT_STATUS,
    arg_required_else_help = true,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
)]
struct Cli {
    /// Print the man page (roff) or shell completions, generated from these definitions.
    #[arg(long, value_name = "WHAT", exclusive = true)]
    generate: Option<Generate>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Generate {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

// Parsed once per run: the size of the largest variant costs nothing worth boxing it for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Print the fs-verity digest of files (like `fsverity digest`).
    Digest(cmd::digest::Args),
    /// Write the PKCS#7 built-in signature of a file (like `fsverity sign`).
    SignFile(cmd::sign_file::Args),
    /// Add fs-verity signatures to RPM packages (like `rpmsign --signverity`, without GPG).
    Sign(cmd::sign::Args),
    /// Check a package's fs-verity signatures against its payload and certificates.
    #[command(after_help = VERIFY_EXIT_STATUS)]
    Verify(cmd::verify::Args),
    /// Enable fs-verity on the files of installed packages, with their signatures.
    Enable(cmd::enable::Args),
    /// Check installed files against their packages' fs-verity signatures, like `rpm -V`.
    Audit(cmd::audit::Args),
    /// Manage the kernel's .fs-verity keyring.
    Keyring(cmd::keyring::Args),
    /// Allow only fs-verity-signed files to execute (IPE): write, apply and check the policy.
    Lockdown(cmd::lockdown::Args),
    /// Show kernel fs-verity support, keyring contents and a path's filesystem support.
    Status(cmd::status::Args),
    /// Show each file's fs-verity signature in packages: signer, hash, key (not checked).
    Show(cmd::show::Args),
    /// What signing adds to packages and what fs-verity stores at install, without signing.
    Report(cmd::report::Args),
    /// Run the remote signing service.
    Serve(cmd::serve::Args),
    /// Print the help of rpm-verity or of a command (`help sign`, `help keyring load`).
    Help(HelpArgs),
}

#[derive(clap::Args)]
pub(crate) struct HelpArgs {
    /// The command (and subcommand) to explain.
    #[arg(value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match (cli.generate, cli.command) {
        (Some(what), _) => generate(what),
        (None, Some(command)) => run(command),
        // clap requires one of them.
        (None, None) => Ok(ExitCode::from(2)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            util::report_error(&e);
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Digest(a) => cmd::digest::run(a),
        Command::SignFile(a) => cmd::sign_file::run(a),
        Command::Sign(a) => cmd::sign::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Enable(a) => cmd::enable::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Keyring(a) => cmd::keyring::run(a),
        Command::Lockdown(a) => cmd::lockdown::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Help(a) => help(&a.command),
    }
}

/// Help and version go to stdout as clap prints them; real usage errors are named after the
/// program, like every other error (`rpm-verity: error: ...`), and exit with 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
        _ => {
            eprint!("rpm-verity: {}", e.render());
            ExitCode::from(2)
        }
    }
}

/// `help X Y` prints exactly what `X Y --help` prints.
pub(crate) fn help(path: &[String]) -> anyhow::Result<ExitCode> {
    let argv = std::iter::once("rpm-verity")
        .chain(path.iter().map(String::as_str))
        .chain(std::iter::once("--help"));
    match Cli::try_parse_from(argv) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            e.print()?;
            Ok(ExitCode::SUCCESS)
        }
        _ => anyhow::bail!("no such command: {}", path.join(" ")),
    }
}

fn generate(what: Generate) -> anyhow::Result<ExitCode> {
    use clap_complete::Shell;
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    let shell = match what {
        Generate::Man => {
            manpage::render(&cmd, &mut out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "rpm-verity", &mut out);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
