//! Parsing a header: the read side of the codec.
//!
//! The checks follow rpm 4.18's order (`hdrblobRead` → `hdrblobVerifyRegion` →
//! `hdrblobVerifyInfo`) so that the first problem reported is the one rpm would report. Sizes
//! are checked against rpm's limits before anything is allocated, and every field is read
//! through [`Reader`], so a count or offset from the input can at worst produce an error.

use std::collections::HashMap;
use std::io::Read;

use super::tagtypes::TAG_TYPES;
use super::{
    Header, HeaderKind, IndexEntry, Region, TagType, HEADER_MAGIC, HEADER_MAX_BYTES,
    MAX_ARRAY_COUNT, MIN_REGULAR_TAG, REGION_TAG_COUNT, TAG_HEADERIMAGE, TAG_HEADERIMMUTABLE,
    TAG_HEADERSIGNATURES,
};
use crate::error::{Error, Result};
use crate::reader::{read_exact_or, Reader};

pub(super) fn bad(kind: HeaderKind, msg: String) -> Error {
    Error::BadHeader {
        what: kind.name(),
        msg,
    }
}

/// An index entry exactly as on disk, before any of it is trusted.
#[derive(Debug, Clone, Copy)]
struct RawEntry {
    tag: u32,
    ty: u32,
    offset: i32,
    count: u32,
}

impl RawEntry {
    const SIZE: usize = 16;

    fn read(r: &mut Reader) -> Option<RawEntry> {
        Some(RawEntry {
            tag: r.be_u32()?,
            ty: r.be_u32()?,
            offset: r.be_u32()? as i32,
            count: r.be_u32()?,
        })
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

/// Bytes of index plus store; only called once [`check_lengths`] has bounded il and dl, so the
/// sum is far below `usize::MAX` even on 32-bit targets.
fn body_len(il: u32, dl: u32) -> usize {
    RawEntry::SIZE * il as usize + dl as usize
}

/// The 16 bytes in front of a package header: magic, il, dl. Returns il and dl, within limits.
fn parse_intro(intro: &[u8; 16], kind: HeaderKind) -> Result<(u32, u32)> {
    let mut r = Reader::new(intro);
    if r.array::<8>() != Some(HEADER_MAGIC) {
        return Err(bad(kind, "bad header magic".into()));
    }
    let (Some(il), Some(dl)) = (r.be_u32(), r.be_u32()) else {
        return Err(bad(kind, "header intro is not 16 bytes".into()));
    };
    check_lengths(kind, il, dl)?;
    Ok((il, dl))
}

/// Length of the data of one entry, bounded by the end of the store (rpm `dataLength`).
fn data_len(ty: TagType, count: u32, store: &[u8], offset: usize) -> Option<usize> {
    let mut r = Reader::new(store);
    r.skip(offset)?;
    let mut avail = Reader::new(r.rest());
    match ty {
        TagType::String | TagType::StringArray | TagType::I18nString => {
            if ty == TagType::String && count != 1 {
                return None;
            }
            for _ in 0..count {
                let nul = avail.peek_rest().iter().position(|&b| b == 0)?;
                avail.skip(nul + 1)?;
            }
            Some(avail.position())
        }
        _ => {
            let len = ty.element_size()?.checked_mul(count as usize)?;
            avail.skip(len)?;
            Some(len)
        }
    }
}

/// A header's bytes cut into index entries and data store.
struct Layout<'a> {
    index: Vec<RawEntry>,
    store: &'a [u8],
}

impl<'a> Layout<'a> {
    /// `raw` must be exactly magic (`magic_len` bytes) + il + dl + index + store; the callers
    /// have checked that, but a mismatch is still an error rather than a panic.
    fn split(raw: &'a [u8], magic_len: usize, kind: HeaderKind) -> Result<Layout<'a>> {
        let split = || -> Option<(u32, u32, Reader<'a>, &'a [u8])> {
            let mut r = Reader::new(raw);
            r.skip(magic_len)?;
            let (il, dl) = (r.be_u32()?, r.be_u32()?);
            let index = r.sub(RawEntry::SIZE.checked_mul(il as usize)?)?;
            let store = r.take(dl as usize)?;
            r.expect_end()?;
            Some((il, dl, index, store))
        };
        let (il, dl, mut index, store) =
            split().ok_or_else(|| bad(kind, "header size does not match il and dl".into()))?;
        check_lengths(kind, il, dl)?;
        let index = (0..il)
            .map(|_| RawEntry::read(&mut index))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(kind, "truncated index".into()))?;
        Ok(Layout { index, store })
    }
}

impl Header {
    /// Parses a package header (starting with the 8-byte magic) from a byte slice. Returns the
    /// header and the number of bytes it occupies (without the signature header's padding).
    pub fn parse(bytes: &[u8], kind: HeaderKind) -> Result<(Header, usize)> {
        let truncated = |needed: usize| Error::Truncated {
            what: kind.name(),
            needed: needed as u64,
            got: bytes.len() as u64,
        };
        let mut r = Reader::new(bytes);
        let intro: [u8; 16] = r.array().ok_or_else(|| truncated(16))?;
        let (il, dl) = parse_intro(&intro, kind)?;
        let body = body_len(il, dl);
        let body = r.take(body).ok_or_else(|| truncated(16 + body))?;
        let mut raw = Vec::with_capacity(16 + body.len());
        raw.extend_from_slice(&intro);
        raw.extend_from_slice(body);
        let total = raw.len();
        Ok((Header::from_raw(raw, 8, kind)?, total))
    }

