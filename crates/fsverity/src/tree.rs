//! Streaming Merkle-tree construction: the fs-verity digest of data fed in pieces.
//!
//! Data blocks are hashed in batches (multi-buffer, see [`crate::hash`]) and, for big inputs, in
//! parallel on a rayon pool; the resulting hashes are folded into the tree levels strictly in
//! order, so the result never depends on the thread count or on how the input was split.
//!
//! Memory: without tree output, one block buffer per level plus one input batch (at most
//! [`PARALLEL_CHUNK`] bytes, far less when sequential or for small files). With tree output the
//! tree itself must be kept until the end, because the kernel order puts the root-most level
//! first and the root is only known at the end: each level is kept in memory up to
//! [`SPOOL_MEMORY_LIMIT`] bytes and spilled to an anonymous temporary file beyond that (only the
//! leaf level of a file larger than about 4 GiB reaches it with 4 KiB blocks and SHA-256).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::descriptor::Descriptor;
use crate::hash::{Backend, BlockHasher};
use crate::{Error, FileDigest, Params};

/// Input gathered before it is hashed in parallel; two of these are in flight when reading
/// a file (one hashed while the next is read).
pub const PARALLEL_CHUNK: usize = 4 << 20;

/// Tree bytes per level kept in memory before spilling to a temporary file.
pub const SPOOL_MEMORY_LIMIT: usize = 32 << 20;

/// Largest batch hashed at once without parallelism; a multiple of the multi-buffer width
/// while keeping the copy buffer for small writes modest.
const SEQUENTIAL_BATCH: usize = 1 << 20;

/// Files at least this large are mapped instead of read (see [`DigestBuilder::read_file`]);
/// below it the mapping costs more than the copy it saves.
const MAP_MIN_SIZE: usize = 4 << 20;

/// Mapped bytes hashed per round before their hashes are folded into the tree: bounds the
/// hash buffer and the resident mapped pages (see `MappedFile::release` in `sys::mapping`), so
/// peak memory does not grow with the file, while keeping rounds long enough that waiting for
/// the slowest task of a round costs little (figures in docs/benchmarks.md, "Measured choices").
const MAP_WINDOW: usize = 16 << 20;

/// Blocks handed to one parallel task: enough to keep the multi-buffer lanes full and the
/// per-task overhead negligible.
const TASK_BYTES: usize = 256 << 10;

/// Where the hashing of big inputs runs.
#[derive(Clone, Default)]
pub enum Threads {
    /// The calling thread only; no rayon involved at all.
    Sequential,
    /// The rayon pool the caller runs in (the global pool outside any pool). Small inputs
    /// never leave the calling thread, so many builders can run concurrently at little cost.
    #[default]
    CurrentPool,
    /// A dedicated pool.
    Pool(Arc<rayon::ThreadPool>),
}

impl Threads {
    /// `--jobs N`: 0 = the global pool (all cores), 1 = sequential, N = a pool of N threads.
    pub fn from_jobs(jobs: usize) -> Result<Threads, Error> {
        match jobs {
            0 => Ok(Threads::CurrentPool),
            1 => Ok(Threads::Sequential),
            n => rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("fsverity-{i}"))
                .build()
                .map(|p| Threads::Pool(Arc::new(p)))
                .map_err(|e| Error::ThreadPool(n, e.to_string())),
        }
    }

    fn is_parallel(&self) -> bool {
        match self {
            Threads::Sequential => false,
            Threads::CurrentPool => rayon::current_num_threads() > 1,
            Threads::Pool(p) => p.current_num_threads() > 1,
        }
    }
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threads::Sequential => f.write_str("Sequential"),
            Threads::CurrentPool => f.write_str("CurrentPool"),
            Threads::Pool(p) => write!(f, "Pool({} threads)", p.current_num_threads()),
        }
    }
}

/// One tree level being filled: the hashes of the level below not yet packed into a full block.
#[derive(Default)]
struct Level {
    buf: Vec<u8>,
    /// Hashes received so far; a level that received exactly one, with nothing above it, holds
    /// the root hash.
    count: u64,
}

/// Bytes of one tree level: memory first, an anonymous temporary file past the limit.
#[derive(Default)]
struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spool {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        self.mem.extend_from_slice(data);
        if self.mem.len() >= SPOOL_MEMORY_LIMIT {
            let file = match &mut self.file {
                Some(f) => f,
                None => self.file.insert(tempfile::tempfile()?),
            };
            file.write_all(&self.mem)?;
            self.mem.clear();
        }
        Ok(())
    }

    fn write_zeros(&mut self, mut n: usize) -> io::Result<()> {
        static ZEROS: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(ZEROS.len());
            self.write(&ZEROS[..k])?;
            n -= k;
        }
        Ok(())
    }

    fn copy_to(&mut self, w: &mut dyn Write) -> io::Result<()> {
        if let Some(f) = &mut self.file {
            f.rewind()?;
            io::copy(f, w)?;
        }
        w.write_all(&self.mem)
    }
}

/// A finished Merkle tree in kernel order (root-most level first, leaf level last), as
/// `FS_IOC_READ_VERITY_METADATA` and `fsverity digest --out-merkle-tree` give it. The root hash
/// is not part of it; a file of at most one block has an empty tree.
pub struct MerkleTree {
    /// Root-most level first.
    levels: Vec<Spool>,
}

