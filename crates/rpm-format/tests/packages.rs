//! Integration tests against packages built by the real rpmbuild 4.18 and signed by the real
//! rpmsign.

use verity_test_support::rpmbuild as support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rpm_format::header::{HeaderBuilder, TAG_HEADERSIGNATURES};
use rpm_format::sighdr::{put_verity, RewriteMode};
use rpm_format::{tags, CpioReader, Error, Lead, Package};
use support::{
    build_rpm, install_and_export, rpm2cpio_extract, rpmsign_verity, signing_setup, Contents,
};

/// Streams the payload, returns path → (index, payload bytes) and checks the digests.
fn stream_payload(path: &Path, threaded: bool) -> BTreeMap<Vec<u8>, (usize, Vec<u8>)> {
    let pkg = Package::open(BufReader::new(File::open(path).unwrap())).unwrap();
    let files = pkg.files().unwrap();
    let (_headers, payload) = if threaded {
        pkg.into_payload_threaded(true).unwrap()
    } else {
        pkg.into_payload().unwrap()
    };
    let mut cpio = CpioReader::new(payload, &files);
    let mut out = BTreeMap::new();
    while let Some(e) = cpio.next_entry().unwrap() {
        let mut data = Vec::new();
        cpio.read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, e.size);
        let p = files.get(e.index).unwrap().path.clone();
        assert!(out.insert(p, (e.index, data)).is_none());
    }
    let summary = cpio.into_inner().finish().unwrap();
    assert!(
        summary.raw.checked_payload_digest,
        "PAYLOADDIGEST not checked"
    );
    assert!(summary.raw.checked_md5, "MD5 not checked");
    assert!(summary.raw.checked_size, "SIZE not checked");
    assert!(summary.checked_uncompressed_size, "PAYLOADSIZE not checked");
    out
}

#[test]
fn every_compressor_streams_exactly_what_rpm2cpio_gives() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, payload) in [
        "w9.gzdio",
        "w9.bzdio",
        "w6.xzdio",
        "w6.lzdio",
        "w19.zstdio",
        "w0.ufdio",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("pf{i}");
        let rpm = build_rpm(tmp.path(), &name, payload, Contents::ALL);
        let pkg = Package::open(File::open(&rpm).unwrap()).unwrap();
        let digests = pkg.verify_header_digests().unwrap();
        assert!(digests.sha256 && digests.sha1);
        let compressor = pkg.compressor().unwrap();
        assert_eq!(
            pkg.main
                .get_string(tags::PAYLOADCOMPRESSOR)
                .unwrap()
                .is_none(),
            *payload == "w0.ufdio"
        );
        // The lead rpmbuild wrote is what rewrite mode would regenerate on this host.
        assert_eq!(
            Lead::from_header_for_host(&pkg.main).unwrap(),
            pkg.lead,
            "{payload}"
        );
        // Re-serializing the unchanged signature header gives identical bytes.
        let sig = pkg.signature.header();
        assert_eq!(
            HeaderBuilder::from_header(sig).serialize(TAG_HEADERSIGNATURES),
            sig.raw()
        );
        let plan = pkg.signature.rewrite(|_| Ok(())).unwrap();
        assert_eq!(plan.signature_bytes, pkg.signature.on_disk_bytes());
        // Offsets add up to the file size.
        let files = pkg.files().unwrap();
        let total = std::fs::metadata(&rpm).unwrap().len();
        let size_tag = sig.get_u32(tags::SIG_SIZE).unwrap().unwrap() as u64;
        assert_eq!(pkg.main_header_offset() + size_tag, total);
        drop(pkg);

        let got = stream_payload(&rpm, i % 2 == 1);
        let dest = tmp.path().join(format!("x{i}"));
        let listed = rpm2cpio_extract(&rpm, &dest);
        let mut listed_paths: Vec<Vec<u8>> = listed
            .iter()
            .map(|n| {
                let n = n.strip_prefix(b".").unwrap_or(n);
                n.to_vec()
            })
            .collect();
        listed_paths.sort();
        let ours: Vec<Vec<u8>> = got.keys().cloned().collect();
        assert_eq!(ours, listed_paths, "{payload}: entry names differ");

        // Contents: every regular file / symlink equals what cpio extracted.
        for (path, (idx, data)) in &got {
            let f = files.get(*idx).unwrap();
            let on_disk = dest.join(String::from_utf8(path[1..].to_vec()).unwrap());
            if f.is_symlink() {
                let target = std::fs::read_link(&on_disk).unwrap();
                assert_eq!(data, target.as_os_str().as_encoded_bytes());
            } else if f.is_regular() {
                let want = std::fs::read(&on_disk).unwrap();
                if files.hardlink_set(*idx).is_some() && data.is_empty() {
                    // non-carrier member: the set's carrier has the content
                    let set = files.hardlink_set(*idx).unwrap();
                    let carrier = set
                        .iter()
                        .map(|&j| &files.get(j).unwrap().path)
                        .find_map(|p| got.get(p).filter(|(_, d)| !d.is_empty()))
                        .expect("hardlink set without content");
                    assert_eq!(carrier.1, want);
                } else {
                    assert_eq!(*data, want, "{payload}: {}", f.path_lossy());
                }
            } else {
                assert!(data.is_empty());
            }
        }
        // Ghosts are in the header but not in the payload; the hardlink set is recognised.
        let ghosts: Vec<_> = files.files().iter().filter(|f| f.is_ghost()).collect();
        assert_eq!(ghosts.len(), 2);
        assert!(ghosts.iter().all(|g| !got.contains_key(&g.path)));
        assert_eq!(files.hardlink_sets().len(), 1);
        assert_eq!(files.hardlink_sets()[0].len(), 3);
        let _ = compressor;
    }
}

