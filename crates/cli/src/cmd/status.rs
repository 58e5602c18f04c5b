//! `rpm-verity status`: the command line of [`verity_system::status`], and its report as text
//! or JSON. Always exits 0 once the report is made: problems are findings, not failures.
use std::path::PathBuf;
use std::process::ExitCode;

use verity_system::certs::DEFAULT_CERT_DIR;
use verity_system::probe::{KernelStatus, PathStatus};
use verity_system::status::{self, CertDirStatus, KeyringStatus, StatusReport};

use crate::args::JsonOption;
use crate::render;

#[derive(clap::Args)]
pub struct Args {
    /// Also report whether this path's filesystem supports fs-verity (and, for a regular
    /// file, whether fs-verity is on for it).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Directory of certificates that should be in the keyring.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CERT_DIR)]
    certs_dir: PathBuf,
    #[command(flatten)]
    json: JsonOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = status::report(&args.certs_dir, args.path.as_deref())?;
    if args.json.json {
        render::print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// `  label:   value`, the values aligned in one column.
fn row(label: &str, value: &str) {
    println!("  {:<38} {value}", format!("{label}:"));
}

fn print_text(r: &StatusReport) {
    print_kernel(&r.kernel, &r.keyring);
    print_certs(&r.keyring, &r.certs);
    if let Some(p) = &r.path {
        print_path(p);
    }
    if r.problems.is_empty() {
        println!("no problems found");
    } else {
        println!("problems:");
        for p in &r.problems {
            println!("  - {p}");
        }
    }
}

fn print_kernel(k: &KernelStatus, keyring: &KeyringStatus) {
    println!("kernel {}", k.release.as_deref().unwrap_or("?"));
    row("fs-verity (CONFIG_FS_VERITY)", yes_no(k.fs_verity));
    row("built-in signatures", yes_no(Some(k.builtin_signatures)));
    let ring = match (keyring.id, &keyring.error) {
        (Some(id), None) => format!("present ({id}), {} key(s)", keyring.keys.len()),
        (Some(id), Some(e)) => format!("present ({id}), unreadable: {e}"),
        (None, _) => "missing".to_string(),
    };
    row(".fs-verity keyring", &ring);
    let reqsig = match k.require_signatures {
        Some(true) => "1 (only signed verity files can be opened or enabled)",
        Some(false) => "0",
        None => "unavailable",
    };
    row("fs.verity.require_signatures", reqsig);
    let ext4 = match k.ext4_verity {
        None => "ext4 not loaded",
        Some(true) => "yes",
        Some(false) => "no",
    };
    row("ext4 verity support", ext4);
    let ecdsa = match k.ecdsa {
        Some(true) => "yes",
        Some(false) => "no (RSA only: EC certificates and signatures cannot be used)",
        None => "unknown",
    };
    row("ECDSA (CONFIG_CRYPTO_ECDSA)", ecdsa);
}

fn print_certs(keyring: &KeyringStatus, certs: &CertDirStatus) {
    if !keyring.keys.is_empty() {
        println!("keys in .fs-verity:");
        for key in &keyring.keys {
            println!("  {:<11} {:<10} {}", key.id, key.key_type, key.description);
        }
    }
    println!("certificates in {}:", certs.dir);
    if let Some(e) = &certs.error {
        println!("  (cannot read: {e})");
    } else if certs.certs.is_empty() {
        println!("  (none)");
    }
    for c in &certs.certs {
        let state = match c.loaded {
            Some(true) => format!("loaded (key {})", c.key_id.unwrap_or_default()),
            Some(false) => "NOT LOADED".to_string(),
            None => "unknown (keyring unreadable)".to_string(),
        };
        println!("  {}: {} ({}): {state}", c.path, c.subject, c.key);
    }
    for s in &certs.skipped {
        println!("  {}: skipped, {}", s.path, s.reason);
    }
}

fn print_path(p: &PathStatus) {
    println!("path {}:", p.path);
    let fs = format!(
        "{} on {} (mounted at {})",
        p.fs_type.as_deref().unwrap_or("?"),
        p.device.as_deref().unwrap_or("?"),
        p.mount_point.as_deref().unwrap_or("?")
    );
    row("filesystem", &fs);
    if let Some(sb) = &p.ext4 {
        let feature = if sb.verity_feature { "on" } else { "off" };
        let sb = format!("block size {}, verity feature {feature}", sb.block_size);
        row("ext4 superblock", &sb);
    }
    row("fs-verity", &format!("{}: {}", p.verity, p.detail));
    if let Some(on) = p.file_verity {
        let digest = p.file_digest.as_ref().map(|d| format!(", digest {d}"));
        let state = format!(
            "verity {}{}",
            if on { "on" } else { "off" },
            digest.unwrap_or_default()
        );
        row("file", &state);
    }
    if let Some(e) = &p.file_error {
        row("file error", e);
    }
}