impl MerkleTree {
    pub fn len(&self) -> u64 {
        self.levels.iter().map(|l| l.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of stored levels (0 for files of at most one block).
    pub fn level_count(&self) -> usize {
        self.levels.len()
    }

    pub fn write_to<W: Write>(mut self, mut w: W) -> io::Result<()> {
        for level in &mut self.levels {
            level.copy_to(&mut w)?;
        }
        w.flush()
    }

    /// The whole tree in memory; for callers that know it is small.
    pub fn to_vec(self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(
            usize::try_from(self.len())
                .unwrap_or(0)
                .min(SPOOL_MEMORY_LIMIT),
        );
        self.write_to(&mut v)?;
        Ok(v)
    }
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MerkleTree({} bytes in {} levels)",
            self.len(),
            self.levels.len()
        )
    }
}

/// Bytes of the Merkle tree fs-verity stores for a file of `data_size` bytes: as many levels
/// as it takes to come down to one block, each level's hashes rounded up to whole blocks; 0 for
/// a file of at most one block (its root hash is the hash of that block). The same number
/// [`MerkleTree::len`] gives once a tree is built, known without reading the file.
pub fn tree_size(params: &Params, data_size: u64) -> u64 {
    let block = u64::from(params.block_size());
    let per_block = params.hashes_per_block() as u64;
    let mut blocks = data_size.div_ceil(block);
    let mut total = 0;
    while blocks > 1 {
        blocks = blocks.div_ceil(per_block);
        total += blocks * block;
    }
    total
}

/// Everything a finished computation yields.
#[derive(Debug)]
pub struct Finished {
    pub digest: FileDigest,
    pub descriptor: Descriptor,
    /// Present when [`DigestBuilder::with_tree_output`] was asked for.
    pub tree: Option<MerkleTree>,
}

/// Computes an fs-verity digest from data fed in any number of pieces of any sizes.
///
/// `Send`, so it can be moved between threads; creating one allocates nothing until data
/// arrives, and a small file costs one small buffer and one block buffer.
pub struct DigestBuilder {
    params: Params,
    block_size: usize,
    hasher: BlockHasher,
    threads: Threads,
    /// Input not yet hashed: less than one batch.
    pending: Vec<u8>,
    data_size: u64,
    /// Index 0 collects the hashes of data blocks.
    levels: Vec<Level>,
    /// Reused output buffer for batches of data-block hashes.
    scratch: Vec<u8>,
    /// Tree blocks per level (index 0 = leaf level) when tree output is wanted.
    tree: Option<Vec<Spool>>,
    tree_error: Option<io::Error>,
}

impl DigestBuilder {
    pub fn new(params: &Params) -> Self {
        DigestBuilder {
            params: *params,
            block_size: params.block_size() as usize,
            hasher: BlockHasher::new(params, Backend::Auto),
            threads: Threads::default(),
            pending: Vec::new(),
            data_size: 0,
            levels: Vec::new(),
            scratch: Vec::new(),
            tree: None,
            tree_error: None,
        }
    }

    pub fn with_threads(mut self, threads: Threads) -> Self {
        self.threads = threads;
        self
    }

