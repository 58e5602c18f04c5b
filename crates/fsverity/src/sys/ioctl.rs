//! The fs-verity ioctls (include/uapi/linux/fsverity.h, fs.h).
//!
//! Every function takes the kernel's argument struct apart into Rust borrows, so a caller can
//! only hand the kernel pointers that stay valid for the call; errors come back as the raw
//! errno because what it means depends on the caller's intent.

use std::marker::PhantomData;
use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::ioctl::{self, opcode, Ioctl, IoctlOutput, Opcode};

/// `struct fsverity_enable_arg`: 128 bytes, native endianness.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `struct fsverity_digest` header; the digest bytes follow it (see [`DigestBuf`]).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct DigestHeader {
    digest_algorithm: u16,
    digest_size: u16,
}

/// The header plus room for the largest digest (SHA-512), so one ioctl always fits.
#[repr(C)]
#[derive(Debug)]
struct DigestBuf {
    header: DigestHeader,
    digest: [u8; MAX_DIGEST_SIZE],
}

/// `struct fsverity_read_metadata_arg`: 40 bytes.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct ReadMetadataArg {
    metadata_type: u64,
    offset: u64,
    length: u64,
    buf_ptr: u64,
    reserved: u64,
}

/// `_IOW('f', 133, struct fsverity_enable_arg)` = 0x40806685.
pub const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<EnableArg>(b'f', 133);
/// `_IOWR('f', 134, struct fsverity_digest)` = 0xC0046686.
pub const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<DigestHeader>(b'f', 134);
/// `_IOWR('f', 135, struct fsverity_read_metadata_arg)` = 0xC0286687.
pub const FS_IOC_READ_VERITY_METADATA: Opcode = opcode::read_write::<ReadMetadataArg>(b'f', 135);
/// `FS_IOC_GETFLAGS` = `_IOR('f', 1, long)`; the kernel actually transfers an `int`.
const FS_IOC_GETFLAGS: Opcode = opcode::read::<libc::c_long>(b'f', 1);
/// Inode flag reported by FS_IOC_GETFLAGS on verity files.
pub const FS_VERITY_FL: u32 = 0x0010_0000;

/// Largest digest FS_IOC_MEASURE_VERITY can return (SHA-512).
pub(crate) const MAX_DIGEST_SIZE: usize = 64;

/// FS_IOC_ENABLE_VERITY. Sizes are not checked here: the kernel checks them (EMSGSIZE), and an
/// oversized slice can only make it read less than the slice holds.
pub(crate) fn enable(
    fd: BorrowedFd<'_>,
    hash_algorithm: u32,
    block_size: u32,
    salt: &[u8],
    signature: &[u8],
) -> Result<(), Errno> {
    let ptr_or_null = |s: &[u8]| if s.is_empty() { 0 } else { s.as_ptr() as u64 };
    let arg = EnableArg {
        version: 1,
        hash_algorithm,
        block_size,
        salt_size: salt.len() as u32,
        salt_ptr: ptr_or_null(salt),
        sig_size: signature.len() as u32,
        reserved1: 0,
        sig_ptr: ptr_or_null(signature),
        reserved2: [0; 11],
    };
    // SAFETY: the opcode is FS_IOC_ENABLE_VERITY and EnableArg is its argument struct; the
    // kernel only reads through salt_ptr/sig_ptr, which borrow `salt`/`signature` for the
    // duration of the call, with sizes no larger than theirs.
    unsafe {
        ioctl::ioctl(
            fd,
            ioctl::Setter::<FS_IOC_ENABLE_VERITY, EnableArg>::new(arg),
        )
    }
}

/// What FS_IOC_MEASURE_VERITY reported, not yet checked against the algorithms we know.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) algorithm: u16,
    /// As the kernel reported it; may exceed `digest.len()` if the kernel misbehaves.
    pub(crate) size: u16,
    pub(crate) digest: [u8; MAX_DIGEST_SIZE],
}

