//! A main header with a given file list, for the unit tests of the file list and cpio reader
//! and for the fuzz targets (feature `test-helpers`), so that each builds it the same way. Not
//! part of the supported API.

use crate::header::{Header, HeaderBuilder, HeaderKind, OwnedEntry, TagType, TAG_HEADERIMMUTABLE};
use crate::tags;

/// One file of the list: its path, size, mode, flags (RPMFILE_*) and inode.
pub struct FileSpec<'a> {
    pub path: &'a str,
    pub size: u64,
    pub mode: u16,
    pub flags: u32,
    pub inode: u32,
}

/// The main header rpmbuild would write for `files`: sizes as LONGFILESIZES when `long`.
pub fn header_for(files: &[FileSpec], long: bool) -> Header {
    let mut dirs: Vec<String> = Vec::new();
    let mut idx = Vec::new();
    let mut base = Vec::new();
    for f in files {
        let (d, b) = f.path.rsplit_once('/').unwrap();
        let d = format!("{d}/");
        let di = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
            dirs.push(d.clone());
            dirs.len() - 1
        });
        idx.push(di as u32);
        base.push(b.to_string());
    }
    let mut b = HeaderBuilder::new();
    b.put(OwnedEntry::string(tags::NAME, "t"));
    if !files.is_empty() {
        b.put(OwnedEntry::string_array(tags::BASENAMES, &base));
        b.put(OwnedEntry::string_array(tags::DIRNAMES, &dirs));
        b.put(OwnedEntry::u32s(tags::DIRINDEXES, &idx));
        if long {
            let s: Vec<u64> = files.iter().map(|f| f.size).collect();
            b.put(OwnedEntry::u64s(tags::LONGFILESIZES, &s));
        } else {
            let s: Vec<u32> = files.iter().map(|f| f.size as u32).collect();
            b.put(OwnedEntry::u32s(tags::FILESIZES, &s));
        }
        b.put(OwnedEntry {
            tag: tags::FILEMODES,
            ty: TagType::Int16,
            count: files.len() as u32,
            data: files.iter().flat_map(|f| f.mode.to_be_bytes()).collect(),
        });
        let fl: Vec<u32> = files.iter().map(|f| f.flags).collect();
        b.put(OwnedEntry::u32s(tags::FILEFLAGS, &fl));
        let ino: Vec<u32> = files.iter().map(|f| f.inode).collect();
        b.put(OwnedEntry::u32s(tags::FILEINODES, &ino));
        b.put(OwnedEntry::u32s(tags::FILEDEVICES, &vec![1; files.len()]));
    }
    Header::parse(&b.serialize(TAG_HEADERIMMUTABLE), HeaderKind::Main)
        .unwrap()
        .0
}
