//! The signing service behind `rpm-verity serve`: TLS (rustls, aws-lc-rs) with optional client
//! certificates, an axum API, an fsync'ed audit log, and graceful shutdown on SIGTERM.
mod api;
mod audit;
mod auth;
mod config;
mod error;
mod keys;
mod metrics;
mod tls;

pub use self::auth::token_hash_hex;
pub use self::config::{ClientConfig, Config, KeyConfig, Limits};

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::danger::ClientCertVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use self::api::AppState;
use self::audit::AuditLog;
use self::auth::{Clients, ConnInfo};

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

/// Apart from [`Prepared::run`] so that `serve --check` can load and check everything without
/// serving.
pub fn prepare(config: Config) -> anyhow::Result<Prepared> {
    let mut keys = BTreeMap::new();
    for k in &config.keys {
        let key = keys::load(k)?;
        keys.insert(key.name.clone(), key);
    }
    let (tls, client_verifier) = tls::tls_config(&config)?;
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
        let conn = Connections {
            acceptor: tokio_rustls::TlsAcceptor::from(self.tls.clone()),
            app: api::router(self.state.clone()),
            state: self.state.clone(),
            verifier: self.client_verifier.clone(),
        };
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
            tokio::spawn(conn.clone().serve(tcp, peer, slot, graceful.watcher()));
        }
        drop(listener);
        self.drain(graceful).await;
        Ok(())
    }

    /// Lets requests in flight finish, up to the grace period.
    async fn drain(&self, graceful: hyper_util::server::graceful::GracefulShutdown) {
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
    }
}

/// What each accepted connection needs, cloned into its task.
#[derive(Clone)]
struct Connections {
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    state: Arc<AppState>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Connections {
    /// One connection: the TLS handshake, then HTTP/1.1 or HTTP/2 until the client or a
    /// shutdown closes it. `_slot` is held so the connection counts against `max_connections`.
    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        _slot: OwnedSemaphorePermit,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                handshake_failed(&self.state, peer, &e).await;
                return;
            }
            Err(_) => return,
        };
        let (cert_cn, cert_error) =
            tls::client_identity(self.verifier.as_ref(), tls.get_ref().1.peer_certificates());
        let info = ConnInfo {
            peer,
            cert_cn,
            cert_error,
        };
        let app = self.app;
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
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
            "time": audit::rfc3339(std::time::SystemTime::now()),
            "action": "tls_handshake",
            "peer": peer.to_string(),
            "outcome": "rejected",
            "error": "bad_client_certificate",
            "message": format!("client certificate refused: {e}"),
        });
        let _ = state.audit.write(&rec).await;
    }
}
