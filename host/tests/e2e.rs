//! End to end: `wasm-pki serve` on loopback, openssl CSRs, tokens, the ledger, restarts.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use sha2::Digest;

#[test]
fn sign_flow_with_openssl_csrs_tokens_and_restart() {
    if common::no_module() {
        return;
    }
    let tmp = TempDir::new("e2e");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    cli_ok(&["init", "--dir", d, "--name", "E2E CA"]);
    // Key files are 0600 and a second init refuses to overwrite.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let (ok, _, err) = cli(&["init", "--dir", d]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");

    let mut server = Server::start(&dir, &[]);
    let addr = server.addr.clone();
    let info = http(&addr, "GET", "/v1/info", &[], b"").unwrap().json();
    let module_sha: String = sha2::Sha256::digest(std::fs::read(module()).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        info["moduleSha256"], module_sha,
        "the server runs the npm package's module"
    );
    // The test command runs these tests once more with the CA key in the host's store.
    let store = std::env::var("WASM_PKI_KEY_STORE").unwrap_or_else(|_| "sandbox".into());
    assert_eq!(info["keyStore"], store.as_str(), "{info}");
    let ca_pem = http(&addr, "GET", "/v1/ca", &[], b"").unwrap().body;
    std::fs::write(tmp.path("ca.pem"), &ca_pem).unwrap();

    for (i, (name, opts)) in [("p256", P256), ("ed25519", ED25519), ("rsa", RSA2048)]
        .iter()
        .enumerate()
    {
        let identity = format!("svc{i}.example.com");
        let tok = token(&dir, &["--identity", &identity]);
        let csr = openssl_csr(
            &tmp.0,
            name,
            opts,
            &format!("/CN={identity}"),
            Some(&format!("DNS:{identity}")),
        );
        let r = sign(&addr, &tok, &csr);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let v = r.json();
        std::fs::write(tmp.path("leaf.pem"), v["certificate"].as_str().unwrap()).unwrap();
        let out = openssl_ok(
            &tmp.0,
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslserver",
                "leaf.pem",
            ],
        );
        assert!(out.contains("leaf.pem: OK"), "{out}");
        assert!(v["renewAfter"].as_i64().unwrap() < v["notAfter"].as_i64().unwrap());
        assert_eq!(v["ca"].as_str().unwrap(), ca_pem);
        // The token is single use.
        let again = sign(&addr, &tok, &csr);
        assert_eq!(again.status, 401, "{}", again.body);
        assert_eq!(again.json()["error"]["code"], "token_used");
    }

    // A SAN outside policy: 403, nothing recorded, and the token use is given back.
    let before = issued(&dir).lines().count();
    let tok = token(&dir, &["--identity", "ok.example.com"]);
    let evil = openssl_csr(
        &tmp.0,
        "evil",
        P256,
        "/CN=ok.example.com",
        Some("DNS:ok.example.com,DNS:evil.com"),
    );
    let r = sign(&addr, &tok, &evil);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("evil.com"));
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "a refused request was recorded"
    );

    // Garbage, truncated and oversized bodies: 4xx, and the server stays up.
    let good = openssl_csr(&tmp.0, "good", P256, "/CN=ok.example.com", None);
    for (body, expect) in [
        (b"not json".to_vec(), 400),
        (
            serde_json::json!({"csr": "garbage"})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            serde_json::json!({"csr": &good[..good.len() / 2]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            serde_json::json!({"csr": good, "identity": "evil.com"})
                .to_string()
                .into_bytes(),
            400,
        ),
        (vec![b'a'; 1 << 20], 413),
    ] {
        let r = http(
            &addr,
            "POST",
            "/v1/sign",
            &[("Authorization", &format!("Bearer {tok}"))],
            &body,
        )
        .unwrap();
        assert_eq!(r.status, expect, "{}", r.body);
    }
    assert_eq!(
        http(&addr, "POST", "/v1/sign", &[], b"{}").unwrap().status,
        401
    );
    assert_eq!(
        http(
            &addr,
            "POST",
            "/v1/sign",
            &[("Authorization", "Bearer wpk_nope")],
            b"{\"csr\":\"x\"}"
        )
        .unwrap()
        .status,
        401
    );
    // The refused requests did not burn the token.
    let r = sign(&addr, &tok, &good);
    assert_eq!(r.status, 200, "{}", r.body);
    let issued = r.json();
    let serial = issued["serial"].as_str().unwrap().to_string();

    // Metrics account for the requests; the page is served.
    let metrics = http(&addr, "GET", "/metrics", &[], b"").unwrap().body;
    assert!(metrics.contains("wasm_pki_issued_total 4"), "{metrics}");
    assert!(
        metrics.contains("wasm_pki_refused_total{reason=\"policy\"} 1"),
        "{metrics}"
    );
    let page = http(&addr, "GET", "/", &[], b"").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Request a certificate"));
    assert_eq!(
        http(&addr, "GET", "/pkg/dist/wasm_pki_bg.wasm", &[], b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(&addr, "GET", "/pkg/../host/Cargo.toml", &[], b"")
            .unwrap()
            .status,
        404
    );

    // Revoke, CRL, restart: CA, tokens and ledger persist.
    let multi = token(&dir, &["--identity", "multi.example.com", "--uses", "2"]);
    let m = openssl_csr(&tmp.0, "multi", ED25519, "/CN=multi.example.com", None);
    let first_multi = sign(&addr, &multi, &m);
    assert_eq!(first_multi.status, 200);
    let multi_serial = first_multi.json()["serial"].as_str().unwrap().to_string();
    // A reason that is not an RFC 5280 CRLReason is refused by name, with the names.
    for bad in ["7", "compromised"] {
        let (ok, _, err) = cli(&["revoke", "--dir", d, "--serial", &serial, "--reason", bad]);
        assert!(!ok && err.contains("keyCompromise"), "{bad}: {err}");
    }
    // With a reason (any case) and without one: the CRL lists each with its own.
    cli_ok(&[
        "revoke",
        "--dir",
        d,
        "--serial",
        &serial,
        "--reason",
        "KEYcompromise",
    ]);
    cli_ok(&["revoke", "--dir", d, "--serial", &multi_serial]);
    let crl = http(&addr, "GET", "/v1/crl", &[], b"").unwrap().body;
    std::fs::write(tmp.path("crl.pem"), &crl).unwrap();
    let text = openssl_ok(
        &tmp.0,
        &[
            "crl", "-in", "crl.pem", "-CAfile", "ca.pem", "-noout", "-text",
        ],
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains(&serial), "{text}");
    // openssl prints each entry as "Serial Number: HEX" then its date and extensions.
    let entry = |serial: &str| -> String {
        text.split("Serial Number:")
            .find(|e| e.trim_start().to_ascii_lowercase().starts_with(serial))
            .unwrap_or_else(|| panic!("no CRL entry for {serial}: {text}"))
            .to_string()
    };
    let revoked = entry(&serial);
    assert!(
        revoked.contains("X509v3 CRL Reason Code") && revoked.contains("Key Compromise"),
        "{revoked}"
    );
    let plain = entry(&multi_serial);
    assert!(!plain.contains("CRL Reason Code"), "{plain}");
    let listed = cli_ok(&["list", "--dir", d]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{serial}\t")) && l.ends_with("\treason=keyCompromise")),
        "{listed}"
    );
    server.kill();
    let server2 = Server::start(&dir, &[]);
    assert_eq!(
        http(&server2.addr, "GET", "/v1/ca", &[], b"").unwrap().body,
        ca_pem
    );
    assert_eq!(
        sign(&server2.addr, &multi, &m).status,
        200,
        "second use of a 2-use token after restart"
    );
    assert_eq!(sign(&server2.addr, &multi, &m).status, 401);
    let list = common::issued(&dir);
    assert_eq!(list.lines().count(), 6, "{list}");
    assert!(
        list.contains(&format!("{serial}\t")) && list.contains("revoked="),
        "{list}"
    );
}

#[test]
fn a_single_use_token_yields_exactly_one_certificate_under_concurrency() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("race", &["--algorithm", "ed25519"]);
    let server = Server::start(&dir, &[]);
    let csr = openssl_csr(&tmp.0, "race", ED25519, "/CN=race.example.com", None);
    for round in 0..5 {
        let tok = token(&dir, &["--identity", "race.example.com"]);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (addr, tok, csr) = (server.addr.clone(), tok.clone(), csr.clone());
                std::thread::spawn(move || sign(&addr, &tok, &csr).status)
            })
            .collect();
        let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
    }
}

