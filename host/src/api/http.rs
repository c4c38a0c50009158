//! A small HTTP/1.1 server: one thread per connection up to a cap, keep-alive with an idle
//! timeout, a bounded request head and body. It replaces tiny_http, whose connection pool queued
//! new connections behind busy keep-alive ones: under load some clients waited for the whole run
//! (found by the soak test), and idle connections could starve everyone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// At most this much of an oversized body is read and dropped before closing.
const LINGER_BYTES: u64 = 4 << 20;
/// How long a connection may sit idle between requests, the most a request head may take to
/// arrive, and the most its body may take.
const IDLE: Duration = Duration::from_secs(10);

/// One parsed request.
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target without the query.
    pub path: String,
    headers: Vec<(String, String)>,
    /// The body (empty when `body_too_large`).
    pub body: Vec<u8>,
    /// The declared body was larger than the server reads; the connection closes after the answer.
    pub body_too_large: bool,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response with its whole body.
pub struct Response {
    /// Status code.
    pub status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response of `status` with a body of type `ctype`.
    pub fn new(status: u16, ctype: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), ctype.into())],
            body: body.into(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn write_to(&self, w: &mut impl Write, close: bool) -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        // One write for head and body: no small segments waiting on delayed ACKs.
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        w.write_all(&out)?;
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// What the server calls.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, rq: &Request) -> Response;
    /// A connection was turned away because `max_connections` were open.
    fn rejected(&self);
}

/// Asks a running [`serve`] to stop: no new connections or requests; it returns once the
/// requests in flight are answered, or after the grace period.
#[derive(Clone, Default)]
pub struct Shutdown {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Requests being handled or answered now.
    busy: Arc<AtomicUsize>,
}

impl Shutdown {
    /// Start stopping; `wake` is the listener's address, connected to once so that the blocked
    /// accept returns.
    pub fn trigger(&self, wake: std::net::SocketAddr) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Accept connections until `shutdown` is triggered; each gets a thread while fewer than
/// `max_connections` are open, the others a 503 at once. After the trigger, returns when every
/// request in flight has been answered, or after `grace`.
pub fn serve<H: Handler>(
    listener: TcpListener,
    max_connections: usize,
    max_body: usize,
    handler: Arc<H>,
    shutdown: Shutdown,
    grace: Duration,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        if shutdown.stopping() {
            let deadline = Instant::now() + grace;
            while shutdown.busy.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(());
        }
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            // Out of descriptors or an aborted handshake: keep serving the others.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(IDLE));
        if open.fetch_add(1, Ordering::SeqCst) >= max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            handler.rejected();
            let mut s = stream;
            let _ = Response::new(
                503,
                "application/json",
                r#"{"error":{"code":"overloaded","message":"too many connections"}}"#,
            )
            .with_header("Retry-After", "1")
            .write_to(&mut s, true);
            continue;
        }
        if shutdown.stopping() {
            // The wake-up connection, or a client that came with it: told, not cut off.
            let mut s = stream;
            let _ = shutting_down().write_to(&mut s, true);
            continue;
        }
        let (open, handler, shutdown) = (open.clone(), handler.clone(), shutdown.clone());
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                connection(stream, max_body, &*handler, &shutdown);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // No thread to be had: the stream was dropped (closed) with the closure.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The answer to a request that arrives while the server stops.
fn shutting_down() -> Response {
    Response::new(
        503,
        "application/json",
        r#"{"error":{"code":"shutting_down","message":"the signer is stopping; retry on another"}}"#,
    )
    .with_header("Retry-After", "1")
}

enum Head {
    Request(Request, bool),
    Closed,
    Bad(u16, &'static str),
}

fn connection(stream: TcpStream, max_body: usize, handler: &dyn Handler, shutdown: &Shutdown) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let (rq, keep_alive) = match read_head(&mut reader, &mut writer, max_body) {
            Head::Request(rq, keep) => (rq, keep),
            Head::Closed => return,
            Head::Bad(status, msg) => {
                let body = format!(r#"{{"error":{{"code":"bad_request","message":"{msg}"}}}}"#);
                let _ = Response::new(status, "application/json", body).write_to(&mut writer, true);
                return;
            }
        };
        // Counted from here until the answer is written, so that a shutdown waits for it.
        shutdown.busy.fetch_add(1, Ordering::SeqCst);
        if shutdown.stopping() {
            shutdown.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = shutting_down().write_to(&mut writer, true);
            return;
        }
        // An oversized body was not read: read_head already made keep_alive false.
        let resp = handler.handle(&rq);
        let close = !keep_alive || shutdown.stopping();
        let written = resp.write_to(&mut writer, close);
        shutdown.busy.fetch_sub(1, Ordering::SeqCst);
        if written.is_err() {
            return;
        }
        if rq.body_too_large {
            linger(&mut reader, &writer);
        }
        if close {
            return;
        }
    }
}

/// Lingering close: read (and drop) what the client is still sending for a moment, so that it
/// reads our answer instead of a reset.
fn linger(reader: &mut BufReader<TcpStream>, sock: &TcpStream) {
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sink = vec![0u8; 64 * 1024];
    let mut drained = 0u64;
    while drained < LINGER_BYTES && time_left(sock, deadline).is_ok() {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n as u64,
        }
    }
}

