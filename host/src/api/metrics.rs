//! Prometheus metrics through `prometheus-client` (OpenMetrics text, escaped label values):
//! requests by route and status, issued certificates, refusals by reason, sandbox traps, and the
//! signing latency histogram.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the signing latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    renewal_refused: Family<ReasonLabels, Counter>,
    issued: Counter,
    jwt_issued: Counter,
    renewed: Counter,
    traps: Counter,
    violations: Counter,
    /// The sandbox's trap and violation counts at the last scrape (the sandbox keeps the totals).
    traps_seen: Mutex<(u64, u64)>,
    sign_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let refused = Family::<ReasonLabels, Counter>::default();
        let renewal_refused = Family::<ReasonLabels, Counter>::default();
        let issued = Counter::default();
        let jwt_issued = Counter::default();
        let renewed = Counter::default();
        let traps = Counter::default();
        let violations = Counter::default();
        let sign_seconds = Histogram::new(BUCKETS);
        registry.register(
            "wasm_pki_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "wasm_pki_issued",
            "Certificates issued and recorded",
            issued.clone(),
        );
        registry.register(
            "wasm_pki_jwt_svids_issued",
            "JWT-SVIDs signed for node agents' entries",
            jwt_issued.clone(),
        );
        registry.register(
            "wasm_pki_refused",
            "Signing requests refused, by reason",
            refused.clone(),
        );
        registry.register(
            "wasm_pki_renewed",
            "Certificates issued by renewal (also counted in wasm_pki_issued)",
            renewed.clone(),
        );
        registry.register(
            "wasm_pki_renewal_refused",
            "Renewals refused, by reason (also counted in wasm_pki_refused)",
            renewal_refused.clone(),
        );
        registry.register(
            "wasm_pki_sandbox_traps",
            "Sandbox instances dropped after a trap or limit",
            traps.clone(),
        );
        registry.register(
            "wasm_pki_sandbox_violations",
            "Signatures a guest asked for and the host refused (sandbox_violation); each dropped its instance",
            violations.clone(),
        );
        registry.register(
            "wasm_pki_sign_seconds",
            "Latency of POST /v1/sign",
            sign_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            refused,
            renewal_refused,
            issued,
            jwt_issued,
            renewed,
            traps,
            violations,
            traps_seen: Mutex::new((0, 0)),
            sign_seconds,
        }
    }
}

/// A reason label as it is counted: stable codes pass; anything else (a code from a misbehaving
/// guest) is counted as `other`, so label cardinality stays bounded.
fn reason_label(reason: &str) -> String {
    let ok = !reason.is_empty()
        && reason.len() <= 40
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok { reason } else { "other" }.to_string()
}

impl Metrics {
    /// Count a finished request by route and status.
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Count a refused signing request by reason (error code).
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: reason_label(reason),
            })
            .inc();
    }

    /// Count an issued (and recorded) certificate.
    pub fn issued(&self) {
        self.issued.inc();
    }

    /// Count a JWT-SVID signed for an agent.
    pub fn jwt_issued(&self) {
        self.jwt_issued.inc();
    }

    /// Count a renewal: issued, or refused for `reason`.
    pub fn renewal(&self, refused: Option<&str>) {
        match refused {
            None => self.renewed.inc(),
            Some(reason) => self
                .renewal_refused
                .get_or_create(&ReasonLabels {
                    reason: reason_label(reason),
                })
                .inc(),
        };
    }

    /// Observe one signing latency.
    pub fn observe(&self, secs: f64) {
        self.sign_seconds.observe(secs);
    }

    /// The OpenMetrics text exposition; `traps` is the sandbox's running total.
    pub fn render(&self, traps: u64, violations: u64) -> String {
        let mut seen = self.traps_seen.lock().unwrap_or_else(|e| e.into_inner());
        if traps > seen.0 {
            self.traps.inc_by(traps - seen.0);
            seen.0 = traps;
        }
        if violations > seen.1 {
            self.violations.inc_by(violations - seen.1);
            seen.1 = violations;
        }
        drop(seen);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
    }
}

/// The media type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_escape_and_bound_labels() {
        let m = Metrics::default();
        m.request("/v1/sign", 200);
        m.request("/v1/sign", 200);
        m.request("r\"oute\\\n", 404);
        m.refused("policy");
        m.refused("evil\"} 1\nwasm_pki_issued_total 99");
        m.issued();
        m.observe(0.003);
        let text = m.render(2, 1);
        assert!(
            text.contains(r#"wasm_pki_requests_total{route="/v1/sign",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"route="r\"oute\\\n""#), "{text}");
        assert!(
            text.contains(r#"wasm_pki_refused_total{reason="policy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasm_pki_refused_total{reason="other"} 1"#),
            "{text}"
        );
        assert!(text.contains("wasm_pki_issued_total 1\n"), "{text}");
        assert!(!text.contains("wasm_pki_issued_total 99"), "{text}");
        assert!(text.contains("wasm_pki_sandbox_traps_total 2"), "{text}");
        assert!(
            text.contains("wasm_pki_sandbox_violations_total 1"),
            "{text}"
        );
        // The sandbox keeps totals: a scrape adds only what is new.
        let text = m.render(2, 3);
        assert!(
            text.contains("wasm_pki_sandbox_violations_total 3"),
            "{text}"
        );
        assert!(text.contains("wasm_pki_sign_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
