//! Load generator for `rpm-verity serve` (used by scripts/bench-serve).
//!
//! Each of `--concurrency` threads keeps one TLS connection and sends sign requests of `--batch`
//! digests. Closed loop by default (send the next request when the answer arrives: measures
//! capacity); with `--rate R` the threads together send R requests/s on a fixed schedule and
//! latency is counted from the scheduled send time, so a slow server cannot hide its queueing
//! (no coordinated omission).
//!
//! Throughput counts every request whose answer arrived inside the measurement window, whenever
//! it was sent (a request straddling the window's start or end is counted where it completes,
//! which is unbiased in steady state; counting only requests both sent and answered inside the
//! window undercounts by up to one request per client at each end: 20-35 % with 64 clients
//! whose requests take a second). Every completed signature of the whole run (warm-up and drain
//! included) is also checked against the server's own counter in `/metrics`.
//!
//! `--raw-key KEY.pem`: instead, the raw rate of the signing library the service uses
//! (aws-lc-rs RSA through `verity_signing::SigningKey`), one thread per core, for
//! `--duration` seconds: the ceiling the service's rate is a ratio of.
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
    #[arg(long, required_unless_present = "raw_key")]
    url: Option<String>,
    #[arg(long, default_value = "bench")]
    key: String,
    #[arg(long, required_unless_present = "raw_key")]
    token_file: Option<PathBuf>,
    #[arg(long, required_unless_present = "raw_key")]
    ca: Option<PathBuf>,
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
    /// Measure the raw signing rate of this PEM key on all cores instead.
    #[arg(long)]
    raw_key: Option<PathBuf>,
    /// Threads of --raw-key (default: one per core). On a machine shared with other work, a
    /// CPU-bound thread gets a fair share per thread, so the service's ~70 threads (its pool,
    /// runtime and the 64 client threads) get more of the CPU than 2 raw threads would: measure
    /// the raw rate with as many threads too.
    #[arg(long)]
    raw_threads: Option<usize>,
}

