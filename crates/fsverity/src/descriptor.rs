//! The 256-byte `fsverity_descriptor` whose hash is the file digest.

use sha2::Digest;

use crate::{Error, FileDigest, HashAlgorithm, Params, MAX_SALT_SIZE};

/// Size of `struct fsverity_descriptor` without the kernel's trailing signature.
pub const DESCRIPTOR_SIZE: usize = 256;

/// What the file digest commits to: parameters, file size and Merkle root.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Descriptor {
    params: Params,
    data_size: u64,
    root_hash: [u8; 64],
}

impl Descriptor {
    /// `root_hash` must be exactly the digest size of `params`' hash (else `None`).
    pub fn new(params: &Params, data_size: u64, root_hash: &[u8]) -> Option<Descriptor> {
        if root_hash.len() != params.digest_size() {
            return None;
        }
        let mut r = [0u8; 64];
        r[..root_hash.len()].copy_from_slice(root_hash);
        Some(Descriptor {
            params: *params,
            data_size,
            root_hash: r,
        })
    }

    /// The descriptor of an empty file: its root hash is all zeros and there is no tree.
    pub fn empty_file(params: &Params) -> Descriptor {
        Descriptor {
            params: *params,
            data_size: 0,
            root_hash: [0; 64],
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    pub fn root_hash(&self) -> &[u8] {
        &self.root_hash[..self.params.digest_size()]
    }

    /// Layout of linux/fsverity.h; `sig_size` is always 0 because the digest is defined over
    /// the descriptor without a signature.
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut d = [0u8; DESCRIPTOR_SIZE];
        let salt = self.params.salt();
        d[0] = 1;
        d[1] = self.params.hash_algorithm().id();
        d[2] = self.params.log_block_size();
        d[3] = salt.len() as u8;
        d[8..16].copy_from_slice(&self.data_size.to_le_bytes());
        d[16..80].copy_from_slice(&self.root_hash);
        d[80..80 + salt.len()].copy_from_slice(salt);
        d
    }

    /// Parses a descriptor as `FS_IOC_READ_VERITY_METADATA` or `--out-descriptor` gives it.
    /// `sig_size` is ignored (the kernel's copy may carry one); everything else is checked.
    pub fn from_bytes(b: &[u8]) -> Result<Descriptor, Error> {
        if b.len() != DESCRIPTOR_SIZE {
            return Err(Error::BadDescriptor("not 256 bytes long"));
        }
        if b[0] != 1 {
            return Err(Error::BadDescriptor("unsupported version"));
        }
        let alg = HashAlgorithm::from_id(u32::from(b[1]))
            .ok_or(Error::BadDescriptor("unknown hash algorithm"))?;
        if b[2] >= 32 {
            return Err(Error::BadDescriptor("block size out of range"));
        }
        let salt_size = usize::from(b[3]);
        if salt_size > MAX_SALT_SIZE {
            return Err(Error::BadDescriptor("salt longer than 32 bytes"));
        }
        let params = Params::new(alg, 1u32 << b[2], &b[80..80 + salt_size])?;
        let d = alg.digest_size();
        if b[16 + d..80].iter().any(|&x| x != 0)
            || b[80 + salt_size..112].iter().any(|&x| x != 0)
            || b[112..].iter().any(|&x| x != 0)
        {
            return Err(Error::BadDescriptor("non-zero padding or reserved bytes"));
        }
        let mut data_size = [0u8; 8];
        data_size.copy_from_slice(&b[8..16]);
        let mut root_hash = [0u8; 64];
        root_hash.copy_from_slice(&b[16..80]);
        Ok(Descriptor {
            params,
            data_size: u64::from_le_bytes(data_size),
            root_hash,
        })
    }

    /// The fs-verity file digest: the descriptor's hash.
    pub fn digest(&self) -> FileDigest {
        let bytes = self.to_bytes();
        let alg = self.params.hash_algorithm();
        let d = match alg {
            HashAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(bytes).to_vec(),
        };
        FileDigest::new(alg, &d).expect("digest has the algorithm's size")
    }
}

/// The digest of an empty file, without building anything: one hash of the descriptor.
pub fn empty_file_digest(params: &Params) -> FileDigest {
    Descriptor::empty_file(params).digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let p = Params::new(HashAlgorithm::Sha512, 1024, b"abcd").unwrap();
        let root: Vec<u8> = (1..=64).collect();
        let desc = Descriptor::new(&p, 0x0102_0304_0506_0708, &root).unwrap();
        let b = desc.to_bytes();
        assert_eq!(&b[..4], &[1, 2, 10, 4]);
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[16..80], &root[..]);
        assert_eq!(&b[80..84], b"abcd");
        assert!(b[84..].iter().all(|&x| x == 0));
        assert_eq!(Descriptor::from_bytes(&b).unwrap(), desc);

        let p = Params::default();
        let desc = Descriptor::new(&p, 5, &[0xaa; 32]).unwrap();
        let b = desc.to_bytes();
        assert_eq!(&b[..4], &[1, 1, 12, 0]);
        assert!(b[48..].iter().all(|&x| x == 0));
        assert!(Descriptor::new(&p, 5, &[0xaa; 64]).is_none());
    }

    #[test]
    fn parse_rejects_garbage() {
        let good = Descriptor::new(&Params::default(), 5, &[0xaa; 32])
            .unwrap()
            .to_bytes();
        assert!(Descriptor::from_bytes(&good[..255]).is_err());
        for (off, val) in [
            (0, 2u8),
            (1, 3),
            (2, 40),
            (2, 5),
            (3, 33),
            (60, 1),
            (100, 1),
            (200, 1),
        ] {
            let mut b = good;
            b[off] = val;
            assert!(Descriptor::from_bytes(&b).is_err(), "offset {off} = {val}");
        }
        let mut b = good;
        b[4] = 9; // sig_size in the kernel's copy
        assert!(Descriptor::from_bytes(&b).is_ok());
    }

    #[test]
    fn empty_file_vectors() {
        assert_eq!(
            empty_file_digest(&Params::default()).to_hex(),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        let p = Params::new(HashAlgorithm::Sha512, 4096, &[]).unwrap();
        assert_eq!(
            empty_file_digest(&p).to_hex(),
            "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"
        );
    }
}
