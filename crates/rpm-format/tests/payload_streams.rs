//! The payload readers (inline and threaded) on awkward streams: a first read of one byte,
//! a truncated or corrupt compressed stream, a consumer that stops early.

use std::io::{self, Read, Write};

use rpm_format::payload::PayloadExpectations;
use rpm_format::{Compressor, PayloadReader, RawPayload};
use sha2::Digest;

fn data() -> Vec<u8> {
    (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn gz(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

fn xz(d: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

fn reader<R: Read + Send + 'static>(
    threaded: bool,
    c: Compressor,
    src: R,
    exp: &PayloadExpectations,
    size: Option<u64>,
) -> PayloadReader<R> {
    let raw = RawPayload::new(src, &[], exp).unwrap();
    if threaded {
        PayloadReader::threaded(c, raw, size).unwrap()
    } else {
        PayloadReader::new(c, raw, size).unwrap()
    }
}

/// Gzip is recognised by two bytes even when the first read yields only one (a header
/// `BufReader` with one byte left over does that).
#[test]
fn gzip_detected_after_a_one_byte_first_read() {
    let d = data();
    let z = gz(&d);
    for threaded in [false, true] {
        let src = io::Cursor::new(z[..1].to_vec()).chain(io::Cursor::new(z[1..].to_vec()));
        let mut p = reader(threaded, Compressor::Gzip, src, &Default::default(), None);
        let mut out = Vec::new();
        p.read_to_end(&mut out).unwrap();
        assert!(out == d, "threaded={threaded}: got {} bytes", out.len());
    }
    // Not gzip ("w0.ufdio" payloads pass through), also after a one-byte read.
    let plain = b"070701 not compressed".to_vec();
    for threaded in [false, true] {
        let src = io::Cursor::new(plain[..1].to_vec()).chain(io::Cursor::new(plain[1..].to_vec()));
        let mut p = reader(threaded, Compressor::Gzip, src, &Default::default(), None);
        let mut out = Vec::new();
        p.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
    }
}

/// A truncated compressed stream stays an error: on every read after the first and at
/// `finish`, even without any digest or size to compare.
#[test]
fn truncated_stream_errors_stick() {
    let d = data();
    for (c, z) in [(Compressor::Gzip, gz(&d)), (Compressor::Xz, xz(&d))] {
        let cut = z[..z.len() / 2].to_vec();
        for threaded in [false, true] {
            let mut p = reader(
                threaded,
                c,
                io::Cursor::new(cut.clone()),
                &Default::default(),
                None,
            );
            let mut out = Vec::new();
            let first = p.read_to_end(&mut out).unwrap_err().to_string();
            let again = p.read(&mut [0u8; 10]);
            assert!(
                again.is_err(),
                "{c:?} threaded={threaded}: read after error {again:?}"
            );
            let fin = p.finish();
            assert!(
                fin.is_err(),
                "{c:?} threaded={threaded}: finish {fin:?} after {first}"
            );
        }
    }
}

/// A corrupt compressed stream in a package whose PAYLOADDIGEST does not match is reported as
/// the digest mismatch, the cause.
#[test]
fn corrupt_stream_reports_the_digest_mismatch() {
    let d = data();
    for (c, z) in [(Compressor::Gzip, gz(&d)), (Compressor::Xz, xz(&d))] {
        let good = hex::encode(sha2::Sha256::digest(&z));
        let mut bad = z.clone();
        let k = bad.len() / 2;
        bad[k] ^= 0xff;
        let exp = PayloadExpectations {
            payload_digest: Some((8, good)),
            ..Default::default()
        };
        for threaded in [false, true] {
            let mut p = reader(threaded, c, io::Cursor::new(bad.clone()), &exp, None);
            let e = io::copy(&mut p, &mut io::sink()).unwrap_err().to_string();
            assert!(e.contains("digest"), "{c:?} threaded={threaded}: {e}");
        }
    }
}

/// A consumer that stops early and then finishes (or drops the reader) does not hang.
/// `finish` decompresses only a little further (callers finish at the cpio trailer): it
/// refuses a payload that goes on for longer, and checks the size of one that does not.
#[test]
fn early_stop_then_finish_or_drop() {
    let d: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let z = gz(&d);
    let mut b = [0u8; 100];
    for threaded in [false, true] {
        let mut p = reader(
            threaded,
            Compressor::Gzip,
            io::Cursor::new(z.clone()),
            &Default::default(),
            Some(d.len() as u64),
        );
        p.read_exact(&mut b).unwrap();
        assert_eq!(&b[..], &d[..100]);
        assert!(matches!(
            p.finish(),
            Err(rpm_format::Error::TrailingPayload { at: 100, .. })
        ));
        let mut p = reader(
            threaded,
            Compressor::Gzip,
            io::Cursor::new(z.clone()),
            &Default::default(),
            Some(d.len() as u64),
        );
        let near_end = d.len() - rpm_format::payload::TRAILING_LIMIT as usize;
        io::copy(&mut (&mut p).take(near_end as u64), &mut io::sink()).unwrap();
        assert_eq!(p.finish().unwrap().uncompressed_bytes, d.len() as u64);
    }
    let mut p = reader(
        true,
        Compressor::Gzip,
        io::Cursor::new(z),
        &Default::default(),
        None,
    );
    p.read_exact(&mut b).unwrap();
    drop(p);
}

/// The package cannot be read half-way (a disk error): that is what the error says, not
/// "corrupt xz payload".
#[test]
fn read_error_is_not_reported_as_corruption() {
    struct Failing(Vec<u8>, usize);
    impl Read for Failing {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let half = self.0.len() / 2;
            if self.1 >= half {
                return Err(io::Error::other("disk on fire"));
            }
            let n = b.len().min(half - self.1).min(4096);
            b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let d = data();
    for (c, z) in [(Compressor::Xz, xz(&d)), (Compressor::Gzip, gz(&d))] {
        for threaded in [false, true] {
            let mut p = reader(
                threaded,
                c,
                Failing(z.clone(), 0),
                &Default::default(),
                None,
            );
            let e = io::copy(&mut p, &mut io::sink()).unwrap_err().to_string();
            assert!(
                e.contains("disk on fire") && !e.contains("corrupt"),
                "{c:?} threaded={threaded}: {e}"
            );
        }
    }
}
