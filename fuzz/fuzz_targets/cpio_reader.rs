//! `CpioReader` over arbitrary bytes with a small file list (built with `HeaderBuilder` and read
//! back through `FileList::from_header`, as a package's would be). The first byte picks the
//! list: newc with short sizes, stripped (LONGFILESIZES), a hardlink set, a ghost, or none.
//! Property: no panic, the reader never yields an entry outside the list, never yields more
//! content than the entry's size, and its position only moves forward.
#![no_main]
use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rpm_format::test_helpers::{header_for, FileSpec as F};
use rpm_format::{CpioReader, FileList};

const GHOST: u32 = 1 << 6;

fn list_for(files: &[F], long: bool) -> FileList {
    FileList::from_header(&header_for(files, long)).unwrap()
}

fn lists() -> &'static [FileList] {
    static LISTS: OnceLock<Vec<FileList>> = OnceLock::new();
    LISTS.get_or_init(|| {
        let plain = [
            F {
                path: "/usr/bin/a",
                size: 5,
                mode: 0o100755,
                flags: 0,
                inode: 1,
            },
            F {
                path: "/usr/share/b",
                size: 0,
                mode: 0o100644,
                flags: 0,
                inode: 2,
            },
            F {
                path: "/usr/share",
                size: 4096,
                mode: 0o040755,
                flags: 0,
                inode: 3,
            },
            F {
                path: "/usr/lib/l",
                size: 1,
                mode: 0o120777,
                flags: 0,
                inode: 4,
            },
        ];
        let links = [
            F {
                path: "/x/h1",
                size: 3,
                mode: 0o100644,
                flags: 0,
                inode: 7,
            },
            F {
                path: "/x/h2",
                size: 3,
                mode: 0o100644,
                flags: 0,
                inode: 7,
            },
            F {
                path: "/x/g",
                size: 9,
                mode: 0o100644,
                flags: GHOST,
                inode: 8,
            },
            F {
                path: "/x/c",
                size: 2,
                mode: 0o100644,
                flags: 1,
                inode: 9,
            },
        ];
        vec![
            list_for(&plain, false),
            list_for(&plain, true),
            list_for(&links, false),
            list_for(&links, true),
            list_for(&[], false),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, archive)) = data.split_first() else {
        return;
    };
    let lists = lists();
    let list = &lists[sel as usize % lists.len()];
    let mut r = CpioReader::new(archive, list);
    let mut buf = [0u8; 4096];
    let mut last = 0;
    // Each entry consumes at least a header's bytes, so this ends; the bound is belt and braces.
    for _ in 0..10_000 {
        match r.next_entry() {
            Ok(Some(e)) => {
                assert!(e.index < list.len(), "entry index {} out of range", e.index);
                assert!(r.position() >= last);
                last = r.position();
                // Read half the entries, skip the others (the reader must skip their content).
                if sel & 0x80 == 0 || e.index % 2 == 0 {
                    let mut got = 0u64;
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => got += n as u64,
                            Err(_) => return,
                        }
                    }
                    assert!(got <= e.size, "read {got} bytes of a {}-byte entry", e.size);
                }
            }
            Ok(None) => {
                assert_eq!(r.next_entry().ok(), Some(None));
                break;
            }
            Err(_) => break,
        }
    }
});
