//! A lenient PEM reader for files holding several blocks (key + certificate, certificate bundles).
//!
//! OpenSSL accepts any line width and text between blocks, so we do too; strict RFC 7468 decoders
//! reject files that `fsverity sign` reads fine.

use base64::Engine;

/// Upper bound on one PEM file; keys and certificate bundles are a few KiB, so anything larger is
/// not what the user meant to pass and is refused before decoding.
pub const MAX_PEM_LEN: usize = 4 << 20;

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug)]
pub struct PemBlock {
    pub label: String,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`), present on OpenSSL "traditional" encrypted keys.
    pub has_headers: bool,
    pub der: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("PEM block \"{0}\" has no matching END line")]
    Unterminated(String),
    #[error("PEM block \"{0}\" is not valid base64")]
    Base64(String),
    #[error("input is larger than {MAX_PEM_LEN} bytes")]
    TooLarge,
}

/// True if the input looks like PEM text (has a BEGIN line) rather than DER.
pub fn is_pem(data: &[u8]) -> bool {
    find(data, b"-----BEGIN ").is_some()
}

/// All blocks in order of appearance; text outside blocks is ignored.
pub fn parse_blocks(data: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    if data.len() > MAX_PEM_LEN {
        return Err(PemError::TooLarge);
    }
    let mut blocks = Vec::new();
    let mut rest = data;
    while let Some(start) = find(rest, b"-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = find(after, b"-----") else {
            break;
        };
        let label = String::from_utf8_lossy(&after[..label_end]).into_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(body_start, end_marker.as_bytes()) else {
            return Err(PemError::Unterminated(label));
        };
        let body = &body_start[..end];
        let mut b64 = Vec::with_capacity(body.len());
        let mut has_headers = false;
        for line in body.split(|&b| b == b'\n') {
            if line.contains(&b':') {
                has_headers = true;
                continue;
            }
            b64.extend(line.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|_| PemError::Base64(label.clone()))?;
        blocks.push(PemBlock {
            label,
            has_headers,
            der,
        });
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(blocks)
}

/// `der` as a PEM block with `label`, in the 64-column form OpenSSL writes, for files and
/// answers meant to be read by OpenSSL-based tools and people alike.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_blocks_with_text_and_odd_widths() {
        let pem = b"junk\n-----BEGIN A-----\nAAEC\nAw==\n-----END A-----\ntext\n-----BEGIN B C-----\r\nBAU=\r\n-----END B C-----\n";
        let blocks = parse_blocks(pem).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "A");
        assert_eq!(blocks[0].der, [0, 1, 2, 3]);
        assert_eq!(blocks[1].label, "B C");
        assert_eq!(blocks[1].der, [4, 5]);
        assert!(!blocks[1].has_headers);
    }

    #[test]
    fn rejects_unterminated_and_bad_base64() {
        assert!(matches!(
            parse_blocks(b"-----BEGIN A-----\nAAEC\n"),
            Err(PemError::Unterminated(_))
        ));
        assert!(matches!(
            parse_blocks(b"-----BEGIN A-----\n!!!!\n-----END A-----\n"),
            Err(PemError::Base64(_))
        ));
        assert!(parse_blocks(b"no pem here").unwrap().is_empty());
    }

    #[test]
    fn encode_wraps_at_64_and_round_trips() {
        assert_eq!(encode("X", b""), "-----BEGIN X-----\n-----END X-----\n");
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("CERTIFICATE", &der);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        // 256 bytes are 344 base64 characters: five full lines and one of 24.
        let body: Vec<usize> = lines[1..lines.len() - 1].iter().map(|l| l.len()).collect();
        assert_eq!(body, [64, 64, 64, 64, 64, 24]);
        let blocks = parse_blocks(pem.as_bytes()).unwrap();
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, der);
    }

    #[test]
    fn detects_headers() {
        let pem = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_blocks(pem).unwrap();
        assert!(blocks[0].has_headers);
    }
}
