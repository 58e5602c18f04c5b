//! SHA-256 block compression on the x86 SHA extensions, one stream or two interleaved.
//!
//! Why it is here: a package is checked against two SHA-256 digests over the same bytes (each
//! file against FILEDIGESTS, the whole payload against PAYLOADDIGESTALT). One SHA-NI stream is
//! bound by the latency of `sha256rnds2`, so a second independent stream woven in round by
//! round runs almost for free (3.5 GB/s for two streams against 1.8 GB/s for one on this
//! project's machines), and no maintained crate offers that for streaming input. The
//! intrinsics need `unsafe`, hence this module; the safe wrappers below only run them after
//! the CPU said it has the instructions ([`ShaNi::detect`]), and only read whole 64-byte
//! blocks of the slices they are given.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Proof that the CPU has SHA-NI, SSSE3 and SSE4.1: the only way to reach the kernels.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct ShaNi(());

impl ShaNi {
    /// `Some` when this CPU can run the kernels.
    pub(crate) fn detect() -> Option<ShaNi> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1")
            {
                return Some(ShaNi(()));
            }
        }
        None
    }

    /// Compresses every whole 64-byte block of `blocks` into `state` (a trailing partial block
    /// is ignored: callers pass whole blocks).
    pub(crate) fn compress(self, state: &mut [u32; 8], blocks: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only when `detect` found the instructions the kernel uses; the
        // kernel reads only whole blocks inside `blocks`.
        unsafe {
            compress_one(state, blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (state, blocks);
            unreachable!("ShaNi is never detected off x86_64")
        }
    }

    /// Compresses the whole blocks of `a_blocks` into `a` and of `b_blocks` into `b`, the two
    /// streams interleaved for as many blocks as both have.
    pub(crate) fn compress_pair(
        self,
        a: &mut [u32; 8],
        a_blocks: &[u8],
        b: &mut [u32; 8],
        b_blocks: &[u8],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `compress`.
        unsafe {
            compress_two(a, a_blocks, b, b_blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, a_blocks, b, b_blocks);
            unreachable!("ShaNi is never detected off x86_64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The state as `sha256rnds2` wants it: ABEF and CDGH.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pack(s: &[u32; 8]) -> State {
    let dcba = _mm_loadu_si128(s.as_ptr().cast());
    let hgfe = _mm_loadu_si128(s.as_ptr().add(4).cast());
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    State {
        abef: _mm_alignr_epi8(cdab, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unpack(st: State, s: &mut [u32; 8]) {
    let feba = _mm_shuffle_epi32(st.abef, 0x1B);
    let dchg = _mm_shuffle_epi32(st.cdgh, 0xB1);
    _mm_storeu_si128(s.as_mut_ptr().cast(), _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), _mm_alignr_epi8(dchg, feba, 8));
}

/// The block's 16 big-endian words, four per register. `block` is at least 64 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load(block: &[u8]) -> [__m128i; 4] {
    debug_assert!(block.len() >= 64);
    let swap = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
    let p = block.as_ptr().cast::<__m128i>();
    [
        _mm_shuffle_epi8(_mm_loadu_si128(p), swap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), swap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), swap),
        _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), swap),
    ]
}

/// Rounds `4g..4g+4`, extending the message schedule in place from group 4 on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rounds4(st: &mut State, w: &mut [__m128i; 4], g: usize) {
    if g >= 4 {
        let t = _mm_sha256msg1_epu32(w[g % 4], w[(g + 1) % 4]);
        let t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g + 3) % 4], w[(g + 2) % 4], 4));
        w[g % 4] = _mm_sha256msg2_epu32(t, w[(g + 3) % 4]);
    }
    let k = _mm_add_epi32(w[g % 4], _mm_loadu_si128(K.as_ptr().add(4 * g).cast()));
    st.cdgh = _mm_sha256rnds2_epu32(st.cdgh, st.abef, k);
    st.abef = _mm_sha256rnds2_epu32(st.abef, st.cdgh, _mm_shuffle_epi32(k, 0x0E));
}

/// The 16 round groups with literal indices, so that the `% 4` and `g >= 4` above fold away.
#[cfg(target_arch = "x86_64")]
macro_rules! all_groups {
    ($step:ident) => {
        $step!(0);
        $step!(1);
        $step!(2);
        $step!(3);
        $step!(4);
        $step!(5);
        $step!(6);
        $step!(7);
        $step!(8);
        $step!(9);
        $step!(10);
        $step!(11);
        $step!(12);
        $step!(13);
        $step!(14);
        $step!(15);
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,ssse3,sse4.1")]
unsafe fn compress_one(s: &mut [u32; 8], blocks: &[u8]) {
    let mut st = pack(s);
    for block in blocks.chunks_exact(64) {
        let saved = st;
        let mut w = load(block);
        macro_rules! step {
            ($g:literal) => {
                rounds4(&mut st, &mut w, $g)
            };
        }
        all_groups!(step);
        st.abef = _mm_add_epi32(st.abef, saved.abef);
        st.cdgh = _mm_add_epi32(st.cdgh, saved.cdgh);
    }
    unpack(st, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,ssse3,sse4.1")]
unsafe fn compress_two(a: &mut [u32; 8], a_blocks: &[u8], b: &mut [u32; 8], b_blocks: &[u8]) {
    let both = a_blocks.len().min(b_blocks.len()) / 64 * 64;
    let mut sa = pack(a);
    let mut sb = pack(b);
    for (x, y) in a_blocks[..both]
        .chunks_exact(64)
        .zip(b_blocks[..both].chunks_exact(64))
    {
        let (saved_a, saved_b) = (sa, sb);
        let mut wa = load(x);
        let mut wb = load(y);
        macro_rules! step {
            ($g:literal) => {
                rounds4(&mut sa, &mut wa, $g);
                rounds4(&mut sb, &mut wb, $g);
            };
        }
        all_groups!(step);
        sa.abef = _mm_add_epi32(sa.abef, saved_a.abef);
        sa.cdgh = _mm_add_epi32(sa.cdgh, saved_a.cdgh);
        sb.abef = _mm_add_epi32(sb.abef, saved_b.abef);
        sb.cdgh = _mm_add_epi32(sb.cdgh, saved_b.cdgh);
    }
    unpack(sa, a);
    unpack(sb, b);
    compress_one(a, &a_blocks[both..]);
    compress_one(b, &b_blocks[both..]);
}
