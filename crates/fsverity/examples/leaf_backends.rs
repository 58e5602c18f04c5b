//! Compares SHA-256 leaf hashing backends for fs-verity blocks on this CPU:
//! `cargo run --release -p fsverity --example leaf_backends [BLOCK_SIZE]`.
use std::time::Instant;

use sha2::Digest;

fn main() {
    let bs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let n = (64 << 20) / bs;
    let data: Vec<u8> = (0..n * bs).map(|i| (i * 31 + i / 7) as u8).collect();
    let mut out = vec![[0u8; 32]; n];
    println!(
        "tape-sha256 backend: {} (lanes {})",
        tape_sha256::backend(),
        tape_sha256::lane_width()
    );
    for round in 0..3 {
        let t = Instant::now();
        for (blk, o) in data.chunks_exact(bs).zip(out.iter_mut()) {
            o.copy_from_slice(&sha2::Sha256::digest(blk));
        }
        let sha2_t = t.elapsed();
        let first = out.clone();
        let t = Instant::now();
        for (blks, outs) in data.chunks(bs * 64).zip(out.chunks_mut(64)) {
            let bodies: Vec<&[u8]> = blks.chunks_exact(bs).collect();
            tape_sha256::hash_many_prefixed(&[], &bodies, outs);
        }
        let tape_t = t.elapsed();
        assert_eq!(first, out, "backends disagree");
        let t = Instant::now();
        for (blks, outs) in data
            .chunks(bs * 64)
            .zip(out.iter_mut().collect::<Vec<_>>().chunks_mut(64))
        {
            let bodies: Vec<&[u8]> = blks.chunks_exact(bs).collect();
            let mut o = vec![[0u8; 32]; bodies.len()];
            // SAFETY: example only; checked for SHA-NI support first.
            if std::is_x86_feature_detected!("sha") {
                unsafe { tape_sha256::backends::shani_x4_slices(&[], &bodies, &mut o) };
            }
            for (a, b) in outs.iter_mut().zip(o) {
                **a = b;
            }
        }
        let shani_t = t.elapsed();
        assert_eq!(first, out, "shani disagrees");
        let t = Instant::now();
        for (blks, outs) in data.chunks(bs * 64).zip(out.chunks_mut(64)) {
            let bodies: Vec<&[u8]> = blks.chunks_exact(bs).collect();
            unsafe { tape_sha256::backends::avx512_16x2_slices(&[], &bodies, outs) };
        }
        let x2_t = t.elapsed();
        assert_eq!(first, out, "avx512x2 disagrees");
        let t = Instant::now();
        for (blk, o) in data.chunks_exact(bs).zip(out.iter_mut()) {
            let mut h = tape_sha256::Sha256::new();
            h.update(blk);
            *o = h.finish();
        }
        let inc_t = t.elapsed();
        assert_eq!(first, out, "incremental disagrees");
        let mb = (n * bs) as f64 / 1e6;
        println!(
            "round {round}: sha2 {:.0} MB/s, tape {:.0} MB/s, ratio {:.2}; shani-x4 {:.0}, avx512x2 {:.0}, tape incremental {:.0}",
            mb / sha2_t.as_secs_f64(),
            mb / tape_t.as_secs_f64(),
            sha2_t.as_secs_f64() / tape_t.as_secs_f64(),
            mb / shani_t.as_secs_f64(),
            mb / x2_t.as_secs_f64(),
            mb / inc_t.as_secs_f64(),
        );
    }
}
