//! `rpm-verity lockdown`: the command line of [`verity_system::lockdown`] — write and sign the
//! IPE policy that lets only fs-verity-signed files execute, apply it at boot, show the state.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use verity_signing::LocalSigner;
use verity_system::lockdown::{
    self, apply::Step, ApplyOptions, ApplyReport, LockdownStatus, PolicySpec, PolicyVersion,
    RestrictMode,
};

use crate::args::JsonOption;
use crate::render;

const STATUS_EXIT: &str = "\
Exit status:
  0  the state was read (with --check: and execution is locked down)
  1  error
  3  --check only: execution is not locked down (the reasons are printed)";

const APPLY_EXIT: &str = "\
Exit status:
  0  the policy is active (deployed now, or already active at this or a higher version)
  1  nothing usable: a bad policy file or certificate (nothing changed), or the kernel refused a
     step (the message says which and how to fix it)";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Write the IPE policy that allows execution only of files with a valid fs-verity
    /// built-in signature, signed (attached PKCS#7) for the kernel.
    Policy(PolicyArgs),
    /// Load the file-signing certificates, restrict .fs-verity, deploy and activate a signed
    /// policy, in that order. Run again within a boot, it changes nothing and succeeds.
    #[command(after_help = APPLY_EXIT)]
    Apply(ApplyArgs),
    /// Show whether execution is locked down: IPE, the active policy, .fs-verity, enrolment.
    #[command(after_help = STATUS_EXIT)]
    Status(StatusArgs),
    /// Print the help of lockdown or of one of its commands.
    Help(crate::HelpArgs),
}

#[derive(clap::Args)]
struct PolicyArgs {
    /// Certificate (PEM or DER) of the policy signer: enrolled as a MOK or in the UEFI db.
    #[arg(long, value_name = "CERT")]
    signer_cert: PathBuf,
    /// Private key of the policy signer (PEM; RSA or EC P-256/P-384).
    #[arg(long, value_name = "KEY")]
    signer_key: PathBuf,
    /// File whose first line is the passphrase of an encrypted key (else $RPM_VERITY_KEY_PASS).
    #[arg(long, value_name = "FILE")]
    key_pass_file: Option<PathBuf>,
    /// Policy name (a directory name under ipe/policies).
    #[arg(long, value_name = "NAME", default_value = lockdown::DEFAULT_POLICY_NAME, value_parser = parse_name)]
    name: String,
    /// MAJOR.MINOR.REVISION; an update within a boot needs a higher one.
    #[arg(long, value_name = "VERSION", default_value = "0.0.1", value_parser = parse_version)]
    version: PolicyVersion,
    /// Also allow files from the initramfs (boot_verified=TRUE), until switch_root.
    #[arg(long)]
    allow_initramfs: bool,
    /// Also allow verity files with the fs-verity digest (sha256) of FILE, signed or not.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    allow_digest: Vec<PathBuf>,
    /// Where to write the signed policy (DER PKCS#7).
    #[arg(
        short,
        long,
        value_name = "POLICY.p7b",
        required_unless_present = "print"
    )]
    output: Option<PathBuf>,
    /// Print the policy text.
    #[arg(long)]
    print: bool,
}

fn parse_name(s: &str) -> Result<String, String> {
    lockdown::check_policy_name(s).map(|()| s.to_string())
}

fn parse_version(s: &str) -> Result<PolicyVersion, String> {
    s.parse()
}

#[derive(clap::Args)]
struct ApplyArgs {
    /// The signed policy (from `lockdown policy`).
    #[arg(value_name = "POLICY.p7b")]
    policy: PathBuf,
    /// Directory of file-signing certificates to load into .fs-verity.
    #[arg(long, value_name = "DIR", default_value = verity_system::certs::DEFAULT_CERT_DIR)]
    certs: PathBuf,
    /// closed: nothing can be added to .fs-verity after the certificates are loaded;
    /// builtin-and-secondary: restrict first, so only certificates issued by an enrolled
    /// (MOK) CA can be added, now or later.
    #[arg(long, value_name = "HOW", default_value = "closed", value_parser = ["closed", "builtin-and-secondary"])]
    restrict: String,
    /// Also set fs.verity.require_signatures=1 (no verity file without a valid signature).
    #[arg(long)]
    require_signatures: bool,
    /// Where securityfs is mounted.
    #[arg(long, value_name = "DIR", default_value = lockdown::SECURITYFS, hide = true)]
    securityfs: PathBuf,
    #[command(flatten)]
    json: JsonOption,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// Exit with 3 unless execution is locked down.
    #[arg(long)]
    check: bool,
    #[arg(long, value_name = "DIR", default_value = lockdown::SECURITYFS, hide = true)]
    securityfs: PathBuf,
    #[command(flatten)]
    json: JsonOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Policy(a) => policy(a),
        Sub::Apply(a) => apply(a),
        Sub::Status(a) => status(a),
        Sub::Help(a) => {
            let path: Vec<String> = std::iter::once("lockdown".to_string())
                .chain(a.command)
                .collect();
            crate::help(&path)
        }
    }
}

