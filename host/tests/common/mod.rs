//! Helpers for the host tests: temp dirs, openssl, a tiny HTTP client (over rustls when the
//! server under test speaks HTTPS, trusting only its CA) and a server under test.
#![allow(dead_code)]

pub mod acme;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_wasm-pki");

/// The npm package's module, or WASM_PKI_E2E_MODULE (the test command reruns the e2e tests with
/// the server build).
pub fn module() -> PathBuf {
    match std::env::var_os("WASM_PKI_E2E_MODULE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg/dist/wasm_pki_bg.wasm"),
    }
}

/// The test build of the module (`scripts/build-pkg.sh --test-hooks`), or WASM_PKI_TEST_MODULE.
pub fn test_module() -> PathBuf {
    match std::env::var_os("WASM_PKI_TEST_MODULE") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".cache/wasm-pki/target"))
                })
                .unwrap_or_default();
            target.join("wasm-pki-test-module/wasm_pki_bg.wasm")
        }
    }
}

/// True (after one line saying what to run) when `path` has not been built, so that a plain
/// `cargo test --workspace` passes on a fresh checkout. Under CI a missing module is a failure.
pub fn missing(path: &Path, build: &str) -> bool {
    if path.is_file() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing under CI: {build}",
        path.display()
    );
    eprintln!(
        "skipped: {} is not built; run `{build}` first",
        path.display()
    );
    true
}

/// [`missing`] for the npm package's module (the page's files come with it).
pub fn no_module() -> bool {
    missing(&module(), "scripts/build-pkg.sh")
}

/// A scratch directory (tempfile's, removed on drop); `.0` is its path.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let t = tempfile::Builder::new()
            .prefix(&format!("wasm-pki-host-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(t.path().to_path_buf(), t)
    }
    pub fn path(&self, n: &str) -> PathBuf {
        self.0.join(n)
    }
}

/// Run the CLI; returns (ok, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("WASM_PKI_MODULE", module())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = cli(args);
    assert!(ok, "wasm-pki {args:?} failed:\n{out}\n{err}");
    out
}

pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

/// A new token for the CA in `dir`.
pub fn token(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli_ok(&args).lines().last().unwrap().trim().to_string()
}

/// An HTTP response.
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The TLS client configuration for each HTTPS server under test, by address: the helpers below
/// speak TLS to an address found here, plain HTTP to any other.
fn tls_servers() -> &'static Mutex<HashMap<String, Arc<rustls::ClientConfig>>> {
    static SERVERS: OnceLock<Mutex<HashMap<String, Arc<rustls::ClientConfig>>>> = OnceLock::new();
    SERVERS.get_or_init(Default::default)
}

/// A rustls client that trusts only the CA in `root_pem` (and offers `client`, a chain and key
/// in PEM, when given).
pub fn tls_client(root_pem: &str, client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// A byte stream to a server under test: TCP, or TLS over it.
pub trait Stream: Read + Write + Send {
    /// No more writes from us (TCP FIN, or TLS close_notify).
    fn close_write(&mut self);
}

impl Stream for TcpStream {
    fn close_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn close_write(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Connect to `addr` with TLS when it is an HTTPS server under test (with `config`'s trust and
/// client certificate when given).
pub fn connect_with(
    addr: &str,
    config: Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<Box<dyn Stream>> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let config = config.or_else(|| tls_servers().lock().unwrap().get(addr).cloned());
    let Some(config) = config else {
        return Ok(Box::new(s));
    };
    let host = addr.rsplit_once(':').unwrap().0.trim_matches(['[', ']']);
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, s)))
}

/// [`connect_with`] the server's own trust.
pub fn connect(addr: &str) -> std::io::Result<Box<dyn Stream>> {
    connect_with(addr, None)
}

/// Everything the peer sends until it closes; a close without TLS close_notify after some data
/// counts as the end (hyper closes that way after `Connection: close`).
pub fn read_all(s: &mut dyn Stream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(out)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Send `bytes` on a fresh connection, close our side, and return all the server answers.
pub fn exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr).unwrap();
    let _ = s.write_all(bytes);
    s.close_write();
    read_all(&mut *s).unwrap_or_default()
}

/// One HTTP/1.1 request over a fresh connection.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = connect(addr)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer (413) and close before reading a huge body; that is fine.
    let _ = s.write_all(body);
    let raw = read_all(&mut *s)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Resp { status, body })
}

/// GET `path` and return the status, the Content-Type and the body as bytes (DER answers).
pub fn get_bytes(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let raw = read_all(&mut *s).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, raw[end + 4..].to_vec())
}

