//! Running digests in rpm's hash algorithms (PGPHASHALGO numbers), as PAYLOADDIGESTALGO and
//! FILEDIGESTALGO name them: the one place that maps a number to a hasher.
//!
//! SHA-256, what rpm 4.14 and later write, runs on `fsverity`'s stream hasher, which can
//! advance two digests over the same bytes at once ([`DigestStream::update_both`]): a file's
//! content is part of the payload, and checking it against FILEDIGESTS while the payload is
//! checked against PAYLOADDIGESTALT then costs about one pass instead of two.

use fsverity::Sha256Stream;
use sha2::digest::DynDigest;
use sha2::Digest;

use crate::error::{Error, Result};

/// A digest being computed in one of rpm's hash algorithms.
pub struct DigestStream(Inner);

enum Inner {
    Sha256(Sha256Stream),
    Other(Box<dyn DynDigest + Send>),
}

impl DigestStream {
    /// For rpm's algorithm number `algo` (1 MD5, 2 SHA-1, 8 SHA-256, 9 SHA-384, 10 SHA-512,
    /// 11 SHA-224).
    pub fn new(algo: u32) -> Result<DigestStream> {
        Ok(DigestStream(match algo {
            1 => Inner::Other(Box::new(md5::Md5::new())),
            2 => Inner::Other(Box::new(sha1::Sha1::new())),
            8 => Inner::Sha256(Sha256Stream::new()),
            9 => Inner::Other(Box::new(sha2::Sha384::new())),
            10 => Inner::Other(Box::new(sha2::Sha512::new())),
            11 => Inner::Other(Box::new(sha2::Sha224::new())),
            other => return Err(Error::UnknownDigestAlgo(other)),
        }))
    }

    /// The next piece of what is digested.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Sha256(h) => h.update(data),
            Inner::Other(h) => h.update(data),
        }
    }

    /// `self.update(data); other.update(data)`, in one interleaved pass when both are SHA-256.
    pub fn update_both(&mut self, other: &mut DigestStream, data: &[u8]) {
        match (&mut self.0, &mut other.0) {
            (Inner::Sha256(a), Inner::Sha256(b)) => a.update_both(b, data),
            _ => {
                self.update(data);
                other.update(data);
            }
        }
    }

    /// The digest's bytes, to compare with the hex a header holds.
    pub fn finalize(self) -> Vec<u8> {
        match self.0 {
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Other(h) => h.finalize().to_vec(),
        }
    }

    /// The digest of `data` alone.
    pub fn of(algo: u32, data: &[u8]) -> Result<Vec<u8>> {
        let mut h = DigestStream::new(algo)?;
        h.update(data);
        Ok(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_gives_its_known_answer() {
        let abc = [
            (1, "900150983cd24fb0d6963f7d28e17f72"),
            (2, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                8,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                11,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
        ];
        for (algo, want) in abc {
            assert_eq!(hex::encode(DigestStream::of(algo, b"abc").unwrap()), want);
        }
        assert_eq!(DigestStream::of(9, b"").unwrap().len(), 48);
        assert_eq!(DigestStream::of(10, b"").unwrap().len(), 64);
        assert!(matches!(
            DigestStream::new(7),
            Err(Error::UnknownDigestAlgo(7))
        ));
    }

    #[test]
    fn update_both_mixes_algorithms() {
        let mut a = DigestStream::new(8).unwrap();
        let mut b = DigestStream::new(1).unwrap();
        a.update(b"a");
        a.update_both(&mut b, b"bc");
        assert_eq!(a.finalize(), DigestStream::of(8, b"abc").unwrap());
        assert_eq!(b.finalize(), DigestStream::of(1, b"bc").unwrap());
    }
}
