//! The fs-verity digest of every file of a package, computed from its payload in one streaming
//! pass: shared by `sign` and `verify`.
//!
//! The package's reader thread parses and decompresses; file contents go to a shared pool of
//! hashing workers (small files whole, big files as a bounded stream of chunks), so that
//! decompression and hashing run on different cores and memory stays bounded whatever the
//! package holds.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{anyhow, bail, Context};
use fsverity::{DigestBuilder, FileDigest, HashAlgorithm, Params, Threads};
use rpm_format::{CpioReader, FileList, Package, PackageHeaders, PayloadSummary};

/// Files up to this size are read whole and hashed as one job; bigger ones are streamed.
const WHOLE_FILE_MAX: u64 = 1 << 20;
/// Chunk size of streamed files, and how many chunks may wait per stream.
const CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

type Reply = Sender<(usize, FileDigest)>;

enum Job {
    Whole {
        index: usize,
        data: Vec<u8>,
        reply: Reply,
    },
    Stream {
        index: usize,
        chunks: Receiver<Vec<u8>>,
        reply: Reply,
    },
}

/// Hashing workers shared by all packages processed at once.
pub struct HashPool {
    jobs: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl HashPool {
    pub fn new(threads: usize, alg: HashAlgorithm) -> anyhow::Result<Arc<HashPool>> {
        let threads = threads.max(1);
        let params = Params::new(alg, 4096, &[]).map_err(|e| anyhow!("{e}"))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let params = params;
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
                            let _ = reply.send((index, d));
                        }
                        Ok(Job::Stream {
                            index,
                            chunks,
                            reply,
                        }) => {
                            let mut b =
                                DigestBuilder::new(&params).with_threads(Threads::CurrentPool);
                            let mut complete = true;
                            for c in chunks.iter() {
                                if c.is_empty() {
                                    complete = false;
                                    break;
                                }
                                b.update(&c);
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
                .context("starting hashing threads")?;
            workers.push(h);
        }
        Ok(Arc::new(HashPool {
            jobs: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
        }))
    }

    fn sender(&self) -> anyhow::Result<SyncSender<Job>> {
        self.jobs
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| anyhow!("hashing pool stopped"))
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
    /// Bytes of file content hashed.
    pub bytes_hashed: u64,
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
) -> anyhow::Result<PackageDigests> {
    let file = File::open(path).context("cannot open")?;
    let meta = file.metadata().context("cannot stat")?;
    if meta.is_dir() {
        bail!("is a directory, not a package");
    }
    let package = Package::open(BufReader::with_capacity(256 << 10, file))?;
    let files = package.files()?;
    // Reading and checking the raw payload runs on its own thread (`md5 = false`: the legacy
    // MD5 is skipped when the stronger PAYLOADDIGEST exists).
    let (headers, payload) = package.into_payload_threaded(false)?;
    let params = Params::new(alg, 4096, &[]).map_err(|e| anyhow!("{e}"))?;
    let empty = fsverity::empty_file_digest(&params);

    let mut cpio = CpioReader::new(payload, &files);
    let jobs = pool.sender()?;
    let (reply_tx, reply_rx) = mpsc::channel::<(usize, FileDigest)>();
    let mut sent = 0usize;
    let mut bytes_hashed = 0u64;

    while let Some(entry) = cpio.next_entry()? {
        let f = files
            .get(entry.index)
            .ok_or_else(|| anyhow!("payload entry index {} out of range", entry.index))?;
        if !f.is_regular() || entry.size == 0 {
            continue;
        }
        bytes_hashed += entry.size;
        if entry.size <= WHOLE_FILE_MAX {
            let mut data = vec![0u8; entry.size as usize];
            cpio.read_exact(&mut data)
                .with_context(|| format!("reading {} from the payload", f.path_lossy()))?;
            jobs.send(Job::Whole {
                index: entry.index,
                data,
                reply: reply_tx.clone(),
            })
            .map_err(|_| anyhow!("hashing pool stopped"))?;
        } else {
            let (ctx, crx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
            jobs.send(Job::Stream {
                index: entry.index,
                chunks: crx,
                reply: reply_tx.clone(),
            })
            .map_err(|_| anyhow!("hashing pool stopped"))?;
            let mut left = entry.size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                if let Err(e) = cpio.read_exact(&mut buf) {
                    let _ = ctx.send(Vec::new());
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading {} from the payload", f.path_lossy())));
                }
                left -= n as u64;
                ctx.send(buf)
                    .map_err(|_| anyhow!("hashing worker stopped"))?;
            }
        }
        sent += 1;
    }
    drop(reply_tx);
    let integrity = cpio.into_inner().finish();

    let mut digests: Vec<Option<FileDigest>> = vec![None; files.len()];
    for _ in 0..sent {
        let (i, d) = reply_rx
            .recv()
            .map_err(|_| anyhow!("a hashing worker failed"))?;
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
    let digests = digests
        .into_iter()
        .map(|d| d.unwrap_or_else(|| empty.clone()))
        .collect();
    Ok(PackageDigests {
        headers,
        files,
        digests,
        bytes_hashed,
        integrity,
    })
}
