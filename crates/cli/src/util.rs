//! Plumbing shared by the commands: error reporting, the thread pool, passphrases, certificates.
use std::fs;
use std::path::{Path, PathBuf};

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

/// The passphrase of an encrypted key: from `--key-pass-file` (first line), else from
/// `$RPM_VERITY_KEY_PASS`, else none.
pub fn read_key_passphrase(file: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    use anyhow::Context;
    if let Some(f) = file {
        let data = fs::read(f).with_context(|| format!("passphrase file {}", f.display()))?;
        let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Ok(Some(line.to_vec()));
    }
    Ok(std::env::var_os("RPM_VERITY_KEY_PASS").map(|v| {
        use std::os::unix::ffi::OsStrExt;
        v.as_bytes().to_vec()
    }))
}

/// Certificates given with `--cert`, each file PEM (one or more) or DER.
pub fn load_certificates(files: &[PathBuf]) -> anyhow::Result<Vec<verity_signing::Certificate>> {
    use anyhow::Context;
    let mut trusted = Vec::new();
    for c in files {
        let data = verity_signing::read_bounded(c)
            .with_context(|| format!("certificate {}", c.display()))?;
        let certs = verity_signing::Certificate::parse_all(&data)
            .with_context(|| format!("certificate {}", c.display()))?;
        trusted.extend(certs);
    }
    Ok(trusted)
}
