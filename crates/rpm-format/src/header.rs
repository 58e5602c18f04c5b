//! The RPM header codec: index entries plus a data store, with rpm's own sanity limits.
//!
//! Every check mirrors rpm 4.18's `hdrblobRead`/`hdrblobInit`/`hdrblobVerifyRegion`/
//! `hdrblobVerifyInfo`, so that whatever rpm refuses we refuse too, and a header we accept can be
//! indexed without further bounds worries. The raw bytes are kept because digests cover them and
//! copies must be byte-identical.

use std::collections::HashMap;
use std::io::Read;

use crate::error::{Error, Result};

/// The 8 bytes in front of every header in a package file.
pub const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// Region tags: the signature header and the main (immutable) header, plus the legacy image tag
/// old signature headers carry in their trailer.
pub const TAG_HEADERIMAGE: u32 = 61;
pub const TAG_HEADERSIGNATURES: u32 = 62;
pub const TAG_HEADERIMMUTABLE: u32 = 63;
/// Tags below this number are only legal as a region entry (rpm: `HEADER_I18NTABLE`).
const MIN_REGULAR_TAG: u32 = 100;

/// rpm's limits. The signature header is small by design; the main header is bounded by
/// `HEADER_DATA_MAX` / `headerMaxbytes` (256 MiB).
pub const SIG_MAX_IL: u32 = 32;
pub const SIG_MAX_DL: u32 = 64 * 1024 * 1024;
pub const MAIN_MAX_IL: u32 = 0xffff;
pub const MAIN_MAX_DL: u32 = 0x0fff_ffff;
const HEADER_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Cap on element counts of non-BIN types (rpm `HEADER_ARRAY_MAX`).
pub const MAX_ARRAY_COUNT: u32 = 0xf_ffff;
const REGION_TAG_COUNT: u32 = 16;

/// Header data types. The discriminants are the on-disk type numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    Null = 0,
    Char = 1,
    Int8 = 2,
    Int16 = 3,
    Int32 = 4,
    Int64 = 5,
    String = 6,
    Bin = 7,
    StringArray = 8,
    I18nString = 9,
}

impl TagType {
    pub fn from_u32(v: u32) -> Option<TagType> {
        Some(match v {
            0 => TagType::Null,
            1 => TagType::Char,
            2 => TagType::Int8,
            3 => TagType::Int16,
            4 => TagType::Int32,
            5 => TagType::Int64,
            6 => TagType::String,
            7 => TagType::Bin,
            8 => TagType::StringArray,
            9 => TagType::I18nString,
            _ => return None,
        })
    }

    /// Alignment of the data relative to the data-store start.
    pub fn alignment(self) -> usize {
        match self {
            TagType::Int16 => 2,
            TagType::Int32 => 4,
            TagType::Int64 => 8,
            _ => 1,
        }
    }

    /// Fixed element size, `None` for the NUL-terminated string types.
    pub fn element_size(self) -> Option<usize> {
        match self {
            TagType::Null => Some(0),
            TagType::Char | TagType::Int8 | TagType::Bin => Some(1),
            TagType::Int16 => Some(2),
            TagType::Int32 => Some(4),
            TagType::Int64 => Some(8),
            TagType::String | TagType::StringArray | TagType::I18nString => None,
        }
    }
}

/// Which header is being read decides the limits and the expected region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// Signature header of a package: region 62 covering everything, il ≤ 32, dl ≤ 64 MiB.
    Signature,
    /// Main header of a package: region 63 covering everything, il ≤ 65535, dl < 256 MiB.
    Main,
    /// A header blob as stored in the rpmdb: region optional (auto-detected), dribbles allowed,
    /// main-header limits.
    Database,
}

impl HeaderKind {
    fn limits(self) -> (u32, u32) {
        match self {
            HeaderKind::Signature => (SIG_MAX_IL, SIG_MAX_DL),
            _ => (MAIN_MAX_IL, MAIN_MAX_DL),
        }
    }
    fn name(self) -> &'static str {
        match self {
            HeaderKind::Signature => "signature header",
            HeaderKind::Main => "main header",
            HeaderKind::Database => "header blob",
        }
    }
}

/// One index entry with its validated data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub tag: u32,
    pub ty: TagType,
    /// Offset into the data store (negative offsets only occur in region trailers).
    pub offset: i32,
    pub count: u32,
    /// Byte length of the data, computed and bounds-checked at parse time.
    pub len: usize,
}

