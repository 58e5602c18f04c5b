//! The audit log: one JSON line per request, on disk (fsync'ed) before the response leaves.
//!
//! A single writer thread owns the file and commits in groups: every line queued while the
//! previous fsync was running goes out with the next write + fsync, so hundreds of concurrent
//! requests cost a handful of fsyncs rather than one each, while each request still waits for its
//! own line to be durable.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::Context;
use tokio::sync::oneshot;

/// Lines taken from the queue per commit, so one huge burst can't starve the acknowledgements.
const MAX_GROUP: usize = 4096;

struct Entry {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Entry>,
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log for appending. A torn last line left by a crash is cut
    /// off, so the file stays one JSON document per line; that line's request was never answered,
    /// because answers wait for the fsync.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("audit log {}", path.display()))?;
        let mut len = meta.len();
        if meta.file_type().is_file() && len > 0 {
            let keep = complete_prefix_len(&mut file, len)
                .with_context(|| format!("reading audit log {}", path.display()))?;
            if keep != len {
                eprintln!(
                    "rpm-verity serve: audit log {}: removing an incomplete last line ({} bytes) left by a crash",
                    path.display(),
                    len - keep
                );
                file.set_len(keep)
                    .with_context(|| format!("truncating audit log {}", path.display()))?;
                file.sync_all()?;
                len = keep;
            }
        }
        let (tx, rx) = mpsc::channel::<Entry>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer(file, len, path, rx))
            .context("starting the audit log thread")?;
        Ok(Self { tx })
    }

    /// Appends one record and waits until it is durable. An error means the record may not be on
    /// disk, so the caller must not hand out anything the record was meant to cover.
    pub async fn write(&self, record: &serde_json::Value) -> Result<(), String> {
        let mut line = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry { line, done })
            .map_err(|_| "audit log writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "audit log writer has stopped".to_string())?
    }
}

/// Length of the file up to and including its last newline.
fn complete_prefix_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn writer(mut file: File, mut len: u64, path: PathBuf, rx: mpsc::Receiver<Entry>) {
    let is_regular = file
        .metadata()
        .map(|m| m.file_type().is_file())
        .unwrap_or(false);
    let mut group: Vec<Entry> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(e) => group.push(e),
                Err(_) => break,
            }
        }
        buf.clear();
        for e in &group {
            buf.extend_from_slice(&e.line);
        }
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        let outcome = match result {
            Ok(()) => {
                len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut back whatever part of the group reached the file, so no line half-exists
                // and none is recorded for a request that will be refused.
                if is_regular {
                    let _ = file.set_len(len);
                    let _ = file.sync_data();
                }
                let msg = format!("cannot write audit log {}: {e}", path.display());
                eprintln!("rpm-verity serve: {msg}");
                Err(msg)
            }
        };
        for e in group.drain(..) {
            let _ = e.done.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_torn_last_line_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let log = AuditLog::open(&p).unwrap();
        rt.block_on(async {
            log.write(&serde_json::json!({"c": 2})).await.unwrap();
        });
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"c\":2}\n"
        );
    }

    #[test]
    fn reports_failure_on_full_device() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let log = AuditLog::open(Path::new("/dev/full")).unwrap();
        let r = rt.block_on(log.write(&serde_json::json!({"c": 2})));
        assert!(r.unwrap_err().contains("/dev/full"));
    }
}
