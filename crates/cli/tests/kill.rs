//! `rpm-verity sign` killed at random points, in both write modes: in place (the signature
//! header fits the reserved space) and rewrite (a new file renamed over the original). After
//! every kill the package is either the original, byte for byte, or fully signed (`rpm -K`
//! and `rpm-verity verify --cert` pass), and nothing else is left in its directory: the new
//! file is written unnamed (`O_TMPFILE`), and with the named fallback a caught SIGINT/SIGTERM
//! removes it while a SIGKILLed run's file is removed by the next `sign`.
//!
//! The number of SIGKILLs (over both modes) is `RPM_VERITY_KILLS`: 20 by default, 100 for the
//! full run (`RPM_VERITY_KILLS=100 cargo test -p rpm-verity --test kill`, a few minutes on
//! two cores). The kill points come from a seeded generator (`RPM_VERITY_KILL_SEED`), so a
//! failure can be replayed.

use verity_test_support::rpmbuild::build_rpm_custom;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use verity_test_support::{run, s};

/// Size of the big file: pseudo-random, so that it does not compress, and uncompressed
/// payloads (`w0.ufdio`) so that building stays quick while signing takes a while.
const BIG_MIB: usize = 64;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: the kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..max`.
    fn below(&mut self, max: Duration) -> Duration {
        let us = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % us)
    }
}

/// A package with one big file (`extra` small files more): deterministic pseudo-random bytes
/// (AES-CTR of zeros).
fn build(dir: &Path, name: &str, extra: usize) -> PathBuf {
    let mut install = format!(
        "mkdir -p %{{buildroot}}/opt/k\n\
         head -c {BIG_MIB}M /dev/zero | openssl enc -aes-128-ctr -nosalt \
         -K 000102030405060708090a0b0c0d0e0f -iv 0 > %{{buildroot}}/opt/k/big\n"
    );
    let mut files = String::from("%dir /opt/k\n/opt/k/big\n");
    for i in 0..extra {
        install.push_str(&format!(
            "printf 'small {i}\\n' > %{{buildroot}}/opt/k/s{i}\n"
        ));
        files.push_str(&format!("/opt/k/s{i}\n"));
    }
    build_rpm_custom(dir, name, "w0.ufdio", &install, &files)
}

struct Setup {
    key: PathBuf,
    cert: PathBuf,
}

impl Setup {
    fn sign(&self, pkg: &Path, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(verity_test_support::bin!());
        cmd.args(["sign", "--key", s(&self.key), "--cert", s(&self.cert)])
            .arg(pkg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("run rpm-verity sign")
    }

    /// The package is the original or fully signed; `true` if signed.
    fn check(&self, pkg: &Path, original: &[u8], what: &str) -> bool {
        let now = fs::read(pkg).unwrap_or_else(|e| panic!("{what}: package gone: {e}"));
        if now == original {
            return false;
        }
        let k = Command::new("rpm")
            .args(["-K", "--nosignature"])
            .arg(pkg)
            .output()
            .unwrap();
        let kt = String::from_utf8_lossy(&k.stdout);
        assert!(
            k.status.success() && kt.contains("digests OK"),
            "{what}: neither original nor intact: rpm -K: {kt}{}",
            String::from_utf8_lossy(&k.stderr)
        );
        let v = Command::new(verity_test_support::bin!())
            .args(["verify", "--cert", s(&self.cert), s(pkg)])
            .output()
            .unwrap();
        assert_eq!(
            v.status.code(),
            Some(0),
            "{what}: changed but not fully signed: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        true
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn signal(child: &Child, sig: &str) {
    run(Command::new("kill")
        .args(["-s", sig])
        .arg(child.id().to_string()));
}

/// One write mode: a full run to time it (and to check the mode), then `kills` SIGKILLs and
/// SIGINT/SIGTERM with and without `O_TMPFILE`, each at a random point of a fresh copy.
fn kill_mode(setup: &Setup, work: &Path, orig: &Path, in_place: bool, kills: u64, rng: &mut Rng) {
    let original = fs::read(orig).unwrap();
    let name = orig.file_name().unwrap().to_string_lossy().into_owned();
    let pkg = work.join(&name);
    let mode = if in_place { "in place" } else { "rewrite" };

    // Timed as the killed runs go (a fresh copy written just before): the slowest of three.
    let mut full = Duration::ZERO;
    for _ in 0..3 {
        fs::write(&pkg, &original).unwrap();
        let started = Instant::now();
        let out = Command::new(verity_test_support::bin!())
            .args(["sign", "--key", s(&setup.key), "--cert", s(&setup.cert)])
            .arg(&pkg)
            .output()
            .unwrap();
        full = full.max(started.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {text}");
        assert_eq!(
            text.contains("written in place"),
            in_place,
            "{mode}: {text}"
        );
        assert!(setup.check(&pkg, &original, mode));
    }
    eprintln!("{mode}: a full run takes up to {full:?}");

    // Kill points over the whole run and a little past it.
    let span = full + full / 4;
    let mut signed = 0;
    let mut plan: Vec<(&str, &[(&str, &str)])> = vec![("KILL", &[]); kills as usize];
    for sig in ["INT", "TERM"] {
        plan.push((sig, &[]));
        plan.push((sig, &[("RPM_VERITY_NO_TMPFILE", "1")]));
        plan.push((sig, &[("RPM_VERITY_NO_TMPFILE", "1")]));
    }
    for (i, (sig, env)) in plan.into_iter().enumerate() {
        fs::write(&pkg, &original).unwrap();
        let delay = rng.below(span);
        let what = format!("{mode} #{i}: SIG{sig} after {delay:?} {env:?}");
        let mut child = setup.sign(&pkg, env);
        std::thread::sleep(delay);
        signal(&child, sig);
        let status = child.wait().unwrap();
        if let Some(code) = status.code() {
            // Finished before the signal, or caught it: 128 + SIGINT (2) / SIGTERM (15).
            let caught = match sig {
                "INT" => 130,
                "TERM" => 143,
                _ => -1,
            };
            assert!(code == 0 || code == caught, "{what}: exit {code}");
        }
        assert_eq!(
            listing(work),
            std::slice::from_ref(&name),
            "{what}: files left"
        );
        if setup.check(&pkg, &original, &what) {
            signed += 1;
        }
    }
    eprintln!("{mode}: signed when killed in {signed} runs");
}

#[test]
fn killed_sign_leaves_original_or_signed_and_nothing_else() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = verity_test_support::installed::make_cert(dir, "kill");
    let setup = Setup { key, cert };
    let inplace = build(dir, "killip", 0);
    let rewrite = build(dir, "killrw", 40);
    let work = dir.join("work");
    fs::create_dir(&work).unwrap();

    let kills = env_u64("RPM_VERITY_KILLS", 20);
    let mut rng = Rng(env_u64("RPM_VERITY_KILL_SEED", 0x5eed_c0de));
    kill_mode(&setup, &work, &inplace, true, kills / 2, &mut rng);
    fs::remove_file(work.join(inplace.file_name().unwrap())).unwrap();
    kill_mode(&setup, &work, &rewrite, false, kills - kills / 2, &mut rng);
}

/// Writing under a name (no `O_TMPFILE`): a run stopped by SIGINT or SIGTERM while the
/// `.NAME.tmpPID.N` exists removes it; one SIGKILLed leaves it, and the next `sign` removes
/// it, says so, and signs.
#[test]
fn stale_temp_file_of_a_killed_run_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (key, cert) = verity_test_support::installed::make_cert(dir, "stale");
    let setup = Setup { key, cert };
    let orig = build(dir, "killst", 40);
    let work = dir.join("work");
    fs::create_dir(&work).unwrap();
    let pkg = work.join(orig.file_name().unwrap());
    fs::copy(&orig, &pkg).unwrap();
    let temp_seen = |child: &Child| {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let names = listing(&work);
            if let Some(n) = names.iter().find(|n| n.contains(".tmp")) {
                return n.clone();
            }
            assert!(
                Instant::now() < until,
                "no temporary file of {}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };

    // Caught signals remove the named file, whenever they come.
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let mut child = setup.sign(&pkg, &[("RPM_VERITY_NO_TMPFILE", "1")]);
        temp_seen(&child);
        signal(&child, sig);
        assert_eq!(child.wait().unwrap().code(), Some(code), "SIG{sig}");
        assert_eq!(listing(&work).len(), 1, "SIG{sig}: {:?}", listing(&work));
        assert_eq!(fs::read(&pkg).unwrap(), fs::read(&orig).unwrap());
    }

    let mut child = setup.sign(&pkg, &[("RPM_VERITY_NO_TMPFILE", "1")]);
    let stale = temp_seen(&child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listing(&work).contains(&stale), "{:?}", listing(&work));

    let out = Command::new(verity_test_support::bin!())
        .args(["sign", "--key", s(&setup.key), "--cert", s(&setup.cert)])
        .arg(&pkg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("note: removed") && err.contains(&stale),
        "{err}"
    );
    assert_eq!(
        listing(&work),
        [pkg.file_name().unwrap().to_string_lossy().into_owned()]
    );
    assert!(setup.check(&pkg, &fs::read(&orig).unwrap(), "after"));
}
