//! Payload streams: the raw (compressed) bytes with the package's own digests checked as they
//! pass, and decompression by PAYLOADCOMPRESSOR. Nothing is held in memory beyond the
//! decoders' buffers.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use md5::Md5;
use sha2::Digest;

use crate::digest::DigestStream;
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

/// rpm 4.18 decodes xz and lzma with `lzma_auto_decoder` and this limit (`%_xz_memlimit` unset):
/// a stream whose dictionary needs more is refused. Without it a few bytes of `.lzma` header
/// claiming a 4 GiB dictionary cost gigabytes.
pub const LZMA_MEMLIMIT: u64 = 100 << 20;

/// rpm 4.18 leaves zstd's decoder at its default window limit (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`,
/// 128 MiB); set explicitly so the bound does not depend on the library's default.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The clear refusal for a stream that needs more decoder memory than rpm allows, when `e` is
/// the decoder saying so.
fn memory_refusal(compressor: Compressor, e: &io::Error) -> Option<Error> {
    use zstd::zstd_safe::zstd_sys::ZSTD_ErrorCode;
    let inner = e.get_ref()?;
    let msg = match compressor {
        Compressor::Xz | Compressor::Lzma => inner
            .downcast_ref::<liblzma::stream::Error>()
            .filter(|e| matches!(e, liblzma::stream::Error::MemLimit))
            .map(|_| {
                format!(
                    "the stream needs more than the {} MiB of decoder memory rpm allows",
                    LZMA_MEMLIMIT >> 20
                )
            }),
        Compressor::Zstd => inner
            .downcast_ref::<zstd::Error>()
            .filter(|e| e.is(ZSTD_ErrorCode::ZSTD_error_frameParameter_windowTooLarge))
            .map(|_| {
                format!(
                    "the stream's window is larger than the {} MiB rpm allows",
                    (1u64 << ZSTD_WINDOW_LOG_MAX) >> 20
                )
            }),
        Compressor::Gzip | Compressor::Bzip2 => None,
    }?;
    Some(Error::DecoderMemory {
        compressor: compressor.name(),
        msg,
    })
}

/// A stream with the bytes read to sniff its format put back in front.
type Sniffed<R> = std::io::Chain<io::Cursor<Vec<u8>>, R>;

