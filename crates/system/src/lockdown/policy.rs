//! The IPE policy that lets only fs-verity-signed files execute: its text, its signature, and
//! reading a signed policy file back with the checks the kernel would make, so that a bad file
//! is refused before anything is written to securityfs.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fsverity::FileDigest;
use sha2::{Digest, Sha256};
use verity_signing::{LocalSigner, Pkcs7Signature, SignerId};

/// Largest policy file the kernel can take: `new_policy` copies the whole write into one
/// kmalloc'ed buffer with a terminating NUL, and kmalloc stops at 4 MiB (x86-64, 4 KiB pages);
/// above that the write fails with ENOMEM.
pub const MAX_POLICY_FILE_LEN: usize = (4 << 20) - 1;

/// The policy name `lockdown policy` uses unless told otherwise.
pub const DEFAULT_POLICY_NAME: &str = "rpm_verity";

/// `policy_version=MAJOR.MINOR.REVISION`, each part a u16, compared in that order: the kernel
/// only lets a policy replace or follow one of a lower version within a boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyVersion {
    pub major: u16,
    pub minor: u16,
    pub revision: u16,
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

impl serde::Serialize for PolicyVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for PolicyVersion {
    type Err = String;

    /// As the kernel parses it: exactly three dot-separated decimal numbers, each 0-65535.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("policy version {s:?} is not MAJOR.MINOR.REVISION (each 0-65535)");
        let parts: Vec<&str> = s.split('.').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(bad());
        };
        let num = |p: &str| -> Result<u16, String> {
            let p = p.strip_prefix('+').unwrap_or(p);
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(PolicyVersion {
            major: num(a)?,
            minor: num(b)?,
            revision: num(c)?,
        })
    }
}

/// Checks a policy name: the kernel makes it a directory under `ipe/policies/`, so it must be a
/// single path component; this tool also keeps it to characters that need no quoting.
pub fn check_policy_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "policy name {name:?} must be 1-255 characters of A-Z a-z 0-9 _ - . (and not . or ..)"
        ))
    }
}

/// What the generated policy allows besides files with a valid fs-verity built-in signature.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub name: String,
    pub version: PolicyVersion,
    /// `boot_verified=TRUE`: files from the initramfs, until switch_root.
    pub allow_initramfs: bool,
    /// Verity files with exactly these digests, signed or not.
    pub allow_digests: Vec<FileDigest>,
}

/// The policy text: every operation but EXECUTE is left alone (`DEFAULT action=ALLOW`), and
/// execution (exec, `mmap`/`mprotect` with PROT_EXEC: binaries, loaders, shared libraries) is
/// denied unless a rule allows it.
pub fn policy_text(spec: &PolicySpec) -> Result<String, String> {
    check_policy_name(&spec.name)?;
    let mut text = format!(
        "policy_name={} policy_version={}\n\
         DEFAULT action=ALLOW\n\
         DEFAULT op=EXECUTE action=DENY\n",
        spec.name, spec.version
    );
    if spec.allow_initramfs {
        text.push_str("op=EXECUTE boot_verified=TRUE action=ALLOW\n");
    }
    text.push_str("op=EXECUTE fsverity_signature=TRUE action=ALLOW\n");
    for d in &spec.allow_digests {
        text.push_str(&format!(
            "op=EXECUTE fsverity_digest={}:{} action=ALLOW\n",
            d.algorithm().name(),
            d.to_hex()
        ));
    }
    Ok(text)
}

/// Signs `text` the way the kernel reads a policy: an attached PKCS#7 SignedData, no signed
/// attributes, no S/MIME capabilities (`openssl smime -sign -nodetach -noattr -nosmimecap
/// -binary`).
pub fn sign_policy(signer: &LocalSigner, text: &str) -> Result<Vec<u8>, PolicyFileError> {
    let der = signer
        .sign_attached(text.as_bytes())
        .map_err(|e| PolicyFileError::Sign(e.to_string()))?;
    if der.len() > MAX_POLICY_FILE_LEN {
        return Err(PolicyFileError::TooLarge {
            path: PathBuf::from("(new policy)"),
            len: der.len() as u64,
        });
    }
    Ok(der)
}

/// The header line of a policy text, read as the kernel reads it: lines split at `\n` or `\r`,
/// `#` starts a comment, trailing blanks dropped, the first non-empty line is the header, its
/// tokens (split at spaces and tabs) exactly `policy_name=NAME policy_version=VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyHeader {
    pub name: String,
    pub version: PolicyVersion,
}

pub fn parse_header(text: &[u8]) -> Result<PolicyHeader, String> {
    if text.is_empty() {
        return Err("the policy text is empty".into());
    }
    if text.contains(&0) {
        return Err("the policy text contains a NUL byte".into());
    }
    let text = std::str::from_utf8(text).map_err(|_| "the policy text is not UTF-8".to_string())?;
    let line = text
        .split(['\n', '\r'])
        .map(|l| l.split('#').next().unwrap_or("").trim_end())
        .find(|l| !l.is_empty())
        .ok_or("the policy text has no header line (policy_name=... policy_version=...)")?;
    let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
    let bad = || format!("the header line {line:?} is not `policy_name=NAME policy_version=A.B.C`");
    let [n, v] = tokens.as_slice() else {
        return Err(bad());
    };
    let name = n.strip_prefix("policy_name=").ok_or_else(bad)?;
    let version = v.strip_prefix("policy_version=").ok_or_else(bad)?;
    check_policy_name(name)?;
    Ok(PolicyHeader {
        name: name.to_string(),
        version: version.parse()?,
    })
}