/// Region facts: which tag, how many index entries (`ril`) and data bytes (`rdl`) it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub tag: u32,
    pub ril: usize,
    pub rdl: usize,
}

/// A parsed, validated header that keeps its on-disk bytes.
#[derive(Debug, Clone)]
pub struct Header {
    /// Bytes as found: magic (if any) + il + dl + index + store.
    raw: Vec<u8>,
    /// 8 when `raw` starts with the magic, 0 for rpmdb blobs.
    magic_len: usize,
    il: usize,
    dl: usize,
    /// All index entries in on-disk order, the region entry included.
    entries: Vec<IndexEntry>,
    region: Option<Region>,
    /// Effective entry per tag: later (dribble) entries override region entries.
    by_tag: HashMap<u32, usize>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn bad(kind: HeaderKind, msg: String) -> Error {
    Error::BadHeader {
        what: kind.name(),
        msg,
    }
}

/// Checks il/dl against the limits before anything is allocated.
fn check_lengths(kind: HeaderKind, il: u32, dl: u32) -> Result<()> {
    let (il_max, dl_max) = kind.limits();
    if il > il_max {
        return Err(bad(
            kind,
            format!("index entry count {il} out of range (max {il_max})"),
        ));
    }
    if dl > dl_max {
        return Err(bad(
            kind,
            format!("data length {dl} out of range (max {dl_max})"),
        ));
    }
    let total = 8 + 16 * il as u64 + dl as u64;
    if total >= HEADER_MAX_BYTES {
        return Err(bad(kind, format!("header size {total} too large")));
    }
    Ok(())
}

/// Length of the data of one entry, bounded by the end of the store (rpm `dataLength`).
fn data_len(ty: TagType, count: u32, store: &[u8], offset: usize) -> Option<usize> {
    let avail = store.get(offset..)?;
    match ty {
        TagType::String | TagType::StringArray | TagType::I18nString => {
            if ty == TagType::String && count != 1 {
                return None;
            }
            let mut pos = 0usize;
            for _ in 0..count {
                let nul = avail.get(pos..)?.iter().position(|&b| b == 0)?;
                pos += nul + 1;
            }
            Some(pos)
        }
        _ => {
            let size = ty.element_size()?;
            let len = size.checked_mul(count as usize)?;
            if len > avail.len() {
                return None;
            }
            Some(len)
        }
    }
}

impl Header {
    /// Parses a package header (starting with the 8-byte magic) from a byte slice. Returns the
    /// header and the number of bytes it occupies (without the signature header's padding).
    pub fn parse(bytes: &[u8], kind: HeaderKind) -> Result<(Header, usize)> {
        if bytes.len() < 16 {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: 16,
                got: bytes.len() as u64,
            });
        }
        if bytes[..8] != HEADER_MAGIC {
            return Err(bad(kind, "bad header magic".into()));
        }
        let il = be32(bytes, 8);
        let dl = be32(bytes, 12);
        check_lengths(kind, il, dl)?;
        let total = 16 + 16 * il as usize + dl as usize;
        if bytes.len() < total {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: total as u64,
                got: bytes.len() as u64,
            });
        }
        let h = Header::from_raw(bytes[..total].to_vec(), 8, kind)?;
        Ok((h, total))
    }

    /// Reads a package header (magic first) from a stream, reading exactly its size and no
    /// more; the signature header's padding is left to the caller.
    pub fn read<R: Read>(r: &mut R, kind: HeaderKind) -> Result<Header> {
        let mut intro = [0u8; 16];
        read_exact_or(r, &mut intro, kind.name())?;
        if intro[..8] != HEADER_MAGIC {
            return Err(bad(kind, "bad header magic".into()));
        }
        let il = be32(&intro, 8);
        let dl = be32(&intro, 12);
        check_lengths(kind, il, dl)?;
        let rest = 16 * il as usize + dl as usize;
        // Grow as data actually arrives: a truncated file claiming a 255 MiB header must not
        // cost 255 MiB.
        let mut raw = Vec::with_capacity(16 + rest.min(1 << 20));
        raw.extend_from_slice(&intro);
        let got = r
            .take(rest as u64)
            .read_to_end(&mut raw)
            .map_err(|e| Error::Io {
                what: kind.name(),
                source: e,
            })?;
        if got != rest {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: (16 + rest) as u64,
                got: (16 + got) as u64,
            });
        }
        Header::from_raw(raw, 8, kind)
    }

    /// Parses a header blob as rpm stores it in its database (sqlite `Packages.blob`, ndb,
    /// bdb): no magic, starts with il and dl; the region is optional and dribbles (entries after
    /// the region, e.g. install-time tags and merged signature tags) override region entries.
    pub fn from_rpmdb_blob(blob: &[u8]) -> Result<Header> {
        let kind = HeaderKind::Database;
        if blob.len() < 8 {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: 8,
                got: blob.len() as u64,
            });
        }
        let il = be32(blob, 0);
        let dl = be32(blob, 4);
        check_lengths(kind, il, dl)?;
        let total = 8 + 16 * il as usize + dl as usize;
        if blob.len() != total {
            return Err(bad(
                kind,
                format!(
                    "blob size {} does not match 8 + 16 * il({il}) + dl({dl})",
                    blob.len()
                ),
            ));
        }
        Header::from_raw(blob.to_vec(), 0, kind)
    }

    fn from_raw(raw: Vec<u8>, magic_len: usize, kind: HeaderKind) -> Result<Header> {
        let il = be32(&raw, magic_len) as usize;
        let dl = be32(&raw, magic_len + 4) as usize;
        let index_start = magic_len + 8;
        let store_start = index_start + 16 * il;
        debug_assert_eq!(raw.len(), store_start + dl);
        let mut raw_entries = Vec::with_capacity(il);
        for i in 0..il {
            let at = index_start + 16 * i;
            raw_entries.push((
                be32(&raw, at),
                be32(&raw, at + 4),
                be32(&raw, at + 8) as i32,
                be32(&raw, at + 12),
            ));
        }
        let store = &raw[store_start..];

        // Region (hdrblobVerifyRegion).
        let mut region = None;
        if il < 1 {
            if kind != HeaderKind::Database {
                return Err(bad(kind, "region: no tags".into()));
            }
        } else {
            let (tag, ty, offset, count) = raw_entries[0];
            let expected = match kind {
                HeaderKind::Signature => Some(TAG_HEADERSIGNATURES),
                HeaderKind::Main => Some(TAG_HEADERIMMUTABLE),
                HeaderKind::Database => None,
            };
            let is_region = match expected {
                Some(t) => tag == t,
                None => matches!(
                    tag,
                    TAG_HEADERSIGNATURES | TAG_HEADERIMMUTABLE | TAG_HEADERIMAGE
                ),
            };
            if is_region {
                if ty != TagType::Bin as u32 || count != REGION_TAG_COUNT {
                    return Err(bad(
                        kind,
                        format!(
                            "region tag: BAD, tag {tag} type {ty} offset {offset} count {count}"
                        ),
                    ));
                }
                if offset < 0 || offset as i64 + 16 > dl as i64 {
                    return Err(bad(
                        kind,
                        format!("region offset {offset} outside the data store ({dl} bytes)"),
                    ));
                }
                let off = offset as usize;
                let t_tag = be32(store, off);
                let t_ty = be32(store, off + 4);
                let t_off = (be32(store, off + 8) as i32).wrapping_neg();
                let t_count = be32(store, off + 12);
                let t_tag_fixed = if kind == HeaderKind::Signature && t_tag == TAG_HEADERIMAGE {
                    TAG_HEADERSIGNATURES
                } else {
                    t_tag
                };
                if t_tag_fixed != tag || t_ty != TagType::Bin as u32 || t_count != REGION_TAG_COUNT
                {
                    return Err(bad(
                        kind,
                        format!(
                            "region trailer: BAD, tag {t_tag} type {t_ty} offset {t_off} count {t_count}"
                        ),
                    ));
                }
                let rdl = off + 16;
                if t_off < 0 || t_off % 16 != 0 || (t_off / 16) as usize > il {
                    return Err(bad(
                        kind,
                        format!("region size: BAD, trailer offset {t_off}, il {il}"),
                    ));
                }
                let ril = (t_off / 16) as usize;
                if ril < 1 {
                    return Err(bad(kind, "region covers no entries".into()));
                }
                if kind != HeaderKind::Database && (ril != il || rdl != dl) {
                    return Err(bad(
                        kind,
                        format!("region: tag number mismatch il {il} ril {ril} dl {dl} rdl {rdl}"),
                    ));
                }
                region = Some(Region { tag, ril, rdl });
            } else if kind != HeaderKind::Database {
                return Err(bad(
                    kind,
                    format!(
                        "no region tag {} (not a v4 package header)",
                        expected.unwrap_or(0)
                    ),
                ));
            }
        }

        // Remaining entries (hdrblobVerifyInfo).
        let mut entries = Vec::with_capacity(il);
        let first = if let Some(r) = region {
            let (tag, _, offset, count) = raw_entries[0];
            entries.push(IndexEntry {
                tag,
                ty: TagType::Bin,
                offset,
                count,
                len: 16,
            });
            let _ = r;
            1
        } else {
            0
        };
        let mut end: i64 = 0;
        for (i, &(tag, ty, offset, count)) in raw_entries.iter().enumerate().skip(first) {
            let fail = |why: &str| {
                bad(
                    kind,
                    format!(
                        "tag[{i}]: BAD ({why}), tag {tag} type {ty} offset {offset} count {count}"
                    ),
                )
            };
            if end > offset as i64 {
                return Err(fail("data overlaps the previous entry"));
            }
            if tag < MIN_REGULAR_TAG {
                return Err(fail("tag number below 100"));
            }
            let Some(tty) = TagType::from_u32(ty) else {
                return Err(fail("unknown type"));
            };
            if count < 1 || count as usize > dl {
                return Err(fail("count out of range"));
            }
            if offset < 0 || offset as usize > dl {
                return Err(fail("offset outside the data store"));
            }
            let off = offset as usize;
            if off % tty.alignment() != 0 {
                return Err(fail("misaligned data"));
            }
            if tty != TagType::Bin && count > MAX_ARRAY_COUNT {
                return Err(fail("array count too large"));
            }
            let Some(len) = data_len(tty, count, store, off) else {
                return Err(fail("data does not fit in the store"));
            };
            if len == 0 {
                return Err(fail("empty data"));
            }
            end = (off + len) as i64;
            if let Some(r) = region {
                if end > (r.rdl - 16) as i64 && off < r.rdl {
                    return Err(fail("data overlaps the region trailer"));
                }
            }
            entries.push(IndexEntry {
                tag,
                ty: tty,
                offset,
                count,
                len,
            });
        }
        let mut by_tag = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate().skip(first) {
            by_tag.insert(e.tag, i);
        }
        Ok(Header {
            raw,
            magic_len,
            il,
            dl,
            entries,
            region,
            by_tag,
        })
    }

    /// The header bytes exactly as read (magic included for package headers).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// On-disk size (magic + intro + index + store), without any padding.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn index_count(&self) -> usize {
        self.il
    }

    pub fn data_len(&self) -> usize {
        self.dl
    }

    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// All index entries in on-disk order, the region entry first when there is one.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Entries that carry data (region entry excluded), sorted by tag: the effective tag set,
    /// dribbles replacing region entries with the same tag.
    pub fn tags(&self) -> Vec<IndexEntry> {
        let mut v: Vec<IndexEntry> = self.by_tag.values().map(|&i| self.entries[i]).collect();
        v.sort_by_key(|e| e.tag);
        v
    }

    fn store(&self) -> &[u8] {
        &self.raw[self.magic_len + 8 + 16 * self.il..]
    }

    pub fn entry(&self, tag: u32) -> Option<&IndexEntry> {
        self.by_tag.get(&tag).map(|&i| &self.entries[i])
    }

    pub fn contains(&self, tag: u32) -> bool {
        self.by_tag.contains_key(&tag)
    }

    /// The raw data bytes of an entry (validated at parse time).
    pub fn entry_data(&self, e: &IndexEntry) -> &[u8] {
        let off = e.offset as usize;
        &self.store()[off..off + e.len]
    }

    fn typed(&self, tag: u32, want: &[TagType]) -> Result<Option<(&IndexEntry, &[u8])>> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !want.contains(&e.ty) {
            return Err(Error::TagType {
                tag,
                found: e.ty as u32,
                expected: want[0] as u32,
            });
        }
        Ok(Some((e, self.entry_data(e))))
    }

    pub fn get_u16s(&self, tag: u32) -> Result<Option<Vec<u16>>> {
        Ok(self.typed(tag, &[TagType::Int16])?.map(|(_, d)| {
            d.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect()
        }))
    }

    pub fn get_u32s(&self, tag: u32) -> Result<Option<Vec<u32>>> {
        Ok(self
            .typed(tag, &[TagType::Int32])?
            .map(|(_, d)| d.chunks_exact(4).map(|c| be32(c, 0)).collect()))
    }

    pub fn get_u64s(&self, tag: u32) -> Result<Option<Vec<u64>>> {
        Ok(self.typed(tag, &[TagType::Int64])?.map(|(_, d)| {
            d.chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        }))
    }

    /// First element of an INT32 tag.
    pub fn get_u32(&self, tag: u32) -> Result<Option<u32>> {
        Ok(self.get_u32s(tag)?.and_then(|v| v.first().copied()))
    }

    /// First element of an INT64 tag.
    pub fn get_u64(&self, tag: u32) -> Result<Option<u64>> {
        Ok(self.get_u64s(tag)?.and_then(|v| v.first().copied()))
    }

    /// Raw bytes of a STRING tag (without the NUL). I18N strings give their first (C locale)
    /// value, as rpm does without a locale.
    pub fn get_string_bytes(&self, tag: u32) -> Result<Option<&[u8]>> {
        Ok(self
            .typed(
                tag,
                &[TagType::String, TagType::I18nString, TagType::StringArray],
            )?
            .map(|(_, d)| {
                let n = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                &d[..n]
            }))
    }

    /// A STRING tag as text (lossy for non-UTF-8 bytes).
    pub fn get_string(&self, tag: u32) -> Result<Option<String>> {
        Ok(self
            .get_string_bytes(tag)?
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    /// A STRING_ARRAY (or I18N) tag as byte strings.
    pub fn get_string_array_bytes(&self, tag: u32) -> Result<Option<Vec<&[u8]>>> {
        Ok(self
            .typed(tag, &[TagType::StringArray, TagType::I18nString])?
            .map(|(e, d)| {
                let mut v: Vec<&[u8]> = d.split(|&b| b == 0).collect();
                v.truncate(e.count as usize);
                v
            }))
    }

    pub fn get_string_array(&self, tag: u32) -> Result<Option<Vec<String>>> {
        Ok(self.get_string_array_bytes(tag)?.map(|v| {
            v.into_iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
    }

    /// BIN (or CHAR/INT8) data.
    pub fn get_bin(&self, tag: u32) -> Result<Option<&[u8]>> {
        Ok(self
            .typed(tag, &[TagType::Bin, TagType::Char, TagType::Int8])?
            .map(|(_, d)| d))
    }
}

pub(crate) fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Error::Truncated {
                    what,
                    needed: buf.len() as u64,
                    got: got as u64,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io { what, source: e }),
        }
    }
    Ok(())
}

/// An owned entry for building headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEntry {
    pub tag: u32,
    pub ty: TagType,
    pub count: u32,
    /// Data exactly as stored on disk (big-endian integers, NUL-terminated strings).
    pub data: Vec<u8>,
}