/// FS_IOC_MEASURE_VERITY.
pub(crate) fn measure(fd: BorrowedFd<'_>) -> Result<Measured, Errno> {
    let mut buf = DigestBuf {
        header: DigestHeader {
            digest_algorithm: 0,
            digest_size: MAX_DIGEST_SIZE as u16,
        },
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY reads `digest_size` (the capacity after the header) and
    // writes at most that many bytes after the header; DigestBuf has exactly that room.
    unsafe {
        ioctl::ioctl(
            fd,
            ioctl::Updater::<FS_IOC_MEASURE_VERITY, DigestBuf>::new(&mut buf),
        )
    }?;
    Ok(Measured {
        algorithm: buf.header.digest_algorithm,
        size: buf.header.digest_size,
        digest: buf.digest,
    })
}

/// FS_IOC_READ_VERITY_METADATA with the byte count as output (the rustix patterns drop it).
struct ReadMetadata<'a> {
    arg: ReadMetadataArg,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: the opcode matches ReadMetadataArg; buf_ptr/length describe a live, exclusively
// borrowed buffer (lifetime 'a) that the kernel writes at most `length` bytes into.
unsafe impl Ioctl for ReadMetadata<'_> {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        FS_IOC_READ_VERITY_METADATA
    }

    fn as_ptr(&mut self) -> *mut libc::c_void {
        (&mut self.arg as *mut ReadMetadataArg).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut libc::c_void) -> rustix::io::Result<usize> {
        usize::try_from(out).map_err(|_| Errno::INVAL)
    }
}

/// FS_IOC_READ_VERITY_METADATA of `metadata_type` from `offset` into `buf`; the byte count as
/// the kernel returned it (the caller checks it against `buf.len()`).
pub(crate) fn read_metadata(
    fd: BorrowedFd<'_>,
    metadata_type: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    let req = ReadMetadata {
        arg: ReadMetadataArg {
            metadata_type,
            offset,
            length: buf.len() as u64,
            buf_ptr: buf.as_mut_ptr() as u64,
            reserved: 0,
        },
        _buf: PhantomData,
    };
    // SAFETY: see the `Ioctl` impl; `buf` is exclusively borrowed across the call.
    unsafe { ioctl::ioctl(fd, req) }
}

/// FS_IOC_GETFLAGS: the inode flags.
pub(crate) fn get_flags(fd: BorrowedFd<'_>) -> Result<u32, Errno> {
    // SAFETY: FS_IOC_GETFLAGS writes one int; Getter provides a c_int-sized output slot.
    let flags = unsafe { ioctl::ioctl(fd, ioctl::Getter::<FS_IOC_GETFLAGS, libc::c_int>::new()) }?;
    Ok(flags as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn struct_layouts_match_uapi() {
        assert_eq!(size_of::<EnableArg>(), 128);
        assert_eq!(offset_of!(EnableArg, version), 0);
        assert_eq!(offset_of!(EnableArg, hash_algorithm), 4);
        assert_eq!(offset_of!(EnableArg, block_size), 8);
        assert_eq!(offset_of!(EnableArg, salt_size), 12);
        assert_eq!(offset_of!(EnableArg, salt_ptr), 16);
        assert_eq!(offset_of!(EnableArg, sig_size), 24);
        assert_eq!(offset_of!(EnableArg, reserved1), 28);
        assert_eq!(offset_of!(EnableArg, sig_ptr), 32);
        assert_eq!(offset_of!(EnableArg, reserved2), 40);
        assert_eq!(size_of::<DigestHeader>(), 4);
        assert_eq!(offset_of!(DigestBuf, digest), 4);
        assert_eq!(size_of::<DigestBuf>(), 4 + 64);
        assert_eq!(size_of::<ReadMetadataArg>(), 40);
        assert_eq!(offset_of!(ReadMetadataArg, offset), 8);
        assert_eq!(offset_of!(ReadMetadataArg, length), 16);
        assert_eq!(offset_of!(ReadMetadataArg, buf_ptr), 24);
        assert_eq!(offset_of!(ReadMetadataArg, reserved), 32);
    }

    #[test]
    fn opcodes_match_uapi() {
        assert_eq!(FS_IOC_ENABLE_VERITY as u64, 0x4080_6685);
        assert_eq!(FS_IOC_MEASURE_VERITY as u64, 0xC004_6686);
        assert_eq!(FS_IOC_READ_VERITY_METADATA as u64, 0xC028_6687);
        assert_eq!(FS_IOC_GETFLAGS as u64, 0x8008_6601);
    }
}
