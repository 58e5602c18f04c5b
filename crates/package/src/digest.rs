//! The fs-verity digest of every file of a package, computed from its payload in one streaming
//! pass: shared by [`crate::sign`] and [`crate::verify`].
//!
//! The package's reader thread parses and decompresses; file contents go to a shared pool of
//! hashing workers (small files whole, big files as a bounded stream of chunks), so that
//! decompression and hashing run on different cores and memory stays bounded whatever the
//! package holds.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use fsverity::{DigestBuilder, FileDigest, HashAlgorithm, Params, Threads};
use rpm_format::payload::{CHUNK, CHUNKS_IN_FLIGHT};
use rpm_format::{
    tags, CpioReader, DigestStream, FileEntry, FileList, LentChunk, Package, PackageHeaders,
    PayloadReader, PayloadSummary,
};

use crate::error::DigestError;
use crate::select::ContentKind;

/// What a long package wants to tell a progress bar. Sizes are file content bytes, what
/// hashing costs; the payload's compression makes its own size a poor measure.
pub trait Progress: Sync {
    /// Streaming starts: the package holds `total` bytes of regular-file content.
    fn started(&self, _total: u64) {}
    /// `n` more bytes of file content were read from the payload.
    fn hashed(&self, _n: u64) {}
}

/// No progress wanted.
pub struct NoProgress;

impl Progress for NoProgress {}

/// What [`ContentKind::of`] needs of a file's start.
const KIND_BYTES: usize = 64;

/// Files up to one chunk are read whole and hashed as one job; bigger ones are streamed in
/// chunks of the payload stream's size, as many in flight per file as per payload hop.
const WHOLE_FILE_MAX: u64 = CHUNK as u64;

/// A worker's answer: the file's header index and its fs-verity digest.
type Answer = (usize, FileDigest);
type Reply = Sender<Answer>;

enum Job {
    Whole {
        index: usize,
        data: Vec<u8>,
        reply: Reply,
    },
    Stream {
        index: usize,
        chunks: Receiver<Piece>,
        reply: Reply,
    },
}

/// A piece of a streamed file's content: copied into a pool buffer, or a decompressed chunk
/// lent whole (most of a big file). An empty piece says the stream was cut.
enum Piece {
    Copied(Vec<u8>),
    Lent(LentChunk),
}

impl std::ops::Deref for Piece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Piece::Copied(v) => v,
            Piece::Lent(c) => c,
        }
    }
}

/// Hashing workers shared by all packages processed at once.
pub struct HashPool {
    jobs: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<thread::JoinHandle<()>>>,
    buffers: Arc<Buffers>,
}

/// Content buffers handed back by the workers once hashed. Without it every file and chunk
/// got fresh memory from the allocator (freed on another thread, trimmed, mapped again), and
/// the page faults showed in a big package's CPU time (docs/benchmarks.md, "Measured choices").
#[derive(Default)]
struct Buffers(Mutex<Vec<Vec<u8>>>);

/// Buffers kept for reuse: enough for every job in flight.
const BUFFERS_KEPT: usize = 16;
/// Content at least this large goes into a reused buffer; smaller is cheap to allocate.
const REUSE_MIN: usize = 64 << 10;

impl Buffers {
    /// An empty buffer with room for `n` bytes.
    fn take(&self, n: usize) -> Vec<u8> {
        if n >= REUSE_MIN {
            if let Some(b) = self.0.lock().ok().and_then(|mut v| v.pop()) {
                return b;
            }
            return Vec::with_capacity(CHUNK.max(n));
        }
        Vec::with_capacity(n)
    }

    fn give(&self, mut b: Vec<u8>) {
        if b.capacity() >= CHUNK {
            b.clear();
            if let Ok(mut v) = self.0.lock() {
                if v.len() < BUFFERS_KEPT {
                    v.push(b);
                }
            }
        }
    }
}

