//! `rpm-verity sign-file`: the PKCS#7 built-in signature of one file, byte-identical to
//! `fsverity sign FILE OUT_SIGFILE --key KEY [--cert CERT]` with the same digest options.
//!
//! The key is loaded (and checked against the certificate) before the file is hashed, so a bad
//! key fails at once rather than after reading a large file. The signature file only appears
//! when everything succeeded.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use verity_signing::LocalSigner;

use crate::args::DigestOptions;

#[derive(clap::Args)]
pub struct Args {
    /// File to sign.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Where to write the DER PKCS#7 signature.
    #[arg(value_name = "OUT_SIGFILE")]
    out: PathBuf,

    /// PEM private key: PKCS#8, PKCS#1 ("RSA PRIVATE KEY") or encrypted PKCS#8; or a key on a
    /// PKCS#11 token as an RFC 7512 URI (`pkcs11:token=T;object=K?module-path=M&pin-source=file:F`).
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,

    /// X.509 certificate (PEM or DER) of the key; defaults to the key file, which may hold both.
    #[arg(long, value_name = "CERTFILE")]
    cert: Option<PathBuf>,

    /// File whose first line is the passphrase of an encrypted key, or a token's PIN (else
    /// $RPM_VERITY_KEY_PASS).
    #[arg(long, value_name = "FILE")]
    key_pass_file: Option<PathBuf>,

    #[command(flatten)]
    options: DigestOptions,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let params = args.options.params()?;
    let pass = verity_signing::read_key_passphrase(args.key_pass_file.as_deref())?;
    let signer = LocalSigner::load(&args.key, args.cert.as_deref(), pass.as_deref())?;
    let digest = fsverity::digest_file(&params, &args.file)
        .with_context(|| format!("{}", args.file.display()))?;
    let sig = signer
        .sign_digest(&digest)
        .with_context(|| format!("cannot sign {}", args.file.display()))?;
    verity_package::write_atomic(&args.out, &sig)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("Signed file '{}' ({digest})", args.file.display());
    Ok(ExitCode::SUCCESS)
}
