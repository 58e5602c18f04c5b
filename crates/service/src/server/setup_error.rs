//! Why the service cannot start: a configuration it refuses, a key, certificate or audit log it
//! cannot use, or a thread or socket it cannot get. Each names the file, key or client it is
//! about and keeps its cause as the source; requests are refused with [`super::error::ApiError`]
//! instead.
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::protocol::MAX_BATCH;

/// A time in the configuration that is not the one RFC 3339 form it takes.
#[derive(Debug, Error)]
#[error("{0:?} is not a UTC time like 2026-01-31T00:00:00Z")]
pub struct BadTime(pub String);

/// A key name that cannot appear in a URL as it is.
#[derive(Debug, Error)]
#[error("must be 1 to 128 characters: letters, digits, '-', '_' and '.'")]
pub struct BadKeyName;

/// A configuration file the service refuses.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// What is wrong with the file at `path` ([`super::Config::load`]).
    #[error("config {}", .path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("listen = {value:?} is not an IP:port address")]
    Listen {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("key {key:?}: {field}")]
    KeyTime {
        key: String,
        field: &'static str,
        #[source]
        source: BadTime,
    },
    #[error("key name {name:?}")]
    KeyName {
        name: String,
        #[source]
        source: BadKeyName,
    },
    #[error("key {0:?}: not_after is not after not_before")]
    KeyValidity(String),
    #[error("no [[key]] configured")]
    NoKeys,
    #[error(
        "a client has cert_cn but tls.client_ca is not set, so client certificates cannot be \
         verified"
    )]
    ClientCnWithoutCa,
    #[error("limits.max_batch must be between 1 and {MAX_BATCH}")]
    MaxBatch,
    #[error("limits.max_body_bytes must be at least 1024")]
    MaxBodyBytes,
    #[error("limits.per_client_concurrency and limits.max_connections must be at least 1")]
    Concurrency,
    #[error(
        "limits.max_connections_per_peer and limits.audit_refusals_per_peer_per_sec must be at \
         least 1"
    )]
    PerPeer,
    #[error("limits.{0} must be at least 1")]
    ZeroTimeout(&'static str),
    #[error("a [[client]] has an empty name")]
    ClientWithoutName,
    #[error("client {0:?} is defined twice")]
    ClientTwice(String),
    #[error("client {0:?} has neither cert_cn nor token_sha256, so it could never authenticate")]
    ClientWithoutCredentials(String),
    #[error("clients {first:?} and {second:?} have the same cert_cn {cn:?}")]
    SameCn {
        first: String,
        second: String,
        cn: String,
    },
    #[error("client {0:?}: token_sha256 must be 64 hex digits (sha256 of the token)")]
    TokenFormat(String),
    #[error("clients {first:?} and {second:?} share a token")]
    SharedToken { first: String, second: String },
    #[error("client {client:?} is allowed key {key:?}, which is not configured")]
    UnknownKey { client: String, key: String },
}

/// A secret file (key, PIN, passphrase) that cannot be checked or that others may read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PrivateFileError {
    #[error("{what} {}", .path.display())]
    Stat {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{what} {} has mode {mode:04o}: group or others may access it; refusing to use it \
         (chmod 600 it)",
        .path.display()
    )]
    Mode {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
}

/// A configured signing key that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key {key:?}")]
    Pkcs11Uri {
        key: String,
        #[source]
        source: verity_signing::Pkcs11Error,
    },
    #[error("key {key:?}")]
    PrivateFile {
        key: String,
        #[source]
        source: PrivateFileError,
    },
    #[error("key {key:?}: reading {}", .path.display())]
    Passphrase {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key {key:?}")]
    Load {
        key: String,
        #[source]
        source: verity_signing::LoadError,
    },
    /// No certificate of a key name is valid now; the message says why for each.
    #[error("{0}; refusing to start")]
    NoValidCertificate(String),
}

/// The TLS certificate, key or client CA cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error(transparent)]
    PrivateFile(#[from] PrivateFileError),
    #[error("reading {}", .path.display())]
    ReadCertificates {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("parsing certificates in {}", .path.display())]
    ParseCertificates {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} contains no PEM certificate", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("reading TLS key {}", .path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("client CA {}", .path.display())]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA {}", .path.display())]
    ClientVerifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("TLS protocol versions")]
    ProtocolVersions(#[source] rustls::Error),
    #[error("TLS certificate {} and key {}", .cert.display(), .key.display())]
    CertificateAndKey {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The audit log cannot be opened or repaired.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditLogError {
    #[error("opening audit log {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("audit log {}", .path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading audit log {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("truncating audit log {}", .path.display())]
    Truncate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the audit log thread")]
    Thread(#[source] io::Error),
}

/// Why [`super::prepare`] or [`super::Prepared::run`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    AuditLog(#[from] AuditLogError),
    #[error("starting the signing threads")]
    SigningThreads(#[source] std::io::Error),
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    #[error("listening on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the listening socket's address")]
    LocalAddr(#[source] io::Error),
    #[error("installing the SIGTERM/SIGINT handlers")]
    Signals(#[source] io::Error),
}