    /// Chooses the SHA-256 implementation for data blocks (results are identical; this exists
    /// for tests and benchmarks).
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.hasher = BlockHasher::new(&self.params, backend);
        self
    }

    /// Keeps the Merkle tree so that [`DigestBuilder::finish_all`] can return it.
    pub fn with_tree_output(mut self) -> Self {
        if self.tree.is_none() {
            self.tree = Some(Vec::new());
        }
        self
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Bytes fed so far.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Smallest input hashed straight from the caller's buffer, and the size pending input is
    /// gathered to before hashing: a multiple of the block size.
    fn batch_size(&self) -> usize {
        let bs = self.block_size;
        let want = if self.threads.is_parallel() {
            PARALLEL_CHUNK
        } else {
            SEQUENTIAL_BATCH.min(32 * bs)
        };
        (want / bs).max(1) * bs
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.data_size += data.len() as u64;
        let batch = self.batch_size();
        let bs = self.block_size;
        if !self.pending.is_empty() {
            let take = batch.saturating_sub(self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < batch {
                return;
            }
            let mut p = std::mem::take(&mut self.pending);
            let whole = p.len() / bs * bs;
            self.hash_data_blocks(&p[..whole]);
            p.drain(..whole);
            self.pending = p;
        }
        // Big pieces are hashed where they lie: gathering them into `pending` first would copy
        // every byte of a stream fed in 1 MiB chunks once more for nothing.
        if data.len() >= batch.min(SEQUENTIAL_BATCH) {
            let whole = data.len() / bs * bs;
            self.hash_data_blocks(&data[..whole]);
            data = &data[whole..];
        }
        self.pending.extend_from_slice(data);
    }

    /// Hashes whole data blocks (in parallel when worth it) and folds their hashes into level 0.
    fn hash_data_blocks(&mut self, blocks: &[u8]) {
        let bs = self.block_size;
        let d = self.params.digest_size();
        let n = blocks.len() / bs;
        if n == 0 {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(n * d, 0);
        hash_blocks_with(&self.threads, &self.hasher, bs, blocks, &mut scratch);
        for h in scratch.chunks_exact(d) {
            self.push_hash(0, h);
        }
        self.scratch = scratch;
    }

    /// Adds one hash to `level`, hashing and propagating every block that becomes full.
    fn push_hash(&mut self, level: usize, hash: &[u8]) {
        let bs = self.block_size;
        let d = hash.len();
        let mut cur = [0u8; 64];
        cur[..d].copy_from_slice(hash);
        let mut lvl = level;
        loop {
            if self.levels.len() <= lvl {
                self.levels.push(Level::default());
            }
            let l = &mut self.levels[lvl];
            if l.buf.capacity() == 0 {
                l.buf.reserve_exact(bs);
            }
            l.buf.extend_from_slice(&cur[..d]);
            l.count += 1;
            if l.buf.len() < bs {
                return;
            }
            self.hasher.hash_block(&l.buf, &mut cur[..d]);
            if let Some(tree) = &mut self.tree {
                if tree.len() <= lvl {
                    tree.resize_with(lvl + 1, Spool::default);
                }
                if let Err(e) = tree[lvl].write(&l.buf) {
                    self.tree_error.get_or_insert(e);
                }
            }
            l.buf.clear();
            lvl += 1;
        }
    }

    /// Reads `reader` to its end, feeding everything in. Reads in large batches straight into
    /// the hashing buffer, and with parallel threads hashes one batch while reading the next.
    /// `progress` is called with the byte count of each batch. Returns the bytes read.
    pub fn read_from<R: Read>(&mut self, reader: R, progress: impl FnMut(u64)) -> io::Result<u64> {
        self.read_from_sized(reader, None, progress)
    }

    /// Like [`DigestBuilder::read_from`]; `size_hint` (the expected length, e.g. from file
    /// metadata) keeps the buffer small for small inputs. A wrong hint costs only speed.
    pub fn read_from_sized<R: Read>(
        &mut self,
        mut reader: R,
        size_hint: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> io::Result<u64> {
        let start = self.data_size;
        let batch = self.batch_size().max(SEQUENTIAL_BATCH);
        let first = match size_hint {
            // One more than expected so that end of file is seen without another buffer.
            Some(h) => usize::try_from(h.saturating_add(1))
                .unwrap_or(usize::MAX)
                .min(batch),
            None => batch.min(64 << 10),
        };
        let a = vec![0u8; first.max(1)];
        if !self.threads.is_parallel() || !self.pending.is_empty() {
            self.read_sequential(&mut reader, a, batch, &mut progress)?;
            return Ok(self.data_size - start);
        }
        let mut a = a;

        // Parallel: hash batch `a` on the pool while this thread reads batch `b`.
        let bs = self.block_size;
        let d = self.params.digest_size();
        let mut b: Vec<u8> = Vec::new();
        let mut n = fill(&mut reader, &mut a)?;
        while n > 0 {
            let eof = n < a.len();
            let whole = n / bs * bs;
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.resize(whole / bs * d, 0);
            let mut next = Ok(0);
            if eof {
                hash_blocks_with(&self.threads, &self.hasher, bs, &a[..whole], &mut scratch);
            } else {
                // Grow towards full batches once the input proves to be large.
                let next_len = if a.len() < batch {
                    (a.len() * 2).min(batch)
                } else {
                    a.len()
                };
                b.resize(next_len, 0);
                let (threads, hasher) = (&self.threads, &self.hasher);
                let (cur, out, rd, buf) = (&a[..whole], &mut scratch, &mut reader, &mut b);
                in_place_scope(threads, |s| {
                    s.spawn(|_| hash_blocks_with(threads, hasher, bs, cur, out));
                    next = fill(rd, buf);
                });
            }
            for h in scratch.chunks_exact(d) {
                self.push_hash(0, h);
            }
            self.scratch = scratch;
            self.data_size += whole as u64;
            if whole < n {
                self.update(&a[whole..n]);
            }
            progress(n as u64);
            if eof {
                break;
            }
            n = next?;
            std::mem::swap(&mut a, &mut b);
            if !self.pending.is_empty() {
                // A batch ended inside a block (the size hint was below the real size): the
                // rest must go through the pending buffer to stay in order.
                self.update(&a[..n]);
                progress(n as u64);
                if n == a.len() {
                    self.read_sequential(&mut reader, a, batch, &mut progress)?;
                }
                break;
            }
        }
        Ok(self.data_size - start)
    }

    /// Reads to the end in buffers growing from `a`'s size to `batch`, feeding them in order.
    fn read_sequential<R: Read>(
        &mut self,
        reader: &mut R,
        mut a: Vec<u8>,
        batch: usize,
        progress: &mut impl FnMut(u64),
    ) -> io::Result<()> {
        loop {
            let n = fill(reader, &mut a)?;
            if n == 0 {
                return Ok(());
            }
            self.update(&a[..n]);
            progress(n as u64);
            if n < a.len() {
                return Ok(());
            }
            if a.len() < batch {
                a.resize((a.len() * 2).min(batch), 0);
            }
        }
    }

    /// Feeds the whole of `file`, a regular file of `size` bytes when opened (what
    /// [`open_regular_file`] returns), then anything appended since.
    ///
    /// Large files are mapped and their blocks hashed straight from the page cache by all
    /// threads, which saves the copy a `read()` makes (see `MappedFile` in `sys::mapping` for
    /// the one hazard that brings); small files, files that cannot be mapped and builders already
    /// holding data go through [`DigestBuilder::read_from_sized`].
    pub fn read_file(
        &mut self,
        file: &File,
        size: u64,
        mut progress: impl FnMut(u64),
    ) -> io::Result<u64> {
        let start = self.data_size;
        let mapped = match usize::try_from(size) {
            Ok(len) if len >= MAP_MIN_SIZE && self.data_size == 0 => {
                crate::sys::mapping::MappedFile::map(file, len).ok()
            }
            _ => None,
        };
        let mut offset = 0u64;
        if let Some(map) = mapped {
            let bs = self.block_size;
            let d = self.params.digest_size();
            let data = map.bytes();
            let window = (MAP_WINDOW / bs).max(1) * bs;
            for part in data.chunks(window) {
                let whole = part.len() / bs * bs;
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.resize(whole / bs * d, 0);
                let r = hash_mapped_blocks(
                    &self.threads,
                    &self.hasher,
                    bs,
                    &part[..whole],
                    &mut scratch,
                    Some(&map),
                );
                if let Err(e) = r {
                    self.scratch = scratch;
                    return Err(mapped_read_error(file, size, e));
                }
                for h in scratch.chunks_exact(d) {
                    self.push_hash(0, h);
                }
                self.scratch = scratch;
                self.data_size += whole as u64;
                if whole < part.len() {
                    map.populate(&part[whole..])
                        .map_err(|e| mapped_read_error(file, size, e))?;
                    self.update(&part[whole..]);
                }
                map.release(part);
                progress(part.len() as u64);
            }
            // A file cut inside its last page reads as zeros there without any fault: only
            // its size tells. The digest of bytes the file no longer has is not an answer.
            if file.metadata()?.len() < size {
                return Err(shrank());
            }
            offset = size;
        }
        // Small or unmappable files, and whatever was appended after `size` was taken.
        let rest = PositionedReader { file, pos: offset };
        let hint = if offset == 0 { size } else { 0 };
        self.read_from_sized(rest, Some(hint), progress)?;
        Ok(self.data_size - start)
    }

    /// Hashes what is pending and the partial levels; returns the root hash and the number of
    /// stored tree levels below it.
    fn finish_root(&mut self) -> ([u8; 64], usize) {
        let bs = self.block_size;
        let d = self.params.digest_size();
        let mut root = [0u8; 64];
        let p = std::mem::take(&mut self.pending);
        let whole = p.len() / bs * bs;
        self.hash_data_blocks(&p[..whole]);
        let tail = &p[whole..];
        if !tail.is_empty() {
            let mut h = [0u8; 64];
            self.hasher.hash_padded(tail, bs - tail.len(), &mut h[..d]);
            self.push_hash(0, &h[..d]);
        }
        if self.data_size == 0 {
            return (root, 0);
        }
        let mut i = 0;
        loop {
            let above = self.levels.get(i + 1).map_or(0, |l| l.count);
            let l = &mut self.levels[i];
            if l.count == 1 && above == 0 {
                root[..d].copy_from_slice(&l.buf[..d]);
                return (root, i);
            }
            if !l.buf.is_empty() {
                let mut h = [0u8; 64];
                let fill = bs - l.buf.len();
                self.hasher.hash_padded(&l.buf, fill, &mut h[..d]);
                if let Some(tree) = &mut self.tree {
                    if tree.len() <= i {
                        tree.resize_with(i + 1, Spool::default);
                    }
                    if let Err(e) = tree[i]
                        .write(&l.buf)
                        .and_then(|_| tree[i].write_zeros(fill))
                    {
                        self.tree_error.get_or_insert(e);
                    }
                }
                l.buf.clear();
                self.push_hash(i + 1, &h[..d]);
            }
            i += 1;
        }
    }

    /// The file digest. A tree kept for [`DigestBuilder::with_tree_output`] is dropped.
    pub fn finish(mut self) -> FileDigest {
        self.tree = None;
        let (root, _) = self.finish_root();
        self.descriptor(&root).digest()
    }

    /// Digest, descriptor and (when asked for) the tree. Fails only if spilling the tree to a
    /// temporary file failed.
    pub fn finish_all(mut self) -> Result<Finished, Error> {
        let (root, levels) = self.finish_root();
        if let Some(e) = self.tree_error.take() {
            return Err(Error::Io(e));
        }
        let descriptor = self.descriptor(&root);
        let tree = self.tree.take().map(|mut spools| {
            spools.truncate(levels);
            spools.resize_with(levels, Spool::default);
            spools.reverse();
            MerkleTree { levels: spools }
        });
        Ok(Finished {
            digest: descriptor.digest(),
            descriptor,
            tree,
        })
    }

    fn descriptor(&self, root: &[u8; 64]) -> Descriptor {
        Descriptor::new(
            &self.params,
            self.data_size,
            &root[..self.params.digest_size()],
        )
        .expect("root hash has the digest size")
    }
}

impl Write for DigestBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for DigestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestBuilder")
            .field("params", &self.params)
            .field("threads", &self.threads)
            .field("data_size", &self.data_size)
            .finish_non_exhaustive()
    }
}

/// Runs `op` in the pool `threads` designates, letting it spawn jobs there while the calling
/// thread keeps going (reading the next batch).
fn in_place_scope<'s, R>(threads: &Threads, op: impl FnOnce(&rayon::Scope<'s>) -> R) -> R {
    match threads {
        Threads::Pool(p) => p.in_place_scope(op),
        _ => rayon::in_place_scope(op),
    }
}

