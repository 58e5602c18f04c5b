//! Signature-header rewrite round trip: parse arbitrary bytes as a signature header; if that
//! works, `with_verity` with a few fake signatures must either refuse or produce bytes that
//! parse again and carry exactly those signatures and the algorithm, with every other tag kept.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm_format::header::TAG_HEADERSIGNATURES;
use rpm_format::sighdr::signature_padding;
use rpm_format::{base64, tags, RewriteMode, SignatureHeader};

fuzz_target!(|data: &[u8]| {
    // First byte: how many fake signatures and how long; the rest is the header.
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let Ok(sig) = SignatureHeader::parse(bytes) else {
        return;
    };
    let count = (sel & 0x0f) as usize;
    let len = 1 + (sel >> 4) as usize * 37;
    let sigs: Vec<Vec<u8>> = (0..count)
        .map(|i| (0..len).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    let alg = if sel & 1 == 0 { 1 } else { 2 };
    let Ok(plan) = sig.with_verity(&sigs, alg) else {
        return;
    };
    assert_eq!(plan.signature_bytes.len() % 8, 0);
    if plan.mode == RewriteMode::InPlace {
        assert_eq!(plan.signature_bytes.len(), plan.old_on_disk_len);
    }
    let new = SignatureHeader::parse(&plan.signature_bytes)
        .unwrap_or_else(|e| panic!("with_verity output does not parse: {e}"));
    let h = new.header();
    assert_eq!(
        h.len() + signature_padding(h.len()),
        plan.signature_bytes.len()
    );
    assert_eq!(h.region().map(|r| r.tag), Some(TAG_HEADERSIGNATURES));
    if sigs.is_empty() {
        assert!(!h.contains(tags::SIG_VERITYSIGNATURES));
        assert!(!h.contains(tags::SIG_VERITYSIGNATUREALGO));
    } else {
        let got: Vec<Vec<u8>> = h
            .get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
            .expect("tag 276 readable")
            .expect("tag 276 present")
            .into_iter()
            .map(|e| base64::decode_lenient(e).expect("tag 276 entry decodes"))
            .collect();
        assert_eq!(got, sigs);
        assert_eq!(h.get_u32(tags::SIG_VERITYSIGNATUREALGO).unwrap(), Some(alg));
    }
    // Every other tag of the original is still there with the same type and data.
    let old = sig.header();
    for e in old.tags() {
        if matches!(
            e.tag,
            tags::SIG_VERITYSIGNATURES | tags::SIG_VERITYSIGNATUREALGO | tags::SIG_RESERVEDSPACE
        ) {
            continue;
        }
        let n = h
            .entry(e.tag)
            .unwrap_or_else(|| panic!("tag {} lost in the rewrite", e.tag));
        assert_eq!((n.ty, n.count), (e.ty, e.count), "tag {}", e.tag);
        assert_eq!(h.entry_data(n), old.entry_data(&e), "tag {}", e.tag);
    }
});
