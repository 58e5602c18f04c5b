//! fs-verity on an installed RPM system: the rpmdb read-only, the installed-package model with
//! each file's signature, a resolver confined to `--root`, and the checks `enable` and `audit`
//! make on a file. Knows nothing of the command line.
//!
//! An installed file flows through [`rpmdb::Rpmdb`] (header blobs) →
//! [`installed::package_from_header`] (files with their tag-276 signatures) →
//! [`root::Root::open_file`] (opened read-only inside the root, never through a symlink out)
//! → [`check`] (measured or user-space digest against the package's signature).
#![forbid(unsafe_code)]

pub mod certs;
pub mod check;
pub mod installed;
pub mod root;
pub mod rpmdb;
