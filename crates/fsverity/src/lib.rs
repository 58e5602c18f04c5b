//! fs-verity file digests, byte-identical to fsverity-utils (libfsverity).
//!
//! Knows nothing about RPM or signing. The kernel interface lives in [`linux`].
//!
//! `unsafe` is denied everywhere except in the private `sys` module, which holds every raw
//! call into the kernel, so that the whole soundness argument of the crate is in one place.
#![deny(unsafe_code)]

use std::fmt;

pub mod descriptor;
pub mod hash;
pub mod linux;
pub mod params;
pub mod sha256;
#[allow(unsafe_code)]
mod sys;
pub mod tree;

pub use descriptor::{empty_file_digest, Descriptor, DESCRIPTOR_SIZE};
pub use hash::Backend;
pub use params::{
    parse_hex_salt, Error, Params, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_SALT_SIZE,
};
pub use sha256::Sha256Stream;
pub use tree::{
    digest_bytes, digest_file, digest_reader, open_regular_file, tree_size, DigestBuilder,
    Finished, MerkleTree, Threads,
};

/// Hash algorithms fs-verity defines (`FS_VERITY_HASH_ALG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    #[default]
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// The numeric id used in descriptors, formatted digests, ioctls and RPM tag 277.
    pub fn id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha512 => 2,
        }
    }

    pub fn from_id(id: u32) -> Option<Self> {
        match id {
            1 => Some(HashAlgorithm::Sha256),
            2 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    /// Exact lower-case names, as libfsverity (and rpmsign's `--verityalgo`) accept them.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    pub fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The hash's internal block size; a non-empty salt is zero-padded to a multiple of it.
    pub fn input_block_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An fs-verity file digest: the hash of the 256-byte descriptor (what FS_IOC_MEASURE_VERITY
/// returns), not the Merkle root.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileDigest {
    alg: HashAlgorithm,
    bytes: [u8; 64],
}

impl FileDigest {
    /// Returns `None` when `bytes` is not exactly the algorithm's digest size.
    pub fn new(alg: HashAlgorithm, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != alg.digest_size() {
            return None;
        }
        let mut b = [0u8; 64];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(Self { alg, bytes: b })
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.digest_size()]
    }

    pub fn to_hex(&self) -> String {
        self.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The `fsverity_formatted_digest` (44 or 76 bytes) that built-in signatures sign:
    /// `"FSVerity" || le16 alg || le16 size || digest`.
    pub fn formatted(&self) -> Vec<u8> {
        let d = self.as_bytes();
        let mut out = Vec::with_capacity(12 + d.len());
        out.extend_from_slice(b"FSVerity");
        out.extend_from_slice(&u16::from(self.alg.id()).to_le_bytes());
        out.extend_from_slice(&(d.len() as u16).to_le_bytes());
        out.extend_from_slice(d);
        out
    }
}

/// `sha256:<hex>`, as `fsverity digest` prints it.
impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg, self.to_hex())
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
