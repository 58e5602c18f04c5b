//! Block hashing: `H(padded salt || block)` for one block or many at once.
//!
//! SHA-256 data blocks go through `tape-sha256`'s multi-buffer kernels (16 blocks per pass in
//! AVX-512 lanes, or 4 interleaved SHA-NI streams) when the CPU has one, which is faster than
//! the `sha2` crate for 4 KiB blocks (`examples/leaf_backends.rs`; figures in
//! docs/benchmarks.md, "Measured choices"). Where tape-sha256 only has its portable kernels,
//! `sha2` is faster, so it is used instead. Both produce identical bytes; the tests check that.

use sha2::Digest;

use crate::{HashAlgorithm, Params};

/// The SHA-256 implementation used for data blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Multi-buffer when the CPU has a SIMD or SHA kernel for it, `sha2` otherwise.
    #[default]
    Auto,
    /// One block at a time with the `sha2` crate.
    Sha2,
    /// Many blocks per pass with `tape-sha256` (SHA-256 only; SHA-512 always uses `sha2`).
    MultiBuffer,
}

impl Backend {
    /// What [`Backend::Auto`] picks on this CPU: never `Auto`.
    pub fn resolve(self) -> Backend {
        match self {
            Backend::Auto => {
                // The portable kernels are slower than sha2 (which itself uses SHA-NI/ARMv8 SHA
                // where present); every named SIMD/SHA kernel measured faster.
                if tape_sha256::backend().starts_with("portable") {
                    Backend::Sha2
                } else {
                    Backend::MultiBuffer
                }
            }
            b => b,
        }
    }

    /// For logs and benchmarks: `sha2` or `tape-sha256/<kernel>`.
    pub fn describe(self) -> String {
        match self.resolve() {
            Backend::MultiBuffer => format!("tape-sha256/{}", tape_sha256::backend()),
            _ => "sha2".to_string(),
        }
    }
}

/// How many blocks go to one multi-buffer call; enough to fill two passes of the widest kernel.
const MB_BATCH: usize = 32;

/// Hashes blocks for one set of [`Params`]. Cheap to build (no allocation without a salt) and
/// `Sync`, so parallel workers share one.
#[derive(Clone)]
pub(crate) struct BlockHasher {
    alg: HashAlgorithm,
    multi_buffer: bool,
    padded_salt: Vec<u8>,
    /// Hash states with the padded salt already absorbed, so a salt costs nothing per block.
    sha256: sha2::Sha256,
    sha512: sha2::Sha512,
}

impl BlockHasher {
    pub(crate) fn new(params: &Params, backend: Backend) -> Self {
        let padded_salt = params.padded_salt();
        let alg = params.hash_algorithm();
        let mut sha256 = sha2::Sha256::new();
        let mut sha512 = sha2::Sha512::new();
        match alg {
            HashAlgorithm::Sha256 => sha256.update(&padded_salt),
            HashAlgorithm::Sha512 => sha512.update(&padded_salt),
        }
        BlockHasher {
            alg,
            multi_buffer: alg == HashAlgorithm::Sha256 && backend.resolve() == Backend::MultiBuffer,
            padded_salt,
            sha256,
            sha512,
        }
    }

    pub(crate) fn digest_size(&self) -> usize {
        self.alg.digest_size()
    }

    /// Hashes one whole block into `out` (digest-size bytes).
    pub(crate) fn hash_block(&self, block: &[u8], out: &mut [u8]) {
        self.hash_padded(block, 0, out)
    }

    /// Hashes `data` followed by `zeros` zero bytes: the zero-padded last block of a level,
    /// without building it.
    pub(crate) fn hash_padded(&self, data: &[u8], zeros: usize, out: &mut [u8]) {
        match self.alg {
            HashAlgorithm::Sha256 => padded_digest(self.sha256.clone(), data, zeros, out),
            HashAlgorithm::Sha512 => padded_digest(self.sha512.clone(), data, zeros, out),
        }
    }

    /// Hashes consecutive whole blocks of `block_size` bytes: `data.len()` must be a multiple
    /// of it and `out.len()` the block count times the digest size.
    pub(crate) fn hash_blocks(&self, data: &[u8], block_size: usize, out: &mut [u8]) {
        let d = self.digest_size();
        debug_assert_eq!(data.len() % block_size, 0);
        debug_assert_eq!(out.len(), data.len() / block_size * d);
        if !self.multi_buffer {
            for (block, o) in data.chunks_exact(block_size).zip(out.chunks_exact_mut(d)) {
                self.hash_block(block, o);
            }
            return;
        }
        let mut bodies: [&[u8]; MB_BATCH] = [&[]; MB_BATCH];
        let mut digests = [[0u8; 32]; MB_BATCH];
        for (blocks, outs) in data
            .chunks(block_size * MB_BATCH)
            .zip(out.chunks_mut(32 * MB_BATCH))
        {
            let n = blocks.len() / block_size;
            for (slot, block) in bodies.iter_mut().zip(blocks.chunks_exact(block_size)) {
                *slot = block;
            }
            tape_sha256::hash_many_prefixed(&self.padded_salt, &bodies[..n], &mut digests[..n]);
            for (o, dg) in outs.chunks_exact_mut(32).zip(&digests[..n]) {
                o.copy_from_slice(dg);
            }
        }
    }
}

/// Finishes `h` (already fed the salt) over `data` followed by `zeros` zero bytes.
fn padded_digest<D: Digest>(mut h: D, data: &[u8], zeros: usize, out: &mut [u8]) {
    static ZEROS: [u8; 4096] = [0; 4096];
    h.update(data);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(ZEROS.len());
        h.update(&ZEROS[..n]);
        left -= n;
    }
    out.copy_from_slice(&h.finalize());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize, bs: usize) -> Vec<u8> {
        (0..n * bs)
            .map(|i| (i % 251) as u8 ^ (i / bs) as u8)
            .collect()
    }

    #[test]
    fn backends_agree_with_and_without_salt() {
        for salt in [&b""[..], b"abcd", &[9u8; 32]] {
            for bs in [64usize, 1024, 4096] {
                let p = Params::new(HashAlgorithm::Sha256, bs as u32, salt).unwrap();
                let data = blocks(70, bs);
                let mut a = vec![0u8; 70 * 32];
                let mut b = vec![0u8; 70 * 32];
                BlockHasher::new(&p, Backend::Sha2).hash_blocks(&data, bs, &mut a);
                BlockHasher::new(&p, Backend::MultiBuffer).hash_blocks(&data, bs, &mut b);
                assert_eq!(a, b, "bs {bs} salt {salt:?}");
                // And each equals a plain hash of padded salt || block.
                let mut one = sha2::Sha256::new();
                one.update(p.padded_salt());
                one.update(&data[69 * bs..]);
                assert_eq!(&a[69 * 32..], &one.finalize()[..]);
            }
        }
    }

    #[test]
    fn padded_equals_explicit_zeros() {
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let p = Params::new(alg, 8192, b"s").unwrap();
            let h = BlockHasher::new(&p, Backend::Auto);
            let mut block = vec![0u8; 8192];
            block[..5].copy_from_slice(b"hello");
            let d = alg.digest_size();
            let (mut a, mut b) = (vec![0u8; d], vec![0u8; d]);
            h.hash_padded(b"hello", 8187, &mut a);
            h.hash_block(&block, &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn auto_resolves() {
        assert_ne!(Backend::Auto.resolve(), Backend::Auto);
        assert!(!Backend::Auto.describe().is_empty());
    }
}
