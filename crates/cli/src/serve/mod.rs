//! The signing service behind `rpm-verity serve`: TLS (rustls, aws-lc-rs) with optional client
//! certificates, an axum API, an fsync'ed audit log, and graceful shutdown on SIGTERM.
pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod keys;
pub mod metrics;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use self::api::AppState;
use self::audit::AuditLog;
use self::auth::{Clients, ConnInfo};
use self::config::Config;

/// Bounds a TLS handshake, so half-open connections cannot pin connection slots.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything loaded and checked before the first connection is accepted, so a bad key or
/// certificate stops the service at start rather than at the first request.
pub struct Prepared {
    config: Config,
    state: Arc<AppState>,
    tls: Arc<rustls::ServerConfig>,
    /// The real chain check for client certificates, run after the handshake (see
    /// [`DeferredChainCheck`]).
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let mut keys = BTreeMap::new();
    for k in &config.keys {
        let key = keys::load(k)?;
        keys.insert(key.name.clone(), key);
    }
    let (tls, client_verifier) = tls_config(&config)?;
    let audit = AuditLog::open(&config.audit_log)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sign-{i}"))
        .build()
        .context("starting the signing threads")?;
    let state = Arc::new(AppState {
        keys,
        clients: Clients::new(&config.clients, config.limits.per_client_concurrency),
        audit,
        metrics: Default::default(),
        limits: config.limits.clone(),
        pool,
        next_id: AtomicU64::new(1),
    });
    Ok(Prepared {
        config,
        state,
        tls,
        client_verifier,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} contains no PEM certificate", path.display());
    }
    Ok(certs)
}

type TlsSetup = (
    Arc<rustls::ServerConfig>,
    Option<Arc<dyn ClientCertVerifier>>,
);

fn tls_config(config: &Config) -> anyhow::Result<TlsSetup> {
    keys::check_private_file(&config.tls_key, "TLS key file")?;
    let chain = load_certs(&config.tls_cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key)
        .with_context(|| format!("reading TLS key {}", config.tls_key.display()))?;
    let provider = provider();
    let chain_check = match &config.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca)? {
                roots
                    .add(c)
                    .with_context(|| format!("client CA {}", ca.display()))?;
            }
            // Unauthenticated TLS stays allowed so token clients can connect; the API refuses
            // requests that carry neither a verified certificate nor a valid token.
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("client CA {}", ca.display()))?;
            Some(v)
        }
        None => None,
    };
    let verifier: Arc<dyn ClientCertVerifier> = match &chain_check {
        Some(v) => Arc::new(DeferredChainCheck { inner: v.clone() }),
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "TLS certificate {} and key {}",
                config.tls_cert.display(),
                config.tls_key.display()
            )
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), chain_check))
}

/// Lets a client certificate with a bad chain through the handshake, so that its request can be
/// refused with an HTTP 401 that says why, and logged like any refusal. Over TLS 1.3 a
/// handshake-time refusal reaches the client only as a broken pipe on its first write. Proof of
/// possession (the CertificateVerify signature) is still checked here; the chain is checked by
/// the real verifier right after the handshake, and a connection whose chain fails carries that
/// error instead of an identity.
#[derive(Debug)]
struct DeferredChainCheck {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredChainCheck {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The identity a verified client certificate gives, or why the certificate was refused.
fn client_identity(
    verifier: Option<&Arc<dyn ClientCertVerifier>>,
    certs: Option<&[CertificateDer<'static>]>,
) -> (Option<String>, Option<String>) {
    match (verifier, certs) {
        (Some(v), Some([ee, rest @ ..])) => match v.verify_client_cert(ee, rest, UnixTime::now()) {
            Ok(_) => match auth::subject_cn(ee) {
                Some(cn) => (Some(cn), None),
                None => (
                    None,
                    Some("client certificate has no subject CN".to_string()),
                ),
            },
            Err(e) => (None, Some(format!("client certificate refused: {e}"))),
        },
        _ => (None, None),
    }
}

impl Prepared {
    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish (up
    /// to the grace period) and returns.
    pub fn run(self, listen: Option<SocketAddr>) -> anyhow::Result<()> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        rt.block_on(self.serve(listen.unwrap_or(self.config.listen)))
    }

    async fn serve(&self, addr: SocketAddr) -> anyhow::Result<()> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        {
            // Tests and scripts read this line to find an ephemeral port.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "rpm-verity serve: listening on https://{local}");
            let _ = out.flush();
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
        let app = api::router(self.state.clone());
        let conn_slots = Arc::new(Semaphore::new(self.config.limits.max_connections));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        eprintln!("rpm-verity serve: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            let Ok(slot) = conn_slots.clone().try_acquire_owned() else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            let state = self.state.clone();
            let watcher = graceful.watcher();
            let verifier = self.client_verifier.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        handshake_failed(&state, peer, &e).await;
                        return;
                    }
                    Err(_) => return,
                };
                let (cert_cn, cert_error) =
                    client_identity(verifier.as_ref(), tls.get_ref().1.peer_certificates());
                let info = ConnInfo {
                    peer,
                    cert_cn,
                    cert_error,
                };
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(info.clone());
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    },
                );
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(64);
                let conn = builder
                    .serve_connection(TokioIo::new(tls), svc)
                    .into_owned();
                let _ = watcher.watch(conn).await;
            });
        }
        drop(listener);
        eprintln!("rpm-verity serve: shutting down, finishing requests in flight");
        let grace = self.config.limits.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!(
                "rpm-verity serve: requests still running after {} s, stopping anyway",
                grace.as_secs()
            );
        }
        Ok(())
    }
}

/// A client certificate refused by the TLS layer is an authentication attempt, so it gets an
/// audit line like a refused token; other handshake failures (scanners, plain HTTP) do not.
async fn handshake_failed(state: &AppState, peer: SocketAddr, e: &std::io::Error) {
    state.metrics.tls_failure();
    let rustls_err = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) =
        rustls_err
    {
        state.metrics.error("bad_client_certificate");
        let rec = serde_json::json!({
            "time": api::rfc3339(std::time::SystemTime::now()),
            "action": "tls_handshake",
            "peer": peer.to_string(),
            "outcome": "rejected",
            "error": "bad_client_certificate",
            "message": format!("client certificate refused: {e}"),
        });
        let _ = state.audit.write(&rec).await;
    }
}
