//! Base64 exactly as rpm writes verity signatures (`rpmBase64Encode` with line length -1 → 64):
//! standard alphabet with `=` padding, 64 characters per line and a `\n` after every line,
//! the last one included. The decoder mirrors rpm's: characters outside the alphabet are skipped.
//!
//! The codec itself is the `base64` crate; what is ours is only rpm's framing, which that crate
//! has no option for: the line wrapping on encode, and on decode the skipping of non-alphabet
//! bytes, `=` as the end of the data, and no demand that unused trailing bits be zero.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::{Error, Result};

/// Input bytes per output line (64 characters). A multiple of 3, so only the last line can
/// carry padding and lines can be encoded independently.
const LINE_BYTES: usize = 48;

/// What is left of rpm's text after filtering: alphabet characters only, no padding, trailing
/// bits as they come.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes with rpm's line wrapping. Empty input gives an empty string.
pub fn encode_wrapped(data: &[u8]) -> String {
    let lines = data.len().div_ceil(LINE_BYTES);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4 + lines);
    for line in data.chunks(LINE_BYTES) {
        STANDARD.encode_string(line, &mut out);
        out.push('\n');
    }
    out
}

/// Decodes, skipping anything outside the alphabet (newlines, spaces); `=` ends the data.
pub fn decode_lenient(text: &[u8]) -> Result<Vec<u8>> {
    let symbols: Vec<u8> = text
        .iter()
        .copied()
        .take_while(|&c| c != b'=')
        .filter(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        .collect();
    // A lone sixth of a byte cannot be decoded; the crate would say "invalid length", rpm's
    // wording is kept instead.
    if symbols.len() % 4 == 1 {
        return Err(Error::Base64("dangling character at the end".into()));
    }
    LENIENT
        .decode(&symbols)
        .map_err(|e| Error::Base64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg==\n"),
            ("fo", "Zm8=\n"),
            ("foo", "Zm9v\n"),
            ("foob", "Zm9vYg==\n"),
            ("fooba", "Zm9vYmE=\n"),
            ("foobar", "Zm9vYmFy\n"),
        ] {
            assert_eq!(encode_wrapped(i.as_bytes()), o);
            assert_eq!(decode_lenient(o.as_bytes()).unwrap(), i.as_bytes());
        }
    }

    #[test]
    fn wrapping_matches_rpm() {
        // 427-byte DER → 572 chars in 9 lines → 581 bytes (spec §4.3).
        let data: Vec<u8> = (0..427u32).map(|i| (i * 7 + 3) as u8).collect();
        let s = encode_wrapped(&data);
        assert_eq!(s.len(), 581);
        let lines: Vec<&str> = s.split_terminator('\n').collect();
        assert_eq!(lines.len(), 9);
        assert!(lines[..8].iter().all(|l| l.len() == 64));
        assert_eq!(lines[8].len(), 572 - 8 * 64);
        assert!(s.ends_with('\n') && !s.ends_with("\n\n"));
        // exactly 48 bytes: one full line
        assert_eq!(encode_wrapped(&[0u8; 48]).len(), 65);
        assert_eq!(encode_wrapped(&[0u8; 96]).matches('\n').count(), 2);
        assert_eq!(decode_lenient(s.as_bytes()).unwrap(), data);
        // decoder skips junk
        let junk = s.replace('\n', " \r\n\t*");
        assert_eq!(decode_lenient(junk.as_bytes()).unwrap(), data);
        assert!(decode_lenient(b"A").is_err());
    }

    /// Fixed vectors for both directions: bytes 0..100 as rpm would wrap them (two full lines
    /// and a padded third, each ending in `\n`; cross-checked with Python's `base64`), and
    /// rpm-style leniency on the way back.
    #[test]
    fn known_vectors_both_ways() {
        let data: Vec<u8> = (0..100u8).collect();
        let wrapped = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n\
                       MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f\n\
                       YGFiYw==\n";
        assert_eq!(encode_wrapped(&data), wrapped);
        assert_eq!(decode_lenient(wrapped.as_bytes()).unwrap(), data);
        for (text, want) in [
            // whitespace and other non-alphabet bytes anywhere
            (&b" Zm9v\r\nYmFy \t"[..], &b"foobar"[..]),
            (b"Zm\x009v-Y.m*F\xffy", b"foobar"),
            // padding optional; `=` ends the data, whatever follows
            (b"Zm8", b"fo"),
            (b"Zm8=garbage", b"fo"),
            (b"Zg==\nZm9v\n", b"f"),
            // non-zero trailing bits are ignored, as rpm does
            (b"Zh==", b"f"),
            (b"Zm9=", b"fo"),
            (b"", b""),
            (b"\n\n", b""),
        ] {
            assert_eq!(decode_lenient(text).unwrap(), want, "{text:?}");
        }
        for bad in [&b"A"[..], b"Zm9vY", b"Zm9vY===", b" a \n"] {
            let e = decode_lenient(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                "invalid base64: dangling character at the end"
            );
        }
    }
}
