//! What the integration tests of every crate share, so that no test includes another crate's
//! files by path: packages built with Debian's `rpmbuild`, installed roots made with the real
//! `rpm`, throwaway certificates and the VM guests' `STEP` lines.
#![forbid(unsafe_code)]

pub mod installed;
pub mod rpmbuild;
pub mod vm;

/// Path of the `rpm-verity` binary under test. A macro, because only the binary crate's own
/// integration tests are given `CARGO_BIN_EXE_rpm-verity` by cargo.
#[macro_export]
macro_rules! bin {
    () => {
        env!("CARGO_BIN_EXE_rpm-verity")
    };
}