impl HashPool {
    pub fn new(threads: usize, alg: HashAlgorithm) -> Result<Arc<HashPool>, DigestError> {
        let threads = threads.max(1);
        let params = Params::for_rpm(alg);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let buffers = Arc::new(Buffers::default());
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let bufs = Arc::clone(&buffers);
            let h = thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(Job::Whole { index, data, reply }) => {
                            let d = fsverity::digest_bytes(&params, &data);
                            bufs.give(data);
                            let _ = reply.send((index, d));
                        }
                        Ok(Job::Stream {
                            index,
                            chunks,
                            reply,
                        }) => {
                            // One thread per file: hashing outruns decompression, and
                            // handing chunks to the rayon pool cost many involuntary context
                            // switches in rayon's spinning workers (docs/benchmarks.md,
                            // "Measured choices").
                            let mut b =
                                DigestBuilder::new(&params).with_threads(Threads::Sequential);
                            let mut complete = true;
                            for c in chunks.iter() {
                                if c.is_empty() {
                                    complete = false;
                                    break;
                                }
                                b.update(&c);
                                if let Piece::Copied(v) = c {
                                    bufs.give(v);
                                }
                            }
                            // An aborted stream (reader failed) gets no reply: the reader
                            // reports its own error.
                            if complete {
                                let _ = reply.send((index, b.finish()));
                            }
                        }
                        Err(_) => return,
                    }
                })
                .map_err(DigestError::StartThreads)?;
            workers.push(h);
        }
        Ok(Arc::new(HashPool {
            jobs: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            buffers,
        }))
    }

    fn sender(&self) -> Result<SyncSender<Job>, DigestError> {
        self.jobs
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(DigestError::PoolStopped)
    }

    /// Stops the workers once queued work is done.
    pub fn shutdown(&self) {
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
        if let Ok(mut w) = self.workers.lock() {
            for h in w.drain(..) {
                let _ = h.join();
            }
        }
    }
}

/// A package read front to back, with the fs-verity digest of every header file.
pub struct PackageDigests {
    pub headers: PackageHeaders,
    pub files: FileList,
    /// One digest per header file, header order (the order of tag 276).
    pub digests: Vec<FileDigest>,
    /// Header indexes of the files whose payload content does not match the header's file
    /// digest (FILEDIGESTS): rpm would refuse to install them (`cpio: Digest mismatch`), so a
    /// signature over them vouches for content nobody can install. Kept apart, like
    /// `integrity`, so that `verify` can name them; `sign` refuses the package.
    pub mismatched: Vec<usize>,
    /// Bytes of file content hashed.
    pub bytes_hashed: u64,
    /// What each header file's first bytes say it is (ELF, `#!` script), for
    /// `sign --executables`; a hardlink set's members share the carrier's.
    pub kinds: Vec<ContentKind>,
    /// The payload's own digests and sizes (PAYLOADDIGEST, SIZE, PAYLOADSIZE), checked at its
    /// end. Kept apart so that `verify` can still name the files a corrupt payload damaged;
    /// `sign` refuses the package.
    pub integrity: Result<PayloadSummary, rpm_format::Error>,
}

/// Reads the package at `path`, checks its own digests (header digests first, payload digests
/// as the payload streams by), and computes every file's fs-verity digest with `alg`, 4096-byte
/// blocks and no salt, as rpm does.
///
/// Per file kind, as rpmsign 4.18 (spec §4.2), and where rpmsign crashes, the sensible answer:
/// regular files get their content's digest; every member of a hardlink set the set's content
/// digest; directories, symlinks and `%ghost` files the empty-file digest.
pub fn digest_package(
    path: &Path,
    alg: HashAlgorithm,
    pool: &HashPool,
    progress: &dyn Progress,
) -> Result<PackageDigests, DigestError> {
    let file = File::open(path).map_err(DigestError::Open)?;
    let meta = file.metadata().map_err(DigestError::Stat)?;
    if meta.is_dir() {
        return Err(DigestError::IsDirectory);
    }
    let package = Package::open_unverified(BufReader::with_capacity(256 << 10, file))?;
    let file_algo = check_digests_present(&package)?;
    let files = package.files()?;
    progress.started(
        files
            .files()
            .iter()
            .filter(|f| f.is_regular())
            .map(|f| f.size)
            .sum(),
    );
    // Reading and checking the raw payload runs on its own thread (`md5 = false`: the legacy
    // MD5 is skipped when the stronger PAYLOADDIGEST exists).
    let (headers, payload) = package.into_payload_threaded(false)?;
    let params = Params::for_rpm(alg);
    let empty = fsverity::empty_file_digest(&params);

    let mut cpio = CpioReader::new(payload, &files);
    let (reply_tx, reply_rx) = mpsc::channel::<Answer>();
    let fed = feed_contents(&mut cpio, &files, file_algo, pool, progress, reply_tx)?;
    let integrity = cpio.into_inner().finish();
    let mut mismatched = fed.mismatched;
    let sent = fed.sent;
    let bytes_hashed = fed.bytes_hashed;
    let mut kinds = fed.kinds;
    for set in files.hardlink_sets() {
        let carrier = set.iter().map(|&i| kinds[i]).find(|k| k.is_executable());
        if let Some(k) = carrier {
            set.iter().for_each(|&i| kinds[i] = k);
        }
    }

    let digests = collect_digests(&files, sent, &reply_rx, &empty)?;
    mismatched.sort_unstable();
    Ok(PackageDigests {
        headers,
        files,
        digests,
        mismatched,
        bytes_hashed,
        kinds,
        integrity,
    })
}

