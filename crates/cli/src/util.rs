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

/// On SIGINT, SIGTERM or SIGHUP, removes the temporary files being written (the library's
/// registered ones) and exits with 128 + the signal's number, as the shell reports a process
/// the signal killed. Writes into an original package are finished first.
pub fn remove_temp_files_on_signal() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                verity_package::output::exit_removing_temp_files(128 + sig);
            }
        })?;
    Ok(())
}
