//! What the VM tests (`vm_kernel`, `vm_enable`, `vm_boot`, `vm_ecdsa`, `vm_lockdown`,
//! `vm_lockdown_boot`) share: the repository root, test data, throwaway certificates, the inputs
//! made on the host (fs-verity signatures, ext4 images), one way of running tests/vm's scripts,
//! and the `STEP name rc=N: output` / `JSON name {...}` lines the guest scripts print.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A command line made of strings and paths.
pub fn args(list: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// A script or guest under `tests/vm`.
pub fn vm_script(name: &str) -> PathBuf {
    repo_root().join("tests/vm").join(name)
}

pub use crate::{run, stdout};

/// `bash tests/vm/<script> <args>`, whatever its exit status. What it wrote is printed, which
/// libtest shows only when the test fails.
pub fn vm_output<I, S>(script: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new("bash")
        .arg(vm_script(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run tests/vm/{script}: {e}"));
    println!(
        "guest output:\n{}\n{script} stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `bash tests/vm/<script> <args>`, which must succeed: the guest's report (its stdout).
pub fn vm_run<I, S>(script: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = vm_output(script, args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "VM run ({script}) failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One boot with `tests/vm/run.sh <args>`, which must succeed: the lines the guest printed.
pub fn boot<I, S>(args: I) -> Steps
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Steps::parse(&vm_run("run.sh", args))
}

/// `fsverity digest` (SHA-256) of a file, computed by fsverity-utils, not by our code.
pub fn fsverity_digest(file: &Path) -> String {
    fsverity_digest_alg(file, "sha256")
}

/// `fsverity digest --hash-alg=<alg>` of a file.
pub fn fsverity_digest_alg(file: &Path, alg: &str) -> String {
    let out = stdout(
        Command::new("fsverity")
            .arg("digest")
            .arg(format!("--hash-alg={alg}"))
            .arg(file),
    );
    out.split_whitespace().next().unwrap().to_string()
}

/// A detached fs-verity signature of `file` made by fsverity-utils.
pub fn fsverity_sign(file: &Path, sig: &Path, key: &Path, cert: &Path) {
    run(Command::new("fsverity")
        .arg("sign")
        .arg(file)
        .arg(sig)
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert));
}

/// The DER form of a PEM certificate, as the kernel's keyring takes it.
pub fn der(cert: &Path, out: &Path) {
    run(Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(cert)
        .arg("-out")
        .arg(out));
}

/// An ext4 image of `dir`'s contents, with or without the `verity` feature.
pub fn mkfs_ext4(dir: &Path, img: &Path, verity: bool, size: &str) {
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", if verity { "verity" } else { "^verity" }])
        .args(["-b", "4096", "-d"])
        .arg(dir)
        .arg(img)
        .arg(size));
}

/// Overwrites block `n` (4 KiB) of the file at `path` inside the ext4 image `img` (found with
/// `debugfs bmap`) with 0x5a bytes: corruption made behind the filesystem's back, as a bad disk
/// or an attacker with the device would.
pub fn overwrite_block(img: &Path, path: &str, n: u64) {
    use std::os::unix::fs::FileExt;
    let bmap = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap {path} {n}"))
        .arg(img));
    let block: u64 = String::from_utf8_lossy(&bmap.stdout)
        .trim()
        .parse()
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(&[0x5a; 4096], block * 4096).unwrap();
}

/// `sha256sum` of a file.
pub fn sha256_file(p: &Path) -> String {
    let out = stdout(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A throwaway RSA-2048 key and self-signed certificate, subject
/// `CN=rpm-verity <purpose> <name>, O=Throwaway`.
pub fn make_cert(dir: &Path, name: &str, purpose: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.pem"));
    crate::openssl::self_signed(
        dir,
        key.to_str().unwrap(),
        cert.to_str().unwrap(),
        &crate::openssl::rsa(2048),
        &format!("/CN=rpm-verity {purpose} {name}/O=Throwaway"),
        2,
        None,
    );
    (key, cert)
}

/// A guest's report: `STEP name rc=N: output` lines (output newlines as `|`) and `JSON name
/// {...}` lines, the latter parsed when asked for.
pub struct Steps {
    steps: HashMap<String, (i32, String)>,
    json: HashMap<String, String>,
    /// The whole report, for failure messages.
    pub out: String,
}

impl Steps {
    pub fn parse(out: &str) -> Self {
        let mut steps = HashMap::new();
        let mut json = HashMap::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("STEP ") {
                let (name, rest) = rest.split_once(" rc=").expect("step line");
                let (rc, text) = rest
                    .split_once(": ")
                    .unwrap_or((rest.trim_end_matches(':'), ""));
                steps.insert(name.to_string(), (rc.parse().unwrap(), text.to_string()));
            } else if let Some(rest) = line.strip_prefix("JSON ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                json.insert(name.to_string(), text.to_string());
            }
        }
        Steps {
            steps,
            json,
            out: out.to_string(),
        }
    }

    pub fn get(&self, name: &str) -> &(i32, String) {
        self.steps
            .get(name)
            .unwrap_or_else(|| panic!("step {name} missing in guest output:\n{}", self.out))
    }

    /// The step failed with exit status `rc_want` and said `needle`.
    pub fn fails(&self, name: &str, rc_want: i32, needle: &str) {
        let (rc, out) = self.get(name);
        assert_eq!(*rc, rc_want, "step {name}: {out}");
        assert!(
            out.contains(needle),
            "step {name}: want {needle:?} in {out}"
        );
    }

    /// The document of the guest's `JSON name {...}` line.
    pub fn json_line(&self, name: &str) -> serde_json::Value {
        let text = self
            .json
            .get(name)
            .unwrap_or_else(|| panic!("JSON {name} missing in guest output:\n{}", self.out));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON {name}: {e}: {text}"))
    }

    pub fn ok(&self, name: &str) -> &str {
        let (rc, out) = self.get(name);
        assert_eq!(*rc, 0, "step {name} failed: {out}");
        out
    }

    pub fn ok_eq(&self, name: &str, expected: &str) {
        assert_eq!(self.ok(name), expected, "step {name}");
    }

    /// The probe printed `error <variant> errno=<n>: ...`.
    pub fn err(&self, name: &str, variant: &str, errno: i32) {
        let (rc, out) = self.get(name);
        assert_eq!(*rc, 1, "step {name} should fail with {variant}: {out}");
        let errno = if errno < 0 {
            "-".to_string()
        } else {
            errno.to_string()
        };
        let prefix = format!("error {variant} errno={errno}: ");
        assert!(
            out.starts_with(&prefix),
            "step {name}: expected {prefix}..., got {out}"
        );
    }

    pub fn rc(&self, name: &str, rc: i32) -> &str {
        let (got, out) = self.get(name);
        assert_eq!(*got, rc, "step {name}: {out}");
        out
    }
    /// The step's output with the original newlines.
    pub fn lines(&self, name: &str, rc: i32) -> Vec<String> {
        self.rc(name, rc).split('|').map(str::to_string).collect()
    }
    pub fn json(&self, name: &str, rc: i32) -> serde_json::Value {
        let t = self.rc(name, rc).replace('|', "\n");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("step {name}: {e}: {t}"))
    }
}
