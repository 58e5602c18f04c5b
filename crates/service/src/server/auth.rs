//! Who is calling: a bearer token (only its SHA-256 is configured) or a client certificate that
//! the TLS layer already verified against `tls.client_ca` (identity = subject CN).
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::config::ClientConfig;
use super::error::ApiError;

/// What the TLS layer learned about the connection; attached to every request on it.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Subject CN of a client certificate that chained to `tls.client_ca`.
    pub cert_cn: Option<String>,
    /// Why the client certificate presented on this connection was refused.
    pub cert_error: Option<String>,
}

pub struct Client {
    pub name: String,
    pub keys: BTreeSet<String>,
    /// Bounds the client's signing requests in flight, so one busy builder cannot take every core.
    pub slots: Arc<Semaphore>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Token,
    Certificate,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Certificate => "certificate",
        }
    }
}

pub struct Clients {
    by_cn: HashMap<String, Arc<Client>>,
    by_token: HashMap<[u8; 32], Arc<Client>>,
}

impl Clients {
    pub fn new(configs: &[ClientConfig], per_client_concurrency: usize) -> Self {
        let mut by_cn = HashMap::new();
        let mut by_token = HashMap::new();
        for c in configs {
            let client = Arc::new(Client {
                name: c.name.clone(),
                keys: c.keys.clone(),
                slots: Arc::new(Semaphore::new(per_client_concurrency)),
            });
            if let Some(cn) = &c.cert_cn {
                by_cn.insert(cn.clone(), client.clone());
            }
            for h in &c.token_sha256 {
                by_token.insert(*h, client.clone());
            }
        }
        Self { by_cn, by_token }
    }

    /// A bearer token, when sent, decides (a wrong token is refused even on a connection
    /// with a good certificate, so a misconfigured client notices). Looking the token up by its
    /// hash means the comparison time says nothing about the configured tokens.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<(Arc<Client>, AuthMethod), ApiError> {
        // A bad certificate is refused even alongside a good token: it means a broken or
        // hostile client, not one to serve.
        if let Some(e) = &conn.cert_error {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_client_certificate",
                e.clone(),
            ));
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "bad_credentials",
                        "Authorization header is not 'Bearer TOKEN'",
                    )
                })?;
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            return match self.by_token.get(&hash) {
                Some(c) => Ok((c.clone(), AuthMethod::Token)),
                None => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_credentials",
                    "unknown bearer token",
                )),
            };
        }
        if let Some(cn) = &conn.cert_cn {
            return match self.by_cn.get(cn) {
                Some(c) => Ok((c.clone(), AuthMethod::Certificate)),
                None => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "unknown_client",
                    format!("client certificate CN {cn:?} is not a configured client"),
                )),
            };
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_credentials",
            "no credentials: send a client certificate or an 'Authorization: Bearer' token",
        ))
    }
}

/// `sha256(token)` in hex, as written in `token_sha256`.
pub fn token_hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}