pub fn sign(addr: &str, token: &str, csr_pem: &str) -> Resp {
    let body = serde_json::json!({ "csr": csr_pem }).to_string();
    http(
        addr,
        "POST",
        "/v1/sign",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

/// `wasm-pki serve` on a free loopback port (HTTPS unless `--plain-http` is among its options).
pub struct Server {
    pub child: Child,
    /// host:port
    pub addr: String,
    /// `https://host:port` or `http://host:port`.
    pub base: String,
}

/// The base URL (`https://host:port`) a `wasm-pki serve` child (stdout piped) says it listens
/// on; its stdout keeps being drained so that the child never blocks on it.
pub fn listening_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let url = rest.split(' ').next().unwrap_or_default();
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("server did not start")
}

/// The host:port of a `wasm-pki serve` child, made known to the helpers (HTTPS trusting the root
/// in `dir`, unless it serves plain HTTP).
pub fn listening_addr(child: &mut Child, dir: &Path) -> String {
    let url = listening_url(child);
    let addr = url.split("://").nth(1).unwrap().to_string();
    if url.starts_with("https://") {
        let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
        tls_servers()
            .lock()
            .unwrap()
            .insert(addr.clone(), tls_client(&root, None));
    }
    addr
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_stdin(dir, extra, None)
    }

    /// Start with `stdin` written to the server's standard input (then closed).
    pub fn start_with_stdin(dir: &Path, extra: &[&str], stdin: Option<&str>) -> Server {
        let mut args = vec!["serve", "--dir", dir.to_str().unwrap()];
        if !extra.contains(&"--listen") {
            args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        // Load tests would flood the test output with one line per request.
        if !extra.contains(&"--log-format") {
            args.extend_from_slice(&["--log-format", "off"]);
        }
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .env("WASM_PKI_MODULE", module())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let addr = listening_addr(&mut child, dir);
        let scheme = if extra.contains(&"--plain-http") {
            "http"
        } else {
            "https"
        };
        let base = format!("{scheme}://{addr}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while http(&addr, "GET", "/healthz", &[], b"")
            .map(|r| r.status)
            .unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "server not healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, addr, base }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An openssl CSR; returns its PEM.
pub fn openssl_csr(
    dir: &Path,
    name: &str,
    keyopts: &[&str],
    subj: &str,
    san: Option<&str>,
) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["genpkey", "-out", key.as_str()];
    args.extend_from_slice(keyopts);
    openssl_ok(dir, &args);
    let mut args = vec![
        "req",
        "-new",
        "-key",
        key.as_str(),
        "-subj",
        subj,
        "-out",
        csr.as_str(),
    ];
    let ext;
    if let Some(s) = san {
        ext = format!("subjectAltName={s}");
        args.extend_from_slice(&["-addext", ext.as_str()]);
    }
    openssl_ok(dir, &args);
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

pub const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
pub const ED25519: &[&str] = &["-algorithm", "ED25519"];
pub const RSA2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

/// Append a line of figures to tests/out/figures.txt (the test command prints them at the end).
pub fn figures(line: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/out");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("figures.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// A temp dir with a fresh CA (`wasm-pki init`, plus `extra` options) in its `ca` folder.
pub fn new_ca(tag: &str, extra: &[&str]) -> (TempDir, PathBuf) {
    let tmp = TempDir::new(tag);
    let dir = tmp.path("ca");
    cli_ok(&[&["init", "--dir", dir.to_str().unwrap()], extra].concat());
    (tmp, dir)
}

/// `wasm-pki list` for the CA in `dir`, without the signer's own HTTPS certificates (issued to
/// itself at each start, recorded with `token=listener`).
pub fn issued(dir: &Path) -> String {
    cli_ok(&["list", "--dir", dir.to_str().unwrap()])
        .lines()
        .filter(|l| !l.contains("\ttoken=listener"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it), for a listener the
/// test starts elsewhere (a plugin, an ACME client's challenge server). Another process may take
/// it in between; tests that can pass `127.0.0.1:0` to their own listener should.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when this goes out of scope, also when a test panics, so
/// that no server outlives its test holding the test's output pipes.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The serial of the first certificate in `pem`, lower-case hex as the ledger writes it.
pub fn serial_of(work: &Path, pem: &str) -> String {
    std::fs::write(work.join("serial.pem"), pem).unwrap();
    openssl_ok(work, &["x509", "-in", "serial.pem", "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// A fresh, empty database on the test PostgreSQL server (`WASM_PKI_TEST_PG`, started by
/// scripts/pg.sh), or None (after saying so) when there is none; under CI there must be one.
pub fn pg_database(tag: &str) -> Option<String> {
    let Some(base) = std::env::var("WASM_PKI_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL tests: set WASM_PKI_TEST_PG (scripts/pg.sh start)"
        );
        eprintln!("skipped: no PostgreSQL (eval \"$(bash scripts/pg.sh start)\" to run it)");
        return None;
    };
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).unwrap();
    let name = format!("wasm_pki_{tag}_{}", wasm_pki::hex(&rnd));
    let mut admin = postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls)
        .expect("the test PostgreSQL server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Some(format!("{base}/{name}"))
}

/// Run scripts/pg.sh with `args` (the fault tests take the shared test cluster down and up).
pub fn pg_sh(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
