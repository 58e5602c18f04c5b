//! The rpmdb path of `enable`/`audit`: a header blob as stored in the rpmdb
//! (`Header::from_rpmdb_blob`), then `installed::package_from_header`. Property: no panic, and
//! a package that loads has one file per header file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm_format::{FileList, Header};
use verity_system::installed::{package_from_header, skip_reason};

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Header::from_rpmdb_blob(data) else {
        return;
    };
    if let Ok(p) = package_from_header(1, &h) {
        let list = FileList::from_header(&h).expect("the loaded package's file list");
        assert_eq!(p.files.len(), list.len());
        let _ = p.matches(&p.name);
        let _ = p.matches(&p.nevra);
        for f in &p.files {
            let _ = f.path_lossy();
            let _ = skip_reason(f, false, p.has_signatures);
            let _ = skip_reason(f, true, p.has_signatures);
        }
    }
});
