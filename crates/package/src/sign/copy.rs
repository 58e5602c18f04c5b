//! The package copy that runs beside hashing: main header and payload written at their final
//! offset in the new file while the payload is still being digested.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fsverity::HashAlgorithm;
use rpm_format::{Package, RewriteMode};
use verity_signing::Signer;

use crate::error::SignError;
use crate::output::AtomicFile;

/// The main header and payload copied into the new file while the payload is still being
/// hashed. The new signature header's length is known before its signatures are: every
/// RSA signature made with one key and certificate has the same length, which a local signer
/// computes without signing and a remote one tells by one probe signature (of the empty file's
/// digest, which most packages need anyway); ECDSA signatures are at most a known length, and
/// [`lay_out`] gives shorter ones the longest one's layout. That fixes the layout, and the copy
/// (and its fdatasync) can run at its final offset beside decompression and hashing. Signing
/// then only has to write the lead and the signature header at the front.
pub(super) struct EarlyCopy {
    out: AtomicFile,
    pub(super) dest: PathBuf,
    pub(super) header_len: usize,
    job: Arc<CopyJob>,
    copier: std::thread::JoinHandle<std::io::Result<()>>,
}

impl EarlyCopy {
    pub(super) fn abandon(self) {
        self.job.cancel();
        let _ = self.copier.join();
        drop(self.out);
    }

    /// Copies whatever the background thread has not claimed yet, on the calling thread at
    /// normal priority, then waits for the piece the background thread is on.
    pub(super) fn complete(self) -> Result<AtomicFile, SignError> {
        let mine = self.job.run();
        let theirs = self.copier.join().map_err(|_| SignError::CopyThread)?;
        mine.and(theirs).map_err(SignError::Copy)?;
        Ok(self.out)
    }
}

/// Main header and payload, copied to their new offset in pieces that the background copy
/// thread and, once hashing is done, the signing thread claim in turn. The background thread
/// runs at the lowest priority so that it only takes cycles decompression leaves free; on a
/// busy machine that could be almost none, so whatever it has not done when the signatures are
/// ready is done at normal priority then, and `sign` never waits on a starved thread for more
/// than one piece.
struct CopyJob {
    src: File,
    dst: File,
    src_offset: u64,
    dst_offset: u64,
    len: u64,
    claimed: AtomicU64,
}

/// One claim: small enough that waiting for a starved thread to finish one is short.
const COPY_PIECE: u64 = 1 << 20;

impl CopyJob {
    fn run(&self) -> std::io::Result<()> {
        loop {
            let at = self.claimed.fetch_add(COPY_PIECE, Ordering::SeqCst);
            if at >= self.len {
                return Ok(());
            }
            let n = COPY_PIECE.min(self.len - at);
            copy_range(
                &self.src,
                self.src_offset + at,
                &self.dst,
                self.dst_offset + at,
                n,
            )?;
        }
    }

    fn cancel(&self) {
        self.claimed.store(u64::MAX / 2, Ordering::SeqCst);
    }
}

