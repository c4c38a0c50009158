//! One HTTPS request from the node-side client: hyper's HTTP/1.1 client over tokio-rustls, with a
//! deadline and a bounded answer. Trust is decided by the caller's rustls configuration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

/// How long one request may take, connection and TLS handshake included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;

/// The signer's base URL, checked: `https://HOST[:PORT]`, no path, query or credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The URL as the client uses it (no trailing slash): proofs name `BASE/v1/renew`.
    pub base: String,
    authority: String,
    host: String,
    port: u16,
}

impl Server {
    /// Parse `--server`.
    pub fn parse(url: &str) -> Result<Self> {
        let uri: hyper::Uri = url
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("--server {url}: not a URL"))?;
        if uri.scheme_str() != Some("https") {
            bail!("--server {url}: the signer is reached over https:// (the client sends tokens and keys' proofs)");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--server {url}: no host"))?;
        if authority.as_str().contains('@') {
            bail!("--server {url}: credentials do not belong in the URL");
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            bail!("--server {url}: give the base URL only (https://HOST:PORT)");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Server {
            base: format!("https://{authority}"),
            authority: authority.to_string(),
            host,
            port: authority.port_u16().unwrap_or(443),
        })
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Retry-After in seconds, when given.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The signer's refusal `{"error": {"code", "message"}}`, or the status when the body is
    /// something else (a proxy's page).
    pub fn refusal(&self) -> (String, String) {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or("http_error")
            .to_string();
        let message = v["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("HTTP {}", self.status));
        (code, message)
    }
}

/// Send one request and read the whole answer. An `Err` is a transport failure (no answer):
/// unreachable, TLS refused, deadline; an answer with any status is `Ok`.
pub fn request(
    server: &Server,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::time::timeout(
            TIMEOUT,
            exchange(server, config, method, path, headers, body),
        )
        .await
        .map_err(|_| anyhow!("no answer from {} within {TIMEOUT:?}", server.base))?
    })
}

async fn exchange(
    server: &Server,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply> {
    let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
        .await
        .with_context(|| format!("connecting to {}", server.base))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(server.host.clone())
        .map_err(|_| anyhow!("{} is not a DNS name or IP address", server.host))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {}", server.base))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &server.authority)
        .header(
            "user-agent",
            concat!("wasm-pki/", env!("CARGO_PKG_VERSION")),
        );
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await
        .with_context(|| format!("{method} {}{path}", server.base))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer of {}: {e}", server.base))?
        .to_bytes();
    driver.abort();
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        let s = Server::parse("https://ca.example:8443/").unwrap();
        assert_eq!(s.base, "https://ca.example:8443");
        assert_eq!((s.host.as_str(), s.port), ("ca.example", 8443));
        let s = Server::parse("https://[::1]:9").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.base.as_str()),
            ("::1", 9, "https://[::1]:9")
        );
        assert_eq!(Server::parse("https://ca.example").unwrap().port, 443);
        for bad in [
            "http://ca.example",
            "ca.example:8443",
            "https://u:p@ca.example",
            "https://ca.example/v1/sign",
            "https://ca.example/?x=1",
            "https://",
            "",
            "https://ca example",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }
}
