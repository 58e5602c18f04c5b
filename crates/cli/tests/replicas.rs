//! Two `rpm-verity serve` replicas behind a real load balancer (Debian's HAProxy, TLS passed
//! through in `mode tcp`, health checks on `/healthz`): one is SIGKILLed while `sign` signs 20
//! packages through HAProxy. Every package must end signed and byte-identical to local signing,
//! and the two audit logs together must account for every request exactly once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use verity_test_support::rpmbuild::build_rpm_custom;
use verity_test_support::run;

const BIN: &str = env!("CARGO_BIN_EXE_rpm-verity");
const TOKEN: &str = "replica-test-token";

fn sh(dir: &Path, script: &str) {
    run(Command::new("bash")
        .arg("-euc")
        .arg(script)
        .current_dir(dir));
}

/// A TLS CA and server certificate for 127.0.0.1, an RSA-2048 signing key, the token.
fn pki(d: &Path) {
    sh(
        d,
        r#"
cat >ext.cnf <<'E'
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[server]
basicConstraints = critical,CA:FALSE
subjectAltName = IP:127.0.0.1
extendedKeyUsage = serverAuth
E
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -new $ec -keyout ca.key -out ca.csr -subj "/CN=replica test CA" 2>/dev/null
openssl x509 -req -in ca.csr -key ca.key -days 2 -extfile ext.cnf -extensions ca -out ca.crt 2>/dev/null
openssl req -new $ec -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -extensions server -out server.crt 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sign.key 2>/dev/null
openssl req -x509 -key sign.key -subj "/CN=replica fs-verity" -days 2 -out sign.crt
chmod 600 ca.key server.key sign.key
"#,
    );
    std::fs::write(d.join("token"), TOKEN).unwrap();
}

fn config(d: &Path, name: &str) -> PathBuf {
    let hash = run(Command::new("bash")
        .arg("-c")
        .arg(format!("printf %s {TOKEN} | {BIN} serve --hash-token")));
    let hash = String::from_utf8(hash.stdout).unwrap();
    let cfg = format!(
        r#"listen = "127.0.0.1:0"
audit_log = "{name}.jsonl"
[tls]
cert = "server.crt"
key = "server.key"
[[key]]
name = "fedora-verity"
key = "sign.key"
cert = "sign.crt"
[[client]]
name = "builder"
token_sha256 = ["{}"]
keys = ["fedora-verity"]
"#,
        hash.trim()
    );
    let p = d.join(format!("{name}.toml"));
    std::fs::write(&p, cfg).unwrap();
    p
}

/// A running process, SIGKILLed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a replica; returns it and its address.
fn replica(d: &Path, name: &str) -> (Proc, String) {
    let cfg = config(d, name);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rpm-verity serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on https://"), "{line}");
    let addr = line.rsplit("https://").next().unwrap().trim().to_string();
    (Proc(child), addr)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The HAProxy configuration of docs/serve.md, on loopback: TLS passed through to the
/// replicas (`mode tcp`), an HTTPS health check of `/healthz` every 200 ms, a failed connection
/// retried on the other replica (`option redispatch`).
fn haproxy(d: &Path, port: u16, a: &str, b: &str) -> Proc {
    let cfg = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n    option redispatch 1\n\
         frontend signing\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
         backend replicas\n    balance roundrobin\n    option httpchk\n    http-check send meth GET uri /healthz\n    http-check expect string ok\n\
         \x20   server a {a} check check-ssl verify none inter 200ms fall 1 rise 2\n\
         \x20   server b {b} check check-ssl verify none inter 200ms fall 1 rise 2\n"
    );
    let p = d.join("haproxy.cfg");
    std::fs::write(&p, cfg).unwrap();
    run(Command::new("haproxy")
        .arg("-c")
        .arg("-q")
        .arg("-f")
        .arg(&p));
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting haproxy (Debian package haproxy)");
    let proc = Proc(child);
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "haproxy does not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both replicas up (rise 2 at 200 ms).
    std::thread::sleep(Duration::from_millis(800));
    proc
}

fn metrics_agent(d: &Path) -> ureq::Agent {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(d.join("ca.crt")).unwrap()).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .build()
        .new_agent()
}

/// `rpm_verity_serve_in_flight_requests` of the replica at `addr`.
fn in_flight(agent: &ureq::Agent, addr: &str) -> i64 {
    let text = agent
        .get(&format!("https://{addr}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("rpm_verity_serve_in_flight_requests "))
        .expect("in-flight gauge")
        .trim()
        .parse()
        .unwrap()
}

/// The complete lines of an audit log. The replica SIGKILLed while writing may leave a torn last
/// line (no newline: the kernel stops a write between pages for a fatal signal); its request
/// was never answered, since answers wait for the fsync, and `AuditLog::open` cuts such a line
/// off when the replica starts again. Every other line must be whole JSON.
fn audit(p: &Path) -> Vec<Value> {
    let bytes = std::fs::read(p).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            serde_json::from_str(l.trim_end())
                .unwrap_or_else(|e| panic!("{}: {l:?}: {e}", p.display()))
        })
        .collect()
}

fn signed_lines(p: &Path) -> Vec<Value> {
    audit(p)
        .into_iter()
        .filter(|l| l["action"] == "sign" && l["outcome"] == "signed")
        .collect()
}

