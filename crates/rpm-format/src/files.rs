//! The file list of a main header, in header order (the order verity signatures follow).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::header::Header;
use crate::tags;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Full path as bytes (DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]); may be non-UTF-8.
    pub path: Vec<u8>,
    /// LONGFILESIZES or FILESIZES.
    pub size: u64,
    pub mode: u16,
    pub flags: u32,
    pub inode: u32,
    pub device: u32,
    pub linkto: Vec<u8>,
    /// FILEDIGESTS hex string (empty for non-regular files).
    pub digest: String,
}

impl FileEntry {
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
    pub fn file_type(&self) -> u32 {
        self.mode as u32 & S_IFMT
    }
    pub fn is_regular(&self) -> bool {
        self.file_type() == S_IFREG
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    pub fn is_ghost(&self) -> bool {
        self.flags & tags::FILE_GHOST != 0
    }
    pub fn is_config(&self) -> bool {
        self.flags & tags::FILE_CONFIG != 0
    }
}

/// Files plus the derived lookups the payload reader needs.
#[derive(Debug, Clone, Default)]
pub struct FileList {
    files: Vec<FileEntry>,
    /// Hardlink sets with ≥ 2 members, each ascending.
    links: Vec<Vec<usize>>,
    /// Per file: index into `links`.
    link_of: Vec<Option<u32>>,
    /// Path without leading `/` → index (first occurrence).
    by_name: HashMap<Vec<u8>, usize>,
    /// Whether LONGFILESIZES is present (the payload then uses stripped cpio entries).
    long_sizes: bool,
}

fn check_count<T>(v: &Option<Vec<T>>, n: usize, name: &str) -> Result<()> {
    match v {
        Some(v) if v.len() != n => Err(Error::BadFileList(format!(
            "{name} has {} entries for {n} files",
            v.len()
        ))),
        _ => Ok(()),
    }
}

/// Every file's path: DIRNAMES[DIRINDEXES[i]] + BASENAMES[i], or OLDFILENAMES.
fn paths(h: &Header) -> Result<Vec<Vec<u8>>> {
    if let Some(base) = h.get_string_array_bytes(tags::BASENAMES)? {
        let dirs = h
            .get_string_array_bytes(tags::DIRNAMES)?
            .ok_or_else(|| Error::BadFileList("BASENAMES without DIRNAMES".into()))?;
        let idx = h
            .get_u32s(tags::DIRINDEXES)?
            .ok_or_else(|| Error::BadFileList("BASENAMES without DIRINDEXES".into()))?;
        if idx.len() != base.len() {
            return Err(Error::BadFileList(format!(
                "DIRINDEXES has {} entries for {} files",
                idx.len(),
                base.len()
            )));
        }
        return base
            .iter()
            .zip(&idx)
            .map(|(b, &d)| {
                let dir = dirs.get(d as usize).ok_or_else(|| {
                    Error::BadFileList(format!(
                        "DIRINDEXES value {d} out of range ({} dirs)",
                        dirs.len()
                    ))
                })?;
                let mut p = Vec::with_capacity(dir.len() + b.len());
                p.extend_from_slice(dir);
                p.extend_from_slice(b);
                Ok(p)
            })
            .collect();
    }
    Ok(match h.get_string_array_bytes(tags::OLDFILENAMES)? {
        Some(old) => old.iter().map(|s| s.to_vec()).collect(),
        None => Vec::new(),
    })
}

/// File sizes (LONGFILESIZES, else FILESIZES) and whether they were the long ones.
fn sizes(h: &Header, n: usize) -> Result<(Vec<u64>, bool)> {
    let long = h.get_u64s(tags::LONGFILESIZES)?;
    let short = h.get_u32s(tags::FILESIZES)?;
    check_count(&long, n, "LONGFILESIZES")?;
    check_count(&short, n, "FILESIZES")?;
    let long_sizes = long.is_some();
    let sizes: Vec<u64> = match (long, short) {
        (Some(l), _) => l,
        (None, Some(s)) => s.into_iter().map(u64::from).collect(),
        (None, None) if n == 0 => Vec::new(),
        _ => return Err(Error::BadFileList("no FILESIZES".into())),
    };
    Ok((sizes, long_sizes))
}

/// The per-file arrays, each checked to have one entry per file, zipped into entries.
fn entries(h: &Header, paths: Vec<Vec<u8>>, sizes: &[u64]) -> Result<Vec<FileEntry>> {
    let n = paths.len();
    let modes = h.get_u16s(tags::FILEMODES)?;
    if modes.is_none() && n > 0 {
        return Err(Error::BadFileList("no FILEMODES".into()));
    }
    check_count(&modes, n, "FILEMODES")?;
    let flags = h.get_u32s(tags::FILEFLAGS)?;
    check_count(&flags, n, "FILEFLAGS")?;
    let inodes = h.get_u32s(tags::FILEINODES)?;
    check_count(&inodes, n, "FILEINODES")?;
    let devices = h.get_u32s(tags::FILEDEVICES)?;
    check_count(&devices, n, "FILEDEVICES")?;
    let linktos = h.get_string_array_bytes(tags::FILELINKTOS)?;
    check_count(&linktos, n, "FILELINKTOS")?;
    let digests = h.get_string_array(tags::FILEDIGESTS)?;
    check_count(&digests, n, "FILEDIGESTS")?;
    let modes = modes.unwrap_or_default();
    Ok(paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| FileEntry {
            path,
            size: sizes[i],
            mode: modes[i],
            flags: flags.as_ref().map_or(0, |v| v[i]),
            inode: inodes.as_ref().map_or(0, |v| v[i]),
            device: devices.as_ref().map_or(0, |v| v[i]),
            linkto: linktos.as_ref().map_or(Vec::new(), |v| v[i].to_vec()),
            digest: digests.as_ref().map_or(String::new(), |v| v[i].clone()),
        })
        .collect())
}