/// A signed policy file, checked as far as possible without the kernel.
#[derive(Clone, Debug)]
pub struct PolicyFile {
    pub path: PathBuf,
    /// The file as it goes to `new_policy`.
    pub der: Vec<u8>,
    pub text: String,
    pub header: PolicyHeader,
    pub signer: SignerId,
    /// sha256 of the file, as `lockdown status` reports the deployed policy.
    pub sha256: String,
}

/// Why a policy file is refused before it reaches the kernel. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("cannot read policy file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "policy file {path} is {len} bytes, more than the {MAX_POLICY_FILE_LEN} bytes the \
         kernel accepts"
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error(
        "{path} is not a signed IPE policy ({reason}); make one with `rpm-verity lockdown policy`"
    )]
    NotSigned { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadText { path: PathBuf, reason: String },
    #[error("cannot sign the policy: {0}")]
    Sign(String),
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and checks a signed policy file: size, PKCS#7 structure (one signer, content
/// attached, no signed attributes, DER), and the header of the text inside it.
pub fn read_policy_file(path: &Path) -> Result<PolicyFile, PolicyFileError> {
    let read_err = |error| PolicyFileError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut der = Vec::new();
    file.take(MAX_POLICY_FILE_LEN as u64 + 1)
        .read_to_end(&mut der)
        .map_err(read_err)?;
    if der.len() > MAX_POLICY_FILE_LEN {
        let len = std::fs::metadata(path).map_or(der.len() as u64, |m| m.len());
        return Err(PolicyFileError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    parse_policy(path, der)
}

/// [`read_policy_file`] for bytes already in memory (`path` names them in errors).
pub fn parse_policy(path: &Path, der: Vec<u8>) -> Result<PolicyFile, PolicyFileError> {
    let (sig, content) =
        Pkcs7Signature::from_der_attached(&der).map_err(|e| PolicyFileError::NotSigned {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let header = parse_header(&content).map_err(|reason| PolicyFileError::BadText {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(PolicyFile {
        path: path.to_path_buf(),
        sha256: sha256_hex(&der),
        text: String::from_utf8_lossy(&content).into_owned(),
        header,
        signer: sig.signer().clone(),
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_the_kernel_does() {
        let v: PolicyVersion = "1.2.3".parse().unwrap();
        assert_eq!((v.major, v.minor, v.revision), (1, 2, 3));
        assert_eq!(v.to_string(), "1.2.3");
        for bad in ["1.2", "1.2.3.4", "65536.0.0", "a.b.c", "1..3", "-1.0.0", ""] {
            assert!(bad.parse::<PolicyVersion>().is_err(), "{bad}");
        }
        assert!("0.0.2".parse::<PolicyVersion>().unwrap() > "0.0.1".parse().unwrap());
        assert!("1.0.0".parse::<PolicyVersion>().unwrap() > "0.65535.65535".parse().unwrap());
    }

    #[test]
    fn header_is_the_first_non_comment_line() {
        let h = parse_header(
            b"# comment\n\n  \npolicy_name=x\tpolicy_version=0.0.1 # c\nDEFAULT action=ALLOW\n",
        )
        .unwrap();
        assert_eq!(h.name, "x");
        assert_eq!(h.version.to_string(), "0.0.1");
        for bad in [
            &b""[..],
            b"policy_version=0.0.1 policy_name=x\n",
            b"policy_name=x\n",
            b"policy_name=a/b policy_version=0.0.1\n",
            b"policy_name=x policy_version=0.1\n",
            b"policy_name=x policy_version=0.0.1 extra\n",
            b"# only a comment\n",
        ] {
            assert!(
                parse_header(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn policy_text_has_the_rules_asked_for() {
        let digest = FileDigest::new(fsverity::HashAlgorithm::Sha256, &[0xab; 32]).unwrap();
        let spec = PolicySpec {
            name: "n".into(),
            version: "0.0.7".parse().unwrap(),
            allow_initramfs: true,
            allow_digests: vec![digest],
        };
        let text = policy_text(&spec).unwrap();
        assert_eq!(
            text,
            format!(
                "policy_name=n policy_version=0.0.7\nDEFAULT action=ALLOW\n\
                 DEFAULT op=EXECUTE action=DENY\nop=EXECUTE boot_verified=TRUE action=ALLOW\n\
                 op=EXECUTE fsverity_signature=TRUE action=ALLOW\n\
                 op=EXECUTE fsverity_digest=sha256:{} action=ALLOW\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(parse_header(text.as_bytes()).unwrap().name, "n");
        let without = PolicySpec {
            allow_initramfs: false,
            allow_digests: vec![],
            ..spec
        };
        let text = policy_text(&without).unwrap();
        assert!(!text.contains("boot_verified") && !text.contains("fsverity_digest"));
    }
}
