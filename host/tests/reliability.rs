//! Reliability and security of the server: token tricks, SIGKILL in the middle of a load, and
//! secrets at rest. (Hostile CSRs: tests/policy_bypass.rs; sandbox traps: sandbox_limits.rs; load
//! and saturation: soak.rs.)

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sha2::Digest;

fn sha256_file(p: &Path) -> Vec<u8> {
    sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

/// Every file under `dir`, recursively, with its bytes.
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn tokens_that_must_not_sign_do_not() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("tokens", &["--algorithm", "ed25519"]);
    let other = tmp.path("other");
    cli_ok(&["init", "--dir", other.to_str().unwrap()]);
    let policy = tmp.path("policy.toml");
    std::fs::write(
        &policy,
        r#"
[profiles.web]
names = { allow = [{ type = "dns", value = ".web.example.com" }] }
[profiles.admin]
names = { allow = [{ type = "dns", value = ".admin.example.com" }] }
"#,
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let server = Server::start(&dir, &["--policy", p]);
    let web = |extra: &[&str]| {
        let mut args = vec![
            "--policy",
            p,
            "--profile",
            "web",
            "--identity",
            "a.web.example.com",
        ];
        args.extend_from_slice(extra);
        token(&dir, &args)
    };
    let csr = |tag: &str, san: &str| {
        openssl_csr(
            &tmp.0,
            tag,
            ED25519,
            "/CN=x",
            Some(&format!("DNS:a.web.example.com,DNS:{san}")),
        )
    };
    let plain = csr("plain", "b.web.example.com");
    let admin_name = csr("admin", "x.admin.example.com");

    let used = web(&[]);
    assert_eq!(sign(&server.addr, &used, &plain).status, 200);
    let expired = web(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let other_ca = token(&other, &["--identity", "a.web.example.com"]);
    let admin = token(
        &dir,
        &[
            "--policy",
            p,
            "--profile",
            "admin",
            "--identity",
            "a.admin.example.com",
        ],
    );
    let missing_profile = token(
        &dir,
        &["--profile", "gone", "--identity", "a.web.example.com"],
    );
    let fresh = web(&[]);
    let with_profile_field = serde_json::json!({"csr": plain, "profile": "admin"}).to_string();

    struct Case<'a> {
        what: &'a str,
        token: String,
        body: String,
        status: u16,
        code: &'a str,
    }
    let body = |csr: &str| serde_json::json!({ "csr": csr }).to_string();
    let cases = [
        Case {
            what: "used up",
            token: used.clone(),
            body: body(&plain),
            status: 401,
            code: "token_used",
        },
        Case {
            what: "expired",
            token: expired,
            body: body(&plain),
            status: 401,
            code: "token_expired",
        },
        Case {
            what: "another CA's token",
            token: other_ca,
            body: body(&plain),
            status: 401,
            code: "bad_token",
        },
        Case {
            what: "not a token",
            token: "Bearer".into(),
            body: body(&plain),
            status: 401,
            code: "bad_token",
        },
        Case {
            what: "a token with one character changed",
            token: flip_last(&fresh),
            body: body(&plain),
            status: 401,
            code: "bad_token",
        },
        Case {
            what: "no token",
            token: String::new(),
            body: body(&plain),
            status: 401,
            code: "",
        },
        Case {
            what: "web token asking for an admin name",
            token: fresh.clone(),
            body: body(&admin_name),
            status: 403,
            code: "policy",
        },
        Case {
            what: "admin token asking for a web name",
            token: admin,
            body: body(&plain),
            status: 403,
            code: "policy",
        },
        Case {
            what: "the body picks a profile",
            token: fresh.clone(),
            body: with_profile_field,
            status: 400,
            code: "bad_request",
        },
        Case {
            what: "token for a profile the policy lacks",
            token: missing_profile,
            body: body(&plain),
            status: 403,
            code: "unknown_profile",
        },
    ];
    let mut wrong = Vec::new();
    for c in &cases {
        let auth = format!("Bearer {}", c.token);
        let mut headers = vec![("Content-Type", "application/json")];
        if !c.token.is_empty() {
            headers.push(("Authorization", auth.as_str()));
        }
        let r = http(
            &server.addr,
            "POST",
            "/v1/sign",
            &headers,
            c.body.as_bytes(),
        )
        .unwrap();
        let code = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(String::from))
            .unwrap_or_default();
        if r.status != c.status || !code.starts_with(c.code) {
            wrong.push(format!(
                "{}: want {} {}, got {} {}",
                c.what, c.status, c.code, r.status, r.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The refusals above cost the fresh token nothing: it still signs, once.
    assert_eq!(sign(&server.addr, &fresh, &plain).status, 200);
    assert_eq!(sign(&server.addr, &fresh, &plain).status, 401);
    // Only the two 200s were recorded.
    assert_eq!(issued(&dir).lines().count(), 2);
}

fn flip_last(t: &str) -> String {
    let mut s = t.to_string();
    let last = s.pop().unwrap();
    s.push(if last == 'A' { 'B' } else { 'A' });
    s
}

/// SIGTERM in the middle of a load: the signer stops taking requests, answers the ones in
/// flight, and exits 0 well within its grace period; every certificate a client received is in
/// the ledger, and every client request got a whole answer (200, or 503 "shutting down") or a
/// refused connection, never a cut-off answer.
#[test]
fn sigterm_under_load_drains_and_loses_nothing() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("term", &["--algorithm", "ed25519"]);
    let tok = token(
        &dir,
        &["--identity", "term.example.com", "--uses", "1000000"],
    );
    let csr = openssl_csr(&tmp.0, "term", ED25519, "/CN=term.example.com", None);
    let mut server = Server::start(&dir, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, tok, csr, stop) =
                (server.addr.clone(), tok.clone(), csr.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut got, mut cut) = (Vec::new(), 0);
                let body = serde_json::json!({ "csr": csr }).to_string();
                let auth = format!("Bearer {tok}");
                while !stop.load(Ordering::Relaxed) {
                    let headers = [("Authorization", auth.as_str())];
                    match http(&addr, "POST", "/v1/sign", &headers, body.as_bytes()) {
                        Ok(r) if r.status == 200 => {
                            got.push(r.json()["serial"].as_str().unwrap().to_string())
                        }
                        Ok(r) if r.status == 503 => {
                            assert!(r.body.contains("shutting_down"), "{}", r.body)
                        }
                        Ok(r) if r.status == 0 => cut += 1,
                        Ok(r) => panic!("{} {}", r.status, r.body),
                        Err(_) => break, // no longer listening
                    }
                }
                (got, cut)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = server.child.id().to_string();
    let sent = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(12),
            "the signer did not stop within its bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut received = Vec::new();
    let mut cut = 0;
    for c in clients {
        let (got, n) = c.join().unwrap();
        received.extend(got);
        cut += n;
    }
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(cut, 0, "answers cut off by the shutdown");
    assert!(
        received.len() > 20,
        "only {} certificates before the signal",
        received.len()
    );
    let list = issued(&dir);
    let ledger: HashSet<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let lost: Vec<_> = received
        .iter()
        .filter(|s| !ledger.contains(s.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} received certificates are not in the ledger",
        lost.len()
    );
    let summary = format!(
        "sigterm: stopped {took:?} after the signal (exit 0), {} certificates received, all in the ledger, 0 answers cut",
        received.len()
    );
    println!("{summary}");
    figures(&summary);
}

/// Kill the server with SIGKILL in the middle of a load, three times, restarting it each time.
#[test]
fn sigkill_in_the_middle_of_a_load_loses_no_record() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("kill", &["--algorithm", "ed25519"]);
    let key_sha = sha256_file(&dir.join("ca.key"));
    let cert_sha = sha256_file(&dir.join("ca.pem"));
    let tok = token(
        &dir,
        &["--identity", "kill.example.com", "--uses", "1000000"],
    );
    let csr = openssl_csr(&tmp.0, "kill", ED25519, "/CN=kill.example.com", None);
    let mut received: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut server = Server::start(&dir, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (addr, tok, csr, stop) =
                    (server.addr.clone(), tok.clone(), csr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let body = serde_json::json!({ "csr": csr }).to_string();
                    let auth = format!("Bearer {tok}");
                    while !stop.load(Ordering::Relaxed) {
                        let headers = [("Authorization", auth.as_str())];
                        match http(&addr, "POST", "/v1/sign", &headers, body.as_bytes()) {
                            Ok(r) if r.status == 200 => {
                                got.push(r.json()["serial"].as_str().unwrap().to_string())
                            }
                            Ok(r) if r.status == 0 => break, // cut off mid-answer
                            Ok(r) => panic!("round {round}: {} {}", r.status, r.body),
                            Err(_) => break, // the server is gone
                        }
                    }
                    got
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500 + 300 * round));
        server.kill(); // SIGKILL: no shutdown path runs
        stop.store(true, Ordering::Relaxed);
        let got: Vec<String> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        assert!(
            got.len() > 20,
            "round {round}: only {} certificates before the kill",
            got.len()
        );
        received.extend(got);
    }
    // Restart: the CA is intact, the token still works, every certificate a client received is in
    // the ledger, and no serial repeats.
    let server = Server::start(&dir, &[]);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
    assert_eq!(sha256_file(&dir.join("ca.key")), key_sha);
    assert_eq!(sha256_file(&dir.join("ca.pem")), cert_sha);
    let list = issued(&dir);
    let mut ledger: HashMap<String, usize> = HashMap::new();
    for line in list.lines() {
        *ledger
            .entry(line.split('\t').next().unwrap().to_string())
            .or_default() += 1;
    }
    let repeats: Vec<_> = ledger.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeats.is_empty(), "repeated serials: {repeats:?}");
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "a client got the same serial twice"
    );
    let lost: Vec<_> = received
        .iter()
        .filter(|s| !ledger.contains_key(*s))
        .collect();
    assert!(
        lost.is_empty(),
        "{} received certificates are not in the ledger: {lost:?}",
        lost.len()
    );
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // The token's count is intact: exactly one use spent per recorded certificate.
    let left: i64 = db
        .query_row("SELECT uses_left FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1_000_000 - ledger.len() as i64);
    let summary = format!(
        "sigkill: 3 kills, {} certificates received by clients, {} in the ledger, 0 lost",
        received.len(),
        ledger.len()
    );
    println!("{summary}");
    figures(&summary);
}