/// Cut the socket's read timeout to the time left before `deadline`; an error once it passed.
fn time_left(sock: &TcpStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    sock.set_read_timeout(Some(left))
}

/// Read up to and including the next `\n` (at most `max` bytes), all of it before `deadline`:
/// the socket timeout is cut to the time left before every read, so a client trickling bytes
/// cannot hold the connection longer.
fn read_line(
    reader: &mut BufReader<TcpStream>,
    sock: &TcpStream,
    deadline: Instant,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        time_left(sock, deadline)?;
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(line); // end of stream
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done || line.len() > max {
            return Ok(line);
        }
    }
}

/// Read exactly `buf.len()` bytes before `deadline`.
fn read_body(
    reader: &mut BufReader<TcpStream>,
    sock: &TcpStream,
    deadline: Instant,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        time_left(sock, deadline)?;
        match reader.read(&mut buf[at..])? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => at += n,
        }
    }
    Ok(())
}

/// RFC 9110 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn read_head(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream, max_body: usize) -> Head {
    // The whole head must arrive within IDLE of waiting for it (this is also the keep-alive
    // idle timeout), the body within IDLE after that.
    let deadline = Instant::now() + IDLE;
    let mut lines: Vec<String> = Vec::new();
    let mut size = 0;
    loop {
        let line = match read_line(reader, writer, deadline, MAX_HEAD - size) {
            Ok(l) => l,
            Err(_) => return Head::Closed, // idle, too slow, or reset
        };
        if line.is_empty() {
            return Head::Closed;
        }
        size += line.len();
        if size > MAX_HEAD {
            return Head::Bad(431, "the request head is too large");
        }
        let Ok(text) = String::from_utf8(line) else {
            return Head::Bad(400, "the request head is not UTF-8");
        };
        // A bare LF ends lines for some parsers and not others: request smuggling material.
        let Some(text) = text.strip_suffix("\r\n").map(String::from) else {
            return Head::Bad(400, "request head lines must end in CRLF");
        };
        if text.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between requests
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Bad(400, "malformed request line");
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || method.is_empty() || !target.starts_with('/')
    {
        return Head::Bad(400, "malformed request line");
    }
    let mut headers = Vec::new();
    for l in &lines[1..] {
        if l.starts_with([' ', '\t']) {
            return Head::Bad(400, "obsolete line folding is not accepted");
        }
        let Some((k, v)) = l.split_once(':') else {
            return Head::Bad(400, "malformed header");
        };
        // RFC 9112 5.1: no white space between the name and the colon; names are tokens.
        if k.is_empty() || !k.bytes().all(is_tchar) {
            return Head::Bad(400, "malformed header name");
        }
        headers.push((k.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    let mut rq = Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("/").to_string(),
        headers,
        body: Vec::new(),
        body_too_large: false,
    };
    // Framing that two parsers could read differently is refused outright (RFC 9112 6.3).
    let values = |name: &str| -> Vec<&str> {
        rq.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let (lengths, codings) = (values("Content-Length"), values("Transfer-Encoding"));
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Head::Bad(400, "Content-Length and Transfer-Encoding together");
        }
        if codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked") {
            return Head::Bad(411, "send the body with a Content-Length");
        }
        return Head::Bad(400, "unsupported Transfer-Encoding");
    }
    let len = match lengths.as_slice() {
        [] => 0,
        [v] if !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<usize>().unwrap_or(usize::MAX)
        }
        [_] => return Head::Bad(400, "bad Content-Length"),
        _ => return Head::Bad(400, "more than one Content-Length"),
    };
    let connection = rq.header("Connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    if len > max_body {
        rq.body_too_large = true;
        return Head::Request(rq, false);
    }
    if rq
        .header("Expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
    {
        return Head::Closed;
    }
    rq.body = vec![0; len];
    if read_body(reader, writer, Instant::now() + IDLE, &mut rq.body).is_err() {
        return Head::Closed;
    }
    Head::Request(rq, keep_alive)
}
