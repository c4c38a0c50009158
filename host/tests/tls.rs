//! The HTTPS listener, checked with tools we did not write: openssl s_client verifies the chain
//! and the name and sees TLS 1.3 and 1.2 only; curl signs over HTTP/2 and HTTP/1.1; client
//! certificates from this CA become the request's identity, expired or foreign ones never do;
//! the listener's certificate is renewed while a connection stays open; an operator's own
//! certificate is served as given; `--plain-http` warns.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// openssl s_client against `addr` with `args`; returns its whole output and whether it passed.
fn s_client(dir: &Path, addr: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args([&["s_client", "-connect", addr], args].concat())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close stdin at once: s_client then finishes the handshake and leaves.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its exit status depends on how the close raced stdin's end; the handshake's outcome is what
    // it printed.
    let ok = text.contains("Verify return code: 0 (ok)") && text.contains("Server certificate");
    (ok, text)
}

#[test]
fn openssl_verifies_the_chain_and_name_and_sees_tls_1_2_and_1_3_only() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("tls", &["--intermediate"]);
    let server = Server::start(&dir, &["--name", "localhost", "--name", "127.0.0.1"]);
    let root = dir.join("root.pem");
    let root = root.to_str().unwrap();
    for (version, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        for check in [
            &["-verify_hostname", "localhost"][..],
            &["-verify_ip", "127.0.0.1"][..],
        ] {
            let (ok, text) = s_client(
                &tmp.0,
                &server.addr,
                &[&["-CAfile", root, "-verify_return_error", version], check].concat(),
            );
            assert!(ok, "{version} {check:?}: {text}");
            assert!(text.contains(&format!("New, {name}, Cipher")), "{text}");
            // The chain ends at the intermediate: the root stays with the client.
            assert!(text.contains("Intermediate"), "{text}");
        }
    }
    // A name the certificate does not carry, and a trust store without this CA: refused.
    let (ok, _) = s_client(
        &tmp.0,
        &server.addr,
        &[
            "-CAfile",
            root,
            "-verify_return_error",
            "-verify_hostname",
            "evil.example.com",
        ],
    );
    assert!(!ok, "a foreign name verified");
    let other = new_ca("tls-other", &[]).1;
    let (ok, _) = s_client(
        &tmp.0,
        &server.addr,
        &[
            "-CAfile",
            other.join("root.pem").to_str().unwrap(),
            "-verify_return_error",
        ],
    );
    assert!(!ok, "verified against a foreign CA");
    // Older protocols are refused.
    for old in ["-tls1_1", "-tls1"] {
        let (ok, text) = s_client(&tmp.0, &server.addr, &["-CAfile", root, old]);
        assert!(
            !ok && text.contains("no peer certificate available"),
            "{old} was accepted: {text}"
        );
    }
    // ALPN: h2 first, http/1.1 for clients that only speak that.
    let (_, text) = s_client(
        &tmp.0,
        &server.addr,
        &["-CAfile", root, "-alpn", "h2,http/1.1"],
    );
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    let (_, text) = s_client(
        &tmp.0,
        &server.addr,
        &["-CAfile", root, "-alpn", "http/1.1"],
    );
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
}

