//! The `.fs-verity` keyring: the certificates built-in signatures are checked against.

use std::ffi::CStr;
use std::fs;
use std::io;

use std::ffi::CString;

use super::{KeyringError, RestrictError};
use crate::sys::keyring::{self as sys, KeySerial, KeyctlInt, KeyctlRead};

/// Name of the keyring holding the certificates built-in signatures are checked against.
pub const KEYRING_NAME: &str = ".fs-verity";

/// Bound on the keyring listing: far above any real `.fs-verity` keyring.
const MAX_KEYS: usize = 65536;

/// One key linked into the keyring, as KEYCTL_DESCRIBE reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringKey {
    pub id: KeySerial,
    /// `asymmetric` for certificates.
    pub key_type: String,
    pub uid: u32,
    pub gid: u32,
    pub perm: u32,
    /// For X.509 certs the kernel derives it: `<subject CN or O>: <subject key id hex>`.
    pub description: String,
}

/// Find the `.fs-verity` keyring's serial in /proc/keys. That is how keyutils resolves
/// `%keyring:.fs-verity` too: the keyring is not linked into any process keyring, so
/// request_key/KEYCTL_SEARCH cannot find it.
pub fn fs_verity_keyring() -> Result<KeySerial, KeyringError> {
    find_keyring(KEYRING_NAME)
}

/// Any kernel keyring by name (`.platform`, `.machine`, `.builtin_trusted_keys`...), found in
/// /proc/keys the way [`fs_verity_keyring`] is; [`KeyringError::NoKeyring`] when it is not
/// listed (absent from this kernel, or not viewable by the caller).
pub fn find_keyring(name: &str) -> Result<KeySerial, KeyringError> {
    let text = match fs::read_to_string("/proc/keys") {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeyringError::Unexpected {
                what: "/proc/keys",
                detail: "missing (kernel without CONFIG_KEYS, or /proc not mounted)".into(),
            })
        }
        Err(e) => {
            return Err(KeyringError::Other {
                op: "read /proc/keys",
                source: e,
            })
        }
    };
    find_keyring_in_proc_keys(&text, name).ok_or(KeyringError::NoKeyring)
}

/// Parse /proc/keys lines (`id flags usage timeout perm uid gid type description: summary`;
/// the type column is cut to 9 characters) and return the serial of keyring `name`, preferring
/// one owned by root.
fn find_keyring_in_proc_keys(text: &str, name: &str) -> Option<KeySerial> {
    let mut found: Option<(KeySerial, bool)> = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(id), Some(_flags), Some(_usage), Some(_timeout), Some(_perm)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let (Some(uid), Some(_gid), Some(ktype)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if ktype != "keyring" {
            continue;
        }
        let rest: Vec<&str> = fields.collect();
        let desc = rest.join(" ");
        let desc_name = desc.split(':').next().unwrap_or("");
        if desc_name != name {
            continue;
        }
        let Ok(id) = u32::from_str_radix(id, 16) else {
            continue;
        };
        let root = uid == "0";
        if found.is_none_or(|(_, was_root)| root && !was_root) {
            found = Some((id as KeySerial, root));
        }
    }
    found.map(|(id, _)| id)
}

/// Call a size-returning keyctl until the buffer is big enough, bounded by `limit`.
fn keyctl_alloc(
    cmd: KeyctlRead,
    id: KeySerial,
    op: &'static str,
    limit: usize,
) -> Result<Vec<u8>, KeyringError> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = sys::keyctl_read(cmd, id, &mut buf)
            .map_err(|e| KeyringError::from_keyctl_errno(op, e.raw_os_error()))?;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if n > limit {
            return Err(KeyringError::Unexpected {
                what: op,
                detail: format!("{n} bytes, more than the {limit}-byte bound"),
            });
        }
        buf.resize(n, 0);
    }
}

/// Add a DER X.509 certificate to the `.fs-verity` keyring (what `keyctl padd asymmetric ''
/// %keyring:.fs-verity < cert.der` does). Returns the key's serial; adding the same cert twice
/// returns the same key.
pub fn add_certificate(der: &[u8]) -> Result<KeySerial, KeyringError> {
    add_certificate_to(fs_verity_keyring()?, der)
}

