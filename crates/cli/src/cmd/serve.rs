//! `rpm-verity serve`: the remote signing service (see docs/serve.md).
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use verity_service::server;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["config", "hash_token"])))]
pub struct Args {
    /// Configuration file (TOML; see /usr/share/doc/rpm-verity/serve.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address instead of the config's `listen` (port 0 picks a free port; the
    /// bound address is printed on stdout).
    #[arg(long, value_name = "IP:PORT", requires = "config")]
    listen: Option<SocketAddr>,
    /// Load and check the config and keys, then exit without serving.
    #[arg(long, requires = "config")]
    check: bool,
    /// Read a bearer token on stdin and print the `token_sha256` value to put in the config.
    #[arg(long)]
    hash_token: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.hash_token {
        let mut token = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut token)
            .context("reading the token on stdin")?;
        if token.trim().is_empty() {
            anyhow::bail!("no token on stdin");
        }
        println!("{}", server::token_hash_hex(&token));
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = args.config else {
        anyhow::bail!("--config is required");
    };
    let config = server::Config::load(&path)?;
    let prepared = server::prepare(config).with_context(|| format!("config {}", path.display()))?;
    if args.check {
        println!("rpm-verity serve: {} is valid", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    prepared.run(args.listen)?;
    Ok(ExitCode::SUCCESS)
}