fn policy(a: PolicyArgs) -> anyhow::Result<ExitCode> {
    let pass = verity_signing::read_key_passphrase(a.key_pass_file.as_deref())?;
    let signer = LocalSigner::load(&a.signer_key, Some(&a.signer_cert), pass.as_deref())?;
    let params = fsverity::Params::default();
    let mut allow_digests = Vec::new();
    for f in &a.allow_digest {
        let d = fsverity::digest_file(&params, f)
            .with_context(|| format!("--allow-digest {}", f.display()))?;
        allow_digests.push(d);
    }
    let spec = PolicySpec {
        name: a.name,
        version: a.version,
        allow_initramfs: a.allow_initramfs,
        allow_digests,
    };
    let text = lockdown::policy_text(&spec).map_err(anyhow::Error::msg)?;
    let der = lockdown::sign_policy(&signer, &text)?;
    if a.print {
        print!("{text}");
    }
    if let Some(out) = &a.output {
        verity_package::write_atomic(out, &der)
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!(
            "rpm-verity: wrote policy {} version {} ({} bytes) to {}",
            spec.name,
            spec.version,
            der.len(),
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn apply(a: ApplyArgs) -> anyhow::Result<ExitCode> {
    let opts = ApplyOptions {
        policy: a.policy,
        certs: a.certs,
        restrict: if a.restrict == "closed" {
            RestrictMode::Closed
        } else {
            RestrictMode::BuiltinAndSecondary
        },
        require_signatures: a.require_signatures,
        securityfs: a.securityfs,
    };
    let report = lockdown::apply(&opts)?;
    if a.json.json {
        render::print_json(&report)?;
    } else {
        print_apply(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn step(s: Step, done: &str, already: &str) -> String {
    match s {
        Step::Done => done.to_string(),
        Step::AlreadyDone => already.to_string(),
    }
}

fn print_apply(r: &ApplyReport) {
    let c = &r.certificates;
    println!(
        "certificates: {} loaded, {} already in .fs-verity",
        c.loaded, c.already_loaded
    );
    println!(
        "keyring .fs-verity: {} ({})",
        step(r.restricted, "restricted", "already restricted"),
        r.restriction
    );
    if let Some(s) = r.require_signatures {
        println!(
            "fs.verity.require_signatures: {}",
            step(s, "set to 1", "already 1")
        );
    }
    println!(
        "policy {} version {}: {} (kernel holds version {}), {}",
        r.name,
        r.version,
        r.deployment,
        r.deployed_version,
        step(r.activation, "activated", "already active")
    );
    println!("policy sha256 {}, signer {}", r.sha256, r.signer);
    if !r.enforce {
        eprintln!(
            "rpm-verity: warning: IPE is not enforcing (ipe/enforce is 0): denials are only logged"
        );
    }
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let s = lockdown::status(&a.securityfs);
    if a.json.json {
        render::print_json(&s)?;
    } else {
        print_status(&s);
    }
    Ok(if a.check && !s.locked_down {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn print_status(s: &LockdownStatus) {
    println!("IPE:                {}", yes_no(Some(s.ipe)));
    println!("enforcing:          {}", yes_no(s.enforce));
    match &s.active_policy {
        Some(p) => println!(
            "active policy:      {} version {} sha256 {}",
            p.name,
            p.version,
            p.sha256.as_deref().unwrap_or("?")
        ),
        None => println!("active policy:      none"),
    }
    let f = &s.fs_verity;
    println!("keyring restricted: {}", yes_no(f.restricted));
    println!("certificates:       {}", f.certificates.len());
    for c in &f.certificates {
        println!("  {}", crate::render::escape(c));
    }
    println!("require_signatures: {}", yes_no(f.require_signatures));
    println!("signer enrolled:    {}", yes_no(Some(s.signer_enrolled)));
    for k in &s.signer_keyrings {
        if let Some(keys) = &k.keys {
            for key in keys {
                println!("  {}: {}", k.name, crate::render::escape(key));
            }
        }
    }
    println!("locked down:        {}", yes_no(Some(s.locked_down)));
    for p in &s.problems {
        println!("  - {p}");
    }
}
