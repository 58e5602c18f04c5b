//! The HTTP API (v1) as types, shared by the server and the client so the two cannot drift apart;
//! docs/openapi-v1.yaml is the same contract in prose.
//!
//! serde_json here has no `preserve_order`, so `json!` objects (what the service sent before these
//! types existed) serialize with their keys sorted. Response fields are declared in alphabetical
//! order so the answers stay byte-identical to that.
use base64::Engine;
use fsverity::{FileDigest, HashAlgorithm};
use serde::{Deserialize, Serialize};

/// Hard ceiling on digests per sign request. A server's configured `max_batch` may be lower but
/// never higher, so a client that batches at most this many only ever hears `batch_too_large`
/// from a server configured below the API's limit.
pub const MAX_BATCH: usize = 1000;

/// Path of the key list.
pub const KEYS_PATH: &str = "/v1/keys";

/// Path of the sign endpoint of key `name`.
pub fn sign_path(name: &str) -> String {
    format!("{KEYS_PATH}/{name}/sign")
}

/// Whether `name` may name a key: key names go into URL paths unescaped, so they are limited to
/// characters that never need escaping.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Body of `POST /v1/keys/{name}/sign`. `hash_alg` stays a string so the server can tell an
/// unknown algorithm (`unknown_hash_alg`) from a malformed body (`malformed_json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Lowercase hex, one per file.
    pub digests: Vec<String>,
    pub hash_alg: String,
}

impl SignRequest {
    /// A request for `digests`, which must all use `alg` (one request carries one algorithm).
    pub fn new(alg: HashAlgorithm, digests: &[FileDigest]) -> Self {
        Self {
            digests: digests.iter().map(FileDigest::to_hex).collect(),
            hash_alg: alg.name().to_string(),
        }
    }
}

/// Answer to a sign request: one signature per digest, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    pub hash_alg: String,
    pub key: String,
    /// Base64 (standard alphabet, padded) DER PKCS#7 signatures.
    pub signatures: Vec<String>,
}

impl SignResponse {
    pub fn new(key: &str, alg: HashAlgorithm, signatures: &[Vec<u8>]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            hash_alg: alg.name().to_string(),
            key: key.to_string(),
            signatures: signatures.iter().map(|s| b64.encode(s)).collect(),
        }
    }

    /// The DER signatures; on failure, the index of the first one that is not base64.
    pub fn decode_signatures(&self) -> Result<Vec<Vec<u8>>, (usize, base64::DecodeError)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.signatures
            .iter()
            .enumerate()
            .map(|(i, s)| b64.decode(s).map_err(|e| (i, e)))
            .collect()
    }
}

/// Answer to `GET /v1/keys`: the keys the caller may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The certificate of the key that signs now (the one every signature names).
    pub certificate_pem: String,
    /// Every certificate of the name, with its validity: during a rotation, the old and the
    /// new. Absent from services older than key rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateInfo>,
    pub hash_algorithms: Vec<String>,
    pub name: String,
}

/// One certificate of a key name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    pub certificate_pem: String,
    /// RFC 3339 UTC; the certificate's validity narrowed by the service's configuration.
    pub not_after: String,
    pub not_before: String,
    pub serial: String,
    /// Whether this is the one signing now.
    pub signing: bool,
}

/// Body of every refusal (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable and machine-readable (`bad_credentials`, `batch_too_large`, ...).
    pub kind: String,
    /// For humans; may change between versions.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_untyped_json_they_replace() {
        let r = SignResponse {
            hash_alg: "sha256".into(),
            key: "k1".into(),
            signatures: vec!["AAE=".into()],
        };
        let typed = serde_json::to_string(&r).unwrap();
        let untyped =
            serde_json::json!({"key": "k1", "hash_alg": "sha256", "signatures": ["AAE="]})
                .to_string();
        assert_eq!(typed, untyped);
        let k = KeyList {
            keys: vec![KeyInfo {
                certificate_pem: "PEM".into(),
                certificates: Vec::new(),
                hash_algorithms: vec!["sha256".into(), "sha512".into()],
                name: "k".into(),
            }],
        };
        let untyped = serde_json::json!({"keys": [{"name": "k", "certificate_pem": "PEM",
            "hash_algorithms": ["sha256", "sha512"]}]})
        .to_string();
        assert_eq!(serde_json::to_string(&k).unwrap(), untyped);
        let e = ErrorResponse {
            error: ErrorBody {
                kind: "x".into(),
                message: "y".into(),
            },
        };
        let untyped = serde_json::json!({"error": {"kind": "x", "message": "y"}}).to_string();
        assert_eq!(serde_json::to_string(&e).unwrap(), untyped);
    }

    #[test]
    fn request_matches_the_untyped_json_it_replaces() {
        let r = SignRequest {
            digests: vec!["ab".into()],
            hash_alg: "sha256".into(),
        };
        let untyped = serde_json::json!({"hash_alg": "sha256", "digests": ["ab"]}).to_string();
        assert_eq!(serde_json::to_string(&r).unwrap(), untyped);
    }

    #[test]
    fn request_refuses_unknown_fields() {
        let r =
            serde_json::from_str::<SignRequest>(r#"{"hash_alg":"sha256","digests":[],"extra":1}"#);
        assert!(r.is_err());
    }
}
