//! Minimal strict DER: just enough to write libfsverity's PKCS#7 byte for byte and to read it back
//! with every length checked against the bytes actually present.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Asn1Error {
    #[error("truncated DER")]
    Truncated,
    #[error("unsupported or invalid DER length encoding")]
    BadLength,
    #[error("multi-byte DER tags are not supported")]
    HighTag,
    #[error("expected DER tag 0x{expected:02x}, found 0x{found:02x}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("expected end of DER {what}, found {extra} more bytes")]
    Trailing { what: &'static str, extra: usize },
}

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
/// `[0]` constructed, context-specific.
pub const TAG_CTX0: u8 = 0xa0;
pub const TAG_CTX1: u8 = 0xa1;

/// One element: its contents and its whole encoding (tag + length + contents).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads consecutive elements from a slice; never reads past it.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    pub fn any(&mut self) -> Result<Tlv<'a>, Asn1Error> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(Asn1Error::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(Asn1Error::HighTag);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(Asn1Error::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            // 0x80 is BER indefinite length; more than 4 length bytes is never needed here.
            if n == 0 || n > 4 {
                return Err(Asn1Error::BadLength);
            }
            if after_len.len() < n {
                return Err(Asn1Error::Truncated);
            }
            let (len_bytes, rest) = after_len.split_at(n);
            after_len = rest;
            if len_bytes[0] == 0 {
                return Err(Asn1Error::BadLength);
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(Asn1Error::BadLength);
            }
            len
        };
        if after_len.len() < len {
            return Err(Asn1Error::Truncated);
        }
        let header_len = input.len() - after_len.len();
        let raw = &input[..header_len + len];
        self.rest = &input[header_len + len..];
        Ok(Tlv {
            content: &after_len[..len],
            raw,
        })
    }

    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, Asn1Error> {
        match self.peek_tag() {
            None => Err(Asn1Error::Truncated),
            Some(found) if found != tag => Err(Asn1Error::UnexpectedTag {
                expected: tag,
                found,
            }),
            Some(_) => self.any(),
        }
    }

    /// The next element if it has `tag`, else nothing (for OPTIONAL fields).
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn finish(&self, what: &'static str) -> Result<(), Asn1Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Asn1Error::Trailing {
                what,
                extra: self.rest.len(),
            })
        }
    }
}

/// Parses `input` as exactly one element with `tag`, nothing after it.
pub fn single<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<Tlv<'a>, Asn1Error> {
    let mut r = Reader::new(input);
    let t = r.expect(tag)?;
    r.finish(what)?;
    Ok(t)
}

/// Appends a DER element with the concatenation of `parts` as contents.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    for p in parts {
        out.extend_from_slice(p);
    }
}

pub fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    write_tlv(&mut out, tag, parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536] {
            let content = vec![7u8; len];
            let enc = tlv(TAG_OCTET_STRING, &[&content]);
            let t = single(&enc, TAG_OCTET_STRING, "test").unwrap();
            assert_eq!(t.content.len(), len);
            assert_eq!(t.raw, &enc[..]);
        }
    }

    #[test]
    fn rejects_bad_encodings() {
        // Indefinite length, non-minimal lengths, length past the end, trailing bytes.
        assert_eq!(
            Reader::new(&[0x30, 0x80, 0, 0]).any().unwrap_err(),
            Asn1Error::BadLength
        );
        assert_eq!(
            Reader::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5])
                .any()
                .unwrap_err(),
            Asn1Error::BadLength
        );
        assert_eq!(
            Reader::new(&[0x04, 0x82, 0x00, 0x80]).any().unwrap_err(),
            Asn1Error::BadLength
        );
        assert_eq!(
            Reader::new(&[0x04, 0x85, 1, 1, 1, 1, 1]).any().unwrap_err(),
            Asn1Error::BadLength
        );
        assert_eq!(
            Reader::new(&[0x04, 0x03, 1]).any().unwrap_err(),
            Asn1Error::Truncated
        );
        assert_eq!(
            Reader::new(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff])
                .any()
                .unwrap_err(),
            Asn1Error::Truncated
        );
        assert_eq!(
            Reader::new(&[0x04]).any().unwrap_err(),
            Asn1Error::Truncated
        );
        assert_eq!(
            Reader::new(&[0x1f, 0x01, 0x00]).any().unwrap_err(),
            Asn1Error::HighTag
        );
        assert!(matches!(
            single(&[0x05, 0x00, 0x00], TAG_NULL, "x"),
            Err(Asn1Error::Trailing { .. })
        ));
        assert!(matches!(
            single(&[0x05, 0x00], TAG_OID, "x"),
            Err(Asn1Error::UnexpectedTag { .. })
        ));
    }
}