struct WorkerResult {
    latencies: Vec<Duration>,
    /// (sent, answered) of each request counted in `latencies`, to place the slowest in time.
    spans: Vec<(Instant, Instant)>,
    /// Answered (200) inside the window.
    ok: u64,
    /// Answered (200) at any time.
    total_ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Raw signatures per second of `key` on every core, signing distinct digests as the service
/// does (the formatted fs-verity digest, SHA-256).
fn raw(key: &std::path::Path, secs: f64, threads: Option<usize>) -> anyhow::Result<()> {
    let pem = std::fs::read(key).context("raw key")?;
    let key = Arc::new(verity_signing::SigningKey::from_pem(&pem, None)?);
    let threads = threads.unwrap_or(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (key, stop) = (key.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let digest = sha2::Sha256::digest(format!("{t}/{n}"));
                    let mut message = b"FSVerity\x01\x00\x20\x00".to_vec();
                    message.extend_from_slice(&digest);
                    if key.sign(fsverity::HashAlgorithm::Sha256, &message).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "raw aws-lc-rs RSA signs/s on {threads} threads: {:.0}  ({total} in {elapsed:.1} s)",
        total as f64 / elapsed
    );
    Ok(())
}

/// What the server's `/metrics` says at one moment: its signature counter and its latency
/// histogram, read from one response so the two describe the same instant.
struct ServerMetrics {
    /// `rpm_verity_serve_signatures_total`, summed over keys.
    signatures: u64,
    /// `rpm_verity_serve_sign_request_duration_seconds`: cumulative counts per upper bound in
    /// seconds, `+Inf` last.
    latency_buckets: Vec<(f64, u64)>,
}

fn server_metrics(agent: &ureq::Agent, base: &str) -> anyhow::Result<ServerMetrics> {
    let text = agent
        .get(&format!("{base}/metrics"))
        .call()
        .context("GET /metrics")?
        .body_mut()
        .read_to_string()?;
    let signatures = text
        .lines()
        .filter(|l| l.starts_with("rpm_verity_serve_signatures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let prefix = "rpm_verity_serve_sign_request_duration_seconds_bucket{le=\"";
    let latency_buckets = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.parse().ok()?))
        })
        .collect();
    Ok(ServerMetrics {
        signatures,
        latency_buckets,
    })
}

/// The machine-wide "steal" time (what the hypervisor gave to other guests while this VM's vCPUs
/// wanted to run) sampled every 20 ms until `stop`: a stall of the whole VM shows there only.
fn steal_samples(stop: &AtomicBool) -> Vec<(Instant, u64)> {
    let read = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
    };
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(v) = read() {
            out.push((Instant::now(), v));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// The ten slowest requests, when they were sent and how much CPU the hypervisor stole from the
/// VM while each was in flight (/proc/stat counts in 10 ms ticks, sampled every 20 ms).
fn print_slowest(spans: &mut [(Instant, Instant)], steal: &[(Instant, u64)], start: Instant) {
    let at = |t: Instant| -> u64 {
        steal
            .iter()
            .take_while(|s| s.0 <= t)
            .last()
            .or(steal.first())
            .map_or(0, |s| s.1)
    };
    let tick_ms = 10;
    let total = match (steal.first(), steal.last()) {
        (Some(a), Some(b)) => (b.1 - a.1) * tick_ms,
        _ => 0,
    };
    spans.sort_by_key(|s| std::cmp::Reverse(s.1 - s.0));
    let slow: Vec<String> = spans
        .iter()
        .take(10)
        .map(|&(sent, done)| {
            let stolen = at(done + Duration::from_millis(20)).saturating_sub(at(sent)) * tick_ms;
            format!(
                "{:.0} ms at +{:.2} s (steal {stolen} ms)",
                (done - sent).as_secs_f64() * 1000.0,
                sent.saturating_duration_since(start).as_secs_f64()
            )
        })
        .collect();
    println!(
        "hypervisor steal over the run: {total} ms of CPU; slowest requests: {}",
        slow.join(", ")
    );
}

/// The server's own view of the same requests, from its histogram's change over the run: a
/// second measurement beside the generator's clock (it starts when the handler gets the request
/// and ends when the answer, audit line on disk, is ready; TLS and the network are outside).
fn print_server_latency(before: &[(f64, u64)], after: &[(f64, u64)]) {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
            (le, n.saturating_sub(was))
        })
        .collect();
    let total = delta.last().map_or(0, |d| d.1);
    if total == 0 {
        println!("server's latency histogram: no sign request counted");
        return;
    }
    let shares: Vec<String> = delta
        .iter()
        .filter(|d| d.0.is_finite() && d.0 >= 0.005 && d.0 <= 0.25)
        .map(|&(le, n)| {
            format!(
                "<= {} ms {:.1} %",
                le * 1000.0,
                100.0 * n as f64 / total as f64
            )
        })
        .collect();
    let p99 = delta
        .iter()
        .find(|d| d.1 as f64 >= 0.99 * total as f64)
        .map_or(f64::INFINITY, |d| d.0 * 1000.0);
    println!(
        "server's latency histogram over the whole run: {total} sign requests; {}; p99 <= {p99} ms",
        shares.join(", ")
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(key) = &args.raw_key {
        return raw(key, args.duration, args.raw_threads);
    }
    if args.concurrency == 0 || args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--concurrency must be > 0 and --batch 1..={MAX_BATCH}");
    }
    let (Some(url), Some(token_file), Some(ca)) = (&args.url, &args.token_file, &args.ca) else {
        bail!("--url, --token-file and --ca are required");
    };
    let token = std::fs::read_to_string(token_file)
        .context("token file")?
        .trim()
        .to_string();
    let ca = std::fs::read(ca).context("CA file")?;
    let ca = ureq::tls::Certificate::from_pem(&ca).context("CA file")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    let base = url.trim_end_matches('/').to_string();
    let url = format!("{}{}", base, protocol::sign_path(&args.key));
    let auth = format!("Bearer {token}");
    let metrics_agent = ureq::Agent::config_builder()
        .tls_config(tls.clone())
        .build()
        .new_agent();
    let before = server_metrics(&metrics_agent, &base)?;

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
                    spans: Vec::new(),
                    ok: 0,
                    total_ok: 0,
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
                    if outcome.is_ok() {
                        res.total_ok += 1;
                    }
                    if done >= start + warmup && done <= start + warmup + measure {
                        match outcome {
                            Ok(()) => {
                                res.ok += 1;
                                res.latencies.push(done - sent);
                                res.spans.push((sent, done));
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

    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || steal_samples(&stop))
    };
    std::thread::sleep((start + warmup + measure).saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);
    let steal = sampler.join().unwrap_or_default();
    let mut spans = Vec::new();
    let mut lat = Vec::new();
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    let mut total_ok = 0;
    for w in workers {
        let r = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
        lat.extend(r.latencies);
        spans.extend(r.spans);
        ok += r.ok;
        total_ok += r.total_ok;
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
    print_slowest(&mut spans, &steal, start);
    // Every worker finished its last request before joining, so the server has nothing left
    // in flight from us: its counter must have moved by exactly what we received.
    let after = server_metrics(&metrics_agent, &base)?;
    let server = after.signatures - before.signatures;
    print_server_latency(&before.latency_buckets, &after.latency_buckets);
    let client = total_ok * args.batch as u64;
    println!(
        "whole run: {client} signatures received, server's /metrics counter +{server}: {}",
        if client == server {
            "match"
        } else {
            "MISMATCH"
        }
    );
    if client != server {
        bail!("the load generator received {client} signatures but the server counted {server}");
    }
    if ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}
