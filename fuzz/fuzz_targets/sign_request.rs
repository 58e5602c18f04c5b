//! The signing service's request body: `protocol::SignRequest` from arbitrary JSON with
//! serde_json, then the checks the server makes before signing (`server/api.rs`,
//! `parse_sign_request`, which is private: the same steps through the same public functions:
//! `HashAlgorithm::from_name`, batch size, `hex::decode`, `FileDigest::new`). Property: no
//! panic, and a request that passes round-trips through `SignRequest::new` and JSON.
#![no_main]
use fsverity::{FileDigest, HashAlgorithm};
use libfuzzer_sys::fuzz_target;
use verity_service::protocol::{is_valid_key_name, sign_path, SignRequest};
use verity_service::MAX_BATCH;

fn validate(req: &SignRequest) -> Option<(HashAlgorithm, Vec<FileDigest>)> {
    let alg = HashAlgorithm::from_name(&req.hash_alg)?;
    if req.digests.is_empty() || req.digests.len() > MAX_BATCH {
        return None;
    }
    let digests = req
        .digests
        .iter()
        .map(|h| FileDigest::new(alg, &hex::decode(h).ok()?))
        .collect::<Option<Vec<_>>>()?;
    Some((alg, digests))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if is_valid_key_name(name) {
            assert!(sign_path(name).ends_with("/sign"));
        }
    }
    let Ok(req) = serde_json::from_slice::<SignRequest>(data) else {
        return;
    };
    let Some((alg, digests)) = validate(&req) else {
        return;
    };
    assert_eq!(digests.len(), req.digests.len());
    let again = SignRequest::new(alg, &digests);
    let json = serde_json::to_vec(&again).unwrap();
    let back: SignRequest = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, again);
    assert_eq!(validate(&back).map(|(_, d)| d), Some(digests));
});
