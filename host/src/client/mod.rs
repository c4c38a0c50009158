//! The node-side client in the same binary: `wasm-pki enroll` (token → key made here → CSR →
//! certificate) and `wasm-pki renew` (the certificate is the credential; once, or as a daemon).
//! The core makes the key, the CSR and the renewal proof, as it does in the page; the key never
//! leaves this machine. [`trust`] pins the signer's root, [`http`] sends one request,
//! [`store`] keeps the output directory consistent.

pub mod enroll;
pub mod http;
pub mod renew;
pub mod store;
pub mod trust;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use zeroize::Zeroizing;

use store::{Material, Meta};

/// The signer's answer to a sign or renew request (fields the client needs; others ignored so
/// a newer signer may add some).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    certificate: String,
    chain: Vec<String>,
    ca: String,
    renew_after: i64,
    serial: String,
}

/// Why a request got no certificate.
#[derive(Debug)]
pub enum Failure {
    /// The signer refused (revoked, policy, bad token…), or this machine cannot go on (files):
    /// the same request will not do better later.
    Refused {
        /// The signer's code, or `local`.
        code: String,
        /// What it said.
        message: String,
    },
    /// No answer, or a passing refusal (busy, unavailable): worth trying again.
    Transient {
        /// What happened.
        reason: String,
        /// The signer's advice, in seconds.
        retry_after: Option<u64>,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused { code, message } => write!(f, "refused ({code}): {message}"),
            Failure::Transient { reason, .. } => write!(f, "{reason}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Refused {
            code: "local".into(),
            message: format!("{e:#}"),
        }
    }
}

/// Unix seconds as RFC 3339 (UTC), for people.
pub fn when(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The current time, Unix seconds.
fn now() -> i64 {
    crate::authority::now()
}

/// A CSPRNG seeded from the OS for the core's key generation and proof ids.
pub(crate) fn rng() -> Result<wasm_pki::SeedRng> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(wasm_pki::SeedRng::from_seed(*seed))
}

/// POST `body` to `path` and read a certificate answer.
fn post(
    server: &http::Server,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, Failure> {
    let reply = http::request(server, config, "POST", path, headers, body).map_err(|e| {
        Failure::Transient {
            reason: format!("{e:#}"),
            retry_after: None,
        }
    })?;
    match reply.status {
        200 => serde_json::from_slice(&reply.body).map_err(|e| Failure::Refused {
            code: "bad_answer".into(),
            message: format!("the signer's answer is not a certificate: {e}"),
        }),
        408 | 429 | 500..=599 => Err(Failure::Transient {
            reason: format!("HTTP {}: {}", reply.status, reply.refusal().1),
            retry_after: reply.retry_after,
        }),
        _ => {
            let (code, message) = reply.refusal();
            Err(Failure::Refused { code, message })
        }
    }
}

/// Check an answer before anything is written: the certificate is for `key`, chains to the
/// trusted root (`root_pem`) now, and the signer's root is that root.
fn material(
    answer: Answer,
    key: &wasm_pki::KeyPair,
    root_pem: &str,
    server: &http::Server,
) -> Result<Material> {
    let leaf = wasm_pki::Certificate::parse(answer.certificate.as_bytes())
        .context("the signer's certificate")?;
    if leaf.public_key()?.spki_der() != key.public_key().spki_der() {
        bail!("the signer's certificate is not for this key");
    }
    let root = wasm_pki::Certificate::parse(root_pem.as_bytes())?;
    let theirs = wasm_pki::Certificate::parse(answer.ca.as_bytes()).context("the signer's CA")?;
    if theirs.der() != root.der() {
        bail!("the signer answered with another root than the one trusted");
    }
    let mut path = vec![leaf.clone()];
    for pem in &answer.chain {
        let c = wasm_pki::Certificate::parse(pem.as_bytes()).context("the signer's chain")?;
        if c.der() != root.der() {
            path.push(c);
        }
    }
    path.push(root.clone());
    wasm_pki::verify_chain(&path, now()).context("the signer's certificate does not verify")?;
    if leaf.serial_hex() != answer.serial.to_lowercase() {
        bail!("the signer's answer names another serial than its certificate");
    }
    Ok(Material {
        key_pem: Zeroizing::new(key.to_pkcs8_pem()?.to_string()),
        leaf_pem: leaf.to_pem(),
        chain: path[1..path.len() - 1].iter().map(|c| c.to_pem()).collect(),
        ca_pem: root.to_pem(),
        meta: Meta {
            server: server.base.clone(),
            serial: leaf.serial_hex(),
            not_before: leaf.not_before(),
            not_after: leaf.not_after(),
            renew_after: answer.renew_after,
        },
    })
}
