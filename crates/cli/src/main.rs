//! `rpm-verity`: fs-verity for RPM packages, end to end.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod cmd;
mod remote;
mod render;
mod util;

#[derive(Parser)]
#[command(
    name = "rpm-verity",
    version,
    about = "fs-verity for RPM packages: digest, sign, verify, enable, audit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the fs-verity digest of files (like `fsverity digest`).
    Digest(cmd::digest::Args),
    /// Write the PKCS#7 built-in signature of a file (like `fsverity sign`).
    SignFile(cmd::sign_file::Args),
    /// Add fs-verity signatures to RPM packages (like `rpmsign --signverity`, without GPG).
    Sign(cmd::sign::Args),
    /// Check a package's fs-verity signatures against its payload and certificates.
    Verify(cmd::verify::Args),
    /// Enable fs-verity on the files of installed packages, with their signatures.
    Enable(cmd::enable::Args),
    /// Check installed files against their packages' fs-verity signatures, like `rpm -V`.
    Audit(cmd::audit::Args),
    /// Manage the kernel's .fs-verity keyring.
    Keyring(cmd::keyring::Args),
    /// Show kernel fs-verity support, keyring contents and a path's filesystem support.
    Status(cmd::status::Args),
    /// Run the remote signing service.
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Digest(a) => cmd::digest::run(a),
        Command::SignFile(a) => cmd::sign_file::run(a),
        Command::Sign(a) => cmd::sign::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Enable(a) => cmd::enable::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Keyring(a) => cmd::keyring::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            util::report_error(&e);
            ExitCode::from(1)
        }
    }
}
