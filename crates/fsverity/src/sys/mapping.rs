//! The read-only file mapping the digest code hashes from.

use std::fs;
use std::io;

/// A whole regular file mapped read-only, so that hashing threads read the page cache directly
/// instead of one thread copying every byte into a buffer first (that copy was a quarter of
/// the CPU time of a parallel digest).
///
/// A mapping has one hazard `read()` does not: touching a page the file no longer has (it was
/// truncated meanwhile) or cannot read (I/O error, a corrupt fs-verity block) raises SIGBUS.
/// [`MappedFile::populate`] faults pages in with `MADV_POPULATE_READ`, which reports those
/// cases as errors instead, so callers populate each range just before reading it; only a
/// truncation in the microseconds between the two can still kill the process. Callers that
/// expect I/O errors (auditing verity files) should read instead.
///
/// Crate-private: the slice it hands out can change under a shared mapping or fault, which a
/// safe public API could not promise against; only the digest code, which checks, uses it.
pub(crate) struct MappedFile {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; `&MappedFile` only hands out shared slices.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps the first `len` bytes (the size the caller saw in its metadata; not zero).
    pub(crate) fn map(file: &fs::File, len: usize) -> io::Result<MappedFile> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh shared read-only mapping chosen by the kernel aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                file,
                0,
            )
        }
        .map_err(io::Error::from)?;
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(MappedFile { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes alive as long as `self`; nothing in this
        // process writes it (a truncation by another process is the SIGBUS case described on
        // the type, not undefined behaviour of this slice's contents).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Makes the pages under `part` (a sub-slice of [`MappedFile::bytes`]) present, so reading
    /// them cannot fault. Kernels before 5.14 lack `MADV_POPULATE_READ`; there pages fault in on
    /// first touch as with any mapping.
    pub(crate) fn populate(&self, part: &[u8]) -> io::Result<()> {
        let base = self.ptr.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if part.is_empty() || start < base || start + part.len() > base + self.len {
            return Ok(());
        }
        let page = rustix::param::page_size();
        let aligned = start & !(page - 1);
        let len = start + part.len() - aligned;
        // SAFETY: the range lies inside our own mapping; populating changes no contents.
        let r = unsafe {
            rustix::mm::madvise(
                aligned as *mut libc::c_void,
                len,
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
        match r {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) => Ok(()),
            // What SIGBUS would have been: past the end of a file that shrank, or an I/O
            // error; the caller tells which from the file's size.
            Err(rustix::io::Errno::FAULT) => {
                Err(io::Error::other("the file's pages could not be read"))
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

impl MappedFile {
    /// Drops this process's page-table entries for `part` once it has been read, so resident
    /// memory stays at one window instead of growing to the file size (the page cache keeps
    /// the data; nothing is written back, the mapping is read-only).
    pub(crate) fn release(&self, part: &[u8]) {
        let base = self.ptr.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if part.is_empty() || start < base || start + part.len() > base + self.len {
            return;
        }
        let page = rustix::param::page_size();
        // Only whole pages inside `part`: a page shared with the next part stays mapped.
        let first = (start + page - 1) & !(page - 1);
        let end = (start + part.len()) & !(page - 1);
        if end <= first {
            return;
        }
        // SAFETY: the range lies inside our own read-only mapping; later reads fault the
        // same file pages back in.
        let _ = unsafe {
            rustix::mm::madvise(
                first as *mut libc::c_void,
                end - first,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; no slice of it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.len)
            .finish()
    }
}
