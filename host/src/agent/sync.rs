//! The agent's loop with the signer: keep the node certificate renewed, read the node's entries
//! and the trust bundle, make a key and CSR for each entry whose SVID is missing, changed or due
//! (half its life, with jitter), have them signed in batches, check what comes back, and publish
//! a new snapshot. When the signer is unreachable the SVIDs held keep being served while they are
//! valid (an expired one is never served) and the loop retries with backoff; it catches up by
//! itself when the signer returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::state::{Snapshot, State, Svid};
use crate::authority::agent::MAX_BATCH;
use crate::client::{http, renew, store, trust};
use crate::db::Entry;

/// What the loop needs.
pub struct Sync {
    /// The node certificate's directory (as `wasm-pki enroll` writes it).
    pub node_dir: PathBuf,
    /// The longest wait between two reads of the entries.
    pub interval: Duration,
    /// Where state is published.
    pub state: Arc<State>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntriesAnswer {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedSvid {
    entry_id: String,
    certificate: Option<String>,
    chain: Option<Vec<String>>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SignAnswer {
    svids: Vec<SignedSvid>,
}

/// The node's mTLS client configuration and the signer, from the live node certificate.
fn node_client(live: &store::Live) -> Result<(http::Server, Arc<rustls::ClientConfig>)> {
    let server = http::Server::parse(&live.meta.server)?;
    let chain: Vec<CertificateDer<'static>> = live
        .cert_chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let pkcs8 = live.key.to_pkcs8_der()?;
    let config = trust::config(
        &live.ca_pem,
        Some((chain, PrivateKeyDer::Pkcs8(pkcs8.to_vec().into()))),
    )?;
    Ok((server, config))
}

/// A JWT-SVID for `entry_id` and `audience` from the signer: the token and its expiry.
pub fn fetch_jwt(
    node_dir: &std::path::Path,
    entry_id: &str,
    audience: &[String],
) -> Result<(String, i64)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        token: String,
        expires_at: i64,
    }
    let (server, config) = node_client(&store::load(node_dir)?)?;
    let body = serde_json::to_vec(&serde_json::json!({"entryId": entry_id, "audience": audience}))?;
    let reply = http::request(&server, config, "POST", "/v1/agent/jwt", &[], body)?;
    if reply.status != 200 {
        let (code, message) = reply.refusal();
        bail!("POST /v1/agent/jwt: {code}: {message}");
    }
    let a: Answer = serde_json::from_slice(&reply.body).context("the signer's JWT-SVID")?;
    Ok((a.token, a.expires_at))
}

/// Run forever (on its own thread).
pub fn run(s: &Sync) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match once(s) {
            Ok(next) => {
                backoff = Duration::from_secs(1);
                let wait = (next - super::now()).clamp(0, s.interval.as_secs() as i64);
                std::thread::sleep(
                    Duration::from_secs(wait as u64).max(Duration::from_millis(200)),
                );
            }
            Err(e) => {
                eprintln!("wasm-pki agent: {e:#}; retrying in {backoff:?} (SVIDs held are still served while valid)");
                std::thread::sleep(backoff);
                // Capped by the sync interval too: a signer that comes back is found soon.
                backoff = (backoff * 2)
                    .min(Duration::from_secs(30))
                    .min(s.interval.max(Duration::from_secs(1)));
            }
        }
    }
}

