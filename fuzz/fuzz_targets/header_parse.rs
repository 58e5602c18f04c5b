//! `Header::parse` with each `HeaderKind` and `Header::from_rpmdb_blob` over arbitrary bytes,
//! then every accessor over what parsed. Property: no panic; a parsed header's entries lie
//! inside its data.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm_format::{FileList, Header, HeaderKind};

fn exercise(h: &Header) {
    assert!(h.len() <= h.raw().len());
    for e in h.tags() {
        // Entries the header hands out were validated at parse time.
        let d = h
            .try_entry_data(&e)
            .expect("parsed entry lies inside the store");
        assert_eq!(d.len(), e.len);
        let _ = h.get_u16s(e.tag);
        let _ = h.get_u32s(e.tag);
        let _ = h.get_u64s(e.tag);
        let _ = h.get_u32(e.tag);
        let _ = h.get_u64(e.tag);
        let _ = h.get_string(e.tag);
        let _ = h.get_string_array(e.tag);
        let _ = h.get_bin(e.tag);
    }
    for e in h.entries() {
        let _ = h.try_entry_data(e);
    }
    if let Ok(list) = FileList::from_header(h) {
        for i in 0..list.len() {
            let _ = list.stripped_entry_size(i);
            let _ = list.hardlink_set(i);
            let _ = list.get(i).map(|f| f.path_lossy());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for kind in [
        HeaderKind::Signature,
        HeaderKind::Main,
        HeaderKind::Database,
    ] {
        if let Ok((h, used)) = Header::parse(data, kind) {
            assert!(used <= data.len());
            exercise(&h);
        }
    }
    if let Ok(h) = Header::from_rpmdb_blob(data) {
        exercise(&h);
    }
});
