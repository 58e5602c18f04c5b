//! `rpm-verity sign` on a package holding a file over 4 GiB: rpmbuild switches to LONGFILESIZES
//! and the stripped `07070X` cpio format, and the file's Merkle tree no longer fits the sizes
//! small packages exercise. The file is sparse, so the test costs time (rpmbuild compresses
//! 4 GiB of zeros), not disk. The reference is `fsverity sign` of an identical sparse file.

use verity_test_support::rpmbuild as support;

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use rpm_format::{tags, Package};
use support::build_rpm_custom;
use verity_test_support::{openssl, run, s};

/// Over 4 GiB and not a multiple of the block size, so the last block is partial.
const BIG: u64 = (4 << 30) + 4096 * 5 + 11;
const HEAD: &[u8] = b"start of the big file\n";
const TAIL: &[u8] = b"END";

/// The same bytes rpmbuild packs: HEAD, a hole, TAIL at the very end.
fn make_sparse(path: &Path) {
    let mut f = File::create(path).unwrap();
    f.write_all(HEAD).unwrap();
    f.set_len(BIG - TAIL.len() as u64).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(TAIL).unwrap();
    assert_eq!(f.metadata().unwrap().len(), BIG);
}

fn fsverity_sign(file: &Path, key: &Path, cert: &Path, out: &Path) -> Vec<u8> {
    run(Command::new("fsverity")
        .arg("sign")
        .arg(file)
        .arg(out)
        .arg(format!("--key={}", key.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg("--hash-alg=sha256"));
    fs::read(out).unwrap()
}

fn main_and_payload(pkg: &Path) -> Vec<u8> {
    let p = Package::open_unverified(File::open(pkg).unwrap()).unwrap();
    let off = p.main_header_offset() as usize;
    fs::read(pkg).unwrap()[off..].to_vec()
}

#[test]
fn sign_package_with_file_over_4gib() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let install = format!(
        "mkdir -p %{{buildroot}}/opt/big\n\
         printf '{}' > %{{buildroot}}/opt/big/sparse\n\
         truncate -s {} %{{buildroot}}/opt/big/sparse\n\
         printf '{}' >> %{{buildroot}}/opt/big/sparse\n\
         printf 'small file\\n' > %{{buildroot}}/opt/big/small\n\
         seq 1 3000 > %{{buildroot}}/opt/big/seq\n\
         : > %{{buildroot}}/opt/big/empty\n",
        String::from_utf8_lossy(HEAD).replace('\n', "\\n"),
        BIG - TAIL.len() as u64,
        String::from_utf8_lossy(TAIL),
    );
    let t0 = std::time::Instant::now();
    // w1.zstdio: the fastest to build (w0.ufdio writes the 4 GiB uncompressed, gzip/xz are
    // slower on 4 GiB of zeros); see docs/benchmarks-sign.md.
    let rpm = build_rpm_custom(
        dir,
        "huge",
        "w1.zstdio",
        &install,
        "%dir /opt/big\n/opt/big/sparse\n/opt/big/small\n/opt/big/seq\n/opt/big/empty\n",
    );
    eprintln!("rpmbuild: {:?}", t0.elapsed());

    let (files, header_sizes) = {
        let p = Package::open(File::open(&rpm).unwrap()).unwrap();
        assert!(
            p.main.contains(tags::LONGFILESIZES),
            "a file over 4 GiB must make rpmbuild use LONGFILESIZES"
        );
        let files = p.files().unwrap();
        let sizes: Vec<u64> = files.files().iter().map(|f| f.size).collect();
        (files, sizes)
    };
    let big = files.find(b"/opt/big/sparse").expect("sparse file listed");
    assert_eq!(header_sizes[big], BIG);

    let signed = dir.join("signed.rpm");
    fs::copy(&rpm, &signed).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let rsa = openssl::rsa(2048);
    openssl::self_signed(dir, s(&key), s(&cert), &rsa, "/CN=sign_large", 2, None);
    let t0 = std::time::Instant::now();
    let out = run(Command::new(env!("CARGO_BIN_EXE_rpm-verity"))
        .args(["sign", "--key", s(&key), "--cert", s(&cert)])
        .arg(&signed));
    eprintln!(
        "rpm-verity sign: {:?}: {}",
        t0.elapsed(),
        String::from_utf8_lossy(&out.stdout).trim()
    );

    assert_eq!(
        main_and_payload(&rpm),
        main_and_payload(&signed),
        "main header and payload unchanged"
    );
    let t0 = std::time::Instant::now();
    run(Command::new(env!("CARGO_BIN_EXE_rpm-verity"))
        .args(["verify", "--cert", s(&cert)])
        .arg(&signed));
    eprintln!("rpm-verity verify: {:?}", t0.elapsed());

    // Every signature against fsverity-utils' signature of the same content.
    let p = Package::open(File::open(&signed).unwrap()).unwrap();
    let sigs = verity_package::VeritySignatures::read(p.signature.header())
        .unwrap()
        .expect("tag 276 present")
        .all()
        .unwrap();
    assert_eq!(sigs.len(), files.len(), "one signature per header file");
    let sparse = dir.join("sparse");
    make_sparse(&sparse);
    let t0 = std::time::Instant::now();
    let want_big = fsverity_sign(&sparse, &key, &cert, &dir.join("sparse.sig"));
    eprintln!("fsverity sign of the sparse file: {:?}", t0.elapsed());
    assert!(
        sigs[big] == want_big,
        "signature of the file over 4 GiB differs from fsverity sign's"
    );
    let empty = dir.join("empty-content");
    fs::write(&empty, b"").unwrap();
    let want_empty = fsverity_sign(&empty, &key, &cert, &dir.join("empty.sig"));
    let small = dir.join("small-content");
    fs::write(&small, b"small file\n").unwrap();
    let want_small = fsverity_sign(&small, &key, &cert, &dir.join("small.sig"));
    let idx = |name: &[u8]| files.find(name).unwrap();
    assert!(sigs[idx(b"/opt/big/small")] == want_small, "small file");
    assert!(sigs[idx(b"/opt/big/empty")] == want_empty, "empty file");
    assert!(sigs[idx(b"/opt/big")] == want_empty, "directory");
    // More than one block, so a real Merkle tree.
    let seq = dir.join("seq-content");
    let text: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    fs::write(&seq, text).unwrap();
    let want_seq = fsverity_sign(&seq, &key, &cert, &dir.join("seq.sig"));
    assert!(sigs[idx(b"/opt/big/seq")] == want_seq, "multi-block file");
}
