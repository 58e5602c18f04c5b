//! Signature-header rewrite, byte-exact with rpm 4.18's `rpmSign` (spec §3.4).
//!
//! rpmsign drops the region, edits the tag set, compares the size before and after with
//! `headerSizeof`, shrinks RESERVEDSPACE by the growth when that keeps the header the same size
//! on disk (in-place mode), and otherwise writes a new file with a regenerated lead (rewrite
//! mode). Given the same resulting tag set, [`plan_rewrite`] produces the same bytes. We never
//! add an OpenPGP signature, so our growth is smaller than rpmsign's; that is intended.

use crate::base64;
use crate::error::{Error, Result};
use crate::header::{
    Header, HeaderBuilder, HeaderKind, OwnedEntry, TagType, SIG_MAX_DL, SIG_MAX_IL,
    TAG_HEADERSIGNATURES,
};
use crate::tags;

/// fs-verity hash algorithm ids stored in tag 277.
pub const VERITY_ALGO_SHA256: u32 = 1;
pub const VERITY_ALGO_SHA512: u32 = 2;

/// Zero padding after a signature header so that the main header starts 8-aligned.
pub fn signature_padding(header_len: usize) -> usize {
    (8 - header_len % 8) % 8
}

/// How the new signature header has to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteMode {
    /// Same on-disk length (padding included): overwrite the bytes at offset 96; lead, main
    /// header, payload and file size stay as they are.
    InPlace,
    /// Different length: write a new file = regenerated lead ([`crate::Lead::from_header`]) +
    /// [`RewritePlan::signature_bytes`] + the original main header and payload verbatim.
    Rewrite,
}

/// The outcome of a signature-header edit.
#[derive(Debug, Clone)]
pub struct RewritePlan {
    pub mode: RewriteMode,
    /// The new signature header with its zero padding to 8 bytes: exactly what goes at offset 96.
    pub signature_bytes: Vec<u8>,
    /// rpm's `headerSizeof` of the region-less header before and after the edit (before the
    /// reservation was adjusted).
    pub orig_size: usize,
    pub new_size: usize,
    /// On-disk length (with padding) of the original signature header.
    pub old_on_disk_len: usize,
    /// RESERVEDSPACE byte counts before and after.
    pub reserved_before: Option<usize>,
    pub reserved_after: Option<usize>,
}

impl RewritePlan {
    /// `new − orig` as rpmsign computes it.
    pub fn diff(&self) -> i64 {
        self.new_size as i64 - self.orig_size as i64
    }

    /// Change of the package file size in bytes.
    pub fn file_growth(&self) -> i64 {
        self.signature_bytes.len() as i64 - self.old_on_disk_len as i64
    }
}

/// Applies `edit` to the tag set of `original` (a package signature header) and lays the result
/// out as rpm 4.18 would.
pub fn plan_rewrite(
    original: &Header,
    edit: impl FnOnce(&mut HeaderBuilder) -> Result<()>,
) -> Result<RewritePlan> {
    if original.region().map(|r| r.tag) != Some(TAG_HEADERSIGNATURES) {
        return Err(Error::Rewrite(
            "signature header has no HEADERSIGNATURES region".into(),
        ));
    }
    let mut b = HeaderBuilder::from_header(original);
    let orig_size = b.size_without_region();
    edit(&mut b)?;
    let new_size = b.size_without_region();
    let diff = new_size as i64 - orig_size as i64;
    let old_on_disk_len = original.len() + signature_padding(original.len());

    let reserved_before = b.get(tags::SIG_RESERVEDSPACE).map(|e| e.data.len());
    let mut mode = RewriteMode::Rewrite;
    let mut reserved_after = reserved_before;
    if let Some(count) = reserved_before {
        if diff > 0 && (diff as usize) < count {
            let shrunk = count - diff as usize;
            let kept = b.get(tags::SIG_RESERVEDSPACE).cloned();
            b.put(OwnedEntry {
                tag: tags::SIG_RESERVEDSPACE,
                ty: TagType::Bin,
                count: shrunk as u32,
                data: vec![0; shrunk],
            });
            let len = b.serialize(TAG_HEADERSIGNATURES).len();
            if len + signature_padding(len) == old_on_disk_len {
                mode = RewriteMode::InPlace;
                reserved_after = Some(shrunk);
            } else if let Some(k) = kept {
                // The original was not laid out the way rpm lays out headers, so shrinking
                // would not keep the length: rewrite with the reservation untouched instead of
                // writing a header of a different size over the old one.
                b.put(k);
            }
        }
    }

    let mut bytes = b.serialize(TAG_HEADERSIGNATURES);
    let il = b.entries().len() as u32 + 1;
    let dl = (bytes.len() - 16 - 16 * il as usize) as u32;
    if il > SIG_MAX_IL || dl > SIG_MAX_DL {
        return Err(Error::Rewrite(format!(
            "new signature header too large for rpm (il {il}, dl {dl}; limits {SIG_MAX_IL}, {SIG_MAX_DL})"
        )));
    }
    bytes.resize(bytes.len() + signature_padding(bytes.len()), 0);
    Ok(RewritePlan {
        mode,
        signature_bytes: bytes,
        orig_size,
        new_size,
        old_on_disk_len,
        reserved_before,
        reserved_after,
    })
}

