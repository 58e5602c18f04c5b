//! Base64 exactly as rpm writes verity signatures (`rpmBase64Encode` with line length -1 → 64):
//! standard alphabet with `=` padding, 64 characters per line and a `\n` after every line,
//! the last one included. The decoder mirrors rpm's: characters outside the alphabet are skipped.

use crate::error::{Error, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Input bytes per output line (64 characters).
const LINE_BYTES: usize = 48;

/// Encodes with rpm's line wrapping. Empty input gives an empty string.
pub fn encode_wrapped(data: &[u8]) -> String {
    let lines = data.len().div_ceil(LINE_BYTES);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4 + lines);
    for line in data.chunks(LINE_BYTES) {
        for c in line.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            out.push(ALPHABET[(n >> 18) as usize & 63] as char);
            out.push(ALPHABET[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if c.len() > 2 {
                ALPHABET[n as usize & 63] as char
            } else {
                '='
            });
        }
        out.push('\n');
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes, skipping anything outside the alphabet (newlines, spaces); `=` ends the data.
pub fn decode_lenient(text: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut n = 0;
    for &c in text {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else { continue };
        acc = acc << 6 | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        0 => {}
        1 => return Err(Error::Base64("dangling character at the end".into())),
        2 => out.push((acc >> 4) as u8),
        _ => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
    }
    Ok(out)
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
}
