//! What the VM tests (`vm_kernel`, `vm_enable`, `vm_boot`) share: the repository root, test
//! data, throwaway certificates, and the `STEP name rc=N: output` lines the guest scripts print.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
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
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-subj")
        .arg(format!("/CN=rpm-verity {purpose} {name}/O=Throwaway"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

pub struct Steps(HashMap<String, (i32, String)>, String);

impl Steps {
    pub fn parse(out: &str) -> Self {
        let mut m = HashMap::new();
        for line in out.lines() {
            let Some(rest) = line.strip_prefix("STEP ") else {
                continue;
            };
            let (name, rest) = rest.split_once(" rc=").expect("step line");
            let (rc, text) = rest
                .split_once(": ")
                .unwrap_or((rest.trim_end_matches(':'), ""));
            m.insert(name.to_string(), (rc.parse().unwrap(), text.to_string()));
        }
        Steps(m, out.to_string())
    }

    pub fn get(&self, name: &str) -> &(i32, String) {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("step {name} missing in guest output:\n{}", self.1))
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
