//! Renewal over mTLS on the HTTPS listener (`POST /v1/renew`): the client certificate is the
//! credential and the certificate renewed. Same key and names, or a re-key with a CSR; every
//! refusal with its code and nothing recorded; lineage in the ledger; no token used.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;

/// POST /v1/renew presenting `cert` (PEM) and `key` (PEM) as the TLS client certificate.
fn renew(addr: &str, root: &str, client: Option<(&str, &str)>, body: &str) -> Resp {
    let mut s = connect_with(addr, Some(tls_client(root, client))).unwrap();
    let head = format!(
        "POST /v1/renew HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let raw = read_all(&mut *s).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    Resp {
        status: text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0),
        body: text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    }
}

/// The public key of a certificate or key file, as openssl prints it.
fn public_key(dir: &Path, file: &str, is_cert: bool) -> String {
    if is_cert {
        openssl_ok(dir, &["x509", "-in", file, "-noout", "-pubkey"])
    } else {
        openssl_ok(dir, &["pkey", "-in", file, "-pubout"])
    }
}

fn code(r: &Resp) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

const POLICY: &str = r#"
[profiles.web]
names = { allow = [{ type = "dns", value = ".example.com" }] }

[profiles.fixed]
renewal = { enabled = false }

[profiles.doomed]
"#;

const NARROWED: &str = r#"
[profiles.web]
names = { allow = [{ type = "dns", value = ".example.org" }] }

[profiles.fixed]
renewal = { enabled = false }
"#;

