//! Whom the client trusts: the signer's root, pinned by its SHA-256 fingerprint (fetched once
//! from `/v1/ca` over a connection that trusts nothing, then compared) or read from a file; and
//! the rustls configurations built on it, with or without the client's certificate.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::http::{self, Server};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A fingerprint as people paste it (`AB:CD:…`, `abcd…`, with or without `sha256:`), as hex.
pub fn normalize_fingerprint(text: &str) -> Result<String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--ca-fingerprint {text}: expected a SHA-256 fingerprint (64 hex digits, colons allowed), as `wasm-pki serve` prints it");
    }
    Ok(hex)
}

/// The root certificate (first of `pem`), checked to parse.
fn root_of(pem: &str) -> Result<wasm_pki::Certificate> {
    let certs = wasm_pki::Certificate::parse_all(pem.as_bytes()).context("the CA bundle")?;
    certs.into_iter().next().context("the CA bundle is empty")
}

/// Fetch the signer's root from `/v1/ca` and accept it only if its SHA-256 is `pinned`. The
/// connection trusts any certificate, and nothing but the GET crosses it: an attacker in the
/// middle can answer, but not with a root of that fingerprint.
pub fn bootstrap(server: &Server, pinned: &str) -> Result<String> {
    let pinned = normalize_fingerprint(pinned)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        .with_no_client_auth();
    let reply = http::request(server, Arc::new(config), "GET", "/v1/ca", &[], Vec::new())?;
    if reply.status != 200 {
        bail!("{}/v1/ca answered {}", server.base, reply.status);
    }
    let pem = String::from_utf8(reply.body.to_vec()).context("the CA answer is not text")?;
    let root = root_of(&pem)?;
    let got = root.fingerprint_sha256();
    if got != pinned {
        bail!(
            "the signer's CA has fingerprint {got}, not the pinned {pinned}: refusing to trust it"
        );
    }
    Ok(root.to_pem())
}

/// A client configuration that trusts only `root_pem`, presenting `identity` (certificate chain
/// and key) when given.
pub fn config(
    root_pem: &str,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(root_of(root_pem)?.der().to_vec()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut c = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .context("the client certificate and key")?,
        None => builder.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// Accepts any server certificate (the bootstrap fetch only); the handshake's signatures are
/// still checked, so the peer holds the key of what it showed.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_as_people_paste_them() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        for t in [
            hex.clone(),
            colons,
            format!("sha256:{hex}"),
            format!(" {hex}\n"),
        ] {
            assert_eq!(normalize_fingerprint(&t).unwrap(), hex);
        }
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33), "sha1:abcd"] {
            assert!(normalize_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
