//! `audit --lockdown`: every file on the system that IPE would refuse to execute once the
//! lockdown policy is active, so that an administrator sees them before `lockdown apply`.
//!
//! What counts as executable is decided by content, as `sign --executables` does (ELF, which
//! covers programs, shared libraries and the loader, and `#!` scripts), over every installed
//! file and over the files no package owns in the usual program and library directories
//! (something planted there, or installed by hand). Each is then judged the way it can be:
//! - on the running system with fs-verity in the kernel (`measured`): the kernel opened the file,
//!   so a verity file with a stored signature passed fs-verity's signature check; anything else
//!   is refused;
//! - under another `--root`, or without kernel support (`offline`): verity cannot be asked, so a
//!   file passes when its package carries a signature for it and its content, hashed here, is
//!   what that signature (checked against the trusted certificates) signs. It still needs
//!   `enable` at install; that is what the kernel will check.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use fsverity::linux::{self, OpenError};
use serde::Serialize;
use verity_package::select::ContentKind;

use crate::check::{self, ContentCheck};
use crate::installed::InstalledSystem;
use crate::root::ResolveError;

/// Where programs and libraries live; walked for files no package owns.
pub const EXECUTABLE_DIRS: &[&str] = &[
    "usr/bin",
    "usr/sbin",
    "usr/lib",
    "usr/lib64",
    "usr/lib32",
    "usr/libexec",
    "usr/local/bin",
    "usr/local/sbin",
    "usr/local/lib",
    "bin",
    "sbin",
    "lib",
    "lib64",
    "lib32",
];

/// Bound on the files walked for unowned executables: far above a real system.
const MAX_WALKED: usize = 2_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct RefusedFile {
    pub path: String,
    /// `ELF` or `script`.
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct PackageRefusals {
    pub package: String,
    pub files: Vec<RefusedFile>,
}

#[derive(Debug, Serialize)]
pub struct LockdownAudit {
    /// `measured` (the kernel was asked about each file) or `offline` (package signature and
    /// content checked here).
    pub mode: &'static str,
    /// What a file had to show to pass, in words.
    pub checked: String,
    /// Executable files examined (owned and unowned).
    pub executables: usize,
    pub refused: usize,
    pub packages: Vec<PackageRefusals>,
    /// Executable files in [`EXECUTABLE_DIRS`] that no package owns.
    pub unowned: Vec<RefusedFile>,
}

fn kind_name(k: ContentKind) -> &'static str {
    match k {
        ContentKind::Elf => "ELF",
        _ => "script",
    }
}

