//! Headers rpm 4.18 refuses must be refused here too: packages built by the real rpmbuild, then
//! altered the way a hostile or broken tool would, are checked against `rpm -K` and our parser.

use std::path::Path;
use std::process::Command;

use rpm_format::{Error, Package};
use verity_test_support::rpmbuild::{build_rpm, Contents};

const LEAD_LEN: usize = 96;
const SIG_OFFSET: usize = LEAD_LEN;

/// Offset of the main header: signature header plus its padding to 8 bytes.
fn main_offset(pkg: &[u8]) -> usize {
    let (il, dl) = il_dl(pkg, SIG_OFFSET);
    let len = 16 + 16 * il + dl;
    SIG_OFFSET + len.next_multiple_of(8)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn il_dl(pkg: &[u8], hdr: usize) -> (usize, usize) {
    (be32(pkg, hdr + 8) as usize, be32(pkg, hdr + 12) as usize)
}

/// File offset of the index entry for `tag` in the header at `hdr`.
fn entry_at(pkg: &[u8], hdr: usize, tag: u32) -> usize {
    let (il, _) = il_dl(pkg, hdr);
    (0..il)
        .map(|i| hdr + 16 + 16 * i)
        .find(|&e| be32(pkg, e) == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"))
}

fn put32(pkg: &mut [u8], at: usize, v: u32) {
    pkg[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `rpm -Kv`'s verdict: success and its output (-v names what is wrong).
fn rpm_k(dir: &Path, name: &str, bytes: &[u8]) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("rpm")
        .args(["-Kv", "--define", &format!("_dbpath {}", dir.display())])
        .arg(&path)
        .output()
        .expect("rpm -K");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn refused(r: rpm_format::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("accepted a header rpm refuses"),
        Err(e @ Error::BadHeader { .. }) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

#[test]
fn headers_rpm_refuses_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rpm = build_rpm(tmp.path(), "hdrchk", "w9.gzdio", Contents::ONE_FILE);
    let good = std::fs::read(&rpm).unwrap();
    let (ok, text) = rpm_k(tmp.path(), "good.rpm", &good);
    assert!(ok, "rpm -K refuses the unaltered package: {text}");
    Package::open(&good[..]).unwrap();
    let main = main_offset(&good);
    let (main_il, _) = il_dl(&good, main);

    // Main header; its digests no longer match, so only the structure is compared (rpm fails
    // the header as "tag[N]: BAD" before it gets to any digest).
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let buildhost = entry_at(&good, main, 1007);
    let mut b = good.clone();
    put32(&mut b, buildhost + 4, 7);
    cases.push(("BUILDHOST as BIN", b, "BUILDHOST stored as Bin"));
    let mut b = good.clone();
    put32(&mut b, buildhost, 0x8000_0000 | 1007);
    cases.push(("tag 0x800003ef", b, "tag number 0x800003ef is negative"));
    // A string tag whose data happens to be 4-aligned can be retyped INT32 without tripping the
    // alignment check: only the type check catches it.
    let (_, at) = (0..main_il)
        .map(|i| main + 16 + 16 * i)
        .map(|e| (be32(&good, e), e))
        .find(|&(t, e)| {
            be32(&good, e + 4) == 6 && be32(&good, e + 8) % 4 == 0 && (1000..1100).contains(&t)
        })
        .expect("an aligned STRING tag");
    let mut b = good.clone();
    put32(&mut b, at + 4, 4);
    cases.push((
        "STRING tag as INT32",
        b,
        "stored as Int32, rpm declares it String",
    ));
    for (what, bytes, want) in &cases {
        let (ok, text) = rpm_k(tmp.path(), "bad.rpm", bytes);
        assert!(
            !ok && text.contains(": BAD, tag "),
            "{what}: rpm -K: {text}"
        );
        let e = refused(Package::open_unverified(&bytes[..]));
        assert!(e.contains("main header") && e.contains(want), "{what}: {e}");
    }

    // Signature header: not covered by any digest, so the whole open must refuse.
    let mut cases: Vec<(&str, Vec<u8>, &str, &str)> = Vec::new();
    let reserved = entry_at(&good, SIG_OFFSET, 1008);
    let mut b = good.clone();
    put32(&mut b, reserved, 0x8000_0000 | 1008);
    cases.push((
        "signature tag 0x800003f0",
        b,
        ": BAD, tag -",
        "tag number 0x800003f0 is negative",
    ));
    let sha256 = entry_at(&good, SIG_OFFSET, 273);
    let mut b = good.clone();
    put32(&mut b, sha256 + 4, 8);
    cases.push((
        "SHA256HEADER as STRING_ARRAY",
        b,
        "invalid type 8",
        "tag 273 (SHA256HEADER): BAD, type 8",
    ));
    for (what, bytes, rpm_says, want) in &cases {
        let (ok, text) = rpm_k(tmp.path(), "bad.rpm", bytes);
        assert!(!ok && text.contains(rpm_says), "{what}: rpm -K: {text}");
        let e = refused(Package::open(&bytes[..]));
        assert!(
            e.contains("signature header") && e.contains(want),
            "{what}: {e}"
        );
    }
}
