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
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

use tokio::sync::oneshot;

use super::setup_error::AuditLogError;

/// Lines taken from the queue per commit, so one huge burst can't starve the acknowledgements.
const MAX_GROUP: usize = 4096;

/// Why a record may not be on disk. Cloneable because one failed commit answers every request of
/// its group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write audit log {}", path.display())]
    Write {
        path: Arc<Path>,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("cannot encode an audit record")]
    Encode(#[source] Arc<serde_json::Error>),
    #[error("audit log writer has stopped")]
    Stopped,
}

struct Entry {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Entry>,
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log for appending. A torn last line left by a crash is cut
    /// off, so the file stays one JSON document per line; that line's request was never answered,
    /// because answers wait for the fsync.
    pub fn open(path: &Path) -> Result<Self, AuditLogError> {
        let at = |make: fn(PathBuf, std::io::Error) -> AuditLogError| {
            move |source| make(path.to_path_buf(), source)
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(at(|path, source| AuditLogError::Open { path, source }))?;
        let meta = file
            .metadata()
            .map_err(at(|path, source| AuditLogError::Stat { path, source }))?;
        let mut len = meta.len();
        if meta.file_type().is_file() && len > 0 {
            let keep = complete_prefix_len(&mut file, len)
                .map_err(at(|path, source| AuditLogError::Read { path, source }))?;
            if keep != len {
                eprintln!(
                    "rpm-verity serve: audit log {}: removing an incomplete last line ({} bytes) left by a crash",
                    path.display(),
                    len - keep
                );
                let truncate = at(|path, source| AuditLogError::Truncate { path, source });
                file.set_len(keep).map_err(truncate)?;
                file.sync_all().map_err(truncate)?;
                len = keep;
            }
        }
        let (tx, rx) = mpsc::channel::<Entry>();
        let path: Arc<Path> = Arc::from(path);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer(file, len, path, rx))
            .map_err(AuditLogError::Thread)?;
        Ok(Self { tx })
    }

    /// Appends one record and waits until it is durable. An error means the record may not be on
    /// disk, so the caller must not hand out anything the record was meant to cover.
    pub async fn write(&self, record: &serde_json::Value) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Encode(Arc::new(e)))?;
        line.push(b'\n');
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry { line, done })
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
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

fn writer(mut file: File, mut len: u64, path: Arc<Path>, rx: mpsc::Receiver<Entry>) {
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
                let e = AuditError::Write {
                    path: path.clone(),
                    source: Arc::new(e),
                };
                eprintln!("rpm-verity serve: {}", crate::error_chain(&e));
                Err(e)
            }
        };
        for e in group.drain(..) {
            let _ = e.done.send(outcome.clone());
        }
    }
}

/// Most bytes of one client-chosen text (a key name from the URL, a certificate CN) in an audit
/// line, so a refused request costs the log a bounded number of bytes whatever it sent.
pub const UNTRUSTED_MAX: usize = 128;

/// `text` cut to about `max` bytes, with everything but printable ASCII escaped (`\u{..}`,
/// `\n`, `\\`), so that neither a huge value nor terminal control sequences reach the log or
/// whoever reads it with `jq -r`. A cut value ends with `...(N bytes)`.
pub fn untrusted(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 24);
    for c in text.chars() {
        let start = out.len();
        if (c.is_ascii_graphic() || c == ' ') && c != '\\' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
        if out.len() > max {
            out.truncate(start);
            out.push_str(&format!("...({} bytes)", text.len()));
            break;
        }
    }
    out
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, H. Hinnant), to avoid a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        d.subsec_millis()
    )
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
        assert!(r.unwrap_err().to_string().contains("/dev/full"));
    }

    #[test]
    fn untrusted_text_is_cut_and_escaped() {
        assert_eq!(untrusted("k1", 128), "k1");
        assert_eq!(untrusted("a\u{1b}[31m\nb\\", 128), "a\\u{1b}[31m\\nb\\\\");
        let long = "x".repeat(60_000);
        let cut = untrusted(&long, 128);
        assert_eq!(cut, format!("{}...(60000 bytes)", "x".repeat(128)));
        // An escape is never split by the cut.
        let cut = untrusted(&"\u{7f}".repeat(100), 20);
        assert_eq!(cut, format!("{}...(100 bytes)", "\\u{7f}".repeat(3)));
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
    }
}
