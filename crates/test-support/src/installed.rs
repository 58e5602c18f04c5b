//! Installed roots for the enable/audit tests: packages built with rpmbuild, signed with
//! `rpm-verity sign`, installed with the real rpm (`--root`, plugin off).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::rpmbuild as rpmsupport;
use crate::vm;
pub use crate::vm::{fsverity_digest, repo_root, run, Steps};

pub use crate::s;

pub fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    vm::make_cert(dir, name, "enable")
}

/// Files of the test packages: (package, path, kind). Eligible = regular, non-ghost, signed,
/// not a non-executable %config.
pub struct Layout {
    pub root: PathBuf,
    pub key: PathBuf,
    pub cert: PathBuf,
    pub rpms: Vec<PathBuf>,
    /// Paths (absolute inside the root) enable must handle.
    pub eligible: Vec<&'static str>,
}

pub const ELIGIBLE: [&str; 7] = [
    "/etc/alpha-exec.conf",
    "/usr/bin/alpha-tool",
    "/usr/lib/beta/one.bin",
    "/usr/lib/beta/three.bin",
    "/usr/lib/beta/two.bin",
    "/usr/share/alpha/data.bin",
    "/usr/share/alpha/empty",
];

/// Builds alpha (binary, data, empty file, %config plain and executable, symlink, ghost), beta
/// (three data files, two of the same size for the swap test, signed) and gamma (unsigned),
/// installs them into `dir/root` with rpm.
pub fn installed_root(bin: &str, dir: &Path, extra_big: &[(&str, usize)]) -> Layout {
    let (key, cert) = make_cert(dir, "signer");
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let alpha = rpmsupport::build_rpm_custom(
        &build,
        "alpha",
        "w19.zstdio",
        "mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/alpha %{buildroot}/etc\n\
         head -c 20000 /dev/urandom > %{buildroot}/usr/bin/alpha-tool\n\
         chmod 0755 %{buildroot}/usr/bin/alpha-tool\n\
         head -c 70000 /dev/urandom > %{buildroot}/usr/share/alpha/data.bin\n\
         : > %{buildroot}/usr/share/alpha/empty\n\
         ln -s data.bin %{buildroot}/usr/share/alpha/link\n\
         printf 'key=value\\n' > %{buildroot}/etc/alpha.conf\n\
         printf '#!/bin/sh\\necho hi\\n' > %{buildroot}/etc/alpha-exec.conf\n\
         chmod 0755 %{buildroot}/etc/alpha-exec.conf\n",
        "%dir /usr/share/alpha\n/usr/bin/alpha-tool\n/usr/share/alpha/data.bin\n\
         /usr/share/alpha/empty\n/usr/share/alpha/link\n%config(noreplace) /etc/alpha.conf\n\
         %config /etc/alpha-exec.conf\n%ghost /var/log/alpha.log\n",
    );
    let mut install = String::from(
        "mkdir -p %{buildroot}/usr/lib/beta\n\
         head -c 50000 /dev/urandom > %{buildroot}/usr/lib/beta/one.bin\n\
         head -c 50000 /dev/urandom > %{buildroot}/usr/lib/beta/two.bin\n\
         head -c 12345 /dev/urandom > %{buildroot}/usr/lib/beta/three.bin\n",
    );
    let mut files = String::from(
        "%dir /usr/lib/beta\n/usr/lib/beta/one.bin\n/usr/lib/beta/two.bin\n/usr/lib/beta/three.bin\n",
    );
    for (name, size) in extra_big {
        install.push_str(&format!(
            "head -c {size} /dev/urandom > %{{buildroot}}/usr/lib/beta/{name}\n"
        ));
        files.push_str(&format!("/usr/lib/beta/{name}\n"));
    }
    let beta = rpmsupport::build_rpm_custom(&build, "beta", "w0.ufdio", &install, &files);
    let gamma = rpmsupport::build_rpm_custom(
        &build,
        "gamma",
        "w9.gzdio",
        "mkdir -p %{buildroot}/usr/share/gamma\nprintf 'plain\\n' > %{buildroot}/usr/share/gamma/file\n",
        "/usr/share/gamma/file\n",
    );
    run(Command::new(bin)
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .arg(&alpha)
        .arg(&beta));
    let root = dir.join("root");
    install_into(&root, &[&alpha, &beta, &gamma]);
    Layout {
        root,
        key,
        cert,
        rpms: vec![alpha, beta, gamma],
        eligible: ELIGIBLE.to_vec(),
    }
}

/// `rpm -i` into `root` with the fsverity plugin off (it would fail on a verity filesystem).
pub fn install_into(root: &Path, rpms: &[&Path]) {
    std::fs::create_dir_all(root).unwrap();
    run(Command::new("rpmdb").args(["--root", s(root), "--dbpath", "/var/lib/rpm", "--initdb"]));
    let mut cmd = Command::new("rpm");
    cmd.args([
        "--root",
        s(root),
        "--dbpath",
        "/var/lib/rpm",
        "-i",
        "--nodeps",
        "--noscripts",
        "--define",
        "__transaction_fsverity %{nil}",
    ]);
    for r in rpms {
        cmd.arg(r);
    }
    run(&mut cmd);
}
