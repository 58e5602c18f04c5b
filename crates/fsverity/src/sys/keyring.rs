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

/// The keyctl commands whose arguments are all integers: no memory is shared with the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyctlInt {
    /// KEYCTL_SETPERM (key, permission mask).
    SetPerm = 5,
    /// KEYCTL_LINK (key, keyring).
    Link = 8,
    /// KEYCTL_UNLINK (key, keyring).
    Unlink = 9,
}

/// The per-process keyring (`KEY_SPEC_PROCESS_KEYRING`), created on first use and gone with
/// the process.
pub(crate) const PROCESS_KEYRING: KeySerial = -2;

/// keyctl(2) with two integer arguments.
pub(crate) fn keyctl_int(cmd: KeyctlInt, a: i64, b: i64) -> Result<i64, Errno> {
    // SAFETY: these commands take only integers (serials, a permission mask); the kernel
    // dereferences no pointer of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            cmd as libc::c_long,
            a as libc::c_long,
            b as libc::c_long,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// `struct keyctl_pkey_params` (include/uapi/linux/keyctl.h).
#[repr(C)]
struct PkeyParams {
    key_id: i32,
    in_len: u32,
    /// `out_len` or `in2_len`: the signature's length for KEYCTL_PKEY_VERIFY.
    in2_len: u32,
    spare: [u32; 7],
}

const KEYCTL_PKEY_VERIFY: libc::c_long = 28;

/// keyctl(KEYCTL_PKEY_VERIFY): key `id` checks `sig` over the message digest `data`, with the
/// encoding and hash named in `info` (`enc=pkcs1 hash=sha256`). Ok when it verifies.
pub(crate) fn pkey_verify(
    id: KeySerial,
    info: &CStr,
    data: &[u8],
    sig: &[u8],
) -> Result<(), Errno> {
    let (Ok(in_len), Ok(in2_len)) = (u32::try_from(data.len()), u32::try_from(sig.len())) else {
        return Err(Errno::INVAL);
    };
    let params = PkeyParams {
        key_id: id,
        in_len,
        in2_len,
        spare: [0; 7],
    };
    // SAFETY: the kernel reads the params struct, the NUL-terminated info string, `in_len`
    // bytes of `data` and `in2_len` bytes of `sig`; all are borrowed across the call and
    // nothing is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_PKEY_VERIFY,
            &params as *const PkeyParams,
            info.as_ptr(),
            data.as_ptr(),
            sig.as_ptr(),
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
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