fn flip(path: &Path, at: u64) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x01;
    b
}

fn read_all(bytes: &[u8]) -> rpm_format::Result<()> {
    let inline = read_all_with(bytes, false);
    let threaded = read_all_with(bytes, true);
    assert_eq!(
        inline.as_ref().map_err(|e| e.to_string()),
        threaded.as_ref().map_err(|e| e.to_string()),
        "threaded and inline readers disagree"
    );
    inline
}

fn read_all_with(bytes: &[u8], threaded: bool) -> rpm_format::Result<()> {
    let pkg = Package::open(std::io::Cursor::new(bytes.to_vec()))?;
    let files = pkg.files()?;
    let (_h, payload) = if threaded {
        pkg.into_payload_threaded(true)?
    } else {
        pkg.into_payload()?
    };
    let mut cpio = CpioReader::new(payload, &files);
    while cpio.next_entry()?.is_some() {
        std::io::copy(&mut cpio, &mut std::io::sink()).map_err(|e| Error::from_io("payload", e))?;
    }
    cpio.into_inner().finish()?;
    Ok(())
}

#[test]
fn corruption_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let rpm = build_rpm(tmp.path(), "corrupt", "w19.zstdio", Contents::RPMSIGN_SAFE);
    let good = std::fs::read(&rpm).unwrap();
    read_all(&good).unwrap();
    let pkg = Package::open(&good[..]).unwrap();
    let main_off = pkg.main_header_offset();
    let payload_off = pkg.payload_offset();
    drop(pkg);

    // Main header byte → header digest mismatch (or a structural error).
    let bad = flip(&rpm, main_off + 200);
    assert!(Package::open(&bad[..]).is_err());
    // A flipped byte of a main-header *string* keeps the structure valid: only the digest
    // catches it.
    let hdr = &good[main_off as usize..payload_off as usize];
    let name_at = hdr.windows(8).position(|w| w == b"corrupt\0").unwrap();
    let bad = flip(&rpm, main_off + name_at as u64);
    assert!(matches!(
        Package::open(&bad[..]),
        Err(Error::DigestMismatch {
            what: "header SHA-256",
            ..
        })
    ));
    // Last payload byte → payload digest (zstd may or may not notice first).
    let bad = flip(&rpm, good.len() as u64 - 1);
    let e = read_all(&bad).unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. } | Error::Decompress { .. }),
        "{e}"
    );
    // A payload byte in the middle.
    let bad = flip(&rpm, payload_off + (good.len() as u64 - payload_off) / 2);
    let e = read_all(&bad).unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. } | Error::Decompress { .. }),
        "{e}"
    );
    // Extra byte at the end → size mismatch.
    let mut longer = good.clone();
    longer.push(0);
    let e = read_all(&longer).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    // Truncated in every section.
    for cut in [
        0,
        50,
        100,
        200,
        main_off as usize + 10,
        payload_off as usize + 10,
        good.len() - 1,
    ] {
        assert!(read_all(&good[..cut]).is_err(), "cut at {cut} accepted");
    }
    // Not an RPM.
    assert!(matches!(
        Package::open(&b"hello world, not a package at all.............................................................................................."[..]),
        Err(Error::NotRpm(_))
    ));
    // Unknown compressor: patch the compressor string in the main header ("zstd" → "zstx"),
    // then the digest check fails first; check the unverified path names the compressor.
    let mut patched = good.clone();
    let hdr = &good[main_off as usize..payload_off as usize];
    let pos = hdr
        .windows(5)
        .position(|w| w == b"zstd\0")
        .expect("compressor string");
    patched[main_off as usize + pos + 3] = b'x';
    let pkg = Package::open_unverified(&patched[..]).unwrap();
    assert!(matches!(
        pkg.compressor(),
        Err(Error::UnknownCompressor(ref c)) if c == "zstx"
    ));
    assert!(Package::open(&patched[..]).is_err());
}

