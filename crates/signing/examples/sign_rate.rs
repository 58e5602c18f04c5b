//! Signatures per second with a local RSA key: one thread, then a batch over all cores.
//!
//! `cargo run -p verity-signing --example sign_rate [--release] [SECONDS]`
//! Keys are made with `openssl genrsa` in a temporary directory (RSA-2048 and RSA-4096).
//! The crypto is aws-lc's C code, built optimised even in the dev profile.

use std::process::Command;
use std::time::{Duration, Instant};

use fsverity::{FileDigest, HashAlgorithm};
use verity_signing::{LocalSigner, Signer};

fn digest(i: u64) -> FileDigest {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    FileDigest::new(HashAlgorithm::Sha256, &b).expect("32 bytes")
}

/// CPU time of the calling thread (user + system), from /proc: on a loaded machine wall-clock
/// rates say more about the neighbours than about the signer. Clock ticks are 1/100 s on Linux.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir().expect("temp dir");
    let threads = rayon::current_num_threads();
    for bits in [2048u32, 4096] {
        let key = dir.path().join(format!("k{bits}.pem"));
        let cert = dir.path().join(format!("c{bits}.pem"));
        let run = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "openssl {args:?} failed");
        };
        let (k, c) = (key.to_str().unwrap(), cert.to_str().unwrap());
        run(&["genrsa", "-out", k, &bits.to_string()]);
        run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            k,
            "-subj",
            "/CN=bench",
            "-days",
            "1",
            "-out",
            c,
        ]);
        let signer = LocalSigner::load(&key, Some(&cert), None).expect("load key");

        // One thread: sign_digest in a loop (formatted digest, RSA, PKCS#7 DER).
        let start = Instant::now();
        let cpu_start = thread_cpu_time();
        let mut n = 0u64;
        while start.elapsed() < budget {
            std::hint::black_box(signer.sign_digest(&digest(n)).expect("sign"));
            n += 1;
        }
        let single = n as f64 / start.elapsed().as_secs_f64();
        let per_cpu = match (cpu_start, thread_cpu_time()) {
            (Some(a), Some(b)) if b > a => format!("{:.0}", n as f64 / (b - a).as_secs_f64()),
            _ => "?".to_string(),
        };

        // A batch of distinct digests through the Signer trait (rayon, every core).
        let batch: Vec<FileDigest> = (0..(single * seconds) as u64 * threads as u64)
            .map(digest)
            .collect();
        let start = Instant::now();
        let sigs = signer.sign_digests(&batch).expect("sign batch");
        let multi = sigs.len() as f64 / start.elapsed().as_secs_f64();
        println!(
            "RSA-{bits}: {per_cpu} signatures per CPU-second; wall clock: {single:.0}/s on 1 thread, \
             {multi:.0}/s batched on {threads} threads ({} bytes each)",
            sigs[0].len()
        );
    }
}
