//! What a handler sees of HTTP: a request with its whole (bounded) body and the verified client
//! identity, and a response with its whole body. The wire is hyper's ([`super::server`]).

use std::sync::Arc;

use bytes::Bytes;
use hyper::HeaderMap;

/// A client certificate the TLS layer verified against the CA (chain, validity, client use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Its serial, hex.
    pub serial: String,
    /// SHA-256 of its DER, hex.
    pub fingerprint: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// One request, read whole.
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target without the query.
    pub path: String,
    /// The authority the client addressed (`host:port`): HTTP/2's `:authority`, or HTTP/1.1's
    /// absolute-form target, else the `Host` header.
    pub authority: Option<String>,
    pub(crate) headers: HeaderMap,
    /// The body (empty when `body_too_large`).
    pub body: Bytes,
    /// The declared body was larger than the server reads; the connection closes after the answer.
    pub body_too_large: bool,
    /// The client certificate verified during the TLS handshake, if the client sent one.
    pub client: Option<Arc<ClientIdentity>>,
}

impl Request {
    /// The first header called `name` (case-insensitive), if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response with its whole body.
pub struct Response {
    /// Status code.
    pub status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A response of `status` with a body of type `ctype`.
    pub fn new(status: u16, ctype: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type", ctype.into())],
            body: body.into(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.into()));
        self
    }
}

/// What the server calls.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request (on a blocking thread: it may wait for the sandbox and the ledger).
    fn handle(&self, rq: &Request) -> Response;
    /// Answer at once, on the connection's own thread, a request that needs neither the sandbox
    /// nor the ledger; `None` sends it to [`Handler::handle`] on a blocking thread.
    fn quick(&self, _rq: &Request) -> Option<Response> {
        None
    }
    /// A connection was turned away because `max_connections` were open.
    fn rejected(&self);
}