#[test]
fn operator_cli_signs_inspects_and_refuses_clearly() {
    if common::no_module() {
        return;
    }
    let tmp = TempDir::new("cli");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    std::fs::write(tmp.path("pass"), "correct horse battery\n").unwrap();
    cli_ok(&[
        "init",
        "--dir",
        d,
        "--intermediate",
        "--passphrase-file",
        tmp.path("pass").to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(dir.join("ca.key"))
        .unwrap()
        .contains("ENCRYPTED PRIVATE KEY"));
    openssl_csr(&tmp.0, "op", P256, "/CN=op.example.com", None);
    let csr_path = tmp.path("op.csr");
    // Without the passphrase: one clear line and a non-zero exit.
    let sign_args = [
        "sign",
        "--dir",
        d,
        "--csr",
        csr_path.to_str().unwrap(),
        "--identity",
        "op.example.com",
    ];
    let (ok, _, err) = cli(&sign_args);
    assert!(
        !ok && err.starts_with("error: ")
            && err.trim().lines().count() == 1
            && err.contains("passphrase"),
        "{err}"
    );
    let pass = tmp.path("pass");
    let pem = cli_ok(
        &[
            &sign_args[..],
            &["--passphrase-file", pass.to_str().unwrap()],
        ]
        .concat(),
    );
    std::fs::write(tmp.path("leaf.pem"), &pem).unwrap();
    std::fs::copy(dir.join("root.pem"), tmp.path("root.pem")).unwrap();
    std::fs::copy(dir.join("ca.pem"), tmp.path("chain.pem")).unwrap();
    let out = openssl_ok(
        &tmp.0,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(out.contains("leaf.pem: OK"), "{out}");
    let desc = cli_ok(&["inspect", tmp.path("leaf.pem").to_str().unwrap()]);
    assert!(desc.contains("\"op.example.com\""), "{desc}");
    // A group-readable key is refused at start-up.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("ca.key"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, _, err) = cli(&[
        "crl",
        "--dir",
        d,
        "--passphrase-file",
        tmp.path("pass").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("must not be readable"), "{err}");
    // Help on every command.
    for cmd in ["init", "serve", "sign", "inspect", "revoke", "crl", "list"] {
        assert!(cli_ok(&[cmd, "--help"]).contains("Usage"), "{cmd}");
    }
    assert!(cli_ok(&["token", "create", "--help"]).contains("--identity"));
}

/// With `--public-url`, every leaf carries a CRL Distribution Point and AIA caIssuers; the URLs
/// serve DER with RFC 5280's media types, and `openssl verify -crl_check` with the CRL fetched
/// from the certificate's own URL accepts a live certificate and refuses it once revoked.
/// Without the flag, nothing is added.
#[test]
fn published_crl_and_issuer_urls_are_in_leaves_and_serve_der() {
    if common::no_module() {
        return;
    }
    let tmp = TempDir::new("urls");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    cli_ok(&["init", "--dir", d, "--name", "URL CA", "--intermediate"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("https://{listen}/");
    let server = Server::start(&dir, &["--listen", &listen, "--public-url", &base]);
    let addr = server.addr.clone();
    let t = &tmp.0;
    openssl_ok(
        t,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    );
    openssl_ok(
        t,
        &[
            "req",
            "-new",
            "-key",
            "k.pem",
            "-subj",
            "/CN=u.example.com",
            "-out",
            "r.pem",
        ],
    );
    let csr = std::fs::read_to_string(tmp.path("r.pem")).unwrap();
    let tok = token(&dir, &["--identity", "u.example.com"]);
    let r = sign(&addr, &tok, &csr);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    std::fs::write(tmp.path("leaf.pem"), v["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(tmp.path("int.pem"), v["chain"][0].as_str().unwrap()).unwrap();
    std::fs::write(tmp.path("root.pem"), v["ca"].as_str().unwrap()).unwrap();
    let text = openssl_ok(t, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    let crl_url = format!("https://{listen}/v1/crl.der");
    let ca_url = format!("https://{listen}/v1/ca.der");
    assert!(text.contains("X509v3 CRL Distribution Points"), "{text}");
    assert!(text.contains(&format!("URI:{crl_url}")), "{text}");
    assert!(
        text.contains(&format!("CA Issuers - URI:{ca_url}")),
        "{text}"
    );

    // AIA caIssuers: the issuing CA (the intermediate) in DER.
    let (status, ctype, der) = get_bytes(&addr, "/v1/ca.der");
    assert_eq!((status, ctype.as_str()), (200, "application/pkix-cert"));
    std::fs::write(tmp.path("issuer.der"), &der).unwrap();
    let issuer = openssl_ok(
        t,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "issuer.der",
            "-noout",
            "-subject",
        ],
    );
    assert!(issuer.contains("URL CA Intermediate"), "{issuer}");

    // The CRL, fetched from the URL the certificate names.
    let fetch_crl = || {
        let path = crl_url.split(&listen).nth(1).unwrap();
        let (status, ctype, der) = get_bytes(&addr, path);
        assert_eq!((status, ctype.as_str()), (200, "application/pkix-crl"));
        std::fs::write(tmp.path("crl.der"), &der).unwrap();
        openssl_ok(
            t,
            &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
        );
    };
    let verify = || {
        std::process::Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "int.pem",
            ])
            .args(["-CRLfile", "crl.pem", "leaf.pem"])
            .current_dir(t)
            .output()
            .unwrap()
    };
    fetch_crl();
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let serial = v["serial"].as_str().unwrap();
    cli_ok(&["revoke", "--dir", d, "--serial", serial]);
    fetch_crl();
    let refused = verify();
    let out = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{out}");
    assert!(out.contains("certificate revoked"), "{out}");

    // Without --public-url (the operator's CLI here), leaves carry neither extension.
    let plain = cli_ok(&[
        "sign",
        "--dir",
        d,
        "--csr",
        tmp.path("r.pem").to_str().unwrap(),
        "--identity",
        "u.example.com",
    ]);
    std::fs::write(tmp.path("plain.pem"), plain).unwrap();
    let text = openssl_ok(t, &["x509", "-in", "plain.pem", "-noout", "-text"]);
    assert!(
        !text.contains("CRL Distribution") && !text.contains("Authority Information Access"),
        "{text}"
    );
    drop(server);
}

/// The binary alone: copied into an empty folder with no checkout beside it and no module given,
/// it creates a CA, serves, and hands out the page, the package's JS and the module it runs (the
/// npm package's file, byte for byte). The test command points WASM_PKI_RELEASE_BIN at the release
/// build; without it, this test's own build is used.
#[test]
fn the_binary_alone_serves_the_page_and_its_module() {
    if common::no_module() {
        return;
    }
    let bin = std::env::var_os("WASM_PKI_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN));
    let tmp = TempDir::new("alone");
    let copy = tmp.path("wasm-pki");
    std::fs::copy(&bin, &copy).unwrap();
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(&copy);
        c.args(args)
            .current_dir(&tmp.0)
            .env_remove("WASM_PKI_MODULE")
            .env_remove("CARGO_MANIFEST_DIR");
        c
    };
    let init = run(&["init", "--dir", "ca"]).output().unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut child = run(&["serve", "--dir", "ca", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Over HTTPS, trusting only the CA `init` made.
    let addr = listening_addr(&mut child, &tmp.path("ca"));
    // The npm package's file, also when this run checks another module (the server build).
    let npm_module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg/dist/wasm_pki_bg.wasm");
    let module = std::fs::read(npm_module).unwrap();
    for (path, ctype) in [
        ("/", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript"),
        ("/pkg/web.js", "text/javascript"),
        ("/pkg/dist/wasm_pki.js", "text/javascript"),
        ("/pkg/dist/wasm_pki_bg.wasm", "application/wasm"),
    ] {
        let (status, got, body) = get_bytes(&addr, path);
        assert_eq!((status, got.as_str()), (200, ctype), "{path}");
        assert!(!body.is_empty(), "{path}");
        if path.ends_with(".wasm") {
            assert!(
                body == module,
                "the served module is the npm package's file"
            );
        }
    }
    let info = http(&addr, "GET", "/v1/info", &[], b"").unwrap().json();
    let sha: String = sha2::Sha256::digest(&module)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        info["moduleSha256"], sha,
        "it runs the npm package's module"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// One log line per request (JSON here) with the token's public id, never the token; the issued
/// serial or the refusal code; OpenMetrics from /metrics; /readyz follows the ledger's state.
#[test]
fn request_logs_metrics_and_readiness() {
    if common::no_module() {
        return;
    }
    let tmp = TempDir::new("logs");
    let dir = tmp.path("ca");
    let d = dir.to_str().unwrap();
    cli_ok(&["init", "--dir", d, "--name", "Log CA"]);
    let log = tmp.path("serve.log");
    let mut child = std::process::Command::new(BIN)
        .args([
            "serve",
            "--dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("WASM_PKI_MODULE", module())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child, &dir);
    let ready = http(&addr, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let (ok, out, err) = cli(&["token", "create", "--dir", d, "--identity", "l.example.com"]);
    assert!(ok, "{err}");
    let secret = out.lines().last().unwrap().trim().to_string();
    let id = err
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let csr = openssl_csr(&tmp.0, "l", P256, "/CN=l.example.com", None);
    let first = sign(&addr, &secret, &csr);
    assert_eq!(first.status, 200, "{}", first.body);
    let serial = first.json()["serial"].as_str().unwrap().to_string();
    assert_eq!(sign(&addr, &secret, &csr).status, 401);
    let (status, ctype, body) = get_bytes(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let metrics = String::from_utf8(body).unwrap();
    assert!(
        metrics.contains(r#"wasm_pki_requests_total{route="/readyz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"wasm_pki_refused_total{reason="token_used"} 1"#),
        "{metrics}"
    );

    // A ledger that cannot take writes (another process holds it exclusively): not ready.
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let busy = http(&addr, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(busy.status, 503, "{}", busy.body);
    db.execute_batch("ROLLBACK;").unwrap();
    assert_eq!(http(&addr, "GET", "/readyz", &[], b"").unwrap().status, 200);

    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&secret), "a token reached the log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "request")
        .collect();
    let signs: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["route"] == "/v1/sign").collect();
    assert_eq!(signs.len(), 2, "{text}");
    assert_eq!(signs[0]["status"], 200);
    assert_eq!(signs[0]["token_id"], id.as_str());
    assert_eq!(signs[0]["serial"], serial.as_str());
    assert_eq!(signs[1]["status"], 401);
    assert_eq!(signs[1]["code"], "token_used");
    assert_eq!(signs[1]["token_id"], id.as_str());
    assert!(signs
        .iter()
        .all(|v| v["method"] == "POST" && v["latency_ms"].is_number()));
    assert!(lines
        .iter()
        .any(|v| v["route"] == "/readyz" && v["status"] == 503));
}

/// `GET /v1/token`: the token's identity, its profile's rules and lifetime, uses left and
/// expiry, nothing spent; a malformed, unknown, expired or used-up token is refused with the very
/// status, code and message `POST /v1/sign` gives it.
#[test]
fn the_token_endpoint_tells_the_rules_and_refuses_as_signing_does() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("token-rules", &[]);
    let policy = tmp.path("policy.toml");
    std::fs::write(
        &policy,
        r#"
[profiles.apps]
usage = "server"
keyTypes = ["p256"]
defaultLifetimeSecs = 3600
maxLifetimeSecs = 86400
names = { allow = [{ type = "dns", value = ".apps.example.com" }] }
"#,
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let server = Server::start(&dir, &["--policy", p]);
    let rules = |tok: &str| {
        http(
            &server.addr,
            "GET",
            "/v1/token",
            &[("Authorization", &format!("Bearer {tok}"))],
            b"",
        )
        .unwrap()
    };
    let tok = token(
        &dir,
        &[
            "--policy",
            p,
            "--profile",
            "apps",
            "--identity",
            "web.apps.example.com",
            "--uses",
            "2",
        ],
    );
    // Asked for three times: nothing is spent.
    for _ in 0..3 {
        let r = rules(&tok);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["identity"], "web.apps.example.com");
        assert_eq!(v["profile"], "apps");
        assert_eq!(v["usesLeft"], 2);
        assert_eq!(v["lifetimeSecs"], 3600);
        assert_eq!(v["rules"]["keyTypes"], serde_json::json!(["p256"]));
        assert_eq!(
            v["rules"]["names"]["allow"][0]["value"],
            ".apps.example.com"
        );
        assert!(v["expiresAt"].as_i64().unwrap() > 0);
    }
    let csr = openssl_csr(&tmp.0, "rules", P256, "/CN=web.apps.example.com", None);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
    assert_eq!(rules(&tok).json()["usesLeft"], 1);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);

    // Every refusal: the same status, code and message as signing.
    let expired = token(&dir, &["--identity", "x.example.com", "--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let unknown = format!("wpk_{}", "A".repeat(43));
    for (what, t) in [
        ("used up", tok.as_str()),
        ("expired", expired.as_str()),
        ("unknown", unknown.as_str()),
        ("malformed", "not-a-token"),
        ("empty", ""),
    ] {
        let got = rules(t);
        let want = sign(&server.addr, t, &csr);
        assert_eq!(
            got.status, want.status,
            "{what}: {} / {}",
            got.body, want.body
        );
        assert_eq!(got.json()["error"], want.json()["error"], "{what}");
        assert!(got.status == 401, "{what}: {}", got.status);
    }
    let none = http(&server.addr, "GET", "/v1/token", &[], b"").unwrap();
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "missing_token");
    // Asking spent nothing: a fresh single-use token still signs once after being looked up.
    let once = token(&dir, &["--identity", "once.example.com"]);
    assert_eq!(rules(&once).status, 200);
    let csr = openssl_csr(&tmp.0, "once", P256, "/CN=once.example.com", None);
    assert_eq!(sign(&server.addr, &once, &csr).status, 200);
}
