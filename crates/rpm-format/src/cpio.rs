//! Streaming cpio reader for rpm payloads: "newc" entries (070701/070702) and the stripped
//! `07070X` entries rpm writes when the header has LONGFILESIZES. Each entry is mapped to its
//! header file index and checked against the header; file contents are never buffered.

use std::borrow::Borrow;
use std::io::{self, BufRead, Read};

use crate::error::{Error, Result};
use crate::files::FileList;
use crate::payload::{LendChunks, LentChunk, PayloadReader};
use crate::reader::{read_full, Reader};

/// Longest entry name accepted (rpm paths are bounded by PATH_MAX anyway).
pub const MAX_NAME_SIZE: u32 = 64 * 1024;
const TRAILER: &[u8] = b"TRAILER!!!";

/// One payload entry, positioned at its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpioEntry {
    /// Header file index.
    pub index: usize,
    /// Data bytes that follow in the payload (0 for directories and for hardlink members that
    /// do not carry the set's content).
    pub size: u64,
    /// Mode from the cpio header (stripped entries: from the file header).
    pub mode: u32,
    /// Link count from the cpio header (stripped entries: 1).
    pub nlink: u32,
    /// True for a `07070X` entry.
    pub stripped: bool,
}

/// Iterates entries; the reader itself yields the current entry's content.
pub struct CpioReader<R, F = FileList> {
    inner: R,
    files: F,
    pos: u64,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    seen: Vec<bool>,
    /// Per hardlink set: whether a member carried the data.
    link_data: Vec<bool>,
    done: bool,
}

fn cpio_err(offset: u64, msg: impl Into<String>) -> Error {
    Error::Cpio {
        offset,
        msg: msg.into(),
    }
}

/// One 8-digit hex field of a cpio header.
fn hex8(r: &mut Reader, offset: u64) -> Result<u32> {
    let b = r
        .take(8)
        .ok_or_else(|| cpio_err(offset, "truncated header field"))?;
    let s = std::str::from_utf8(b).map_err(|_| cpio_err(offset, "non-hex header field"))?;
    if s.len() != 8 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(cpio_err(offset, format!("bad header field {s:?}")));
    }
    u32::from_str_radix(s, 16).map_err(|_| cpio_err(offset, "bad header field"))
}

/// Bytes of a newc header after the magic: 13 fields of 8 hex digits.
const NEWC_FIELDS_LEN: usize = 13 * 8;

/// The newc header fields the reader uses. The others (ino, uid, gid, mtime, device numbers,
/// checksum) are still required to be hex: a header that is not is corrupt, and saying so at
/// its offset is more useful than a confusing error further on.
struct NewcFields {
    mode: u32,
    nlink: u32,
    filesize: u32,
    namesize: u32,
}

impl NewcFields {
    fn parse(h: &[u8; NEWC_FIELDS_LEN], offset: u64) -> Result<NewcFields> {
        let mut r = Reader::new(h);
        let mut f = [0u32; 13];
        for v in f.iter_mut() {
            *v = hex8(&mut r, offset)?;
        }
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check: constant indices into a fixed array cannot fail.
        Ok(NewcFields {
            mode: f[1],
            nlink: f[4],
            filesize: f[6],
            namesize: f[11],
        })
    }
}

impl<R: Read, F: Borrow<FileList>> CpioReader<R, F> {
    pub fn new(inner: R, files: F) -> CpioReader<R, F> {
        let n = files.borrow().len();
        let sets = files.borrow().hardlink_sets().len();
        CpioReader {
            inner,
            files,
            pos: 0,
            remaining: 0,
            seen: vec![false; n],
            link_data: vec![false; sets],
            done: false,
        }
    }

    pub fn files(&self) -> &FileList {
        self.files.borrow()
    }

