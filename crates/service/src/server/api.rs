//! The HTTP API (v1): routes, request validation, signing, audit records.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use fsverity::{FileDigest, HashAlgorithm};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::audit::{rfc3339, untrusted, AuditLog, UNTRUSTED_MAX};
use super::auth::{Client, Clients, ConnInfo};
use super::config::Limits;
use super::error::ApiError;
use super::keys::Key;
use super::metrics::Metrics;
use super::peers::{Admit, RefusalGate};
use crate::protocol::{CertificateInfo, KeyInfo, KeyList, SignRequest, SignResponse, KEYS_PATH};

pub struct AppState {
    pub keys: BTreeMap<String, Key>,
    pub clients: Clients,
    pub audit: AuditLog,
    pub metrics: Metrics,
    pub limits: Limits,
    pub signing: super::signing::SigningThreads,
    pub next_id: AtomicU64,
    pub refusals: RefusalGate,
}

/// Most bytes of a refusal's message in its audit line: messages quote what the client sent
/// (serde names an unknown field, a CN is repeated), and a refused request must cost the log a
/// bounded number of bytes.
const MESSAGE_MAX: usize = 512;

/// Most bytes of a refused request's body read after the answer is decided, and for how long: a
/// client that declared its length is usually still sending, and closing with its bytes unread
/// makes the kernel reset the connection, which loses the answer before the client reads it
/// (RFC 9112 section 9.6). Past these bounds the connection is closed anyway.
const DRAIN_MAX: u64 = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(3);

impl AppState {
    /// Writes the audit line of a refusal, within the peer's budget of refusal lines; the line
    /// saying how many were left out comes first. Refusals need no credentials, so they must not
    /// be able to fill the disk the signing lines need.
    pub async fn log_refusal(&self, peer: Option<SocketAddr>, rec: Value) {
        if let Some(peer) = peer {
            match self.refusals.admit(peer.ip()) {
                Admit::Suppress => {
                    self.metrics.refusal_unlogged();
                    return;
                }
                Admit::Write { suppressed: 0 } => {}
                Admit::Write { suppressed } => {
                    let summary = json!({
                        "time": rfc3339(SystemTime::now()),
                        "action": "refusals_unlogged",
                        "peer": super::peers::peer_key(peer.ip()).to_string(),
                        "count": suppressed,
                        "message": format!(
                            "{suppressed} refusals of this peer were over its limit of {} audit lines per second",
                            self.limits.audit_refusals_per_peer_per_sec
                        ),
                    });
                    let _ = self.audit.write(&summary).await;
                }
            }
        }
        // The refusal stands whether or not its line could be written.
        let _ = self.audit.write(&rec).await;
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(KEYS_PATH, get(list_keys))
        .route(&crate::protocol::sign_path("{name}"), post(sign))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_and_count,
        ))
        .with_state(state)
}

fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        "/v1/keys" => "keys",
        p if p.starts_with("/v1/keys/") && p.ends_with("/sign") => "sign",
        _ => "other",
    }
}

/// Applies the request timeout and counts every request, whichever handler answers it.
async fn limit_and_count(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = endpoint_label(req.uri().path());
    let conn = req.extensions().get::<ConnInfo>().cloned();
    st.metrics.in_flight(1);
    let resp = match tokio::time::timeout(st.limits.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            // The handler was dropped before answering, so nothing it signed was handed out.
            let e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "request not answered within {} s",
                    st.limits.request_timeout.as_secs()
                ),
            );
            if endpoint == "sign" || endpoint == "keys" {
                let mut rec = Record::new(&st, conn.as_ref(), endpoint);
                rec.reject(&e);
                st.log_refusal(conn.map(|c| c.peer), rec.finish()).await;
            }
            st.metrics.error(e.kind);
            e.into_response()
        }
    };
    st.metrics.in_flight(-1);
    st.metrics.request(endpoint, resp.status().as_u16());
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

/// One audit log line under construction.
struct Record(serde_json::Map<String, Value>);

impl Record {
    fn new(st: &AppState, conn: Option<&ConnInfo>, action: &str) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("time".into(), Value::String(rfc3339(SystemTime::now())));
        m.insert(
            "id".into(),
            json!(st.next_id.fetch_add(1, Ordering::Relaxed)),
        );
        m.insert("action".into(), json!(action));
        if let Some(c) = conn {
            m.insert("peer".into(), json!(c.peer.to_string()));
            if let Some(cn) = &c.cert_cn {
                m.insert("cert_cn".into(), json!(untrusted(cn, UNTRUSTED_MAX)));
            }
        }
        Self(m)
    }
    fn set(&mut self, k: &str, v: Value) {
        self.0.insert(k.into(), v);
    }
    fn reject(&mut self, e: &ApiError) {
        self.set("outcome", json!("rejected"));
        self.set("status", json!(e.status.as_u16()));
        self.set("error", json!(e.kind));
        self.set("message", json!(untrusted(&e.message, MESSAGE_MAX)));
    }
    fn finish(self) -> Value {
        Value::Object(self.0)
    }
}

