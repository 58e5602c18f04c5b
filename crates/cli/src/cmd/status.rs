//! `rpm-verity status`: what the running kernel offers, what the `.fs-verity` keyring holds,
//! whether the certificates in /etc/rpm-verity/certs are loaded, and whether a path's
//! filesystem can do fs-verity.
//!
//! The point is the situations that otherwise surface as a bare errno: after a reboot the
//! keyring is empty and signed files fail to open (ENOKEY); an ext4 made without `-O verity`
//! answers EOPNOTSUPP; tmpfs answers ENOTTY. Status names each of them before anything fails.
//! It never needs write access and creates nothing.
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fsverity::linux;
use serde::Serialize;

use super::keyring::{explain_keyring_error, kernel_description, read_cert_dir, DEFAULT_CERT_DIR};

#[derive(clap::Args)]
pub struct Args {
    /// Also report whether this path's filesystem supports fs-verity (and, for a regular
    /// file, whether fs-verity is on for it).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Directory of certificates that should be in the keyring.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CERT_DIR)]
    certs_dir: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    kernel: Kernel,
    keyring: Keyring,
    certs: Certs,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathStatus>,
    /// Everything that will make signed files fail, one sentence each.
    problems: Vec<String>,
}

#[derive(Serialize)]
struct Kernel {
    release: Option<String>,
    /// CONFIG_FS_VERITY, when it can be told (kernel config file, ext4 feature, sysctl).
    fs_verity: Option<bool>,
    /// CONFIG_FS_VERITY_BUILTIN_SIGNATURES: /proc/sys/fs/verity exists.
    builtin_signatures: bool,
    keyring_present: bool,
    require_signatures: Option<bool>,
    /// /sys/fs/ext4/features/verity; None when ext4 is not loaded.
    ext4_verity: Option<bool>,
}

#[derive(Serialize)]
struct Keyring {
    id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    keys: Vec<Key>,
}

#[derive(Serialize)]
struct Key {
    id: i32,
    #[serde(rename = "type")]
    key_type: String,
    description: String,
}

#[derive(Serialize)]
struct Certs {
    dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    certs: Vec<CertStatus>,
    skipped: Vec<Skipped>,
}

#[derive(Serialize)]
struct CertStatus {
    path: String,
    subject: String,
    issuer: String,
    serial: String,
    description: Option<String>,
    /// None when the keyring could not be read.
    loaded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<i32>,
}

#[derive(Serialize)]
struct Skipped {
    path: String,
    reason: String,
}

#[derive(Serialize)]
struct PathStatus {
    path: String,
    fs_type: Option<String>,
    device: Option<String>,
    mount_point: Option<String>,
    /// supported | feature-off | kernel-unsupported | unsupported | unknown
    verity: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ext4: Option<Ext4Super>,
    /// For a regular file: whether fs-verity is on for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_verity: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_error: Option<String>,
}

#[derive(Serialize)]
struct Ext4Super {
    block_size: u32,
    verity_feature: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    let kernel = kernel_status();

    let keyring = match linux::fs_verity_keyring() {
        Ok(id) => match linux::list_keyring_of(id) {
            Ok(keys) => Keyring {
                id: Some(id),
                error: None,
                keys: keys
                    .into_iter()
                    .map(|k| Key {
                        id: k.id,
                        key_type: k.key_type,
                        description: k.description,
                    })
                    .collect(),
            },
            Err(e) => Keyring {
                id: Some(id),
                error: Some(explain_keyring_error(e).to_string()),
                keys: Vec::new(),
            },
        },
        Err(e) => Keyring {
            id: None,
            error: Some(explain_keyring_error(e).to_string()),
            keys: Vec::new(),
        },
    };
    if kernel.fs_verity == Some(false) || !kernel.builtin_signatures {
        problems.push(if kernel.fs_verity == Some(true) {
            "the kernel has fs-verity but no built-in signatures \
             (CONFIG_FS_VERITY_BUILTIN_SIGNATURES): signed files cannot be enabled"
                .to_string()
        } else {
            "the kernel has no fs-verity built-in signature support (CONFIG_FS_VERITY, \
             CONFIG_FS_VERITY_BUILTIN_SIGNATURES): files cannot be protected here"
                .to_string()
        });
    } else if let Some(e) = &keyring.error {
        problems.push(format!("cannot read the .fs-verity keyring: {e}"));
    }

