//! Identical digests (every directory, symlink and empty file of a package; files duplicated
//! across packages) need one signature, not one each: signing is the expensive step, and a
//! remote signer is paid per digest sent.

use std::collections::HashMap;

use fsverity::FileDigest;

/// A list of digests as its distinct members plus, for each input, which member it is.
pub struct DistinctDigests<'a> {
    /// First occurrence order.
    pub unique: Vec<&'a FileDigest>,
    slot_of_input: Vec<usize>,
}

impl<'a> DistinctDigests<'a> {
    pub fn new(digests: &'a [FileDigest]) -> Self {
        let mut slot_of: HashMap<&FileDigest, usize> = HashMap::with_capacity(digests.len());
        let mut unique: Vec<&FileDigest> = Vec::new();
        let slot_of_input = digests
            .iter()
            .map(|d| {
                *slot_of.entry(d).or_insert_with(|| {
                    unique.push(d);
                    unique.len() - 1
                })
            })
            .collect();
        DistinctDigests {
            unique,
            slot_of_input,
        }
    }

    /// One value per input, taken from `per_unique` (one per distinct digest, in `unique`'s
    /// order); `None` when `per_unique` does not have one per distinct digest.
    pub fn spread<T: Clone>(&self, per_unique: &[T]) -> Option<Vec<T>> {
        spread(&self.slot_of_input, self.unique.len(), per_unique)
    }

    /// What [`DistinctDigests::spread`] needs, without the borrowed digests: for a request
    /// whose signatures come back after its digests were handed to signing threads.
    pub fn spreader(&self) -> Spreader {
        Spreader {
            slot_of_input: self.slot_of_input.clone(),
            unique: self.unique.len(),
        }
    }
}

/// [`DistinctDigests::spread`] for later.
#[derive(Clone, Debug)]
pub struct Spreader {
    slot_of_input: Vec<usize>,
    unique: usize,
}

impl Spreader {
    pub fn spread<T: Clone>(&self, per_unique: &[T]) -> Option<Vec<T>> {
        spread(&self.slot_of_input, self.unique, per_unique)
    }
}

fn spread<T: Clone>(slot_of_input: &[usize], unique: usize, per_unique: &[T]) -> Option<Vec<T>> {
    if per_unique.len() != unique {
        return None;
    }
    Some(
        slot_of_input
            .iter()
            .map(|&i| per_unique[i].clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_share_a_slot() {
        let p = fsverity::Params::default();
        let a = fsverity::digest_bytes(&p, b"a");
        let b = fsverity::digest_bytes(&p, b"b");
        let input = vec![a.clone(), b.clone(), a.clone(), a];
        let d = DistinctDigests::new(&input);
        assert_eq!(d.unique.len(), 2);
        assert_eq!(d.spread(&[1, 2]).unwrap(), vec![1, 2, 1, 1]);
        assert!(d.spread(&[1]).is_none());
    }
}