impl OwnedEntry {
    pub fn u32s(tag: u32, vals: &[u32]) -> OwnedEntry {
        OwnedEntry {
            tag,
            ty: TagType::Int32,
            count: vals.len() as u32,
            data: vals.iter().flat_map(|v| v.to_be_bytes()).collect(),
        }
    }
    pub fn u64s(tag: u32, vals: &[u64]) -> OwnedEntry {
        OwnedEntry {
            tag,
            ty: TagType::Int64,
            count: vals.len() as u32,
            data: vals.iter().flat_map(|v| v.to_be_bytes()).collect(),
        }
    }
    pub fn string(tag: u32, s: &str) -> OwnedEntry {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        OwnedEntry {
            tag,
            ty: TagType::String,
            count: 1,
            data,
        }
    }
    pub fn string_array<S: AsRef<[u8]>>(tag: u32, items: &[S]) -> OwnedEntry {
        let mut data = Vec::new();
        for s in items {
            data.extend_from_slice(s.as_ref());
            data.push(0);
        }
        OwnedEntry {
            tag,
            ty: TagType::StringArray,
            count: items.len() as u32,
            data,
        }
    }
    pub fn bin(tag: u32, bytes: &[u8]) -> OwnedEntry {
        OwnedEntry {
            tag,
            ty: TagType::Bin,
            count: bytes.len() as u32,
            data: bytes.to_vec(),
        }
    }
}

