//! What the running kernel and a path's filesystem offer, found without write access and
//! without creating anything: the situations that otherwise surface as a bare errno (an ext4
//! made without `-O verity` answers EOPNOTSUPP, tmpfs answers ENOTTY) named before anything
//! fails.
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use fsverity::linux::{self, EnableError};
use serde::Serialize;
use verity_signing::cert::EcCurve;
use verity_signing::KeyAlgorithm;

use crate::outcome::named_enum;

#[derive(Debug, Clone, Serialize)]
pub struct KernelStatus {
    pub release: Option<String>,
    /// CONFIG_FS_VERITY, when it can be told (kernel config file, ext4 feature, sysctl).
    pub fs_verity: Option<bool>,
    /// CONFIG_FS_VERITY_BUILTIN_SIGNATURES: /proc/sys/fs/verity/require_signatures exists.
    pub builtin_signatures: bool,
    pub keyring_present: bool,
    pub require_signatures: Option<bool>,
    /// /sys/fs/ext4/features/verity; None when ext4 is not loaded.
    pub ext4_verity: Option<bool>,
    /// Whether the kernel can verify ECDSA signatures (CONFIG_CRYPTO_ECDSA): Debian's 6.12
    /// can, 6.1 cannot, and there an EC certificate cannot be loaded or, issued by an RSA CA,
    /// loads and then every signature made with its key is rejected. None when it cannot be
    /// told.
    pub ecdsa: Option<bool>,
}

pub fn kernel_status() -> KernelStatus {
    let s = linux::kernel_support();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|r| r.trim().to_string());
    let config = release
        .as_ref()
        .and_then(|r| fs::read_to_string(format!("/boot/config-{r}")).ok());
    let ecdsa = ecdsa_support(release.as_deref(), config.as_deref());
    KernelStatus {
        release,
        ecdsa,
        fs_verity: fs_verity_compiled_in(&s, config.as_deref()),
        builtin_signatures: s.builtin_signatures,
        keyring_present: s.keyring.is_some(),
        require_signatures: s.require_signatures,
        ext4_verity: s.ext4_verity,
    }
}

/// Why EC certificates are of no use on a kernel without ECDSA, in the user's words.
pub const NO_ECDSA: &str = "this kernel cannot verify ECDSA signatures (it was built without \
     CONFIG_CRYPTO_ECDSA, as Debian's 6.1 kernels are; Debian's 6.12 has it): an EC \
     certificate cannot be added to the .fs-verity keyring, or, issued by an RSA CA, is added \
     and then every signature made with its key is refused (EKEYREJECTED) as if it were wrong; \
     sign with an RSA key for this kernel, or boot one with ECDSA";

/// How `status` and `keyring load` name a certificate's key.
pub fn key_name(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::Rsa => "RSA",
        KeyAlgorithm::Ec(EcCurve::P256) => "EC P-256",
        KeyAlgorithm::Ec(EcCurve::P384) => "EC P-384",
        KeyAlgorithm::Ec(EcCurve::P521) => "EC P-521",
    }
}

/// [`KernelStatus::ecdsa`] of the running kernel, probed once: enable and audit ask on every
/// rejected signature, and the kernel does not change under them.
pub fn kernel_ecdsa() -> Option<bool> {
    static ECDSA: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *ECDSA.get_or_init(|| kernel_status().ecdsa)
}

/// Why the kernel refused a signature with EKEYREJECTED, when it is not the file's content: an
/// ECDSA signature on a kernel that cannot verify ECDSA (its EC certificate, issued by an RSA
/// CA, did load). `None` when the refusal means what it says.
pub fn ecdsa_rejection(sig: &[u8]) -> Option<String> {
    let ecdsa = verity_signing::Pkcs7Signature::from_der(sig)
        .is_ok_and(|p| p.signature_algorithm() == verity_signing::SignatureAlgorithm::Ecdsa);
    (ecdsa && kernel_ecdsa() == Some(false)).then(|| {
        format!(
            "the kernel refused the file's ECDSA signature (EKEYREJECTED), which says nothing \
             about the file: {}",
            NO_ECDSA
        )
    })
}

