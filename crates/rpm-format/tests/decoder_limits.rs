//! Streams that claim huge decoder memory are refused up front, with rpm's limits: 100 MiB for
//! lzma/xz (`lzma_auto_decoder` in rpmio.c), a 2^27-byte window for zstd. The hostile streams
//! are crafted here: a few bytes each, no matter how much memory they ask for.

use std::io::{Read, Write};

use rpm_format::{Compressor, Decoder};

fn data() -> Vec<u8> {
    b"some payload to compress, some payload to compress\n".repeat(200)
}

/// Decodes everything; the error text when refused.
fn decode(c: Compressor, stream: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    Decoder::new(c, stream)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn assert_refused(c: Compressor, stream: &[u8], needle: &str) {
    match decode(c, stream) {
        Ok(out) => panic!("{c:?}: decoded {} bytes of a hostile stream", out.len()),
        Err(e) => assert!(e.contains(needle), "{c:?}: {e}"),
    }
}

#[test]
fn lzma_dictionary_beyond_rpms_limit_is_refused() {
    let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
    let enc = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), enc);
    w.write_all(&data()).unwrap();
    let good = w.finish().unwrap();
    assert_eq!(decode(Compressor::Lzma, &good).unwrap(), data());
    // .lzma header: properties byte, dictionary size (u32 LE), uncompressed size.
    for dict in [0xffff_ffffu32, 101 << 20] {
        let mut bad = good.clone();
        bad[1..5].copy_from_slice(&dict.to_le_bytes());
        assert_refused(
            Compressor::Lzma,
            &bad,
            "payload refused: the stream needs more than the 100 MiB of decoder memory",
        );
    }
    // Within the limit (the decoder needs a little more than the dictionary).
    let mut ok = good.clone();
    ok[1..5].copy_from_slice(&(64u32 << 20).to_le_bytes());
    assert_eq!(decode(Compressor::Lzma, &ok).unwrap(), data());
}

/// Sets the LZMA2 dictionary-size byte of the first block header and fixes the header's CRC32.
fn xz_with_dict_byte(good: &[u8], dict_byte: u8) -> Vec<u8> {
    let mut b = good.to_vec();
    let hdr = 12; // after the stream header
    let size = (b[hdr] as usize + 1) * 4;
    let flags = b[hdr + 1];
    assert_eq!(flags & 0x03, 0, "one filter");
    let mut at = hdr + 2;
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            while b[at] & 0x80 != 0 {
                at += 1;
            }
            at += 1;
        }
    }
    assert_eq!(
        &b[at..at + 2],
        &[0x21, 0x01],
        "LZMA2 filter, one property byte"
    );
    b[at + 2] = dict_byte;
    let mut crc = flate2::Crc::new();
    crc.update(&b[hdr..hdr + size - 4]);
    b[hdr + size - 4..hdr + size].copy_from_slice(&crc.sum().to_le_bytes());
    b
}

#[test]
fn xz_dictionary_beyond_rpms_limit_is_refused() {
    let mut w = liblzma::write::XzEncoder::new(Vec::new(), 6);
    w.write_all(&data()).unwrap();
    let good = w.finish().unwrap();
    assert_eq!(decode(Compressor::Xz, &good).unwrap(), data());
    // 40 = 4 GiB - 1; 36 = 1 GiB; 30 = 128 MiB.
    for d in [40, 36, 30] {
        let bad = xz_with_dict_byte(&good, d);
        assert_refused(
            Compressor::Xz,
            &bad,
            "payload refused: the stream needs more than the 100 MiB of decoder memory",
        );
    }
    // 64 MiB is within.
    let ok = xz_with_dict_byte(&good, 28);
    assert_eq!(decode(Compressor::Xz, &ok).unwrap(), data());
}

/// A zstd frame with an explicit window descriptor (no single-segment flag) and one raw block.
fn zstd_frame(window_log: u8, content: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (window_log - 10) << 3];
    let header = ((content.len() as u32) << 3) | 1; // last block, raw
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(content);
    f
}

#[test]
fn zstd_window_beyond_rpms_limit_is_refused() {
    let content = b"hello";
    assert_eq!(
        decode(Compressor::Zstd, &zstd_frame(27, content)).unwrap(),
        content
    );
    for log in [28, 31] {
        assert_refused(
            Compressor::Zstd,
            &zstd_frame(log, content),
            "zstd payload refused: the stream's window is larger than the 128 MiB rpm allows",
        );
    }
}