/// A mutable set of tags, serialized the way rpm's `headerExport` of a region-less header and
/// `headerReload` do: entries and data in ascending tag order, each datum aligned for its type,
/// a fresh region entry first and its trailer as the last 16 bytes of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBuilder {
    entries: Vec<OwnedEntry>,
}

impl HeaderBuilder {
    pub fn new() -> HeaderBuilder {
        HeaderBuilder::default()
    }

    /// Copies the effective tags of a parsed header, dropping its region (rpm's
    /// `unloadImmutableRegion`).
    pub fn from_header(h: &Header) -> HeaderBuilder {
        let entries = h
            .tags()
            .iter()
            .map(|e| OwnedEntry {
                tag: e.tag,
                ty: e.ty,
                count: e.count,
                data: h.entry_data(e).to_vec(),
            })
            .collect();
        HeaderBuilder { entries }
    }

    /// Adds or replaces a tag.
    pub fn put(&mut self, e: OwnedEntry) {
        self.remove(e.tag);
        let pos = self.entries.partition_point(|x| x.tag < e.tag);
        self.entries.insert(pos, e);
    }

    pub fn remove(&mut self, tag: u32) -> Option<OwnedEntry> {
        let pos = self.entries.iter().position(|x| x.tag == tag)?;
        Some(self.entries.remove(pos))
    }

