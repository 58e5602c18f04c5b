//! The rpm-verity signing service: build hosts send fs-verity digests, never packages, to a host
//! that holds the signing keys. One crate holds both ends so the server, the client and the typed
//! API between them ([`protocol`]) change together.
#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{
    ClientError, Credentials, EventSink, RemoteSigner, RemoteSignerOptions, RetryPolicy,
    SignerEvent,
};
pub use protocol::MAX_BATCH;

/// `error: cause: cause ...`, for places that can carry only text: an HTTP error message, a log
/// line, or `SignerError`'s string.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