    /// Bytes of the archive consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<()> {
        let got = read_full(&mut self.inner, buf).map_err(|e| Error::from_io("payload", e))?;
        if got < buf.len() {
            return Err(cpio_err(
                self.pos + got as u64,
                "truncated archive (unexpected end of payload)",
            ));
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact_counted(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn align4(&mut self) -> Result<()> {
        let pad = (4 - self.pos % 4) % 4;
        self.skip(pad)
    }

    /// Advances to the next entry (skipping unread content of the current one). `Ok(None)`
    /// after the trailer, once every non-ghost header file has been seen.
    pub fn next_entry(&mut self) -> Result<Option<CpioEntry>> {
        if self.done {
            return Ok(None);
        }
        if self.remaining > 0 {
            let r = self.remaining;
            self.remaining = 0;
            self.skip(r)?;
        }
        self.align4()?;
        let start = self.pos;
        let mut magic = [0u8; 6];
        self.read_exact_counted(&mut magic)?;
        let entry = match &magic {
            b"07070X" => self.stripped_entry(start)?,
            b"070701" | b"070702" => self.newc_entry(start)?,
            _ => {
                return Err(cpio_err(
                    start,
                    format!("bad entry magic {:?}", String::from_utf8_lossy(&magic)),
                ))
            }
        };
        let Some(entry) = entry else {
            return self.finish_archive();
        };
        self.check_entry(&entry)?;
        self.remaining = entry.size;
        Ok(Some(entry))
    }

    /// The rest of a `07070X` entry (its index), positioned at the data; `None` for the
    /// `ffffffff` end marker. Size and mode come from the header, as the entry has neither.
    fn stripped_entry(&mut self, start: u64) -> Result<Option<CpioEntry>> {
        let mut idx = [0u8; 8];
        self.read_exact_counted(&mut idx)?;
        let idx = hex8(&mut Reader::new(&idx), start)?;
        if idx == u32::MAX {
            return Ok(None);
        }
        let index = idx as usize;
        if index >= self.files().len() {
            return Err(cpio_err(
                start,
                format!(
                    "stripped entry index {idx} out of range ({} files)",
                    self.files().len()
                ),
            ));
        }
        self.align4()?;
        let size = self.files().stripped_entry_size(index);
        let mode = self.files().get(index).map_or(0, |f| f.mode as u32);
        Ok(Some(CpioEntry {
            index,
            size,
            mode,
            nlink: 1,
            stripped: true,
        }))
    }

    /// The rest of a newc entry (fields and name), positioned at the data; `None` for the
    /// trailer.
    fn newc_entry(&mut self, start: u64) -> Result<Option<CpioEntry>> {
        let mut h = [0u8; NEWC_FIELDS_LEN];
        self.read_exact_counted(&mut h)?;
        let NewcFields {
            mode,
            nlink,
            filesize,
            namesize,
        } = NewcFields::parse(&h, start)?;
        if namesize == 0 || namesize > MAX_NAME_SIZE {
            return Err(cpio_err(start, format!("bad name size {namesize}")));
        }
        let mut name = vec![0u8; namesize as usize];
        self.read_exact_counted(&mut name)?;
        if name.last() != Some(&0) {
            return Err(cpio_err(start, "entry name not NUL-terminated"));
        }
        name.pop();
        if name == TRAILER {
            return Ok(None);
        }
        self.align4()?;
        let Some(index) = self.files().find(&name) else {
            return Err(Error::NotInHeader {
                name: String::from_utf8_lossy(&name).into_owned(),
            });
        };
        Ok(Some(CpioEntry {
            index,
            size: u64::from(filesize),
            mode,
            nlink,
            stripped: false,
        }))
    }

    fn check_entry(&mut self, e: &CpioEntry) -> Result<()> {
        let files: &FileList = self.files.borrow();
        let (Some(f), Some(&seen)) = (files.get(e.index), self.seen.get(e.index)) else {
            return Err(cpio_err(self.pos, format!("no header file {}", e.index)));
        };
        if seen {
            return Err(Error::DuplicateEntry {
                path: f.path_lossy(),
            });
        }
        if f.is_ghost() {
            return Err(Error::GhostInPayload {
                path: f.path_lossy(),
            });
        }
        let set = files.hardlink_set_index(e.index);
        if e.size != f.size {
            let ok = e.size == 0 && (set.is_some() || f.is_dir());
            if !ok {
                return Err(Error::FileSizeMismatch {
                    path: f.path_lossy(),
                    header: f.size,
                    payload: e.size,
                });
            }
        }
        if let Some(k) = set.filter(|_| e.size > 0) {
            match self.link_data.get_mut(k) {
                Some(true) => {
                    return Err(cpio_err(
                        self.pos,
                        format!("hardlink set of {:?} carries data twice", f.path_lossy()),
                    ))
                }
                Some(carried) => *carried = true,
                None => return Err(cpio_err(self.pos, format!("no hardlink set {k}"))),
            }
        }
        self.seen[e.index] = true;
        Ok(())
    }

    fn finish_archive(&mut self) -> Result<Option<CpioEntry>> {
        self.done = true;
        let files: &FileList = self.files.borrow();
        for (i, f) in files.files().iter().enumerate() {
            if !f.is_ghost() && !self.seen[i] {
                return Err(Error::MissingFromPayload {
                    path: f.path_lossy(),
                });
            }
        }
        for (k, set) in files.hardlink_sets().iter().enumerate() {
            let size = files.files()[set[0]].size;
            if size > 0 && !self.link_data[k] {
                return Err(Error::MissingFromPayload {
                    path: files.files()[*set.last().unwrap_or(&set[0])].path_lossy(),
                });
            }
        }
        Ok(None)
    }

    /// Indices of files marked seen so far (for callers that stop early).
    pub fn seen(&self) -> &[bool] {
        &self.seen
    }
}

impl<R: BufRead, F: Borrow<FileList>> CpioReader<R, F> {
    /// Appends up to `max` bytes of the current entry's content to `out`, straight from the
    /// reader's buffer (no zero-filled buffer to read into); 0 at the end of the entry.
    pub fn append_content(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        if self.remaining == 0 || max == 0 {
            return Ok(0);
        }
        let want = (max as u64).min(self.remaining) as usize;
        let avail = self.inner.fill_buf()?;
        if avail.is_empty() {
            return Err(cpio_err(self.pos, "truncated archive inside file data").into_io());
        }
        let n = want.min(avail.len());
        out.extend_from_slice(&avail[..n]);
        self.inner.consume(n);
        self.remaining -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: LendChunks, F: Borrow<FileList>> CpioReader<R, F> {
    /// Up to `max` bytes of the current entry's content as a chunk of the reader's own, without
    /// a copy ([`LendChunks`]); `None` when it cannot lend them (read them instead), or at the
    /// end of the entry.
    pub fn lend_content(&mut self, max: usize) -> io::Result<Option<LentChunk>> {
        let want = (max as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(None);
        }
        let Some(chunk) = self.inner.lend(want)? else {
            return Ok(None);
        };
        if chunk.len() > want {
            // A reader that breaks the contract would hand out the next entry's bytes as this
            // one's content.
            return Err(cpio_err(self.pos, "reader lent past the end of the entry").into_io());
        }
        self.remaining -= chunk.len() as u64;
        self.pos += chunk.len() as u64;
        Ok(Some(chunk))
    }
}

impl<R: Read, F: Borrow<FileList>> CpioReader<PayloadReader<R>, F> {
    /// Starts a digest (rpm's algorithm `algo`) of the current entry's content, in the same
    /// pass as the payload's own digest: call it right after [`CpioReader::next_entry`], and
    /// take it once the content is read, before the next entry.
    pub fn start_span_digest(&mut self, algo: u32) -> Result<()> {
        self.inner.start_span_digest(algo)
    }

    /// The digest started by [`CpioReader::start_span_digest`].
    pub fn take_span_digest(&mut self) -> Option<Vec<u8>> {
        self.inner.take_span_digest()
    }
}

impl<R: Read, F: Borrow<FileList>> Read for CpioReader<R, F> {
    /// Content of the current entry; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(cpio_err(self.pos, "truncated archive inside file data").into_io());
        }
        self.remaining -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::{header_for, F};
    use crate::tags::FILE_GHOST;

    fn pad4(v: &mut Vec<u8>) {
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }

    fn newc(v: &mut Vec<u8>, name: &str, mode: u32, nlink: u32, data: &[u8]) {
        v.extend_from_slice(b"070701");
        let fields = [
            1,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        for f in fields {
            v.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        pad4(v);
        v.extend_from_slice(data);
        pad4(v);
    }

    fn stripped(v: &mut Vec<u8>, idx: u32, data: &[u8]) {
        v.extend_from_slice(format!("07070X{idx:08x}").as_bytes());
        pad4(v);
        v.extend_from_slice(data);
        pad4(v);
    }

    fn trailer(v: &mut Vec<u8>) {
        newc(v, "TRAILER!!!", 0, 1, b"");
    }

    fn files() -> FileList {
        FileList::from_header(&header_for(
            &[
                F {
                    path: "/d/a",
                    size: 5,
                    mode: 0o100644,
                    flags: 0,
                    inode: 1,
                },
                F {
                    path: "/d/b",
                    size: 5,
                    mode: 0o100644,
                    flags: 0,
                    inode: 1,
                },
                F {
                    path: "/d/c",
                    size: 3,
                    mode: 0o100644,
                    flags: 0,
                    inode: 2,
                },
                F {
                    path: "/d/dir",
                    size: 0,
                    mode: 0o40755,
                    flags: 0,
                    inode: 3,
                },
                F {
                    path: "/d/g",
                    size: 7,
                    mode: 0o100644,
                    flags: FILE_GHOST,
                    inode: 4,
                },
            ],
            false,
        ))
        .unwrap()
    }

    fn collect(data: &[u8], fl: &FileList) -> Result<Vec<(usize, Vec<u8>)>> {
        let mut r = CpioReader::new(data, fl);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf)
                .map_err(|e| Error::from_io("x", e))?;
            assert_eq!(buf.len() as u64, e.size);
            out.push((e.index, buf));
        }
        Ok(out)
    }

    fn good_archive() -> Vec<u8> {
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"ccc");
        newc(&mut v, "./d/dir", 0o40755, 2, b"");
        newc(&mut v, "./d/a", 0o100644, 2, b"");
        newc(&mut v, "./d/b", 0o100644, 2, b"hello");
        trailer(&mut v);
        v
    }

    /// Contents handed out as lent chunks and copies, as `sign` reads them, with entries placed
    /// so that one's first bytes straddle a chunk boundary and its end shares a chunk with the
    /// next header, and the next one's content starts exactly on a boundary: every entry's
    /// bytes come out exactly (a lent chunk running past its entry would add the next entry's),
    /// the span digest of each is its content's, and the payload's own digest and size hold.
    #[test]
    fn lent_content_never_crosses_an_entry() {
        use crate::payload::{PayloadExpectations, RawPayload, CHUNK};
        use crate::{Compressor, DigestStream, PayloadReader};
        use sha2::Digest;
        const HDR: usize = 116; // a newc header with a 5-byte name, padded
        let content = |seed: u8, n: usize| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(13) ^ seed).collect()
        };
        // x from 0; y's content from CHUNK - 20 to 4 CHUNK - HDR (its head straddles the first
        // boundary, the rest of that chunk is copied, the third chunk is lent whole, its end
        // shares the fourth with z's header); z's content from 4 CHUNK.
        let x = content(1, CHUNK - 2 * HDR - 20);
        let y = content(2, 3 * CHUNK - 96);
        let z = content(3, CHUNK + 64);
        let fl = FileList::from_header(&header_for(
            &[
                F {
                    path: "/d/x",
                    size: x.len() as u64,
                    mode: 0o100644,
                    flags: 0,
                    inode: 1,
                },
                F {
                    path: "/d/y",
                    size: y.len() as u64,
                    mode: 0o100644,
                    flags: 0,
                    inode: 2,
                },
                F {
                    path: "/d/z",
                    size: z.len() as u64,
                    mode: 0o100644,
                    flags: 0,
                    inode: 3,
                },
            ],
            false,
        ))
        .unwrap();
        let mut v = Vec::new();
        newc(&mut v, "./d/x", 0o100644, 1, &x);
        newc(&mut v, "./d/y", 0o100644, 1, &y);
        assert_eq!(v.len(), 4 * CHUNK - HDR);
        newc(&mut v, "./d/z", 0o100644, 1, &z);
        trailer(&mut v);

        let raw = RawPayload::new(
            std::io::Cursor::new(v.clone()),
            &[],
            &PayloadExpectations::default(),
        )
        .unwrap();
        let payload = PayloadReader::threaded(Compressor::Gzip, raw, Some(v.len() as u64))
            .unwrap()
            .with_uncompressed_digest(8, &hex::encode(sha2::Sha256::digest(&v)))
            .unwrap();
        let mut cpio = CpioReader::new(payload, &fl);
        let mut lent_per_entry = Vec::new();
        for want in [&x, &y, &z] {
            let e = cpio.next_entry().unwrap().unwrap();
            cpio.start_span_digest(8).unwrap();
            let mut got = Vec::new();
            let head = want.len().min(64);
            while got.len() < head {
                let more = head - got.len();
                assert!(cpio.append_content(&mut got, more).unwrap() > 0);
            }
            let mut lent = 0;
            while (got.len() as u64) < e.size {
                let left = (e.size - got.len() as u64).min(CHUNK as u64) as usize;
                if let Some(c) = cpio.lend_content(left).unwrap() {
                    assert!(c.len() <= left);
                    got.extend_from_slice(&c);
                    lent += 1;
                } else {
                    assert!(cpio.append_content(&mut got, left).unwrap() > 0);
                }
            }
            assert!(cpio.lend_content(CHUNK).unwrap().is_none(), "past the end");
            assert!(&got == want, "entry {} differs", e.index);
            assert_eq!(
                cpio.take_span_digest(),
                Some(DigestStream::of(8, want).unwrap())
            );
            lent_per_entry.push(lent);
        }
        // y holds the whole third chunk; nothing else covers a whole chunk of its own.
        assert_eq!(lent_per_entry, vec![0, 1, 0]);
        assert!(cpio.next_entry().unwrap().is_none());
        let summary = cpio.into_inner().finish().unwrap();
        assert!(summary.checked_uncompressed_digest && summary.checked_uncompressed_size);
    }

