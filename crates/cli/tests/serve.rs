//! `rpm-verity serve` and the remote signer, on loopback: a real server process, real TLS with
//! certificates made by openssl, and the `RemoteSigner` client of verity-service.
#![allow(clippy::unwrap_used)]

use verity_test_support::rpmbuild as support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fsverity::{FileDigest, HashAlgorithm};
use serde_json::{json, Value};
use verity_service::{Credentials, RemoteSigner, RemoteSignerOptions, RetryPolicy};
use verity_signing::{Certificate, LocalSigner, Signer};
use verity_test_support::openssl::{self, Issuer};

const BIN: &str = env!("CARGO_BIN_EXE_rpm-verity");
const TOKEN: &str = "s3cret-token-for-builder";
const TOKEN2: &str = "token-of-a-client-allowed-only-k2";

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Certificates and keys for one test: a CA with a server and two client certificates, a rogue
/// CA whose client certificate claims a configured CN, and RSA-2048 signing keys.
struct Pki {
    dir: tempfile::TempDir,
}

const EXT: &str = "\
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[server]
basicConstraints = critical,CA:FALSE
subjectAltName = IP:127.0.0.1,DNS:localhost
extendedKeyUsage = serverAuth
[client]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = clientAuth
";

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ext.cnf"), EXT).unwrap();
        let ec = openssl::ec("prime256v1");
        for ca in ["ca", "rogue"] {
            let (key, csr, crt) = (
                format!("{ca}.key"),
                format!("{ca}.csr"),
                format!("{ca}.crt"),
            );
            openssl::new_csr(d, &key, &csr, &ec, &format!("/CN={ca} test CA"));
            let ext = Some(("ext.cnf", "ca"));
            openssl::sign_csr(d, &csr, Issuer::SelfKey(&key), 30, ext, &crt);
        }
        let leaves = [
            ("server", "localhost", "ca", "server"),
            ("client1", "builder-01", "ca", "client"),
            ("client2", "builder-02", "ca", "client"),
            ("intruder", "builder-01", "rogue", "client"),
        ];
        for (name, cn, ca, ext) in leaves {
            let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
            openssl::new_csr(d, &key, &csr, &ec, &format!("/CN={cn}"));
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            let issuer = Issuer::Ca {
                cert: &ca_crt,
                key: &ca_key,
            };
            let ext = Some(("ext.cnf", ext));
            openssl::sign_csr(d, &csr, issuer, 30, ext, &format!("{name}.crt"));
        }
        for k in ["k1", "k2"] {
            let (key, crt) = (format!("{k}.key"), format!("{k}.crt"));
            openssl::genpkey_rsa(d, &key, 2048);
            let subj = format!("/CN=fsverity {k}/O=Throwaway");
            openssl::cert_for_key(d, &key, &crt, &subj, 30);
        }
        // k3: k1's key, encrypted, with a passphrase file.
        std::fs::write(d.join("k3.pass"), "correct horse battery staple\n").unwrap();
        openssl::encrypt_key(d, "k1.key", "k3.key", "file:k3.pass");
        for f in [
            "ca.key",
            "rogue.key",
            "server.key",
            "client1.key",
            "client2.key",
            "intruder.key",
            "k1.key",
            "k2.key",
            "k3.key",
            "k3.pass",
        ] {
            chmod(&d.join(f), 0o600);
        }
        Self { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn token_hash(token: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    }

    /// A config: builder-01 (cert or token) may use k1 and k3, builder-02 (cert) and the k2-only
    /// token client may use k2.
    /// `serve` on a free port with the audit log `audit.jsonl` and `extra` configuration lines.
    fn serve(&self, extra: &str) -> (PathBuf, Server) {
        let log = self.path("audit.jsonl");
        let server = Server::start(&self.config(&log, "127.0.0.1:0", extra), None);
        (log, server)
    }

    fn config(&self, audit_log: &Path, listen: &str, limits: &str) -> PathBuf {
        let cfg = format!(
            r#"listen = "{listen}"
audit_log = "{audit}"
[tls]
cert = "server.crt"
key = "server.key"
client_ca = "ca.crt"
[limits]
{limits}
[[key]]
name = "k1"
key = "k1.key"
cert = "k1.crt"
[[key]]
name = "k2"
key = "k2.key"
cert = "k2.crt"
[[key]]
name = "k3"
key = "k3.key"
cert = "k1.crt"
passphrase_file = "k3.pass"
[[client]]
name = "builder-01"
cert_cn = "builder-01"
token_sha256 = ["{h1}"]
keys = ["k1", "k3"]
[[client]]
name = "builder-02"
cert_cn = "builder-02"
keys = ["k2"]
[[client]]
name = "k2-robot"
token_sha256 = ["{h2}"]
keys = ["k2"]
"#,
            audit = audit_log.display(),
            h1 = Self::token_hash(TOKEN),
            h2 = Self::token_hash(TOKEN2),
        );
        let p = self.path("serve.toml");
        std::fs::write(&p, cfg).unwrap();
        std::fs::write(self.path("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(self.path("token2"), TOKEN2).unwrap();
        std::fs::write(self.path("wrong-token"), "not-the-token").unwrap();
        p
    }

    fn local(&self, key: &str) -> LocalSigner {
        LocalSigner::from_files(
            &self.path(&format!("{key}.key")),
            &self.path(&format!("{key}.crt")),
            None,
        )
        .unwrap()
    }
}

/// A running `rpm-verity serve`; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(config: &Path, listen: Option<&str>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--config").arg(config);
        if let Some(l) = listen {
            cmd.arg("--listen").arg(l);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rpm-verity serve");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_text = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = err_text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start: {}", err_text.lock().unwrap());
            }
        };
        let addr = line.rsplit("https://").next().unwrap().trim().to_string();
        assert!(line.contains("listening on https://"), "{line}");
        Self {
            child,
            addr,
            stderr: err_text,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn audit_lines(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "audit log does not end with a newline"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

fn signed_count(lines: &[Value]) -> usize {
    lines.iter().filter(|l| l["outcome"] == "signed").count()
}

/// (what, credentials, key, body, expected status, error kind, part of the message)
type Case<'a> = (&'a str, Creds<'a>, &'a str, Vec<u8>, u16, &'a str, &'a str);

enum Creds<'a> {
    None,
    Token(&'a str),
    Cert(&'a str),
}

fn agent(pki: &Pki, creds: &Creds) -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let ca = std::fs::read(pki.path("ca.crt")).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&ca).unwrap();
    let mut tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]));
    if let Creds::Cert(name) = creds {
        let cert = ureq::tls::Certificate::from_pem(
            &std::fs::read(pki.path(&format!("{name}.crt"))).unwrap(),
        )
        .unwrap();
        let key = ureq::tls::PrivateKey::from_pem(
            &std::fs::read(pki.path(&format!("{name}.key"))).unwrap(),
        )
        .unwrap();
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// What `GET /metrics` answers.
fn metrics_text(a: &ureq::Agent, server: &Server) -> String {
    a.get(&format!("{}/metrics", server.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// POSTs `body` to the sign endpoint of `key`; returns (status, JSON answer).
fn post_sign(
    agent: &ureq::Agent,
    server: &Server,
    creds: &Creds,
    key: &str,
    body: &[u8],
) -> Result<(u16, Value), ureq::Error> {
    let mut r = agent
        .post(&format!("{}/v1/keys/{key}/sign", server.url()))
        .header("Content-Type", "application/json");
    if let Creds::Token(t) = creds {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = r.send(body)?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn digests(alg: HashAlgorithm, n: usize, seed: u64) -> Vec<FileDigest> {
    (0..n)
        .map(|i| {
            use sha2::Digest;
            let bytes = sha2::Sha512::digest(format!("{seed}/{i}"));
            FileDigest::new(alg, &bytes[..alg.digest_size()]).unwrap()
        })
        .collect()
}

fn remote_args(pki: &Pki, server: &Server, key: &str, creds: &Creds) -> RemoteSignerOptions {
    let mut a = RemoteSignerOptions::new(server.url(), key);
    a.ca = Some(pki.path("ca.crt"));
    a.credentials = match creds {
        Creds::None => Credentials::None,
        Creds::Token(f) => Credentials::TokenFile(pki.path(f)),
        Creds::Cert(n) => Credentials::ClientCert {
            cert: pki.path(&format!("{n}.crt")),
            key: pki.path(&format!("{n}.key")),
        },
    };
    a
}

/// `connect`, with the error as an `anyhow::Error` so `{:#}` shows its whole chain.
fn connect(options: &RemoteSignerOptions) -> anyhow::Result<RemoteSigner> {
    Ok(RemoteSigner::connect(options)?)
}

fn connect_with_retry(
    options: &RemoteSignerOptions,
    retry: RetryPolicy,
) -> anyhow::Result<RemoteSigner> {
    let mut options = options.clone();
    options.retry = retry;
    connect(&options)
}

#[test]
fn remote_signatures_are_byte_identical_to_local() {
    let pki = Pki::new();
    let (log, server) = pki.serve("");
    let local = pki.local("k1");
    // 2300 digests: crosses the 1000-digest batch limit, and switches hash algorithm midway.
    let mut batch = digests(HashAlgorithm::Sha256, 1500, 1);
    batch.extend(digests(HashAlgorithm::Sha512, 800, 2));
    let expected = local.sign_digests(&batch).unwrap();

    for creds in [Creds::Token("token"), Creds::Cert("client1")] {
        let remote = connect(&remote_args(&pki, &server, "k1", &creds)).unwrap();
        assert_eq!(remote.certificate_der(), local.certificate_der());
        let got = remote.sign_digests(&batch).unwrap();
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                g == e,
                "signature {i} differs between remote and local signing"
            );
        }
    }
    // k3 is k1's key encrypted with a passphrase file: same signatures.
    let k3 = connect(&remote_args(&pki, &server, "k3", &Creds::Token("token"))).unwrap();
    assert_eq!(
        k3.sign_digests(&batch[..10]).unwrap(),
        expected[..10].to_vec()
    );

    // Batches are 1000 digests or fewer, one per algorithm run: 1000+500 sha256, 800 sha512, x2
    // credentials, plus one k3 request.
    let lines = audit_lines(&log);
    let counts: Vec<u64> = lines
        .iter()
        .filter(|l| l["action"] == "sign")
        .map(|l| l["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![1000, 500, 800, 1000, 500, 800, 10]);
    let first = lines.iter().find(|l| l["action"] == "sign").unwrap();
    assert_eq!(first["client"], "builder-01");
    assert_eq!(first["auth"], "token");
    assert_eq!(first["key"], "k1");
    assert_eq!(first["digests"][0], batch[0].to_hex());
    assert!(lines.iter().any(|l| l["action"] == "sign"
        && l["auth"] == "certificate"
        && l["cert_cn"] == "builder-01"));
}

#[test]
fn bad_requests_are_refused_logged_and_sign_nothing() {
    let pki = Pki::new();
    let (log, server) = pki.serve("max_body_bytes = 200000");
    let good = |n: usize| {
        json!({"hash_alg": "sha256", "digests": digests(HashAlgorithm::Sha256, n, 7).iter().map(|d| d.to_hex()).collect::<Vec<_>>()}).to_string().into_bytes()
    };
    let body = |v: Value| v.to_string().into_bytes();
    let huge = vec![b' '; 300_000];
    let cases: Vec<Case> = vec![
        (
            "no credentials",
            Creds::None,
            "k1",
            good(1),
            401,
            "no_credentials",
            "no credentials",
        ),
        (
            "wrong token",
            Creds::Token("not-the-token"),
            "k1",
            good(1),
            401,
            "bad_credentials",
            "unknown bearer token",
        ),
        // builder-01 is a configured CN, but this certificate comes from a CA the server does not
        // trust.
        (
            "client cert from unknown CA",
            Creds::Cert("intruder"),
            "k1",
            good(1),
            401,
            "bad_client_certificate",
            "client certificate refused: invalid peer certificate: UnknownIssuer",
        ),
        (
            "key not allowed (token)",
            Creds::Token(TOKEN2),
            "k1",
            good(1),
            403,
            "key_not_allowed",
            "may not use key \"k1\"",
        ),
        (
            "key not allowed (cert)",
            Creds::Cert("client2"),
            "k1",
            good(1),
            403,
            "key_not_allowed",
            "client \"builder-02\"",
        ),
        (
            "unknown key",
            Creds::Token(TOKEN),
            "nope",
            good(1),
            404,
            "unknown_key",
            "no key named \"nope\"",
        ),
        (
            "malformed JSON",
            Creds::Token(TOKEN),
            "k1",
            b"{\"hash_alg\": \"sha256\", \"digests\": [".to_vec(),
            400,
            "malformed_json",
            "not a valid sign request",
        ),
        (
            "bad hex",
            Creds::Token(TOKEN),
            "k1",
            body(json!({"hash_alg": "sha256", "digests": ["zz".repeat(32)]})),
            400,
            "bad_hex",
            "digests[0] is not hex",
        ),
        (
            "wrong length",
            Creds::Token(TOKEN),
            "k1",
            body(json!({"hash_alg": "sha512", "digests": ["ab".repeat(32)]})),
            400,
            "wrong_digest_length",
            "has 32 bytes; sha512 digests have 64",
        ),
        (
            "unknown alg",
            Creds::Token(TOKEN),
            "k1",
            body(json!({"hash_alg": "md5", "digests": ["ab".repeat(16)]})),
            400,
            "unknown_hash_alg",
            "md5",
        ),
        (
            "1001 digests",
            Creds::Token(TOKEN),
            "k1",
            good(1001),
            400,
            "batch_too_large",
            "1001 digests in one request; the limit is 1000",
        ),
        (
            "oversized body",
            Creds::Token(TOKEN),
            "k1",
            huge,
            413,
            "body_too_large",
            "exceeds the limit of 200000 bytes",
        ),
    ];
    for (what, creds, key, body, status, kind, msg) in cases {
        let before = audit_lines(&log).len();
        let a = agent(&pki, &creds);
        // The oversized body too: the server reads it before closing, so the answer arrives.
        let (got, answer) =
            post_sign(&a, &server, &creds, key, &body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["error"]["kind"], kind, "{what}: {answer}");
        let m = answer["error"]["message"].as_str().unwrap();
        assert!(m.contains(msg), "{what}: message {m:?} lacks {msg:?}");
        assert!(answer.get("signatures").is_none(), "{what}");
        let lines = audit_lines(&log);
        assert_eq!(
            lines.len(),
            before + 1,
            "{what}: one audit line per refused request"
        );
        let last = lines.last().unwrap();
        assert_eq!(last["outcome"], "rejected", "{what}");
        assert_eq!(last["error"], kind, "{what}");
        assert_eq!(last["status"], status, "{what}");
    }

    assert_eq!(signed_count(&audit_lines(&log)), 0, "nothing was signed");
    let metrics = metrics_text(&agent(&pki, &Creds::None), &server);
    assert!(
        !metrics.contains("rpm_verity_serve_signatures_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rpm_verity_serve_errors_total{kind=\"bad_hex\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rpm_verity_serve_requests_total{endpoint=\"sign\",status=\"401\"} 3"),
        "{metrics}"
    );

    // The client turns refusals into clear errors before any package is touched.
    let e = connect(&remote_args(
        &pki,
        &server,
        "k1",
        &Creds::Token("wrong-token"),
    ))
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("HTTP 401 (bad_credentials): unknown bearer token"),
        "{e:#}"
    );
    let e = connect(&remote_args(&pki, &server, "k1", &Creds::Token("token2"))).unwrap_err();
    assert!(
        format!("{e:#}").contains(
            "key \"k1\" does not exist or is not allowed for these credentials (allowed: k2)"
        ),
        "{e:#}"
    );
    let e = connect(&remote_args(&pki, &server, "k1", &Creds::Cert("intruder"))).unwrap_err();
    assert!(
        format!("{e:#}").contains("HTTP 401 (bad_client_certificate)"),
        "{e:#}"
    );
}

#[test]
fn two_hundred_concurrent_clients() {
    let pki = Arc::new(Pki::new());
    let log = pki.path("audit.jsonl");
    // All 200 come from 127.0.0.1, one peer.
    let server = Arc::new(Server::start(
        &pki.config(&log, "127.0.0.1:0", "max_connections_per_peer = 256"),
        None,
    ));
    let cert = Arc::new(Certificate::parse(&std::fs::read(pki.path("k1.crt")).unwrap()).unwrap());
    const CLIENTS: usize = 200;
    const REQUESTS: usize = 50;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (pki, server, cert) = (pki.clone(), server.clone(), cert.clone());
            std::thread::spawn(move || {
                let creds = if c % 2 == 0 { Creds::Token(TOKEN) } else { Creds::Cert("client1") };
                let a = agent(&pki, &creds);
                for r in 0..REQUESTS {
                    let n = 1 + (c + r) % 3;
                    let ds = digests(HashAlgorithm::Sha256, n, (c * 1000 + r) as u64);
                    let body = json!({"hash_alg": "sha256", "digests": ds.iter().map(|d| d.to_hex()).collect::<Vec<_>>()});
                    let (status, answer) = post_sign(&a, &server, &creds, "k1", body.to_string().as_bytes()).unwrap();
                    assert_eq!(status, 200, "client {c} request {r}: {answer}");
                    let sigs = answer["signatures"].as_array().unwrap();
                    assert_eq!(sigs.len(), n);
                    for (d, s) in ds.iter().zip(sigs) {
                        use base64::Engine;
                        let sig = base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap()).unwrap();
                        verity_signing::verify_signature(&sig, d, std::slice::from_ref(&cert))
                            .unwrap_or_else(|e| panic!("client {c} request {r}: wrong signature: {e}"));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let lines = audit_lines(&log);
    let sign_lines: Vec<&Value> = lines.iter().filter(|l| l["action"] == "sign").collect();
    assert_eq!(
        sign_lines.len(),
        CLIENTS * REQUESTS,
        "one audit line per accepted request"
    );
    assert!(sign_lines.iter().all(|l| l["outcome"] == "signed"));
    let mut seen = std::collections::HashSet::new();
    for l in &sign_lines {
        assert!(
            seen.insert(l["digests"][0].as_str().unwrap().to_string()),
            "a request was logged twice"
        );
    }
}

#[test]
fn sigkill_mid_signing_then_restart() {
    let pki = Pki::new();
    let log = pki.path("audit.jsonl");
    let config = pki.config(&log, "127.0.0.1:0", "");
    let mut server = Server::start(&config, None);
    let addr = server.addr.clone();
    let local = pki.local("k1");
    let batch = digests(HashAlgorithm::Sha256, 6000, 3);
    let expected = local.sign_digests(&batch).unwrap();

    // 1. Killed with no restart: the client retries, then fails naming the service; no partial
    //    result reaches the caller.
    let mut remote = connect_with_retry(
        &remote_args(&pki, &server, "k1", &Creds::Token("token")),
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
        },
    )
    .unwrap();
    remote.set_batch_size(50);
    let remote = Arc::new(remote);
    let r2 = remote.clone();
    let b2 = batch.clone();
    let client = std::thread::spawn(move || r2.sign_digests(&b2));
    wait_for(|| signed_count(&audit_lines(&log)) >= 2);
    server.kill9();
    let started = Instant::now();
    let err = client
        .join()
        .unwrap()
        .expect_err("signing cannot complete without the server");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("https://{addr}/v1/keys/k1/sign")),
        "{msg}"
    );
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let lines_after_kill = audit_lines(&log);
    assert!(
        signed_count(&lines_after_kill) < 6000 / 50,
        "the kill came mid-run"
    );

    // 2. Killed and restarted on the same port while the client is retrying: it completes, and
    //    the result is exactly what local signing gives.
    let mut server = Server::start(&config, Some(&addr));
    assert_eq!(server.addr, addr);
    let remote = Arc::new({
        let mut r = connect(&remote_args(&pki, &server, "k1", &Creds::Token("token"))).unwrap();
        r.set_batch_size(50);
        r
    });
    let r2 = remote.clone();
    let b2 = batch.clone();
    let before = signed_count(&audit_lines(&log));
    let client = std::thread::spawn(move || r2.sign_digests(&b2));
    wait_for(|| signed_count(&audit_lines(&log)) >= before + 2);
    server.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let server = Server::start(&config, Some(&addr));
    let got = client
        .join()
        .unwrap()
        .expect("the client rides out a restart");
    assert!(
        got == expected,
        "signatures after a restart differ from local signing"
    );
    // Every line of the log, across two SIGKILLs, is a complete JSON record.
    let lines = audit_lines(&log);
    assert!(signed_count(&lines) >= before + 6000 / 50);
    drop(server);
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn group_readable_key_is_refused_at_start() {
    let pki = Pki::new();
    let config = pki.config(&pki.path("audit.jsonl"), "127.0.0.1:0", "");
    chmod(&pki.path("k2.key"), 0o644);
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("k2.key") && err.contains("mode 0644") && err.contains("refusing"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing listened");

    chmod(&pki.path("k2.key"), 0o600);
    chmod(&pki.path("k3.pass"), 0o640);
    let out = Command::new(BIN)
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("passphrase file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    chmod(&pki.path("k3.pass"), 0o600);
    let out = Command::new(BIN)
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn refuses_to_sign_when_the_audit_log_cannot_be_written() {
    let pki = Pki::new();
    let server = Server::start(&pki.config(Path::new("/dev/full"), "127.0.0.1:0", ""), None);
    let creds = Creds::Token(TOKEN);
    let body = json!({"hash_alg": "sha256", "digests": ["ab".repeat(32)]}).to_string();
    let (status, answer) =
        post_sign(&agent(&pki, &creds), &server, &creds, "k1", body.as_bytes()).unwrap();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["kind"], "audit_unavailable");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/dev/full"));
    assert!(answer.get("signatures").is_none());
    let e = connect_with_retry(
        &remote_args(&pki, &server, "k1", &Creds::Token("token")),
        RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("audit_unavailable"), "{e:#}");
}

#[test]
fn sigterm_finishes_in_flight_requests() {
    let pki = Pki::new();
    let (log, server) = pki.serve("per_client_concurrency = 1");
    let creds = Creds::Token(TOKEN);
    let a = agent(&pki, &creds);
    // Health and metrics answer without credentials.
    let mut r = a.get(&format!("{}/healthz", server.url())).call().unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "ok\n");

    // Several large requests queue behind the per-client limit of 1, so some are surely in
    // flight when SIGTERM arrives.
    let url = server.url();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let a = a.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let ds = digests(HashAlgorithm::Sha256, 1000, 100 + i);
                let body = json!({"hash_alg": "sha256", "digests": ds.iter().map(|d| d.to_hex()).collect::<Vec<_>>()});
                // A request still being sent when SIGTERM arrives is not in flight: the
                // connection may be closed under it (`None`).
                let mut resp = a
                    .post(&format!("{url}/v1/keys/k1/sign"))
                    .header("Authorization", &format!("Bearer {TOKEN}"))
                    .send(body.to_string().as_bytes())
                    .ok()?;
                let status = resp.status().as_u16();
                let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
                Some((status, v["signatures"].as_array().map(|s| s.len())))
            })
        })
        .collect();
    // The gauge counts every request being handled, this `/metrics` request too: 4 means at
    // least 3 sign requests (waiting for the client's slot counts as in flight). With 3 it was
    // sometimes 2 sign requests, and the other 2 were still connecting when SIGTERM came.
    wait_for(|| {
        let m = agent(&pki, &Creds::None)
            .get(&format!("{url}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        m.lines().any(|l| {
            l.starts_with("rpm_verity_serve_in_flight_requests ")
                && l.split(' ').nth(1).unwrap().parse::<i64>().unwrap() >= 4
        })
    });
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // Every request that was in flight (at least 3 sign requests, by the metric) is answered in
    // full; one not yet in flight may be refused, never answered with an error or cut short.
    let answered: Vec<_> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    assert!(
        answered.len() >= 3,
        "in-flight requests complete: {answered:?}"
    );
    for a in &answered {
        assert_eq!(a, &(200, Some(1000)), "in-flight requests complete");
    }
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status:?}\n{}",
        server.stderr.lock().unwrap()
    );
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "no new connections after shutdown"
    );
    // One audit line per request answered: a request refused before it was in flight signed
    // nothing (it was counted as 4 whatever happened, which failed when one was refused).
    assert_eq!(signed_count(&audit_lines(&log)), answered.len());
}

