//! `rpm-verity keyring`: load certificates into the kernel's `.fs-verity` keyring, list it, and
//! flip `fs.verity.require_signatures`.
//!
//! The keyring is empty after every boot, and a signed verity file cannot even be opened
//! (ENOKEY) until its certificate is back, so `keyring load` is what the boot integration
//! (systemd unit, initramfs hooks) runs. It has to be idempotent because it runs from several
//! places (initramfs, then the unit) and by hand.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use fsverity::linux::{self, KeySerial};
use serde::Serialize;
use verity_signing::Certificate;

/// Where packages and admins drop the certificates to load at boot.
pub const DEFAULT_CERT_DIR: &str = "/etc/rpm-verity/certs";

/// Certificates are a few KiB; anything much larger in the cert directory is not one.
const MAX_CERT_FILE: u64 = 1 << 20;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Load X.509 certificates (PEM, several per file, or DER) into the .fs-verity keyring.
    /// A certificate already there is reported, not added again.
    Load(LoadArgs),
    /// List the keys in the .fs-verity keyring.
    List(ListArgs),
    /// Show or set fs.verity.require_signatures (1: every verity file must carry a valid
    /// signature; unsigned ones can no longer be opened or enabled).
    RequireSignatures(RequireArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// Certificate files; without any, every file in --dir is loaded.
    #[arg(value_name = "CERT", conflicts_with = "dir")]
    certs: Vec<PathBuf>,
    /// Load every certificate file in DIR (files that are not certificates are skipped with a
    /// notice).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RequireArgs {
    /// on|off (also 1|0, yes|no, true|false); without it the current value is printed.
    #[arg(value_name = "on|off", value_parser = parse_on_off, conflicts_with = "from_file")]
    value: Option<bool>,
    /// Read the value from FILE (one word, as above); a missing FILE leaves the sysctl alone.
    /// This is what the boot integration runs with /etc/rpm-verity/require-signatures.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Load(a) => load(a),
        Sub::List(a) => list(a),
        Sub::RequireSignatures(a) => require(a),
    }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        other => Err(format!("expected on or off (1/0), got {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate files
// ---------------------------------------------------------------------------------------------

/// One file given to `load` or found in the cert directory.
pub(crate) struct CertFile {
    pub path: PathBuf,
    /// The certificates in it, or why it is not a certificate file.
    pub certs: Result<Vec<Certificate>, String>,
}

/// Read and parse one certificate file, bounded in size.
pub(crate) fn read_cert_file(path: &Path) -> anyhow::Result<CertFile> {
    let f = fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut data = Vec::new();
    f.take(MAX_CERT_FILE + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    let certs = if data.len() as u64 > MAX_CERT_FILE {
        Err(format!("larger than {MAX_CERT_FILE} bytes"))
    } else {
        Certificate::parse_all(&data).map_err(|e| e.to_string())
    };
    Ok(CertFile {
        path: path.to_path_buf(),
        certs,
    })
}

/// Every regular file in `dir` (symlinks followed, hidden files and subdirectories ignored),
/// in name order so that the output is stable.
pub(crate) fn read_cert_dir(dir: &Path) -> anyhow::Result<Vec<CertFile>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("certificate directory {}", dir.display()))?;
    let mut paths = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        if fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
            paths.push(p);
        }
    }
    paths.sort();
    paths.iter().map(|p| read_cert_file(p)).collect()
}

// ---------------------------------------------------------------------------------------------
// The description the kernel derives
// ---------------------------------------------------------------------------------------------

/// The description the kernel's X.509 parser gives a certificate added with an empty one
/// (crypto/asymmetric_keys: x509_fabricate_name + x509_key_preparse): `<name>: <key id hex>`,
/// where name is "O: CN", or just CN when CN starts with O (or they share 7 leading bytes), or
/// whichever of CN, O, email exists; key id is the subjectKeyIdentifier, else the serial.
/// The asymmetric key type has no read operation, so this is the only way to tell whether a
/// certificate is already in the keyring.
pub(crate) fn kernel_description(der_bytes: &[u8]) -> Option<String> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
    let tbs = &cert.tbs_certificate;
    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const EMAIL: &str = "1.2.840.113549.1.9.1";
    const SKID: &str = "2.5.29.14";
    let (mut cn, mut o, mut email) = (None::<&[u8]>, None::<&[u8]>, None::<&[u8]>);
    // The kernel keeps the last occurrence of each attribute.
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            let v = atv.value.value();
            match atv.oid.to_string().as_str() {
                CN => cn = Some(v),
                O => o = Some(v),
                EMAIL => email = Some(v),
                _ => {}
            }
        }
    }
    let name: Vec<u8> = match (cn, o) {
        (Some(cn), Some(o)) => {
            if (cn.len() >= o.len() && cn.starts_with(o))
                || (cn.len() >= 7 && o.len() >= 7 && cn[..7] == o[..7])
            {
                cn.to_vec()
            } else {
                [o, b": ", cn].concat()
            }
        }
        (Some(cn), None) => cn.to_vec(),
        (None, Some(o)) => o.to_vec(),
        (None, None) => email.unwrap_or_default().to_vec(),
    };
    // The kernel uses strlen() on the name.
    let name = match name.iter().position(|&b| b == 0) {
        Some(n) => &name[..n],
        None => &name[..],
    };
    let skid = tbs.extensions.as_ref().and_then(|exts| {
        exts.iter()
            .find(|e| e.extn_id.to_string() == SKID)
            .and_then(|e| {
                let v = e.extn_value.as_bytes();
                // An OCTET STRING with a short length, as the kernel insists.
                (v.len() >= 3 && v[0] == 0x04 && usize::from(v[1]) == v.len() - 2)
                    .then(|| v[2..].to_vec())
            })
    });
    let id = skid.unwrap_or_else(|| tbs.serial_number.as_bytes().to_vec());
    Some(format!(
        "{}: {}",
        String::from_utf8_lossy(name),
        hex::encode(id)
    ))
}