/// What [`feed_contents`] handed to the hashing pool.
struct Fed {
    /// Jobs sent, each of which answers once.
    sent: usize,
    bytes_hashed: u64,
    /// Files whose content's digest is not the one the header lists.
    mismatched: Vec<usize>,
    /// Per header file, what its first bytes say it is.
    kinds: Vec<ContentKind>,
}

/// Reads every file's content from the payload and hands it to the hashing pool (small files
/// whole, big ones as a stream of chunks), each job answering on `reply_tx`. Each content is
/// checked against the header's file digest here, as it passes: the payload reader digests it
/// in the same pass as the whole payload (PAYLOADDIGESTALT), which costs about one SHA-256
/// stream for both where the workers would pay a second one.
fn feed_contents<R: Read>(
    cpio: &mut CpioReader<PayloadReader<R>, &FileList>,
    files: &FileList,
    file_algo: u32,
    pool: &HashPool,
    progress: &dyn Progress,
    reply_tx: Sender<Answer>,
) -> Result<Fed, DigestError> {
    let jobs = pool.sender()?;
    let mut sent = 0usize;
    let mut bytes_hashed = 0u64;
    let mut mismatched = Vec::new();
    let mut kinds = vec![ContentKind::Other; files.len()];
    let empty_content = DigestStream::of(file_algo, &[])?;

    while let Some(entry) = cpio.next_entry()? {
        let f = files
            .get(entry.index)
            .ok_or(DigestError::EntryOutOfRange(entry.index))?;
        if !f.is_regular() {
            continue;
        }
        let check = !f.digest.is_empty();
        if entry.size == 0 {
            // A hardlink member without the set's content is checked through the member
            // that carries it; the members of an empty set (and empty files) are empty.
            let carried_elsewhere = files.hardlink_set(entry.index).is_some() && f.size > 0;
            let empty = check.then(|| empty_content.clone());
            if !carried_elsewhere && !matches_header(f, empty) {
                mismatched.push(entry.index);
            }
            continue;
        }
        if check {
            cpio.start_span_digest(file_algo)?;
        }
        bytes_hashed += entry.size;
        progress.hashed(entry.size);
        let whole = if entry.size <= WHOLE_FILE_MAX {
            let mut data = pool.buffers.take(entry.size as usize);
            read_content(cpio, &mut data, entry.size as usize).map_err(|source| {
                DigestError::ReadContent {
                    path: f.path_lossy(),
                    source,
                }
            })?;
            kinds[entry.index] = ContentKind::of(&data);
            Some(Job::Whole {
                index: entry.index,
                data,
                reply: reply_tx.clone(),
            })
        } else {
            let (chunks_tx, chunks) = mpsc::sync_channel::<Piece>(CHUNKS_IN_FLIGHT);
            jobs.send(Job::Stream {
                index: entry.index,
                chunks,
                reply: reply_tx.clone(),
            })
            .map_err(|_| DigestError::PoolStopped)?;
            kinds[entry.index] = stream_content(cpio, f, entry.size, pool, &chunks_tx)?;
            None
        };
        if !matches_header(f, cpio.take_span_digest()) {
            mismatched.push(entry.index);
        }
        if let Some(job) = whole {
            jobs.send(job).map_err(|_| DigestError::PoolStopped)?;
        }
        sent += 1;
    }
    Ok(Fed {
        sent,
        bytes_hashed,
        mismatched,
        kinds,
    })
}