    pub fn get(&self, tag: u32) -> Option<&OwnedEntry> {
        self.entries.iter().find(|x| x.tag == tag)
    }

    pub fn entries(&self) -> &[OwnedEntry] {
        &self.entries
    }

    /// rpm's `headerSizeof(h, HEADER_MAGIC_YES)` of a region-less header: magic + il + dl, then
    /// per entry (ascending tag) alignment padding + 16 index bytes + data.
    pub fn size_without_region(&self) -> usize {
        let mut size = 16usize;
        for e in &self.entries {
            size += align_pad(size, e.ty);
            size += 16 + e.data.len();
        }
        size
    }

    /// Serializes with a region entry (tag `region_tag`), magic included, no padding.
    pub fn serialize(&self, region_tag: u32) -> Vec<u8> {
        let mut store = Vec::new();
        let mut index = Vec::with_capacity(16 * (self.entries.len() + 1));
        for e in &self.entries {
            let pad = align_pad(store.len(), e.ty);
            store.resize(store.len() + pad, 0);
            index.push((e.tag, e.ty as u32, store.len() as u32, e.count));
            store.extend_from_slice(&e.data);
        }
        let il = self.entries.len() + 1;
        let trailer_off = store.len() as u32;
        store.extend_from_slice(&region_tag.to_be_bytes());
        store.extend_from_slice(&(TagType::Bin as u32).to_be_bytes());
        store.extend_from_slice(&(-(16 * il as i32)).to_be_bytes());
        store.extend_from_slice(&16u32.to_be_bytes());

        let mut out = Vec::with_capacity(16 + 16 * il + store.len());
        out.extend_from_slice(&HEADER_MAGIC);
        out.extend_from_slice(&(il as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        for (tag, ty, off, count) in
            std::iter::once((region_tag, TagType::Bin as u32, trailer_off, 16)).chain(index)
        {
            for v in [tag, ty, off, count] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&store);
        out
    }
}

fn align_pad(pos: usize, ty: TagType) -> usize {
    let a = ty.alignment();
    (a - pos % a) % a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeaderBuilder {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(1000, "hello"));
        b.put(OwnedEntry::u32s(1001, &[1, 2, 3]));
        b.put(OwnedEntry::u64s(1002, &[u64::MAX]));
        b.put(OwnedEntry {
            tag: 1003,
            ty: TagType::Int16,
            count: 2,
            data: vec![0, 1, 0, 2],
        });
        b.put(OwnedEntry::string_array(1004, &["a", "bc", ""]));
        b.put(OwnedEntry::bin(1005, &[9, 8, 7]));
        b
    }

    #[test]
    fn round_trip_and_typed_access() {
        let b = sample();
        let bytes = b.serialize(TAG_HEADERIMMUTABLE);
        let (h, used) = Header::parse(&bytes, HeaderKind::Main).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(h.raw(), &bytes[..]);
        assert_eq!(h.get_string(1000).unwrap().unwrap(), "hello");
        assert_eq!(h.get_u32s(1001).unwrap().unwrap(), vec![1, 2, 3]);
        assert_eq!(h.get_u64(1002).unwrap().unwrap(), u64::MAX);
        assert_eq!(h.get_u16s(1003).unwrap().unwrap(), vec![1, 2]);
        assert_eq!(
            h.get_string_array(1004).unwrap().unwrap(),
            vec!["a", "bc", ""]
        );
        assert_eq!(h.get_bin(1005).unwrap().unwrap(), &[9, 8, 7]);
        assert!(h.get_u32s(1000).is_err(), "type mismatch must be an error");
        assert_eq!(h.get_u32s(4242).unwrap(), None);
        // Builder from the parsed header reproduces the same bytes.
        assert_eq!(
            HeaderBuilder::from_header(&h).serialize(TAG_HEADERIMMUTABLE),
            bytes
        );
        // size formula = on-disk size minus the region's 32 bytes.
        assert_eq!(b.size_without_region() + 32, bytes.len());
        // Streaming read gives the same.
        let mut cur = std::io::Cursor::new(&bytes);
        let h2 = Header::read(&mut cur, HeaderKind::Main).unwrap();
        assert_eq!(h2.raw(), h.raw());
        // Wrong kind: the region tag differs.
        assert!(Header::parse(&bytes, HeaderKind::Signature).is_err());
    }

    #[test]
    fn alignment_is_relative_to_store() {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(1000, "ab")); // 3 bytes
        b.put(OwnedEntry::u64s(1001, &[7]));
        let bytes = b.serialize(TAG_HEADERIMMUTABLE);
        let (h, _) = Header::parse(&bytes, HeaderKind::Main).unwrap();
        assert_eq!(h.entry(1001).unwrap().offset, 8);
        assert_eq!(b.size_without_region(), 16 + 16 + 3 + 5 + 16 + 8);
    }

