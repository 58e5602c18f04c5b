//! The payload framing per compressor: `PayloadReader` (raw digesting reader → decoder → byte
//! count) over arbitrary bytes for gzip, bzip2, xz, lzma and zstd, read to its end with a
//! bounded output, then `finish`. The first byte picks the compressor and a PAYLOADSIZE
//! expectation. Property: no panic, no more output than the bound asks for.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use rpm_format::payload::PayloadExpectations;
use rpm_format::{Compressor, Decoder, PayloadReader, RawPayload};

/// Decompressed bytes read per input: enough to cover a real stream's first blocks, small
/// enough that a decompression bomb costs milliseconds.
const OUTPUT_LIMIT: u64 = 1 << 20;

const COMPRESSORS: [Compressor; 5] = [
    Compressor::Gzip,
    Compressor::Bzip2,
    Compressor::Xz,
    Compressor::Lzma,
    Compressor::Zstd,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, raw)) = data.split_first() else {
        return;
    };
    let c = COMPRESSORS[(sel & 0x7) as usize % COMPRESSORS.len()];
    if sel & 0x80 == 0 {
        // The package path: raw payload reader with its counters, decoder, PAYLOADSIZE.
        let exp = PayloadExpectations {
            payload_len: (sel & 0x40 != 0).then_some(raw.len() as u64),
            ..Default::default()
        };
        let size = (sel & 0x20 != 0).then_some(u64::from(sel & 0x1f) * 100);
        let Ok(rawp) = RawPayload::new(raw, &[], &exp) else {
            return;
        };
        let Ok(mut p) = PayloadReader::new(c, rawp, size) else {
            return;
        };
        let mut out = Vec::new();
        match (&mut p).take(OUTPUT_LIMIT).read_to_end(&mut out) {
            Ok(n) => {
                assert!(n as u64 <= OUTPUT_LIMIT);
                assert_eq!(p.position(), n as u64);
                if let Ok(s) = p.finish() {
                    assert!(s.uncompressed_bytes >= n as u64);
                    assert!(s.raw.raw_bytes <= raw.len() as u64);
                    if let Some(want) = size {
                        assert_eq!(s.uncompressed_bytes, want);
                    }
                }
            }
            Err(_) => {}
        }
    } else {
        // The bare decoder, read in small pieces.
        let Ok(mut d) = Decoder::new(c, raw) else {
            return;
        };
        let mut buf = [0u8; 777];
        let mut total = 0u64;
        while total < OUTPUT_LIMIT {
            match d.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    assert!(n <= buf.len());
                    total += n as u64;
                }
            }
        }
    }
});