enum Inner<R: BufRead> {
    Plain(Sniffed<R>),
    Gzip(flate2::bufread::MultiGzDecoder<Sniffed<R>>),
    Bzip2(bzip2::bufread::MultiBzDecoder<R>),
    Xz(liblzma::bufread::XzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

/// A decompressing reader over any buffered raw payload stream (the caller may feed it from
/// another thread). Decoders read the caller's buffers in place: no copy of the compressed
/// bytes. Decoder errors come out as [`Error::Decompress`] inside the `io::Error`, streams
/// asking for more memory than rpm allows as [`Error::DecoderMemory`].
pub struct Decoder<R: BufRead> {
    inner: Inner<R>,
    compressor: Compressor,
}

impl<R: BufRead> Decoder<R> {
    pub fn new(compressor: Compressor, mut raw: R) -> Result<Decoder<R>> {
        let inner = match compressor {
            Compressor::Gzip => {
                // Two bytes decide; one read may yield fewer, so what had to be consumed to
                // see them is put back in front of the stream.
                let mut magic = Vec::with_capacity(2);
                while magic.len() < 2 {
                    let buf = raw.fill_buf().map_err(|e| Error::from_io("payload", e))?;
                    if buf.is_empty() {
                        break;
                    }
                    if magic.is_empty() && buf.len() >= 2 {
                        break; // both bytes visible without consuming anything
                    }
                    magic.push(buf[0]);
                    raw.consume(1);
                }
                let is_gzip = if magic.is_empty() {
                    raw.fill_buf()
                        .map_err(|e| Error::from_io("payload", e))?
                        .starts_with(&[0x1f, 0x8b])
                } else {
                    magic == [0x1f, 0x8b]
                };
                let sniffed = io::Cursor::new(magic).chain(raw);
                if is_gzip {
                    Inner::Gzip(flate2::bufread::MultiGzDecoder::new(sniffed))
                } else {
                    Inner::Plain(sniffed)
                }
            }
            Compressor::Bzip2 => Inner::Bzip2(bzip2::bufread::MultiBzDecoder::new(raw)),
            Compressor::Xz | Compressor::Lzma => {
                let name = compressor.name();
                let stream = if compressor == Compressor::Xz {
                    liblzma::stream::Stream::new_auto_decoder(
                        LZMA_MEMLIMIT,
                        liblzma::stream::CONCATENATED,
                    )
                } else {
                    liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT)
                };
                let stream = stream.map_err(|e| Error::Decompress {
                    compressor: name.into(),
                    source: io::Error::other(e),
                })?;
                Inner::Xz(liblzma::bufread::XzDecoder::new_stream(raw, stream))
            }
            Compressor::Zstd => {
                let zerr = |e| Error::Decompress {
                    compressor: "zstd".into(),
                    source: e,
                };
                let mut d = zstd::stream::read::Decoder::with_buffer(raw).map_err(zerr)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(zerr)?;
                Inner::Zstd(d)
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
            Inner::Zstd(d) => d.get_mut(),
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
            Inner::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
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
            } else if let Some(refusal) = memory_refusal(self.compressor, &e) {
                refusal.into_io()
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
    payload: Option<(DigestStream, Vec<u8>)>,
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
                Some((DigestStream::new(*algo)?, want))
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
        // Marked as ours, so that decoders pass it through: an unreadable package is not a
        // corrupt compressed stream.
        let n = self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                Error::Io {
                    what: "package",
                    source: e,
                }
                .into_io()
            }
        })?;
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

/// A buffer and how many bytes of it are data.
type Chunk = (Vec<u8>, usize);

/// The receiving end of a chunk stream from a producer thread, readable in place
/// ([`BufRead`]): used buffers go back to the producer, so a stream of any length costs a
/// fixed set of buffers and no zeroing after the first round.
pub struct ChunkReceiver {
    rx: Receiver<io::Result<Chunk>>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    done: bool,
    /// The producer's error, returned again on every later read (as a decoder would), so a
    /// caller that reads on cannot mistake it for a clean end.
    failed: Option<(io::ErrorKind, String)>,
}

impl BufRead for ChunkReceiver {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        while self.pos == self.len && !self.done {
            match self.rx.recv() {
                Ok(Ok((buf, len))) => {
                    let used = std::mem::replace(&mut self.cur, buf);
                    if used.capacity() > 0 {
                        // The producer may have finished: then the buffer is just dropped.
                        let _ = self.back.try_send(used);
                    }
                    self.len = len;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        Ok(&self.cur[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

impl ChunkReceiver {
    /// The bytes `fill_buf` returned and not yet consumed, without waiting for more.
    fn buffered(&self) -> &[u8] {
        &self.cur[self.pos..self.len]
    }

    /// The next chunk whole, when nothing of it was consumed yet and it holds at most `max`
    /// bytes; it goes back to the producer when the [`LentChunk`] is dropped.
    fn lend(&mut self, max: usize) -> io::Result<Option<LentChunk>> {
        self.fill_buf()?;
        if self.pos != 0 || self.len == 0 || self.len > max {
            return Ok(None);
        }
        let buf = std::mem::take(&mut self.cur);
        let len = std::mem::replace(&mut self.len, 0);
        Ok(Some(LentChunk {
            buf,
            len,
            home: self.back.clone(),
        }))
    }
}

/// A decompressed chunk handed on without a copy (a big file's content going to a hashing
/// thread): the copy into a buffer of its own cost ~8 % of `sign`'s CPU on a package of big
/// files. Its buffer returns to the decompressing thread when dropped.
pub struct LentChunk {
    buf: Vec<u8>,
    len: usize,
    home: SyncSender<Vec<u8>>,
}

impl std::ops::Deref for LentChunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for LentChunk {
    fn drop(&mut self) {
        // The producer may have finished, or have enough buffers: then it is just freed.
        let _ = self.home.try_send(std::mem::take(&mut self.buf));
    }
}

/// A reader that can hand on whole buffers of what it read instead of copying them.
pub trait LendChunks: BufRead {
    /// The next `max` or fewer bytes as a chunk of their own, consumed as `consume` would
    /// (counted and digested); `None` when they cannot be lent (the position is inside a
    /// buffer, or the next buffer is bigger than `max`): read them instead.
    fn lend(&mut self, max: usize) -> io::Result<Option<LentChunk>>;
}

impl Read for ChunkReceiver {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// `Read` for a reader whose `BufRead` side is the primary one.
fn read_buffered(r: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let avail = r.fill_buf()?;
    let n = buf.len().min(avail.len());
    buf[..n].copy_from_slice(&avail[..n]);
    r.consume(n);
    Ok(n)
}

/// A chunk stream: the producer's sender and buffer return, and the consumer's receiver.
fn chunk_channel(in_flight: usize) -> (ChunkSender, ChunkReceiver) {
    let (tx, rx) = mpsc::sync_channel(in_flight);
    let (back, back_rx) = mpsc::sync_channel(in_flight + 2);
    (
        ChunkSender { tx, back: back_rx },
        ChunkReceiver {
            rx,
            back,
            cur: Vec::new(),
            len: 0,
            pos: 0,
            done: false,
            failed: None,
        },
    )
}

struct ChunkSender {
    tx: SyncSender<io::Result<Chunk>>,
    back: Receiver<Vec<u8>>,
}

/// How a [`ChunkSender::pump`] ended.
enum PumpEnd {
    /// The source is exhausted.
    Eof,
    /// The receiver was dropped (the consumer stopped early).
    Gone,
    /// The source failed; the error went to the receiver, its message comes back here.
    Failed(String),
}

impl ChunkSender {
    /// Moves everything from `src` into chunks of `size` bytes. `on_error` may replace a read
    /// error by a better one before it is sent (and sees the source to find it).
    fn pump<S: Read>(
        &self,
        src: &mut S,
        size: usize,
        on_error: impl Fn(&mut S, io::Error) -> io::Error,
    ) -> PumpEnd {
        loop {
            let mut buf = self.back.try_recv().unwrap_or_else(|_| vec![0u8; size]);
            let mut len = 0;
            let mut eof = false;
            while len < buf.len() {
                match src.read(&mut buf[len..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if len > 0 && self.tx.send(Ok((buf, len))).is_err() {
                            return PumpEnd::Gone;
                        }
                        let e = on_error(src, e);
                        let msg = e.to_string();
                        let _ = self.tx.send(Err(e));
                        return PumpEnd::Failed(msg);
                    }
                }
            }
            if len > 0 && self.tx.send(Ok((buf, len))).is_err() {
                return PumpEnd::Gone;
            }
            if eof {
                return PumpEnd::Eof;
            }
        }
    }
}

enum Source<R: Read> {
    Inline(Box<BufReader<Decoder<BufReader<RawPayload<R>>>>>),
    Threaded {
        output: ChunkReceiver,
        compressor: Compressor,
        decoder: thread::JoinHandle<()>,
        reader: thread::JoinHandle<Result<PayloadReport>>,
    },
}

/// The decompressed payload; counts bytes for the PAYLOADSIZE check and digests them for
/// PAYLOADDIGESTALT.
pub struct PayloadReader<R: Read> {
    source: Source<R>,
    uncompressed: u64,
    expected_uncompressed: Option<u64>,
    /// PAYLOADDIGESTALT's hasher and the digest it must reach.
    alt_digest: Option<(DigestStream, Vec<u8>)>,
    /// A digest of the bytes consumed since [`PayloadReader::start_span_digest`].
    span: Option<DigestStream>,
}

/// Outcome of reading a whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSummary {
    pub compressor: Compressor,
    pub uncompressed_bytes: u64,
    pub checked_uncompressed_size: bool,
    /// PAYLOADDIGESTALT (the uncompressed payload's digest) was present and matched.
    pub checked_uncompressed_digest: bool,
    pub raw: PayloadReport,
}

/// Chunk size between the threads of a streamed package (raw reader → decoder → consumer →
/// hashing), and chunks in flight per hop: each hop holds at most a few MiB, whatever the
/// package. Public so that consumers of the stream hand work on in the same pieces.
pub const CHUNK: usize = 1024 * 1024;
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// Decompressed bytes [`PayloadReader::finish`] reads past where its consumer stopped: room for
/// the trailer's padding and any block padding a cpio writer adds, nothing like a file's worth.
pub const TRAILING_LIMIT: u64 = 64 * 1024;

impl<R: Read> PayloadReader<R> {
    /// Reading, digesting and decompressing on the calling thread.
    pub fn new(
        compressor: Compressor,
        raw: RawPayload<R>,
        expected_uncompressed: Option<u64>,
    ) -> Result<PayloadReader<R>> {
        let decoder = Decoder::new(compressor, BufReader::with_capacity(CHUNK, raw))?;
        Ok(PayloadReader {
            source: Source::Inline(Box::new(BufReader::with_capacity(CHUNK, decoder))),
            uncompressed: 0,
            expected_uncompressed,
            alt_digest: None,
            span: None,
        })
    }

    /// Also checks the decompressed bytes against PAYLOADDIGESTALT (hex, with
    /// PAYLOADDIGESTALGO). rpm writes it beside PAYLOADDIGEST; a payload whose compressed
    /// bytes match but whose content does not can only come from a decoder disagreement, and
    /// that is the content that gets signed.
    pub fn with_uncompressed_digest(mut self, algo: u32, hex_digest: &str) -> Result<Self> {
        let want = hex::decode(hex_digest.trim()).map_err(|_| Error::BadHeader {
            what: "main header",
            msg: format!("PAYLOADDIGESTALT {hex_digest:?} is not hex"),
        })?;
        self.alt_digest = Some((DigestStream::new(algo)?, want));
        Ok(self)
    }

    /// Starts a digest in rpm's algorithm `algo` of the decompressed bytes consumed from now
    /// on, until [`PayloadReader::take_span_digest`]: a file's content as the cpio reader hands
    /// it out, digested in the same pass as PAYLOADDIGESTALT. Replaces a span not taken.
    pub fn start_span_digest(&mut self, algo: u32) -> Result<()> {
        self.span = Some(DigestStream::new(algo)?);
        Ok(())
    }

    /// The digest of the span started last; `None` when none was started.
    pub fn take_span_digest(&mut self) -> Option<Vec<u8>> {
        self.span.take().map(DigestStream::finalize)
    }

    /// Decompressed bytes so far.
    pub fn position(&self) -> u64 {
        self.uncompressed
    }

    pub fn compressor(&self) -> Compressor {
        match &self.source {
            Source::Inline(d) => d.get_ref().compressor(),
            Source::Threaded { compressor, .. } => *compressor,
        }
    }

    /// Checks the rest of the payload: every raw-payload digest over all the compressed bytes,
    /// and PAYLOADSIZE. Only [`TRAILING_LIMIT`] more decompressed bytes are read: callers
    /// finish at the cpio trailer, where rpm stops, and decompressing whatever a package puts
    /// after it would cost unbounded time (a few KiB of bzip2 expand to gigabytes of zeros).
    /// A payload that goes on for longer is refused ([`Error::TrailingPayload`]) once the
    /// compressed bytes' digests have been checked, so corruption is still named as such.
    pub fn finish(mut self) -> Result<PayloadSummary> {
        let drained = io::copy(&mut (&mut self).take(TRAILING_LIMIT + 1), &mut io::sink())
            .map_err(|e| Error::from_io("payload", e))?;
        if drained > TRAILING_LIMIT {
            let at = self.uncompressed - drained;
            self.raw_report()?;
            return Err(Error::TrailingPayload {
                at,
                limit: TRAILING_LIMIT,
            });
        }
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
        let uncompressed = self.uncompressed;
        let alt = self.alt_digest.take();
        // The compressed bytes' digests first: when they fail, that is the cause to name.
        let raw = self.raw_report()?;
        let mut checked_digest = false;
        if let Some((h, want)) = alt {
            let got = h.finalize().to_vec();
            if got != want {
                return Err(Error::DigestMismatch {
                    what: "uncompressed payload (PAYLOADDIGESTALT)",
                    expected: hex::encode(want),
                    actual: hex::encode(got),
                });
            }
            checked_digest = true;
        }
        Ok(PayloadSummary {
            compressor,
            uncompressed_bytes: uncompressed,
            checked_uncompressed_size: checked,
            checked_uncompressed_digest: checked_digest,
            raw,
        })
    }

    /// Reads the raw stream to its end without decompressing it (the decoder thread, if any,
    /// is stopped) and checks its digests and size.
    fn raw_report(self) -> Result<PayloadReport> {
        Ok(match self.source {
            Source::Inline(d) => d.into_inner().into_inner().into_inner().finish()?,
            Source::Threaded {
                output,
                decoder,
                reader,
                ..
            } => {
                // Dropping the receiver lets the decoder thread end, which closes the raw
                // channel, so neither thread can block.
                drop(output);
                decoder.join().map_err(|_| Error::Io {
                    what: "payload",
                    source: io::Error::other("payload decompression thread panicked"),
                })?;
                reader.join().map_err(|_| Error::Io {
                    what: "payload",
                    source: io::Error::other("payload reader thread panicked"),
                })??
            }
        })
    }
}

impl<R: Read + Send + 'static> PayloadReader<R> {
    /// Three stages on three threads: reading and digesting the raw payload, decompressing it,
    /// and the caller's use of the output. Decompression, the slowest stage, then does nothing
    /// else: on two cores a package is read in about the time decompression alone takes.
    pub fn threaded(
        compressor: Compressor,
        mut raw: RawPayload<R>,
        expected_uncompressed: Option<u64>,
    ) -> Result<PayloadReader<R>> {
        let spawn_err = |e| Error::Io {
            what: "payload reader thread",
            source: e,
        };
        let (raw_tx, raw_rx) = chunk_channel(CHUNKS_IN_FLIGHT);
        let reader = thread::Builder::new()
            .name("rpm-payload-read".into())
            .spawn(move || {
                match raw_tx.pump(&mut raw, CHUNK, |_, e| e) {
                    // Consumer gone (finish or drop): `finish` digests the rest.
                    PumpEnd::Eof | PumpEnd::Gone => {}
                    PumpEnd::Failed(msg) => {
                        return Err(Error::Io {
                            what: "payload",
                            source: io::Error::other(msg),
                        })
                    }
                }
                drop(raw_tx);
                raw.finish()
            })
            .map_err(spawn_err)?;
        let (out_tx, output) = chunk_channel(CHUNKS_IN_FLIGHT);
        let decoder = thread::Builder::new()
            .name("rpm-decompress".into())
            .spawn(move || {
                let mut decoder = match Decoder::new(compressor, raw_rx) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = out_tx.tx.send(Err(e.into_io()));
                        return;
                    }
                };
                // A corrupt compressed stream in a package whose digests do not match is
                // reported as the digest mismatch: that is the cause, and it names what was
                // checked.
                out_tx.pump(&mut decoder, CHUNK, |d, e| {
                    if is_decompress_error(&e) {
                        raw_verdict(d.get_mut()).unwrap_or(e)
                    } else {
                        e
                    }
                });
            })
            .map_err(spawn_err)?;
        Ok(PayloadReader {
            source: Source::Threaded {
                output,
                compressor,
                decoder,
                reader,
            },
            uncompressed: 0,
            expected_uncompressed,
            alt_digest: None,
            span: None,
        })
    }
}

fn is_decompress_error(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Error>())
        .is_some_and(|x| matches!(x, Error::Decompress { .. } | Error::DecoderMemory { .. }))
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

impl<R: Read> BufRead for PayloadReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let r = match &mut self.source {
            Source::Inline(d) => d.fill_buf().map(|b| b.len()),
            Source::Threaded { output, .. } => output.fill_buf().map(|b| b.len()),
        };
        match r {
            Ok(_) => {}
            Err(e) if is_decompress_error(&e) => {
                // As in the threaded decoder: the raw digests' verdict names the cause.
                let verdict = match &mut self.source {
                    Source::Inline(d) => raw_verdict(d.get_mut().get_mut()),
                    Source::Threaded { .. } => None,
                };
                return Err(verdict.unwrap_or(e));
            }
            Err(e) => return Err(e),
        }
        match &mut self.source {
            Source::Inline(d) => d.fill_buf(),
            Source::Threaded { output, .. } => output.fill_buf(),
        }
    }

    fn consume(&mut self, n: usize) {
        self.uncompressed += n as u64;
        if self.alt_digest.is_some() || self.span.is_some() {
            let pending = match &self.source {
                Source::Inline(d) => d.buffer(),
                Source::Threaded { output, .. } => output.buffered(),
            };
            digest_consumed(
                &mut self.alt_digest,
                &mut self.span,
                &pending[..n.min(pending.len())],
            );
        }
        match &mut self.source {
            Source::Inline(d) => d.consume(n),
            Source::Threaded { output, .. } => output.consume(n),
        }
    }
}

impl<R: Read> Read for PayloadReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

impl<R: Read> LendChunks for PayloadReader<R> {
    /// Lends only from the threaded reader, whose chunks are buffers of their own.
    fn lend(&mut self, max: usize) -> io::Result<Option<LentChunk>> {
        let Source::Threaded { output, .. } = &mut self.source else {
            return Ok(None);
        };
        let Some(chunk) = output.lend(max)? else {
            return Ok(None);
        };
        self.uncompressed += chunk.len() as u64;
        digest_consumed(&mut self.alt_digest, &mut self.span, &chunk);
        Ok(Some(chunk))
    }
}

/// Feeds consumed bytes to PAYLOADDIGESTALT's digest and the span's, together when both run.
fn digest_consumed(
    alt: &mut Option<(DigestStream, Vec<u8>)>,
    span: &mut Option<DigestStream>,
    bytes: &[u8],
) {
    match (alt, span) {
        (Some((alt, _)), Some(span)) => alt.update_both(span, bytes),
        (Some((alt, _)), None) => alt.update(bytes),
        (None, Some(span)) => span.update(bytes),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A threaded reader over `data` as an uncompressed payload (gzip passes other data
    /// through), checking its size and PAYLOADDIGESTALT.
    fn reader(data: &[u8]) -> PayloadReader<io::Cursor<Vec<u8>>> {
        let raw = RawPayload::new(
            io::Cursor::new(data.to_vec()),
            &[],
            &PayloadExpectations::default(),
        )
        .unwrap();
        let alt = hex::encode(sha2::Sha256::digest(data));
        PayloadReader::threaded(Compressor::Gzip, raw, Some(data.len() as u64))
            .unwrap()
            .with_uncompressed_digest(8, &alt)
            .unwrap()
    }

    fn read_rest_of_chunk(r: &mut impl BufRead, into: &mut Vec<u8>) -> usize {
        let b = r.fill_buf().unwrap();
        let n = b.len();
        into.extend_from_slice(b);
        r.consume(n);
        n
    }

    #[test]
    fn lent_chunks_and_reads_give_the_stream_its_digest_and_a_span_digest() {
        let data: Vec<u8> = (0..3_500_000u32)
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect();
        let mut r = reader(&data);
        let mut got = vec![0u8; 10];
        r.read_exact(&mut got).unwrap();
        // Inside a chunk: nothing to lend until the next one starts.
        assert!(r.lend(CHUNK).unwrap().is_none());
        r.start_span_digest(8).unwrap();
        let span_from = got.len();
        read_rest_of_chunk(&mut r, &mut got);
        // A chunk bigger than asked for is not lent either.
        assert!(r.lend(CHUNK - 1).unwrap().is_none());
        let lent = r.lend(CHUNK).unwrap().expect("a whole chunk");
        assert_eq!(lent.len(), CHUNK);
        got.extend_from_slice(&lent);
        drop(lent);
        let span = r.take_span_digest().unwrap();
        assert_eq!(span, DigestStream::of(8, &got[span_from..]).unwrap());
        assert_eq!(r.position(), got.len() as u64);
        loop {
            if let Some(c) = r.lend(CHUNK).unwrap() {
                got.extend_from_slice(&c);
            } else if read_rest_of_chunk(&mut r, &mut got) == 0 {
                break;
            }
        }
        assert_eq!(got, data);
        let summary = r.finish().unwrap();
        assert!(summary.checked_uncompressed_digest && summary.checked_uncompressed_size);
    }

    /// The bytes of a lent chunk are digested: the stream passes with the digest of its real
    /// bytes, and fails with the digest of a stream that differs only inside the lent chunk.
    #[test]
    fn a_lent_chunk_counts_for_the_uncompressed_digest() {
        let data = vec![7u8; 2 * CHUNK + 5];
        let mut other = data.clone();
        other[CHUNK + 3] = 8;
        for (digest_of, ok) in [(&data, true), (&other, false)] {
            let raw = RawPayload::new(
                io::Cursor::new(data.clone()),
                &[],
                &PayloadExpectations::default(),
            )
            .unwrap();
            let alt = hex::encode(sha2::Sha256::digest(digest_of));
            let mut r = PayloadReader::threaded(Compressor::Gzip, raw, None)
                .unwrap()
                .with_uncompressed_digest(8, &alt)
                .unwrap();
            let mut got = Vec::new();
            read_rest_of_chunk(&mut r, &mut got);
            let lent = r.lend(CHUNK).unwrap().expect("second chunk whole");
            assert_eq!(lent[3], 7);
            drop(lent);
            let verdict = r.finish();
            if ok {
                assert!(verdict.unwrap().checked_uncompressed_digest);
            } else {
                assert!(matches!(verdict, Err(Error::DigestMismatch { .. })));
            }
        }
    }

    #[test]
    fn the_inline_reader_lends_nothing() {
        let data = vec![1u8; 3 * CHUNK];
        let raw = RawPayload::new(
            io::Cursor::new(data.clone()),
            &[],
            &PayloadExpectations::default(),
        )
        .unwrap();
        let mut r = PayloadReader::new(Compressor::Gzip, raw, None).unwrap();
        assert!(r.lend(CHUNK).unwrap().is_none());
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
    }
}