#[test]
fn hash_token_prints_the_config_value() {
    let mut child = Command::new(BIN)
        .args(["serve", "--hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{TOKEN}\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out.trim(), Pki::token_hash(TOKEN));
}

/// `rpm-verity sign --signer` on whole packages: byte-identical to signing locally with the
/// same key and certificate; and a server killed mid-package leaves the package untouched.
#[test]
fn remote_package_signing_matches_local_and_never_half_signs() {
    let pki = Pki::new();
    let log = pki.path("audit.jsonl");
    let config = pki.config(&log, "127.0.0.1:0", "");
    let mut server = Server::start(&config, None);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = support::build_rpm(w, "rem-a", "w19.zstdio", support::Contents::ALL);
    let b = support::build_rpm_custom(
        w,
        "rem-b",
        "w9.gzdio",
        "mkdir -p %{buildroot}/opt/b\nfor i in $(seq 1 1500); do echo \"b $i\" > %{buildroot}/opt/b/f$i; done\n",
        "/opt/b\n",
    );
    let local_dir = w.join("local");
    let remote_dir = w.join("remote");
    std::fs::create_dir_all(&local_dir).unwrap();
    std::fs::create_dir_all(&remote_dir).unwrap();
    let run = |args: &[&std::ffi::OsStr]| Command::new(BIN).args(args).output().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    let key = pki.path("k1.key");
    let cert = pki.path("k1.crt");
    let out = run(&[
        &os("sign"),
        &os("--key"),
        key.as_os_str(),
        &os("--cert"),
        cert.as_os_str(),
        &os("--output-dir"),
        local_dir.as_os_str(),
        a.as_os_str(),
        b.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = server.url();
    let ca = pki.path("ca.crt");
    let token = pki.path("token");
    // `dest` None: in place.
    let remote_sign = |dest: Option<&Path>, pkgs: &[&Path]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("sign")
            .arg("--signer")
            .arg(&url)
            .arg("--key-name")
            .arg("k1")
            .arg("--token-file")
            .arg(&token)
            .arg("--ca")
            .arg(&ca);
        if let Some(dest) = dest {
            cmd.arg("--output-dir").arg(dest);
        }
        cmd.args(pkgs);
        cmd
    };
    let out = remote_sign(Some(&remote_dir), &[&a, &b]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in [&a, &b] {
        let name = p.file_name().unwrap();
        let l = std::fs::read(local_dir.join(name)).unwrap();
        let r = std::fs::read(remote_dir.join(name)).unwrap();
        assert!(l == r, "{name:?}: remote and local signing differ");
        assert_ne!(
            l,
            std::fs::read(p).unwrap(),
            "signed copy differs from the input"
        );
    }

    // In place, with the server killed while the 1500-file package is being signed: the client
    // gives up (or the server is gone before it starts); the package is byte-identical.
    let victim = w.join("victim.rpm");
    std::fs::copy(&b, &victim).unwrap();
    let before = std::fs::read(&victim).unwrap();
    let before_lines = signed_count(&audit_lines(&log));
    let mut cmd = remote_sign(None, &[&victim]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| signed_count(&audit_lines(&log)) > before_lines);
    server.kill9();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // The last batch may have been answered before the kill: then the package is signed
        // completely, and equal to the local result.
        let l = std::fs::read(local_dir.join(b.file_name().unwrap())).unwrap();
        assert!(std::fs::read(&victim).unwrap() == l);
    } else {
        assert!(err.contains("victim.rpm"), "{err}");
        assert!(
            std::fs::read(&victim).unwrap() == before,
            "package changed: {err}"
        );
    }
    let stray: Vec<_> = std::fs::read_dir(w)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temp files left: {stray:?}");
}

/// TLS to the test server with the test CA, offering `alpn` (`h2`, `http/1.1`).
fn tls_connect(
    pki: &Pki,
    addr: &str,
    alpn: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(pki.path("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// Whether the server has closed `stream` (end of stream or an error) within `within`.
fn closed_within(stream: &mut impl Read, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return true,
        }
    }
    false
}

/// `curl ARGS URL` against the test server with its CA: (HTTP status, or 000 if none was read;
/// the body).
fn curl(pki: &Pki, args: &[&str], url: &str) -> (String, String) {
    let body = pki.path("curl-body");
    let _ = std::fs::remove_file(&body);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(pki.path("ca.crt"))
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("running curl");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        std::fs::read_to_string(&body).unwrap_or_default() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn healthz_ok(pki: &Pki, server: &Server) -> bool {
    let a = ureq::Agent::config_builder()
        .tls_config(agent_tls(pki))
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    a.get(&format!("{}/healthz", server.url()))
        .call()
        .is_ok_and(|r| r.status() == 200)
}

fn agent_tls(pki: &Pki) -> ureq::tls::TlsConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(pki.path("ca.crt")).unwrap())
        .unwrap()
        .to_owned();
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build()
}

/// Connections that never send a request (plain TCP that never starts TLS, TLS that never sends
/// a request, HTTP/2 that sends only its preface) and one gone idle after a request must not
/// keep everyone else out: they need no credentials.
#[test]
fn idle_connections_cannot_keep_clients_out() {
    let pki = Pki::new();
    let (_, server) = pki.serve(
        "max_connections = 8\nmax_connections_per_peer = 8\nhandshake_timeout_secs = 2\n\
             first_request_timeout_secs = 2\nidle_timeout_secs = 3",
    );
    let mut plain: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&server.addr).unwrap())
        .collect();
    let mut silent: Vec<_> = (0..2)
        .map(|_| tls_connect(&pki, &server.addr, b"http/1.1"))
        .collect();
    let mut preface: Vec<_> = (0..2)
        .map(|_| {
            let mut s = tls_connect(&pki, &server.addr, b"h2");
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
            s.flush().unwrap();
            s
        })
        .collect();
    let mut used = tls_connect(&pki, &server.addr, b"http/1.1");
    used.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    let n = used.read(&mut answer).unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let held_at = Instant::now();
    // All eight slots are taken now.
    assert!(
        !healthz_ok(&pki, &server),
        "max_connections = 8 is not in force"
    );

    let mut waited = None;
    while held_at.elapsed() < Duration::from_secs(15) {
        if healthz_ok(&pki, &server) {
            waited = Some(held_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = waited.expect("/healthz still refused 15 s after the idle connections opened");
    assert!(
        waited < Duration::from_secs(6),
        "/healthz refused for {waited:?}; the timeouts are 2 s and 3 s"
    );

    // Every held connection was closed by the server, though the test never closed one.
    let bound = Duration::from_secs(8).saturating_sub(held_at.elapsed());
    for s in &mut plain {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(closed_within(s, bound), "plain TCP connection still open");
    }
    for s in silent.iter_mut().chain(&mut preface).chain([&mut used]) {
        s.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(closed_within(s, bound), "TLS connection still open");
    }
    drop(server);
}

/// One host may hold at most `max_connections_per_peer` connections, so it cannot take the slots
/// other hosts need, while they still get in.
#[test]
fn one_peer_cannot_take_every_connection() {
    let pki = Pki::new();
    let (_, server) = pki.serve("max_connections = 8\nmax_connections_per_peer = 3");
    let _held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&server.addr).unwrap())
        .collect();
    let url = format!("{}/healthz", server.url());
    let (status, out) = curl(&pki, &[], &url);
    assert_eq!(
        status, "000",
        "a 4th connection of 127.0.0.1 was served: {out}"
    );
    // 127.0.0.2 is loopback too, and another peer.
    let (status, out) = curl(&pki, &["--interface", "127.0.0.2"], &url);
    assert_eq!(status, "200", "{out}");
    let metrics = curl(
        &pki,
        &["--interface", "127.0.0.2"],
        &format!("{}/metrics", server.url()),
    )
    .1;
    assert!(
        metrics.contains("rpm_verity_serve_errors_total{kind=\"peer_connection_limit\"} 1"),
        "{metrics}"
    );
}

/// Refusals need no credentials, so what they put in the audit log is bounded: client-chosen
/// text is cut and escaped, and a peer gets at most so many refusal lines per second, the rest
/// counted in a line written when its refusals are logged again.
#[test]
fn refusals_cannot_flood_the_audit_log() {
    let pki = Pki::new();
    let (log, server) = pki.serve("");
    let a = agent(&pki, &Creds::None);
    let name = format!("%1b%5b31m%0a{}", "A".repeat(60_000));
    const FLOOD: usize = 200;
    for _ in 0..FLOOD {
        let (status, _) = post_sign(&a, &server, &Creds::None, &name, b"{}").unwrap();
        assert_eq!(status, 401);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let (status, _) = post_sign(&a, &server, &Creds::None, &name, b"{}").unwrap();
    assert_eq!(status, 401);

    let text = std::fs::read_to_string(&log).unwrap();
    let lines = audit_lines(&log);
    let refusals: Vec<&Value> = lines.iter().filter(|l| l["action"] == "sign").collect();
    let unlogged: u64 = lines
        .iter()
        .filter(|l| l["action"] == "refusals_unlogged")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert!(unlogged > 0, "no refusal was left out of the log");
    assert_eq!(
        refusals.len() as u64 + unlogged,
        FLOOD as u64 + 1,
        "every refusal is either logged or counted"
    );
    for l in text.lines() {
        assert!(l.len() < 1024, "audit line of {} bytes", l.len());
    }
    for r in &refusals {
        let key = r["key"].as_str().unwrap();
        assert!(key.starts_with("\\u{1b}[31m\\nAAA"), "{key}");
        assert!(key.ends_with("...(60006 bytes)"), "{key}");
        assert!(!key.chars().any(char::is_control), "{key}");
    }
    assert!(
        text.len() < 64 * 1024,
        "{} bytes of audit log for {} refusals",
        text.len(),
        FLOOD + 1
    );
    let metrics = metrics_text(&a, &server);
    assert!(
        metrics.contains(&format!(
            "rpm_verity_serve_audit_refusals_unlogged_total {unlogged}\n"
        )),
        "{metrics}"
    );
}

/// A refused body the client declared and is still sending is read before the connection closes,
/// so the client gets to read the refusal rather than a reset (RFC 9112 section 9.6).
#[test]
fn refusals_of_large_bodies_reach_curl() {
    let pki = Pki::new();
    let (_, server) = pki.serve("max_body_bytes = 200000");
    let huge = pki.path("huge.json");
    std::fs::write(&huge, vec![b' '; 300_000]).unwrap();
    let data = format!("@{}", huge.display());
    let url = format!("{}/v1/keys/k1/sign", server.url());
    let auth = format!("Authorization: Bearer {TOKEN}");
    // No `Expect: 100-continue`: the body follows the headers at once, as most clients send it.
    let plain = ["-H", "Expect:", "-H", "Content-Type: application/json"];
    for (what, extra, status, kind) in [
        (
            "too large, HTTP/1.1",
            vec!["--http1.1", "-H", &auth],
            "413",
            "body_too_large",
        ),
        (
            "too large, HTTP/2",
            vec!["--http2", "-H", &auth],
            "413",
            "body_too_large",
        ),
        (
            "no credentials, HTTP/1.1",
            vec!["--http1.1"],
            "401",
            "no_credentials",
        ),
    ] {
        for i in 0..10 {
            let mut args = plain.to_vec();
            args.extend(&extra);
            args.extend(["--data-binary", &data]);
            let (got, out) = curl(&pki, &args, &url);
            assert_eq!(got, status, "{what}, try {i}: {out}");
            assert!(out.contains(kind), "{what}, try {i}: {out}");
        }
    }
}

/// A fake signing service over TLS (the test server certificate) that answers `GET /v1/keys` with
/// k1's certificate and sign requests according to `mode`: 0 honest, 1 signatures of other
/// digests, 2 signatures by k2, 3 not PKCS#7 at all. Returns its address.
fn fake_service(pki: &Pki, mode: Arc<std::sync::atomic::AtomicU8>) -> String {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(pki.path("server.crt"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let k1_pem = std::fs::read_to_string(pki.path("k1.crt")).unwrap();
    let (k1, k2) = (pki.local("k1"), pki.local("k2"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut s = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut l = String::new();
                if s.read_line(&mut l).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let mut body = vec![0u8; len];
            if s.read_exact(&mut body).is_err() {
                continue;
            }
            let answer = if head.starts_with("GET /v1/keys ") {
                json!({"keys": [{"name": "k1", "certificate_pem": k1_pem,
                    "hash_algorithms": ["sha256", "sha512"]}]})
            } else {
                let req: Value = serde_json::from_slice(&body).unwrap();
                let alg = HashAlgorithm::from_name(req["hash_alg"].as_str().unwrap()).unwrap();
                let sigs: Vec<String> = req["digests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        use base64::Engine;
                        let mut bytes = hex::decode(h.as_str().unwrap()).unwrap();
                        let m = mode.load(std::sync::atomic::Ordering::SeqCst);
                        if m == 1 {
                            bytes[0] ^= 1;
                        }
                        let d = FileDigest::new(alg, &bytes).unwrap();
                        let sig = match m {
                            2 => k2.sign_digest(&d).unwrap(),
                            3 => b"not a signature".to_vec(),
                            _ => k1.sign_digest(&d).unwrap(),
                        };
                        base64::engine::general_purpose::STANDARD.encode(sig)
                    })
                    .collect();
                json!({"hash_alg": alg.name(), "key": "k1", "signatures": sigs})
            };
            let body = answer.to_string();
            let s = s.get_mut();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.flush();
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    });
    addr
}

/// The remote signer checks every signature it gets back against the key's certificate before
/// handing it on, so a faulty or hostile service cannot get a wrong signature into a package.
#[test]
fn remote_signer_refuses_signatures_it_cannot_verify() {
    let pki = Pki::new();
    let mode = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let addr = fake_service(&pki, mode.clone());
    let mut options = RemoteSignerOptions::new(format!("https://{addr}"), "k1");
    options.ca = Some(pki.path("ca.crt"));
    options.retry = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    let signer = connect(&options).unwrap();
    let ds = digests(HashAlgorithm::Sha256, 3, 99);
    // The fake itself is sound: honest answers are taken.
    assert_eq!(signer.sign_digests(&ds).unwrap().len(), 3);
    for (m, why) in [
        (1, "signature does not match the file digest"),
        (2, "unknown signer"),
        (3, "malformed PKCS#7"),
    ] {
        mode.store(m, std::sync::atomic::Ordering::SeqCst);
        let e = match signer.sign_digests(&ds) {
            Ok(_) => panic!("mode {m}: wrong signatures were taken"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(&format!(
                "signatures[0] is not a valid signature of digest {} by key \"k1\"",
                ds[0].to_hex()
            )),
            "mode {m}: {e}"
        );
        assert!(e.contains(why), "mode {m}: {e}");
    }
}

/// Several `--signer`s: a request goes to the replica that answered last, and on a connection
/// failure or a 5xx answer to the next, each tried at most twice; the audit line names the
/// request and the attempt.
#[test]
fn fails_over_between_replicas() {
    let pki = Pki::new();
    let (log_a, log_b) = (pki.path("a.jsonl"), pki.path("b.jsonl"));
    let mut a = Server::start(&pki.config(&log_a, "127.0.0.1:0", ""), None);
    let b = Server::start(&pki.config(&log_b, "127.0.0.1:0", ""), None);
    let local = pki.local("k1");
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = events.clone();
    let mut options = remote_args(&pki, &a, "k1", &Creds::Token("token"));
    options.urls = vec![a.url(), b.url()];
    options.retry = RetryPolicy {
        attempts: 7,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    options.events = Some(verity_service::EventSink(Arc::new(move |e| {
        sink.lock().unwrap().push(match e {
            verity_service::SignerEvent::Using { url } => format!("using {url}"),
            verity_service::SignerEvent::Failed { url, .. } => format!("failed {url}"),
        })
    })));
    let remote = connect(&options).unwrap();
    // The signature length comes from the certificate, without a request.
    for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        assert_eq!(remote.signature_len(alg), local.signature_len(alg));
        assert!(remote.signature_len(alg).is_some());
    }
    let batch = digests(HashAlgorithm::Sha256, 30, 7);
    let expected = local.sign_digests(&batch).unwrap();
    assert_eq!(remote.sign_digests(&batch).unwrap(), expected);
    assert_eq!(signed_count(&audit_lines(&log_a)), 1);
    assert_eq!(signed_count(&audit_lines(&log_b)), 0);
    assert_eq!(*events.lock().unwrap(), [format!("using {}", a.url())]);

    a.kill9();
    assert_eq!(remote.sign_digests(&batch).unwrap(), expected);
    assert_eq!(remote.sign_digests(&batch).unwrap(), expected);
    let lines_b = audit_lines(&log_b);
    let signed_b: Vec<&Value> = lines_b
        .iter()
        .filter(|l| l["outcome"] == "signed")
        .collect();
    assert_eq!(signed_b.len(), 2, "{lines_b:?}");
    // The first request after the kill was its attempt 2 (attempt 1 met the dead replica); the
    // next went straight to b.
    assert_eq!(signed_b[0]["attempt"], "2", "{:?}", signed_b[0]);
    assert_eq!(signed_b[1]["attempt"], "1", "{:?}", signed_b[1]);
    let ids: std::collections::BTreeSet<String> = audit_lines(&log_a)
        .iter()
        .chain(&lines_b)
        .filter(|l| l["action"] == "sign")
        .map(|l| l["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "one name per request: {ids:?}");
    assert_eq!(
        *events.lock().unwrap(),
        [
            format!("using {}", a.url()),
            format!("failed {}", a.url()),
            format!("using {}", b.url())
        ]
    );

    // A 5xx answer (audit log on /dev/full: 503) also fails over, here at connect.
    let full = Server::start(&pki.config(Path::new("/dev/full"), "127.0.0.1:0", ""), None);
    options.urls = vec![full.url(), b.url()];
    let remote = connect(&options).unwrap();
    assert_eq!(remote.sign_digests(&batch).unwrap(), expected);

    // Every replica down: each tried twice, then a clear error naming the last one.
    options.urls = vec![a.url(), full.url()];
    let e = connect(&options).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("gave up after 4 attempts"), "{text}");
    assert!(text.contains(&full.url()), "{text}");
}

/// ECDSA keys in the service: P-256 and P-384 keys in the config sign packages remotely to the
/// same bytes as locally (RFC 6979 nonces, and the client lays out from the certificate the
/// longest signature the local signer reserves), which the client verified on the way and
/// `verify` accepts.
#[test]
fn remote_ecdsa_signing_matches_local() {
    let pki = Pki::new();
    let d = pki.dir.path();
    let mut extra = String::new();
    for (name, curve) in [("p256", "P-256"), ("p384", "P-384")] {
        let key = format!("{name}.key");
        openssl::genpkey_ec(d, &key, curve);
        chmod(&d.join(&key), 0o600);
        let subj = format!("/CN=fsverity {name}/O=Throwaway");
        let crt = format!("{name}.crt");
        openssl::cert_for_key(d, &key, &crt, &subj, 30);
        extra.push_str(&format!(
            "[[key]]\nname = \"{name}\"\nkey = \"{key}\"\ncert = \"{crt}\"\n"
        ));
    }
    let log = pki.path("audit.jsonl");
    let config = pki.config(&log, "127.0.0.1:0", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "keys = [\"k1\", \"k3\"]",
        "keys = [\"k1\", \"k3\", \"p256\", \"p384\"]",
    );
    std::fs::write(&config, format!("{text}{extra}")).unwrap();
    let server = Server::start(&config, None);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let a = support::build_rpm(w, "eca", "w19.zstdio", support::Contents::ALL);
    let b = support::build_rpm_custom(
        w,
        "ecb",
        "w9.gzdio",
        "mkdir -p %{buildroot}/opt/b\nfor i in $(seq 1 300); do echo \"b $i\" > %{buildroot}/opt/b/f$i; done\n",
        "/opt/b\n",
    );
    for name in ["p256", "p384"] {
        let local_dir = w.join(format!("local-{name}"));
        let remote_dir = w.join(format!("remote-{name}"));
        std::fs::create_dir_all(&local_dir).unwrap();
        std::fs::create_dir_all(&remote_dir).unwrap();
        let out = Command::new(BIN)
            .arg("sign")
            .arg("--key")
            .arg(pki.path(&format!("{name}.key")))
            .arg("--cert")
            .arg(pki.path(&format!("{name}.crt")))
            .arg("--output-dir")
            .arg(&local_dir)
            .args([&a, &b])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(BIN)
            .arg("sign")
            .arg("--signer")
            .arg(server.url())
            .arg("--key-name")
            .arg(name)
            .arg("--token-file")
            .arg(pki.path("token"))
            .arg("--ca")
            .arg(pki.path("ca.crt"))
            .arg("--output-dir")
            .arg(&remote_dir)
            .args([&a, &b])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for p in [&a, &b] {
            let file = p.file_name().unwrap();
            let l = std::fs::read(local_dir.join(file)).unwrap();
            let r = std::fs::read(remote_dir.join(file)).unwrap();
            assert!(l == r, "{name} {file:?}: remote and local signing differ");
            assert_ne!(l, std::fs::read(p).unwrap());
            let out = Command::new(BIN)
                .arg("verify")
                .arg("--cert")
                .arg(pki.path(&format!("{name}.crt")))
                .arg(remote_dir.join(file))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} {file:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(signed_count(&audit_lines(&log)) > 0);
}
