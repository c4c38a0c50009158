//! Helpers for the host tests: temp dirs, openssl, a tiny HTTP client and a server under test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// One HTTP/1.1 request over a fresh connection.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
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
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
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
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
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

/// `wasm-pki serve` on a free loopback port.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

/// The address a `wasm-pki serve` child (stdout piped) says it listens on; its stdout keeps
/// being drained so that the child never blocks on it.
pub fn listening_addr(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("server did not start")
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
        let addr = listening_addr(&mut child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while http(&addr, "GET", "/healthz", &[], b"")
            .map(|r| r.status)
            .unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "server not healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, addr }
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