/// Hashes whole blocks into `out`, splitting into parallel tasks when the input is large and
/// threads are allowed. The output order is the block order either way.
fn hash_blocks_with(
    threads: &Threads,
    hasher: &BlockHasher,
    bs: usize,
    blocks: &[u8],
    out: &mut [u8],
) {
    hash_mapped_blocks(threads, hasher, bs, blocks, out, None)
        .expect("hashing memory without a mapping cannot fail")
}

/// [`hash_blocks_with`] over (part of) a file mapping: each task first populates the pages it
/// is about to hash, in parallel, so a shrunk file or an I/O error is an error, not SIGBUS.
fn hash_mapped_blocks(
    threads: &Threads,
    hasher: &BlockHasher,
    bs: usize,
    blocks: &[u8],
    out: &mut [u8],
    map: Option<&crate::sys::mapping::MappedFile>,
) -> io::Result<()> {
    let d = hasher.digest_size();
    let n = blocks.len() / bs;
    let per_task = (TASK_BYTES / bs).max(32);
    let task = |b: &[u8], o: &mut [u8]| -> io::Result<()> {
        if let Some(m) = map {
            m.populate(b)?;
        }
        hasher.hash_blocks(b, bs, o);
        Ok(())
    };
    if n < 2 * per_task || !threads.is_parallel() {
        // Populate in task-sized steps even here, so the pages just faulted in are still in
        // the cache when hashed.
        return blocks
            .chunks(per_task * bs)
            .zip(out.chunks_mut(per_task * d))
            .try_for_each(|(b, o)| task(b, o));
    }
    let mut run = || {
        blocks
            .par_chunks(per_task * bs)
            .zip(out.par_chunks_mut(per_task * d))
            .try_for_each(|(b, o)| task(b, o))
    };
    match threads {
        Threads::Pool(p) => p.install(run),
        _ => run(),
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

/// A page of a mapped file could not be read: the file shrank, or the disk failed.
fn mapped_read_error(file: &File, size: u64, e: io::Error) -> io::Error {
    match file.metadata() {
        Ok(m) if m.len() < size => shrank(),
        _ if e.kind() == io::ErrorKind::Other => {
            io::Error::other("I/O error while reading the file")
        }
        _ => e,
    }
}

/// Reads `file` from `pos` with positioned reads, leaving the file's own offset alone.
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; a short count means end of input.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The digest of in-memory data.
pub fn digest_bytes(params: &Params, data: &[u8]) -> FileDigest {
    let mut b = DigestBuilder::new(params).with_threads(Threads::Sequential);
    b.update(data);
    b.finish()
}

/// The digest of everything `reader` yields, hashed on the current rayon pool when large.
pub fn digest_reader<R: Read>(params: &Params, reader: R) -> io::Result<FileDigest> {
    let mut b = DigestBuilder::new(params);
    b.read_from(reader, |_| {})?;
    Ok(b.finish())
}

/// Opens `path` for a digest: refuses what is not a regular file (a directory would otherwise
/// fail only at the first read, with a less clear error). Returns the file and its size.
pub fn open_regular_file(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta.len()))
}

