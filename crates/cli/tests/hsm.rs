//! Keys on a PKCS#11 token (a SoftHSM2 token made here) and key rotation in `serve`, on
//! loopback with the real binary.
#![allow(clippy::unwrap_used)]

use verity_test_support::rpmbuild as support;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fsverity::HashAlgorithm;
use verity_test_support::openssl::{self, Issuer};

const BIN: &str = env!("CARGO_BIN_EXE_rpm-verity");
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "48151623";
const TOKEN: &str = "builder-token-for-hsm-tests";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/install-deps installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A SoftHSM2 token in a directory of its own, with an RSA-2048 and an EC P-256 key imported
/// from PEM files that stay beside it (so the same key can sign both ways).
struct Token {
    dir: tempfile::TempDir,
}

impl Token {
    fn new() -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: install Debian's softhsm2 (scripts/install-deps)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = &dir.path().to_path_buf();
        std::fs::create_dir(d.join("tokens")).unwrap();
        std::fs::write(
            d.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
                d.display()
            ),
        )
        .unwrap();
        let t = Self { dir };
        run(&mut t.softhsm(&[
            "--init-token",
            "--free",
            "--label",
            "rv-test",
            "--so-pin",
            "1234",
            "--pin",
            PIN,
        ]));
        openssl::genpkey_rsa(d, "rsa.key", 2048);
        openssl::genpkey_ec(d, "ec.key", "P-256");
        openssl::genpkey_ec(d, "ec384.key", "P-384");
        for (k, id) in [("rsa", "01"), ("ec", "02"), ("ec384", "03")] {
            let subj = format!("/CN=hsm test {k}");
            openssl::cert_for_key(d, &format!("{k}.key"), &format!("{k}.crt"), &subj, 30);
            run(&mut t.softhsm(&[
                "--import",
                &format!("{}/{k}.key", d.display()),
                "--token",
                "rv-test",
                "--label",
                k,
                "--id",
                id,
                "--pin",
                PIN,
            ]));
            chmod(&d.join(format!("{k}.key")), 0o600);
        }
        std::fs::write(d.join("pin"), format!("{PIN}\n")).unwrap();
        chmod(&d.join("pin"), 0o600);
        std::fs::write(d.join("wrong-pin"), "11111111\n").unwrap();
        chmod(&d.join("wrong-pin"), 0o600);
        t
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// A `work` directory beside the token, and in it `payload.bin`: `len` pseudo-random bytes.
    fn work_with_payload(&self, len: usize) -> (PathBuf, PathBuf) {
        let w = self.path("work");
        std::fs::create_dir(&w).unwrap();
        let file = w.join("payload.bin");
        std::fs::write(&file, support_pattern(len)).unwrap();
        (w, file)
    }

    fn softhsm(&self, args: &[&str]) -> Command {
        let mut c = Command::new("softhsm2-util");
        c.args(args)
            .env("SOFTHSM2_CONF", self.path("softhsm2.conf"));
        c
    }

    /// The URI of key `object`, its PIN read from `pin` (a file in the token's directory).
    fn uri(&self, object: &str, pin: &str) -> String {
        format!(
            "pkcs11:token=rv-test;object={object}?module-path={MODULE}&pin-source=file:{}",
            self.path(pin).display()
        )
    }

    /// `pkg` signed into `out` with the RSA key's PEM file: the reference the token must match.
    fn sign_with_pem_key(&self, out: &Path, pkg: &Path) {
        let (key, cert) = (self.path("rsa.key"), self.path("rsa.crt"));
        sign_pkg(self.bin(), key, &cert, Some(out), pkg);
    }

    /// `rpm-verity` with this token's SoftHSM configuration in its environment.
    fn bin(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("SOFTHSM2_CONF", self.path("softhsm2.conf"))
            .env_remove("RPM_VERITY_KEY_PASS")
            .env_remove("RPM_VERITY_PKCS11_MODULE");
        c
    }
}

