//! What the integration tests of every crate share, so that no test includes another crate's
//! files by path: packages built with Debian's `rpmbuild`, installed roots made with the real
//! `rpm`, throwaway keys and certificates made by openssl, one way to run a command that must
//! succeed, and the VM guests' boots and `STEP` lines.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Command, Output};

pub mod installed;
pub mod openssl;
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

/// Runs `cmd`; it must succeed, or the test fails with its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a successful `cmd` wrote to stdout.
pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// A path as the `&str` a command line built from strings wants.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// stdout then stderr, for messages and for looking for a phrase wherever it was written.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of `src` without debug info at `dst` (its directory made): what goes into a package
/// or a guest is smaller, and hashed faster by `sign` and by the kernel.
pub fn strip_debug(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(dst)
        .arg(src));
}