/// 20 packages of 150 files each: one request of 150 digests per package, long enough
/// (~0.1 s of RSA each) that the kill lands mid-run.
fn packages(t: &Path) -> Vec<PathBuf> {
    (0..20)
        .map(|i| {
            let install = format!(
                "mkdir -p %{{buildroot}}/opt/NAME\nfor i in $(seq 150); do echo \"{i} $i\" > %{{buildroot}}/opt/NAME/f$i; done\n"
            );
            build_rpm_custom(t, &format!("rep{i:02}"), "w19.zstdio", &install, "/opt/NAME\n")
        })
        .collect()
}

#[test]
fn replica_killed_behind_haproxy_while_signing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let built = packages(d);
    for sub in ["local", "remote"] {
        std::fs::create_dir(d.join(sub)).unwrap();
        for p in &built {
            std::fs::copy(p, d.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    let list = |sub: &str| -> Vec<PathBuf> {
        built
            .iter()
            .map(|p| d.join(sub).join(p.file_name().unwrap()))
            .collect()
    };
    run(Command::new(BIN)
        .args(["sign", "-q", "--key"])
        .arg(d.join("sign.key"))
        .arg("--cert")
        .arg(d.join("sign.crt"))
        .args(list("local")));

    let (mut a, addr_a) = replica(d, "a");
    let (_b, addr_b) = replica(d, "b");
    let port = free_port();
    let _lb = haproxy(d, port, &addr_a, &addr_b);

    let client = Command::new(BIN)
        .args([
            "sign",
            "--json",
            "-v",
            "-j",
            "2",
            "--key-name",
            "fedora-verity",
        ])
        .arg(format!("--signer=https://127.0.0.1:{port}"))
        .arg("--token-file")
        .arg(d.join("token"))
        .arg("--ca")
        .arg(d.join("ca.crt"))
        .args(list("remote"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGKILL replica a while it is signing a request (its in-flight gauge counts the
    // /metrics request asking too, and briefly a health check: two readings in a row of 2 or
    // more), after it has answered at least one.
    let metrics = metrics_agent(d);
    let until = Instant::now() + Duration::from_secs(60);
    let mut busy = 0;
    while busy < 2 || signed_lines(&d.join("a.jsonl")).is_empty() {
        assert!(Instant::now() < until, "replica a never got busy");
        busy = if in_flight(&metrics, &addr_a) >= 2 {
            busy + 1
        } else {
            0
        };
    }
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let mut client = client;
    assert!(
        client.try_wait().unwrap().is_none(),
        "the client finished before the kill"
    );
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sign through haproxy failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Whether the client saw the kill depends on timing: the in-flight reading above can be
    // the /metrics request plus a health check, and then a dies between two of its requests
    // and HAProxy sends the next ones to b without the client noticing. Either way every
    // package must end signed and identical, and the audit logs must account for it (below);
    // the client's retry after a lost answer is checked in serve::fails_over_between_replicas.
    assert_eq!(report["done"], 20, "{report:#}");

    // Byte-identical to local signing.
    for (l, r) in list("local").iter().zip(list("remote")) {
        assert!(
            std::fs::read(l).unwrap() == std::fs::read(&r).unwrap(),
            "{} differs from local signing",
            r.display()
        );
    }

    // The audit logs: every sign request (named by the client, the same name on every
    // attempt) has exactly one signed line for the attempt whose answer reached the client:
    // the last one, since the client stops at the first answer. An earlier attempt of the same
    // request can only have been signed by the killed replica, whose answer was lost with it.
    let (lines_a, lines_b) = (
        signed_lines(&d.join("a.jsonl")),
        signed_lines(&d.join("b.jsonl")),
    );
    assert!(!lines_a.is_empty() && !lines_b.is_empty());
    let mut by_request: BTreeMap<String, Vec<(u32, &str, u64)>> = BTreeMap::new();
    for (replica, lines) in [("a", &lines_a), ("b", &lines_b)] {
        for l in lines {
            let id = l["request_id"].as_str().expect("request_id").to_string();
            let attempt: u32 = l["attempt"].as_str().expect("attempt").parse().unwrap();
            by_request.entry(id).or_default().push((
                attempt,
                replica,
                l["count"].as_u64().unwrap(),
            ));
        }
    }
    assert_eq!(
        by_request.len(),
        20,
        "one request per package: {by_request:?}"
    );
    let mut delivered_signatures = 0;
    let mut lost = 0;
    for (id, mut attempts) in by_request {
        attempts.sort();
        let attempt_numbers: Vec<u32> = attempts.iter().map(|a| a.0).collect();
        let mut dedup = attempt_numbers.clone();
        dedup.dedup();
        assert_eq!(
            dedup, attempt_numbers,
            "{id}: an attempt logged twice: {attempts:?}"
        );
        let (_, _, count) = attempts.pop().unwrap();
        delivered_signatures += count;
        for (attempt, replica, _) in &attempts {
            assert_eq!(
                *replica, "a",
                "{id}: attempt {attempt} on the live replica was lost"
            );
            lost += 1;
        }
    }
    let made: u64 = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["signatures_made"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered_signatures, made, "signatures logged vs made");
    eprintln!(
        "replica a signed {} requests, b {}; {lost} answer(s) lost with a; client said:\n{stderr}",
        lines_a.len(),
        lines_b.len()
    );
}