    fn set_index(bytes: &mut [u8], i: usize, field: usize, v: u32) {
        let at = 16 + 16 * i + 4 * field;
        bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn expect_err(bytes: &[u8], kind: HeaderKind, needle: &str) {
        match Header::parse(bytes, kind) {
            Ok(_) => panic!("accepted bad header, expected {needle}"),
            Err(e) => {
                let s = e.to_string();
                assert!(
                    s.contains(needle),
                    "error {s:?} does not mention {needle:?}"
                );
            }
        }
    }

    #[test]
    fn limit_violations() {
        let good = sample().serialize(TAG_HEADERIMMUTABLE);
        // il too large for signature header
        let mut b = good.clone();
        b[8..12].copy_from_slice(&33u32.to_be_bytes());
        expect_err(&b, HeaderKind::Signature, "index entry count 33");
        // il absurd for main
        b[8..12].copy_from_slice(&0x10000u32.to_be_bytes());
        expect_err(&b, HeaderKind::Main, "index entry count");
        // dl absurd
        let mut b = good.clone();
        b[12..16].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        expect_err(&b, HeaderKind::Main, "data length");
        let mut b = good.clone();
        b[12..16].copy_from_slice(&(64 * 1024 * 1024 + 1u32).to_be_bytes());
        expect_err(&b, HeaderKind::Signature, "data length");
        // truncated
        expect_err(&good[..good.len() - 1], HeaderKind::Main, "truncated");
        expect_err(&good[..10], HeaderKind::Main, "truncated");
        // bad magic
        let mut b = good.clone();
        b[0] = 0;
        expect_err(&b, HeaderKind::Main, "magic");
        // streaming read must not allocate from a huge dl: it errors before reading
        let mut b = good.clone();
        b[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::read(&mut &b[..], HeaderKind::Main).is_err());
    }

    #[test]
    fn entry_violations() {
        let good = sample().serialize(TAG_HEADERIMMUTABLE);
        let (h, _) = Header::parse(&good, HeaderKind::Main).unwrap();
        let dl = h.data_len() as u32;
        // index 2 = tag 1001 INT32 at some offset; misalign it
        let off1001 = h.entry(1001).unwrap().offset as u32;
        let mut b = good.clone();
        set_index(&mut b, 2, 2, off1001 + 1);
        expect_err(&b, HeaderKind::Main, "");
        // offset outside the store
        let mut b = good.clone();
        set_index(&mut b, 6, 2, dl + 8);
        expect_err(&b, HeaderKind::Main, "outside the data store");
        // count too large for the store
        let mut b = good.clone();
        set_index(&mut b, 2, 3, 1000);
        expect_err(&b, HeaderKind::Main, "");
        // overlap: tag 1005 (BIN) pointing at 1004's data
        let off1004 = h.entry(1004).unwrap().offset as u32;
        let mut b = good.clone();
        set_index(&mut b, 6, 2, off1004);
        expect_err(&b, HeaderKind::Main, "overlaps");
        // tag < 100 outside the region
        let mut b = good.clone();
        set_index(&mut b, 1, 0, 50);
        expect_err(&b, HeaderKind::Main, "below 100");
        // unknown type
        let mut b = good.clone();
        set_index(&mut b, 1, 1, 10);
        expect_err(&b, HeaderKind::Main, "unknown type");
        // STRING with count 2
        let mut b = good.clone();
        set_index(&mut b, 1, 3, 2);
        expect_err(&b, HeaderKind::Main, "");
        // zero count
        let mut b = good.clone();
        set_index(&mut b, 6, 3, 0);
        expect_err(&b, HeaderKind::Main, "count out of range");
        // string array without terminating NUL inside the store: point at trailer area
        let mut b = good.clone();
        set_index(&mut b, 5, 3, 0xfff);
        expect_err(&b, HeaderKind::Main, "");
        // data running into the region trailer: bin length grown
        let mut b = good.clone();
        set_index(&mut b, 6, 3, 3 + 4);
        expect_err(&b, HeaderKind::Main, "trailer");
        // region entry with wrong type / count / offset
        let mut b = good.clone();
        set_index(&mut b, 0, 1, 4);
        expect_err(&b, HeaderKind::Main, "region tag");
        let mut b = good.clone();
        set_index(&mut b, 0, 2, dl);
        expect_err(&b, HeaderKind::Main, "region offset");
        // trailer covering fewer entries than il in a package header
        let mut b = good.clone();
        let tr = b.len() - 16;
        b[tr + 8..tr + 12].copy_from_slice(&(-16i32 * 2).to_be_bytes());
        expect_err(&b, HeaderKind::Main, "mismatch");
        // trailer claiming more entries than exist
        let mut b = good.clone();
        b[tr + 8..tr + 12].copy_from_slice(&(-16i32 * 100).to_be_bytes());
        expect_err(&b, HeaderKind::Main, "region size");
        // trailer with wrong tag
        let mut b = good.clone();
        b[tr..tr + 4].copy_from_slice(&62u32.to_be_bytes());
        expect_err(&b, HeaderKind::Main, "trailer");
        // no region at all in a package header
        let mut b = good.clone();
        set_index(&mut b, 0, 0, 1000);
        expect_err(&b, HeaderKind::Main, "");
    }

    #[test]
    fn signature_trailer_headerimage_accepted() {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(273, "abc"));
        let mut bytes = b.serialize(TAG_HEADERSIGNATURES);
        let tr = bytes.len() - 16;
        bytes[tr..tr + 4].copy_from_slice(&61u32.to_be_bytes());
        assert!(Header::parse(&bytes, HeaderKind::Signature).is_ok());
    }