/// One round; returns when the next one is due (Unix seconds).
pub fn once(s: &Sync) -> Result<i64> {
    let now = super::now();
    let mut live = store::load(&s.node_dir)?;
    if now >= live.meta.renew_after {
        let r = renew::Renew {
            out: s.node_dir.clone(),
            server: None,
            daemon: false,
            rekey: false,
            proof: false,
            exec: None,
            signal: None,
        };
        match renew::once(&r) {
            Ok(m) => eprintln!(
                "wasm-pki agent: node certificate renewed (serial {})",
                m.serial
            ),
            Err(e) => eprintln!("wasm-pki agent: node certificate renewal: {e}"),
        }
        live = store::load(&s.node_dir)?;
    }
    let (server, config) = node_client(&live)?;
    let get = |path: &str| -> Result<bytes::Bytes> {
        let reply = http::request(&server, config.clone(), "GET", path, &[], Vec::new())?;
        if reply.status != 200 {
            let (code, message) = reply.refusal();
            bail!("GET {path}: {code}: {message}");
        }
        Ok(reply.body)
    };
    let entries: EntriesAnswer =
        serde_json::from_slice(&get("/v1/agent/entries")?).context("the signer's entries")?;
    let bundle: serde_json::Value =
        serde_json::from_slice(&get("/v1/bundle")?).context("the trust bundle")?;
    let (x509_authorities, jwt_bundle) = read_bundle(&bundle)?;

    let old = s.state.snapshot();
    let mut svids: BTreeMap<String, Arc<Svid>> = BTreeMap::new();
    let mut due = Vec::new();
    for e in &entries.entries {
        let same_entry = old.entries.iter().any(|o| o == e);
        match old.svids.get(&e.id) {
            Some(v) if same_entry && now < v.rotate_at => {
                svids.insert(e.id.clone(), v.clone());
            }
            held => {
                // Served until its replacement arrives, if still valid.
                if let Some(v) = held.filter(|v| same_entry && now < v.not_after) {
                    svids.insert(e.id.clone(), v.clone());
                }
                due.push(e);
            }
        }
    }
    let root = wasm_pki::Certificate::parse(live.ca_pem.as_bytes())?;
    let mut failure = None;
    let started = std::time::Instant::now();
    let mut signed = 0;
    for batch in due.chunks(MAX_BATCH) {
        match sign_batch(&server, &config, batch, &root) {
            Ok(made) => {
                signed += made.len();
                for (id, svid) in made {
                    svids.insert(id, Arc::new(svid));
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    if !due.is_empty() {
        eprintln!(
            "wasm-pki agent: {signed} of {} SVIDs due signed in {} ms ({} batches); {} of {} entries hold one",
            due.len(),
            started.elapsed().as_millis(),
            due.len().div_ceil(MAX_BATCH),
            svids.len(),
            entries.entries.len()
        );
    }
    let trust_domain = entries
        .entries
        .first()
        .and_then(|e| wasm_pki::SpiffeId::parse(&e.spiffe_id).ok())
        .map(|id| id.trust_domain().to_string())
        .unwrap_or_default();
    let changed = old.entries != entries.entries
        || old.x509_authorities != x509_authorities
        || old.jwt_bundle != jwt_bundle
        || old.svids.len() != svids.len()
        || old
            .svids
            .iter()
            .zip(&svids)
            .any(|((a, x), (b, y))| a != b || !Arc::ptr_eq(x, y));
    let next = svids
        .values()
        .map(|v| v.rotate_at)
        .min()
        .unwrap_or(now + s.interval.as_secs() as i64);
    if changed {
        s.state.publish(Snapshot {
            entries: entries.entries,
            svids,
            x509_authorities,
            jwt_bundle,
            trust_domain,
        });
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(next.min(live.meta.renew_after)),
    }
}

/// The X.509 authorities (DER, from each `x509-svid` key's `x5c`) and the JWT authorities (a
/// JWK Set of the `jwt-svid` keys) of the signer's trust bundle.
fn read_bundle(doc: &serde_json::Value) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
    use base64ct::{Base64, Encoding};
    let keys = doc["keys"].as_array().context("the bundle has no keys")?;
    let mut x509 = Vec::new();
    let mut jwt = Vec::new();
    for k in keys {
        match k["use"].as_str() {
            Some("x509-svid") => {
                let der = k["x5c"][0]
                    .as_str()
                    .and_then(|b| Base64::decode_vec(b).ok())
                    .context("an x509-svid key without its certificate")?;
                x509.push(der);
            }
            Some("jwt-svid") => jwt.push(k.clone()),
            _ => {}
        }
    }
    let jwt_bundle = if jwt.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&serde_json::json!({ "keys": jwt }))?
    };
    Ok((x509, jwt_bundle))
}

/// Make a key and CSR for each entry, have them signed in one request, and check each answer.
fn sign_batch(
    server: &http::Server,
    config: &Arc<rustls::ClientConfig>,
    batch: &[&Entry],
    root: &wasm_pki::Certificate,
) -> Result<Vec<(String, Svid)>> {
    let mut rng = crate::client::rng()?;
    let mut keys = BTreeMap::new();
    let mut csrs = Vec::with_capacity(batch.len());
    for e in batch {
        let key = wasm_pki::KeyPair::generate(wasm_pki::Algorithm::P256, &mut rng);
        let mut names = vec![wasm_pki::SanName::uri(&e.spiffe_id)?];
        for d in &e.dns {
            names.push(wasm_pki::SanName::dns(d)?);
        }
        let csr = wasm_pki::CsrRequest {
            subject: wasm_pki::Subject::default(),
            names,
        }
        .sign(&key)?;
        csrs.push(serde_json::json!({"entryId": e.id, "csr": csr.to_pem()}));
        keys.insert(e.id.clone(), key);
    }
    let body = serde_json::to_vec(&serde_json::json!({ "csrs": csrs }))?;
    let reply = http::request(server, config.clone(), "POST", "/v1/agent/sign", &[], body)?;
    if reply.status != 200 {
        let (code, message) = reply.refusal();
        bail!("POST /v1/agent/sign: {code}: {message}");
    }
    let answer: SignAnswer = serde_json::from_slice(&reply.body).context("the signer's SVIDs")?;
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for a in answer.svids {
        let Some(key) = keys.get(&a.entry_id) else {
            bail!("the signer answered for an entry not asked for");
        };
        match (a.certificate, a.error) {
            (Some(pem), None) => {
                let svid = check(&pem, a.chain.unwrap_or_default(), key, root)
                    .with_context(|| format!("the SVID for entry {}", a.entry_id))?;
                out.push((a.entry_id, svid));
            }
            (_, e) => refused.push(format!("{}: {}", a.entry_id, e.unwrap_or_default())),
        }
    }
    if !refused.is_empty() {
        eprintln!("wasm-pki agent: refused: {}", refused.join("; "));
    }
    Ok(out)
}

/// The leaf is for `key` and chains to the trusted root now.
fn check(
    leaf_pem: &str,
    chain: Vec<String>,
    key: &wasm_pki::KeyPair,
    root: &wasm_pki::Certificate,
) -> Result<Svid> {
    let leaf = wasm_pki::Certificate::parse(leaf_pem.as_bytes())?;
    if leaf.public_key()?.spki_der() != key.public_key().spki_der() {
        bail!("not for the key made for it");
    }
    let mut path = vec![leaf.clone()];
    for pem in &chain {
        let c = wasm_pki::Certificate::parse(pem.as_bytes())?;
        if c.der() != root.der() {
            path.push(c);
        }
    }
    path.push(root.clone());
    wasm_pki::verify_chain(&path, super::now()).map_err(|e| anyhow!("does not verify: {e}"))?;
    let na = leaf.not_after();
    // Half of what is left of it from now (notBefore is backdated, so the signer's renewAfter
    // comes early on short lifetimes), then up to a tenth of that of jitter, so entries made
    // together are not renewed together.
    let now = super::now();
    let left = (na - now).max(2);
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow!("OS RNG: {e}"))?;
    let jitter = (u64::from_le_bytes(b) % (left as u64 / 10 + 1)) as i64;
    let rotate_at = now + left / 2 + jitter;
    Ok(Svid {
        chain: path[..path.len() - 1]
            .iter()
            .map(|c| c.der().to_vec())
            .collect(),
        key_pkcs8: Zeroizing::new(key.to_pkcs8_der()?.to_vec()),
        not_after: na,
        rotate_at,
        serial: leaf.serial_hex(),
    })
}
