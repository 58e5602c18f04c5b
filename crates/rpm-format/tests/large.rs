//! A package with a file over 4 GiB: rpmbuild switches to LONGFILESIZES and the stripped
//! `07070X` cpio format. The file is sparse, so the test costs time, not disk.

use verity_test_support::rpmbuild as support;

use std::fs::File;
use std::io::{BufReader, Read};

use rpm_format::{tags, CpioReader, Package};
use support::build_rpm_custom;

const BIG: u64 = (4 << 30) + 4096 * 3 + 5;

#[test]
fn sparse_file_over_4gib_uses_stripped_cpio() {
    let tmp = tempfile::tempdir().unwrap();
    let install = format!(
        "mkdir -p %{{buildroot}}/opt/big\n\
         truncate -s {} %{{buildroot}}/opt/big/sparse\n\
         printf 'END' >> %{{buildroot}}/opt/big/sparse\n\
         printf 'small\\n' > %{{buildroot}}/opt/big/small\n\
         ln -s sparse %{{buildroot}}/opt/big/link\n",
        BIG - 3
    );
    let t0 = std::time::Instant::now();
    let rpm = build_rpm_custom(
        tmp.path(),
        "bigone",
        "w1.zstdio",
        &install,
        "%dir /opt/big\n/opt/big/sparse\n/opt/big/small\n/opt/big/link\n",
    );
    eprintln!("rpmbuild: {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    let pkg = Package::open(BufReader::new(File::open(&rpm).unwrap())).unwrap();
    assert!(pkg.main.contains(tags::LONGFILESIZES));
    let sig = pkg.signature.header();
    assert!(sig.contains(tags::SIG_LONGARCHIVESIZE) || sig.contains(tags::SIG_PAYLOADSIZE));
    let files = pkg.files().unwrap();
    assert!(files.has_long_sizes());
    let big = files.find(b"/opt/big/sparse").unwrap();
    assert_eq!(files.get(big).unwrap().size, BIG);

    let (_h, payload) = pkg.into_payload_threaded(false).unwrap();
    let mut cpio = CpioReader::new(payload, &files);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Some(e) = cpio.next_entry().unwrap() {
        assert!(
            e.stripped,
            "LONGFILESIZES package must use stripped entries"
        );
        let mut total = 0u64;
        let mut tail = Vec::new();
        loop {
            let n = cpio.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 16 {
                tail.drain(..tail.len() - 16);
            }
        }
        assert_eq!(total, e.size);
        if e.index == big {
            assert!(tail.ends_with(b"\0\0END"));
        }
        seen.push(e.index);
    }
    seen.sort();
    assert_eq!(seen, (0..files.len()).collect::<Vec<_>>());
    let summary = cpio.into_inner().finish().unwrap();
    assert!(summary.uncompressed_bytes > BIG);
    assert!(summary.raw.checked_payload_digest && summary.raw.checked_size);
    assert!(summary.checked_uncompressed_size);
    eprintln!(
        "streaming {} bytes: {:?}",
        summary.uncompressed_bytes,
        t0.elapsed()
    );
}
