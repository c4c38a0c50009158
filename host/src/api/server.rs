//! The listener: tokio accepts, rustls terminates TLS (HTTP/2 or HTTP/1.1, chosen by ALPN),
//! hyper reads and writes HTTP. Handlers run on tokio's blocking pool: signing waits for a
//! sandbox instance and for the ledger, which must not stall the threads that move bytes.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};

use super::guard::H1Guard;
use super::http::{ClientIdentity, Handler, Request, Response};

/// How a connection is served.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; more are turned away at once.
    pub max_connections: usize,
    /// Largest body read; a larger declared one gets 413 without being read.
    pub max_body: usize,
    /// The most a TLS handshake, a request head (and the keep-alive wait before it), a body, or a
    /// stalled write may take.
    pub deadline: Duration,
    /// How long a stopping server waits for the requests in flight.
    pub grace: Duration,
}

/// Asks a running [`run`] to stop: no new connections or requests; it returns once the requests
/// in flight are answered, or after the grace period.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    /// Requests being handled now.
    busy: Arc<AtomicUsize>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
            busy: Arc::default(),
        }
    }
}

impl Shutdown {
    /// Start stopping.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once stopping has started.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.tx.borrow()
    }
}

/// TLS for the listener, or none (`--plain-http`).
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP/1.1.
    Plain,
    /// TLS 1.2/1.3 with this configuration (its ALPN list offers `h2` and `http/1.1`).
    Tls(tokio_rustls::TlsAcceptor),
}

/// The 503 for a request that arrives while the server stops.
fn shutting_down() -> Response {
    Response::new(
        503,
        "application/json",
        r#"{"error":{"code":"shutting_down","message":"the signer is stopping; retry on another"}}"#,
    )
    .with_header("retry-after", "1")
}

fn bad_request(status: u16, message: &str) -> Response {
    Response::new(
        status,
        "application/json",
        format!(r#"{{"error":{{"code":"bad_request","message":"{message}"}}}}"#),
    )
}

/// Accept connections until `shutdown` is triggered, then wait for the requests in flight (at
/// most `limits.grace`) and close every connection.
pub async fn run<H: Handler>(
    listener: TcpListener,
    transport: Transport,
    limits: Limits,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut stop = shutdown.tx.subscribe();
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                // Out of descriptors or an aborted handshake: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            handler.rejected();
            tokio::spawn(turn_away(stream, transport.clone()));
            continue;
        };
        let (transport, handler, shutdown, watcher) = (
            transport.clone(),
            handler.clone(),
            shutdown.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            connection(stream, transport, limits, handler, shutdown, watcher).await;
            drop(slot);
        });
    }
    drop(listener);
    // Requests in flight are answered (each answer already waits for its ledger record); then
    // idle keep-alive connections are closed.
    let deadline = tokio::time::Instant::now() + limits.grace;
    while shutdown.busy.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = tokio::time::timeout_at(deadline, graceful.shutdown()).await;
    Ok(())
}

/// Over the connection limit: a plain client is told (503), a TLS one is closed (answering
/// would cost a handshake, the very work the limit sheds).
async fn turn_away(mut stream: tokio::net::TcpStream, transport: Transport) {
    if let Transport::Plain = transport {
        let body = r#"{"error":{"code":"overloaded","message":"too many connections"}}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    }
}

async fn connection<H: Handler>(
    stream: tokio::net::TcpStream,
    transport: Transport,
    limits: Limits,
    handler: Arc<H>,
    shutdown: Shutdown,
    watcher: Watcher,
) {
    match transport {
        Transport::Plain => {
            serve_http(stream, false, None, limits, handler, shutdown, watcher).await
        }
        Transport::Tls(acceptor) => {
            let Ok(Ok(tls)) = tokio::time::timeout(limits.deadline, acceptor.accept(stream)).await
            else {
                return; // a failed or too slow handshake (rustls sent its alert)
            };
            let (_, session) = tls.get_ref();
            let h2 = session.alpn_protocol() == Some(b"h2");
            let client = session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|der| {
                    let cert = wasm_pki::Certificate::from_der(der.to_vec()).ok()?;
                    Some(Arc::new(ClientIdentity {
                        serial: cert.serial_hex(),
                        fingerprint: cert.fingerprint_sha256(),
                        der: der.to_vec(),
                    }))
                });
            serve_http(tls, h2, client, limits, handler, shutdown, watcher).await
        }
    }
}

