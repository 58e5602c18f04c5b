//! rpm's base64: `decode_lenient` never panics on any text, and `encode_wrapped` then
//! `decode_lenient` gives the bytes back (also when lines are joined by other separators).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm_format::base64::{decode_lenient, encode_wrapped};

fuzz_target!(|data: &[u8]| {
    let _ = decode_lenient(data);
    let text = encode_wrapped(data);
    assert!(text.lines().all(|l| l.len() <= 64));
    assert_eq!(text.is_empty(), data.is_empty());
    assert_eq!(decode_lenient(text.as_bytes()).unwrap(), data);
    let spaced = text.replace('\n', " \r\n\t");
    assert_eq!(decode_lenient(spaced.as_bytes()).unwrap(), data);
});
