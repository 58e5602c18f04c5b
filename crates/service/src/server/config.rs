//! The `serve` configuration file (TOML). Paths in it are relative to the file's directory, so a
//! config and its keys can be moved together.
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::setup_error::{BadKeyName, BadTime, ConfigError};
use crate::protocol::{is_valid_key_name, MAX_BATCH};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    audit_log: PathBuf,
    tls: RawTls,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, rename = "key")]
    keys: Vec<RawKey>,
    #[serde(default, rename = "client")]
    clients: Vec<RawClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
    max_batch: Option<usize>,
    per_client_concurrency: Option<usize>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
    handshake_timeout_secs: Option<u64>,
    first_request_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    audit_refusals_per_peer_per_sec: Option<u32>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    key: PathBuf,
    cert: PathBuf,
    passphrase_file: Option<PathBuf>,
    /// Narrow the certificate's validity (RFC 3339, UTC: `2026-01-01T00:00:00Z`).
    not_before: Option<String>,
    not_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    cert_cn: Option<String>,
    #[serde(default)]
    token_sha256: Vec<String>,
    keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub per_client_concurrency: usize,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Connections from one IPv4 address or IPv6 /64, so that one host (which needs no
    /// credentials to connect) cannot take every slot of `max_connections`.
    pub max_connections_per_peer: usize,
    /// Bounds the TCP + TLS handshake: a peer that connects and sends nothing holds a slot.
    pub handshake_timeout: Duration,
    /// From the end of the handshake to the first request: the HTTP/1 header timeout only starts
    /// at the first byte, and HTTP/2 has none, so without this a silent TLS connection (or one
    /// that sent only the HTTP/2 preface) holds its slot for ever.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY), and
    /// HTTP/2 peers are pinged at this interval while requests run.
    pub idle_timeout: Duration,
    /// Refusal lines written to the audit log per peer and second; the rest are counted and the
    /// count written when that peer's refusals are logged again. Refusals need no credentials,
    /// so without this anyone could fill the log's disk, and with it, stop all signing.
    pub audit_refusals_per_peer_per_sec: u32,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // 1000 SHA-512 digests in hex with JSON punctuation is ~135 KB.
            max_body_bytes: 256 * 1024,
            max_batch: MAX_BATCH,
            per_client_concurrency: 16,
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_peer: 128,
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            audit_refusals_per_peer_per_sec: 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyConfig {
    pub name: String,
    /// A PEM file, or a `pkcs11:` URI of a key on a token.
    pub key: PathBuf,
    pub cert: PathBuf,
    /// The key's passphrase, or the token's PIN when the URI has no `pin-source`.
    pub passphrase_file: Option<PathBuf>,
    /// Narrows the certificate's notBefore/notAfter: the key signs only inside both.
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub cert_cn: Option<String>,
    pub token_sha256: Vec<[u8; 32]>,
    pub keys: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub audit_log: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub limits: Limits,
    pub keys: Vec<KeyConfig>,
    pub clients: Vec<ClientConfig>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let rel = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let listen: SocketAddr = raw.listen.parse().map_err(|source| ConfigError::Listen {
            value: raw.listen.clone(),
            source,
        })?;
        let limits = raw.limits.resolve()?;
        let keys = raw
            .keys
            .iter()
            .map(|k| {
                let time = |field: &'static str, v: &Option<String>| {
                    v.as_deref()
                        .map(parse_rfc3339)
                        .transpose()
                        .map_err(|source| ConfigError::KeyTime {
                            key: k.name.clone(),
                            field,
                            source,
                        })
                };
                let key = match k.key.to_str() {
                    Some(uri) if verity_signing::is_pkcs11_uri(uri) => k.key.clone(),
                    _ => rel(&k.key),
                };
                Ok(KeyConfig {
                    name: k.name.clone(),
                    key,
                    cert: rel(&k.cert),
                    passphrase_file: k.passphrase_file.as_ref().map(rel),
                    not_before: time("not_before", &k.not_before)?,
                    not_after: time("not_after", &k.not_after)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let key_names = check_keys(&keys)?;
        let clients = parse_clients(&raw.clients, &key_names)?;
        if clients.iter().any(|c| c.cert_cn.is_some()) && raw.tls.client_ca.is_none() {
            return Err(ConfigError::ClientCnWithoutCa);
        }
        Ok(Self {
            listen,
            audit_log: rel(&raw.audit_log),
            tls_cert: rel(&raw.tls.cert),
            tls_key: rel(&raw.tls.key),
            client_ca: raw.tls.client_ca.as_ref().map(rel),
            limits,
            keys,
            clients,
        })
    }
}

impl RawLimits {
    /// The limits with defaults filled in, refusing values that would make the service refuse
    /// everything or promise more than the API allows.
    fn resolve(self) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let limits = Limits {
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_batch: self.max_batch.unwrap_or(d.max_batch),
            per_client_concurrency: self
                .per_client_concurrency
                .unwrap_or(d.per_client_concurrency),
            request_timeout: self
                .request_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(d.request_timeout),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_peer: self
                .max_connections_per_peer
                .unwrap_or(d.max_connections_per_peer),
            handshake_timeout: secs(self.handshake_timeout_secs, d.handshake_timeout),
            first_request_timeout: secs(self.first_request_timeout_secs, d.first_request_timeout),
            idle_timeout: secs(self.idle_timeout_secs, d.idle_timeout),
            audit_refusals_per_peer_per_sec: self
                .audit_refusals_per_peer_per_sec
                .unwrap_or(d.audit_refusals_per_peer_per_sec),
            shutdown_grace: self
                .shutdown_grace_secs
                .map(Duration::from_secs)
                .unwrap_or(d.shutdown_grace),
        };
        if limits.max_batch == 0 || limits.max_batch > MAX_BATCH {
            return Err(ConfigError::MaxBatch);
        }
        if limits.max_body_bytes < 1024 {
            return Err(ConfigError::MaxBodyBytes);
        }
        if limits.per_client_concurrency == 0 || limits.max_connections == 0 {
            return Err(ConfigError::Concurrency);
        }
        if limits.max_connections_per_peer == 0 || limits.audit_refusals_per_peer_per_sec == 0 {
            return Err(ConfigError::PerPeer);
        }
        for (name, t) in [
            ("request_timeout_secs", limits.request_timeout),
            ("handshake_timeout_secs", limits.handshake_timeout),
            ("first_request_timeout_secs", limits.first_request_timeout),
            ("idle_timeout_secs", limits.idle_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(limits)
    }
}

fn secs(configured: Option<u64>, default: Duration) -> Duration {
    configured.map(Duration::from_secs).unwrap_or(default)
}

/// The names of `keys`, refusing unusable names and an empty list. A name may appear several
/// times: those are the keys it rotates through.
fn check_keys(keys: &[KeyConfig]) -> Result<BTreeSet<String>, ConfigError> {
    let mut names = BTreeSet::new();
    for k in keys {
        check_name(&k.name).map_err(|source| ConfigError::KeyName {
            name: k.name.clone(),
            source,
        })?;
        if let (Some(b), Some(a)) = (k.not_before, k.not_after) {
            if a <= b {
                return Err(ConfigError::KeyValidity(k.name.clone()));
            }
        }
        names.insert(k.name.clone());
    }
    if names.is_empty() {
        return Err(ConfigError::NoKeys);
    }
    Ok(names)
}

/// Identities that must be unique across clients, so that a credential names exactly one.
#[derive(Default)]
struct Claimed {
    names: BTreeSet<String>,
    cns: HashMap<String, String>,
    tokens: HashMap<[u8; 32], String>,
}

fn parse_clients(
    raw: &[RawClient],
    key_names: &BTreeSet<String>,
) -> Result<Vec<ClientConfig>, ConfigError> {
    let mut claimed = Claimed::default();
    raw.iter()
        .map(|c| parse_client(c, key_names, &mut claimed))
        .collect()
}

fn parse_client(
    c: &RawClient,
    key_names: &BTreeSet<String>,
    claimed: &mut Claimed,
) -> Result<ClientConfig, ConfigError> {
    if c.name.is_empty() {
        return Err(ConfigError::ClientWithoutName);
    }
    if !claimed.names.insert(c.name.clone()) {
        return Err(ConfigError::ClientTwice(c.name.clone()));
    }
    if c.cert_cn.is_none() && c.token_sha256.is_empty() {
        return Err(ConfigError::ClientWithoutCredentials(c.name.clone()));
    }
    if let Some(cn) = &c.cert_cn {
        if let Some(other) = claimed.cns.insert(cn.clone(), c.name.clone()) {
            return Err(ConfigError::SameCn {
                first: other,
                second: c.name.clone(),
                cn: cn.clone(),
            });
        }
    }
    let mut hashes = Vec::new();
    for h in &c.token_sha256 {
        let bytes = hex::decode(h.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| ConfigError::TokenFormat(c.name.clone()))?;
        if let Some(other) = claimed.tokens.insert(bytes, c.name.clone()) {
            return Err(ConfigError::SharedToken {
                first: other,
                second: c.name.clone(),
            });
        }
        hashes.push(bytes);
    }
    if let Some(k) = c.keys.iter().find(|k| !key_names.contains(*k)) {
        return Err(ConfigError::UnknownKey {
            client: c.name.clone(),
            key: k.clone(),
        });
    }
    Ok(ClientConfig {
        name: c.name.clone(),
        cert_cn: c.cert_cn.clone(),
        token_sha256: hashes,
        keys: c.keys.iter().cloned().collect(),
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, optional fraction): the one form of RFC 3339 the config takes,
/// so a time zone is never guessed.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, BadTime> {
    let bad = || BadTime(s.to_string());
    let t = s.strip_suffix('Z').ok_or_else(bad)?;
    let t = t.split('.').next().ok_or_else(bad)?;
    let b = t.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<i64>().map_err(|_| bad());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from the civil date (H. Hinnant's algorithm), the inverse of audit::rfc3339.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Key names appear in URLs, so they are restricted to characters that need no escaping.
fn check_name(name: &str) -> Result<(), BadKeyName> {
    if !is_valid_key_name(name) {
        return Err(BadKeyName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
listen = "127.0.0.1:0"
audit_log = "audit.jsonl"
[tls]
cert = "server.crt"
key = "server.key"
client_ca = "/etc/ca.pem"
[[key]]
name = "k1"
key = "k1.key"
cert = "k1.crt"
[[client]]
name = "builder"
cert_cn = "builder-01"
token_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
keys = ["k1"]
"#;

    /// Each refusal is its own variant, naming the key or client; `load` adds the file.
    #[test]
    fn refusals_are_typed() {
        let parse = |text: &str| Config::parse(text, Path::new("/")).unwrap_err();
        let bad = BASE.replace("listen = \"127.0.0.1:0\"", "listen = \"nope\"");
        assert!(matches!(parse(&bad), ConfigError::Listen { value, .. } if value == "nope"));
        let bad = format!("{BASE}[limits]\nmax_batch = 0\n");
        assert!(matches!(parse(&bad), ConfigError::MaxBatch));
        let bad = BASE.replace("name = \"k1\"", "name = \"k 1\"");
        assert!(matches!(parse(&bad), ConfigError::KeyName { name, .. } if name == "k 1"));
        let bad = BASE.replace("keys = [\"k1\"]", "keys = [\"k9\"]");
        assert!(matches!(
            parse(&bad),
            ConfigError::UnknownKey { client, key } if client == "builder" && key == "k9"
        ));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, format!("{BASE}[limits]\nidle_timeout_secs = 0\n")).unwrap();
        let e = Config::load(&file).unwrap_err();
        match &e {
            ConfigError::Invalid { path, source } => {
                assert_eq!(path, &file);
                assert!(matches!(
                    **source,
                    ConfigError::ZeroTimeout("idle_timeout_secs")
                ));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            crate::error_chain(&e),
            format!(
                "config {}: limits.idle_timeout_secs must be at least 1",
                file.display()
            )
        );
        let e = Config::load(&dir.path().join("absent.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    }

    #[test]
    fn rfc3339_round_trips_with_the_audit_format() {
        for secs in [0u64, 951_782_400, 1_709_251_199, 4_102_444_800] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let text = super::super::audit::rfc3339(t);
            assert_eq!(parse_rfc3339(&text).unwrap(), t, "{text}");
        }
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+02:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_may_have_several_keys_and_token_uris_are_not_paths() {
        let two = BASE.replace(
            "[[client]]",
            "[[key]]\nname = \"k1\"\nkey = \"pkcs11:token=t;object=k?module-path=/m.so\"\ncert = \"k1-new.crt\"\nnot_before = \"2026-01-01T00:00:00Z\"\n[[client]]",
        );
        let c = Config::parse(&two, Path::new("/etc/rv")).unwrap();
        assert_eq!(c.keys.len(), 2);
        assert_eq!(
            c.keys[1].key,
            Path::new("pkcs11:token=t;object=k?module-path=/m.so")
        );
        assert_eq!(c.keys[1].cert, Path::new("/etc/rv/k1-new.crt"));
        assert_eq!(
            c.keys[1].not_before,
            Some(parse_rfc3339("2026-01-01T00:00:00Z").unwrap())
        );
        let bad = two.replace(
            "not_before",
            "not_after = \"2025-01-01T00:00:00Z\"\nnot_before",
        );
        let e = format!("{:#}", Config::parse(&bad, Path::new("/")).unwrap_err());
        assert!(e.contains("not_after is not after not_before"), "{e}");
    }

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = Config::parse(BASE, Path::new("/etc/rv")).unwrap();
        assert_eq!(c.audit_log, Path::new("/etc/rv/audit.jsonl"));
        assert_eq!(c.client_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(c.keys[0].key, Path::new("/etc/rv/k1.key"));
        assert_eq!(c.clients[0].token_sha256[0][0], 0x9f);
        assert_eq!(c.limits.max_batch, 1000);
    }

    #[test]
    fn rejects_unknown_key_for_client_and_bad_hash() {
        let bad = BASE.replace("keys = [\"k1\"]", "keys = [\"k2\"]");
        let e = format!("{:#}", Config::parse(&bad, Path::new("/")).unwrap_err());
        assert!(e.contains("not configured"), "{e}");
        let bad = BASE.replace("9f86", "zz86");
        let e = format!("{:#}", Config::parse(&bad, Path::new("/")).unwrap_err());
        assert!(e.contains("64 hex digits"), "{e}");
        let bad = BASE.replace("name = \"k1\"", "name = \"k/1\"");
        assert!(Config::parse(&bad, Path::new("/")).is_err());
        let bad = BASE
            .replace("[limits]", "")
            .replace("[[key]]", "[limits]\nmax_batch = 1001\n[[key]]");
        assert!(Config::parse(&bad, Path::new("/")).is_err());
        let bad = BASE.replace("[[key]]", "[limits]\nidle_timeout_secs = 0\n[[key]]");
        let e = format!("{:#}", Config::parse(&bad, Path::new("/")).unwrap_err());
        assert!(e.contains("idle_timeout_secs must be at least 1"), "{e}");
        let bad = BASE.replace("listen", "lisen");
        assert!(Config::parse(&bad, Path::new("/")).is_err());
    }
}
