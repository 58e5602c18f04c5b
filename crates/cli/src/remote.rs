//! The client of `rpm-verity serve`: a [`Signer`] that sends fs-verity digests (never files) to
//! the signing service. Blocking, because its callers are plain threads (rayon); one agent keeps
//! TLS connections alive across batches and threads.
//!
//! Kept free of other modules of this crate so tests and the load generator can include it.
// Each includer (the binary's `sign`, tests, the load generator) uses a different part.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use fsverity::FileDigest;
use verity_signing::{Signer, SignerError};

/// The API's limit on digests per request.
pub const MAX_BATCH: usize = 1000;

/// Most bytes of a response read into memory: 1000 signatures of the largest size the kernel
/// accepts (16128 bytes), base64-encoded, fit well below this.
const MAX_RESPONSE: u64 = 32 * 1024 * 1024;

/// The options `sign` flattens into its own to sign through a service instead of a local key.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteSignerArgs {
    /// Sign through `rpm-verity serve` at this URL (https://HOST:PORT) instead of a local key.
    #[arg(long, value_name = "URL")]
    pub signer: Option<String>,
    /// Name of the key on the signing service.
    #[arg(long, value_name = "NAME", requires = "signer")]
    pub key_name: Option<String>,
    /// Client certificate (PEM, may include its chain) for mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_key",
        requires = "signer"
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// File holding a bearer token for the signing service.
    #[arg(long, value_name = "FILE", requires = "signer")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) that issued the service's certificate [default: the system's].
    #[arg(long, value_name = "FILE", requires = "signer")]
    pub ca: Option<PathBuf>,
}

impl RemoteSignerArgs {
    /// Whether a remote signer was asked for (`--signer` given).
    pub fn is_remote(&self) -> bool {
        self.signer.is_some()
    }
}

/// How hard to try before a batch is given up: connection failures and 5xx answers (a restarting
/// or overloaded server) are retried, everything else fails at once.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 0.25 + 0.5 + 1 + 2 + 4 + 4 s: rides out a service restart of ~10 s.
        Self {
            attempts: 7,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

pub struct RemoteSigner {
    agent: ureq::Agent,
    base: String,
    key_name: String,
    auth_header: Option<String>,
    cert_der: Vec<u8>,
    retry: RetryPolicy,
    batch: usize,
}

impl std::fmt::Debug for RemoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSigner")
            .field("base", &self.base)
            .field("key_name", &self.key_name)
            .finish()
    }
}

fn read_pem_certs(path: &Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&data) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.with_context(|| format!("parsing {}", path.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!("{} contains no PEM certificate", path.display());
    }
    Ok(certs)
}

impl RemoteSigner {
    /// Connects to the service, checks that the key exists and is allowed for these credentials,
    /// and fetches its certificate, so configuration mistakes show up before any package is read.
    pub fn from_args(args: &RemoteSignerArgs) -> anyhow::Result<Self> {
        Self::from_args_with_retry(args, RetryPolicy::default())
    }

