//! `Pkcs7Signature::from_der` over arbitrary bytes, then its accessors. Property: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use verity_signing::Pkcs7Signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Pkcs7Signature::from_der(data) {
        let _ = p.signer().to_string();
        let _ = p.digest_algorithm().name();
        let _ = p.digest_algorithm().fsverity();
        let _ = p.signature_algorithm();
        let _ = p.signature_value().len();
    }
});