/// ECDSA from what the running kernel shows: registered algorithms in /proc/crypto, else the
/// kernel config, else the modules directory (a module the crypto API would load on demand).
fn ecdsa_support(release: Option<&str>, config: Option<&str>) -> Option<bool> {
    let crypto = fs::read_to_string("/proc/crypto").ok();
    let modules = release.map(|r| Path::new("/lib/modules").join(r));
    let module = modules.as_deref().filter(|m| m.is_dir()).map(|m| {
        let builtin = fs::read_to_string(m.join("modules.builtin")).unwrap_or_default();
        // Installed kernels keep it in kernel/crypto/; a flat directory (an initramfs) at the top.
        let file = [m.join("kernel/crypto"), m.to_path_buf()]
            .iter()
            .any(|dir| {
                fs::read_dir(dir).is_ok_and(|d| {
                    d.filter_map(Result::ok)
                        .any(|e| e.file_name().to_string_lossy().starts_with("ecdsa"))
                })
            });
        file || builtin.contains("crypto/ecdsa")
    });
    ecdsa_from(crypto.as_deref(), config, module)
}

/// The decision of [`ecdsa_support`], apart from the files: `module` is whether the modules
/// directory has ECDSA (None when there is no modules directory).
fn ecdsa_from(crypto: Option<&str>, config: Option<&str>, module: Option<bool>) -> Option<bool> {
    let registered = crypto.is_some_and(|c| {
        c.lines().any(|l| {
            (l.starts_with("name") || l.starts_with("driver")) && l.contains(": ecdsa-nist-p")
        })
    });
    if registered {
        return Some(true);
    }
    let from_config = config.and_then(|c| {
        c.lines().find_map(|l| match l.trim() {
            "CONFIG_CRYPTO_ECDSA=y" | "CONFIG_CRYPTO_ECDSA=m" => Some(true),
            "# CONFIG_CRYPTO_ECDSA is not set" => Some(false),
            _ => None,
        })
    });
    from_config.or(match module {
        Some(true) => Some(true),
        // Not registered and no module to load: only if /proc/crypto could be read at all.
        Some(false) if crypto.is_some() => Some(false),
        _ => None,
    })
}

/// The sysctl directory and ext4's feature file only exist with CONFIG_FS_VERITY, so either
/// proves it; otherwise the kernel config says it outright, and failing that ext4 without the
/// feature file (loaded, so it would have one) says no.
fn fs_verity_compiled_in(s: &linux::KernelSupport, config: Option<&str>) -> Option<bool> {
    if s.builtin_signatures || s.ext4_verity == Some(true) {
        return Some(true);
    }
    let from_config = config.map(|c| {
        c.lines()
            .any(|l| l.trim() == "CONFIG_FS_VERITY=y" || l.trim() == "CONFIG_FS_VERITY=m")
    });
    from_config.or(s.ext4_verity)
}

// ---------------------------------------------------------------------------------------------
// Filesystem of a path
// ---------------------------------------------------------------------------------------------

/// A mountinfo line: which filesystem holds a device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
}

/// The mount holding `dev` whose mount point is the longest prefix of `path` (bind mounts share
/// a device number).
pub fn find_mount(path: &Path, dev: u64) -> Option<Mount> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_mount_in(&text, path, dev)
}

