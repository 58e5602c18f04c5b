//! Private-key loading (`SigningKey::from_pem`, which also takes DER PKCS#8 / PKCS#1, with and
//! without a passphrase for encrypted keys) over arbitrary bytes. Property: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use verity_signing::SigningKey;

fuzz_target!(|data: &[u8]| {
    for pass in [None, Some(&b"fuzz"[..])] {
        if let Ok(k) = SigningKey::from_pem(data, pass) {
            assert!(k.bits() > 0);
            assert!(k.signature_len() > 0);
            let _ = k.algorithm();
            let _ = k.public_key_der().len();
        }
    }
    let _ = SigningKey::from_der(data);
});
