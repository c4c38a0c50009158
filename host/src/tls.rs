//! The listener's TLS: rustls only, TLS 1.3 and 1.2 with rustls' default suites, ALPN `h2` then
//! `http/1.1`. The server's certificate is either issued by this CA for itself and renewed at two
//! thirds of its life without a restart (the resolver swaps it; open connections keep the one
//! they shook hands with), or the operator's own files. A client certificate is asked for but
//! not required; one that is sent must chain to this CA's root and be valid now, else the
//! handshake fails: an expired or foreign certificate never becomes an identity.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate for the listener with its key, and when to replace it.
pub struct Issued {
    /// Leaf first, then the issuing chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key (PKCS#8); rustls keeps it from here on.
    pub key: PrivateKeyDer<'static>,
    /// Serial of the leaf, hex (for the log).
    pub serial: String,
    /// When to issue the next one.
    pub renew_at: SystemTime,
}

/// The server certificate rustls hands out, replaceable while the server runs.
#[derive(Debug)]
pub struct ListenerCert {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ListenerCert {
    fn new(issued: Issued, provider: Arc<CryptoProvider>) -> Result<Self> {
        let key = certified(issued, &provider)?;
        Ok(ListenerCert {
            current: RwLock::new(key),
            provider,
        })
    }

    /// Replace the certificate new handshakes get.
    fn replace(&self, issued: Issued) -> Result<()> {
        let key = certified(issued, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// The certificate chain new handshakes get (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cert
            .clone()
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified(issued: Issued, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
    let key = provider
        .key_provider
        .load_private_key(issued.key)
        .map_err(|e| anyhow!("the listener key: {e}"))?;
    let ck = CertifiedKey::new(issued.chain, key);
    ck.keys_match()
        .map_err(|e| anyhow!("the listener certificate does not match its key: {e}"))?;
    Ok(Arc::new(ck))
}

/// The crypto rustls uses here (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate issued by `issue` now, replaced by a fresh one from `issue` whenever the current
/// one reaches its `renew_at`. A failed renewal is logged and retried (every 30 s, sooner near the
/// end) while the current certificate serves on.
pub fn self_renewing(
    issue: impl Fn() -> Result<Issued> + Send + 'static,
) -> Result<Arc<ListenerCert>> {
    let first = issue().context("issuing the listener's own certificate")?;
    let mut renew_at = first.renew_at;
    let cert = Arc::new(ListenerCert::new(first, provider())?);
    let held = cert.clone();
    std::thread::Builder::new()
        .name("tls-renewal".into())
        .spawn(move || loop {
            let wait = renew_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            std::thread::sleep(wait);
            match issue().and_then(|i| {
                let (serial, next) = (i.serial.clone(), i.renew_at);
                held.replace(i)?;
                Ok((serial, next))
            }) {
                Ok((serial, next)) => {
                    tracing::info!(serial, "listener certificate renewed");
                    renew_at = next;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "listener certificate renewal failed; retrying");
                    eprintln!("wasm-pki signer: renewing the listener certificate failed: {e:#}");
                    renew_at = SystemTime::now() + Duration::from_secs(30).min(wait.max(Duration::from_secs(1)));
                }
            }
        })?;
    Ok(cert)
}

/// The operator's certificate chain and key (PEM files), checked to match.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<ListenerCert>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("reading {}: {e}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("reading the key {}: {e}", key.display()))?;
    Ok(Arc::new(ListenerCert::new(
        Issued {
            chain,
            key: key_der,
            serial: String::new(),
            renew_at: SystemTime::UNIX_EPOCH,
        },
        provider(),
    )?))
}

/// The listener's rustls configuration: `cert` for the server, client certificates optional and
/// verified against `client_roots` (PEM), ALPN h2 and http/1.1.
pub fn server_config(
    cert: Arc<ListenerCert>,
    client_roots: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(client_roots.as_bytes()) {
        roots
            .add(der.map_err(|e| anyhow!("the CA root: {e}"))?)
            .map_err(|e| anyhow!("the CA root as a trust anchor: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow!("the client-certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