/// Serve HTTP on one (decrypted) connection until it closes.
async fn serve_http<S, H>(
    io: S,
    h2: bool,
    client: Option<Arc<ClientIdentity>>,
    limits: Limits,
    handler: Arc<H>,
    shutdown: Shutdown,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    // A peer that stops reading our answer is cut after the deadline, as one that stops writing.
    let mut io = tokio_io_timeout::TimeoutStream::new(io);
    io.set_write_timeout(Some(limits.deadline));
    if h2 {
        // HTTP/2 has no head deadline to end an idle connection (HTTP/1's covers the keep-alive
        // wait): one silent for six deadlines is closed, so idle clients cannot hold every slot.
        io.set_read_timeout(Some(limits.deadline * 6));
    }
    let io = Box::pin(io);
    let service = service_fn(move |rq: hyper::Request<Incoming>| {
        let (handler, shutdown, client) = (handler.clone(), shutdown.clone(), client.clone());
        async move {
            let response = respond(rq, client, limits, handler, shutdown).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(64)
            .max_header_list_size(16 * 1024);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let _ = watcher.watch(conn).await;
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.deadline)
            .max_buf_size(16 * 1024)
            .max_headers(100)
            // A client may shut down its sending side while it waits for the answer.
            .half_close(true)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(H1Guard::new(io)), service);
        let _ = watcher.watch(conn).await;
    }
}

/// At most this much of an oversized HTTP/2 body is read and dropped, for at most [`LINGER_TIME`].
const LINGER_BYTES: u64 = 4 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Read and drop `body` up to `max` bytes.
async fn drain(mut body: Incoming, max: u64) {
    let mut seen = 0u64;
    while seen < max {
        match body.frame().await {
            Some(Ok(frame)) => {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => return,
        }
    }
}

/// Read one request's body within the limits, hand it to the handler on a blocking thread, and
/// turn its answer into hyper's response.
async fn respond<H: Handler>(
    rq: hyper::Request<Incoming>,
    client: Option<Arc<ClientIdentity>>,
    limits: Limits,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> hyper::Response<Full<Bytes>> {
    let http1 = rq.version() < hyper::Version::HTTP_2;
    // Counted from here until the answer is built, so that a shutdown waits for it.
    shutdown.busy.fetch_add(1, Ordering::SeqCst);
    let answer = async {
        if shutdown.stopping() {
            return (shutting_down(), true);
        }
        // The body is a few KB of JSON: chunked framing buys nothing and, next to a
        // Content-Length hyper drops, is smuggling material. Refused, and the connection closed.
        if http1 && rq.headers().contains_key(TRANSFER_ENCODING) {
            return (
                bad_request(
                    400,
                    "send the body with a Content-Length, not Transfer-Encoding",
                ),
                true,
            );
        }
        // "GET healthz": authority-form is for CONNECT only (RFC 9112 3.2.3).
        if rq.uri().scheme().is_none() && rq.uri().authority().is_some() {
            return (bad_request(400, "malformed request target"), true);
        }
        let declared = rq
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (parts, body) = rq.into_parts();
        let mut request = Request {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            authority: parts
                .uri
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    parts
                        .headers
                        .get(hyper::header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                }),
            headers: parts.headers,
            body: Bytes::new(),
            body_too_large: false,
            client,
        };
        let mut close = false;
        if declared.is_some_and(|n| n > limits.max_body as u64) {
            request.body_too_large = true;
            if http1 {
                // Not read: the answer says so, and the connection closes after it (lingering).
                close = true;
            } else {
                // An HTTP/2 stream answered before its body ends is reset, which some clients
                // (curl 7.88) report instead of the answer: read and drop a bounded amount first.
                let _ = tokio::time::timeout(LINGER_TIME, drain(body, LINGER_BYTES)).await;
            }
        } else {
            let read = tokio::time::timeout(
                limits.deadline,
                Limited::new(body, limits.max_body).collect(),
            )
            .await;
            match read {
                Ok(Ok(b)) => request.body = b.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    request.body_too_large = true;
                    close = true;
                }
                // Cut off, or too slow: nothing worth answering.
                _ => return (bad_request(400, "the body did not arrive in time"), true),
            }
        }
        let response = match handler.quick(&request) {
            Some(response) => response,
            None => {
                let handler = handler.clone();
                tokio::task::spawn_blocking(move || handler.handle(&request))
                    .await
                    .unwrap_or_else(|_| {
                        Response::new(
                            500,
                            "application/json",
                            r#"{"error":{"code":"internal","message":"the handler failed"}}"#,
                        )
                    })
            }
        };
        (response, close || shutdown.stopping())
    };
    let (response, close) = answer.await;
    shutdown.busy.fetch_sub(1, Ordering::SeqCst);
    let mut out = hyper::Response::builder().status(response.status);
    for (k, v) in &response.headers {
        out = out.header(*k, v.as_str());
    }
    if close && http1 {
        out = out.header(CONNECTION, "close");
    }
    out.body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}
