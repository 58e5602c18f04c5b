//! Builds real packages with Debian's `rpmbuild` (rpm 4.18) for the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// Which awkward files to include. rpmsign 4.18 segfaults on hardlinks and sized ghosts, so
/// packages meant for it leave those out.
#[derive(Debug, Clone, Copy)]
pub struct Contents {
    pub hardlinks: bool,
    pub sized_ghost: bool,
    /// Only one regular file (small signature growth → rpmsign rewrites in place).
    pub single_file: bool,
}

impl Contents {
    pub const ALL: Contents = Contents {
        hardlinks: true,
        sized_ghost: true,
        single_file: false,
    };
    pub const RPMSIGN_SAFE: Contents = Contents {
        hardlinks: false,
        sized_ghost: false,
        single_file: false,
    };
    pub const ONE_FILE: Contents = Contents {
        hardlinks: false,
        sized_ghost: false,
        single_file: true,
    };
}

/// Builds `name-1.0-1.x86_64.rpm` in `dir` with `%_binary_payload` = `payload` and returns its
/// path.
pub fn build_rpm(dir: &Path, name: &str, payload: &str, c: Contents) -> PathBuf {
    let mut install = String::from(
        "mkdir -p %{buildroot}/opt/t/dir %{buildroot}/etc\n\
         printf 'hello world\\n' > %{buildroot}/opt/t/hello.txt\n",
    );
    let mut files = String::from("%dir /opt/t\n/opt/t/hello.txt\n");
    if !c.single_file {
        install.push_str(
            ": > %{buildroot}/opt/t/empty\n\
             ln -s hello.txt %{buildroot}/opt/t/link\n\
             yes 'some text to compress' | head -c 300001 > %{buildroot}/opt/t/big.txt\n\
             head -c 70000 /dev/urandom > %{buildroot}/opt/t/random.bin\n\
             printf 'caf\\xc3\\xa9\\n' > '%{buildroot}/opt/t/caf\u{e9}.txt'\n\
             printf 'key=value\\n' > %{buildroot}/etc/t-NAME.conf\n",
        );
        files.push_str(
            "%dir /opt/t/dir\n/opt/t/empty\n/opt/t/link\n/opt/t/big.txt\n/opt/t/random.bin\n\
             /opt/t/caf\u{e9}.txt\n%config(noreplace) /etc/t-NAME.conf\n%ghost /opt/t/ghost-empty\n",
        );
    }
    if c.hardlinks {
        install.push_str(
            "printf 'linked content\\n' > %{buildroot}/opt/t/h1\n\
             ln %{buildroot}/opt/t/h1 %{buildroot}/opt/t/h2\n\
             ln %{buildroot}/opt/t/h1 %{buildroot}/opt/t/h0\n",
        );
        files.push_str("/opt/t/h0\n/opt/t/h1\n/opt/t/h2\n");
    }
    if c.sized_ghost {
        install.push_str("printf 'ghost!' > %{buildroot}/opt/t/ghost-sized\n");
        files.push_str("%ghost /opt/t/ghost-sized\n");
    }
    build_rpm_custom(dir, name, payload, &install, &files)
}

/// Builds a package from raw `%install` and `%files` sections (`NAME` is replaced by `name`).
pub fn build_rpm_custom(
    dir: &Path,
    name: &str,
    payload: &str,
    install: &str,
    files: &str,
) -> PathBuf {
    let top = dir.join(format!("top-{name}"));
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = format!(
        "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: test package\nLicense: MIT\n\n\
         %description\ntest package\n\n%install\n{install}\n%files\n{files}"
    )
    .replace("NAME", name);
    let spec_path = top.join("SPECS").join(format!("{name}.spec"));
    std::fs::write(&spec_path, spec).unwrap();
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_binary_payload {payload}"));
    for d in [
        "__os_install_post %{nil}",
        "__arch_install_post %{nil}",
        "_build_id_links none",
        "debug_package %{nil}",
    ] {
        cmd.arg("--define").arg(d);
    }
    cmd.arg("--nodeps")
        .arg("--target")
        .arg("x86_64")
        .arg(&spec_path);
    run(&mut cmd);
    let rpm = top
        .join("RPMS")
        .join("x86_64")
        .join(format!("{name}-1.0-1.x86_64.rpm"));
    assert!(rpm.exists(), "rpmbuild did not produce {}", rpm.display());
    rpm
}

/// `rpm2cpio PKG | cpio -t` names and the tree extracted with `cpio -idm` into `dest`.
pub fn rpm2cpio_extract(rpm: &Path, dest: &Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dest).unwrap();
    let archive = dest.with_extension("cpio");
    let out = run(Command::new("rpm2cpio").arg(rpm));
    std::fs::write(&archive, &out.stdout).unwrap();
    let list = run(Command::new("sh")
        .arg("-c")
        .arg(format!("cpio -t --quiet < '{}'", archive.display())));
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && cpio -idm --quiet --no-absolute-filenames < '{}'",
        dest.display(),
        archive.display()
    )));
    list.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect()
}

