//! `rpm-verity digest` against the real `fsverity digest` (fsverity-utils): same stdout, same
//! `--out-merkle-tree` and `--out-descriptor` bytes, for random contents at every size where
//! the tree changes shape, and clear errors for bad input.
//!
//! Contents are random; the seed is printed and `DIGEST_TEST_SEED` replays a run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const OURS: &str = env!("CARGO_BIN_EXE_rpm-verity");

/// xorshift64*: enough randomness for file contents without another dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("DIGEST_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("DIGEST_TEST_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn run(prog: &str, args: &[String]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_str().unwrap().to_string()
}

/// Runs both tools with `opts` on `files`, with and without output files, and compares
/// everything. `jobs` is passed to ours only.
fn compare(dir: &Path, files: &[PathBuf], opts: &[String], jobs: usize, variants: &[&[&str]]) {
    let (t1, d1) = (dir.join("ref.tree"), dir.join("ref.desc"));
    let (t2, d2) = (dir.join("our.tree"), dir.join("our.desc"));
    for extra in variants {
        let mut base: Vec<String> = vec!["digest".into()];
        base.extend(files.iter().map(s));
        base.extend(opts.iter().cloned());
        base.extend(extra.iter().map(|x| x.to_string()));
        let with_outputs = extra.is_empty();
        let mut theirs = base.clone();
        let mut ours = base.clone();
        ours.push(format!("--jobs={jobs}"));
        if with_outputs {
            theirs.push(format!("--out-merkle-tree={}", t1.display()));
            theirs.push(format!("--out-descriptor={}", d1.display()));
            ours.push("--out-merkle-tree".into());
            ours.push(s(&t2));
            ours.push(format!("--out-descriptor={}", d2.display()));
        }
        let r = run("fsverity", &theirs);
        let o = run(OURS, &ours);
        assert!(
            r.status.success(),
            "fsverity failed: {theirs:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            o.status.success(),
            "rpm-verity failed: {ours:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&r.stdout),
            "stdout of {ours:?}"
        );
        assert!(!r.stdout.is_empty());
        if with_outputs {
            let (a, b) = (std::fs::read(&t1).unwrap(), std::fs::read(&t2).unwrap());
            assert!(
                a == b,
                "Merkle trees differ ({} vs {} bytes) for {ours:?}",
                a.len(),
                b.len()
            );
            assert_eq!(
                std::fs::read(&d1).unwrap(),
                std::fs::read(&d2).unwrap(),
                "descriptors for {ours:?}"
            );
            for p in [&t1, &t2, &d1, &d2] {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
}

const ALL_VARIANTS: &[&[&str]] = &[
    &[],
    &["--compact"],
    &["--for-builtin-sig"],
    &["--for-builtin-sig", "--compact"],
];

/// Sizes around every boundary where the tree gains a block or a level.
fn sizes(bs: usize, fanout: usize, big: bool) -> Vec<usize> {
    let mut v = vec![0, 1, bs - 1, bs, bs + 1, fanout * bs - 1, fanout * bs + 1];
    if big {
        v.extend([fanout * fanout * bs - 1, fanout * fanout * bs + 1]);
    }
    v
}

fn property_case(alg: &str, bs: usize, salt: Option<&str>, big: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new();
    let d = if alg == "sha512" { 64 } else { 32 };
    let mut opts = vec![
        format!("--hash-alg={alg}"),
        "--block-size".to_string(),
        bs.to_string(),
    ];
    if let Some(salt) = salt {
        opts.push(format!("--salt={salt}"));
    }
    for (i, size) in sizes(bs, bs / d, big).into_iter().enumerate() {
        let path = dir.path().join(format!("f{size}"));
        std::fs::write(&path, rng.bytes(size)).unwrap();
        let variants = if size > 4 << 20 {
            &ALL_VARIANTS[..2]
        } else {
            ALL_VARIANTS
        };
        compare(
            dir.path(),
            std::slice::from_ref(&path),
            &opts,
            1 + i % 2,
            variants,
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn sha256_b4096_matches_fsverity() {
    property_case("sha256", 4096, None, true);
}

#[test]
fn sha256_b1024_salted_matches_fsverity() {
    property_case("sha256", 1024, Some("61626364"), true);
}

#[test]
fn sha512_b4096_matches_fsverity() {
    property_case("sha512", 4096, None, true);
}

#[test]
fn sha512_b1024_salted_matches_fsverity() {
    property_case(
        "sha512",
        1024,
        Some("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        true,
    );
}

#[test]
fn other_block_sizes_and_salts_match_fsverity() {
    for (alg, bs, salt) in [
        ("sha256", 64, Some("00")),
        ("sha256", 512, None),
        ("sha512", 128, Some("ABCDEF")),
        ("sha256", 65536, Some("0123456789abcdef0123456789abcdef")),
        ("sha512", 16384, None),
    ] {
        property_case(alg, bs, salt, false);
    }
}

/// Several files in one call: descriptors are concatenated and trees overlaid from offset 0,
/// as fsverity does.
#[test]
fn several_files_match_fsverity() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new();
    let files: Vec<PathBuf> = [300_000usize, 5000, 0, 1_000_000, 9000]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let p = dir.path().join(format!("file {i}"));
            std::fs::write(&p, rng.bytes(n)).unwrap();
            p
        })
        .collect();
    compare(
        dir.path(),
        &files,
        &["--block-size=1024".into()],
        2,
        ALL_VARIANTS,
    );
}

fn fails(args: &[&str], code: i32) -> String {
    let o = Command::new(OURS)
        .arg("digest")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn one_line(stderr: &str) -> &str {
    let t = stderr.trim_end();
    assert_eq!(t.lines().count(), 1, "not one line: {stderr:?}");
    assert!(t.starts_with("rpm-verity: error: "), "{t}");
    t
}

#[test]
fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, b"hello\n").unwrap();
    let good = s(&good);
    let missing = s(dir.path().join("missing"));
    let tree = dir.path().join("out.tree");
    let desc = dir.path().join("out.desc");
    let outs = [
        format!("--out-merkle-tree={}", tree.display()),
        format!("--out-descriptor={}", desc.display()),
    ];
    let with_outs = |v: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        a.extend(outs.iter().cloned());
        a
    };
    let no_outputs_left = || {
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "files left behind: {left:?}");
    };

    let a = with_outs(&[&missing]);
    let e = fails(&a.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    let l = one_line(&e);
    assert!(l.contains(&missing) && l.contains("No such file"), "{l}");
    no_outputs_left();

    // A good file first: its line is printed, then the error; no output files.
    let o = Command::new(OURS)
        .arg("digest")
        .arg(&good)
        .arg(&missing)
        .args(&outs)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("sha256:9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa {good}\n")
    );
    one_line(&String::from_utf8_lossy(&o.stderr));
    no_outputs_left();

    let d = s(dir.path());
    let a = with_outs(&[&d]);
    let e = fails(&a.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    let l = one_line(&e);
    assert!(l.contains(&d) && l.contains("is a directory"), "{l}");
    no_outputs_left();

    let long_salt = format!("--salt={}", "ab".repeat(33));
    let e = fails(&[&good, &long_salt], 1);
    assert!(
        one_line(&e).contains("salt is 33 bytes; at most 32 are allowed"),
        "{e}"
    );
    let e = fails(&[&good, "--block-size=32"], 1);
    assert!(
        one_line(&e).contains("block size 32 is too small for sha256"),
        "{e}"
    );
    let e = fails(&[&good, "--hash-alg=sha512", "--block-size=64"], 1);
    assert!(one_line(&e).contains("too small for sha512"), "{e}");

    let e = fails(&[&good, "--salt=xyz1"], 2);
    assert!(e.contains("salt is not a valid hex string"), "{e}");
    let e = fails(&[&good, "--block-size=1000"], 2);
    assert!(e.contains("block size 1000 is not a power of two"), "{e}");
    let e = fails(&[&good, "--hash-alg=sha1"], 2);
    assert!(e.contains("unknown hash algorithm 'sha1'"), "{e}");
    fails(&[], 2);

    // An output file in a missing directory: refused before hashing, nothing printed.
    let o = Command::new(OURS)
        .args([
            "digest",
            &good,
            &format!("--out-descriptor={}/no/such/dir/d", d),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(one_line(&String::from_utf8_lossy(&o.stderr)).contains("--out-descriptor"));
    no_outputs_left();
}
