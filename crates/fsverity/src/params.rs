//! Merkle-tree parameters (hash, block size, salt), validated the way libfsverity validates them.

use crate::HashAlgorithm;

/// Largest accepted Merkle-tree block size. libfsverity has no explicit cap (it accepted 16 MiB
/// in our checks); we stop there so that one block buffer per tree level stays a bounded
/// allocation. The kernel itself only takes blocks up to the page size.
pub const MAX_BLOCK_SIZE: u32 = 1 << 24;

/// The block size rpm always uses (`RPM_FSVERITY_BLKSZ`), and libfsverity's default.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

/// The descriptor has a 32-byte salt field; longer salts cannot be represented.
pub const MAX_SALT_SIZE: usize = 32;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("block size {0} is not a power of two")]
    BlockSizeNotPowerOfTwo(u64),
    #[error("block size {block_size} is too small for {alg}: at least {min} bytes are needed")]
    BlockSizeTooSmall {
        block_size: u64,
        alg: HashAlgorithm,
        min: u64,
    },
    #[error("block size {0} is too large; at most {MAX_BLOCK_SIZE} is supported")]
    BlockSizeTooLarge(u64),
    #[error("salt is {0} bytes; at most {MAX_SALT_SIZE} are allowed")]
    SaltTooLong(usize),
    #[error("unknown hash algorithm {0:?} (known: sha256, sha512)")]
    UnknownHashAlgorithm(String),
    #[error("salt is not a valid hex string")]
    BadSaltHex,
    #[error("invalid fs-verity descriptor: {0}")]
    BadDescriptor(&'static str),
    #[error("cannot start {0} hashing threads: {1}")]
    ThreadPool(usize, String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What determines a file's fs-verity digest besides its contents.
///
/// Always valid once constructed, so the hashing code never re-checks it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    alg: HashAlgorithm,
    block_size: u32,
    salt: [u8; MAX_SALT_SIZE],
    salt_len: u8,
}

impl Params {
    /// The parameters rpm digests and enables every file with: `alg` (rpm's `--verityalgo`),
    /// [`DEFAULT_BLOCK_SIZE`] blocks, no salt. Infallible, so that callers need not repeat the
    /// constants or handle an error that cannot happen.
    pub const fn for_rpm(alg: HashAlgorithm) -> Params {
        Params {
            alg,
            block_size: DEFAULT_BLOCK_SIZE,
            salt: [0; MAX_SALT_SIZE],
            salt_len: 0,
        }
    }

    pub fn new(hash: HashAlgorithm, block_size: u32, salt: &[u8]) -> Result<Params, Error> {
        let bs = u64::from(block_size);
        if !block_size.is_power_of_two() {
            return Err(Error::BlockSizeNotPowerOfTwo(bs));
        }
        let min = 2 * hash.digest_size() as u64;
        if bs < min {
            return Err(Error::BlockSizeTooSmall {
                block_size: bs,
                alg: hash,
                min,
            });
        }
        if block_size > MAX_BLOCK_SIZE {
            return Err(Error::BlockSizeTooLarge(bs));
        }
        if salt.len() > MAX_SALT_SIZE {
            return Err(Error::SaltTooLong(salt.len()));
        }
        let mut s = [0u8; MAX_SALT_SIZE];
        s[..salt.len()].copy_from_slice(salt);
        Ok(Params {
            alg: hash,
            block_size,
            salt: s,
            salt_len: salt.len() as u8,
        })
    }

    /// Like [`Params::new`] with the salt given as hex (upper or lower case, empty for none),
    /// as `fsverity digest --salt` takes it.
    pub fn with_hex_salt(
        hash: HashAlgorithm,
        block_size: u32,
        salt_hex: &str,
    ) -> Result<Params, Error> {
        let salt = parse_hex_salt(salt_hex)?;
        Params::new(hash, block_size, &salt)
    }

    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// log2 of the block size, as stored in the descriptor.
    pub fn log_block_size(&self) -> u8 {
        self.block_size.trailing_zeros() as u8
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt[..usize::from(self.salt_len)]
    }

    pub fn digest_size(&self) -> usize {
        self.alg.digest_size()
    }

    /// How many child hashes one tree block holds.
    pub fn hashes_per_block(&self) -> usize {
        self.block_size as usize / self.alg.digest_size()
    }

    /// The salt zero-padded to a multiple of the hash's input block, which libfsverity hashes
    /// in front of every block; empty when there is no salt.
    pub fn padded_salt(&self) -> Vec<u8> {
        let n = self.salt().len();
        if n == 0 {
            return Vec::new();
        }
        let ib = self.alg.input_block_size();
        let mut v = self.salt().to_vec();
        v.resize(n.div_ceil(ib) * ib, 0);
        v
    }
}

/// rpm's parameters with rpm's default algorithm, SHA-256.
impl Default for Params {
    fn default() -> Self {
        Params::for_rpm(HashAlgorithm::Sha256)
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let salt: String = self.salt().iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("Params")
            .field("hash", &self.alg)
            .field("block_size", &self.block_size)
            .field("salt", &salt)
            .finish()
    }
}

/// Decodes a hex salt. Checks the length before decoding so that a huge argument is refused
/// without allocating for it.
pub fn parse_hex_salt(s: &str) -> Result<Vec<u8>, Error> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err(Error::BadSaltHex);
    }
    let digit = |c: u8| -> Result<u8, Error> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(Error::BadSaltHex),
        }
    };
    if s.len() / 2 > MAX_SALT_SIZE {
        return Err(Error::SaltTooLong(s.len() / 2));
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    for pair in s.chunks_exact(2) {
        out.push(digit(pair[0])? << 4 | digit(pair[1])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_rpm_params() {
        let p = Params::default();
        assert_eq!(p.hash_algorithm(), HashAlgorithm::Sha256);
        assert_eq!(p.block_size(), 4096);
        assert_eq!(p.log_block_size(), 12);
        assert!(p.salt().is_empty());
        assert!(p.padded_salt().is_empty());
        assert_eq!(p.hashes_per_block(), 128);
    }

    #[test]
    fn rpm_params_are_valid_for_every_algorithm() {
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let p = Params::for_rpm(alg);
            assert_eq!(p, Params::new(alg, 4096, &[]).unwrap());
            assert_eq!(p.hash_algorithm(), alg);
            assert_eq!(p.block_size(), 4096);
            assert!(p.salt().is_empty());
        }
    }

    #[test]
    fn block_size_rules_match_libfsverity() {
        use HashAlgorithm::*;
        assert!(Params::new(Sha256, 64, &[]).is_ok());
        assert!(Params::new(Sha512, 128, &[]).is_ok());
        assert!(Params::new(Sha256, 131072, &[]).is_ok());
        assert!(Params::new(Sha256, 1 << 24, &[]).is_ok());
        let e = Params::new(Sha256, 1000, &[]).unwrap_err();
        assert_eq!(e.to_string(), "block size 1000 is not a power of two");
        assert!(matches!(
            Params::new(Sha256, 0, &[]),
            Err(Error::BlockSizeNotPowerOfTwo(0))
        ));
        assert!(matches!(
            Params::new(Sha256, 32, &[]),
            Err(Error::BlockSizeTooSmall { .. })
        ));
        assert!(matches!(
            Params::new(Sha512, 64, &[]),
            Err(Error::BlockSizeTooSmall { .. })
        ));
        assert!(matches!(
            Params::new(Sha256, 1 << 25, &[]),
            Err(Error::BlockSizeTooLarge(_))
        ));
        assert!(matches!(
            Params::new(Sha256, 1 << 31, &[]),
            Err(Error::BlockSizeTooLarge(_))
        ));
    }

    #[test]
    fn salt_rules() {
        assert!(Params::new(HashAlgorithm::Sha256, 4096, &[7; 32]).is_ok());
        let e = Params::new(HashAlgorithm::Sha256, 4096, &[7; 33]).unwrap_err();
        assert_eq!(e.to_string(), "salt is 33 bytes; at most 32 are allowed");
        let p = Params::new(HashAlgorithm::Sha256, 4096, b"abcd").unwrap();
        assert_eq!(p.salt(), b"abcd");
        let ps = p.padded_salt();
        assert_eq!(ps.len(), 64);
        assert_eq!(&ps[..4], b"abcd");
        assert!(ps[4..].iter().all(|&b| b == 0));
        let p = Params::new(HashAlgorithm::Sha512, 4096, &[1; 32]).unwrap();
        assert_eq!(p.padded_salt().len(), 128);
    }

    #[test]
    fn hex_salt() {
        assert_eq!(parse_hex_salt("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_hex_salt("61626364").unwrap(), b"abcd");
        assert_eq!(parse_hex_salt("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(matches!(parse_hex_salt("0"), Err(Error::BadSaltHex)));
        assert!(matches!(parse_hex_salt("zz"), Err(Error::BadSaltHex)));
        assert!(matches!(
            parse_hex_salt(&"00".repeat(33)),
            Err(Error::SaltTooLong(33))
        ));
        assert!(matches!(
            parse_hex_salt(&"00".repeat(100_000)),
            Err(Error::SaltTooLong(100_000))
        ));
        let p = Params::with_hex_salt(HashAlgorithm::Sha256, 4096, "00").unwrap();
        assert_eq!(p.salt(), &[0]);
    }
}