/// The tag-set edit rpmsign's `--signverity` makes (minus the OpenPGP part): replace 276/277
/// with one base64 string per header file and the algorithm id. With no files, no verity tags
/// at all (rpm 4.18's behaviour there is undefined).
pub fn put_verity(b: &mut HeaderBuilder, signatures: &[Vec<u8>], alg_id: u32) {
    b.remove(tags::SIG_VERITYSIGNATURES);
    b.remove(tags::SIG_VERITYSIGNATUREALGO);
    if signatures.is_empty() {
        return;
    }
    let strings: Vec<String> = signatures
        .iter()
        .map(|s| base64::encode_wrapped(s))
        .collect();
    b.put(OwnedEntry::string_array(
        tags::SIG_VERITYSIGNATURES,
        &strings,
    ));
    b.put(OwnedEntry::u32s(tags::SIG_VERITYSIGNATUREALGO, &[alg_id]));
}

/// A package's signature header with the verity-specific views and edits.
#[derive(Debug, Clone)]
pub struct SignatureHeader {
    header: Header,
}

impl SignatureHeader {
    pub fn new(header: Header) -> SignatureHeader {
        SignatureHeader { header }
    }

    pub fn parse(bytes: &[u8]) -> Result<SignatureHeader> {
        Ok(SignatureHeader {
            header: Header::parse(bytes, HeaderKind::Signature)?.0,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn into_header(self) -> Header {
        self.header
    }

    /// On-disk bytes including the padding, as found in the package.
    pub fn on_disk_bytes(&self) -> Vec<u8> {
        let mut v = self.header.raw().to_vec();
        v.resize(v.len() + signature_padding(v.len()), 0);
        v
    }

    pub fn reserved_space(&self) -> Option<usize> {
        self.header
            .entry(tags::SIG_RESERVEDSPACE)
            .map(|e| e.count as usize)
    }

    /// Adds (replacing earlier) verity signatures: one DER signature per header file, in
    /// header order.
    pub fn with_verity(&self, signatures: &[Vec<u8>], alg_id: u32) -> Result<RewritePlan> {
        plan_rewrite(&self.header, |b| {
            put_verity(b, signatures, alg_id);
            Ok(())
        })
    }

    /// [`SignatureHeader::with_verity`], but a rewritten header shorter than `len` bytes on disk
    /// (padding included) gets RESERVEDSPACE grown so that it is exactly `len` long. For signers
    /// whose signatures vary in length (ECDSA): the layout can then be fixed from the longest
    /// signature before any exists, and is the same whatever lengths the signatures turn out to
    /// have. When that cannot be done (no reservation, or a header whose length the reservation
    /// cannot make up exactly) the plan is [`SignatureHeader::with_verity`]'s. An in-place plan
    /// is kept as it is.
    pub fn with_verity_reserving(
        &self,
        signatures: &[Vec<u8>],
        alg_id: u32,
        len: usize,
    ) -> Result<RewritePlan> {
        let plan = self.with_verity(signatures, alg_id)?;
        let short = len.saturating_sub(plan.signature_bytes.len());
        let Some(reserved) = plan.reserved_after else {
            return Ok(plan);
        };
        if plan.mode != RewriteMode::Rewrite || short == 0 {
            return Ok(plan);
        }
        // Growing the reservation by g adds g to the unpadded length; the padding to 8 takes up
        // to 7 of the shortfall.
        for grow in (short.saturating_sub(7).max(1)..=short + 7).rev() {
            let grown = self.rewrite(|b| {
                put_verity(b, signatures, alg_id);
                b.put(OwnedEntry {
                    tag: tags::SIG_RESERVEDSPACE,
                    ty: TagType::Bin,
                    count: (reserved + grow) as u32,
                    data: vec![0; reserved + grow],
                });
                Ok(())
            })?;
            if grown.mode == RewriteMode::Rewrite && grown.signature_bytes.len() == len {
                return Ok(grown);
            }
        }
        Ok(plan)
    }

    /// Removes 276/277 (what `rpmsign --delfilesign` does for verity).
    pub fn without_verity(&self) -> Result<RewritePlan> {
        plan_rewrite(&self.header, |b| {
            b.remove(tags::SIG_VERITYSIGNATURES);
            b.remove(tags::SIG_VERITYSIGNATUREALGO);
            Ok(())
        })
    }

    /// Arbitrary edit, laid out like rpmsign (e.g. to reproduce a run that also added 268).
    pub fn rewrite(
        &self,
        edit: impl FnOnce(&mut HeaderBuilder) -> Result<()>,
    ) -> Result<RewritePlan> {
        plan_rewrite(&self.header, edit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags 276 (decoded) and 277 as written: the reading side proper is verity-package's.
    fn verity_tags(s: &SignatureHeader) -> (Vec<Vec<u8>>, Option<u32>) {
        let h = s.header();
        let sigs = h
            .get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| base64::decode_lenient(e).unwrap())
            .collect();
        (sigs, h.get_u32(tags::SIG_VERITYSIGNATUREALGO).unwrap())
    }

    /// A signature header like rpmbuild 4.18 writes: SHA256, SHA1, MD5, PAYLOADSIZE, SIZE,
    /// RESERVEDSPACE(4128).
    fn rpmbuild_sig() -> Header {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(tags::SIG_SHA1, &"a".repeat(40)));
        b.put(OwnedEntry::string(tags::SIG_SHA256, &"b".repeat(64)));
        b.put(OwnedEntry::u32s(tags::SIG_SIZE, &[5000]));
        b.put(OwnedEntry::bin(tags::SIG_MD5, &[7; 16]));
        b.put(OwnedEntry::u32s(tags::SIG_PAYLOADSIZE, &[9000]));
        b.put(OwnedEntry::bin(tags::SIG_RESERVEDSPACE, &[0; 4128]));
        Header::parse(&b.serialize(TAG_HEADERSIGNATURES), HeaderKind::Signature)
            .unwrap()
            .0
    }

    #[test]
    fn with_verity_reserving_makes_shorter_signatures_take_the_longest_layout() {
        let sig = SignatureHeader::new(rpmbuild_sig());
        // 20 files: more than the reservation holds, so a rewrite.
        let longest = sig.with_verity(&vec![vec![0x30u8; 213]; 20], 1).unwrap();
        assert_eq!(longest.mode, RewriteMode::Rewrite);
        let target = longest.signature_bytes.len();
        for lens in [
            vec![210usize; 20],
            (0..20).map(|i| 210 + i % 4).collect::<Vec<_>>(),
        ] {
            let sigs: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0x30u8; n]).collect();
            let plain = sig.with_verity(&sigs, 1).unwrap();
            assert!(plain.signature_bytes.len() < target);
            let plan = sig.with_verity_reserving(&sigs, 1, target).unwrap();
            assert_eq!(plan.mode, RewriteMode::Rewrite);
            assert_eq!(plan.signature_bytes.len(), target);
            let parsed = SignatureHeader::parse(&plan.signature_bytes).unwrap();
            assert_eq!(verity_tags(&parsed), (sigs.clone(), Some(1)));
            assert!(plan.reserved_after.unwrap() > 4128 - 1);
            let grown = parsed
                .header()
                .entry(tags::SIG_RESERVEDSPACE)
                .map(|e| parsed.header().entry_data(e).to_vec())
                .unwrap();
            assert!(grown.len() > 4128 && grown.iter().all(|&b| b == 0));
        }
        // In place stays in place; a plan already long enough is unchanged.
        let one = sig.with_verity(&[vec![0x30u8; 210]], 1).unwrap();
        assert_eq!(one.mode, RewriteMode::InPlace);
        let kept = sig
            .with_verity_reserving(&[vec![0x30u8; 210]], 1, 99999)
            .unwrap();
        assert_eq!(kept.signature_bytes, one.signature_bytes);
        let same = sig
            .with_verity_reserving(&vec![vec![0x30u8; 213]; 20], 1, target)
            .unwrap();
        assert_eq!(same.signature_bytes, longest.signature_bytes);
    }

    #[test]
    fn rpmbuild_layout_numbers() {
        // spec §3.3: il=7, dl=4276, on-disk 4404 with pad 4; orig = 4372.
        let h = rpmbuild_sig();
        assert_eq!(h.index_count(), 7);
        assert_eq!(h.data_len(), 4276);
        assert_eq!(h.len(), 4404);
        assert_eq!(h.len() + signature_padding(h.len()), 4408);
        let plan = SignatureHeader::new(h).rewrite(|_| Ok(())).unwrap();
        assert_eq!(plan.orig_size, 4372);
        assert_eq!(plan.diff(), 0);
        // diff 0 → rpmsign takes the rewrite path; same bytes though.
        assert_eq!(plan.mode, RewriteMode::Rewrite);
        assert_eq!(plan.signature_bytes.len(), 4408);
    }

    #[test]
    fn in_place_worked_example() {
        // spec §3.4: one file, RSA sig 330 bytes + one 582-byte verity string + algo →
        // diff 964, RESERVEDSPACE 4128 → 3164, same on-disk size.
        let sig = SignatureHeader::new(rpmbuild_sig());
        let der = vec![0x30u8; 427]; // → 581-char base64 + NUL = 582
        let plan = sig
            .rewrite(|b| {
                b.put(OwnedEntry::bin(tags::SIG_RSA, &[1; 330]));
                put_verity(b, std::slice::from_ref(&der), VERITY_ALGO_SHA256);
                Ok(())
            })
            .unwrap();
        assert_eq!(plan.diff(), 964);
        assert_eq!(plan.mode, RewriteMode::InPlace);
        assert_eq!(plan.reserved_after, Some(3164));
        assert_eq!(plan.signature_bytes.len(), 4408);
        assert_eq!(plan.file_growth(), 0);
        let (h, _) = Header::parse(&plan.signature_bytes, HeaderKind::Signature).unwrap();
        let s = SignatureHeader::new(h);
        assert_eq!(verity_tags(&s), (vec![der], Some(1)));
        assert_eq!(s.reserved_space(), Some(3164));
        // Tags in ascending order, region first.
        let tags: Vec<u32> = s.header().entries().iter().map(|e| e.tag).collect();
        assert_eq!(
            tags,
            vec![62, 268, 269, 273, 276, 277, 1000, 1004, 1007, 1008]
        );
    }

    #[test]
    fn rewrite_mode_when_growth_exceeds_reservation() {
        // Nine files → diff > 4128: reservation untouched, new header bigger.
        let sig = SignatureHeader::new(rpmbuild_sig());
        let sigs = vec![vec![0x30u8; 427]; 9];
        let plan = sig
            .rewrite(|b| {
                b.put(OwnedEntry::bin(tags::SIG_RSA, &[1; 330]));
                put_verity(b, &sigs, VERITY_ALGO_SHA256);
                Ok(())
            })
            .unwrap();
        // 330 + 9*582 + 4 + 3*16 = 5620 (spec §3.4).
        assert_eq!(plan.diff(), 5620, "{} {}", plan.orig_size, plan.new_size);
        assert_eq!(plan.mode, RewriteMode::Rewrite);
        assert_eq!(plan.reserved_after, Some(4128));
        assert_eq!(plan.signature_bytes.len(), 10024);
        assert_eq!(plan.file_growth(), 10024 - 4408);
    }

    #[test]
    fn resign_replaces_and_delete_removes() {
        let sig = SignatureHeader::new(rpmbuild_sig());
        let first = sig
            .with_verity(&[vec![1u8; 100], vec![2u8; 100]], VERITY_ALGO_SHA256)
            .unwrap();
        assert_eq!(first.mode, RewriteMode::InPlace);
        let (h, _) = Header::parse(&first.signature_bytes, HeaderKind::Signature).unwrap();
        let signed = SignatureHeader::new(h);
        let second = signed
            .with_verity(&[vec![3u8; 100], vec![4u8; 100]], VERITY_ALGO_SHA512)
            .unwrap();
        // Same size → diff 0 → rpm 4.18 goes the rewrite path.
        assert_eq!(second.diff(), 0);
        let (h2, _) = Header::parse(&second.signature_bytes, HeaderKind::Signature).unwrap();
        let s2 = SignatureHeader::new(h2);
        assert_eq!(
            verity_tags(&s2),
            (vec![vec![3u8; 100], vec![4u8; 100]], Some(2))
        );

        let del = signed.without_verity().unwrap();
        assert!(del.diff() < 0);
        assert_eq!(del.mode, RewriteMode::Rewrite);
        // 4.18 does not grow the reservation back.
        assert_eq!(del.reserved_after, first.reserved_after);
        let (h3, _) = Header::parse(&del.signature_bytes, HeaderKind::Signature).unwrap();
        assert!(!h3.contains(276) && !h3.contains(277));

        // No files → no verity tags.
        let none = sig.with_verity(&[], VERITY_ALGO_SHA256).unwrap();
        assert_eq!(none.diff(), 0);
    }

    #[test]
    fn too_large_is_refused() {
        let sig = SignatureHeader::new(rpmbuild_sig());
        let r = sig.rewrite(|b| {
            for t in 2000..2040 {
                b.put(OwnedEntry::u32s(t, &[t]));
            }
            Ok(())
        });
        assert!(matches!(r, Err(Error::Rewrite(_))));
    }
}
