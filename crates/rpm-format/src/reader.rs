//! One bounded cursor for every fixed layout in the format (lead, header intro, index entries,
//! region trailer, cpio headers), in the manner of rustls' `codec::Reader`.
//!
//! All lengths and counts in a package come from the package, so nothing here indexes a slice:
//! every read is checked against what is left and reports a shortfall as `None`, which the
//! caller turns into its own error (each format has its own wording for "truncated"). Data
//! arriving through `Read` is first read into a stack buffer of the fixed size and then parsed
//! with the same cursor, so a stream and a slice are checked by the same code.

use std::io::{self, Read};

use crate::error::{Error, Result};

/// A cursor over untrusted bytes that never reads past their end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// The next `n` bytes, or `None` (and nothing consumed) when fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// The next `N` bytes as an array, for fields whose size is part of the format.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn be_u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn be_u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn be_u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// A sub-cursor over the next `n` bytes, so a nested structure cannot read into what
    /// follows it.
    pub(crate) fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }

    /// Skips `n` bytes; `None` (and nothing consumed) when fewer are left.
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// Everything not yet read, consuming it.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.peek_rest();
        self.pos = self.buf.len();
        out
    }

    /// Everything not yet read, without consuming it.
    pub(crate) fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// `Some(())` only when everything has been read: a structure whose declared size does not
    /// match its content is malformed, not merely followed by junk.
    pub(crate) fn expect_end(&self) -> Option<()> {
        (self.remaining() == 0).then_some(())
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes arrived, so each caller
/// can word a short read its own way. `Interrupted` is retried as `read_exact` does.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while let Some(dst) = buf.get_mut(got..).filter(|d| !d.is_empty()) {
        match r.read(dst) {
            Ok(0) => break,
            Ok(n) => got += n.min(dst.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Fills `buf` completely; a short stream is [`Error::Truncated`] with the sizes involved.
pub(crate) fn read_exact_or<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
) -> Result<()> {
    let got = read_full(r, buf).map_err(|e| Error::Io { what, source: e })?;
    if got < buf.len() {
        return Err(Error::Truncated {
            what,
            needed: buf.len() as u64,
            got: got as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every kind of field in turn; `None` as soon as one does not fit.
    fn read_all(b: &[u8]) -> Option<(u8, u16, u32, u64, [u8; 3], usize)> {
        let mut r = Reader::new(b);
        let a = r.u8()?;
        let b16 = r.be_u16()?;
        let c = r.be_u32()?;
        let d = r.be_u64()?;
        let e = r.array::<3>()?;
        let mut sub = r.sub(4)?;
        sub.skip(1)?;
        let inner = sub.rest().len();
        sub.expect_end()?;
        r.skip(2)?;
        r.expect_end()?;
        Some((a, b16, c, d, e, inner))
    }

    #[test]
    fn fields_are_big_endian_and_consumed_in_order() {
        let b: Vec<u8> = (1..=24u8).collect();
        assert_eq!(
            read_all(&b),
            Some((
                1,
                0x0203,
                0x0405_0607,
                0x0809_0a0b_0c0d_0e0f,
                [16, 17, 18],
                3
            ))
        );
    }

    #[test]
    fn truncation_at_every_offset_is_none_never_a_panic() {
        let b: Vec<u8> = (1..=24u8).collect();
        for cut in 0..b.len() {
            assert_eq!(read_all(&b[..cut]), None, "cut at {cut}");
        }
        // One byte too many is not the end.
        let mut long = b.clone();
        long.push(0);
        assert_eq!(read_all(&long), None);
    }

    #[test]
    fn failed_reads_consume_nothing() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.be_u32(), None);
        assert_eq!(r.take(usize::MAX), None);
        assert_eq!(r.sub(4).map(|s| s.remaining()), None);
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.position(), 0);
        assert_eq!(r.be_u16(), Some(0x0102));
        assert_eq!(r.peek_rest(), &[3]);
        assert_eq!(r.expect_end(), None);
        assert_eq!(r.rest(), &[3]);
        assert_eq!(r.rest(), &[] as &[u8]);
        assert_eq!(r.expect_end(), Some(()));
        assert_eq!(r.take(0), Some(&[] as &[u8]));
    }

    /// A stream handing out one byte per call, with interruptions in between.
    struct Trickle<'a>(&'a [u8], bool);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn stream_reads_fill_or_report_the_shortfall() {
        let mut buf = [0u8; 4];
        assert_eq!(
            read_full(&mut Trickle(b"abcdef", false), &mut buf).unwrap(),
            4
        );
        assert_eq!(&buf, b"abcd");
        assert_eq!(read_full(&mut Trickle(b"ab", false), &mut buf).unwrap(), 2);
        for cut in 0..4 {
            let e =
                read_exact_or(&mut Trickle(&b"abcd"[..cut], false), &mut buf, "thing").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("truncated thing: needed 4 bytes, got {cut}")
            );
        }
        assert!(read_exact_or(&mut Trickle(b"abcd", false), &mut buf, "thing").is_ok());
    }
}
