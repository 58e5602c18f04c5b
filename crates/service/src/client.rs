//! The client of the signing service: a [`Signer`] that sends fs-verity digests (never files) to
//! it. Blocking, because its callers are plain threads (rayon); one agent keeps TLS connections
//! alive across batches and threads.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fsverity::FileDigest;
use verity_signing::{Certificate, Signer, SignerError, VerifyError};

use crate::protocol::{self, ErrorResponse, KeyList, SignRequest, SignResponse, MAX_BATCH};

/// Most bytes of a response read into memory: 1000 signatures of the largest size the kernel
/// accepts (16128 bytes), base64-encoded, fit well below this.
const MAX_RESPONSE: u64 = 32 * 1024 * 1024;

/// Where system CA certificates are on Debian, Fedora (via a link) and Arch alike.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How the client proves who it is; the service accepts one or the other per connection.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// Nothing: only useful to see the refusal.
    #[default]
    None,
    /// A file holding a bearer token.
    TokenFile(PathBuf),
    /// A client certificate (PEM, may include its chain) and its private key (PEM).
    ClientCert { cert: PathBuf, key: PathBuf },
}

/// Where the service is and how to talk to it.
#[derive(Clone, Debug)]
pub struct RemoteSignerOptions {
    /// `https://HOST:PORT`; a trailing `/` is ignored.
    pub url: String,
    pub key_name: String,
    pub credentials: Credentials,
    /// CA certificate(s) (PEM) that issued the service's certificate; `None`: the system's.
    pub ca: Option<PathBuf>,
    pub retry: RetryPolicy,
}

