//! Prometheus text-format metrics, kept by hand: a few counters and one histogram don't justify a
//! metrics framework, and the exposition format is simple and stable.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the sign-latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    signatures: Mutex<BTreeMap<String, u64>>,
    tls_failures: AtomicU64,
    refusals_unlogged: AtomicU64,
    in_flight: AtomicI64,
    sign_buckets: [AtomicU64; BUCKETS.len()],
    sign_count: AtomicU64,
    sign_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((endpoint, status))
            .or_default() += 1;
    }

    pub fn error(&self, kind: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn signatures(&self, key: &str, n: usize) {
        let mut m = self.signatures.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(key) {
            Some(v) => *v += n as u64,
            None => {
                m.insert(key.to_string(), n as u64);
            }
        }
    }

    pub fn tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refusal_unlogged(&self) {
        self.refusals_unlogged.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn sign_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.sign_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sign_count.fetch_add(1, Ordering::Relaxed);
        self.sign_sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let p = "rpm_verity_serve";
        let _ = writeln!(
            out,
            "# HELP {p}_requests_total HTTP requests by endpoint and status."
        );
        let _ = writeln!(out, "# TYPE {p}_requests_total counter");
        for ((ep, st), v) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{p}_requests_total{{endpoint=\"{ep}\",status=\"{st}\"}} {v}"
            );
        }
        let _ = writeln!(out, "# HELP {p}_signatures_total Signatures made, by key.");
        let _ = writeln!(out, "# TYPE {p}_signatures_total counter");
        for (k, v) in self
            .signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "{p}_signatures_total{{key=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP {p}_errors_total Rejected or failed requests, by kind."
        );
        let _ = writeln!(out, "# TYPE {p}_errors_total counter");
        for (k, v) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{p}_errors_total{{kind=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP {p}_tls_handshake_failures_total TLS handshakes that failed."
        );
        let _ = writeln!(out, "# TYPE {p}_tls_handshake_failures_total counter");
        let _ = writeln!(
            out,
            "{p}_tls_handshake_failures_total {}",
            self.tls_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {p}_audit_refusals_unlogged_total Refusals over their peer's audit log budget, counted instead of logged."
        );
        let _ = writeln!(out, "# TYPE {p}_audit_refusals_unlogged_total counter");
        let _ = writeln!(
            out,
            "{p}_audit_refusals_unlogged_total {}",
            self.refusals_unlogged.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {p}_in_flight_requests Requests being handled now."
        );
        let _ = writeln!(out, "# TYPE {p}_in_flight_requests gauge");
        let _ = writeln!(
            out,
            "{p}_in_flight_requests {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        self.render_sign_latency(&mut out, p);
        out
    }

    fn render_sign_latency(&self, out: &mut String, p: &str) {
        let _ = writeln!(
            out,
            "# HELP {p}_sign_request_duration_seconds Time to answer sign requests."
        );
        let _ = writeln!(out, "# TYPE {p}_sign_request_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let v = self.sign_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{p}_sign_request_duration_seconds_bucket{{le=\"{b}\"}} {v}"
            );
        }
        let count = self.sign_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{p}_sign_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sign_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{p}_sign_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "{p}_sign_request_duration_seconds_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.sign_latency(Duration::from_millis(3));
        m.sign_latency(Duration::from_millis(300));
        m.request("sign", 200);
        m.signatures("k", 5);
        let t = m.render();
        assert!(
            t.contains("rpm_verity_serve_sign_request_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("rpm_verity_serve_sign_request_duration_seconds_bucket{le=\"0.5\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("rpm_verity_serve_sign_request_duration_seconds_count 2\n"),
            "{t}"
        );
        assert!(
            t.contains("rpm_verity_serve_signatures_total{key=\"k\"} 5\n"),
            "{t}"
        );
        assert!(
            t.contains("rpm_verity_serve_requests_total{endpoint=\"sign\",status=\"200\"} 1\n"),
            "{t}"
        );
    }
}
