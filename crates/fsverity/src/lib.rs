//! fs-verity file digests, byte-identical to fsverity-utils (libfsverity).
//!
//! Knows nothing about RPM or signing. The kernel interface lives in [`linux`].
#![deny(unsafe_code)]

pub mod linux;