/// A throwaway gpg home with an RSA key "rpm-format test", plus an RSA-2048 key and
/// self-signed cert for the verity signatures.
pub struct SigningSetup {
    pub gpg_home: PathBuf,
    pub key: PathBuf,
    pub cert: PathBuf,
}

pub fn signing_setup(dir: &Path) -> SigningSetup {
    let gpg_home = dir.join("gnupg");
    std::fs::create_dir_all(&gpg_home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gpg_home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    run(Command::new("gpg").env("GNUPGHOME", &gpg_home).args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-gen-key",
        "rpm-format test <test@example.invalid>",
        "rsa2048",
        "sign",
        "never",
    ]));
    let key = dir.join("verity-key.pem");
    let cert = dir.join("verity-cert.pem");
    crate::openssl::self_signed(
        dir,
        key.to_str().unwrap(),
        cert.to_str().unwrap(),
        &crate::openssl::rsa(2048),
        "/CN=rpm-format test",
        2,
        None,
    );
    SigningSetup {
        gpg_home,
        key,
        cert,
    }
}

/// `rpmsign --addsign --signverity` on `rpm` in place.
pub fn rpmsign_verity(s: &SigningSetup, rpm: &Path) {
    rpmsign_verity_alg(s, rpm, None);
}

/// The same with `--verityalgo=<alg>` when given.
pub fn rpmsign_verity_alg(s: &SigningSetup, rpm: &Path, alg: Option<&str>) {
    let mut cmd = Command::new("rpmsign");
    cmd.env("GNUPGHOME", &s.gpg_home)
        .arg("--addsign")
        .arg("--signverity")
        .arg(format!("--fskpath={}", s.key.display()))
        .arg(format!("--certpath={}", s.cert.display()));
    if let Some(alg) = alg {
        cmd.arg(format!("--verityalgo={alg}"));
    }
    for d in [
        "_gpg_name rpm-format test".to_string(),
        "__gpg /usr/bin/gpg".to_string(),
        format!("_gpg_path {}", s.gpg_home.display()),
        "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback".to_string(),
    ] {
        cmd.arg("--define").arg(d);
    }
    cmd.arg(rpm);
    run(&mut cmd);
}

/// Installs `rpm` (database only) into a fresh root and returns `rpmdb --exportdb` output: the
/// installed header(s), each with the 8-byte magic in front of the blob the database stores.
pub fn install_and_export(root: &Path, rpm: &Path) -> Vec<u8> {
    std::fs::create_dir_all(root).unwrap();
    let r = root.to_str().unwrap();
    run(Command::new("rpmdb").args(["--root", r, "--dbpath", "/var/lib/rpm", "--initdb"]));
    run(Command::new("rpm")
        .args([
            "--root",
            r,
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--justdb",
            "--nodeps",
        ])
        .args([
            "--nosignature",
            "--noscripts",
            "--define",
            "__transaction_fsverity %{nil}",
        ])
        .arg(rpm));
    run(Command::new("rpmdb").args(["--root", r, "--dbpath", "/var/lib/rpm", "--exportdb"])).stdout
}

pub fn spec_version(spec: &Path) -> String {
    let text = std::fs::read_to_string(spec).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .expect("Version: in the spec")
        .trim()
        .to_string()
}

/// rpm-verity's own package from dist/rpm-verity.spec, built by rpmbuild around the binary
/// under test (the spec's `rpm_verity_binary` switch), from a source tarball of the repo's
/// files the spec installs.
pub fn build_rpm_verity_package(t: &Path, stripped_bin: &Path) -> PathBuf {
    let repo = crate::vm::repo_root();
    let spec = repo.join("dist/rpm-verity.spec");
    let version = spec_version(&spec);
    let top = t.join("rpmbuild");
    let src = t.join("src").join(format!("rpm-verity-{version}"));
    for d in ["SOURCES", "SPECS"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    std::fs::create_dir_all(src.join("docs")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(repo.join("dist"))
        .arg(&src));
    for doc in ["docs/runtime.md", "docs/boot.md", "docs/serve.md"] {
        std::fs::copy(repo.join(doc), src.join(doc)).unwrap();
    }
    std::fs::copy(repo.join("README.md"), src.join("README.md")).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(t.join("src"))
        .arg("-czf")
        .arg(top.join(format!("SOURCES/rpm-verity-{version}.tar.gz")))
        .arg(format!("rpm-verity-{version}")));
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("rpm_verity_binary {}", stripped_bin.display()));
    for d in [
        "_binary_payload w1.zstdio",
        "__os_install_post %{nil}",
        "__arch_install_post %{nil}",
        "_build_id_links none",
        "debug_package %{nil}",
    ] {
        cmd.arg("--define").arg(d);
    }
    cmd.args(["--nodeps", "--target", "x86_64"]).arg(&spec);
    run(&mut cmd);
    let rpm = top.join(format!("RPMS/x86_64/rpm-verity-{version}-1.x86_64.rpm"));
    assert!(rpm.is_file(), "rpmbuild did not produce {}", rpm.display());
    rpm
}