fn content_kind(file: &mut File) -> ContentKind {
    let mut first = [0u8; 4];
    let mut n = 0;
    while n < first.len() {
        match file.read(&mut first[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    ContentKind::of(&first[..n])
}

/// Measured mode: allowed when verity is on with a stored signature (the open succeeded, so
/// fs-verity checked it against `.fs-verity`). `None` = allowed.
fn measured_verdict(file: &File, package_sig: bool) -> Option<String> {
    match linux::is_verity(file.as_fd()) {
        Ok(true) => match linux::read_signature(file.as_fd()) {
            Ok(Some(_)) => None,
            Ok(None) => Some("verity file without a signature".into()),
            Err(e) => Some(format!("cannot read its verity signature: {e}")),
        },
        Ok(false) if package_sig => Some("fs-verity is not enabled (rpm-verity enable)".into()),
        Ok(false) => Some("not signed: no fs-verity signature".into()),
        Err(e) => Some(format!("cannot tell whether verity is on: {e}")),
    }
}

fn open_failure(e: ResolveError) -> String {
    match e {
        ResolveError::Verity(OpenError::CertNotInKeyring) => {
            "its signer's certificate is not in .fs-verity".into()
        }
        e => format!("cannot open: {e}"),
    }
}

/// The same path on a merged-/usr system: `/bin/x` is `/usr/bin/x`.
fn usr_alias(path: &str) -> Option<String> {
    for d in ["bin/", "sbin/", "lib/", "lib64/", "lib32/"] {
        if let Some(rest) = path.strip_prefix(&format!("/usr/{d}")) {
            return Some(format!("/{d}{rest}"));
        }
        if let Some(rest) = path.strip_prefix(&format!("/{d}")) {
            return Some(format!("/usr/{d}{rest}"));
        }
    }
    None
}

pub fn audit(sys: &InstalledSystem, kernel_fs_verity: bool) -> LockdownAudit {
    let measured = sys.root.is_host_root() && kernel_fs_verity;
    let mut executables = 0;
    let mut packages = Vec::new();
    let mut owned: HashSet<String> = HashSet::new();
    for p in &sys.packages {
        let mut files = Vec::new();
        for f in &p.files {
            let path = f.path_lossy();
            owned.insert(path.clone());
            if !f.is_regular() || f.is_ghost() {
                continue;
            }
            let (kind, reason) = match sys.root.open_file(&f.path) {
                Ok(mut o) => {
                    let kind = content_kind(&mut o.file);
                    if !kind.is_executable() {
                        continue;
                    }
                    let sig = f.signature.as_deref();
                    let reason = if measured {
                        measured_verdict(&o.file, sig.is_some())
                    } else {
                        offline_verdict(sys, &o.file, o.stat.st_size as u64, p.algorithm, sig)
                    };
                    (kind, reason)
                }
                // Missing files cannot be executed; `audit` reports them.
                Err(ResolveError::Missing) => continue,
                // The content cannot be read: list it only if it looks like a program.
                Err(e) if f.is_executable() => (ContentKind::Elf, Some(open_failure(e))),
                Err(_) => continue,
            };
            executables += 1;
            if let Some(reason) = reason {
                files.push(RefusedFile {
                    path,
                    kind: kind_name(kind),
                    reason,
                });
            }
        }
        if !files.is_empty() {
            packages.push(PackageRefusals {
                package: p.nevra.clone(),
                files,
            });
        }
    }
    let (walked, unowned) = unowned_executables(sys, &owned, measured);
    executables += walked;
    let refused = packages.iter().map(|p| p.files.len()).sum::<usize>() + unowned.len();
    LockdownAudit {
        mode: if measured { "measured" } else { "offline" },
        checked: if measured {
            "the kernel: fs-verity on, with a built-in signature fs-verity accepted".into()
        } else {
            "offline: the package carries a signature for the file and its content matches it \
             (trusted certificates from --cert or /etc/rpm-verity/certs); verity itself is not \
             checked, and unowned files cannot pass"
                .into()
        },
        executables,
        refused,
        packages,
        unowned,
    }
}

fn offline_verdict(
    sys: &InstalledSystem,
    file: &File,
    size: u64,
    alg: fsverity::HashAlgorithm,
    sig: Option<&[u8]>,
) -> Option<String> {
    let Some(sig) = sig else {
        return Some("not signed: the package has no fs-verity signature for it".into());
    };
    let digest = match check::userspace_digest(file, size, alg) {
        Ok(d) => d,
        Err(e) => return Some(format!("cannot read: {e}")),
    };
    match check::check_digest(sig, &digest, &sys.trusted.certs) {
        ContentCheck::Matches(_) => None,
        ContentCheck::Differs => Some("modified: does not match the package's signature".into()),
        ContentCheck::Unverifiable(why) => Some(format!("signature not checked: {why}")),
    }
}

/// Executable files under [`EXECUTABLE_DIRS`] owned by no package (symlinked directories are
/// not followed: on a merged-/usr system `/bin` is `/usr/bin`, walked once).
fn unowned_executables(
    sys: &InstalledSystem,
    owned: &HashSet<String>,
    measured: bool,
) -> (usize, Vec<RefusedFile>) {
    let root = sys.root.path();
    let mut stack: Vec<String> = EXECUTABLE_DIRS
        .iter()
        .filter(|d| std::fs::symlink_metadata(root.join(d)).is_ok_and(|m| m.file_type().is_dir()))
        .map(|d| format!("/{d}"))
        .collect();
    let mut seen = 0usize;
    let mut examined = 0usize;
    let mut out = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(join(root, &dir)) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_WALKED {
                return (examined, out);
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{dir}/{name}");
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            if !ft.is_file()
                || owned.contains(&path)
                || usr_alias(&path).is_some_and(|a| owned.contains(&a))
            {
                continue;
            }
            let Ok(mut o) = sys.root.open_file(path.as_bytes()) else {
                continue;
            };
            let kind = content_kind(&mut o.file);
            if !kind.is_executable() {
                continue;
            }
            examined += 1;
            let reason = if measured {
                measured_verdict(&o.file, false)
            } else {
                Some("no package owns it, so no signature is known for it".into())
            };
            if let Some(reason) = reason {
                out.push(RefusedFile {
                    path,
                    kind: kind_name(kind),
                    reason,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    (examined, out)
}

fn join(root: &Path, abs: &str) -> std::path::PathBuf {
    root.join(abs.trim_start_matches('/'))
}
