//! add_key(2) and keyctl(2), which libc only offers as raw `syscall`s.

use std::ffi::CStr;
use std::io;

use rustix::io::Errno;

/// A key serial number (`key_serial_t`).
pub type KeySerial = i32;

/// The keyctl commands that fill a caller's buffer. Only these are offered, because the
/// soundness argument (the kernel writes at most `buf.len()` bytes) holds for them and not for
/// keyctl in general.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyctlRead {
    /// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`.
    Describe = 6,
    /// KEYCTL_READ on a keyring: the serials of its keys, native-endian.
    Read = 11,
}

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// add_key(2) into `keyring`; the new (or, for an identical payload, existing) key's serial.
pub(crate) fn add_key(
    key_type: &CStr,
    description: &CStr,
    payload: &[u8],
    keyring: KeySerial,
) -> Result<KeySerial, Errno> {
    // SAFETY: add_key reads two NUL-terminated strings and `payload.len()` bytes of payload,
    // all of which are borrowed across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            key_type.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            keyring as libc::c_long,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as KeySerial)
    }
}

/// Runs `cmd` on key `id` into `buf`; the full size of the data, which may exceed the buffer
/// (then only `buf.len()` bytes were written and the caller retries with more room).
pub(crate) fn keyctl_read(cmd: KeyctlRead, id: KeySerial, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: KEYCTL_READ / KEYCTL_DESCRIBE write at most `buf.len()` bytes into `buf`, which
    // is exclusively borrowed across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            cmd as libc::c_long,
            id as libc::c_long,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as usize)
    }
}

/// KEYCTL_RESTRICT_KEYRING (29): from now on, only keys `restriction` of `key_type` allows may
/// be linked into `keyring`; both `None` closes it to every new key. The kernel installs a
/// restriction once per keyring lifetime (EEXIST after that).
pub(crate) fn keyctl_restrict(
    keyring: KeySerial,
    key_type: Option<&CStr>,
    restriction: Option<&CStr>,
) -> Result<(), Errno> {
    const KEYCTL_RESTRICT_KEYRING: libc::c_long = 29;
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: the kernel only reads the two NUL-terminated strings (or takes NULL for absent
    // ones), which are borrowed across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_RESTRICT_KEYRING,
            keyring as libc::c_long,
            ptr(key_type),
            ptr(restriction),
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}
