//! The `pkcs11:` key store against a real token: Debian's SoftHSM2, set up by
//! `scripts/softhsm.sh` (the test command starts it). `init` makes the root and intermediate keys
//! inside the token and signs there; `pkcs11-tool` (opensc) shows them sensitive and never
//! extractable; the signer issues, publishes a CRL and restarts with the same token, and openssl
//! verifies everything; the PIN shows in no output; a PIN on the command line is refused. The
//! token taken away under load (its files moved, as an unplugged device) turns into 503s with
//! /readyz failing and no record lost or half-made, and signing resumes without a restart once it
//! is back. A token that stops answering (reached through p11-kit's server, whose process is
//! stopped with SIGSTOP) costs one request 5 s and the next ones nothing: 503 at once until it
//! answers again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

struct Token {
    dir: PathBuf,
    module: String,
    label: String,
    pin_file: String,
}

fn token_from_env() -> Option<Token> {
    let dir = std::env::var_os("WASM_PKI_SOFTHSM_DIR");
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no SoftHSM token under CI: eval \"$(bash scripts/softhsm.sh start)\""
        );
        eprintln!("skipped: no token; run eval \"$(bash scripts/softhsm.sh start)\" first");
        return None;
    }
    let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set"));
    Some(Token {
        dir: PathBuf::from(dir.unwrap()),
        module: var("WASM_PKI_SOFTHSM_MODULE"),
        label: var("WASM_PKI_SOFTHSM_TOKEN"),
        pin_file: var("WASM_PKI_SOFTHSM_PIN_FILE"),
    })
}

impl Token {
    /// The URI of the key labelled `object`, its PIN from the token's PIN file.
    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?module-path={}&pin-source=file:{}",
            self.label, self.module, self.pin_file
        )
    }

    fn pin(&self) -> String {
        std::fs::read_to_string(&self.pin_file)
            .unwrap()
            .trim()
            .to_string()
    }
}

/// A server child that is killed when dropped (a failing assertion must not leave it running).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wasm-pki serve` with the key store, its log (text) in `log`.
fn serve(dir: &Path, uri: &str, log: &Path) -> (Running, String) {
    serve_with(dir, uri, log, &[])
}

fn serve_with(dir: &Path, uri: &str, log: &Path, env: &[(&str, &str)]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--key-store",
            uri,
        ])
        .env("WASM_PKI_MODULE", module())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child, dir);
    (Running(child), addr)
}

fn stop(server: Running) {
    drop(server);
}