fn find_mount_in(mountinfo: &str, path: &Path, dev: u64) -> Option<Mount> {
    let want = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
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
pub fn unescape_mountinfo(s: &str) -> String {
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ext4Super {
    pub block_size: u32,
    pub verity_feature: bool,
}

/// The ext4 superblock's block size and RO_COMPAT_VERITY bit, if the device is readable
/// (root): the one way to tell "feature off" from other EOPNOTSUPP causes.
pub fn ext4_superblock(device: &str) -> Option<Ext4Super> {
    if !device.starts_with("/dev/") {
        return None;
    }
    let mut f = fs::File::open(device).ok()?;
    f.seek(SeekFrom::Start(1024)).ok()?;
    let mut sb = [0u8; 1024];
    f.read_exact(&mut sb).ok()?;
    parse_ext4_superblock(&sb)
}

fn parse_ext4_superblock(sb: &[u8; 1024]) -> Option<Ext4Super> {
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

named_enum! {
    /// Whether fs-verity can be enabled on a filesystem.
    pub enum VeritySupport {
        Supported = "supported",
        /// The filesystem can, but its verity feature is off (EOPNOTSUPP).
        FeatureOff = "feature-off",
        /// The kernel has no fs-verity at all (EOPNOTSUPP on a filesystem that could).
        KernelUnsupported = "kernel-unsupported",
        /// The filesystem has no fs-verity (ENOTTY).
        Unsupported = "unsupported",
        Unknown = "unknown",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PathStatus {
    pub path: String,
    pub fs_type: Option<String>,
    pub device: Option<String>,
    pub mount_point: Option<String>,
    pub verity: VeritySupport,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext4: Option<Ext4Super>,
    /// For a regular file: whether fs-verity is on for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_verity: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_error: Option<String>,
}

/// Probes `path`'s filesystem, and for a regular file whether verity is on and its digest.
pub fn path_status(path: &Path) -> Result<PathStatus, crate::error::PathError> {
    let abs = fs::canonicalize(path).map_err(|source| crate::error::PathError {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = fs::metadata(&abs).map_err(|source| crate::error::PathError {
        path: abs.clone(),
        source,
    })?;
    let mount = find_mount(&abs, meta.dev());
    let ext4 = mount
        .as_ref()
        .filter(|m| m.fs_type == "ext4")
        .and_then(|m| ext4_superblock(&m.source));
    let mut st = PathStatus {
        path: abs.display().to_string(),
        fs_type: mount.as_ref().map(|m| m.fs_type.clone()),
        device: mount.as_ref().map(|m| m.source.clone()),
        mount_point: mount.map(|m| m.mount_point),
        verity: VeritySupport::Unknown,
        detail: String::new(),
        ext4,
        file_verity: None,
        file_digest: None,
        file_error: None,
    };
    let file = match fs::File::open(&abs) {
        Ok(f) => f,
        Err(e) => {
            st.detail = format!("cannot open it to probe: {}", linux::map_open_error(e));
            return Ok(st);
        }
    };
    (st.verity, st.detail) = probe_filesystem(&file, &st);
    if meta.is_file() {
        file_verity(&file, &mut st);
    }
    Ok(st)
}

/// The probe: FS_IOC_ENABLE_VERITY with block size 0. Filesystems check their verity support
/// first (ENOTTY: none, EOPNOTSUPP: kernel or feature off), and the kernel rejects a block size
/// that is not a power of two (EINVAL) before it checks write access or the file type, so
/// nothing can be enabled and a directory or read-only fd is enough.
fn probe_filesystem(file: &fs::File, st: &PathStatus) -> (VeritySupport, String) {
    let fs_name = st.fs_type.as_deref().unwrap_or("?");
    let probe = linux::enable_verity(file.as_fd(), fsverity::HashAlgorithm::Sha256, 0, &[], None);
    match probe {
        Err(EnableError::InvalidArgument) => {
            let note = match &st.ext4 {
                Some(sb) if sb.block_size != 4096 => format!(
                    " (ext4 block size {}: kernels before 6.3 enable fs-verity only when it \
                     equals the page size, 4096)",
                    sb.block_size
                ),
                _ => String::new(),
            };
            (
                VeritySupport::Supported,
                format!("{fs_name}: fs-verity can be enabled here{note}"),
            )
        }
        Err(EnableError::NotEnabled) => feature_off(st, fs_name),
        Err(EnableError::FilesystemUnsupported) => (
            VeritySupport::Unsupported,
            format!(
                "{fs_name} does not support fs-verity at all (ENOTTY); ext4, f2fs and btrfs do"
            ),
        ),
        // Cannot happen with block size 0; say so rather than guess.
        Ok(()) => (
            VeritySupport::Unknown,
            "the probe unexpectedly succeeded".into(),
        ),
        Err(e) => (
            VeritySupport::Unknown,
            format!("{fs_name}: probe inconclusive: {e}"),
        ),
    }
}

/// EOPNOTSUPP: the kernel lacks fs-verity, or the filesystem's feature is off.
fn feature_off(st: &PathStatus, fs_name: &str) -> (VeritySupport, String) {
    let kernel = linux::kernel_support();
    if !kernel.builtin_signatures && kernel.ext4_verity != Some(true) {
        return (
            VeritySupport::KernelUnsupported,
            format!(
                "{fs_name}: the kernel lacks fs-verity (CONFIG_FS_VERITY), so it cannot be \
                 enabled here (EOPNOTSUPP)"
            ),
        );
    }
    let detail = if fs_name == "ext4" && st.ext4.as_ref().is_some_and(|s| !s.verity_feature) {
        format!(
            "ext4 on {} lacks the verity feature: `tune2fs -O verity {}` (unmounted) turns it on",
            st.device.as_deref().unwrap_or("?"),
            st.device.as_deref().unwrap_or("DEVICE")
        )
    } else {
        format!(
            "{fs_name}: fs-verity is not enabled on this filesystem (EOPNOTSUPP; for ext4/f2fs: \
             tune2fs -O verity / fsck.f2fs -O verity)"
        )
    };
    (VeritySupport::FeatureOff, detail)
}

fn file_verity(file: &fs::File, st: &mut PathStatus) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_from_crypto_config_and_modules() {
        let p256 = "name         : ecdsa-nist-p256\ndriver       : ecdsa-nist-p256-generic\n";
        let rsa = "name         : pkcs1pad(rsa-generic,sha256)\ndriver       : rsa-generic\n";
        let not_set = "CONFIG_CRYPTO_RSA=y\n# CONFIG_CRYPTO_ECDSA is not set\n";
        assert_eq!(ecdsa_from(Some(p256), None, None), Some(true));
        assert_eq!(
            ecdsa_from(Some(p256), Some(not_set), Some(false)),
            Some(true)
        );
        // 6.1: the config says it outright, or nothing registered and no module to load.
        assert_eq!(
            ecdsa_from(Some(rsa), Some(not_set), Some(true)),
            Some(false)
        );
        assert_eq!(ecdsa_from(Some(rsa), None, Some(false)), Some(false));
        // A module the crypto API loads on first use.
        assert_eq!(
            ecdsa_from(Some(rsa), Some("CONFIG_CRYPTO_ECDSA=m\n"), None),
            Some(true)
        );
        assert_eq!(ecdsa_from(Some(rsa), None, Some(true)), Some(true));
        // Nothing to go by.
        assert_eq!(ecdsa_from(Some(rsa), None, None), None);
        assert_eq!(ecdsa_from(None, None, Some(false)), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }

    #[test]
    fn longest_mount_point_of_the_device_wins() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    23 22 8:1 /srv /mnt/my\\040data rw - ext4 /dev/sda1 rw\n\
                    24 22 0:5 / /mnt/my\\040data/tmp rw - tmpfs tmpfs rw\n";
        let dev = rustix::fs::makedev(8, 1);
        let m = find_mount_in(info, Path::new("/mnt/my data/tmp/x"), dev).unwrap();
        assert_eq!(m.mount_point, "/mnt/my data");
        assert_eq!(m.source, "/dev/sda1");
        let m = find_mount_in(info, Path::new("/etc"), dev).unwrap();
        assert_eq!(m.mount_point, "/");
        assert_eq!(
            find_mount_in(info, Path::new("/etc"), rustix::fs::makedev(9, 9)),
            None
        );
    }

    #[test]
    fn finds_the_mount_of_the_root() {
        let meta = fs::metadata("/").unwrap();
        let m = find_mount(Path::new("/"), meta.dev()).expect("/ is in mountinfo");
        assert_eq!(m.mount_point, "/");
        assert!(!m.fs_type.is_empty());
    }

    #[test]
    fn ext4_superblock_fields() {
        let mut sb = [0u8; 1024];
        assert_eq!(parse_ext4_superblock(&sb), None);
        sb[0x38..0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x18] = 2;
        sb[0x64..0x68].copy_from_slice(&0x8000u32.to_le_bytes());
        assert_eq!(
            parse_ext4_superblock(&sb),
            Some(Ext4Super {
                block_size: 4096,
                verity_feature: true
            })
        );
    }

    #[test]
    fn kernel_verity_from_what_is_visible() {
        let s = |builtin_signatures, ext4_verity| linux::KernelSupport {
            builtin_signatures,
            keyring: None,
            require_signatures: None,
            ext4_verity,
        };
        assert_eq!(fs_verity_compiled_in(&s(true, None), None), Some(true));
        assert_eq!(
            fs_verity_compiled_in(&s(false, Some(false)), None),
            Some(false)
        );
        assert_eq!(fs_verity_compiled_in(&s(false, None), None), None);
        let cfg = "# x\nCONFIG_FS_VERITY=y\n";
        assert_eq!(
            fs_verity_compiled_in(&s(false, Some(false)), Some(cfg)),
            Some(true)
        );
        assert_eq!(
            fs_verity_compiled_in(&s(false, None), Some("# CONFIG_FS_VERITY is not set")),
            Some(false)
        );
    }

    #[test]
    fn tmpfs_is_unsupported() {
        let st = path_status(Path::new("/dev/shm")).unwrap();
        assert_eq!(st.fs_type.as_deref(), Some("tmpfs"));
        assert_eq!(st.verity, VeritySupport::Unsupported, "{}", st.detail);
    }
}