/// `n` bytes from `src` at `from` to `dst` at `to`: `copy_file_range` (in-kernel, a reflink
/// where the filesystem can), positioned reads and writes where it is refused.
fn copy_range(
    src: &File,
    mut from: u64,
    dst: &File,
    mut to: u64,
    mut n: u64,
) -> std::io::Result<()> {
    while n > 0 {
        let want = n.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), want) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "package shorter than its size",
                ))
            }
            Ok(k) => n -= k as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) => {
                let mut buf = vec![0u8; want.min(COPY_PIECE as usize)];
                src.read_exact_at(&mut buf, from)?;
                dst.write_all_at(&buf, to)?;
                from += buf.len() as u64;
                to += buf.len() as u64;
                n -= buf.len() as u64;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The new signature header for `signatures`. Signatures shorter than the longest the signer
/// says it makes (ECDSA's vary by a few bytes) get the layout of the longest when the header is
/// rewritten, with RESERVEDSPACE taking up the difference: that is the layout
/// [`start_early_copy`] predicts, and the same bytes whatever lengths the signatures have.
pub(super) fn lay_out(
    signature: &rpm_format::SignatureHeader,
    signatures: &[Vec<u8>],
    hash_alg: HashAlgorithm,
    signer: &dyn Signer,
) -> Result<rpm_format::RewritePlan, SignError> {
    let id = u32::from(hash_alg.id());
    // Files left unsigned by the selection keep their empty entry in the prediction too.
    let shorter = |s: &Vec<u8>| !s.is_empty() && Some(s.len()) < signer.signature_len(hash_alg);
    Ok(match signer.signature_len(hash_alg) {
        Some(longest) if signatures.iter().any(shorter) => {
            let longest_layout: Vec<Vec<u8>> = signatures
                .iter()
                .map(|s| vec![0u8; if s.is_empty() { 0 } else { longest }])
                .collect();
            let predicted = signature.with_verity(&longest_layout, id)?;
            signature.with_verity_reserving(signatures, id, predicted.signature_bytes.len())?
        }
        _ => signature.with_verity(signatures, id)?,
    })
}

/// Starts an [`EarlyCopy`] when the package will be written to a new file (rewrite mode or
/// an output directory); `None` when it will be changed in place or has no files.
pub(super) fn start_early_copy<R: std::io::Read>(
    pkg: &Path,
    package: &Package<R>,
    dest: &Path,
    in_place_allowed: bool,
    opts: &super::SignOptions,
    signer: &dyn Signer,
) -> Result<Option<EarlyCopy>, SignError> {
    let hash_alg = opts.hash_alg;
    let files = package.files()?;
    let n = files.len();
    // A choice by content is known only once the payload is read: no layout to predict.
    if n == 0 || opts.selection.needs_content() {
        return Ok(None);
    }
    let len = match signer.signature_len(hash_alg) {
        Some(len) => len,
        None => {
            let params = fsverity::Params::for_rpm(hash_alg);
            let probe = signer.sign_digests(&[fsverity::empty_file_digest(&params)])?;
            probe.first().map(|s| s.len()).unwrap_or(0)
        }
    };
    let entries: Vec<Vec<u8>> = files
        .files()
        .iter()
        .map(|f| {
            let chosen = opts
                .selection
                .selects(&f.path, crate::select::ContentKind::Other);
            vec![0u8; if chosen { len } else { 0 }]
        })
        .collect();
    let predicted = package
        .signature
        .with_verity(&entries, u32::from(hash_alg.id()))?;
    if in_place_allowed && predicted.mode == RewriteMode::InPlace {
        return Ok(None);
    }
    let header_len = predicted.signature_bytes.len();
    let src = File::open(pkg).map_err(SignError::Open)?;
    let src_len = src.metadata().map_err(SignError::Stat)?.len();
    let src_offset = package.main_header_offset();
    let out = AtomicFile::create(dest).map_err(|source| SignError::Create {
        path: dest.to_path_buf(),
        source,
    })?;
    let dst = out
        .file_ref()
        .try_clone()
        .map_err(SignError::DuplicateOutput)?;
    let job = Arc::new(CopyJob {
        src,
        dst,
        src_offset,
        dst_offset: (rpm_format::lead::LEAD_SIZE + header_len) as u64,
        len: src_len.saturating_sub(src_offset),
        claimed: AtomicU64::new(0),
    });
    let bg = Arc::clone(&job);
    let copier = std::thread::Builder::new()
        .name("copy".into())
        .spawn(move || {
            background_thread();
            bg.run()?;
            // Early writeback: the final fsync then finds little left to write.
            bg.dst.sync_data()
        })
        .map_err(SignError::StartCopyThread)?;
    Ok(Some(EarlyCopy {
        out,
        dest: dest.to_path_buf(),
        header_len,
        job,
        copier,
    }))
}

/// Lowers the calling thread's scheduling priority to the lowest nice level (Linux `nice` is
/// per thread), for the copy, which only needs the cycles decompression leaves free (measured
/// in docs/benchmarks-sign.md). On a busy machine such a thread may get almost nothing, which
/// is why [`EarlyCopy::complete`] finishes the rest at normal priority; nice cannot be lowered
/// back without privilege.
fn background_thread() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};

    fn job(dir: &Path, data: &[u8], src_offset: u64, dst_offset: u64) -> (Arc<CopyJob>, PathBuf) {
        let src = dir.join("src");
        let dst = dir.join("dst");
        fs::write(&src, data).unwrap();
        let job = Arc::new(CopyJob {
            src: File::open(&src).unwrap(),
            dst: OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&dst)
                .unwrap(),
            src_offset,
            dst_offset,
            len: data.len() as u64 - src_offset,
            claimed: AtomicU64::new(0),
        });
        (job, dst)
    }

    /// The pieces land at their offsets whoever copies them: one thread alone, or two at
    /// once (the background thread and the signing thread finishing the rest).
    #[test]
    fn copy_job_pieces_from_any_thread() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(5 * COPY_PIECE as usize + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let (j, dst) = job(dir.path(), &data, 1000, 96);
        j.run().unwrap();
        let out = fs::read(&dst).unwrap();
        assert_eq!(&out[96..], &data[1000..]);

        let (j, dst) = job(dir.path(), &data, 7, 0);
        let other = Arc::clone(&j);
        let t = std::thread::spawn(move || other.run());
        j.run().unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(fs::read(&dst).unwrap(), &data[7..]);

        // Cancelled: nothing more is claimed.
        let (j, dst) = job(dir.path(), &data, 0, 0);
        j.cancel();
        j.run().unwrap();
        assert_eq!(fs::read(&dst).unwrap().len(), 0);
    }

    /// A source shorter than the job says is an error, not a short file.
    #[test]
    fn copy_job_short_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = job(dir.path(), &[1u8; 5000], 0, 0);
        let j = Arc::into_inner(j).unwrap();
        let j = CopyJob { len: 9000, ..j };
        let e = j.run().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
