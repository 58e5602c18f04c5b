//! `rpm-verity verify`: check that every fs-verity signature in a package parses, was made by a
//! trusted certificate, and signs the fs-verity digest of that file's actual payload content.
//! rpm itself never checks these; the kernel would only find out at install time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use fsverity::HashAlgorithm;
use rpm_format::tags;
use serde::Serialize;
use verity_signing::{Certificate, Pkcs7Signature};

use crate::pkgdigest::{self, HashPool, PackageDigests};

#[derive(clap::Args)]
pub struct Args {
    /// Packages to check.
    #[arg(required = true, value_name = "PKG")]
    pub packages: Vec<PathBuf>,

    /// Trusted certificate (PEM or DER); repeatable. Without it the signer of each file is
    /// reported and the payload is checked, but signatures cannot be checked cryptographically.
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<PathBuf>,

    /// Print only problems and the summary.
    #[arg(long, short)]
    pub quiet: bool,

    /// Worker threads (0 = one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct FileResult {
    path: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct PackageResult {
    package: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'static str>,
    files: Vec<FileResult>,
    good: usize,
    bad: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut trusted = Vec::new();
    for c in &args.cert {
        let data = fs::read(c).with_context(|| format!("certificate {}", c.display()))?;
        let certs = Certificate::parse_all(&data)
            .with_context(|| format!("certificate {}", c.display()))?;
        trusted.extend(certs);
    }
    let threads = crate::util::jobs_or_cores(args.jobs);
    crate::util::init_rayon(threads);
    // Pools per algorithm are cheap; the algorithm comes from each package's tag 277.
    let pools = [
        (
            HashAlgorithm::Sha256,
            HashPool::new(threads, HashAlgorithm::Sha256)?,
        ),
        (
            HashAlgorithm::Sha512,
            HashPool::new(threads, HashAlgorithm::Sha512)?,
        ),
    ];
    if trusted.is_empty() && !args.json {
        eprintln!("rpm-verity: note: no --cert given: reporting signers and checking payloads only; signatures are not checked");
    }

    let mut results = Vec::new();
    for pkg in &args.packages {
        let r = match check_package(pkg, &trusted, &pools) {
            Ok(r) => r,
            Err(e) => PackageResult {
                package: pkg.display().to_string(),
                ok: false,
                error: Some(crate::util::error_chain(&e)),
                algorithm: None,
                files: Vec::new(),
                good: 0,
                bad: 0,
            },
        };
        if !args.json {
            print_text(&r, args.quiet);
        }
        results.push(r);
    }
    for (_, p) in &pools {
        p.shutdown();
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if args.json {
        let doc = serde_json::json!({ "packages": results, "failed": failed });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.packages.len() > 1 {
        println!(
            "{} packages verified, {failed} failed",
            results.len() - failed
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(r: &PackageResult, quiet: bool) {
    if let Some(e) = &r.error {
        eprintln!("rpm-verity: error: {}: {e}", r.package);
        if r.files.is_empty() {
            return;
        }
    }
    for f in &r.files {
        if quiet && f.status == "OK" {
            continue;
        }
        let mut line = format!("{:<9} {}", f.status, f.path);
        if let Some(e) = &f.error {
            line.push_str(": ");
            line.push_str(e);
        } else if let Some(s) = &f.signer {
            if f.status != "OK" {
                line.push_str(&format!(" (signer {s})"));
            }
        }
        println!("{line}");
    }
    println!(
        "{}: {} ({} files: {} good, {} bad)",
        r.package,
        if r.ok { "OK" } else { "FAILED" },
        r.files.len(),
        r.good,
        r.bad
    );
}

fn check_package(
    pkg: &Path,
    trusted: &[Certificate],
    pools: &[(HashAlgorithm, std::sync::Arc<HashPool>)],
) -> anyhow::Result<PackageResult> {
    // Tag 277 decides the algorithm; read the signature header before streaming the payload.
    let alg = {
        let f = fs::File::open(pkg).context("cannot open")?;
        let p = rpm_format::Package::open_unverified(std::io::BufReader::new(f))?;
        match p.signature.verity_algo()? {
            None => HashAlgorithm::Sha256,
            Some(id) => HashAlgorithm::from_id(id)
                .ok_or_else(|| anyhow::anyhow!("unknown fs-verity algorithm {id} in tag 277"))?,
        }
    };
    let pool = &pools
        .iter()
        .find(|(a, _)| *a == alg)
        .expect("both algorithms have a pool")
        .1;
    let pd = pkgdigest::digest_package(pkg, alg, pool)?;
    check_digests(pkg, &pd, alg, trusted)
}

fn check_digests(
    pkg: &Path,
    pd: &PackageDigests,
    alg: HashAlgorithm,
    trusted: &[Certificate],
) -> anyhow::Result<PackageResult> {
    let sig_header = pd.headers.signature.header();
    let entries = sig_header.get_string_array_bytes(tags::SIG_VERITYSIGNATURES)?;
    let n = pd.files.len();
    let entries = match entries {
        Some(e) => e,
        None if n == 0 => Vec::new(),
        None => bail!("no fs-verity signatures (tag 276) in the package"),
    };
    if entries.len() != n {
        bail!(
            "tag 276 has {} signatures for {n} files: the signatures do not belong to this file list",
            entries.len()
        );
    }
    let integrity_error = pd
        .integrity
        .as_ref()
        .err()
        .map(|e| format!("package is corrupt: {e}"));
    let mut files = Vec::with_capacity(n);
    let (mut good, mut bad) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let f = &pd.files.files()[i];
        let digest = &pd.digests[i];
        let mut r = FileResult {
            path: f.path_lossy(),
            status: "OK",
            digest: Some(digest.to_string()),
            signer: None,
            error: None,
        };
        match rpm_format::base64::decode_lenient(entry)
            .map_err(|e| e.to_string())
            .and_then(|der| {
                Pkcs7Signature::parse(&der).map_err(|e| format!("not a PKCS#7 signature: {e}"))
            }) {
            Err(e) => {
                r.status = "MALFORMED";
                r.error = Some(e);
            }
            Ok(sig) => {
                let id = sig.signer();
                r.signer = Some(format!("{}", id));
                if sig.digest_algorithm().fsverity() != Some(alg) {
                    r.status = "BAD";
                    r.error = Some(format!(
                        "signature uses {} but the package's algorithm is {alg}",
                        sig.digest_algorithm().name()
                    ));
                } else if trusted.is_empty() {
                    r.status = "UNCHECKED";
                } else {
                    match sig.verify(digest, trusted) {
                        Ok(_) => {}
                        Err(e) => {
                            r.status = match e {
                                verity_signing::VerifyError::UnknownSigner(_) => "UNTRUSTED",
                                _ => "BAD",
                            };
                            r.error = Some(format!("{e} (content digest {digest})"));
                        }
                    }
                }
            }
        }
        if r.status == "OK" || r.status == "UNCHECKED" {
            good += 1;
        } else {
            bad += 1;
        }
        files.push(r);
    }
    Ok(PackageResult {
        package: pkg.display().to_string(),
        ok: bad == 0 && integrity_error.is_none(),
        error: integrity_error,
        algorithm: Some(alg.name()),
        files,
        good,
        bad,
    })
}