    pub fn from_args_with_retry(
        args: &RemoteSignerArgs,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let Some(url) = &args.signer else {
            bail!("--signer URL is required for remote signing")
        };
        let Some(key_name) = &args.key_name else {
            bail!("--key-name is required with --signer")
        };
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            bail!("--signer {url}: must be an https:// URL (the service only speaks TLS)");
        }
        if key_name.is_empty()
            || !key_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            bail!("--key-name {key_name:?}: key names are letters, digits, '-', '_' and '.'");
        }
        if args.token_file.is_some() && args.client_cert.is_some() {
            bail!("give either --token-file or --client-cert/--client-key, not both");
        }
        let auth_header = match &args.token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("reading token file {}", p.display()))?;
                let t = t.trim();
                if t.is_empty() {
                    bail!("token file {} is empty", p.display());
                }
                Some(format!("Bearer {t}"))
            }
            None => None,
        };

        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(provider);
        let ca = match &args.ca {
            Some(p) => p.clone(),
            None => PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        };
        let roots = read_pem_certs(&ca)
            .with_context(|| format!("CA certificates for {base} (use --ca)"))?;
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            let chain = read_pem_certs(cert).context("--client-cert")?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            let key = ureq::tls::PrivateKey::from_pem(&key_pem).with_context(|| {
                format!("--client-key {}: not a PEM private key", key.display())
            })?;
            tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .https_only(true)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(64)
            .user_agent(concat!("rpm-verity/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();

        let mut s = Self {
            agent,
            base,
            key_name: key_name.clone(),
            auth_header,
            cert_der: Vec::new(),
            retry,
            batch: MAX_BATCH,
        };
        s.cert_der = s.fetch_certificate()?;
        Ok(s)
    }

    /// Digests per request (1..=1000); smaller batches spread one package over more requests.
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch = n.clamp(1, MAX_BATCH);
    }

    fn fetch_certificate(&self) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/v1/keys", self.base);
        let body = self
            .call(|| {
                let mut r = self.agent.get(&url);
                if let Some(a) = &self.auth_header {
                    r = r.header("Authorization", a);
                }
                r.call()
            })
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).with_context(|| format!("{url}: answer is not JSON"))?;
        let keys = v["keys"]
            .as_array()
            .with_context(|| format!("{url}: answer has no key list"))?;
        let names: Vec<&str> = keys.iter().filter_map(|k| k["name"].as_str()).collect();
        let Some(k) = keys
            .iter()
            .find(|k| k["name"].as_str() == Some(self.key_name.as_str()))
        else {
            bail!(
                "{}: key {:?} does not exist or is not allowed for these credentials (allowed: {})",
                self.base,
                self.key_name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        };
        let pem = k["certificate_pem"]
            .as_str()
            .with_context(|| format!("{url}: key has no certificate_pem"))?;
        let cert = ureq::tls::Certificate::from_pem(pem.as_bytes())
            .with_context(|| format!("{url}: certificate of key {:?} is not PEM", self.key_name))?;
        Ok(cert.der().to_vec())
    }

    /// One request with retries. Returns the body of a 2xx answer.
    fn call<F>(&self, send: F) -> Result<Vec<u8>, String>
    where
        F: Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    {
        let mut backoff = self.retry.initial_backoff;
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match send() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(MAX_RESPONSE)
                        .read_to_vec();
                    match (status, body) {
                        (200..=299, Ok(b)) => return Ok(b),
                        (200..=299, Err(e)) => last = format!("reading the answer: {e}"),
                        (_, b) => {
                            let msg = b.ok().map(|b| error_message(&b)).unwrap_or_default();
                            let text = format!("HTTP {status}{msg}");
                            if !(status >= 500 || status == 429) {
                                return Err(text);
                            }
                            last = text;
                        }
                    }
                }
                Err(e) => {
                    if !retryable(&e) {
                        return Err(describe(&e));
                    }
                    last = describe(&e);
                }
            }
            if attempt < attempts {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
        }
        Err(format!("{last} (gave up after {attempts} attempts)"))
    }

    fn sign_chunk(&self, chunk: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError> {
        let alg = chunk[0].algorithm();
        let url = format!("{}/v1/keys/{}/sign", self.base, self.key_name);
        let body = serde_json::to_vec(&serde_json::json!({
            "hash_alg": alg.name(),
            "digests": chunk.iter().map(|d| d.to_hex()).collect::<Vec<_>>(),
        }))
        .map_err(|e| SignerError::Remote(e.to_string()))?;
        let answer = self
            .call(|| {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &self.auth_header {
                    r = r.header("Authorization", a);
                }
                r.send(&body[..])
            })
            .map_err(|e| SignerError::Remote(format!("{url}: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|e| SignerError::Remote(format!("{url}: answer is not JSON: {e}")))?;
        let sigs = v["signatures"]
            .as_array()
            .ok_or_else(|| SignerError::Remote(format!("{url}: answer has no signatures")))?;
        if sigs.len() != chunk.len() {
            return Err(SignerError::CountMismatch {
                expected: chunk.len(),
                got: sigs.len(),
            });
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        sigs.iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str().and_then(|s| b64.decode(s).ok()).ok_or_else(|| {
                    SignerError::Remote(format!("{url}: signatures[{i}] is not base64"))
                })
            })
            .collect()
    }
}

/// `: kind: message` from the service's JSON error body, or the start of a non-JSON body.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let (Some(k), Some(m)) = (v["error"]["kind"].as_str(), v["error"]["message"].as_str()) {
            return format!(" ({k}): {m}");
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_string();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Transport failures worth retrying: the service may be restarting. TLS refusals (bad client
/// certificate, unknown CA) are configuration errors and fail at once.
fn retryable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_none(),
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(t) => format!("TLS: {t}"),
            None => format!("connection: {io}"),
        },
        ureq::Error::ConnectionFailed => "connection failed (is the service running?)".into(),
        ureq::Error::Rustls(t) => format!("TLS: {t}"),
        other => other.to_string(),
    }
}

impl Signer for RemoteSigner {
    fn sign_digests(&self, digests: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError> {
        let mut out = Vec::with_capacity(digests.len());
        let mut start = 0;
        while start < digests.len() {
            // A request carries one hash algorithm, so a batch also ends where the algorithm
            // changes.
            let alg = digests[start].algorithm();
            let mut end = start + 1;
            while end < digests.len() && end - start < self.batch && digests[end].algorithm() == alg
            {
                end += 1;
            }
            out.extend(self.sign_chunk(&digests[start..end])?);
            start = end;
        }
        Ok(out)
    }

    fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
}