/// `cmd` (an `rpm-verity` command) as `sign --key KEY --cert CERT [--output-dir DIR] PKG`,
/// which must succeed.
fn sign_pkg(mut cmd: Command, key: impl AsRef<OsStr>, cert: &Path, out: Option<&Path>, pkg: &Path) {
    cmd.arg("sign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert);
    if let Some(dir) = out {
        cmd.arg("--output-dir").arg(dir);
    }
    run(cmd.arg(pkg));
}

/// `cmd` (an `rpm-verity` command) as `verify --cert CERT PKG`, which must succeed.
fn verify_pkg(mut cmd: Command, cert: &Path, pkg: &Path) {
    run(cmd.arg("verify").arg("--cert").arg(cert).arg(pkg));
}

#[test]
fn token_rsa_key_signs_files_and_packages_byte_identical_to_the_pem_key() {
    let t = Token::new();
    let (w, file) = t.work_with_payload(300_000);
    for alg in ["sha256", "sha512"] {
        let pem_sig = w.join(format!("pem-{alg}.sig"));
        let hsm_sig = w.join(format!("hsm-{alg}.sig"));
        run(t
            .bin()
            .args(["sign-file", "--hash-alg", alg])
            .arg(&file)
            .arg(&pem_sig)
            .arg("--key")
            .arg(t.path("rsa.key"))
            .arg("--cert")
            .arg(t.path("rsa.crt")));
        let out = run(t
            .bin()
            .args(["sign-file", "--hash-alg", alg])
            .arg(&file)
            .arg(&hsm_sig)
            .arg("--key")
            .arg(t.uri("rsa", "pin"))
            .arg("--cert")
            .arg(t.path("rsa.crt")));
        assert!(
            !text(&out).contains(PIN),
            "the PIN was printed: {}",
            text(&out)
        );
        let (a, b) = (
            std::fs::read(&pem_sig).unwrap(),
            std::fs::read(&hsm_sig).unwrap(),
        );
        assert!(a.len() > 256, "{alg}: {} bytes", a.len());
        assert!(a == b, "{alg}: token and PEM signatures differ");
    }
    // The same package, signed once with each: byte-identical, and `verify` accepts it.
    let pkg = support::build_rpm(&w, "hsm-a", "w19.zstdio", support::Contents::ALL);
    let (pem_dir, hsm_dir) = (w.join("pem"), w.join("hsm"));
    std::fs::create_dir(&pem_dir).unwrap();
    std::fs::create_dir(&hsm_dir).unwrap();
    t.sign_with_pem_key(&pem_dir, &pkg);
    // The key by id=, the module from the environment and the PIN from --key-pass-file this
    // time, none of them in the URI.
    run(t
        .bin()
        .env("RPM_VERITY_PKCS11_MODULE", MODULE)
        .arg("sign")
        .arg("--key")
        .arg("pkcs11:token=rv-test;id=%01")
        .arg("--key-pass-file")
        .arg(t.path("pin"))
        .arg("--cert")
        .arg(t.path("rsa.crt"))
        .arg("--output-dir")
        .arg(&hsm_dir)
        .arg(&pkg));
    let name = pkg.file_name().unwrap();
    let (a, b) = (
        std::fs::read(pem_dir.join(name)).unwrap(),
        std::fs::read(hsm_dir.join(name)).unwrap(),
    );
    assert!(
        a != std::fs::read(&pkg).unwrap(),
        "the package was not signed"
    );
    assert!(a == b, "token-signed and PEM-signed packages differ");
    verify_pkg(t.bin(), &t.path("rsa.crt"), &hsm_dir.join(name));
}

fn support_pattern(len: usize) -> Vec<u8> {
    verity_test_support::vm::pattern(len, 7)
}

#[test]
fn token_ecdsa_key_makes_signatures_that_verify() {
    let t = Token::new();
    let (w, file) = t.work_with_payload(100_000);
    let read_cert = |k: &str| {
        verity_signing::Certificate::parse(&std::fs::read(t.path(&format!("{k}.crt"))).unwrap())
            .unwrap()
    };
    let other = read_cert("rsa");
    // P-256 and P-384, each with both hashes (SHA-512 is truncated to the curve for P-256).
    for key in ["ec", "ec384"] {
        let cert = read_cert(key);
        for (alg, hash) in [
            ("sha256", HashAlgorithm::Sha256),
            ("sha512", HashAlgorithm::Sha512),
        ] {
            let sig = w.join(format!("{key}-{alg}.sig"));
            run(t
                .bin()
                .args(["sign-file", "--hash-alg", alg])
                .arg(&file)
                .arg(&sig)
                .arg("--key")
                .arg(t.uri(key, "pin"))
                .arg("--cert")
                .arg(t.path(&format!("{key}.crt"))));
            let der = std::fs::read(&sig).unwrap();
            let params = fsverity::Params::new(hash, 4096, &[]).unwrap();
            let digest = fsverity::digest_file(&params, &file).unwrap();
            verity_signing::verify_signature(&der, &digest, std::slice::from_ref(&cert))
                .unwrap_or_else(|e| {
                    panic!("{key} {alg}: token ECDSA signature does not verify: {e}")
                });
            assert!(
                verity_signing::verify_signature(&der, &digest, std::slice::from_ref(&other))
                    .is_err()
            );
            // And not for another file's digest.
            let zero = fsverity::FileDigest::new(hash, &vec![0u8; hash.digest_size()]).unwrap();
            assert!(
                verity_signing::verify_signature(&der, &zero, std::slice::from_ref(&cert)).is_err()
            );
        }
    }
    let pkg = support::build_rpm(&w, "hsm-ec", "w19.zstdio", support::Contents::ALL);
    sign_pkg(t.bin(), t.uri("ec", "pin"), &t.path("ec.crt"), None, &pkg);
    verify_pkg(t.bin(), &t.path("ec.crt"), &pkg);
}

#[test]
fn token_mistakes_are_clear_errors_before_anything_is_signed() {
    let t = Token::new();
    let w = t.path("work");
    std::fs::create_dir(&w).unwrap();
    let pkg = support::build_rpm(&w, "hsm-bad", "w19.zstdio", support::Contents::ONE_FILE);
    let before = std::fs::read(&pkg).unwrap();
    let cert = t.path("rsa.crt");
    let cases: Vec<(String, &str)> = vec![
        (t.uri("rsa", "wrong-pin"), "wrong PIN for token \"rv-test\""),
        (
            t.uri("no-such-key", "pin"),
            "no private key with object=\"no-such-key\" on token \"rv-test\"",
        ),
        (
            t.uri("rsa", "pin")
                .replace(MODULE, "/usr/lib/no/such/pkcs11.so"),
            "cannot load PKCS#11 module /usr/lib/no/such/pkcs11.so: no such file",
        ),
        (
            t.uri("rsa", "pin").replace("token=rv-test", "token=other"),
            "no token matching token=\"other\" in PKCS#11 module",
        ),
        (
            format!("pkcs11:token=rv-test;object=rsa?module-path={MODULE}"),
            "token \"rv-test\" needs a PIN",
        ),
        (
            "pkcs11:token=rv-test;object=rsa".to_string(),
            "no PKCS#11 module given",
        ),
        (t.uri("ec", "pin"), "does not match certificate"),
    ];
    for (uri, says) in &cases {
        for cmd in ["sign", "sign-file"] {
            let mut c = t.bin();
            c.arg(cmd);
            if cmd == "sign-file" {
                c.arg(&pkg).arg(w.join("out.sig"));
            } else {
                c.arg(&pkg);
            }
            let out = c
                .arg("--key")
                .arg(uri)
                .arg("--cert")
                .arg(&cert)
                .output()
                .unwrap();
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(1), "{cmd} {uri}: {msg}");
            assert!(
                msg.contains(says),
                "{cmd} {uri}: expected {says:?} in: {msg}"
            );
            assert!(
                !msg.contains(PIN) && !msg.contains("11111111"),
                "PIN printed: {msg}"
            );
            assert!(!msg.contains("panicked"), "{msg}");
        }
    }
    assert!(
        std::fs::read(&pkg).unwrap() == before,
        "the package changed"
    );
    assert!(!w.join("out.sig").exists());
    // serve refuses to start, with the same messages.
    let pki = Pki::new(t.path("pki"));
    for (uri, says) in &cases[..3] {
        let config = pki.config(&[KeySpec {
            key: uri.clone(),
            cert: cert.clone(),
            extra: String::new(),
        }]);
        let out = t
            .bin()
            .args(["serve", "--check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let msg = text(&out);
        assert!(!out.status.success(), "{uri}: {msg}");
        assert!(
            msg.contains(says),
            "serve {uri}: expected {says:?} in: {msg}"
        );
        assert!(!msg.contains(PIN), "PIN printed: {msg}");
    }
}

#[test]
fn serve_signs_with_a_token_key_exactly_as_with_the_pem_key() {
    let t = Token::new();
    let pki = Pki::new(t.path("pki"));
    let w = t.path("work");
    std::fs::create_dir(&w).unwrap();
    let pkg = support::build_rpm(&w, "hsm-srv", "w19.zstdio", support::Contents::ALL);
    let pem_dir = w.join("pem");
    std::fs::create_dir(&pem_dir).unwrap();
    t.sign_with_pem_key(&pem_dir, &pkg);
    let config = pki.config(&[KeySpec {
        key: t.uri("rsa", "pin"),
        cert: t.path("rsa.crt"),
        extra: String::new(),
    }]);
    let server = Server::start(t.bin(), &config).unwrap_or_else(|e| panic!("{e}"));
    for alg in ["sha256", "sha512"] {
        let out_dir = w.join(format!("remote-{alg}"));
        std::fs::create_dir(&out_dir).unwrap();
        run(pki
            .remote_sign(&server, &out_dir, &pkg)
            .arg("--hash-alg")
            .arg(alg));
        if alg == "sha256" {
            let name = pkg.file_name().unwrap();
            let a = std::fs::read(pem_dir.join(name)).unwrap();
            let b = std::fs::read(out_dir.join(name)).unwrap();
            assert!(
                a == b,
                "package signed through serve with the token key differs from PEM signing"
            );
        }
        verify_pkg(
            t.bin(),
            &t.path("rsa.crt"),
            &out_dir.join(pkg.file_name().unwrap()),
        );
    }
    // The service's log names the token key, never the PIN.
    let log = std::fs::read_to_string(pki.dir.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"outcome\":\"signed\""), "{log}");
    assert!(!log.contains(PIN) && !server.stderr().contains(PIN));
}

// ---------------------------------------------------------------------------------------------
// A minimal signing service: a CA, a server certificate, one token client.
// ---------------------------------------------------------------------------------------------

struct Pki {
    dir: PathBuf,
}

struct KeySpec {
    key: String,
    cert: PathBuf,
    /// More TOML lines for the `[[key]]` (not_before, not_after).
    extra: String,
}

impl Pki {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let d = &dir;
        std::fs::write(
            d.join("ext.cnf"),
            "[server]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let ec = openssl::ec("prime256v1");
        openssl::self_signed(d, "ca.key", "ca.crt", &ec, "/CN=hsm test CA", 30, None);
        openssl::new_csr(d, "server.key", "server.csr", &ec, "/CN=localhost");
        let issuer = Issuer::Ca {
            cert: "ca.crt",
            key: "ca.key",
        };
        let ext = Some(("ext.cnf", "server"));
        openssl::sign_csr(d, "server.csr", issuer, 30, ext, "server.crt");
        chmod(&d.join("server.key"), 0o600);
        std::fs::write(d.join("token"), TOKEN).unwrap();
        Self { dir }
    }

    fn config(&self, keys: &[KeySpec]) -> PathBuf {
        use sha2::Digest;
        let mut cfg = String::from("listen = \"127.0.0.1:0\"\naudit_log = \"audit.jsonl\"\n[tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n");
        for k in keys {
            cfg.push_str(&format!(
                "[[key]]\nname = \"k\"\nkey = \"{}\"\ncert = \"{}\"\n{}\n",
                k.key,
                k.cert.display(),
                k.extra
            ));
        }
        cfg.push_str(&format!(
            "[[client]]\nname = \"builder\"\ntoken_sha256 = [\"{}\"]\nkeys = [\"k\"]\n",
            hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
        ));
        let p = self.dir.join("serve.toml");
        std::fs::write(&p, cfg).unwrap();
        p
    }

    fn remote_sign(&self, server: &Server, out_dir: &Path, pkg: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.arg("sign")
            .arg("--signer")
            .arg(format!("https://{}", server.addr))
            .arg("--key-name")
            .arg("k")
            .arg("--token-file")
            .arg(self.dir.join("token"))
            .arg("--ca")
            .arg(self.dir.join("ca.crt"))
            .arg("--output-dir")
            .arg(out_dir)
            .arg(pkg);
        c
    }
}

/// A running `rpm-verity serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `cmd` (an `rpm-verity` command) as `serve --config`; the error is its output when
    /// it exits instead of listening.
    fn start(mut cmd: Command, config: &Path) -> Result<Self, String> {
        let mut child = cmd
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = err.clone();
        let err_done = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on https://") => {
                std::thread::spawn(move || for _ in lines {});
                let addr = line.rsplit("https://").next().unwrap().trim().to_string();
                Ok(Self {
                    child,
                    addr,
                    stderr: err,
                })
            }
            _ => {
                let status = child.wait().unwrap();
                let _ = err_done.join();
                let msg = err.lock().unwrap().clone();
                Err(format!("serve exited ({status}): {msg}"))
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Its stderr once it holds `what` (it is read on another thread), or after 10 s.
    fn stderr_with(&self, what: &str) -> String {
        for _ in 0..100 {
            let s = self.stderr();
            if s.contains(what) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stderr()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Key rotation
// ---------------------------------------------------------------------------------------------

/// A key and a self-signed certificate valid for 30 days from `start` (`faketime` sets the
/// clock openssl signs it with: OpenSSL 3.0 has no -not_before).
fn cert_at(dir: &Path, name: &str, start: Option<&str>) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let mut c = match start {
        Some(t) => {
            let mut c = Command::new("faketime");
            c.arg(t).arg("openssl");
            c
        }
        None => Command::new("openssl"),
    };
    c.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
    ])
    .arg(format!("/CN=rotation {name}"))
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&crt);
    run(&mut c);
    chmod(&key, 0o600);
    (key, crt)
}