    #[test]
    fn rpmdb_blob_with_dribbles_and_without_region() {
        // Region covering 2 entries (region + 1000), then a dribble overriding 1000 and a new tag.
        let mut region = HeaderBuilder::new();
        region.put(OwnedEntry::string(1000, "old"));
        let with_region = region.serialize(TAG_HEADERIMMUTABLE);
        let (h, _) = Header::parse(&with_region, HeaderKind::Main).unwrap();
        let mut store = h.store().to_vec();
        let rdl = store.len();
        let d1 = store.len();
        store.extend_from_slice(b"new\0");
        store.resize(store.len().next_multiple_of(4), 0);
        let d2 = store.len();
        store.extend_from_slice(&7u32.to_be_bytes());
        let mut blob = Vec::new();
        blob.extend_from_slice(&4u32.to_be_bytes());
        blob.extend_from_slice(&(store.len() as u32).to_be_bytes());
        blob.extend_from_slice(&with_region[16..48]); // region entry + 1000
        for v in [1000u32, 6, d1 as u32, 1] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
        for v in [1008u32, 4, d2 as u32, 1] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
        blob.extend_from_slice(&store);
        let h = Header::from_rpmdb_blob(&blob).unwrap();
        assert_eq!(h.region().unwrap().rdl, rdl);
        assert_eq!(h.get_string(1000).unwrap().unwrap(), "new");
        assert_eq!(h.get_u32(1008).unwrap(), Some(7));
        // wrong total size
        assert!(Header::from_rpmdb_blob(&blob[..blob.len() - 1]).is_err());

        // A blob without a region (legacy) parses too.
        let mut legacy = Vec::new();
        legacy.extend_from_slice(&1u32.to_be_bytes());
        legacy.extend_from_slice(&4u32.to_be_bytes());
        for v in [1000u32, 6, 0, 1] {
            legacy.extend_from_slice(&v.to_be_bytes());
        }
        legacy.extend_from_slice(b"abc\0");
        let h = Header::from_rpmdb_blob(&legacy).unwrap();
        assert!(h.region().is_none());
        assert_eq!(h.get_string(1000).unwrap().unwrap(), "abc");
    }
}
