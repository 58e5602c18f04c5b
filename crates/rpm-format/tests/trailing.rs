//! Data after the cpio trailer: rpm stops reading there, so a few KiB of compressed zeros after
//! it must not cost minutes of decompression; the digests still cover every compressed byte.

use std::io::{Cursor, Read, Write};
use std::time::Instant;

use rpm_format::payload::PayloadExpectations;
use rpm_format::{Compressor, CpioReader, Error, FileList, Package, PayloadReader, RawPayload};
use sha2::{Digest, Sha256};
use verity_test_support::rpmbuild::{build_rpm, Contents};

/// Reads the archive to its trailer, then finishes, as `sign` and `verify` do.
fn read_through(
    raw: &[u8],
    files: &FileList,
    digest: &str,
    threaded: bool,
) -> rpm_format::Result<u64> {
    let exp = PayloadExpectations {
        payload_digest: Some((8, digest.to_string())),
        md5: None,
        payload_len: Some(raw.len() as u64),
    };
    let raw = RawPayload::new(Cursor::new(raw.to_vec()), &[], &exp)?;
    let payload = if threaded {
        PayloadReader::threaded(Compressor::Bzip2, raw, None)?
    } else {
        PayloadReader::new(Compressor::Bzip2, raw, None)?
    };
    let mut cpio = CpioReader::new(payload, files);
    while cpio.next_entry()?.is_some() {
        std::io::copy(&mut cpio, &mut std::io::sink()).map_err(|e| Error::from_io("payload", e))?;
    }
    Ok(cpio.into_inner().finish()?.uncompressed_bytes)
}

#[test]
fn data_after_the_trailer_is_bounded_and_digested() {
    let tmp = tempfile::tempdir().unwrap();
    let rpm = build_rpm(tmp.path(), "trailing", "w9.bzdio", Contents::ONE_FILE);
    let bytes = std::fs::read(&rpm).unwrap();
    let pkg = Package::open(&bytes[..]).unwrap();
    let files = pkg.files().unwrap();
    let original = &bytes[pkg.payload_offset() as usize..];
    let mut archive = Vec::new();
    bzip2::read::MultiBzDecoder::new(original)
        .read_to_end(&mut archive)
        .unwrap();
    let hex = |b: &[u8]| hex::encode(Sha256::digest(b));
    for threaded in [false, true] {
        assert_eq!(
            read_through(original, &files, &hex(original), threaded).unwrap(),
            archive.len() as u64
        );
    }

    // The archive, then zeros: 16 MiB by default, TRAILING_ZEROS_MIB to time a larger case.
    let mib: usize = std::env::var("TRAILING_ZEROS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    enc.write_all(&archive).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        enc.write_all(&zeros).unwrap();
    }
    let hostile = enc.finish().unwrap();
    for threaded in [false, true] {
        let start = Instant::now();
        let e = read_through(&hostile, &files, &hex(&hostile), threaded).unwrap_err();
        eprintln!(
            "{}-byte bzip2 payload with {mib} MiB of zeros after the trailer (threaded: \
             {threaded}): refused in {:.2?}",
            hostile.len(),
            start.elapsed()
        );
        // The digest matched (it is checked first, over every compressed byte).
        assert!(
            matches!(e, Error::TrailingPayload { at, .. } if at == archive.len() as u64 - 3),
            "{e}"
        );
        // A wrong digest is still reported as such: the bytes after the trailer are digested.
        let mut bad = hostile.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = read_through(&bad, &files, &hex(&hostile), threaded).unwrap_err();
        assert!(e.to_string().contains("payload digest mismatch"), "{e}");
    }
}