/// Replays rpmsign's edit (its 268 plus 276/277) through our rewrite and compares whole files.
fn replay_rpmsign(original: &Path, signed: &Path) -> RewriteMode {
    let orig_bytes = std::fs::read(original).unwrap();
    let signed_bytes = std::fs::read(signed).unwrap();
    let orig = Package::open(&orig_bytes[..]).unwrap();
    let theirs = Package::open(&signed_bytes[..]).unwrap();
    let tsig = theirs.signature.header();
    let rsa = tsig
        .get_bin(tags::SIG_RSA)
        .unwrap()
        .expect("rpmsign added 268")
        .to_vec();
    let ders: Vec<Vec<u8>> = tsig
        .get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
        .unwrap()
        .expect("rpmsign added 276")
        .into_iter()
        .map(|e| rpm_format::base64::decode_lenient(e).unwrap())
        .collect();
    let algo = tsig
        .get_u32(tags::SIG_VERITYSIGNATUREALGO)
        .unwrap()
        .expect("277");
    assert_eq!(ders.len(), orig.files().unwrap().len());
    let plan = orig
        .signature
        .rewrite(|b| {
            b.put(rpm_format::OwnedEntry::bin(tags::SIG_RSA, &rsa));
            put_verity(b, &ders, algo);
            Ok(())
        })
        .unwrap();
    // Our 276/277 strings are byte-identical (base64 wrapping included).
    let ours = rpm_format::Header::parse(&plan.signature_bytes, rpm_format::HeaderKind::Signature)
        .unwrap()
        .0;
    for tag in [tags::SIG_VERITYSIGNATURES, tags::SIG_VERITYSIGNATUREALGO] {
        let a = ours.entry(tag).unwrap();
        let b = tsig.entry(tag).unwrap();
        assert!(
            ours.entry_data(a) == tsig.entry_data(b),
            "tag {tag} differs from rpmsign's"
        );
    }
    let mut out = Vec::new();
    match plan.mode {
        RewriteMode::InPlace => {
            out.extend_from_slice(&orig_bytes);
            out[96..96 + plan.signature_bytes.len()].copy_from_slice(&plan.signature_bytes);
        }
        RewriteMode::Rewrite => {
            out.extend_from_slice(&Lead::from_header_for_host(&orig.main).unwrap().to_bytes());
            out.extend_from_slice(&plan.signature_bytes);
            out.extend_from_slice(&orig_bytes[orig.main_header_offset() as usize..]);
        }
    }
    assert_eq!(
        out.len(),
        signed_bytes.len(),
        "file length differs ({:?})",
        plan.mode
    );
    assert!(
        out == signed_bytes,
        "output differs from rpmsign's ({:?})",
        plan.mode
    );
    // The signed package still reads and verifies.
    read_all(&out).unwrap();
    plan.mode
}