async fn list_keys(
    State(st): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
) -> Response {
    let mut rec = Record::new(&st, Some(&conn), "list_keys");
    let (client, method) = match st.clients.authenticate(&headers, &conn) {
        Ok(c) => c,
        Err(e) => return reject(&st, &conn, rec, e).await,
    };
    rec.set("client", json!(client.name));
    rec.set("auth", json!(method.as_str()));
    let now = std::time::SystemTime::now();
    let keys: Vec<KeyInfo> = st
        .keys
        .values()
        .filter(|k| client.keys.contains(&k.name))
        .map(|k| KeyInfo {
            certificate_pem: k.shown(now).cert_pem.clone(),
            certificates: certificates(k, now),
            hash_algorithms: [HashAlgorithm::Sha256, HashAlgorithm::Sha512]
                .map(|a| a.name().to_string())
                .into(),
            name: k.name.clone(),
        })
        .collect();
    rec.set("outcome", json!("listed"));
    rec.set("status", json!(200));
    if let Err(e) = st.audit.write(&rec.finish()).await {
        st.metrics.error("audit_unavailable");
        return ApiError::from_error(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", &e)
            .into_response();
    }
    Json(KeyList { keys }).into_response()
}

fn certificates(k: &Key, now: std::time::SystemTime) -> Vec<CertificateInfo> {
    let current = k.current(now).ok();
    k.versions
        .iter()
        .map(|v| CertificateInfo {
            certificate_pem: v.cert_pem.clone(),
            not_after: super::audit::rfc3339(v.not_after),
            not_before: super::audit::rfc3339(v.not_before),
            serial: v.serial.clone(),
            signing: current.is_some_and(|c| std::ptr::eq(c, v)),
        })
        .collect()
}

async fn reject(st: &AppState, conn: &ConnInfo, mut rec: Record, e: ApiError) -> Response {
    rec.reject(&e);
    st.metrics.error(e.kind);
    st.log_refusal(Some(conn.peer), rec.finish()).await;
    e.into_response()
}

async fn sign(
    State(st): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut rec = Record::new(&st, Some(&conn), "sign");
    rec.set("key", json!(untrusted(&name, UNTRUSTED_MAX)));
    for (h, field) in [
        (crate::protocol::REQUEST_ID_HEADER, "request_id"),
        (crate::protocol::ATTEMPT_HEADER, "attempt"),
    ] {
        if let Some(v) = headers.get(h) {
            let v = String::from_utf8_lossy(v.as_bytes());
            rec.set(field, json!(untrusted(&v, UNTRUSTED_MAX)));
        }
    }
    let mut body = Some(body);
    let resp = match sign_inner(&st, &conn, &name, &headers, &mut body, &mut rec).await {
        Ok(r) => r,
        Err(e) => {
            // Refused before its body was read (credentials, key): read it anyway, so the
            // client gets to see why.
            if let Some(body) = body {
                drain(body, &headers).await;
            }
            return reject(&st, &conn, rec, e).await;
        }
    };
    st.metrics.sign_latency(started.elapsed());
    resp
}

async fn sign_inner(
    st: &Arc<AppState>,
    conn: &ConnInfo,
    name: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
    rec: &mut Record,
) -> Result<Response, ApiError> {
    let (client, key) = authorize(st, conn, name, headers, rec)?;
    let body = read_body(body, headers, st.limits.max_body_bytes).await?;
    let (alg, digests) = parse_sign_request(&body, st.limits.max_batch, rec)?;
    // Checked at signing, not only at start: a certificate may expire while the service runs.
    let version = key
        .current(std::time::SystemTime::now())
        .map_err(|msg| ApiError::new(StatusCode::CONFLICT, "no_valid_certificate", msg))?;
    rec.set("cert_serial", json!(version.serial));
    let sigs = sign_on_pool(st, &client, version.signer.clone(), &digests).await?;
    // The refusal line (if the audit write fails) must not claim the digests were signed, so the
    // success line is built on a copy.
    let mut line = rec.0.clone();
    line.insert(
        "digests".into(),
        Value::Array(digests.iter().map(|d| Value::String(d.to_hex())).collect()),
    );
    line.insert("outcome".into(), json!("signed"));
    line.insert("status".into(), json!(200));
    if let Err(e) = st.audit.write(&Value::Object(line)).await {
        return Err(ApiError::from_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            &e,
        ));
    }
    st.metrics.signatures(&key.name, sigs.len());
    Ok(Json(SignResponse::new(&key.name, alg, &sigs)).into_response())
}