#[test]
fn secrets_at_rest() {
    if common::no_module() {
        return;
    }
    let tmp = TempDir::new("secrets");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    let pass = "never-on-disk-7Qz9 passphrase";
    // The passphrase comes through a pipe (stdin), never through a file.
    let init = std::process::Command::new(BIN)
        .args([
            "init",
            "--dir",
            d,
            "--intermediate",
            "--passphrase-file",
            "/dev/stdin",
        ])
        .env("WASM_PKI_MODULE", module())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(pass.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(init.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for (p, bytes) in all_files(&dir) {
        if p.extension().is_some_and(|e| e == "key") {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            assert!(
                contains(&bytes, b"ENCRYPTED PRIVATE KEY"),
                "{}",
                p.display()
            );
        }
    }
    let tok = token(&dir, &["--identity", "s.example.com"]);
    let mut server =
        Server::start_with_stdin(&dir, &["--passphrase-file", "/dev/stdin"], Some(pass));
    let csr = openssl_csr(&tmp.0, "s", P256, "/CN=s.example.com", None);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
    server.kill();
    // Nothing under the data directory holds the passphrase or the token; the ledger holds the
    // token's SHA-256.
    let raw_token = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(
        tok.trim_start_matches("wpk_"),
    )
    .unwrap();
    let token_hash = sha2::Sha256::digest(tok.as_bytes());
    let mut hash_seen = false;
    for (p, bytes) in all_files(&dir) {
        assert!(
            !contains(&bytes, pass.as_bytes()),
            "passphrase in {}",
            p.display()
        );
        assert!(
            !contains(&bytes, tok.as_bytes()),
            "token in {}",
            p.display()
        );
        assert!(
            !contains(&bytes, &raw_token),
            "raw token bytes in {}",
            p.display()
        );
        let hex: String = token_hash.iter().map(|b| format!("{b:02x}")).collect();
        hash_seen |= contains(&bytes, &token_hash) || contains(&bytes, hex.as_bytes());
    }
    assert!(hash_seen, "the token's hash is not in the ledger");
    // Without the passphrase, and with a key readable by others, the server refuses to start.
    let start = |extra: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(BIN)
            .args([&["serve", "--dir", d, "--listen", "127.0.0.1:0"], extra].concat())
            .env("WASM_PKI_MODULE", module())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = start(&[], "");
    assert!(!ok && err.contains("passphrase"), "{err}");
    let (ok, err) = start(&["--passphrase-file", "/dev/stdin"], "wrong passphrase");
    assert!(!ok && err.contains("passphrase"), "{err}");
    std::fs::set_permissions(dir.join("ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = start(&["--passphrase-file", "/dev/stdin"], pass);
    assert!(!ok && err.contains("must not be readable"), "{err}");
}

/// Connections that trickle a request head byte by byte, or open and say nothing, are closed
/// after the 10 s head deadline, and never slow anyone else down meanwhile.
#[test]
fn slow_and_idle_connections_are_cut_off_and_harm_nobody() {
    if common::no_module() {
        return;
    }
    use std::io::{Read, Write};
    let (tmp, dir) = new_ca("slow", &["--algorithm", "ed25519"]);
    let server = Server::start(&dir, &[]);
    let tok = token(&dir, &["--identity", "slow.example.com", "--uses", "1000"]);
    let csr = openssl_csr(&tmp.0, "slow", ED25519, "/CN=slow.example.com", None);
    let started = std::time::Instant::now();
    let slow: Vec<_> = (0..40)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                // Over TLS (the handshake is quick; the head is what trickles).
                let mut s = common::connect(&addr).unwrap();
                if i % 2 == 0 {
                    // Trickle: one byte a second, never finishing the head.
                    for b in
                        b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".iter()
                    {
                        if s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1000));
                    }
                }
                // Wait for the server to give up on us.
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                started.elapsed()
            })
        })
        .collect();
    // Meanwhile, everyone else is served at once.
    for _ in 0..20 {
        let t = std::time::Instant::now();
        assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    for h in slow {
        let cut = h.join().unwrap();
        assert!(
            cut >= Duration::from_secs(9) && cut < Duration::from_secs(14),
            "a slow connection was cut after {cut:?}"
        );
    }
}