/// Checks the header digests and that there are digests to check at all; returns the file
/// digest algorithm. A package without digests passes `rpm -K` as NOTFOUND: nothing it holds
/// can be told apart from damage, so no signature may vouch for it.
fn check_digests_present<R: std::io::Read>(package: &Package<R>) -> Result<u32, DigestError> {
    let checked = package.verify_header_digests()?;
    if !checked.sha256 && !checked.sha1 {
        return Err(DigestError::NoHeaderDigest);
    }
    if !package.main.contains(tags::PAYLOADDIGEST)
        && !package.signature.header().contains(tags::SIG_MD5)
    {
        return Err(DigestError::NoPayloadDigest);
    }
    let file_algo = package.main.get_u32(tags::FILEDIGESTALGO)?.unwrap_or(1);
    if DigestStream::new(file_algo).is_err() {
        return Err(DigestError::UnknownFileDigestAlgorithm(file_algo));
    }
    Ok(file_algo)
}

/// Feeds `size` bytes of the current entry to a streaming hash worker in pieces: whole
/// decompressed chunks lent without a copy where the content covers them, copies of the parts
/// that share a chunk with something else. On a read error the worker is told the stream was
/// cut (an empty piece), so it sends no digest. Returns what the content's first bytes say it
/// is. `file` names the entry in errors.
fn stream_content<R: Read>(
    cpio: &mut CpioReader<PayloadReader<R>, &FileList>,
    file: &FileEntry,
    size: u64,
    pool: &HashPool,
    chunks: &SyncSender<Piece>,
) -> Result<ContentKind, DigestError> {
    let send = |p: Piece| {
        chunks.send(p).map_err(|_| DigestError::WorkerStopped {
            path: file.path_lossy(),
        })
    };
    let cut = |source| {
        let _ = chunks.send(Piece::Copied(Vec::new()));
        DigestError::ReadContent {
            path: file.path_lossy(),
            source,
        }
    };
    // The first bytes are read whole, however the chunks fall, to tell what the file is.
    let head = size.min(KIND_BYTES as u64) as usize;
    let mut first = pool.buffers.take(head);
    read_content(cpio, &mut first, head).map_err(cut)?;
    let kind = ContentKind::of(&first);
    send(Piece::Copied(first))?;
    let mut left = size - head as u64;
    while left > 0 {
        let piece = next_piece(cpio, pool, left).map_err(cut)?;
        left -= piece.len() as u64;
        send(piece)?;
    }
    Ok(kind)
}

/// At most `left` (and one chunk) more bytes of the current entry: the next decompressed chunk
/// lent whole when the content covers it, else a copy of the rest of the current chunk, so
/// that the piece after it starts a chunk.
fn next_piece<R: Read>(
    cpio: &mut CpioReader<PayloadReader<R>, &FileList>,
    pool: &HashPool,
    left: u64,
) -> std::io::Result<Piece> {
    let max = left.min(CHUNK as u64) as usize;
    if let Some(lent) = cpio.lend_content(max)? {
        return Ok(Piece::Lent(lent));
    }
    let mut buf = pool.buffers.take(max);
    if cpio.append_content(&mut buf, max)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file data ends early",
        ));
    }
    Ok(Piece::Copied(buf))
}

/// Whether a file's content digest is the one its header lists (no digest to compare: yes).
fn matches_header(f: &FileEntry, content: Option<Vec<u8>>) -> bool {
    content.is_none_or(|c| f.digest.trim().eq_ignore_ascii_case(&hex::encode(c)))
}

/// One digest per header file, header order: the `sent` replies of the workers, a hardlink
/// set's content digest for all its members, and the empty file's digest for the rest
/// (directories, symlinks, ghosts, empty files).
fn collect_digests(
    files: &FileList,
    sent: usize,
    replies: &Receiver<Answer>,
    empty: &FileDigest,
) -> Result<Vec<FileDigest>, DigestError> {
    let mut digests: Vec<Option<FileDigest>> = vec![None; files.len()];
    for _ in 0..sent {
        let (i, d) = replies.recv().map_err(|_| DigestError::WorkerFailed)?;
        digests[i] = Some(d);
    }
    // Hardlink sets: the member that carried the content gives its digest to all members.
    for set in files.hardlink_sets() {
        let carrier = set.iter().find_map(|&i| digests[i].clone());
        for &i in set {
            if digests[i].is_none() {
                digests[i] = carrier.clone();
            }
        }
    }
    Ok(digests
        .into_iter()
        .map(|d| d.unwrap_or_else(|| empty.clone()))
        .collect())
}

/// Appends exactly `n` bytes of the current entry's content to `out`.
fn read_content<R: BufRead>(
    cpio: &mut CpioReader<R, &FileList>,
    out: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<()> {
    let end = out.len() + n;
    while out.len() < end {
        if cpio.append_content(out, end - out.len())? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file data ends early",
            ));
        }
    }
    Ok(())
}