fn verify_leaf(dir: &Path, tmp: &TempDir, pem: &str) {
    let leaf = tmp.path("leaf.pem");
    std::fs::write(&leaf, pem).unwrap();
    let out = openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ca.pem",
            leaf.to_str().unwrap(),
        ],
    );
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn a_ca_in_a_softhsm_token() {
    if no_module() {
        return;
    }
    let Some(tok) = token_from_env() else { return };
    let tmp = TempDir::new("pkcs11");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    // A label of its own per run: the token outlives one test run when started by hand.
    let object = format!("ca-{}", std::process::id());
    let uri = tok.uri(&object);
    let mut outputs = String::new();

    // A PIN in the URI on the command line is refused before anything is opened.
    let with_pin = format!(
        "pkcs11:token={};object={object}?module-path={}&pin-value=1234",
        tok.label, tok.module
    );
    let (ok, _, err) = cli(&["init", "--dir", d, "--key-store", &with_pin]);
    assert!(!ok && err.contains("pin-source"), "{err}");

    let out = cli_ok(&["init", "--dir", d, "--key-store", &uri, "--intermediate"]);
    outputs.push_str(&out);
    assert!(!dir.join("ca.key").exists() && !dir.join("root.key").exists());
    let (ok, _, err) = cli(&["init", "--dir", &format!("{d}2"), "--key-store", &uri]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");

    // The token's own view of the keys (opensc's pkcs11-tool).
    let listing = Command::new("pkcs11-tool")
        .args([
            "--module",
            &tok.module,
            "--token-label",
            &tok.label,
            "--login",
            "--pin",
            &tok.pin(),
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .expect("pkcs11-tool (opensc)");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for label in [object.clone(), format!("{object}-root")] {
        let block = listing
            .split("Private Key Object")
            .find(|b| b.contains(&format!("label:      {label}\n")))
            .unwrap_or_else(|| panic!("no private key {label}: {listing}"));
        assert!(block.contains("Usage:      sign\n"), "{block}");
        assert!(
            block.contains("Access:     sensitive, always sensitive, never extractable, local"),
            "{block}"
        );
    }

    // Serve with the key in the token: issue, check, revoke, CRL.
    let log = tmp.path("serve.log");
    let (server, addr) = serve(&dir, &uri, &log);
    let info = http(&addr, "GET", "/v1/info", &[], b"").unwrap().json();
    assert!(
        info["keyStore"].as_str().unwrap().starts_with("pkcs11:"),
        "{info}"
    );
    let csr = openssl_csr(&tmp.0, "leaf", P256, "/CN=h.example.com", None);
    let t = token(&dir, &["--identity", "h.example.com", "--uses", "1000"]);
    let r = sign(&addr, &t, &csr);
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.json();
    verify_leaf(&dir, &tmp, first["certificate"].as_str().unwrap());
    let serial = first["serial"].as_str().unwrap().to_string();
    outputs.push_str(&cli_ok(&["revoke", "--dir", d, "--serial", &serial]));
    let crl = http(&addr, "GET", "/v1/crl", &[], b"").unwrap();
    assert_eq!(crl.status, 200, "{}", crl.body);
    std::fs::write(tmp.path("crl.pem"), &crl.body).unwrap();
    let text = openssl_ok(
        &dir,
        &[
            "crl",
            "-in",
            tmp.path("crl.pem").to_str().unwrap(),
            "-CAfile",
            "ca.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(
        text.to_uppercase().contains(&serial.to_uppercase()),
        "{text}"
    );

    // The token taken away under load: 503s and /readyz failing, nothing half-made; back: 200s.
    let ok = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let tokens = tok.dir.join("tokens");
    let away = tok.dir.join("tokens.away");
    let load = |until: Instant| {
        let (ok, unavailable, addr, t, csr) = (
            ok.clone(),
            unavailable.clone(),
            addr.clone(),
            t.clone(),
            csr.clone(),
        );
        std::thread::spawn(move || {
            while Instant::now() < until {
                let r = sign(&addr, &t, &csr);
                match r.status {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    503 => {
                        assert_eq!(
                            r.json()["error"]["code"],
                            "key_store_unavailable",
                            "{}",
                            r.body
                        );
                        unavailable.fetch_add(1, Ordering::SeqCst)
                    }
                    s => panic!("{s}: {}", r.body),
                };
            }
        })
    };
    let until = Instant::now() + Duration::from_millis(1500);
    let workers: Vec<_> = (0..4).map(|_| load(until)).collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&tokens, &away).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let ready = http(&addr, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("unavailable"), "{}", ready.body);
    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&away, &tokens).unwrap();
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "the outage was not seen"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(&addr, "GET", "/readyz", &[], b"").unwrap().status != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again after the token came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = sign(&addr, &t, &csr);
    assert_eq!(r.status, 200, "{}", r.body);
    verify_leaf(&dir, &tmp, r.json()["certificate"].as_str().unwrap());
    let signed = ok.load(Ordering::SeqCst) + 2;
    // Every 200 is recorded and nothing else: the ledger has exactly the certificates answered.
    let ledger = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    let rows: i64 = ledger
        .query_row(
            "SELECT COUNT(*) FROM certificates WHERE profile <> 'listener'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        rows as usize,
        signed,
        "{} unavailable",
        unavailable.load(Ordering::SeqCst)
    );
    stop(server);
    outputs.push_str(&std::fs::read_to_string(&log).unwrap());

    // A restart with the same token, and the CLI's sign and crl through it.
    let (server, addr) = serve(&dir, &uri, &log);
    let r = sign(&addr, &t, &csr);
    assert_eq!(r.status, 200, "{}", r.body);
    stop(server);
    outputs.push_str(&std::fs::read_to_string(&log).unwrap());
    std::fs::write(tmp.path("leaf.csr"), &csr).unwrap();
    let pem = cli_ok(&[
        "sign",
        "--dir",
        d,
        "--csr",
        tmp.path("leaf.csr").to_str().unwrap(),
        "--identity",
        "h.example.com",
        "--key-store",
        &uri,
    ]);
    verify_leaf(&dir, &tmp, &pem);
    let crl = cli_ok(&["crl", "--dir", d, "--key-store", &uri]);
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
    outputs.push_str(&pem);
    outputs.push_str(&crl);

    // A wrong PIN is a clear refusal at start, not a crash.
    let bad_pin = tmp.path("bad-pin");
    std::fs::write(&bad_pin, "not-the-pin\n").unwrap();
    let bad = format!(
        "pkcs11:token={};object={object}?module-path={}&pin-source=file:{}",
        tok.label,
        tok.module,
        bad_pin.display()
    );
    let (ok, _, err) = cli(&["crl", "--dir", d, "--key-store", &bad]);
    assert!(!ok && err.contains("logging in"), "{err}");
    outputs.push_str(&err);

    assert!(!outputs.contains(&tok.pin()), "the PIN was printed");

    stalled_token(&tok, &dir, &object, &t, &csr, &tmp);
}

/// The same key through p11-kit's RPC: its server process stopped (SIGSTOP) hangs C_Sign.
fn stalled_token(tok: &Token, dir: &Path, object: &str, t: &str, csr: &str, tmp: &TempDir) {
    let client = std::env::var("WASM_PKI_P11KIT_CLIENT").expect("scripts/softhsm.sh sets it");
    let sock = tok.dir.join("p11.sock");
    let rpc = Running(
        Command::new("p11-kit")
            .args(["server", "-f", "--provider", &tok.module, "-n"])
            .arg(&sock)
            .arg(format!("pkcs11:token={}", tok.label))
            .stdout(Stdio::null())
            .spawn()
            .expect("p11-kit"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "p11-kit server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let uri = format!(
        "pkcs11:token={};object={object}?module-path={client}&pin-source=file:{}",
        tok.label, tok.pin_file
    );
    let address = format!("unix:path={}", sock.display());
    let log = tmp.path("stalled.log");
    let (server, addr) = serve_with(dir, &uri, &log, &[("P11_KIT_SERVER_ADDRESS", &address)]);
    assert_eq!(sign(&addr, t, csr).status, 200);
    // p11-kit serves each client from a child process: that one stops answering.
    let children = Command::new("pgrep")
        .args(["-P", &rpc.0.id().to_string()])
        .output()
        .unwrap();
    let children: Vec<String> = String::from_utf8_lossy(&children.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!children.is_empty(), "no p11-kit child serves the signer");
    let signal = |sig: &str| {
        for c in &children {
            assert!(Command::new("kill")
                .args([sig, c])
                .status()
                .unwrap()
                .success());
        }
    };
    signal("-STOP");
    let started = Instant::now();
    let r = sign(&addr, t, csr);
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.json()["error"]["code"],
        "key_store_unavailable",
        "{}",
        r.body
    );
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_secs(9),
        "the first call waited {waited:?}"
    );
    let started = Instant::now();
    let r = sign(&addr, t, csr);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the next call waited too"
    );
    assert_eq!(http(&addr, "GET", "/readyz", &[], b"").unwrap().status, 503);
    signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(&addr, "GET", "/readyz", &[], b"").unwrap().status != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again after the token answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = sign(&addr, t, csr);
    assert_eq!(r.status, 200, "{}", r.body);
    drop(server);
    drop(rpc);
    assert!(!std::fs::read_to_string(&log).unwrap().contains(&tok.pin()));
}