/// [`add_certificate`] into a given keyring.
pub fn add_certificate_to(keyring: KeySerial, der: &[u8]) -> Result<KeySerial, KeyringError> {
    if der.starts_with(b"-----BEGIN") {
        return Err(KeyringError::CertificateNotDer);
    }
    // The kernel caps key payloads at 1 MiB; a cert is a few KiB.
    if der.is_empty() || der.len() > 1 << 20 {
        return Err(KeyringError::BadCertificate);
    }
    // An empty description makes the asymmetric key type derive one from the certificate.
    // The key is made in this process's keyring, where we possess it, so that we may let
    // every root process search it (KEYCTL_PKEY_VERIFY needs that: a key added straight into
    // `.fs-verity` is usable by the kernel but by no process, root included), then linked
    // into the target keyring (whose restriction, if any, applies to the link as to an add).
    let key = sys::add_key(c"asymmetric", c"", der, sys::PROCESS_KEYRING)
        .map_err(|e| KeyringError::from_add_key_errno(e.raw_os_error()))?;
    let key_l = i64::from(key);
    let _ = sys::keyctl_int(KeyctlInt::SetPerm, key_l, i64::from(KEY_PERM_SEARCHABLE));
    let linked = sys::keyctl_int(KeyctlInt::Link, key_l, i64::from(keyring));
    let _ = sys::keyctl_int(KeyctlInt::Unlink, key_l, i64::from(sys::PROCESS_KEYRING));
    linked.map_err(|e| KeyringError::from_add_key_errno(e.raw_os_error()))?;
    Ok(key)
}

/// Possessor: everything; owner (root): view, read and search. The kernel's default for a new
/// key gives the owner only view.
const KEY_PERM_SEARCHABLE: u32 = 0x3f0b_0000;

/// What may still be linked into a keyring once it is restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// Nothing: no key can be added any more (`keyctl restrict_keyring KEYRING`).
    Closed,
    /// Only certificates signed by a key in the builtin or secondary trusted keyrings
    /// (`asymmetric builtin_and_secondary_trusted`; the secondary one includes `.machine`).
    BuiltinAndSecondary,
}

impl Restriction {
    fn strings(self) -> (Option<&'static CStr>, Option<&'static CStr>) {
        match self {
            Restriction::Closed => (None, None),
            Restriction::BuiltinAndSecondary => {
                (Some(c"asymmetric"), Some(c"builtin_and_secondary_trusted"))
            }
        }
    }
}

/// Restricts `keyring` for the rest of the boot: what keeps root from adding a certificate of
/// its own to `.fs-verity` and signing its own files. Once per keyring; a second call gets
/// [`RestrictError::AlreadyRestricted`] whatever the restriction asked for.
pub fn restrict_keyring(keyring: KeySerial, restriction: Restriction) -> Result<(), RestrictError> {
    let (key_type, what) = restriction.strings();
    sys::keyctl_restrict(keyring, key_type, what).map_err(|e| {
        RestrictError::from_errno(
            e.raw_os_error(),
            &what.map_or("closed".into(), |w| w.to_string_lossy().into_owned()),
        )
    })
}

/// Whether `keyring` carries a restriction, asked without changing it: the kernel checks for
/// an existing restriction (EEXIST) before it checks the new one for a cycle (EDEADLK), and a
/// restriction to "keys signed by this very keyring" is always a cycle, so it is never
/// installed. The kernel offers no read-back of a restriction otherwise.
pub fn is_restricted(keyring: KeySerial) -> Result<bool, RestrictError> {
    let own =
        CString::new(format!("key_or_keyring:{keyring}")).map_err(|_| RestrictError::Cycle)?;
    match sys::keyctl_restrict(keyring, Some(c"asymmetric"), Some(&own)) {
        Err(e) if e.raw_os_error() == libc::EEXIST => Ok(true),
        Err(e) if e.raw_os_error() == libc::EDEADLK => Ok(false),
        Err(e) => Err(RestrictError::from_errno(
            e.raw_os_error(),
            &own.to_string_lossy(),
        )),
        // Cannot happen (the cycle check refuses it); if a kernel ever accepted it, the
        // keyring now only takes keys signed by itself, which is restricted.
        Ok(()) => Ok(true),
    }
}

/// The keys linked into the `.fs-verity` keyring.
pub fn list_keyring() -> Result<Vec<KeyringKey>, KeyringError> {
    list_keyring_of(fs_verity_keyring()?)
}

