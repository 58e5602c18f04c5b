//! Plumbing shared by the commands: error reporting, the thread pool, certificates.
use std::path::PathBuf;

/// Prints an error chain on one line: `rpm-verity: outer: inner: root cause`, without saying a
/// cause twice when an error already put it into its own message.
pub fn report_error(e: &anyhow::Error) {
    eprintln!(
        "rpm-verity: error: {}",
        verity_system::outcome::error_chain(e.as_ref())
    );
}

/// Sizes rayon's global pool (used for parallel hashing of big files and for signing) once.
pub fn init_rayon(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
}

/// Certificates given with `--cert`, each file PEM (one or more) or DER.
pub fn load_certificates(files: &[PathBuf]) -> anyhow::Result<Vec<verity_signing::Certificate>> {
    let mut trusted = Vec::new();
    for c in files {
        trusted.extend(verity_signing::read_cert_file(c)?);
    }
    Ok(trusted)
}
