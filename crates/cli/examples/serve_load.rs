//! Load generator for `rpm-verity serve` (used by scripts/bench-serve).
//!
//! Each of `--concurrency` threads keeps one TLS connection and sends sign requests of `--batch`
//! digests. Closed loop by default (send the next request when the answer arrives: measures
//! capacity); with `--rate R` the threads together send R requests/s on a fixed schedule and
//! latency is counted from the scheduled send time, so a slow server cannot hide its queueing
//! (no coordinated omission).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use sha2::Digest;
use verity_service::protocol::{self, SignRequest, MAX_BATCH};

#[derive(Parser)]
struct Args {
    /// https://HOST:PORT of the service.
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "bench")]
    key: String,
    #[arg(long)]
    token_file: PathBuf,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seconds of measurement (after a 1 s warm-up).
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Total requests per second, open loop; default: closed loop.
    #[arg(long)]
    rate: Option<f64>,
}

struct WorkerResult {
    latencies: Vec<Duration>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--concurrency must be > 0 and --batch 1..={MAX_BATCH}");
    }
    let token = std::fs::read_to_string(&args.token_file)
        .context("token file")?
        .trim()
        .to_string();
    let ca = std::fs::read(&args.ca).context("CA file")?;
    let ca = ureq::tls::Certificate::from_pem(&ca).context("CA file")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    let url = format!(
        "{}{}",
        args.url.trim_end_matches('/'),
        protocol::sign_path(&args.key)
    );
    let auth = format!("Bearer {token}");

    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(args.duration);
    let start = Instant::now() + Duration::from_millis(200);
    let stop = Arc::new(AtomicBool::new(false));
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.concurrency as f64 / r));

    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let tls = tls.clone();
            let (url, auth, stop) = (url.clone(), auth.clone(), stop.clone());
            let batch = args.batch;
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .tls_config(tls)
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                // Distinct digests per request, prepared up front so the client's CPU goes to
                // TLS and HTTP only.
                let bodies: Vec<Vec<u8>> = (0..16)
                    .map(|b| {
                        let digests: Vec<String> = (0..batch)
                            .map(|i| hex::encode(sha2::Sha256::digest(format!("{w}/{b}/{i}"))))
                            .collect();
                        let request = SignRequest {
                            digests,
                            hash_alg: "sha256".to_string(),
                        };
                        serde_json::to_vec(&request).unwrap_or_default()
                    })
                    .collect();
                let mut res = WorkerResult {
                    latencies: Vec::new(),
                    ok: 0,
                    errors: 0,
                    first_error: None,
                };
                // Spread the open-loop schedule over the interval so threads don't fire together.
                let mut next = start
                    + interval
                        .map(|i| i.mul_f64(w as f64 / 64.0 % 1.0))
                        .unwrap_or_default();
                let mut n = 0usize;
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                while !stop.load(Ordering::Relaxed) {
                    if interval.is_some() {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                    }
                    let sent = if interval.is_some() {
                        next
                    } else {
                        Instant::now()
                    };
                    let r = agent
                        .post(&url)
                        .header("Authorization", &auth)
                        .header("Content-Type", "application/json")
                        .send(&bodies[n % bodies.len()][..]);
                    n += 1;
                    let outcome = match r {
                        Ok(mut resp) => {
                            let status = resp.status().as_u16();
                            match resp.body_mut().with_config().limit(64 << 20).read_to_vec() {
                                Ok(_) if status == 200 => Ok(()),
                                Ok(b) => Err(format!(
                                    "HTTP {status}: {}",
                                    String::from_utf8_lossy(&b[..b.len().min(200)])
                                )),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let done = Instant::now();
                    if sent >= start + warmup && done <= start + warmup + measure {
                        match outcome {
                            Ok(()) => {
                                res.ok += 1;
                                res.latencies.push(done - sent);
                            }
                            Err(e) => {
                                res.errors += 1;
                                res.first_error.get_or_insert(e);
                            }
                        }
                    }
                    if let Some(i) = interval {
                        next += i;
                    }
                }
                res
            })
        })
        .collect();

    std::thread::sleep((start + warmup + measure).saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    for w in workers {
        let r = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
        lat.extend(r.latencies);
        ok += r.ok;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    let secs = measure.as_secs_f64();
    let mode = match args.rate {
        Some(r) => format!("open loop, {r} req/s offered"),
        None => "closed loop".to_string(),
    };
    println!(
        "{mode}: {} clients x {} digests/request, {secs:.0} s: {ok} requests ok, {errors} errors",
        args.concurrency, args.batch
    );
    println!(
        "signatures/s: {:.0}   requests/s: {:.1}   latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        ok as f64 * args.batch as f64 / secs,
        ok as f64 / secs,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    );
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    if ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}