/// curl, trusting only the CA file the start-up line names, signs over HTTP/2 and HTTP/1.1; the
/// start-up lines print the https:// address, the CA fingerprint (as openssl computes it) and a
/// curl command that works as printed.
#[test]
fn curl_signs_over_http2_and_http1_with_the_printed_command() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("curl", &[]);
    let mut child = serve_child(&dir, &["--log-format", "off"], Stdio::inherit());
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut printed = Vec::new();
    while let Some(Ok(l)) = lines.next() {
        printed.push(l.clone());
        if l.contains("curl ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let text = printed.join("\n");
    let fp = openssl_ok(
        &tmp.0,
        &[
            "x509",
            "-in",
            "ca/root.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fp = fp.trim().rsplit('=').next().unwrap();
    assert!(
        text.contains(fp),
        "the fingerprint {fp} is not printed:\n{text}"
    );
    assert!(text.contains("listening on https://127.0.0.1:"), "{text}");
    let curl_line = text.lines().find(|l| l.contains("curl ")).unwrap();
    let command = curl_line.split("try  ").nth(1).unwrap();
    let out = Command::new("sh")
        .args(["-c", &format!("{command} --fail --silent --show-error")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(info["moduleSha256"].is_string(), "{info}");
    let base = command
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches("/v1/info");

    let tok = token(&dir, &["--identity", "h2.example.com", "--uses", "2"]);
    let csr = openssl_csr(&tmp.0, "h2", P256, "/CN=h2.example.com", None);
    std::fs::write(
        tmp.path("body.json"),
        serde_json::json!({ "csr": csr }).to_string(),
    )
    .unwrap();
    for (flag, version) in [("--http2", "HTTP/2"), ("--http1.1", "HTTP/1.1")] {
        let out = Command::new("curl")
            .current_dir(&tmp.0)
            .args([flag, "--silent", "--show-error", "--include"])
            .args(["--cacert", "ca/root.pem"])
            .args(["-H", &format!("Authorization: Bearer {tok}")])
            .args(["-H", "Content-Type: application/json"])
            .args(["--data-binary", "@body.json"])
            .arg(format!("{base}/v1/sign"))
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout);
        assert!(
            answer.starts_with(&format!("{version} 200")),
            "{flag}: {answer}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(answer.contains("BEGIN CERTIFICATE"), "{answer}");
    }
    // Over HTTP/2 too, a body over the limit gets 413 and the connection serves on.
    std::fs::write(tmp.path("big.json"), vec![b'a'; 1 << 20]).unwrap();
    let out = Command::new("curl")
        .current_dir(&tmp.0)
        .args([
            "--http2",
            "--silent",
            "--include",
            "--cacert",
            "ca/root.pem",
        ])
        .args(["-H", &format!("Authorization: Bearer {tok}")])
        .args(["--data-binary", "@big.json"])
        .arg(format!("{base}/v1/sign"))
        .args([
            "--next",
            "--http2",
            "--silent",
            "--include",
            "--cacert",
            "ca/root.pem",
        ])
        .arg(format!("{base}/healthz"))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("HTTP/2 413"), "{answer}");
    assert!(answer.contains("HTTP/2 200"), "{answer}");
}

/// `wasm-pki serve` for the CA in `dir` on a free loopback port with `extra` options; stdout
/// piped (for the start-up lines), stderr to `stderr`.
fn serve_child(dir: &Path, extra: &[&str], stderr: Stdio) -> std::process::Child {
    Command::new(BIN)
        .args([
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("WASM_PKI_MODULE", module())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A leaf and key from this CA, for client authentication: (chain PEM, key PEM).
fn client_cert(dir: &Path, work: &Path, name: &str, profile: &[&str]) -> (String, String) {
    let csr = openssl_csr(work, name, P256, &format!("/CN={name}"), None);
    std::fs::write(work.join(format!("{name}.csr")), &csr).unwrap();
    let mut args = vec![
        "sign",
        "--dir",
        dir.to_str().unwrap(),
        "--csr",
        work.to_str().unwrap(),
        "--identity",
        name,
    ];
    let csr_path = work.join(format!("{name}.csr"));
    args[4] = csr_path.to_str().unwrap();
    args.extend_from_slice(profile);
    let pem = cli_ok(&args);
    let key = std::fs::read_to_string(work.join(format!("{name}.key"))).unwrap();
    (pem, key)
}

/// A client certificate from this CA becomes the request's identity (the log line names its
/// serial); an expired one from this CA, or one from another CA, fails the handshake and never
/// reaches a handler; a client without a certificate is served as before.
#[test]
fn client_certificates_from_this_ca_are_the_identity_and_no_others() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("mtls", &[]);
    let policy = tmp.path("policy.toml");
    std::fs::write(
        &policy,
        "[profiles.brief]\nmaxLifetimeSecs = 1\ndefaultLifetimeSecs = 1\nbackdateSecs = 0\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let (good, good_key) = client_cert(&dir, &tmp.0, "good.example.com", &[]);
    let (old, old_key) = client_cert(
        &dir,
        &tmp.0,
        "old.example.com",
        &["--profile", "brief", "--policy", p],
    );
    // A foreign CA's client certificate (openssl's own, clientAuth).
    openssl_ok(
        &tmp.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "f.key",
            "-out",
            "f.pem",
            "-subj",
            "/CN=foreign",
            "-days",
            "1",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ],
    );
    let (foreign, foreign_key) = (
        std::fs::read_to_string(tmp.path("f.pem")).unwrap(),
        std::fs::read_to_string(tmp.path("f.key")).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(2100)); // `old` has expired
    let log = tmp.path("serve.log");
    let mut child = serve_child(
        &dir,
        &["--log-format", "json"],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let addr = listening_addr(&mut child, &dir);
    let mut child = KillOnDrop(child);
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let get = |client: Option<(&str, &str)>| -> Option<u16> {
        let mut s = connect_with(&addr, Some(tls_client(&root, client))).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let raw = read_all(&mut *s).ok()?;
        String::from_utf8_lossy(&raw).get(9..12)?.parse().ok()
    };
    assert_eq!(get(Some((&good, &good_key))), Some(200));
    assert_eq!(get(None), Some(200));
    assert_eq!(
        get(Some((&old, &old_key))),
        None,
        "an expired certificate was served"
    );
    assert_eq!(
        get(Some((&foreign, &foreign_key))),
        None,
        "a foreign certificate was served"
    );
    assert_eq!(get(None), Some(200), "still serving");
    let _ = child.0.kill();
    let _ = child.0.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let clients: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .map(|v| v["client"].clone())
        .collect();
    let good_serial = serial_of(&tmp.0, &good);
    assert_eq!(clients.len(), 3, "{text}");
    assert_eq!(clients[0], good_serial.as_str(), "{text}");
    assert!(clients[1..].iter().all(|c| c.is_null()), "{text}");
    assert!(!text.contains(&serial_of(&tmp.0, &old)), "{text}");
}

/// With a 6 s lifetime the listener's certificate is renewed about 4 s in, without a restart: a
/// connection opened before keeps working, new connections get the new certificate, and every
/// listener certificate is in the ledger.
#[test]
fn the_listener_certificate_is_renewed_while_a_connection_stays_open() {
    if common::no_module() {
        return;
    }
    let (_tmp, dir) = new_ca("renew", &[]);
    let server = Server::start(&dir, &["--tls-lifetime", "6s"]);
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let open = || {
        let s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let conn =
            rustls::ClientConnection::new(tls_client(&root, None), "127.0.0.1".try_into().unwrap())
                .unwrap();
        rustls::StreamOwned::new(conn, s)
    };
    let ask = |s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>| {
        use std::io::{BufRead, Read};
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
        }
        let mut body = [0u8; 3];
        r.read_exact(&mut body).unwrap();
    };
    let serial = |s: &rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>| {
        let der = s.conn.peer_certificates().unwrap()[0].to_vec();
        wasm_pki::Certificate::from_der(der).unwrap().serial_hex()
    };
    let mut kept = open();
    ask(&mut kept);
    let first = serial(&kept);
    let started = Instant::now();
    let mut renewed = None;
    while started.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(500));
        ask(&mut kept); // the old connection keeps working
        let mut fresh = open();
        ask(&mut fresh);
        if serial(&fresh) != first {
            renewed = Some((started.elapsed(), serial(&fresh)));
            break;
        }
    }
    let (after, second) = renewed.expect("no renewed certificate within 9 s");
    assert!(
        after >= Duration::from_secs(2),
        "renewed too early: {after:?}"
    );
    assert_eq!(
        serial(&kept),
        first,
        "an open connection's certificate changed"
    );
    ask(&mut kept);
    let list = cli_ok(&["list", "--dir", dir.to_str().unwrap()]);
    for s in [&first, &second] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(s.as_str()) && l.contains("token=listener")),
            "{s} not in the ledger:\n{list}"
        );
    }
    let summary = format!("tls renewal: the 6 s listener certificate was replaced after {after:?}; the open connection kept working");
    println!("{summary}");
    figures(&summary);
}

/// `--tls-cert`/`--tls-key`: the operator's certificate is served as given (openssl verifies it
/// against the operator's CA, not ours); `--plain-http` prints its warning.
#[test]
fn an_operator_certificate_is_served_and_plain_http_warns() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("own", &[]);
    openssl_ok(
        &tmp.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "own.key",
            "-out",
            "own.pem",
            "-subj",
            "/CN=own.example.com",
            "-days",
            "2",
            "-addext",
            "subjectAltName=DNS:own.example.com",
        ],
    );
    let mut child = serve_child(
        &dir,
        &[
            "--tls-cert",
            tmp.path("own.pem").to_str().unwrap(),
            "--tls-key",
            tmp.path("own.key").to_str().unwrap(),
            "--log-format",
            "off",
        ],
        Stdio::inherit(),
    );
    let url = listening_url(&mut child);
    let child = KillOnDrop(child);
    let addr = url.trim_start_matches("https://");
    let (ok, text) = s_client(
        &tmp.0,
        addr,
        &[
            "-CAfile",
            "own.pem",
            "-verify_return_error",
            "-verify_hostname",
            "own.example.com",
        ],
    );
    assert!(ok, "{text}");
    drop(child);
    // A key that is not the certificate's: refused at start.
    openssl_ok(
        &tmp.0,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
    let (ok, _, err) = cli(&[
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        tmp.path("own.pem").to_str().unwrap(),
        "--tls-key",
        tmp.path("other.key").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("does not match"), "{err}");

    let mut out = serve_child(&dir, &["--plain-http"], Stdio::piped());
    std::thread::sleep(Duration::from_millis(1500));
    let _ = out.kill();
    let o = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: --plain-http"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("listening on http://"));
}
