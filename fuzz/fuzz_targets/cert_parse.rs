//! `Certificate::parse_all` and `Certificate::parse` (PEM bundle or DER) over arbitrary bytes,
//! then every accessor. Property: no panic; `parse` finds the first of `parse_all`'s.
#![no_main]
use libfuzzer_sys::fuzz_target;
use verity_signing::{kernel_key_description, subject_common_name, Certificate};

fuzz_target!(|data: &[u8]| {
    let all = Certificate::parse_all(data);
    let first = Certificate::parse(data);
    if let Ok(certs) = &all {
        assert!(!certs.is_empty());
        assert_eq!(first.as_ref().ok(), certs.first());
        for c in certs {
            let _ = (c.issuer(), c.subject(), c.serial_hex(), c.key_algorithm());
            let _ = (c.public_key(), c.spki_der(), c.issuer_der(), c.serial_der());
            let _ = c.kernel_key_description();
            let _ = c.subject_common_name();
            // Re-parsing a certificate's own DER gives the same certificate.
            assert_eq!(Certificate::from_der(c.der()).ok().as_ref(), Some(c));
        }
    }
    let _ = kernel_key_description(data);
    let _ = subject_common_name(data);
});