// ---------------------------------------------------------------------------------------------
// Kernel access with explanations
// ---------------------------------------------------------------------------------------------

/// The process's effective uid: the owner of /proc/self is the caller's euid.
pub(crate) fn euid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Why the `.fs-verity` keyring cannot be used, in the user's terms: the kernel lacks the
/// feature, or we are not root (the keyring is invisible to other users in /proc/keys).
pub(crate) fn explain_keyring_error(e: linux::KeyringError) -> anyhow::Error {
    if matches!(e, linux::KeyringError::NoKeyring) {
        let s = linux::kernel_support();
        if !s.builtin_signatures {
            return anyhow::anyhow!(
                "this kernel has no fs-verity built-in signature support (/proc/sys/fs/verity \
                 is missing), so there is no .fs-verity keyring: it needs CONFIG_FS_VERITY=y and \
                 CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y"
            );
        }
        if euid() != Some(0) {
            return anyhow::anyhow!(
                "the .fs-verity keyring is only visible to root: run this as root"
            );
        }
    }
    if matches!(e, linux::KeyringError::KeyringPermission) && euid() != Some(0) {
        return anyhow::anyhow!("not permitted to use the .fs-verity keyring: run this as root");
    }
    anyhow::Error::new(e)
}

fn keyring() -> anyhow::Result<KeySerial> {
    linux::fs_verity_keyring().map_err(explain_keyring_error)
}

// ---------------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct LoadEntry {
    path: String,
    /// loaded | already-loaded | skipped | error
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<KeySerial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let from_dir = a.certs.is_empty();
    let files = if from_dir {
        let dir = a.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CERT_DIR));
        let files = read_cert_dir(&dir)?;
        if files.is_empty() && !a.json {
            eprintln!(
                "rpm-verity: notice: no certificate files in {}",
                dir.display()
            );
        }
        files
    } else {
        a.certs
            .iter()
            .map(|p| read_cert_file(p))
            .collect::<anyhow::Result<Vec<_>>>()?
    };

    let ring = keyring()?;
    let mut present: Vec<(String, KeySerial)> = linux::list_keyring_of(ring)
        .map_err(explain_keyring_error)?
        .into_iter()
        .map(|k| (k.description, k.id))
        .collect();

    let mut entries = Vec::new();
    for f in &files {
        let path = f.path.display().to_string();
        let certs = match &f.certs {
            Ok(c) => c,
            Err(reason) => {
                entries.push(LoadEntry {
                    path,
                    status: if from_dir { "skipped" } else { "error" },
                    subject: None,
                    issuer: None,
                    serial: None,
                    description: None,
                    key_id: None,
                    reason: Some(format!("not a certificate file: {reason}")),
                });
                continue;
            }
        };
        for c in certs {
            let predicted = kernel_description(c.der());
            let mut e = LoadEntry {
                path: path.clone(),
                status: "loaded",
                subject: Some(c.subject().to_string()),
                issuer: Some(c.issuer().to_string()),
                serial: Some(c.serial_hex()),
                description: predicted.clone(),
                key_id: None,
                reason: None,
            };
            let found = predicted
                .as_ref()
                .and_then(|d| present.iter().find(|(pd, _)| pd == d));
            if let Some((_, id)) = found {
                e.status = "already-loaded";
                e.key_id = Some(*id);
                entries.push(e);
                continue;
            }
            match linux::add_certificate_to(ring, c.der()) {
                Ok(id) => {
                    e.key_id = Some(id);
                    if let Ok(k) = linux::describe_key(id) {
                        e.description = Some(k.description.clone());
                        present.push((k.description, id));
                    }
                }
                Err(err) => {
                    e.status = "error";
                    e.reason = Some(explain_keyring_error(err).to_string());
                }
            }
            entries.push(e);
        }
    }

    let count = |s: &str| entries.iter().filter(|e| e.status == s).count();
    let (loaded, already, skipped, errors) = (
        count("loaded"),
        count("already-loaded"),
        count("skipped"),
        count("error"),
    );
    if a.json {
        let report = serde_json::json!({
            "keyring": ring,
            "entries": entries,
            "loaded": loaded,
            "already_loaded": already,
            "skipped": skipped,
            "errors": errors,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for e in &entries {
            let desc = e.description.as_deref().unwrap_or("?");
            let id = e.key_id.map(|i| format!(" (key {i})")).unwrap_or_default();
            match e.status {
                "loaded" => println!("loaded          {}: {desc}{id}", e.path),
                "already-loaded" => println!("already loaded  {}: {desc}{id}", e.path),
                "skipped" => eprintln!(
                    "rpm-verity: notice: skipping {}: {}",
                    e.path,
                    e.reason.as_deref().unwrap_or("")
                ),
                _ => eprintln!(
                    "rpm-verity: error: {}: {}{}",
                    e.path,
                    e.subject
                        .as_deref()
                        .map(|s| format!("{s}: "))
                        .unwrap_or_default(),
                    e.reason.as_deref().unwrap_or("")
                ),
            }
        }
        println!(
            "{loaded} loaded, {already} already in the keyring, {skipped} skipped, {errors} failed"
        );
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------------------------

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let ring = keyring()?;
    let keys = linux::list_keyring_of(ring).map_err(explain_keyring_error)?;
    if a.json {
        let keys: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id,
                    "type": k.key_type,
                    "description": k.description,
                    "uid": k.uid,
                    "gid": k.gid,
                    "perm": format!("{:08x}", k.perm),
                })
            })
            .collect();
        let report = serde_json::json!({ "keyring": ring, "keys": keys });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for k in &keys {
            println!("{:<11} {:<10} {}", k.id, k.key_type, k.description);
        }
        println!("{} key(s) in .fs-verity", keys.len());
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// require-signatures
// ---------------------------------------------------------------------------------------------