/// The HTTP layer's parser against hostile heads, over HTTPS (the default): each gets its 4xx (or
/// a close), never a hang, and the server keeps serving.
#[test]
fn hostile_http_heads_get_clear_answers_over_tls() {
    hostile_heads(&[]);
}

/// The same table against `--plain-http`.
#[test]
fn hostile_http_heads_get_clear_answers_over_plain_http() {
    hostile_heads(&["--plain-http"]);
}

/// In the table below: the connection is closed without an answer.
const CLOSED: &str = "(closed)";

fn hostile_heads(extra: &[&str]) {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("http", &["--algorithm", "ed25519"]);
    let server = Server::start(&dir, extra);
    let raw = |bytes: &[u8]| -> String {
        String::from_utf8_lossy(&common::exchange(&server.addr, bytes)).into_owned()
    };
    let big_header = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let many_headers = format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            // Without TLS ALPN there is no HTTP/2 here: hyper's HTTP/1 parser hangs up.
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            CLOSED,
        ),
        (
            "no version",
            b"GET /healthz\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "extra token",
            b"GET /healthz HTTP/1.1 x\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "relative target",
            b"GET healthz HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "header without colon",
            b"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "non-UTF-8 head",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        ("20 KB header", big_header.into_bytes(), "HTTP/1.1 431"),
        ("5000 headers", many_headers.into_bytes(), "HTTP/1.1 431"),
        (
            "bad Content-Length",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "huge Content-Length",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "chunked body",
            b"POST /v1/sign HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "body larger than allowed",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n".to_vec(),
            "HTTP/1.1 413",
        ),
        (
            "body shorter than declared",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}".to_vec(),
            "",
        ),
        // Request smuggling material: framing two parsers could read differently.
        (
            "Content-Length with a sign",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "two different Content-Lengths",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "white space before the colon",
            b"POST /v1/sign HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "obs-fold line",
            b"GET /healthz HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "bare LF request line",
            b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n".to_vec(),
            CLOSED,
        ),
        (
            "bare LF in a header line",
            b"GET /healthz HTTP/1.1\r\nHost: x\n\r\n".to_vec(),
            CLOSED,
        ),
        (
            "Transfer-Encoding: chunked, identity",
            b"POST /v1/sign HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "unknown method",
            b"BREW /healthz HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "path traversal",
            b"GET /pkg/dist/../../host/Cargo.toml HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 404",
        ),
        (
            "encoded traversal",
            b"GET /pkg/dist/..%2f..%2fCargo.toml HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 404",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, bytes, want) in &cases {
        let t = std::time::Instant::now();
        let got = raw(bytes);
        let first = got.lines().next().unwrap_or("").to_string();
        let right = if *want == CLOSED {
            got.is_empty()
        } else {
            first.starts_with(want)
        };
        if !right || t.elapsed() > Duration::from_secs(12) {
            wrong.push(format!(
                "{what}: want \"{want}\", got \"{first}\" after {:?}",
                t.elapsed()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Two pipelined requests on one connection are both answered, in order.
    let got = raw(b"GET /healthz HTTP/1.1\r\n\r\nGET /v1/ca HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(got.matches("HTTP/1.1 200").count(), 2, "{got}");
    assert!(got.find("ok\n").unwrap() < got.find("BEGIN CERTIFICATE").unwrap());
    // Still serving.
    let tok = token(&dir, &["--identity", "h.example.com"]);
    let csr = openssl_csr(&tmp.0, "h", ED25519, "/CN=h.example.com", None);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
}