    /// Reads a package header (magic first) from a stream, reading exactly its size and no
    /// more; the signature header's padding is left to the caller.
    pub fn read<R: Read>(r: &mut R, kind: HeaderKind) -> Result<Header> {
        let mut intro = [0u8; 16];
        read_exact_or(r, &mut intro, kind.name())?;
        let (il, dl) = parse_intro(&intro, kind)?;
        let rest = body_len(il, dl);
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
        let mut r = Reader::new(blob);
        let (Some(il), Some(dl)) = (r.be_u32(), r.be_u32()) else {
            return Err(Error::Truncated {
                what: kind.name(),
                needed: 8,
                got: blob.len() as u64,
            });
        };
        check_lengths(kind, il, dl)?;
        if r.remaining() != body_len(il, dl) {
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

    /// Validates a complete header blob the way rpm does: region first, then every entry.
    fn from_raw(raw: Vec<u8>, magic_len: usize, kind: HeaderKind) -> Result<Header> {
        let layout = Layout::split(&raw, magic_len, kind)?;
        let (il, dl) = (layout.index.len(), layout.store.len());
        let region = parse_region(kind, &layout)?;
        let entries = parse_entries(kind, &layout, region)?;
        // The region entry describes the region, not a tag of the header.
        let first = usize::from(region.is_some());
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
}

/// The region (rpm `hdrblobVerifyRegion`): package headers must start with the region entry of
/// their kind, covering everything; rpmdb blobs may have none, or one followed by dribbles.
fn parse_region(kind: HeaderKind, layout: &Layout) -> Result<Option<Region>> {
    let Some(&first) = layout.index.first() else {
        if kind != HeaderKind::Database {
            return Err(bad(kind, "region: no tags".into()));
        }
        return Ok(None);
    };
    let expected = match kind {
        HeaderKind::Signature => Some(TAG_HEADERSIGNATURES),
        HeaderKind::Main => Some(TAG_HEADERIMMUTABLE),
        HeaderKind::Database => None,
    };
    let is_region = match expected {
        Some(t) => first.tag == t,
        None => matches!(
            first.tag,
            TAG_HEADERSIGNATURES | TAG_HEADERIMMUTABLE | TAG_HEADERIMAGE
        ),
    };
    if !is_region {
        if kind != HeaderKind::Database {
            return Err(bad(
                kind,
                format!(
                    "no region tag {} (not a v4 package header)",
                    expected.unwrap_or(0)
                ),
            ));
        }
        return Ok(None);
    }
    let RawEntry {
        tag,
        ty,
        offset,
        count,
    } = first;
    if ty != TagType::Bin as u32 || count != REGION_TAG_COUNT {
        return Err(bad(
            kind,
            format!("region tag: BAD, tag {tag} type {ty} offset {offset} count {count}"),
        ));
    }
    let dl = layout.store.len();
    let mut r = Reader::new(layout.store);
    let trailer = usize::try_from(offset)
        .ok()
        .and_then(|off| r.skip(off))
        .and_then(|()| RawEntry::read(&mut r))
        .ok_or_else(|| {
            bad(
                kind,
                format!("region offset {offset} outside the data store ({dl} bytes)"),
            )
        })?;
    check_trailer(kind, first, trailer, (layout.index.len(), dl), r.position())
}

/// The region trailer: the region entry repeated, with minus the region's index size as
/// offset. `il`/`dl` are the whole header's, `rdl` the data the region covers, i.e. up to the
/// end of the trailer.
fn check_trailer(
    kind: HeaderKind,
    region: RawEntry,
    trailer: RawEntry,
    (il, dl): (usize, usize),
    rdl: usize,
) -> Result<Option<Region>> {
    let RawEntry {
        tag: t_tag,
        ty: t_ty,
        count: t_count,
        ..
    } = trailer;
    let t_off = trailer.offset.wrapping_neg();
    // Old signature headers name their trailer HEADERIMAGE; rpm accepts that.
    let t_tag_fixed = if kind == HeaderKind::Signature && t_tag == TAG_HEADERIMAGE {
        TAG_HEADERSIGNATURES
    } else {
        t_tag
    };
    if t_tag_fixed != region.tag || t_ty != TagType::Bin as u32 || t_count != REGION_TAG_COUNT {
        return Err(bad(
            kind,
            format!("region trailer: BAD, tag {t_tag} type {t_ty} offset {t_off} count {t_count}"),
        ));
    }
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
    Ok(Some(Region {
        tag: region.tag,
        ril,
        rdl,
    }))
}

/// Every entry after the region (rpm `hdrblobVerifyInfo`): known type, legal tag, aligned,
/// inside the store, not overlapping its predecessor or the region trailer.
fn parse_entries(
    kind: HeaderKind,
    layout: &Layout,
    region: Option<Region>,
) -> Result<Vec<IndexEntry>> {
    let mut entries = Vec::with_capacity(layout.index.len());
    let mut raw = layout.index.iter().enumerate();
    if region.is_some() {
        // Already checked by `parse_region`; its data is the trailer.
        if let Some((_, r)) = raw.next() {
            entries.push(IndexEntry {
                tag: r.tag,
                ty: TagType::Bin,
                offset: r.offset,
                count: r.count,
                len: 16,
            });
        }
    }
    // rpm type-checks only headers whose tag numbers mean main-header tags: signature tags
    // reuse numbers (1000 is SIZE there, NAME here), so they get `check_signature_tags`.
    let typechk = matches!(
        region.map(|r| r.tag),
        Some(TAG_HEADERIMMUTABLE | TAG_HEADERIMAGE)
    );
    let mut end: i64 = 0;
    for (i, &r) in raw {
        let e = check_entry(kind, i, r, layout.store, region, end, typechk)?;
        end = e.offset as i64 + e.len as i64;
        entries.push(e);
    }
    if kind == HeaderKind::Signature {
        check_signature_tags(&entries)?;
    }
    Ok(entries)
}

/// rpm's `hdrchkTagType`: a tag rpm knows must carry the type rpm declares for it, except that
/// string tags may use any string type. Returns the declared type and the tag's name when they
/// disagree.
fn declared_type_mismatch(tag: u32, ty: TagType) -> Option<(TagType, &'static str)> {
    let i = TAG_TYPES.binary_search_by_key(&tag, |&(t, _, _)| t).ok()?;
    let &(_, want, name) = TAG_TYPES.get(i)?;
    let string = |t: TagType| {
        matches!(
            t,
            TagType::String | TagType::StringArray | TagType::I18nString
        )
    };
    if want == ty || (string(want) && string(ty)) {
        None
    } else {
        Some((want, name))
    }
}

/// Signature-header tags rpm checks before verifying anything (`rpmvfytags` in rpm 4.18's
/// `lib/rpmvs.c`): tag, name, type, data size (0: any). rpm -K fails a package whose digest or
/// signature tag has another type, so it must not get past us either.
const SIGNATURE_TAG_RULES: &[(u32, &str, TagType, usize)] = &[
    (267, "DSAHEADER", TagType::Bin, 0),
    (268, "RSAHEADER", TagType::Bin, 0),
    (269, "SHA1HEADER", TagType::String, 41),
    (273, "SHA256HEADER", TagType::String, 65),
    (1002, "PGP", TagType::Bin, 0),
    (1004, "MD5", TagType::Bin, 16),
    (1005, "GPG", TagType::Bin, 0),
];

fn check_signature_tags(entries: &[IndexEntry]) -> Result<()> {
    for e in entries {
        let Some(&(_, name, want, size)) = SIGNATURE_TAG_RULES.iter().find(|r| r.0 == e.tag) else {
            continue;
        };
        if e.ty != want {
            return Err(bad(
                HeaderKind::Signature,
                format!(
                    "tag {} ({name}): BAD, type {} ({:?}) where rpm requires {:?}",
                    e.tag, e.ty as u32, e.ty, want
                ),
            ));
        }
        if size != 0 && e.len != size {
            return Err(bad(
                HeaderKind::Signature,
                format!(
                    "tag {} ({name}): BAD, {} bytes where rpm requires {size}",
                    e.tag, e.len
                ),
            ));
        }
    }
    Ok(())
}

/// One non-region entry; `end` is where the previous entry's data ended.
fn check_entry(
    kind: HeaderKind,
    i: usize,
    raw: RawEntry,
    store: &[u8],
    region: Option<Region>,
    end: i64,
    typechk: bool,
) -> Result<IndexEntry> {
    let RawEntry {
        tag,
        ty,
        offset,
        count,
    } = raw;
    let fail = |why: &str| -> Error {
        bad(
            kind,
            format!("tag[{i}]: BAD ({why}), tag {tag} type {ty} offset {offset} count {count}"),
        )
    };
    let dl = store.len();
    if end > offset as i64 {
        return Err(fail("data overlaps the previous entry"));
    }
    // rpm reads tag numbers as signed: 0x80000000 and above are negative, hence below 100.
    if (tag as i32) < MIN_REGULAR_TAG as i32 {
        if tag >= 0x8000_0000 {
            return Err(fail(&format!(
                "tag number {tag:#x} is negative to rpm, below 100"
            )));
        }
        return Err(fail("tag number below 100"));
    }
    let Some(tty) = TagType::from_u32(ty) else {
        return Err(fail("unknown type"));
    };
    if count < 1 || count as usize > dl {
        return Err(fail("count out of range"));
    }
    let Some(off) = usize::try_from(offset).ok().filter(|&o| o <= dl) else {
        return Err(fail("offset outside the data store"));
    };
    if off % tty.alignment() != 0 {
        return Err(fail("misaligned data"));
    }
    if tty != TagType::Bin && count > MAX_ARRAY_COUNT {
        return Err(fail("array count too large"));
    }
    if typechk {
        if let Some((want, name)) = declared_type_mismatch(tag, tty) {
            return Err(fail(&format!(
                "{name} stored as {tty:?}, rpm declares it {want:?}"
            )));
        }
    }
    let Some(len) = data_len(tty, count, store, off) else {
        return Err(fail("data does not fit in the store"));
    };
    if len == 0 {
        return Err(fail("empty data"));
    }
    if let Some(r) = region {
        let data_end = off + len;
        if data_end > r.rdl.saturating_sub(16) && off < r.rdl {
            return Err(fail("data overlaps the region trailer"));
        }
    }
    Ok(IndexEntry {
        tag,
        ty: tty,
        offset,
        count,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{HeaderBuilder, OwnedEntry};
    use proptest::prelude::*;

    fn sample(region_tag: u32) -> Vec<u8> {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(1000, "hello"));
        b.put(OwnedEntry::u32s(21001, &[1, 2, 3]));
        b.put(OwnedEntry::u64s(21002, &[7]));
        b.put(OwnedEntry::string_array(21004, &["a", "bc", ""]));
        b.put(OwnedEntry::bin(21005, &[9, 8, 7]));
        b.serialize(region_tag)
    }

    /// Every way in: slice, stream, rpmdb blob (without the magic), both package kinds.
    fn parse_all_ways(bytes: &[u8]) {
        for kind in [HeaderKind::Main, HeaderKind::Signature] {
            let _ = Header::parse(bytes, kind);
            let _ = Header::read(&mut &bytes[..], kind);
        }
        let _ = Header::from_rpmdb_blob(bytes);
        let _ = Header::from_rpmdb_blob(bytes.get(8..).unwrap_or_default());
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let good = sample(TAG_HEADERIMMUTABLE);
        for cut in 0..good.len() {
            let part = &good[..cut];
            let e = Header::parse(part, HeaderKind::Main).unwrap_err();
            assert!(e.to_string().contains("truncated"), "cut {cut}: {e}");
            let e = Header::read(&mut &part[..], HeaderKind::Main).unwrap_err();
            assert!(e.to_string().contains("truncated"), "cut {cut}: {e}");
            assert!(Header::from_rpmdb_blob(&good[8..8 + cut.saturating_sub(8)]).is_err());
        }
        assert!(Header::parse(&good, HeaderKind::Main).is_ok());
        assert!(Header::from_rpmdb_blob(&good[8..]).is_ok());
    }

    /// The public fields of `IndexEntry` let a caller describe data that is not there.
    #[test]
    fn caller_built_entry_cannot_reach_outside_the_store() {
        let (h, _) = Header::parse(&sample(TAG_HEADERIMMUTABLE), HeaderKind::Main).unwrap();
        let real = *h.entry(21005).unwrap();
        assert_eq!(h.entry_data(&real), &[9, 8, 7]);
        for (offset, len) in [
            (real.offset, h.data_len()),
            (h.data_len() as i32, 1),
            (h.data_len() as i32 + 1, 0),
            (-1, 1),
            (i32::MAX, usize::MAX),
            (0, usize::MAX),
        ] {
            let e = IndexEntry {
                offset,
                len,
                ..real
            };
            assert_eq!(h.entry_data(&e), &[] as &[u8], "{e:?}");
            let err = h.try_entry_data(&e).unwrap_err().to_string();
            assert!(err.contains("outside the data store"), "{err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes behind the magic (otherwise almost nothing gets past it).
        #[test]
        fn arbitrary_bytes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = HEADER_MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            parse_all_ways(&bytes);
            parse_all_ways(&tail);
        }

        /// A valid header with some words overwritten: index entries, the region trailer and
        /// il/dl get values that point anywhere.
        #[test]
        fn mutated_headers_never_panic(
            sig in any::<bool>(),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop_oneof![
                    any::<u32>(),
                    0u32..64,
                    Just(u32::MAX),
                    Just(0x8000_0000),
                ]),
                1..6,
            ),
        ) {
            let mut bytes =
                sample(if sig { TAG_HEADERSIGNATURES } else { TAG_HEADERIMMUTABLE });
            let words = bytes.len() / 4;
            for (at, v) in edits {
                let w = 2 + at.index(words - 2);
                bytes[4 * w..4 * w + 4].copy_from_slice(&v.to_be_bytes());
            }
            parse_all_ways(&bytes);
            for kind in [HeaderKind::Main, HeaderKind::Signature] {
                if let Ok((h, _)) = Header::parse(&bytes, kind) {
                    // Whatever was accepted can be read back through every accessor.
                    for e in h.tags() {
                        let _ = h.get_string_array_bytes(e.tag);
                        let _ = h.get_string_bytes(e.tag);
                        let _ = h.get_u16s(e.tag);
                        let _ = h.get_u32s(e.tag);
                        let _ = h.get_u64s(e.tag);
                        let _ = h.get_bin(e.tag);
                        prop_assert_eq!(h.entry_data(&e).len(), e.len);
                    }
                    let _ = HeaderBuilder::from_header(&h).serialize(TAG_HEADERSIGNATURES);
                }
            }
        }
    }
}
