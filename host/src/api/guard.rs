//! A guard between an HTTP/1 connection and hyper, for two things hyper does not do.
//!
//! **Bare LF.** A request head whose lines end in a bare LF closes the connection. httparse accepts bare LF (RFC 9112 2.2 allows it), but a proxy in
//! front may split the same bytes differently, which is request-smuggling material. The guard
//! follows message boundaries (head, then `Content-Length` bytes of body) with httparse itself;
//! it does not decide framing: a head it cannot follow (chunked, which the API refuses and
//! closes, or one hyper will refuse) switches it off for the rest of the connection.
//!
//! **Lingering close.** When hyper closes a connection whose client is still sending (a body too
//! large to read, answered 413), closing at once would reset it and the client could lose the
//! answer. So the guard shuts down our side, then reads and drops what still comes, for at most
//! two seconds or 4 MiB, before the socket is closed (as the old server and nginx do).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest head the guard buffers; hyper refuses larger ones (431) itself.
const MAX_HEAD: usize = 64 * 1024;
/// At most this much is read and dropped while closing, for at most [`LINGER_TIME`].
const LINGER_BYTES: u64 = 4 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

enum State {
    /// Reading a head: the bytes so far.
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Not following this connection any more.
    Off,
}

/// The guarded stream.
pub struct H1Guard<S> {
    inner: S,
    state: State,
    /// While closing: our side is shut down; reading until this deadline.
    linger: Option<(Pin<Box<tokio::time::Sleep>>, u64)>,
}

impl<S> H1Guard<S> {
    /// Guard `inner`.
    pub fn new(inner: S) -> Self {
        H1Guard {
            inner,
            state: State::Head(Vec::new()),
            linger: None,
        }
    }

    /// Follow `bytes` (just read); an error when a head line ends in a bare LF.
    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return Ok(()),
                State::Body(left) => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(head) => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if b == b'\n' && head.last() != Some(&b'\r') {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a request head line ends in a bare LF",
                        ));
                    }
                    head.push(b);
                    if head.as_slice() == b"\r\n" {
                        head.clear(); // an empty line between requests
                    } else if head.ends_with(b"\r\n\r\n") {
                        self.state = body_after(head);
                    } else if head.len() > MAX_HEAD {
                        self.state = State::Off;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What follows a complete head: its `Content-Length` worth of body, or, for anything the guard
/// cannot follow, nothing more to check.
fn body_after(head: &[u8]) -> State {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return State::Off;
    }
    let mut length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return State::Off;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            // Digits only, as hyper reads it (Rust's parse would take "+5").
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            let Some(n) = Some(v)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return State::Off;
            };
            if length.is_some_and(|l| l != n) {
                return State::Off;
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) if n > 0 => State::Body(n),
        _ => State::Head(Vec::new()),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H1Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = buf.filled()[before..].to_vec();
            self.follow(&fresh)?;
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H1Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            if let Err(e) = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                return Poll::Ready(Err(e));
            }
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), 0));
        }
        let Some((deadline, drained)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut sink = [0u8; 16 * 1024];
        loop {
            if *drained >= LINGER_BYTES || deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut sink);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *drained += buf.filled().len() as u64
                }
                // The client closed too (or failed): done.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> io::Result<()> {
        let mut g = H1Guard::new(());
        for c in chunks {
            g.follow(c)?;
        }
        Ok(())
    }

    #[test]
    fn bare_lf_in_a_head_is_refused_wherever_it_falls() {
        assert!(run(&[b"GET / HTTP/1.1\nHost: x\r\n\r\n"]).is_err());
        assert!(run(&[b"GET / HTTP/1.1\r\nHost: x\n\r\n"]).is_err());
        // Split across reads, and in the second pipelined request.
        assert!(run(&[b"GET / HTTP/1.1\r", b"\nHost: x\r\n\r\nGET / HTTP/1.1\n"]).is_err());
    }

    #[test]
    fn bodies_are_skipped_and_crlf_heads_pass() {
        // A JSON body with raw LFs, then a second request: the LFs are body, not head.
        let body = b"{\n \"csr\": \"x\"\n}\n";
        let head = format!(
            "POST /v1/sign HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        all.extend_from_slice(b"\r\nGET /healthz HTTP/1.1\r\n\r\n");
        for split in [1, 7, all.len() / 2, all.len()] {
            let (a, b) = all.split_at(split);
            run(&[a, b]).unwrap();
        }
        // Once the body is over, a bare LF in the next head is caught again.
        let mut bad = all.clone();
        bad.extend_from_slice(b"GET / HTTP/1.1\n\r\n");
        assert!(run(&[&bad]).is_err());
    }

    #[test]
    fn heads_it_cannot_follow_switch_it_off() {
        // Chunked (the API refuses it and closes), and a head hyper refuses.
        run(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n"]).unwrap();
        run(&[b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nab\ncd\n"]).unwrap();
    }
}