fn spec(kc: &(PathBuf, PathBuf), extra: &str) -> KeySpec {
    KeySpec {
        key: kc.0.display().to_string(),
        cert: kc.1.clone(),
        extra: extra.to_string(),
    }
}

#[test]
fn rotation_signs_with_the_valid_key_and_refuses_when_none_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new(d.join("pki"));
    let old = cert_at(d, "old", Some("2020-01-01 00:00:00"));
    let future = cert_at(d, "future", Some("2099-01-01 00:00:00"));
    let new = cert_at(d, "new", None);
    let pkg = support::build_rpm(d, "rot", "w19.zstdio", support::Contents::ALL);

    // Expired and current under one name: the current one signs, as local signing with it does.
    let config = pki.config(&[spec(&old, ""), spec(&new, ""), spec(&future, "")]);
    let server = Server::start(Command::new(BIN), &config).unwrap_or_else(|e| panic!("{e}"));
    let err = server.stderr_with("signs with certificate");
    assert!(err.contains("expired at 2020-01-31T00:00:0"), "{err}");
    assert!(err.contains("is not valid before 2099-01-01"), "{err}");
    assert!(
        err.contains(&format!("signs with certificate {}", new.1.display())),
        "{err}"
    );
    let remote = d.join("remote");
    let local = d.join("local");
    std::fs::create_dir(&remote).unwrap();
    std::fs::create_dir(&local).unwrap();
    run(&mut pki.remote_sign(&server, &remote, &pkg));
    sign_pkg(Command::new(BIN), &new.0, &new.1, Some(&local), &pkg);
    let name = pkg.file_name().unwrap();
    assert!(std::fs::read(remote.join(name)).unwrap() == std::fs::read(local.join(name)).unwrap());
    verify_pkg(Command::new(BIN), &new.1, &remote.join(name));
    let bad = Command::new(BIN)
        .arg("verify")
        .arg("--cert")
        .arg(&old.1)
        .arg(remote.join(name))
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "signed by the expired key: {}",
        text(&bad)
    );
    // `audit` accepts files signed by any trusted certificate of the name: a package signed
    // with the old key before it expired, and one the service signed with the new key.
    let old_pkg = support::build_rpm(d, "rot-old", "w19.zstdio", support::Contents::ONE_FILE);
    sign_pkg(Command::new(BIN), &old.0, &old.1, None, &old_pkg);
    let root = d.join("root");
    verity_test_support::installed::install_into(&root, &[&old_pkg, &remote.join(name)]);
    let audit = |certs: &[&Path]| {
        let mut c = Command::new(BIN);
        c.arg("audit").arg("--root").arg(&root).arg("--json");
        for cert in certs {
            c.arg("--cert").arg(cert);
        }
        let out = c.output().unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        // package -> whether every file's content was checked against a trusted signature
        let mut checked = std::collections::BTreeMap::<String, bool>::new();
        for f in doc["findings"].as_array().unwrap() {
            let ok = f["status"] == "NOT-ENABLED"
                && f["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("content matches its signature");
            let e = checked
                .entry(f["package"].as_str().unwrap().to_string())
                .or_insert(true);
            *e &= ok;
        }
        checked
    };
    let both = audit(&[&old.1, &new.1]);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.values().all(|ok| *ok), "{both:?}");
    let only_new = audit(&[&new.1]);
    assert_eq!(
        only_new.get("rot-old-1.0-1.x86_64"),
        Some(&false),
        "{only_new:?}"
    );
    assert_eq!(
        only_new.get("rot-1.0-1.x86_64"),
        Some(&true),
        "{only_new:?}"
    );

    // GET /v1/keys names all three, the current one as signing.
    let keys = run(Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(pki.dir.join("ca.crt"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(format!("https://{}/v1/keys", server.addr)));
    let doc: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    let certs = doc["keys"][0]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3, "{doc}");
    let signing: Vec<_> = certs.iter().filter(|c| c["signing"] == true).collect();
    assert_eq!(signing.len(), 1, "{doc}");
    let new_pem = std::fs::read_to_string(&new.1).unwrap();
    assert_eq!(
        signing[0]["certificate_pem"].as_str().unwrap().trim(),
        new_pem.trim()
    );
    assert_eq!(
        doc["keys"][0]["certificate_pem"],
        signing[0]["certificate_pem"]
    );
    // Every signed request's audit line names the certificate that signed it.
    let serial = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&new.1));
    let serial = String::from_utf8(serial.stdout).unwrap();
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let log = std::fs::read_to_string(pki.dir.join("audit.jsonl")).unwrap();
    let signed: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["outcome"] == "signed")
        .collect();
    assert!(!signed.is_empty(), "{log}");
    for line in &signed {
        let got = line["cert_serial"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert_eq!(
            got.trim_start_matches('0'),
            serial.trim_start_matches('0'),
            "{line}"
        );
    }
    drop(server);

    // Only expired (or not yet valid) keys: the service does not start.
    for (keys, says) in [
        (vec![spec(&old, "")], "expired at 2020-01-31T00:00:0"),
        (
            vec![spec(&future, "")],
            "is not valid before 2099-01-01T00:00:0",
        ),
        (
            vec![
                spec(&old, ""),
                spec(&new, "not_after = \"2021-01-01T00:00:00Z\""),
            ],
            "expired at 2020-01-31",
        ),
    ] {
        let config = pki.config(&keys);
        let e = Server::start(Command::new(BIN), &config)
            .err()
            .expect("serve started");
        assert!(e.contains("has no certificate valid now"), "{e}");
        assert!(e.contains(says), "expected {says:?} in {e}");
    }

    // A key that expires while the service runs: refused at signing, nothing written.
    let soon = std::time::SystemTime::now() + Duration::from_secs(6);
    let until = format!("not_after = \"{}\"", rfc3339(soon));
    let config = pki.config(&[spec(&new, &until)]);
    let server = Server::start(Command::new(BIN), &config).unwrap_or_else(|e| panic!("{e}"));
    while std::time::SystemTime::now() <= soon + Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let late = d.join("late");
    std::fs::create_dir(&late).unwrap();
    let out = pki.remote_sign(&server, &late, &pkg).output().unwrap();
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("no_valid_certificate") && msg.contains("expired at"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_dir(&late).unwrap().count(),
        0,
        "something was written: {msg}"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a config.
fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = run(Command::new("date")
        .arg("-u")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg("+%Y-%m-%dT%H:%M:%SZ"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