/// [`list_keyring`] for a given keyring.
pub fn list_keyring_of(keyring: KeySerial) -> Result<Vec<KeyringKey>, KeyringError> {
    let raw = keyctl_alloc(KeyctlRead::Read, keyring, "KEYCTL_READ", MAX_KEYS * 4)?;
    let mut keys = Vec::new();
    for chunk in raw.chunks_exact(4) {
        let id = KeySerial::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        match describe_key(id) {
            Ok(k) => keys.push(k),
            // Unlinked or revoked between the two calls, or not viewable: skip it.
            Err(KeyringError::NoKeyring) | Err(KeyringError::KeyringPermission) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(keys)
}

/// Whether key `id` verifies `sig` over `message_digest` (KEYCTL_PKEY_VERIFY), with the
/// kernel's names for the encoding (`pkcs1`, `x962`) and hash (`sha256`). This lets user space
/// check a signature against a certificate that exists only in the kernel keyring (asymmetric
/// keys cannot be read back). `Ok(false)`: the key rejects the signature (wrong key or data).
pub fn pkey_verify(
    id: KeySerial,
    encoding: &str,
    hash: &str,
    message_digest: &[u8],
    sig: &[u8],
) -> Result<bool, KeyringError> {
    let info = std::ffi::CString::new(format!("enc={encoding} hash={hash}")).map_err(|_| {
        KeyringError::Unexpected {
            what: "KEYCTL_PKEY_VERIFY",
            detail: "NUL in encoding or hash name".into(),
        }
    })?;
    match sys::pkey_verify(id, &info, message_digest, sig) {
        Ok(()) => Ok(true),
        // Bad signature for this key and data; EBADMSG: not a signature of this key's kind.
        Err(e) if e.raw_os_error() == libc::EKEYREJECTED || e.raw_os_error() == libc::EBADMSG => {
            Ok(false)
        }
        Err(e) => Err(KeyringError::from_keyctl_errno(
            "KEYCTL_PKEY_VERIFY",
            e.raw_os_error(),
        )),
    }
}

/// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`./// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`.
pub fn describe_key(id: KeySerial) -> Result<KeyringKey, KeyringError> {
    let raw = keyctl_alloc(KeyctlRead::Describe, id, "KEYCTL_DESCRIBE", 64 * 1024)?;
    parse_description(id, &raw)
}

fn parse_description(id: KeySerial, raw: &[u8]) -> Result<KeyringKey, KeyringError> {
    let bad = |detail: &str| KeyringError::Unexpected {
        what: "KEYCTL_DESCRIBE",
        detail: detail.to_string(),
    };
    let text = raw.strip_suffix(b"\0").unwrap_or(raw);
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.splitn(5, ';');
    let (Some(t), Some(uid), Some(gid), Some(perm), Some(desc)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad(text));
    };
    Ok(KeyringKey {
        id,
        key_type: t.to_string(),
        uid: uid.parse().map_err(|_| bad(text))?,
        gid: gid.parse().map_err(|_| bad(text))?,
        perm: u32::from_str_radix(perm, 16).map_err(|_| bad(text))?,
        description: desc.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keyring_in_proc_keys() {
        let text = "\
0b2ee0fa I--Q---     1 perm 1f3f0000     0 65534 keyring   _uid_ses.0: 1
1e35e7b2 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: empty
2c0d1f3a I------     1 perm 3f010000     0     0 asymmetri fsverity test: 1a2b3c: X509.rsa 1a2b3c []
3e0e7c61 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity-other: 1
garbage
";
        assert_eq!(
            find_keyring_in_proc_keys(text, ".fs-verity"),
            Some(0x1e35e7b2)
        );
        assert_eq!(find_keyring_in_proc_keys(text, ".ima"), None);
        // A non-root keyring of the same name loses against root's.
        let text2 = "\
00000010 I------     1 perm 1f0b0000  1000  1000 keyring   .fs-verity: 1
00000020 I------     1 perm 1f0b0000     0     0 keyring   .fs-verity: 1
";
        assert_eq!(find_keyring_in_proc_keys(text2, ".fs-verity"), Some(0x20));
    }

    #[test]
    fn parses_key_description() {
        let k = parse_description(7, b"asymmetric;0;0;3f010000;fsverity test: 1a2b;c\0").unwrap();
        assert_eq!(k.key_type, "asymmetric");
        assert_eq!(k.perm, 0x3f01_0000);
        assert_eq!(k.description, "fsverity test: 1a2b;c");
        assert!(parse_description(7, b"asymmetric;0;0").is_err());
        assert!(parse_description(7, b"a;x;0;0;d").is_err());
    }

    #[test]
    fn pem_certificate_is_refused_before_the_syscall() {
        assert!(matches!(
            add_certificate_to(0, b"-----BEGIN CERTIFICATE-----\n"),
            Err(KeyringError::CertificateNotDer)
        ));
        assert!(matches!(
            add_certificate_to(0, b""),
            Err(KeyringError::BadCertificate)
        ));
    }
}
