//! Where the certificates trusted for user-space checks live, and loading them.
use std::path::PathBuf;

/// Where `enable`/`audit` look for trusted certificates when no `--cert` is given: the same
/// directory the boot integration loads into `.fs-verity`.
pub const DEFAULT_CERT_DIR: &str = "/etc/rpm-verity/certs";

/// Certificates to check signatures against in user space: `--cert` files, else every file in
/// [`DEFAULT_CERT_DIR`] (missing directory = none).
pub fn trusted_certs(
    certs: &[PathBuf],
) -> anyhow::Result<(Vec<verity_signing::Certificate>, String)> {
    use anyhow::Context;
    let mut out = Vec::new();
    let mut files = certs.to_vec();
    let mut source = "--cert".to_string();
    if files.is_empty() {
        source = DEFAULT_CERT_DIR.to_string();
        if let Ok(rd) = std::fs::read_dir(DEFAULT_CERT_DIR) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
    }
    for c in &files {
        let data = verity_signing::read_bounded(c)
            .with_context(|| format!("certificate {}", c.display()))?;
        let certs = verity_signing::Certificate::parse_all(&data)
            .with_context(|| format!("certificate {}", c.display()))?;
        out.extend(certs);
    }
    Ok((out, source))
}