fn explain_sysctl_error(e: linux::SysctlError) -> anyhow::Error {
    match e {
        linux::SysctlError::NoSysctl => anyhow::anyhow!(
            "this kernel has no fs.verity.require_signatures ({} is missing): it needs \
             CONFIG_FS_VERITY=y and CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y",
            linux::REQUIRE_SIGNATURES_SYSCTL
        ),
        linux::SysctlError::SysctlPermission => anyhow::anyhow!(
            "not permitted to change fs.verity.require_signatures: run this as root"
        ),
        e => anyhow::Error::new(e),
    }
}

fn require(a: RequireArgs) -> anyhow::Result<ExitCode> {
    let current = linux::require_signatures().map_err(explain_sysctl_error)?;
    let wanted = match (a.value, &a.from_file) {
        (Some(v), _) => v,
        (None, Some(file)) => match fs::read_to_string(file) {
            Ok(text) => {
                parse_on_off(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "{} does not exist: fs.verity.require_signatures left at {}",
                    file.display(),
                    u8::from(current)
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => bail!("{}: {e}", file.display()),
        },
        (None, None) => {
            println!("{}", u8::from(current));
            return Ok(ExitCode::SUCCESS);
        }
    };
    linux::set_require_signatures(wanted).map_err(explain_sysctl_error)?;
    println!(
        "fs.verity.require_signatures = {} (was {})",
        u8::from(wanted),
        u8::from(current)
    );
    if wanted && !current {
        eprintln!(
            "rpm-verity: notice: applies to verity files opened from now on; files already in \
             use keep working until they leave the inode cache"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl_cert(subj: &str, extra: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.der");
        let st = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-keyout", "/dev/null", "-outform", "der", "-subj", subj])
            .args(extra)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        fs::read(cert).unwrap()
    }

    fn skid_hex(der_bytes: &[u8]) -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "x509",
                "-inform",
                "der",
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(der_bytes)?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .nth(1)
            .unwrap()
            .trim()
            .replace(':', "")
            .to_lowercase()
    }

    #[test]
    fn description_combines_o_and_cn() {
        let der = openssl_cert("/CN=rpm-verity test/O=Throwaway", &[]);
        let d = kernel_description(&der).unwrap();
        assert_eq!(d, format!("Throwaway: rpm-verity test: {}", skid_hex(&der)));
    }

    #[test]
    fn description_uses_cn_alone_when_it_starts_with_o() {
        let der = openssl_cert("/O=Example/CN=Example signing key", &[]);
        let d = kernel_description(&der).unwrap();
        assert_eq!(d, format!("Example signing key: {}", skid_hex(&der)));
    }

    #[test]
    fn description_falls_back_to_serial_without_skid() {
        let der = openssl_cert(
            "/CN=noskid",
            &[
                "-addext",
                "subjectKeyIdentifier=none",
                "-set_serial",
                "0x1234ab",
            ],
        );
        assert_eq!(kernel_description(&der).unwrap(), "noskid: 1234ab");
    }

    #[test]
    fn on_off_words() {
        assert_eq!(parse_on_off("on\n"), Ok(true));
        assert_eq!(parse_on_off(" 0 "), Ok(false));
        assert_eq!(parse_on_off("Yes"), Ok(true));
        assert!(parse_on_off("maybe").is_err());
    }
}