#[test]
fn renewal_over_mtls_rekey_refusals_and_lineage() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("renew", &[]);
    let d = dir.to_str().unwrap();
    let t = &tmp.0;
    let policy = tmp.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let p = policy.to_str().unwrap();
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let server = Server::start(&dir, &["--policy", p]);

    // Enrol once with a single-use token.
    let tok = token(&dir, &["--identity", "w.example.com"]);
    let csr = openssl_csr(t, "w", P256, "/CN=w.example.com", None);
    let first = sign(&server.addr, &tok, &csr);
    assert_eq!(first.status, 200, "{}", first.body);
    let c1 = first.json()["certificate"].as_str().unwrap().to_string();
    let s1 = first.json()["serial"].as_str().unwrap().to_string();
    let k1 = std::fs::read_to_string(tmp.path("w.key")).unwrap();
    assert_eq!(
        sign(&server.addr, &tok, &csr).status,
        401,
        "the token is spent"
    );

    // No client certificate: no renewal.
    let r = renew(&server.addr, &root, None, "");
    assert_eq!((r.status, code(&r).as_str()), (401, "missing_certificate"));

    // Renew with the same key: a new serial, the same key and names; openssl verifies it.
    let r = renew(&server.addr, &root, Some((&c1, &k1)), "");
    assert_eq!(r.status, 200, "{}", r.body);
    let c2 = r.json()["certificate"].as_str().unwrap().to_string();
    let s2 = r.json()["serial"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    std::fs::write(tmp.path("c1.pem"), &c1).unwrap();
    std::fs::write(tmp.path("c2.pem"), &c2).unwrap();
    std::fs::write(tmp.path("root.pem"), &root).unwrap();
    assert_eq!(public_key(t, "c1.pem", true), public_key(t, "c2.pem", true));
    let text = openssl_ok(t, &["x509", "-in", "c2.pem", "-noout", "-text"]);
    assert!(
        text.contains("DNS:w.example.com") && text.contains("CN = w.example.com"),
        "{text}"
    );
    openssl_ok(
        t,
        &["verify", "-CAfile", "root.pem", "-x509_strict", "c2.pem"],
    );

    // Re-key: a CSR with a new key; the renewed certificate (c2) is the credential, which also
    // shows rustls accepting the renewed pair in a TLS 1.3 handshake.
    let csr2 = openssl_csr(
        t,
        "w2",
        P256,
        "/CN=w.example.com",
        Some("DNS:w.example.com"),
    );
    let body = serde_json::json!({ "csr": csr2 }).to_string();
    let r = renew(&server.addr, &root, Some((&c2, &k1)), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let c3 = r.json()["certificate"].as_str().unwrap().to_string();
    let s3 = r.json()["serial"].as_str().unwrap().to_string();
    std::fs::write(tmp.path("c3.pem"), &c3).unwrap();
    assert_eq!(
        public_key(t, "c3.pem", true),
        public_key(t, "w2.key", false)
    );
    openssl_ok(t, &["verify", "-CAfile", "root.pem", "c3.pem"]);
    let k2 = std::fs::read_to_string(tmp.path("w2.key")).unwrap();

    // A re-key with the old key, or with a name the certificate lacks: refused by policy.
    let same_key = {
        openssl_ok(
            t,
            &[
                "req",
                "-new",
                "-key",
                "w2.key",
                "-subj",
                "/CN=w.example.com",
                "-out",
                "same.csr",
            ],
        );
        std::fs::read_to_string(tmp.path("same.csr")).unwrap()
    };
    let foreign = openssl_csr(
        t,
        "f",
        P256,
        "/CN=w.example.com",
        Some("DNS:w.example.com,DNS:x.example.com"),
    );
    let before = issued(&dir).lines().count();
    for csr in [&same_key, &foreign] {
        let body = serde_json::json!({ "csr": csr }).to_string();
        let r = renew(&server.addr, &root, Some((&c3, &k2)), &body);
        assert_eq!((r.status, code(&r).as_str()), (403, "policy"), "{}", r.body);
    }
    // A body that is not JSON, and one with an unknown field.
    for body in ["garbage", r#"{"csr": null, "profile": "web"}"#] {
        let r = renew(&server.addr, &root, Some((&c3, &k2)), body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }

    // Revoked: refused although the TLS handshake still verifies it.
    cli_ok(&["revoke", "--dir", d, "--serial", &s3]);
    let r = renew(&server.addr, &root, Some((&c3, &k2)), "");
    assert_eq!((r.status, code(&r).as_str()), (403, "revoked"));

    // Not in the ledger (a record removed behind the signer's back).
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    db.execute("DELETE FROM certificates WHERE serial = ?1", [&s2])
        .unwrap();
    drop(db);
    let r = renew(&server.addr, &root, Some((&c2, &k1)), "");
    assert_eq!((r.status, code(&r).as_str()), (401, "not_issued_here"));

    // A profile that does not allow renewal.
    let sign_with = |name: &str, profile: &str, san: Option<&str>| {
        let csr = openssl_csr(t, name, P256, &format!("/CN={name}"), san);
        std::fs::write(tmp.path(&format!("{name}.csr.pem")), &csr).unwrap();
        let csr_path = tmp.path(&format!("{name}.csr.pem"));
        let mut args = vec![
            "sign",
            "--dir",
            d,
            "--csr",
            csr_path.to_str().unwrap(),
            "--profile",
            profile,
            "--policy",
            p,
        ];
        let id;
        if san.is_none() {
            id = name.to_string();
            args.extend_from_slice(&["--identity", &id]);
        }
        let pem = cli_ok(&args);
        (
            pem,
            std::fs::read_to_string(tmp.path(&format!("{name}.key"))).unwrap(),
        )
    };
    let (fixed, fixed_key) = sign_with("fixed.example.com", "fixed", None);
    let r = renew(&server.addr, &root, Some((&fixed, &fixed_key)), "");
    assert_eq!((r.status, code(&r).as_str()), (403, "renewal_disabled"));

    // The current policy decides: `web` narrowed to another domain, `doomed` removed.
    let (web, web_key) = sign_with("a.example.com", "web", Some("DNS:a.example.com"));
    let (doomed, doomed_key) = sign_with("doomed.example.com", "doomed", None);
    let r = renew(&server.addr, &root, Some((&web, &web_key)), "");
    assert_eq!(r.status, 200, "before the policy changes: {}", r.body);
    // Refusals recorded nothing: since `before`, c2's record was deleted, and 3 CLI certificates
    // and 1 renewal were issued.
    assert_eq!(issued(&dir).lines().count(), before - 1 + 4);
    drop(server);
    std::fs::write(&policy, NARROWED).unwrap();
    let server = Server::start(&dir, &["--policy", p]);
    let before = issued(&dir).lines().count();
    let r = renew(&server.addr, &root, Some((&web, &web_key)), "");
    assert_eq!((r.status, code(&r).as_str()), (403, "policy"), "{}", r.body);
    let r = renew(&server.addr, &root, Some((&doomed, &doomed_key)), "");
    assert_eq!((r.status, code(&r).as_str()), (403, "profile_removed"));
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "a refusal recorded something"
    );

    // Lineage: each renewal names the certificate it renewed.
    let list = issued(&dir);
    let line = |s: &str| {
        list.lines()
            .find(|l| l.starts_with(s))
            .unwrap_or("")
            .to_string()
    };
    assert!(line(&s3).contains(&format!("renewed_from={s2}")), "{list}");
    assert!(
        line(&s1).contains("token=") && !line(&s1).contains("renewed_from"),
        "{list}"
    );

    // Revoking one certificate with --lineage revokes its ancestors and descendants (c2's record
    // was deleted above, so c1's lineage is c1 alone; the web certificate and its renewal are one).
    let web_serial = serial_of(t, &web);
    cli_ok(&["revoke", "--dir", d, "--serial", &web_serial, "--lineage"]);
    let list = issued(&dir);
    let revoked: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("revoked="))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let renewal_of_web = list
        .lines()
        .find(|l| l.contains(&format!("renewed_from={web_serial}")))
        .map(|l| l.split('\t').next().unwrap())
        .unwrap();
    for s in [&web_serial, renewal_of_web, &s3] {
        assert!(revoked.contains(&s), "{s} not revoked:\n{list}");
    }
    assert_eq!(revoked.len(), 3, "{list}");
}