/// Who is asking, and whether they may use key `name`.
fn authorize<'a>(
    st: &'a AppState,
    conn: &ConnInfo,
    name: &str,
    headers: &HeaderMap,
    rec: &mut Record,
) -> Result<(Arc<Client>, &'a Key), ApiError> {
    let (client, method) = st.clients.authenticate(headers, conn)?;
    rec.set("client", json!(client.name));
    rec.set("auth", json!(method.as_str()));
    let Some(key) = st.keys.get(name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_key",
            format!("no key named \"{}\"", untrusted(name, UNTRUSTED_MAX)),
        ));
    };
    if !client.keys.contains(name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key_not_allowed",
            format!("client {:?} may not use key {name:?}", client.name),
        ));
    }
    Ok((client, key))
}

/// The digests of a sign request body, all checked before anything is signed.
fn parse_sign_request(
    body: &[u8],
    max_batch: usize,
    rec: &mut Record,
) -> Result<(HashAlgorithm, Vec<FileDigest>), ApiError> {
    let req: SignRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("request body is not a valid sign request: {e}"),
        )
    })?;
    let Some(alg) = HashAlgorithm::from_name(&req.hash_alg) else {
        return Err(ApiError::bad_request(
            "unknown_hash_alg",
            format!(
                "hash_alg {:?} is not one of \"sha256\", \"sha512\"",
                req.hash_alg
            ),
        ));
    };
    rec.set("hash_alg", json!(alg.name()));
    rec.set("count", json!(req.digests.len()));
    if req.digests.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "digests is empty"));
    }
    if req.digests.len() > max_batch {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "{} digests in one request; the limit is {max_batch}",
                req.digests.len(),
            ),
        ));
    }
    let digests = req
        .digests
        .iter()
        .enumerate()
        .map(|(i, h)| parse_digest(alg, i, h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((alg, digests))
}

fn parse_digest(alg: HashAlgorithm, i: usize, hex_digest: &str) -> Result<FileDigest, ApiError> {
    let bytes = hex::decode(hex_digest)
        .map_err(|e| ApiError::bad_request("bad_hex", format!("digests[{i}] is not hex: {e}")))?;
    FileDigest::new(alg, &bytes).ok_or_else(|| {
        ApiError::bad_request(
            "wrong_digest_length",
            format!(
                "digests[{i}] has {} bytes; {} digests have {}",
                bytes.len(),
                alg.name(),
                alg.digest_size()
            ),
        )
    })
}

/// Signs on the signing threads, within the client's share of them, so signing never blocks
/// the async workers and one client cannot take every core.
async fn sign_on_pool(
    st: &AppState,
    client: &Client,
    signer: Arc<dyn verity_signing::Signer>,
    digests: &[FileDigest],
) -> Result<Vec<Vec<u8>>, ApiError> {
    let _slot = client.slots.clone().acquire_owned().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server is shutting down",
        )
    })?;
    let failed =
        |msg: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "signing_failed", msg);
    let sigs = st.signing.sign(signer, digests).await.map_err(|e| {
        ApiError::from_error(StatusCode::INTERNAL_SERVER_ERROR, "signing_failed", &e)
    })?;
    if sigs.len() != digests.len() {
        return Err(failed(format!(
            "signer returned {} signatures for {} digests",
            sigs.len(),
            digests.len()
        )));
    }
    Ok(sigs)
}

/// Reads at most `limit` bytes (taking the body out of `body`); a declared or actual larger body
/// is refused without buffering it, but read on to [`DRAIN_MAX`] so the refusal reaches the client.
async fn read_body(
    body: &mut Option<Body>,
    headers: &HeaderMap,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > limit as u64 => return Err(too_big()),
            Some(_) => {}
            None => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "invalid Content-Length",
                ))
            }
        }
    }
    let Some(mut body) = body.take() else {
        return Err(ApiError::bad_request(
            "bad_request",
            "request body already read",
        ));
    };
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("bad_request", format!("reading request body: {e}"))
        })?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                drain_rest(body, (buf.len() + data.len()) as u64).await;
                return Err(too_big());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.into())
}

/// Reads and discards an unread request body, within [`DRAIN_MAX`] and [`DRAIN_TIME`]. Not when
/// the client waits for `100 Continue` (it has sent nothing and, answered, sends nothing) or
/// declared more than can be read.
async fn drain(body: Body, headers: &HeaderMap) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if expects_continue || declared.is_some_and(|n| n > DRAIN_MAX) {
        return;
    }
    drain_rest(body, 0).await;
}

/// Reads `body` to its end unless more than [`DRAIN_MAX`] bytes (counting `already` read) or
/// [`DRAIN_TIME`] would be needed.
async fn drain_rest(mut body: Body, already: u64) {
    let mut n = already;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while n <= DRAIN_MAX {
            match body.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}
