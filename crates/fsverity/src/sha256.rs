//! SHA-256 of a stream, one or two at a time over the same bytes.
//!
//! Signing a package checks each file's content against its header digest (FILEDIGESTS) while
//! the whole uncompressed payload is checked against PAYLOADDIGESTALT: two SHA-256 streams over
//! the same bytes. [`Sha256Stream::update_both`] advances both in one pass, interleaving their
//! rounds on the CPU's SHA unit, which costs little more than one stream does (figures in
//! docs/benchmarks-sign.md). Without SHA-NI the `sha2` crate compresses each stream in turn.

use sha2::digest::generic_array::GenericArray;

use crate::sys::sha_ni::ShaNi;

const BLOCK: usize = 64;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An incremental SHA-256.
#[derive(Clone)]
pub struct Sha256Stream {
    kernel: Option<ShaNi>,
    state: [u32; 8],
    pending: [u8; BLOCK],
    pending_len: usize,
    total: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256Stream")
            .field("bytes", &self.total)
            .finish_non_exhaustive()
    }
}

impl Sha256Stream {
    /// On SHA-NI when this CPU has it (checked once per stream), else the `sha2` crate's
    /// compression function.
    pub fn new() -> Self {
        Sha256Stream {
            kernel: ShaNi::detect(),
            state: H0,
            pending: [0; BLOCK],
            pending_len: 0,
            total: 0,
        }
    }

    /// The portable path whatever the CPU has, for tests that compare the two.
    #[cfg(test)]
    fn portable() -> Self {
        Sha256Stream {
            kernel: None,
            ..Self::new()
        }
    }

    /// The next piece of the stream, of any length.
    pub fn update(&mut self, data: &[u8]) {
        let whole = self.take_head(data);
        let blocks = &whole[..whole.len() / BLOCK * BLOCK];
        compress(self.kernel, &mut self.state, blocks);
        self.keep_tail(&whole[blocks.len()..]);
    }

    /// Feeds `data` to both streams, as `self.update(data); other.update(data)` would, in one
    /// interleaved pass where the CPU allows.
    pub fn update_both(&mut self, other: &mut Sha256Stream, data: &[u8]) {
        let a = self.take_head(data);
        let b = other.take_head(data);
        let a_blocks = &a[..a.len() / BLOCK * BLOCK];
        let b_blocks = &b[..b.len() / BLOCK * BLOCK];
        match (self.kernel, other.kernel) {
            (Some(k), Some(_)) => {
                k.compress_pair(&mut self.state, a_blocks, &mut other.state, b_blocks)
            }
            _ => {
                compress(self.kernel, &mut self.state, a_blocks);
                compress(other.kernel, &mut other.state, b_blocks);
            }
        }
        self.keep_tail(&a[a_blocks.len()..]);
        other.keep_tail(&b[b_blocks.len()..]);
    }

