//! Encoding a header: the write side of the codec, laid out the way rpm's `headerExport` and
//! `headerReload` do so that rewritten signature headers are byte-identical to rpmsign's.
//! Parsing lives in `read.rs`; the two share only the type definitions.

use super::{Header, TagType, HEADER_MAGIC};

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
        // -16·il as a two's-complement int32. Wrapping, not `-(16 * il as i32)`, because the
        // entries are caller-built and an absurd count must not overflow-panic; sizes beyond
        // rpm's limits are refused by the caller (`plan_rewrite`) after serializing.
        let region_size = (il as u32).wrapping_mul(16).wrapping_neg();
        store.extend_from_slice(&region_size.to_be_bytes());
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