#[test]
fn rewrite_reproduces_rpmsign_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = signing_setup(tmp.path());
    let mut modes = Vec::new();
    for (name, payload, contents) in [
        ("one", "w9.gzdio", Contents::ONE_FILE),
        ("many", "w19.zstdio", Contents::RPMSIGN_SAFE),
    ] {
        let rpm = build_rpm(tmp.path(), name, payload, contents);
        let signed = tmp.path().join(format!("{name}-signed.rpm"));
        std::fs::copy(&rpm, &signed).unwrap();
        rpmsign_verity(&setup, &signed);
        modes.push(replay_rpmsign(&rpm, &signed));
        check_rpmdb_blob(tmp.path(), name, &signed);

        // Deleting our verity tags again: rpm 4.18 takes the rewrite path and keeps the
        // (shrunk) reservation; the result must still be a valid, verifiable package.
        let signed_bytes = std::fs::read(&signed).unwrap();
        let pkg = Package::open(&signed_bytes[..]).unwrap();
        let del = pkg.signature.without_verity().unwrap();
        assert_eq!(del.mode, RewriteMode::Rewrite);
        let mut out = Lead::from_header_for_host(&pkg.main)
            .unwrap()
            .to_bytes()
            .to_vec();
        out.extend_from_slice(&del.signature_bytes);
        out.extend_from_slice(&signed_bytes[pkg.main_header_offset() as usize..]);
        read_all(&out).unwrap();
        let back = Package::open(&out[..]).unwrap();
        assert!(!back.signature.header().contains(tags::SIG_VERITYSIGNATURES));
        assert!(back.signature.header().contains(tags::SIG_RSA));
    }
    assert_eq!(modes, vec![RewriteMode::InPlace, RewriteMode::Rewrite]);
}

/// The installed header (as rpm stores it in its database) parses with our rpmdb-blob reader:
/// immutable region plus dribbles, the verity tags among the dribbles.
fn check_rpmdb_blob(tmp: &Path, name: &str, signed: &Path) {
    let export = install_and_export(&tmp.join(format!("root-{name}")), signed);
    assert_eq!(export[..8], rpm_format::header::HEADER_MAGIC);
    let il = u32::from_be_bytes(export[8..12].try_into().unwrap()) as usize;
    let dl = u32::from_be_bytes(export[12..16].try_into().unwrap()) as usize;
    let blob = &export[8..16 + 16 * il + dl];
    let h = rpm_format::Header::from_rpmdb_blob(blob).unwrap();
    let region = h.region().expect("immutable region");
    assert_eq!(region.tag, rpm_format::header::TAG_HEADERIMMUTABLE);
    assert!(region.ril < il, "installed header has dribbles");
    let pkg_bytes = std::fs::read(signed).unwrap();
    let pkg = Package::open(&pkg_bytes[..]).unwrap();
    let want = pkg
        .signature
        .header()
        .get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
        .unwrap()
        .unwrap();
    let got = h
        .get_string_array_bytes(tags::SIG_VERITYSIGNATURES)
        .unwrap()
        .expect("276 in the rpmdb header");
    assert_eq!(got, want);
    assert_eq!(h.get_u32(tags::SIG_VERITYSIGNATUREALGO).unwrap(), Some(1));
    let files = rpm_format::FileList::from_header(&h).unwrap();
    assert_eq!(files.len(), pkg.files().unwrap().len());
    assert_eq!(got.len(), files.len());
    // A truncated or corrupted blob is refused.
    assert!(rpm_format::Header::from_rpmdb_blob(&blob[..blob.len() - 1]).is_err());
    let mut bad = blob.to_vec();
    bad[8 + 16 + 8..8 + 16 + 12].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    assert!(rpm_format::Header::from_rpmdb_blob(&bad).is_err());
}