    /// Completes a pending partial block from the front of `data`; returns the rest.
    fn take_head<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.pending_len == 0 {
            return data;
        }
        let n = (BLOCK - self.pending_len).min(data.len());
        self.pending[self.pending_len..self.pending_len + n].copy_from_slice(&data[..n]);
        self.pending_len += n;
        if self.pending_len == BLOCK {
            let block = self.pending;
            compress(self.kernel, &mut self.state, &block);
            self.pending_len = 0;
        }
        &data[n..]
    }

    /// Keeps fewer than 64 bytes for later.
    fn keep_tail(&mut self, tail: &[u8]) {
        debug_assert!(tail.is_empty() || self.pending_len == 0);
        self.pending[self.pending_len..self.pending_len + tail.len()].copy_from_slice(tail);
        self.pending_len += tail.len();
    }

    /// The digest of everything fed (FIPS 180-4 padding with the bit length).
    pub fn finalize(mut self) -> [u8; 32] {
        let mut last = [0u8; 2 * BLOCK];
        last[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        last[self.pending_len] = 0x80;
        let len = if self.pending_len < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        last[len - 8..len].copy_from_slice(&self.total.wrapping_mul(8).to_be_bytes());
        compress(self.kernel, &mut self.state, &last[..len]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// Compresses the whole blocks of `blocks` (a multiple of 64 bytes).
fn compress(kernel: Option<ShaNi>, state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK, 0);
    match kernel {
        Some(k) => k.compress(state, blocks),
        None => {
            for b in blocks.chunks_exact(BLOCK) {
                sha2::compress256(state, &[*GenericArray::from_slice(b)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    fn reference(d: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(d).into()
    }

    /// This project's machines have SHA-NI: the tests below would otherwise only exercise the
    /// portable path and say nothing about the kernel.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_sha_ni_kernel_is_what_is_tested_here() {
        if std::env::var_os("RPM_VERITY_NO_SHA_NI_OK").is_none() {
            assert!(
                ShaNi::detect().is_some(),
                "no SHA-NI on this CPU: set RPM_VERITY_NO_SHA_NI_OK=1 to test the portable path only"
            );
        }
    }

    #[test]
    fn long_streams_through_the_pair_kernel() {
        let a = data(300_000, 1);
        let b = data(300_000, 2);
        let (mut x, mut y) = (Sha256Stream::new(), Sha256Stream::new());
        x.update(&b[..13]);
        x.update_both(&mut y, &a);
        let mut want = b[..13].to_vec();
        want.extend_from_slice(&a);
        assert_eq!(x.finalize(), reference(&want));
        assert_eq!(y.finalize(), reference(&a));
    }

    #[test]
    fn known_answers() {
        for s in [Sha256Stream::new(), Sha256Stream::portable()] {
            let mut a = s.clone();
            a.update(b"abc");
            assert_eq!(
                hex::encode(a.finalize()),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
            assert_eq!(
                hex::encode(s.finalize()),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            );
        }
    }

    #[test]
    fn every_length_around_the_padding_edges() {
        for n in (0..300).chain([4095, 4096, 4097, 65536 + 7]) {
            let d = data(n, 3);
            for s in [Sha256Stream::new(), Sha256Stream::portable()] {
                let mut s = s;
                s.update(&d);
                assert_eq!(s.finalize(), reference(&d), "length {n}");
            }
        }
    }

    proptest! {
        /// Two streams fed in arbitrary pieces, some pieces to one alone and some to both, give
        /// what `sha2` gives for each stream's bytes, on the SHA-NI and the portable path.
        #[test]
        fn two_streams_in_any_pieces(
            pieces in proptest::collection::vec((0usize..700, 0u8..3), 0..24),
            portable in any::<bool>(),
        ) {
            let new = || if portable { Sha256Stream::portable() } else { Sha256Stream::new() };
            let (mut a, mut b) = (new(), new());
            let (mut want_a, mut want_b) = (Vec::new(), Vec::new());
            for (k, (len, who)) in pieces.into_iter().enumerate() {
                let d = data(len, k as u8);
                match who {
                    0 => { a.update(&d); want_a.extend_from_slice(&d); }
                    1 => { b.update(&d); want_b.extend_from_slice(&d); }
                    _ => {
                        a.update_both(&mut b, &d);
                        want_a.extend_from_slice(&d);
                        want_b.extend_from_slice(&d);
                    }
                }
            }
            prop_assert_eq!(a.finalize(), reference(&want_a));
            prop_assert_eq!(b.finalize(), reference(&want_b));
        }
    }

    #[test]
    fn one_fast_one_portable_stream() {
        let d = data(10_000, 9);
        let mut a = Sha256Stream::new();
        let mut b = Sha256Stream::portable();
        a.update(&d[..37]);
        a.update_both(&mut b, &d[37..]);
        b.update_both(&mut a, &d[..37]);
        let mut wb = d[37..].to_vec();
        wb.extend_from_slice(&d[..37]);
        let mut wa = d.clone();
        wa.extend_from_slice(&d[..37]);
        assert_eq!(a.finalize(), reference(&wa));
        assert_eq!(b.finalize(), reference(&wb));
    }
}