/// Hardlink sets as rpm's rpmfilesBuildNLink: non-ghost regular files sharing (device,
/// inode), in order of their first member; and each file's set. Without inode data there are
/// no sets.
fn hardlink_sets(files: &[FileEntry], has_inodes: bool) -> (Vec<Vec<usize>>, Vec<Option<u32>>) {
    let mut groups: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    if has_inodes {
        for (i, f) in files.iter().enumerate() {
            if f.is_regular() && !f.is_ghost() {
                groups.entry((f.device, f.inode)).or_default().push(i);
            }
        }
    }
    let mut links: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    links.sort_by_key(|g| g[0]);
    let mut link_of = vec![None; files.len()];
    for (k, g) in links.iter().enumerate() {
        for &i in g {
            link_of[i] = Some(k as u32);
        }
    }
    (links, link_of)
}

impl FileList {
    pub fn from_header(h: &Header) -> Result<FileList> {
        let paths = paths(h)?;
        let n = paths.len();
        let (sizes, long_sizes) = sizes(h, n)?;
        let files = entries(h, paths, &sizes)?;
        let has_inodes = h.entry(tags::FILEINODES).is_some();
        let (links, link_of) = hardlink_sets(&files, has_inodes);
        let mut by_name = HashMap::with_capacity(n);
        for (i, f) in files.iter().enumerate() {
            let key = f.path.strip_prefix(b"/").unwrap_or(&f.path).to_vec();
            by_name.entry(key).or_insert(i);
        }
        Ok(FileList {
            files,
            links,
            link_of,
            by_name,
            long_sizes,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn get(&self, i: usize) -> Option<&FileEntry> {
        self.files.get(i)
    }

    /// True when sizes come from LONGFILESIZES, i.e. the payload uses stripped cpio entries.
    pub fn has_long_sizes(&self) -> bool {
        self.long_sizes
    }

    /// All hardlink sets (≥ 2 members, ascending indices), ordered by lowest index.
    pub fn hardlink_sets(&self) -> &[Vec<usize>] {
        &self.links
    }

    /// The hardlink set file `i` belongs to, if any.
    pub fn hardlink_set(&self, i: usize) -> Option<&[usize]> {
        self.hardlink_set_index(i)
            .and_then(|k| self.links.get(k))
            .map(Vec::as_slice)
    }

    /// Position in [`FileList::hardlink_sets`] of the set file `i` belongs to: a lookup, so
    /// that per-entry bookkeeping over a payload stays linear in the number of files.
    pub fn hardlink_set_index(&self, i: usize) -> Option<usize> {
        self.link_of.get(i).copied().flatten().map(|k| k as usize)
    }

    /// Index of a payload name: leading `./` then `/` stripped, as rpm's `rpmfnFindFN`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let n = name.strip_prefix(b"./").unwrap_or(name);
        let n = n.strip_prefix(b"/").unwrap_or(n);
        self.by_name.get(n).copied()
    }

    /// Bytes of file `i` stored in a stripped (07070X) payload entry: the header size, except
    /// that only the last member of a hardlink set carries data (rpm `rpmfiArchiveReadHeader`).
    /// An index beyond the list gives 0 rather than a panic; the cpio reader checks the index
    /// before asking.
    pub fn stripped_entry_size(&self, i: usize) -> u64 {
        let Some(f) = self.files.get(i) else {
            return 0;
        };
        match self.hardlink_set(i) {
            Some(set) if set.last() != Some(&i) => 0,
            _ => f.size,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::header::{HeaderBuilder, HeaderKind, OwnedEntry, TAG_HEADERIMMUTABLE};

    pub(crate) use crate::test_helpers::{header_for, FileSpec as F};

    #[test]
    fn paths_links_lookup() {
        let h = header_for(
            &[
                F {
                    path: "/usr/a",
                    size: 3,
                    mode: 0o100644,
                    flags: 0,
                    inode: 5,
                },
                F {
                    path: "/usr/b",
                    size: 3,
                    mode: 0o100644,
                    flags: 0,
                    inode: 5,
                },
                F {
                    path: "/usr/d",
                    size: 0,
                    mode: 0o40755,
                    flags: 0,
                    inode: 6,
                },
                F {
                    path: "/usr/g",
                    size: 9,
                    mode: 0o100644,
                    flags: tags::FILE_GHOST,
                    inode: 5,
                },
                F {
                    path: "/etc/é",
                    size: 1,
                    mode: 0o100644,
                    flags: 1,
                    inode: 7,
                },
            ],
            false,
        );
        let fl = FileList::from_header(&h).unwrap();
        assert_eq!(fl.len(), 5);
        assert_eq!(fl.get(4).unwrap().path, "/etc/é".as_bytes());
        assert!(fl.get(4).unwrap().is_config());
        assert_eq!(fl.hardlink_sets(), &[vec![0, 1]]);
        assert_eq!(fl.hardlink_set(1), Some(&[0usize, 1][..]));
        assert_eq!(fl.hardlink_set(3), None, "ghosts are never hardlinked");
        assert_eq!(fl.find(b"./usr/d"), Some(2));
        assert_eq!(fl.find(b"/usr/d"), Some(2));
        assert_eq!(fl.find(b"usr/d"), Some(2));
        assert_eq!(fl.find(b"./usr/x"), None);
        assert_eq!(fl.stripped_entry_size(0), 0);
        assert_eq!(fl.stripped_entry_size(1), 3);
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let h = header_for(
            &[F {
                path: "/a",
                size: 1,
                mode: 0o100644,
                flags: 0,
                inode: 1,
            }],
            false,
        );
        let mut b = HeaderBuilder::from_header(&h);
        b.put(OwnedEntry::u32s(tags::FILEFLAGS, &[0, 0]));
        let h = Header::parse(&b.serialize(TAG_HEADERIMMUTABLE), HeaderKind::Main)
            .unwrap()
            .0;
        assert!(matches!(
            FileList::from_header(&h),
            Err(Error::BadFileList(_))
        ));
        let mut b = HeaderBuilder::from_header(&h);
        b.put(OwnedEntry::u32s(tags::FILEFLAGS, &[0]));
        b.put(OwnedEntry::u32s(tags::DIRINDEXES, &[3]));
        let h = Header::parse(&b.serialize(TAG_HEADERIMMUTABLE), HeaderKind::Main)
            .unwrap()
            .0;
        assert!(FileList::from_header(&h).is_err());
    }
}