impl RemoteSignerOptions {
    pub fn new(url: impl Into<String>, key_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_name: key_name.into(),
            credentials: Credentials::None,
            ca: None,
            retry: RetryPolicy::default(),
        }
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

/// Why the client could not be set up or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: must be an https:// URL (the service only speaks TLS)")]
    NotHttps { url: String },
    #[error("key name {name:?}: key names are letters, digits, '-', '_' and '.'")]
    BadKeyName { name: String },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {} is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("parsing {}", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: ureq::Error,
    },
    #[error("{} contains no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM private key", path.display())]
    PrivateKey {
        path: PathBuf,
        #[source]
        source: ureq::Error,
    },
    /// Kept apart from other file errors so a caller can point at its own option for the CA.
    #[error("CA certificates for {base}")]
    Roots {
        base: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("client certificate")]
    ClientCert(#[source] Box<ClientError>),
    #[error("{url}")]
    Request {
        url: String,
        #[source]
        source: RequestError,
    },
    #[error("{url}: answer is not valid")]
    BadAnswer {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{base}: key {key:?} does not exist or is not allowed for these credentials (allowed: {allowed})")]
    KeyNotAllowed {
        base: String,
        key: String,
        /// The keys these credentials may use, comma-separated, or `none`.
        allowed: String,
    },
    #[error("{url}: certificate of key {key:?} is not PEM")]
    BadCertificate {
        url: String,
        key: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{url}: certificate of key {key:?} cannot be used to check signatures")]
    UnusableCertificate {
        url: String,
        key: String,
        #[source]
        source: verity_signing::CertError,
    },
    #[error("{url}: signatures[{index}] is not a valid signature of digest {digest} by key {key:?}; refusing the answer")]
    WrongSignature {
        url: String,
        index: usize,
        digest: String,
        key: String,
        #[source]
        source: Box<VerifyError>,
    },
    #[error("{url}: signatures[{index}] is not base64")]
    BadSignature {
        url: String,
        index: usize,
        #[source]
        source: base64::DecodeError,
    },
    #[error("encoding the request")]
    Encode(#[source] serde_json::Error),
    #[error("signer returned {got} signatures for {expected} digests")]
    CountMismatch { expected: usize, got: usize },
}

/// Why one HTTP exchange failed, after retries where they make sense.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The service answered with an error. `detail` is `" (kind): message"` from its JSON error
    /// body, or `": "` and the start of a body that is not one.
    #[error("HTTP {status}{detail}")]
    Status { status: u16, detail: String },
    #[error("reading the answer")]
    Body(#[source] ureq::Error),
    #[error("connection failed (is the service running?)")]
    Unreachable,
    #[error("TLS")]
    Tls(#[source] ureq::Error),
    #[error("connection")]
    Transport(#[source] ureq::Error),
    /// Anything else ureq refuses (a bad URL, say): retrying cannot help.
    #[error(transparent)]
    Other(ureq::Error),
    #[error("gave up after {attempts} attempts")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<RequestError>,
    },
}

impl RequestError {
    /// Failures worth retrying: the service may be restarting or overloaded. TLS refusals (bad
    /// client certificate, unknown CA) and 4xx answers are configuration errors and fail at once.
    fn retryable(&self) -> bool {
        match self {
            RequestError::Status { status, .. } => *status >= 500 || *status == 429,
            RequestError::Body(_) | RequestError::Unreachable | RequestError::Transport(_) => true,
            RequestError::Tls(_) | RequestError::Other(_) | RequestError::GaveUp { .. } => false,
        }
    }

    fn from_transport(e: ureq::Error) -> Self {
        match &e {
            ureq::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
                RequestError::Tls(e)
            }
            ureq::Error::Rustls(_) => RequestError::Tls(e),
            ureq::Error::ConnectionFailed => RequestError::Unreachable,
            ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => {
                RequestError::Transport(e)
            }
            _ => RequestError::Other(e),
        }
    }
}

pub struct RemoteSigner {
    agent: ureq::Agent,
    base: String,
    key_name: String,
    auth_header: Option<String>,
    /// The key's certificate, as `GET /v1/keys` gave it: every signature the service returns is
    /// checked against it, so a wrong, corrupted or substituted answer never reaches a package.
    cert: Certificate,
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

impl RemoteSigner {
    /// Connects to the service, checks that the key exists and is allowed for these credentials,
    /// and fetches its certificate, so configuration mistakes show up before any package is read.
    pub fn connect(options: &RemoteSignerOptions) -> Result<Self, ClientError> {
        let base = options.url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") {
            return Err(ClientError::NotHttps {
                url: options.url.clone(),
            });
        }
        if !protocol::is_valid_key_name(&options.key_name) {
            return Err(ClientError::BadKeyName {
                name: options.key_name.clone(),
            });
        }
        let auth_header = match &options.credentials {
            Credentials::TokenFile(p) => Some(format!("Bearer {}", read_token(p)?)),
            _ => None,
        };
        let agent = agent(options, &base)?;
        let cert = fetch_certificate(
            &agent,
            &base,
            &options.key_name,
            auth_header.as_deref(),
            &options.retry,
        )?;
        Ok(Self {
            agent,
            base,
            key_name: options.key_name.clone(),
            auth_header,
            cert,
            retry: options.retry.clone(),
            batch: MAX_BATCH,
        })
    }

    /// Digests per request (1..=[`MAX_BATCH`]); smaller batches spread one package over more
    /// requests.
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch = n.clamp(1, MAX_BATCH);
    }

    fn with_auth<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        with_auth(self.auth_header.as_deref(), r)
    }

    fn call<F>(&self, send: F) -> Result<Vec<u8>, RequestError>
    where
        F: Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    {
        call(&self.retry, send)
    }

    fn sign_chunk(&self, chunk: &[FileDigest]) -> Result<Vec<Vec<u8>>, ClientError> {
        let alg = chunk[0].algorithm();
        let url = format!("{}{}", self.base, protocol::sign_path(&self.key_name));
        let request = SignRequest::new(alg, chunk);
        let body = serde_json::to_vec(&request).map_err(ClientError::Encode)?;
        let answer = self
            .call(|| {
                let r = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                self.with_auth(r).send(&body[..])
            })
            .map_err(|source| ClientError::Request {
                url: url.clone(),
                source,
            })?;
        let answer: SignResponse =
            serde_json::from_slice(&answer).map_err(|source| ClientError::BadAnswer {
                url: url.clone(),
                source,
            })?;
        if answer.signatures.len() != chunk.len() {
            return Err(ClientError::CountMismatch {
                expected: chunk.len(),
                got: answer.signatures.len(),
            });
        }
        let sigs =
            answer
                .decode_signatures()
                .map_err(|(index, source)| ClientError::BadSignature {
                    url: url.clone(),
                    index,
                    source,
                })?;
        for (index, (sig, digest)) in sigs.iter().zip(chunk).enumerate() {
            verity_signing::verify_signature(sig, digest, std::slice::from_ref(&self.cert))
                .map_err(|source| ClientError::WrongSignature {
                    url: url.clone(),
                    index,
                    digest: digest.to_hex(),
                    key: self.key_name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(sigs)
    }
}

fn with_auth<B>(auth_header: Option<&str>, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match auth_header {
        Some(a) => r.header("Authorization", a),
        None => r,
    }
}

/// The certificate of key `key_name`, checking that it exists and is allowed for these
/// credentials.
fn fetch_certificate(
    agent: &ureq::Agent,
    base: &str,
    key_name: &str,
    auth_header: Option<&str>,
    retry: &RetryPolicy,
) -> Result<Certificate, ClientError> {
    let url = format!("{base}{}", protocol::KEYS_PATH);
    let body =
        call(retry, || with_auth(auth_header, agent.get(&url)).call()).map_err(|source| {
            ClientError::Request {
                url: url.clone(),
                source,
            }
        })?;
    let list: KeyList = serde_json::from_slice(&body).map_err(|source| ClientError::BadAnswer {
        url: url.clone(),
        source,
    })?;
    let Some(k) = list.keys.iter().find(|k| k.name == key_name) else {
        let names: Vec<&str> = list.keys.iter().map(|k| k.name.as_str()).collect();
        return Err(ClientError::KeyNotAllowed {
            base: base.to_string(),
            key: key_name.to_string(),
            allowed: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        });
    };
    let cert =
        ureq::tls::Certificate::from_pem(k.certificate_pem.as_bytes()).map_err(|source| {
            ClientError::BadCertificate {
                url: url.clone(),
                key: key_name.to_string(),
                source,
            }
        })?;
    Certificate::from_der(cert.der()).map_err(|source| ClientError::UnusableCertificate {
        url,
        key: key_name.to_string(),
        source,
    })
}

/// One request with retries. Returns the body of a 2xx answer.
fn call<F>(retry: &RetryPolicy, send: F) -> Result<Vec<u8>, RequestError>
where
    F: Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
{
    let mut backoff = retry.initial_backoff;
    let attempts = retry.attempts.max(1);
    let mut attempt = 1;
    loop {
        let e = match send() {
            Ok(resp) => match read_answer(resp) {
                Ok(body) => return Ok(body),
                Err(e) => e,
            },
            Err(e) => RequestError::from_transport(e),
        };
        if !e.retryable() {
            return Err(e);
        }
        if attempt == attempts {
            return Err(RequestError::GaveUp {
                attempts,
                last: Box::new(e),
            });
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(retry.max_backoff);
        attempt += 1;
    }
}

fn read_token(path: &Path) -> Result<String, ClientError> {
    let t = std::fs::read_to_string(path).map_err(|source| ClientError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let t = t.trim();
    if t.is_empty() {
        return Err(ClientError::EmptyToken {
            path: path.to_path_buf(),
        });
    }
    Ok(t.to_string())
}

fn read_pem_certs(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, ClientError> {
    let data = std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&data) {
        let item = item.map_err(|source| ClientError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
        if let ureq::tls::PemItem::Certificate(c) = item {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(ClientError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The HTTP agent: TLS with the given roots and client certificate, and no plain HTTP or
/// redirects, so digests and tokens only ever go to the configured service.
fn agent(options: &RemoteSignerOptions, base: &str) -> Result<ureq::Agent, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider);
    let ca = options.ca.as_deref().unwrap_or(Path::new(SYSTEM_CA));
    let roots = read_pem_certs(ca).map_err(|e| ClientError::Roots {
        base: base.to_string(),
        source: Box::new(e),
    })?;
    tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
    if let Credentials::ClientCert { cert, key } = &options.credentials {
        let client_cert = client_cert(cert, key).map_err(|e| ClientError::ClientCert(e.into()))?;
        tls = tls.client_cert(Some(client_cert));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .https_only(true)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(120)))
        .max_idle_connections_per_host(64)
        .user_agent(concat!("rpm-verity/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

fn client_cert(cert: &Path, key: &Path) -> Result<ureq::tls::ClientCert, ClientError> {
    let chain = read_pem_certs(cert)?;
    let key_pem = std::fs::read(key).map_err(|source| ClientError::Read {
        path: key.to_path_buf(),
        source,
    })?;
    let key =
        ureq::tls::PrivateKey::from_pem(&key_pem).map_err(|source| ClientError::PrivateKey {
            path: key.to_path_buf(),
            source,
        })?;
    Ok(ureq::tls::ClientCert::new_with_certs(&chain, key))
}

/// The body of a 2xx answer, or the error the answer stands for.
fn read_answer(mut resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, RequestError> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec();
    match (status, body) {
        (200..=299, Ok(b)) => Ok(b),
        (200..=299, Err(e)) => Err(RequestError::Body(e)),
        (_, b) => Err(RequestError::Status {
            status,
            detail: b.ok().map(|b| error_detail(&b)).unwrap_or_default(),
        }),
    }
}

/// `" (kind): message"` from the service's JSON error body, or the start of a non-JSON body.
fn error_detail(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorResponse>(body) {
        return format!(" ({}): {}", e.error.kind, e.error.message);
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
            let sigs = self.sign_chunk(&digests[start..end]).map_err(|e| match e {
                ClientError::CountMismatch { expected, got } => {
                    SignerError::CountMismatch { expected, got }
                }
                // SignerError carries text only, so the chain goes into it as text.
                e => SignerError::Remote(crate::error_chain(&e)),
            })?;
            out.extend(sigs);
            start = end;
        }
        Ok(out)
    }

    fn certificate_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// From the certificate, as the service's local signer computes it from the key: `sign`
    /// then lays out an ECDSA-signed package the same way whether the key is here or remote
    /// (the longest signature reserved), and needs no probe signature for RSA.
    fn signature_len(&self, hash: fsverity::HashAlgorithm) -> Option<usize> {
        verity_signing::longest_signed_data_len(hash, &self.cert)
    }
}