/// The digest of a regular file, hashed on the current rayon pool when large.
pub fn digest_file(params: &Params, path: &Path) -> io::Result<FileDigest> {
    let (file, size) = open_regular_file(path)?;
    let mut b = DigestBuilder::new(params);
    b.read_file(&file, size, |_| {})?;
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashAlgorithm::{self, Sha256, Sha512};

    /// fsverity-utils' test pattern (spec §1.5).
    fn pattern(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i % 11) + (i % 439) + (i % 1103)) as u8)
            .collect()
    }

    fn params(alg: HashAlgorithm, bs: u32, salt: &[u8]) -> Params {
        Params::new(alg, bs, salt).unwrap()
    }

    fn all_ways(p: &Params, data: &[u8]) -> String {
        let one = digest_bytes(p, data).to_hex();
        for threads in [Threads::Sequential, Threads::from_jobs(3).unwrap()] {
            for backend in [Backend::Sha2, Backend::MultiBuffer] {
                let mut b = DigestBuilder::new(p)
                    .with_threads(threads.clone())
                    .with_backend(backend);
                b.read_from(data, |_| {}).unwrap();
                assert_eq!(b.finish().to_hex(), one, "{threads:?} {backend:?}");
            }
        }
        one
    }

    #[test]
    fn spec_vectors_small() {
        let d = |p: &Params, data: &[u8]| all_ways(p, data);
        let def = Params::default();
        let s512 = params(Sha512, 4096, &[]);
        assert_eq!(
            d(&def, b""),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        assert_eq!(
            d(&s512, b""),
            "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"
        );
        assert_eq!(
            d(&def, &pattern(1)),
            "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551"
        );
        assert_eq!(
            d(&def, b"a"),
            "bce75948b9e7510293f8f2720412af9697c1479281323f3f220623fb8e94b557"
        );
        assert_eq!(
            d(&params(Sha256, 4096, &[0]), b"a"),
            "950535e5bdf97b6498775171178e364c052f728f9d359d8957ee6eb9c3a64b35"
        );
        assert_eq!(
            d(&def, b"hello\n"),
            "9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa"
        );
        assert_eq!(
            d(&s512, b"hello\n"),
            "21fe275216d7dafb8afa8f8257ae96215b74c1dad980238e6fdbbd0c41a44adb8d3e1f95c7e3dad3e25037369d1c87dd107ceb7eb9c9c868eb2b18b57ddd4125"
        );
        let z4096 = vec![0u8; 4096];
        assert_eq!(
            d(&def, &z4096),
            "babc284ee4ffe7f449377fbf6692715b43aec7bc39c094a95878904d34bac97e"
        );
        assert_eq!(
            d(&params(Sha256, 1024, &[]), &z4096),
            "ea08590a4fe9c3d6c9dafe0eedacd9dffff8f24e24f1865ee3af132a495ab087"
        );
        assert_eq!(
            d(&s512, &z4096),
            "928922686c4caf32175f5236a7f964e9925d10a74dc6d8344a8bd08b23c228ff5792573987d7895f628f39c4f4ebe39a7367d7aeb16aaa0cd324ac1d53664e61"
        );
        let z100k = vec![0u8; 100_000];
        assert_eq!(
            d(&def, &z100k),
            "ecabbfca4efd69a721be824965da10d27900b109549f96687b35a4d91d810dac"
        );
        assert_eq!(
            d(&params(Sha256, 1024, &[]), &z100k),
            "09cbbaeed2a04c2da242c10e1568d96f358a16aa1ebe8cf0286120c13c9366d1"
        );
        assert_eq!(
            d(&def, &[b'X'; 100_000]),
            "b2a419c5a8c767a78c6275d6729794bf51e52ddf8713e31d12a93d61d961f49f"
        );
        assert_eq!(
            d(&def, &vec![0u8; 1 << 20]),
            "feb19a23e72cb1b8f935d668a09ecaad0bf7c5b9cdfa6dbba7c88a9998ed2b87"
        );
        assert_eq!(
            d(&def, &pattern(4096)),
            "6ac39979016e3ddf3d39fff6cb984f7c118acdf1852919f5c100c4b142c1818e"
        );
        assert_eq!(
            d(&def, &pattern(100_000)),
            "f2096a36c5cdca4fa33ee8852833150bb324992e5417a9d571f1bffff73b9efc"
        );
    }

    #[test]
    fn spec_vectors_pattern_1m() {
        let p1m = pattern(1_000_000);
        let cases: [(Params, &str); 7] = [
            (Params::default(), "48df0c462329cd879661bd05b39aa81b05cc16afd27a7196a559da83531d39d9"),
            (params(Sha256, 4096, b"abcd"), "917900b0d299454aa304d5debc6f39e4af7b5abe33bdbc568d5d8f1e5c4d8652"),
            (
                params(Sha256, 4096, b"0123456789:;<=>?@ABCDEFGHIJKLMNO"),
                "bc2d70324c048c220a2cb190832140863eb268e680427939e5d467bea5ec5ad9",
            ),
            (params(Sha256, 512, &[]), "0393ee3dfd4a28966e2af4e07cfa5b032c30da5bb8e8ef63b9a55bf963262334"),
            (params(Sha256, 1024, &[]), "e9df927c14fcb961d5f51c666d8ae4c14fe4ff98a374c733e898d00c9e74a8e3"),
            (params(Sha256, 65536, &[]), "f3b6418f26d4d0e74728193bae76f15cb4bb2ce9777448d76bd8138b69ec61c2"),
            (
                params(Sha512, 4096, b"abcd"),
                "8425c6d0c94f84ed904c12936845fbb7af9953753789712dcc3be142db3d4b6b47a399ad52aa609256ce29a960bf4bb0e595ec386ca58c06519d546dc5b197bb",
            ),
        ];
        for (p, want) in &cases {
            assert_eq!(all_ways(p, &p1m), *want, "{p:?}");
        }
        let p1mi = pattern(1 << 20);
        let cases: [(Params, &str); 4] = [
            (Params::default(), "11e30e52d6afdad0d1ebfe4361cbeb3b473fd332663ff3e1dae9f11f778f690b"),
            (params(Sha256, 1024, &[]), "ecaadb9ddb22427dcf3f6ef140989226adf343ca6ec053956c5c6b633dff3671"),
            (params(Sha256, 65536, &[]), "817a36a269170d872d9fdd3c65a55fc739b64ac2fa7eec06797b9862a1044c21"),
            (
                params(Sha512, 4096, &[]),
                "68f0a03b42bc80096805cfc617d930ebf607ef0105a56b21ae16158cff850c315ef7bc69d487e5165c320f4db7de7946d0609d61ca2d1f2f4332044c01b629b0",
            ),
        ];
        for (p, want) in &cases {
            assert_eq!(all_ways(p, &p1mi), *want, "{p:?}");
        }
    }

    /// 70 MB of zeros (three tree levels), streamed from a reader that never holds it whole.
    #[test]
    fn spec_vector_70mb_zeros() {
        let want = "ba3d60ee9fa2317c78910f6c4acb7c8c85d048b314e2404c5016624eccf8a0f1";
        let p = Params::default();
        assert_eq!(
            digest_reader(&p, io::repeat(0).take(70_000_000))
                .unwrap()
                .to_hex(),
            want
        );
        let mut b = DigestBuilder::new(&p)
            .with_threads(Threads::Sequential)
            .with_tree_output();
        let chunk = vec![0u8; 999_983];
        let mut left = 70_000_000usize;
        while left > 0 {
            let n = left.min(chunk.len());
            b.update(&chunk[..n]);
            left -= n;
        }
        let f = b.finish_all().unwrap();
        assert_eq!(f.digest.to_hex(), want);
        let tree = f.tree.unwrap();
        // 17090 data blocks -> 134 leaf-level tree blocks -> 2 blocks -> 1 block -> root.
        assert_eq!(tree.level_count(), 3);
        assert_eq!(tree.len(), (134 + 2 + 1) * 4096);
    }

    /// The size computed from the length alone equals the tree actually built.
    #[test]
    fn tree_size_matches_built_tree() {
        for p in [Params::default(), params(Sha512, 1024, &[])] {
            let bs = p.block_size() as usize;
            for len in [
                0,
                1,
                bs,
                bs + 1,
                2 * bs,
                300_001,
                bs * (p.hashes_per_block() + 1),
            ] {
                let mut b = DigestBuilder::new(&p).with_tree_output();
                b.update(&vec![7u8; len]);
                let tree = b.finish_all().unwrap().tree.unwrap();
                assert_eq!(tree_size(&p, len as u64), tree.len(), "{p:?} {len}");
            }
        }
        assert_eq!(
            tree_size(&Params::default(), 70_000_000),
            (134 + 2 + 1) * 4096
        );
    }

    #[test]
    fn tree_output_100000_zeros_b1024() {
        let p = params(Sha256, 1024, &[]);
        let mut b = DigestBuilder::new(&p).with_tree_output();
        b.update(&[0u8; 100_000]);
        let f = b.finish_all().unwrap();
        assert_eq!(
            f.digest.to_hex(),
            "09cbbaeed2a04c2da242c10e1568d96f358a16aa1ebe8cf0286120c13c9366d1"
        );
        let tree = f.tree.unwrap().to_vec().unwrap();
        assert_eq!(tree.len(), 5 * 1024);
        // Built independently: 98 data blocks (last one 672 bytes + padding) -> 4 leaf-level
        // tree blocks (32 hashes each) -> 1 block above -> root.
        let h = |x: &[u8]| -> Vec<u8> { <sha2::Sha256 as sha2::Digest>::digest(x).to_vec() };
        // The last data block (672 bytes) padded with zeros equals a full zero block.
        let full = h(&[0u8; 1024]);
        let mut leaf_level = Vec::new();
        for _ in 0..98 {
            leaf_level.extend_from_slice(&full);
        }
        leaf_level.resize(4 * 1024, 0);
        let mut upper = Vec::new();
        for blk in leaf_level.chunks(1024) {
            upper.extend_from_slice(&h(blk));
        }
        upper.resize(1024, 0);
        assert_eq!(&tree[..1024], &upper[..], "root-most level first");
        assert_eq!(&tree[1024..], &leaf_level[..]);
        assert_eq!(f.descriptor.root_hash(), &h(&upper)[..]);
        assert_eq!(f.descriptor.data_size(), 100_000);
    }

    #[test]
    fn tree_of_single_block_file_is_empty() {
        let mut b = DigestBuilder::new(&Params::default()).with_tree_output();
        b.update(b"hello\n");
        let f = b.finish_all().unwrap();
        assert!(f.tree.unwrap().is_empty());
        let mut b = DigestBuilder::new(&Params::default()).with_tree_output();
        b.update(b"");
        let f = b.finish_all().unwrap();
        assert!(f.tree.unwrap().is_empty());
        assert_eq!(f.descriptor.root_hash(), &[0u8; 32]);
    }

    #[test]
    fn spilled_tree_equals_in_memory_tree() {
        // Block size 128 with SHA-512: the tree is as large as the data, so 40 MB of input
        // pushes the leaf level past the in-memory limit.
        let p = params(Sha512, 128, b"salt");
        let data = pattern(40_000_000);
        let mut b = DigestBuilder::new(&p).with_tree_output();
        b.update(&data);
        let f = b.finish_all().unwrap();
        let mut spilled = Vec::new();
        f.tree.unwrap().write_to(&mut spilled).unwrap();
        assert!(spilled.len() > SPOOL_MEMORY_LIMIT);
        // Rebuild the tree without the builder: levels from the data upward.
        let hasher = BlockHasher::new(&p, Backend::Sha2);
        let mut levels = Vec::new();
        let mut cur = data.clone();
        cur.resize(cur.len().div_ceil(128) * 128, 0);
        loop {
            let mut hashes = vec![0u8; cur.len() / 128 * 64];
            hasher.hash_blocks(&cur, 128, &mut hashes);
            if hashes.len() == 64 {
                break;
            }
            hashes.resize(hashes.len().div_ceil(128) * 128, 0);
            levels.push(hashes.clone());
            cur = hashes;
        }
        levels.reverse();
        assert_eq!(spilled, levels.concat());
    }

    #[test]
    fn chunking_invariance() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
        let strategy = (
            prop::sample::select(vec![64u32, 512, 1024, 4096]),
            prop::bool::ANY,
            0usize..300_000,
            prop::collection::vec(1usize..70_000, 1..40),
            0usize..3,
        );
        runner
            .run(&strategy, |(bs, sha512, len, cuts, threads)| {
                let alg = if sha512 { Sha512 } else { Sha256 };
                let bs = if sha512 { bs.max(128) } else { bs };
                let p = params(alg, bs, b"xy");
                let data = pattern(len + 7);
                let data = &data[7..];
                let want = {
                    let mut b = DigestBuilder::new(&p)
                        .with_threads(Threads::Sequential)
                        .with_backend(Backend::Sha2);
                    for block in data.chunks(bs as usize) {
                        b.update(block);
                    }
                    b.finish()
                };
                let threads = match threads {
                    0 => Threads::Sequential,
                    1 => Threads::CurrentPool,
                    _ => Threads::from_jobs(2).unwrap(),
                };
                let mut b = DigestBuilder::new(&p)
                    .with_threads(threads)
                    .with_tree_output();
                let mut rest = data;
                let mut i = 0;
                while !rest.is_empty() {
                    let n = cuts[i % cuts.len()].min(rest.len());
                    b.write_all(&rest[..n]).unwrap();
                    rest = &rest[n..];
                    i += 1;
                }
                prop_assert_eq!(b.data_size(), len as u64);
                let f = b.finish_all().unwrap();
                prop_assert_eq!(&f.digest, &want);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn backends_give_identical_trees() {
        let data = pattern(3_000_000);
        let tree = |backend: Backend, threads: Threads| {
            let mut b = DigestBuilder::new(&Params::default())
                .with_backend(backend)
                .with_threads(threads)
                .with_tree_output();
            b.read_from(&data[..], |_| {}).unwrap();
            b.finish_all().unwrap().tree.unwrap().to_vec().unwrap()
        };
        let a = tree(Backend::Sha2, Threads::Sequential);
        assert_eq!(a.len(), (6 + 1) * 4096);
        assert_eq!(a, tree(Backend::MultiBuffer, Threads::Sequential));
        assert_eq!(
            a,
            tree(Backend::MultiBuffer, Threads::from_jobs(2).unwrap())
        );
        assert_eq!(a, tree(Backend::Auto, Threads::CurrentPool));
    }

    #[test]
    fn read_errors_are_returned() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                buf[..n].fill(1);
                Ok(n)
            }
        }
        for threads in [Threads::Sequential, Threads::from_jobs(2).unwrap()] {
            let mut b = DigestBuilder::new(&Params::default()).with_threads(threads);
            let e = b.read_from(Failing(20 << 20), |_| {}).unwrap_err();
            assert_eq!(e.to_string(), "disk on fire");
        }
    }

    #[test]
    fn files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        assert_eq!(
            digest_file(&Params::default(), &path).unwrap().to_hex(),
            "9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa"
        );
        let e = digest_file(&Params::default(), dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        assert!(digest_file(&Params::default(), &dir.path().join("missing")).is_err());
    }

    /// A size hint is only a hint: any wrong value gives the right digest in every thread mode.
    #[test]
    fn wrong_size_hints_give_the_right_digest() {
        let data = pattern(9 << 20 | 77);
        let want = digest_bytes(&Params::default(), &data);
        let len = data.len() as u64;
        for hint in [0, 1, 1000, 4095, 4097, 5000, len / 3, len - 1, len, len * 2] {
            for threads in [Threads::Sequential, Threads::from_jobs(2).unwrap()] {
                let mut b = DigestBuilder::new(&Params::default()).with_threads(threads);
                assert_eq!(
                    b.read_from_sized(&data[..], Some(hint), |_| {}).unwrap(),
                    len
                );
                assert_eq!(b.finish(), want, "hint {hint}");
            }
        }
    }

    /// The mapped path must give the streamed result: sizes around the map threshold and the
    /// window, partial last blocks, several block sizes, every thread mode, with trees.
    #[test]
    fn mapped_file_equals_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let sizes = [
            MAP_MIN_SIZE - 1,
            MAP_MIN_SIZE,
            MAP_MIN_SIZE + 4095,
            MAP_WINDOW + 1,
            2 * MAP_WINDOW + 4097,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            let data = pattern(size);
            std::fs::write(&path, &data).unwrap();
            let (bs, salt, alg) = [(4096, &b""[..], Sha256), (1024, &b"salt"[..], Sha512)][i % 2];
            let p = params(alg, bs, salt);
            let want = {
                let mut b = DigestBuilder::new(&p)
                    .with_threads(Threads::Sequential)
                    .with_tree_output();
                b.read_from(&data[..], |_| {}).unwrap();
                b.finish_all().unwrap()
            };
            let want_tree = want.tree.unwrap().to_vec().unwrap();
            for threads in [Threads::Sequential, Threads::from_jobs(2).unwrap()] {
                let (file, len) = open_regular_file(&path).unwrap();
                let mut b = DigestBuilder::new(&p)
                    .with_threads(threads)
                    .with_tree_output();
                let mut seen = 0;
                assert_eq!(b.read_file(&file, len, |n| seen += n).unwrap(), size as u64);
                assert_eq!(seen, size as u64);
                let got = b.finish_all().unwrap();
                assert_eq!(got.digest, want.digest, "size {size}");
                assert_eq!(got.tree.unwrap().to_vec().unwrap(), want_tree);
            }
        }
    }

    /// Data appended after the caller took the size is digested too, as a read to end of file
    /// would; so is a file whose size was understated below the mapping threshold.
    #[test]
    fn mapped_file_picks_up_appended_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(3 * MAP_MIN_SIZE + 123);
        std::fs::write(&path, &data).unwrap();
        let want = digest_bytes(&Params::default(), &data);
        for stale_size in [2 * MAP_MIN_SIZE as u64 + 5, 1000] {
            let file = File::open(&path).unwrap();
            let mut b = DigestBuilder::new(&Params::default());
            assert_eq!(
                b.read_file(&file, stale_size, |_| {}).unwrap(),
                data.len() as u64
            );
            assert_eq!(b.finish(), want, "stale size {stale_size}");
        }
    }

    /// A file that shrank after its size was taken is an error: cut below the mapped range it
    /// would be SIGBUS, cut inside its last page it would read as zeros there, a digest of
    /// bytes that never existed.
    #[test]
    fn mapped_file_that_shrank_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 3 * MAP_MIN_SIZE;
        for cut_to in [MAP_MIN_SIZE as u64, len as u64 - 100] {
            std::fs::write(&path, pattern(len)).unwrap();
            let (file, size) = open_regular_file(&path).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut_to)
                .unwrap();
            for threads in [Threads::Sequential, Threads::from_jobs(2).unwrap()] {
                let mut b = DigestBuilder::new(&Params::default()).with_threads(threads);
                let e = b.read_file(&file, size, |_| {}).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    "file shrank while being read",
                    "cut to {cut_to}"
                );
            }
        }
    }

    #[test]
    fn builder_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<DigestBuilder>();
        assert_send::<MerkleTree>();
    }
}
