//! Payload streams: the raw (compressed) bytes with the package's own digests checked as they
//! pass, and decompression by PAYLOADCOMPRESSOR. Nothing is held in memory beyond the
//! decoders' buffers.

use std::io::{self, BufReader, Chain, Cursor, Read};
use std::sync::mpsc;
use std::thread;

use md5::Md5;
use sha2::digest::DynDigest;
use sha2::Digest;

use crate::error::{Error, Result};

/// Compression of the cpio payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// Also rpm's default when PAYLOADCOMPRESSOR is absent; non-gzip data passes through
    /// unchanged, as rpm's gzdio does (that is how `w0.ufdio` packages are read).
    Gzip,
    Bzip2,
    Xz,
    /// Legacy `.lzma` ("alone") format.
    Lzma,
    Zstd,
}

impl Compressor {
    /// From the PAYLOADCOMPRESSOR value; `None` (tag absent) means gzip.
    pub fn from_tag(value: Option<&str>) -> Result<Compressor> {
        Ok(match value {
            None | Some("gzip") => Compressor::Gzip,
            Some("bzip2") => Compressor::Bzip2,
            Some("xz") => Compressor::Xz,
            Some("lzma") => Compressor::Lzma,
            Some("zstd") => Compressor::Zstd,
            Some(other) => return Err(Error::UnknownCompressor(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compressor::Gzip => "gzip",
            Compressor::Bzip2 => "bzip2",
            Compressor::Xz => "xz",
            Compressor::Lzma => "lzma",
            Compressor::Zstd => "zstd",
        }
    }
}

type Sniffed<R> = Chain<Cursor<Vec<u8>>, R>;

enum Inner<R: Read> {
    Plain(Sniffed<R>),
    Gzip(flate2::read::MultiGzDecoder<Sniffed<R>>),
    Bzip2(bzip2::read::MultiBzDecoder<R>),
    Xz(liblzma::read::XzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

/// A decompressing reader over any raw payload stream (the caller may feed it from another
/// thread). Decoder errors come out as [`Error::Decompress`] inside the `io::Error`.
pub struct Decoder<R: Read> {
    inner: Inner<R>,
    compressor: Compressor,
}

impl<R: Read> Decoder<R> {
    pub fn new(compressor: Compressor, mut raw: R) -> Result<Decoder<R>> {
        let inner = match compressor {
            Compressor::Gzip => {
                let mut magic = Vec::with_capacity(2);
                (&mut raw)
                    .take(2)
                    .read_to_end(&mut magic)
                    .map_err(|e| Error::from_io("payload", e))?;
                let is_gzip = magic == [0x1f, 0x8b];
                let chained = Cursor::new(magic).chain(raw);
                if is_gzip {
                    Inner::Gzip(flate2::read::MultiGzDecoder::new(chained))
                } else {
                    Inner::Plain(chained)
                }
            }
            Compressor::Bzip2 => Inner::Bzip2(bzip2::read::MultiBzDecoder::new(raw)),
            Compressor::Xz => Inner::Xz(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Compressor::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(|e| {
                    Error::Decompress {
                        compressor: "lzma".into(),
                        source: io::Error::other(e),
                    }
                })?;
                Inner::Xz(liblzma::read::XzDecoder::new_stream(raw, stream))
            }
            Compressor::Zstd => {
                Inner::Zstd(zstd::stream::read::Decoder::new(raw).map_err(|e| {
                    Error::Decompress {
                        compressor: "zstd".into(),
                        source: e,
                    }
                })?)
            }
        };
        Ok(Decoder { inner, compressor })
    }

    pub fn compressor(&self) -> Compressor {
        self.compressor
    }

    /// The raw stream underneath (reading it directly skips whatever the decoder buffered).
    pub fn get_mut(&mut self) -> &mut R {
        match &mut self.inner {
            Inner::Plain(c) => c.get_mut().1,
            Inner::Gzip(d) => d.get_mut().get_mut().1,
            Inner::Bzip2(d) => d.get_mut(),
            Inner::Xz(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut().get_mut(),
        }
    }

    /// The raw stream back (bytes the decoder buffered but did not use are lost; they have
    /// already passed through any digesting wrapper underneath).
    pub fn into_inner(self) -> R {
        match self.inner {
            Inner::Plain(c) => c.into_inner().1,
            Inner::Gzip(d) => d.into_inner().into_inner().1,
            Inner::Bzip2(d) => d.into_inner(),
            Inner::Xz(d) => d.into_inner(),
            Inner::Zstd(d) => d.finish().into_inner(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match &mut self.inner {
            Inner::Plain(c) => c.read(buf),
            Inner::Gzip(d) => d.read(buf),
            Inner::Bzip2(d) => d.read(buf),
            Inner::Xz(d) => d.read(buf),
            Inner::Zstd(d) => d.read(buf),
        };
        r.map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<Error>())
                || e.kind() == io::ErrorKind::Interrupted
            {
                e
            } else {
                Error::Decompress {
                    compressor: self.compressor.name().into(),
                    source: e,
                }
                .into_io()
            }
        })
    }
}

/// Digest algorithms of PAYLOADDIGESTALGO (rpm `pgpHashAlgo`).
fn payload_hasher(algo: u32) -> Result<Box<dyn DynDigest + Send>> {
    Ok(match algo {
        1 => Box::new(Md5::new()),
        2 => Box::new(sha1::Sha1::new()),
        8 => Box::new(sha2::Sha256::new()),
        9 => Box::new(sha2::Sha384::new()),
        10 => Box::new(sha2::Sha512::new()),
        11 => Box::new(sha2::Sha224::new()),
        other => return Err(Error::UnknownDigestAlgo(other)),
    })
}

/// What the package says its payload should hash to.
#[derive(Debug, Clone, Default)]
pub struct PayloadExpectations {
    /// PAYLOADDIGEST (hex) and PAYLOADDIGESTALGO over the compressed payload.
    pub payload_digest: Option<(u32, String)>,
    /// Signature MD5 over main header + payload, and the main header bytes that start it.
    pub md5: Option<[u8; 16]>,
    /// SIZE / LONGSIZE minus the main header length: expected compressed payload length.
    pub payload_len: Option<u64>,
}

/// Which checks passed, for reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadReport {
    pub raw_bytes: u64,
    pub checked_payload_digest: bool,
    pub checked_md5: bool,
    pub checked_size: bool,
}

/// Raw payload bytes with digests computed on the fly. The verdict comes at EOF (as an
/// `io::Error` wrapping [`Error`]) and from [`RawPayload::finish`], which also drains the rest.
pub struct RawPayload<R> {
    inner: R,
    payload: Option<(Box<dyn DynDigest + Send>, Vec<u8>)>,
    md5: Option<(Md5, [u8; 16])>,
    expected_len: Option<u64>,
    count: u64,
    /// Set at EOF: the report, or the message of the failure already returned once.
    verdict: Option<std::result::Result<PayloadReport, String>>,
}

impl<R: Read> RawPayload<R> {
    /// `main_header` seeds the MD5 (it covers header + payload).
    pub fn new(inner: R, main_header: &[u8], exp: &PayloadExpectations) -> Result<RawPayload<R>> {
        let payload = match &exp.payload_digest {
            Some((algo, hex_digest)) => {
                let want = hex::decode(hex_digest.trim()).map_err(|_| Error::BadHeader {
                    what: "main header",
                    msg: format!("PAYLOADDIGEST {hex_digest:?} is not hex"),
                })?;
                Some((payload_hasher(*algo)?, want))
            }
            None => None,
        };
        let md5 = exp.md5.map(|want| {
            let mut h = Md5::new();
            Digest::update(&mut h, main_header);
            (h, want)
        });
        Ok(RawPayload {
            inner,
            payload,
            md5,
            expected_len: exp.payload_len,
            count: 0,
            verdict: None,
        })
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.count
    }

    fn compute(&mut self) -> Result<PayloadReport> {
        let mut rep = PayloadReport {
            raw_bytes: self.count,
            ..Default::default()
        };
        if let Some(want) = self.expected_len {
            if want != self.count {
                return Err(Error::SizeMismatch {
                    what: "payload size (SIZE tag minus main header)",
                    expected: want,
                    actual: self.count,
                });
            }
            rep.checked_size = true;
        }
        if let Some((h, want)) = self.payload.take() {
            let got = h.finalize().to_vec();
            if got != want {
                return Err(Error::DigestMismatch {
                    what: "payload",
                    expected: hex::encode(want),
                    actual: hex::encode(got),
                });
            }
            rep.checked_payload_digest = true;
        }
        if let Some((h, want)) = self.md5.take() {
            let got: [u8; 16] = h.finalize().into();
            if got != want {
                return Err(Error::DigestMismatch {
                    what: "header+payload MD5",
                    expected: hex::encode(want),
                    actual: hex::encode(got),
                });
            }
            rep.checked_md5 = true;
        }
        Ok(rep)
    }

    /// Reads what is left and checks every digest and the size.
    pub fn finish(mut self) -> Result<PayloadReport> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io("payload", e)),
            }
        }
        match self.verdict.take() {
            Some(Ok(r)) => Ok(r),
            Some(Err(msg)) => Err(Error::Io {
                what: "payload",
                source: io::Error::other(msg),
            }),
            None => self.compute(),
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for RawPayload<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.verdict {
            Some(Ok(_)) => return Ok(0),
            Some(Err(msg)) => return Err(io::Error::other(msg.clone())),
            None => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return match self.compute() {
                Ok(rep) => {
                    self.verdict = Some(Ok(rep));
                    Ok(0)
                }
                Err(e) => {
                    self.verdict = Some(Err(e.to_string()));
                    Err(e.into_io())
                }
            };
        }
        let data = &buf[..n];
        if let Some((h, _)) = &mut self.payload {
            h.update(data);
        }
        if let Some((h, _)) = &mut self.md5 {
            Digest::update(h, data);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Feeds a decoder from a reader thread (see [`PayloadReader::threaded`]).
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.eof = true;
                    return Err(e);
                }
                Err(_) => {
                    self.eof = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

enum Source<R: Read> {
    Inline(Decoder<RawPayload<R>>),
    Threaded {
        decoder: Decoder<ChannelReader>,
        reader: thread::JoinHandle<Result<PayloadReport>>,
    },
}

/// The decompressed payload; counts bytes for the PAYLOADSIZE check.
pub struct PayloadReader<R: Read> {
    source: Source<R>,
    uncompressed: u64,
    expected_uncompressed: Option<u64>,
}

/// Outcome of reading a whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSummary {
    pub compressor: Compressor,
    pub uncompressed_bytes: u64,
    pub checked_uncompressed_size: bool,
    pub raw: PayloadReport,
}

/// Raw chunk size handed from the reader thread to the decoder.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight: bounds memory to ~2 MiB.
const CHUNKS_IN_FLIGHT: usize = 8;

impl<R: Read> PayloadReader<R> {
    /// Reading, digesting and decompressing on the calling thread.
    pub fn new(
        compressor: Compressor,
        raw: RawPayload<R>,
        expected_uncompressed: Option<u64>,
    ) -> Result<PayloadReader<R>> {
        Ok(PayloadReader {
            source: Source::Inline(Decoder::new(compressor, raw)?),
            uncompressed: 0,
            expected_uncompressed,
        })
    }

    /// Decompressed bytes so far.
    pub fn position(&self) -> u64 {
        self.uncompressed
    }

    pub fn compressor(&self) -> Compressor {
        match &self.source {
            Source::Inline(d) => d.compressor(),
            Source::Threaded { decoder, .. } => decoder.compressor(),
        }
    }

    /// Drains both streams and checks PAYLOADSIZE and all raw-payload digests.
    pub fn finish(mut self) -> Result<PayloadSummary> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| Error::from_io("payload", e))?;
        let mut checked = false;
        if let Some(want) = self.expected_uncompressed {
            if want != self.uncompressed {
                return Err(Error::SizeMismatch {
                    what: "uncompressed payload size",
                    expected: want,
                    actual: self.uncompressed,
                });
            }
            checked = true;
        }
        let compressor = self.compressor();
        let raw = match self.source {
            Source::Inline(d) => d.into_inner().finish()?,
            Source::Threaded { decoder, reader } => {
                // Dropping the decoder closes the channel so the reader thread cannot block.
                drop(decoder);
                reader.join().map_err(|_| Error::Io {
                    what: "payload",
                    source: io::Error::other("payload reader thread panicked"),
                })??
            }
        };
        Ok(PayloadSummary {
            compressor,
            uncompressed_bytes: self.uncompressed,
            checked_uncompressed_size: checked,
            raw,
        })
    }
}

impl<R: Read + Send + 'static> PayloadReader<R> {
    /// Reading and digesting the raw payload on a separate thread, decompressing on the
    /// calling one, so that digest checks cost no wall time on a multi-core machine.
    pub fn threaded(
        compressor: Compressor,
        mut raw: RawPayload<R>,
        expected_uncompressed: Option<u64>,
    ) -> Result<PayloadReader<R>> {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let reader = thread::Builder::new()
            .name("rpm-payload-read".into())
            .spawn(move || {
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    match raw.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            buf.truncate(n);
                            if tx.send(Ok(buf)).is_err() {
                                // Consumer gone (finish or drop): keep digesting the rest.
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = tx.send(Err(e));
                            return Err(Error::Io {
                                what: "payload",
                                source: io::Error::other(msg),
                            });
                        }
                    }
                }
                drop(tx);
                raw.finish()
            })
            .map_err(|e| Error::Io {
                what: "payload reader thread",
                source: e,
            })?;
        let channel = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            eof: false,
        };
        Ok(PayloadReader {
            source: Source::Threaded {
                decoder: Decoder::new(compressor, channel)?,
                reader,
            },
            uncompressed: 0,
            expected_uncompressed,
        })
    }
}

fn is_decompress_error(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Error>())
        .is_some_and(|x| matches!(x, Error::Decompress { .. }))
}

/// Reads the raw stream to its end; returns the digest/size verdict if it failed.
fn raw_verdict<Rd: Read>(r: &mut Rd) -> Option<io::Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.get_ref().is_some_and(|i| i.is::<Error>()) => return Some(e),
            Err(_) => return None,
        }
    }
}

impl<R: Read> Read for PayloadReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match &mut self.source {
            Source::Inline(d) => d.read(buf),
            Source::Threaded { decoder, .. } => decoder.read(buf),
        };
        match r {
            Ok(n) => {
                self.uncompressed += n as u64;
                Ok(n)
            }
            // A corrupt compressed stream in a package whose digests do not match is reported
            // as the digest mismatch: that is the cause, and it names what was checked.
            Err(e) if is_decompress_error(&e) => {
                let verdict = match &mut self.source {
                    Source::Inline(d) => raw_verdict(d.get_mut()),
                    Source::Threaded { decoder, .. } => raw_verdict(decoder.get_mut()),
                };
                Err(verdict.unwrap_or(e))
            }
            Err(e) => Err(e),
        }
    }
}
