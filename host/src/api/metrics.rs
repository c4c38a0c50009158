//! Prometheus counters and a latency histogram, rendered as text for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the signing latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    refused: Mutex<BTreeMap<String, u64>>,
    /// Certificates issued and recorded.
    pub issued: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Count a finished request by route and status.
    pub fn request(&self, route: &str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// Count a refused signing request by reason (error code).
    pub fn refused(&self, reason: &str) {
        *self
            .refused
            .lock()
            .unwrap()
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// Observe one signing latency.
    pub fn observe(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Total requests counted so far (all routes and statuses).
    pub fn total_requests(&self) -> u64 {
        self.requests.lock().unwrap().values().sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, traps: u64) -> String {
        let mut s = String::new();
        s.push_str("# HELP wasm_pki_requests_total HTTP requests by route and status.\n# TYPE wasm_pki_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().unwrap().iter() {
            s.push_str(&format!(
                "wasm_pki_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
            ));
        }
        s.push_str("# HELP wasm_pki_issued_total Certificates issued and recorded.\n# TYPE wasm_pki_issued_total counter\n");
        s.push_str(&format!(
            "wasm_pki_issued_total {}\n",
            self.issued.load(Ordering::Relaxed)
        ));
        s.push_str("# HELP wasm_pki_refused_total Signing requests refused, by reason.\n# TYPE wasm_pki_refused_total counter\n");
        for (reason, n) in self.refused.lock().unwrap().iter() {
            s.push_str(&format!(
                "wasm_pki_refused_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        s.push_str("# HELP wasm_pki_sandbox_traps_total Sandbox instances dropped after a trap or limit.\n# TYPE wasm_pki_sandbox_traps_total counter\n");
        s.push_str(&format!("wasm_pki_sandbox_traps_total {traps}\n"));
        s.push_str("# HELP wasm_pki_sign_seconds Latency of POST /v1/sign.\n# TYPE wasm_pki_sign_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            s.push_str(&format!(
                "wasm_pki_sign_seconds_bucket{{le=\"{b}\"}} {}\n",
                self.buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        s.push_str(&format!(
            "wasm_pki_sign_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        s.push_str(&format!(
            "wasm_pki_sign_seconds_sum {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        s.push_str(&format!("wasm_pki_sign_seconds_count {count}\n"));
        s
    }
}
