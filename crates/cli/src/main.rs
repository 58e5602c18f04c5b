//! `rpm-verity`: fs-verity for RPM packages, end to end.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod util;

#[derive(Parser)]
#[command(name = "rpm-verity", version, about = "fs-verity for RPM packages: digest, sign, verify, enable, audit")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Digest(a) => cmd::digest::run(a),
        Command::SignFile(a) => cmd::sign_file::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            util::report_error(&e);
            ExitCode::from(1)
        }
    }
}
