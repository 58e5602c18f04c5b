//! The RPM header codec: index entries plus a data store, with rpm's own sanity limits.
//!
//! Every check mirrors rpm 4.18's `hdrblobRead`/`hdrblobInit`/`hdrblobVerifyRegion`/
//! `hdrblobVerifyInfo`, so that whatever rpm refuses we refuse too, and a header we accept can be
//! indexed without further bounds worries. The raw bytes are kept because digests cover them and
//! copies must be byte-identical.
//!
//! Parsing (`read.rs`) and encoding (`write.rs`) are kept apart because they answer to
//! different masters: the reader to rpm's validation of untrusted input, the writer to
//! rpmsign's exact layout. This module holds what both share: the types and the typed access
//! to a parsed header.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::reader::Reader;

mod read;
mod tagtypes;
mod write;

pub use write::{HeaderBuilder, OwnedEntry};

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

impl Header {
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
        let mut v: Vec<IndexEntry> = self
            .by_tag
            .values()
            .filter_map(|&i| self.entries.get(i).copied())
            .collect();
        v.sort_by_key(|e| e.tag);
        v
    }

    fn store(&self) -> &[u8] {
        let mut r = Reader::new(&self.raw);
        // Cannot fail for a parsed header; an empty store is the harmless answer if it did.
        r.skip(self.magic_len + 8 + 16 * self.il)
            .map_or(&[], |()| r.rest())
    }

    pub fn entry(&self, tag: u32) -> Option<&IndexEntry> {
        self.by_tag.get(&tag).and_then(|&i| self.entries.get(i))
    }

    pub fn contains(&self, tag: u32) -> bool {
        self.by_tag.contains_key(&tag)
    }

    /// The raw data bytes of an entry. Entries this header handed out were validated at parse
    /// time; since [`IndexEntry`] has public fields, one built or altered by the caller may
    /// point outside the store, and then the answer is an empty slice rather than a panic
    /// ([`Header::try_entry_data`] reports it as an error).
    pub fn entry_data(&self, e: &IndexEntry) -> &[u8] {
        self.try_entry_data(e).unwrap_or_default()
    }

    /// As [`Header::entry_data`], with an entry that does not lie inside the data store being an
    /// error.
    pub fn try_entry_data(&self, e: &IndexEntry) -> Result<&[u8]> {
        let mut r = Reader::new(self.store());
        usize::try_from(e.offset)
            .ok()
            .and_then(|off| r.skip(off))
            .and_then(|()| r.take(e.len))
            .ok_or_else(|| Error::BadHeader {
                what: "header entry",
                msg: format!(
                    "tag {} data (offset {}, {} bytes) outside the data store ({} bytes)",
                    e.tag, e.offset, e.len, self.dl
                ),
            })
    }

    fn typed(&self, tag: u32, want: &[TagType]) -> Result<Option<(&IndexEntry, &[u8])>> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !want.contains(&e.ty) {
            return Err(Error::TagType {
                tag,
                found: e.ty as u32,
                expected: want.first().map_or(0, |&t| t as u32),
            });
        }
        Ok(Some((e, self.try_entry_data(e)?)))
    }

    pub fn get_u16s(&self, tag: u32) -> Result<Option<Vec<u16>>> {
        Ok(self.typed(tag, &[TagType::Int16])?.map(|(_, d)| {
            let mut r = Reader::new(d);
            std::iter::from_fn(|| r.be_u16()).collect()
        }))
    }

    pub fn get_u32s(&self, tag: u32) -> Result<Option<Vec<u32>>> {
        Ok(self.typed(tag, &[TagType::Int32])?.map(|(_, d)| {
            let mut r = Reader::new(d);
            std::iter::from_fn(|| r.be_u32()).collect()
        }))
    }

    pub fn get_u64s(&self, tag: u32) -> Result<Option<Vec<u64>>> {
        Ok(self.typed(tag, &[TagType::Int64])?.map(|(_, d)| {
            let mut r = Reader::new(d);
            std::iter::from_fn(|| r.be_u64()).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags 21001.. are unknown to rpm, so any type is legal for them (`hdrchkTagType`).
    fn sample() -> HeaderBuilder {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(1000, "hello"));
        b.put(OwnedEntry::u32s(21001, &[1, 2, 3]));
        b.put(OwnedEntry::u64s(21002, &[u64::MAX]));
        b.put(OwnedEntry {
            tag: 21003,
            ty: TagType::Int16,
            count: 2,
            data: vec![0, 1, 0, 2],
        });
        b.put(OwnedEntry::string_array(21004, &["a", "bc", ""]));
        b.put(OwnedEntry::bin(21005, &[9, 8, 7]));
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
        assert_eq!(h.get_u32s(21001).unwrap().unwrap(), vec![1, 2, 3]);
        assert_eq!(h.get_u64(21002).unwrap().unwrap(), u64::MAX);
        assert_eq!(h.get_u16s(21003).unwrap().unwrap(), vec![1, 2]);
        assert_eq!(
            h.get_string_array(21004).unwrap().unwrap(),
            vec!["a", "bc", ""]
        );
        assert_eq!(h.get_bin(21005).unwrap().unwrap(), &[9, 8, 7]);
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
        b.put(OwnedEntry::u64s(21001, &[7]));
        let bytes = b.serialize(TAG_HEADERIMMUTABLE);
        let (h, _) = Header::parse(&bytes, HeaderKind::Main).unwrap();
        assert_eq!(h.entry(21001).unwrap().offset, 8);
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
        // index 2 = tag 21001 INT32 at some offset; misalign it
        let off1001 = h.entry(21001).unwrap().offset as u32;
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
        // overlap: tag 21005 (BIN) pointing at 21004's data
        let off1004 = h.entry(21004).unwrap().offset as u32;
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

    /// rpm's `hdrchkTagType` in the main header only: signature tags reuse main-header numbers
    /// with other types (1000 is SIZE, INT32, there and NAME, STRING, here).
    #[test]
    fn declared_types_are_checked_in_the_main_header_only() {
        let one = |e: OwnedEntry, region: u32, kind: HeaderKind| {
            let mut b = HeaderBuilder::new();
            b.put(e);
            Header::parse(&b.serialize(region), kind).map(|_| ())
        };
        let main = |e| one(e, TAG_HEADERIMMUTABLE, HeaderKind::Main);
        let e = main(OwnedEntry::u32s(1000, &[7])).unwrap_err().to_string();
        assert!(
            e.contains("NAME stored as Int32, rpm declares it String"),
            "{e}"
        );
        let e = main(OwnedEntry::bin(1004, b"x")).unwrap_err().to_string();
        assert!(e.contains("SUMMARY stored as Bin"), "{e}");
        // Any string type for a string tag, as rpm allows.
        main(OwnedEntry::string_array(1004, &["a"])).unwrap();
        main(OwnedEntry::string(1000, "n")).unwrap();
        one(
            OwnedEntry::u32s(1000, &[7]),
            TAG_HEADERSIGNATURES,
            HeaderKind::Signature,
        )
        .unwrap();
        // An rpmdb blob with the main header's region is checked as the main header is.
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::u32s(1000, &[7]));
        let bytes = b.serialize(TAG_HEADERIMMUTABLE);
        assert!(Header::from_rpmdb_blob(&bytes[8..]).is_err());
    }

    /// rpm reads tag numbers as `int32_t`, so 0x80000000 and up fail its "below 100" check.
    #[test]
    fn tag_numbers_from_0x80000000_are_refused() {
        for (region, kind) in [
            (TAG_HEADERIMMUTABLE, HeaderKind::Main),
            (TAG_HEADERSIGNATURES, HeaderKind::Signature),
        ] {
            for tag in [0x8000_0000, 0x8000_03e8, u32::MAX] {
                let mut b = HeaderBuilder::new();
                b.put(OwnedEntry::bin(tag, b"x"));
                let e = Header::parse(&b.serialize(region), kind).unwrap_err();
                assert!(e.to_string().contains("is negative to rpm"), "{e}");
            }
        }
    }

    /// The digest and signature tags rpm checks before verifying (`rpmvfytags`).
    #[test]
    fn signature_digest_tags_must_have_rpms_type_and_size() {
        let sig = |e: OwnedEntry| {
            let mut b = HeaderBuilder::new();
            b.put(e);
            Header::parse(&b.serialize(TAG_HEADERSIGNATURES), HeaderKind::Signature)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        sig(OwnedEntry::string(273, &"ab".repeat(32))).unwrap();
        sig(OwnedEntry::bin(1004, &[0; 16])).unwrap();
        let e = sig(OwnedEntry::string_array(273, &["ab"; 1])).unwrap_err();
        assert!(e.contains("tag 273 (SHA256HEADER): BAD, type 8"), "{e}");
        let e = sig(OwnedEntry::string(269, "abcd")).unwrap_err();
        assert!(
            e.contains("SHA1HEADER): BAD, 5 bytes where rpm requires 41"),
            "{e}"
        );
        let e = sig(OwnedEntry::bin(1004, &[0; 15])).unwrap_err();
        assert!(e.contains("(MD5): BAD, 15 bytes"), "{e}");
        let e = sig(OwnedEntry::string(268, "x")).unwrap_err();
        assert!(e.contains("(RSAHEADER): BAD, type 6"), "{e}");
    }

    #[test]
    fn signature_trailer_headerimage_accepted() {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(273, &"ab".repeat(32)));
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