    let certs = cert_status(&args.certs_dir, &keyring);
    for c in &certs.certs {
        if c.loaded == Some(false) {
            problems.push(format!(
                "certificate {} ({}) is not in the .fs-verity keyring: files signed with it \
                 cannot be opened (ENOKEY) until `rpm-verity keyring load` runs",
                c.path, c.subject
            ));
        }
    }

    let path = match &args.path {
        Some(p) => {
            let st = path_status(p)?;
            if st.verity != "supported" {
                problems.push(format!("{}: {}", st.path, st.detail));
            }
            if let Some(e) = &st.file_error {
                problems.push(format!("{}: {e}", st.path));
            }
            Some(st)
        }
        None => None,
    };

    let report = Report {
        kernel,
        keyring,
        certs,
        path,
        problems,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn kernel_status() -> Kernel {
    let s = linux::kernel_support();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|r| r.trim().to_string());
    // The config file says it outright; otherwise ext4's feature file or the sysctl (both only
    // exist with CONFIG_FS_VERITY) prove it is there.
    let config = release
        .as_ref()
        .and_then(|r| fs::read_to_string(format!("/boot/config-{r}")).ok());
    let from_config = config.as_ref().map(|c| {
        c.lines()
            .any(|l| l.trim() == "CONFIG_FS_VERITY=y" || l.trim() == "CONFIG_FS_VERITY=m")
    });
    let fs_verity = if s.builtin_signatures || s.ext4_verity == Some(true) {
        Some(true)
    } else {
        from_config.or(s.ext4_verity)
    };
    Kernel {
        release,
        fs_verity,
        builtin_signatures: s.builtin_signatures,
        keyring_present: s.keyring.is_some(),
        require_signatures: s.require_signatures,
        ext4_verity: s.ext4_verity,
    }
}

fn cert_status(dir: &Path, keyring: &Keyring) -> Certs {
    let mut out = Certs {
        dir: dir.display().to_string(),
        error: None,
        certs: Vec::new(),
        skipped: Vec::new(),
    };
    let files = match read_cert_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(format!("{e:#}"));
            return out;
        }
    };
    let readable = keyring.error.is_none();
    for f in files {
        let path = f.path.display().to_string();
        match f.certs {
            Err(reason) => out.skipped.push(Skipped { path, reason }),
            Ok(certs) => {
                for c in certs {
                    let description = kernel_description(c.der());
                    let key = description
                        .as_ref()
                        .and_then(|d| keyring.keys.iter().find(|k| &k.description == d));
                    out.certs.push(CertStatus {
                        path: path.clone(),
                        subject: c.subject().to_string(),
                        issuer: c.issuer().to_string(),
                        serial: c.serial_hex(),
                        description,
                        loaded: readable.then_some(key.is_some()),
                        key_id: key.map(|k| k.id),
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Filesystem of a path
// ---------------------------------------------------------------------------------------------

/// A mountinfo line: which filesystem holds a device number.
struct Mount {
    mount_point: String,
    fs_type: String,
    source: String,
}

/// The mount holding `dev` whose mount point is the longest prefix of `path` (bind mounts share
/// a device number).
fn find_mount(path: &Path, dev: u64) -> Option<Mount> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major}:{minor}");
    let mut best: Option<Mount> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 5 || r.len() < 2 || f[2] != want {
            continue;
        }
        let mp = unescape_mountinfo(f[4]);
        if !path.starts_with(&mp) {
            continue;
        }
        if best.as_ref().is_none_or(|b| mp.len() > b.mount_point.len()) {
            best = Some(Mount {
                mount_point: mp,
                fs_type: r[0].to_string(),
                source: unescape_mountinfo(r[1]),
            });
        }
    }
    best
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The ext4 superblock's block size and RO_COMPAT_VERITY bit, if the device is readable (root).
fn ext4_superblock(device: &str) -> Option<Ext4Super> {
    if !device.starts_with("/dev/") {
        return None;
    }
    let mut f = fs::File::open(device).ok()?;
    f.seek(SeekFrom::Start(1024)).ok()?;
    let mut sb = [0u8; 1024];
    f.read_exact(&mut sb).ok()?;
    let le32 = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let log = le32(0x18);
    const RO_COMPAT_VERITY: u32 = 0x8000;
    Some(Ext4Super {
        block_size: if log <= 6 { 1024 << log } else { 0 },
        verity_feature: le32(0x64) & RO_COMPAT_VERITY != 0,
    })
}

fn path_status(path: &Path) -> anyhow::Result<PathStatus> {
    let abs = fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let meta = fs::metadata(&abs).with_context(|| format!("{}", abs.display()))?;
    let mount = find_mount(&abs, meta.dev());
    let ext4 = mount
        .as_ref()
        .filter(|m| m.fs_type == "ext4")
        .and_then(|m| ext4_superblock(&m.source));
    let mut st = PathStatus {
        path: abs.display().to_string(),
        fs_type: mount.as_ref().map(|m| m.fs_type.clone()),
        device: mount.as_ref().map(|m| m.source.clone()),
        mount_point: mount.as_ref().map(|m| m.mount_point.clone()),
        verity: "unknown",
        detail: String::new(),
        ext4,
        file_verity: None,
        file_digest: None,
        file_error: None,
    };
    let fs_name = st.fs_type.clone().unwrap_or_else(|| "?".into());

    // The probe: FS_IOC_ENABLE_VERITY with block size 0. Filesystems check their verity
    // support first (ENOTTY: none, EOPNOTSUPP: kernel or feature off), and the kernel rejects
    // a block size that is not a power of two (EINVAL) before it checks write access or the
    // file type, so nothing can be enabled and a directory or read-only fd is enough.
    let file = match fs::File::open(&abs) {
        Ok(f) => f,
        Err(e) => {
            st.detail = format!("cannot open it to probe: {}", linux::map_open_error(e));
            return Ok(st);
        }
    };
    let probe = linux::enable_verity(file.as_fd(), fsverity::HashAlgorithm::Sha256, 0, &[], None);
    let ext4_note = match &st.ext4 {
        Some(sb) if sb.block_size != 4096 => format!(
            " (ext4 block size {}: kernels before 6.3 enable fs-verity only when it equals the \
             page size, 4096)",
            sb.block_size
        ),
        _ => String::new(),
    };
    match probe {
        Err(linux::EnableError::InvalidArgument) => {
            st.verity = "supported";
            st.detail = format!("{fs_name}: fs-verity can be enabled here{ext4_note}");
        }
        Err(linux::EnableError::NotEnabled) => {
            st.verity = "feature-off";
            let kernel_has = linux::kernel_support();
            st.detail = if !kernel_has.builtin_signatures && kernel_has.ext4_verity != Some(true) {
                st.verity = "kernel-unsupported";
                format!(
                    "{fs_name}: the kernel lacks fs-verity (CONFIG_FS_VERITY), so it cannot be \
                     enabled here (EOPNOTSUPP)"
                )
            } else if fs_name == "ext4" && st.ext4.as_ref().is_some_and(|s| !s.verity_feature) {
                format!(
                    "ext4 on {} lacks the verity feature: `tune2fs -O verity {}` (unmounted) \
                     turns it on",
                    st.device.as_deref().unwrap_or("?"),
                    st.device.as_deref().unwrap_or("DEVICE")
                )
            } else {
                format!(
                    "{fs_name}: fs-verity is not enabled on this filesystem (EOPNOTSUPP; for \
                     ext4/f2fs: tune2fs -O verity / fsck.f2fs -O verity)"
                )
            };
        }
        Err(linux::EnableError::FilesystemUnsupported) => {
            st.verity = "unsupported";
            st.detail = format!(
                "{fs_name} does not support fs-verity at all (ENOTTY); ext4, f2fs and btrfs do"
            );
        }
        Ok(()) => {
            // Cannot happen with block size 0; say so rather than guess.
            st.detail = "the probe unexpectedly succeeded".into();
        }
        Err(e) => {
            st.detail = format!("{fs_name}: probe inconclusive: {e}");
        }
    }

    if meta.is_file() {
        match linux::is_verity(file.as_fd()) {
            Ok(on) => {
                st.file_verity = Some(on);
                if on {
                    match linux::measure_verity(file.as_fd()) {
                        Ok(Some(d)) => st.file_digest = Some(d.to_string()),
                        Ok(None) => {}
                        Err(e) => st.file_error = Some(e.to_string()),
                    }
                }
            }
            Err(e) => st.file_error = Some(e.to_string()),
        }
    }
    Ok(st)
}

// ---------------------------------------------------------------------------------------------
// Text output
// ---------------------------------------------------------------------------------------------

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn print_text(r: &Report) {
    let k = &r.kernel;
    println!("kernel {}", k.release.as_deref().unwrap_or("?"));
    println!(
        "  fs-verity (CONFIG_FS_VERITY):          {}",
        yes_no(k.fs_verity)
    );
    println!(
        "  built-in signatures:                   {}",
        yes_no(Some(k.builtin_signatures))
    );
    let ring = match (r.keyring.id, &r.keyring.error) {
        (Some(id), None) => format!("present ({id}), {} key(s)", r.keyring.keys.len()),
        (Some(id), Some(e)) => format!("present ({id}), unreadable: {e}"),
        (None, _) => "missing".to_string(),
    };
    println!("  .fs-verity keyring:                    {ring}");
    println!(
        "  fs.verity.require_signatures:          {}",
        match k.require_signatures {
            Some(true) => "1 (only signed verity files can be opened or enabled)",
            Some(false) => "0",
            None => "unavailable",
        }
    );
    println!(
        "  ext4 verity support:                   {}",
        match k.ext4_verity {
            None => "ext4 not loaded",
            Some(true) => "yes",
            Some(false) => "no",
        }
    );
    if !r.keyring.keys.is_empty() {
        println!("keys in .fs-verity:");
        for key in &r.keyring.keys {
            println!("  {:<11} {:<10} {}", key.id, key.key_type, key.description);
        }
    }
    println!("certificates in {}:", r.certs.dir);
    if let Some(e) = &r.certs.error {
        println!("  (cannot read: {e})");
    } else if r.certs.certs.is_empty() {
        println!("  (none)");
    }
    for c in &r.certs.certs {
        let state = match c.loaded {
            Some(true) => format!("loaded (key {})", c.key_id.unwrap_or_default()),
            Some(false) => "NOT LOADED".to_string(),
            None => "unknown (keyring unreadable)".to_string(),
        };
        println!("  {}: {}: {state}", c.path, c.subject);
    }
    for s in &r.certs.skipped {
        println!("  {}: skipped, {}", s.path, s.reason);
    }
    if let Some(p) = &r.path {
        println!("path {}:", p.path);
        println!(
            "  filesystem:                            {} on {} (mounted at {})",
            p.fs_type.as_deref().unwrap_or("?"),
            p.device.as_deref().unwrap_or("?"),
            p.mount_point.as_deref().unwrap_or("?")
        );
        if let Some(sb) = &p.ext4 {
            println!(
                "  ext4 superblock:                       block size {}, verity feature {}",
                sb.block_size,
                if sb.verity_feature { "on" } else { "off" }
            );
        }
        println!(
            "  fs-verity:                             {}: {}",
            p.verity, p.detail
        );
        if let Some(on) = p.file_verity {
            println!(
                "  file:                                  verity {}{}",
                if on { "on" } else { "off" },
                p.file_digest
                    .as_ref()
                    .map(|d| format!(", digest {d}"))
                    .unwrap_or_default()
            );
        }
        if let Some(e) = &p.file_error {
            println!("  file error:                            {e}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }

    #[test]
    fn finds_the_mount_of_the_root() {
        let meta = fs::metadata("/").unwrap();
        let m = find_mount(Path::new("/"), meta.dev()).expect("/ is in mountinfo");
        assert_eq!(m.mount_point, "/");
        assert!(!m.fs_type.is_empty());
    }

    #[test]
    fn tmpfs_is_unsupported() {
        let dir = Path::new("/dev/shm");
        let st = path_status(dir).unwrap();
        assert_eq!(st.fs_type.as_deref(), Some("tmpfs"));
        assert_eq!(st.verity, "unsupported", "{}", st.detail);
    }
}
