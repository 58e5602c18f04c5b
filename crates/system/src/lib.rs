//! fs-verity on an installed RPM system: the rpmdb read-only, the installed-package model with
//! each file's signature, a resolver confined to `--root`, the checks `enable` and `audit`
//! make on a file, the engines of `enable`, `audit`, `keyring` and `status`, and the kernel and
//! filesystem probes behind them. Knows nothing of the command line: every engine returns a
//! typed report that the binary renders as text or JSON.
//!
//! An installed file flows through [`rpmdb::Rpmdb`] (header blobs) →
//! [`installed::package_from_header`] (files with their tag-276 signatures) →
//! [`root::Root::open_file`] (opened read-only inside the root, never through a symlink out)
//! → [`check`] (measured or user-space digest against the package's signature).
//!
//! Errors are typed: what stops a command (an unreadable root, rpmdb or certificate, see
//! [`error`]) and what a caller branches on (statuses, verdicts, keyring access) alike.
#![forbid(unsafe_code)]

pub mod outcome;

pub mod audit;
pub mod certs;
pub mod check;
pub mod enable;
pub mod error;
pub mod installed;
pub mod keyring;
pub mod lockdown;
pub mod probe;
pub mod root;
pub mod rpmdb;
pub mod status;
