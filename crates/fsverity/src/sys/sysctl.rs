//! `fs.verity.require_signatures`, read and written through procfs.
//!
//! No `unsafe` is needed here; it sits with the other kernel entry points so that everything
//! that talks to the kernel directly is in one place, with the raw `io::Error` left for the
//! caller to interpret.

use std::fs;
use std::io;
use std::path::Path;

/// Where the kernel publishes `fs.verity.require_signatures`; exists only with
/// CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y. (Its directory is not proof: from 6.6 on the kernel
/// registers an empty /proc/sys/fs/verity whenever fs-verity is built in.)
pub const REQUIRE_SIGNATURES_SYSCTL: &str = "/proc/sys/fs/verity/require_signatures";

pub(crate) fn read_require_signatures(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

pub(crate) fn write_require_signatures(path: &Path, on: bool) -> io::Result<()> {
    fs::write(path, if on { "1\n" } else { "0\n" })
}
