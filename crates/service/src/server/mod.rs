//! The signing service behind `rpm-verity serve`: TLS (rustls, aws-lc-rs) with optional client
//! certificates, an axum API, an fsync'ed audit log, and graceful shutdown on SIGTERM.
mod api;
mod audit;
mod auth;
mod config;
mod error;
mod keys;
mod metrics;
mod peers;
mod setup_error;
mod signing;
mod tls;

pub use self::auth::token_hash_hex;
pub use self::config::{ClientConfig, Config, KeyConfig, Limits};
pub use self::setup_error::{
    AuditLogError, BadKeyName, BadTime, ConfigError, KeyError, PrivateFileError, ServeError,
    TlsError,
};

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::danger::ClientCertVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use self::api::AppState;
use self::audit::AuditLog;
use self::auth::{Clients, ConnInfo};
use self::peers::{PeerSlot, PeerSlots, RefusalGate};

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
pub fn prepare(config: Config) -> Result<Prepared, ServeError> {
    let keys = keys::load_all(&config.keys)?;
    let (tls, client_verifier) = tls::tls_config(&config)?;
    let audit = AuditLog::open(&config.audit_log)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let signing = signing::SigningThreads::start(threads).map_err(ServeError::SigningThreads)?;
    let state = Arc::new(AppState {
        keys,
        clients: Clients::new(&config.clients, config.limits.per_client_concurrency),
        audit,
        metrics: Default::default(),
        limits: config.limits.clone(),
        signing,
        next_id: AtomicU64::new(1),
        refusals: RefusalGate::new(config.limits.audit_refusals_per_peer_per_sec),
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
    pub fn run(self, listen: Option<SocketAddr>) -> Result<(), ServeError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        rt.block_on(self.serve(listen.unwrap_or(self.config.listen)))
    }

    async fn serve(&self, addr: SocketAddr) -> Result<(), ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let local = listener.local_addr().map_err(ServeError::LocalAddr)?;
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
        let limits = &self.config.limits;
        let conn_slots = Arc::new(Semaphore::new(limits.max_connections));
        let peer_slots = PeerSlots::new(limits.max_connections_per_peer);
        // Connections watch `stop` to finish up; each holds a clone of `alive`, so `recv` on
        // the other end returns once the last one is gone.
        let (stop, stopped) = watch::channel(false);
        let (alive, mut all_closed) = mpsc::channel::<()>(1);

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServeError::Signals)?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(ServeError::Signals)?;
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
            let Some(peer_slot) = peer_slots.try_acquire(peer.ip()) else {
                self.state.metrics.error("peer_connection_limit");
                continue;
            };
            let Ok(slot) = conn_slots.clone().try_acquire_owned() else {
                self.state.metrics.error("connection_limit");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let held = Held {
                _slot: slot,
                _peer_slot: peer_slot,
                _alive: alive.clone(),
            };
            tokio::spawn(conn.clone().serve(tcp, peer, held, stopped.clone()));
        }
        drop(listener);
        eprintln!("rpm-verity serve: shutting down, finishing requests in flight");
        let _ = stop.send(true);
        drop(alive);
        let grace = limits.shutdown_grace;
        if tokio::time::timeout(grace, all_closed.recv())
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

/// What a connection holds until it closes.
struct Held {
    /// Counts against `max_connections`.
    _slot: OwnedSemaphorePermit,
    /// Counts against `max_connections_per_peer`.
    _peer_slot: PeerSlot,
    /// Keeps shutdown waiting for this connection.
    _alive: mpsc::Sender<()>,
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
    /// One connection: the TLS handshake, then HTTP/1.1 or HTTP/2 until the client closes it,
    /// it stays idle too long, or the service shuts down. Every phase is bounded in time, since
    /// none of them needs credentials.
    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        _held: Held,
        mut stop: watch::Receiver<bool>,
    ) {
        let limits = &self.state.limits;
        let handshake = tokio::time::timeout(limits.handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    handshake_failed(&self.state, peer, &e).await;
                    return;
                }
                Err(_) => return,
            },
            _ = stopping(&mut stop) => return,
        };
        let (cert_cn, cert_error) =
            tls::client_identity(self.verifier.as_ref(), tls.get_ref().1.peer_certificates());
        let info = ConnInfo {
            peer,
            cert_cn,
            cert_error,
        };
        let activity = Arc::new(Activity::new());
        let app = self.app;
        let act = activity.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                let busy = act.begin();
                let answer = app.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let r = answer.await;
                    drop(busy);
                    r
                }
            });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.first_request_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(64)
            .keep_alive_interval(Some(limits.idle_timeout))
            .keep_alive_timeout(limits.handshake_timeout);
        let conn = builder.serve_connection(TokioIo::new(tls), svc);
        tokio::pin!(conn);
        let idle = activity.idle(limits.first_request_timeout, limits.idle_timeout);
        let finish_within = tokio::select! {
            _ = conn.as_mut() => return,
            _ = idle => limits.handshake_timeout,
            _ = stopping(&mut stop) => limits.shutdown_grace,
        };
        // Requests in flight are answered (there are none when idle); an HTTP/2 peer gets a
        // GOAWAY. A peer that does not play along is dropped at the bound.
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(finish_within, conn).await;
    }
}

/// Returns when the service starts shutting down (or was dropped).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Whether a connection is doing anything, for its idle timeout: the HTTP/1 header timeout only
/// runs once a request has started arriving, and HTTP/2 has no idle timeout at all.
struct Activity {
    state: Mutex<ActivityState>,
    /// Wakes the idle timer when the last request in flight ends.
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    any_request: bool,
    /// The end of the handshake or of the last request.
    since: Instant,
}

/// A request in flight on its connection, until dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                any_request: false,
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut s = self.lock();
        s.in_flight += 1;
        s.any_request = true;
        Busy(self.clone())
    }

    /// Returns once the connection has had no request in flight for `idle` (`first` before
    /// its first request).
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = {
                let s = self.lock();
                (s.in_flight == 0).then(|| s.since + if s.any_request { idle } else { first })
            };
            match deadline {
                None => self.changed.notified().await,
                Some(d) if Instant::now() >= d => return,
                Some(d) => {
                    let _ = tokio::time::timeout_at(d.into(), self.changed.notified()).await;
                }
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight -= 1;
        s.since = Instant::now();
        drop(s);
        self.0.changed.notify_one();
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
