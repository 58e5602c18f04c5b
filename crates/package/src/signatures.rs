//! Tags 276 (VERITYSIGNATURES) and 277 (VERITYSIGNATUREALGO): the one place that knows how a
//! package stores its files' fs-verity signatures, for a package file's signature header and
//! for an rpmdb header alike (rpm copies both tags into the installed header under the same
//! numbers).

use fsverity::HashAlgorithm;
use rpm_format::{tags, Header, TagType};

/// Why a package's verity tags cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignaturesError {
    #[error(transparent)]
    Header(#[from] rpm_format::Error),
    #[error("VERITYSIGNATUREALGO must be one INT32")]
    AlgorithmType,
    #[error("unknown fs-verity algorithm {0} in tag 277")]
    UnknownAlgorithm(u32),
    #[error(
        "tag 276 has {found} signatures for {files} files: the signatures do not belong to this file list"
    )]
    CountMismatch { found: usize, files: usize },
}

/// The fs-verity algorithm of a package's signatures: tag 277, SHA-256 when absent (what rpm's
/// plugin assumes).
pub fn algorithm(h: &Header) -> Result<HashAlgorithm, SignaturesError> {
    let Some(e) = h.entry(tags::SIG_VERITYSIGNATUREALGO) else {
        return Ok(HashAlgorithm::Sha256);
    };
    if e.ty != TagType::Int32 || e.count != 1 {
        return Err(SignaturesError::AlgorithmType);
    }
    let id = h
        .get_u32(tags::SIG_VERITYSIGNATUREALGO)?
        .ok_or(SignaturesError::AlgorithmType)?;
    HashAlgorithm::from_id(id).ok_or(SignaturesError::UnknownAlgorithm(id))
}

/// Tag 276 of one header: one base64 entry per file of the header's file list, in header order.
/// Entries are kept encoded until asked for, so that one damaged entry is that file's problem.
pub struct VeritySignatures<'h> {
    pub algorithm: HashAlgorithm,
    entries: Vec<&'h [u8]>,
}

impl<'h> VeritySignatures<'h> {
    /// `None` when the header has no tag 276.
    pub fn read(h: &'h Header) -> Result<Option<Self>, SignaturesError> {
        let Some(entries) = h.get_string_array_bytes(tags::SIG_VERITYSIGNATURES)? else {
            return Ok(None);
        };
        Ok(Some(VeritySignatures {
            algorithm: algorithm(h)?,
            entries,
        }))
    }

    /// Only an array with one entry per file belongs to the file list (rpm's `lib/rpmfi.c`
    /// ignores any other).
    pub fn check_count(&self, files: usize) -> Result<(), SignaturesError> {
        if self.entries.len() == files {
            Ok(())
        } else {
            Err(SignaturesError::CountMismatch {
                found: self.entries.len(),
                files,
            })
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry decoded, in header order (an empty entry as an empty signature).
    pub fn all(&self) -> Result<Vec<Vec<u8>>, rpm_format::Error> {
        (0..self.len())
            .map(|i| self.get(i).map(Option::unwrap_or_default))
            .collect()
    }

    /// The DER signature of file `i`; `Ok(None)` for an empty entry (a file left unsigned) or
    /// an index past the end.
    pub fn get(&self, i: usize) -> Result<Option<Vec<u8>>, rpm_format::Error> {
        match self.entries.get(i) {
            Some(e) if !e.is_empty() => {
                let der = rpm_format::base64::decode_lenient(e)?;
                Ok((!der.is_empty()).then_some(der))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpm_format::{HeaderBuilder, HeaderKind, OwnedEntry};

    fn header(entries: &[OwnedEntry]) -> Header {
        let mut b = HeaderBuilder::new();
        for e in entries {
            b.put(e.clone());
        }
        let bytes = b.serialize(rpm_format::header::TAG_HEADERSIGNATURES);
        Header::parse(&bytes, HeaderKind::Signature).unwrap().0
    }

    #[test]
    fn algorithm_defaults_to_sha256_and_is_strict() {
        assert_eq!(algorithm(&header(&[])).unwrap(), HashAlgorithm::Sha256);
        let h = header(&[OwnedEntry::u32s(tags::SIG_VERITYSIGNATUREALGO, &[2])]);
        assert_eq!(algorithm(&h).unwrap(), HashAlgorithm::Sha512);
        let h = header(&[OwnedEntry::u32s(tags::SIG_VERITYSIGNATUREALGO, &[9])]);
        assert!(matches!(
            algorithm(&h),
            Err(SignaturesError::UnknownAlgorithm(9))
        ));
        let h = header(&[OwnedEntry::u32s(tags::SIG_VERITYSIGNATUREALGO, &[1, 1])]);
        assert!(matches!(algorithm(&h), Err(SignaturesError::AlgorithmType)));
    }

    #[test]
    fn entries_decode_one_by_one() {
        let h = header(&[OwnedEntry::string_array(
            tags::SIG_VERITYSIGNATURES,
            &[b"AQID".as_slice(), b"", b"A"],
        )]);
        let s = VeritySignatures::read(&h).unwrap().unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(0).unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(s.get(1).unwrap(), None);
        assert!(s.get(2).is_err());
        assert_eq!(s.get(3).unwrap(), None);
        assert!(s.check_count(3).is_ok());
        assert!(matches!(
            s.check_count(2),
            Err(SignaturesError::CountMismatch { found: 3, files: 2 })
        ));
        assert!(VeritySignatures::read(&header(&[])).unwrap().is_none());
    }
}