    #[test]
    fn newc_happy_path() {
        let fl = files();
        let got = collect(&good_archive(), &fl).unwrap();
        assert_eq!(
            got,
            vec![
                (2, b"ccc".to_vec()),
                (3, vec![]),
                (0, vec![]),
                (1, b"hello".to_vec())
            ]
        );
        // Partially read entries are skipped correctly.
        let data = good_archive();
        let mut r = CpioReader::new(&data[..], &fl);
        let mut n = 0;
        while let Some(_e) = r.next_entry().unwrap() {
            let mut one = [0u8; 1];
            let _ = r.read(&mut one).unwrap();
            n += 1;
        }
        assert_eq!(n, 4);
    }

    /// `append_content` yields what `read` does, in pieces as small as the reader's buffer,
    /// and reports an archive cut inside file data.
    #[test]
    fn append_content_matches_read() {
        let fl = files();
        let data = good_archive();
        let want = collect(&data, &fl).unwrap();
        let mut r = CpioReader::new(io::BufReader::with_capacity(3, &data[..]), &fl);
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut buf = Vec::new();
            while r.append_content(&mut buf, 2).unwrap() > 0 {}
            got.push((e.index, buf));
        }
        assert_eq!(got, want);

        let cut = &data[..data.windows(5).position(|w| w == b"hello").unwrap() + 2];
        let mut r = CpioReader::new(cut, &fl);
        let e = loop {
            let entry = r.next_entry().unwrap().unwrap();
            let mut buf = Vec::new();
            match (0..10).try_for_each(|_| r.append_content(&mut buf, 100).map(|_| ())) {
                Ok(()) => assert_eq!(buf.len() as u64, entry.size),
                Err(e) => break e,
            }
        };
        assert!(
            e.to_string().contains("truncated archive inside file data"),
            "{e}"
        );
    }

    #[test]
    fn newc_errors() {
        let fl = files();
        // entry not in header
        let mut v = good_archive();
        let mut extra = Vec::new();
        newc(&mut extra, "./d/zzz", 0o100644, 1, b"x");
        v.splice(0..0, extra);
        assert!(matches!(collect(&v, &fl), Err(Error::NotInHeader { .. })));
        // missing file
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"ccc");
        trailer(&mut v);
        assert!(matches!(
            collect(&v, &fl),
            Err(Error::MissingFromPayload { .. })
        ));
        // size mismatch
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"cccc");
        assert!(matches!(
            collect(&v, &fl),
            Err(Error::FileSizeMismatch { .. })
        ));
        // ghost in payload
        let mut v = Vec::new();
        newc(&mut v, "./d/g", 0o100644, 1, b"ggggggg");
        assert!(matches!(
            collect(&v, &fl),
            Err(Error::GhostInPayload { .. })
        ));
        // duplicate
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"ccc");
        newc(&mut v, "d/c", 0o100644, 1, b"ccc");
        assert!(matches!(
            collect(&v, &fl),
            Err(Error::DuplicateEntry { .. })
        ));
        // bad magic
        let mut v = good_archive();
        v[5] = b'9';
        assert!(matches!(collect(&v, &fl), Err(Error::Cpio { .. })));
        // non-hex field
        let mut v = good_archive();
        v[10] = b'g';
        assert!(matches!(collect(&v, &fl), Err(Error::Cpio { .. })));
        // absurd namesize
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"ccc");
        v[6 + 88..6 + 96].copy_from_slice(b"7fffffff");
        assert!(matches!(collect(&v, &fl), Err(Error::Cpio { .. })));
        // truncated at every position
        let v = good_archive();
        // (the trailer's own 3 padding bytes are never read, as in rpm)
        for cut in 0..v.len() - 3 {
            assert!(collect(&v[..cut], &fl).is_err(), "cut at {cut} accepted");
        }
        // hardlink data twice
        let mut v = Vec::new();
        newc(&mut v, "./d/a", 0o100644, 2, b"hello");
        newc(&mut v, "./d/b", 0o100644, 2, b"hello");
        assert!(matches!(collect(&v, &fl), Err(Error::Cpio { .. })));
        // hardlink set without data
        let mut v = Vec::new();
        newc(&mut v, "./d/c", 0o100644, 1, b"ccc");
        newc(&mut v, "./d/dir", 0o40755, 2, b"");
        newc(&mut v, "./d/a", 0o100644, 2, b"");
        newc(&mut v, "./d/b", 0o100644, 2, b"");
        trailer(&mut v);
        assert!(matches!(
            collect(&v, &fl),
            Err(Error::MissingFromPayload { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// A good archive with bytes overwritten (header fields turn into any hex or non-hex
        /// value) is an error or a valid archive, never a panic; likewise for the stripped
        /// form, whose indices come straight from the input.
        #[test]
        fn corrupted_archives_never_panic(
            stripped_form in proptest::prelude::any::<bool>(),
            edits in proptest::collection::vec(
                (
                    proptest::prelude::any::<proptest::sample::Index>(),
                    proptest::sample::select(b"0123456789abcdefABCDEFXxg\0\xff".to_vec()),
                ),
                1..8,
            ),
        ) {
            let (mut v, fl) = if stripped_form {
                let mut v = Vec::new();
                stripped(&mut v, 2, b"ccc");
                stripped(&mut v, 3, b"");
                stripped(&mut v, 0, b"");
                stripped(&mut v, 1, b"hello");
                trailer(&mut v);
                (v, files())
            } else {
                (good_archive(), files())
            };
            let n = v.len();
            for (at, byte) in edits {
                v[at.index(n)] = byte;
            }
            let _ = collect(&v, &fl);
        }
    }

    #[test]
    fn stripped_entries() {
        let fl = FileList::from_header(&header_for(
            &[
                F {
                    path: "/big/a",
                    size: 6,
                    mode: 0o100644,
                    flags: 0,
                    inode: 1,
                },
                F {
                    path: "/big/b",
                    size: 6,
                    mode: 0o100644,
                    flags: 0,
                    inode: 1,
                },
                F {
                    path: "/big/c",
                    size: 3,
                    mode: 0o100644,
                    flags: 0,
                    inode: 2,
                },
                F {
                    path: "/big/d",
                    size: 0,
                    mode: 0o40755,
                    flags: 0,
                    inode: 3,
                },
            ],
            true,
        ))
        .unwrap();
        assert!(fl.has_long_sizes());
        let mut v = Vec::new();
        stripped(&mut v, 2, b"ccc");
        stripped(&mut v, 3, b"");
        stripped(&mut v, 0, b"");
        stripped(&mut v, 1, b"abcdef");
        trailer(&mut v);
        let got = collect(&v, &fl).unwrap();
        assert_eq!(
            got,
            vec![
                (2, b"ccc".to_vec()),
                (3, vec![]),
                (0, vec![]),
                (1, b"abcdef".to_vec())
            ]
        );
        // ffffffff also ends the archive
        let mut w = v.clone();
        let t = w.len() - 124;
        w.truncate(t);
        w.extend_from_slice(b"07070Xffffffff");
        pad4(&mut w);
        assert_eq!(collect(&w, &fl).unwrap().len(), 4);
        // index out of range
        let mut w = Vec::new();
        stripped(&mut w, 9, b"");
        assert!(matches!(collect(&w, &fl), Err(Error::Cpio { .. })));
        // missing entry
        let mut w = Vec::new();
        stripped(&mut w, 2, b"ccc");
        trailer(&mut w);
        assert!(matches!(
            collect(&w, &fl),
            Err(Error::MissingFromPayload { .. })
        ));
        // truncated data
        let mut w = Vec::new();
        stripped(&mut w, 1, b"abcdef");
        assert!(collect(&w[..w.len() - 3], &fl).is_err());
    }

    /// Timing, not a check (`--ignored --nocapture`): 100k hardlink pairs, each pair's data on
    /// its second member as rpmbuild writes it. Finding a member's set must not cost a scan of
    /// all sets per entry. Numbers in docs/benchmarks.md.
    #[test]
    #[ignore]
    fn hardlink_pairs_100k_timing() {
        const PAIRS: u32 = 100_000;
        let names: Vec<String> = (0..2 * PAIRS).map(|i| format!("/d/f{i}")).collect();
        let specs: Vec<F> = names
            .iter()
            .enumerate()
            .map(|(i, path)| F {
                path,
                size: 1,
                mode: 0o100644,
                flags: 0,
                inode: i as u32 / 2 + 1,
            })
            .collect();
        let fl = FileList::from_header(&header_for(&specs, false));
        let fl = fl.unwrap();
        let mut v = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let data: &[u8] = if i % 2 == 1 { b"x" } else { b"" };
            newc(&mut v, &format!(".{name}"), 0o100644, 2, data);
        }
        trailer(&mut v);
        let start = std::time::Instant::now();
        let got = collect(&v, &fl).unwrap();
        let took = start.elapsed();
        assert_eq!(got.len(), 2 * PAIRS as usize);
        eprintln!("{PAIRS} hardlink pairs: cpio read in {took:.2?}");
    }
}
