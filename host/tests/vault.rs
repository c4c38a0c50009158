//! The Vault-compatible PKI API and the SPIFFE trust bundle, driven by clients we did not write:
//! `vaultrs` (a maintained Vault client) for health, lookup-self, sign, sign-intermediate and the
//! CA reads; openssl to check and use the intermediate (it signs a leaf that `openssl verify`
//! chains to the root); the `spiffe` crate's X.509 bundle and `jsonwebtoken`'s JWK Set for the
//! bundle. Hostile requests get Vault's error shape and record nothing.

mod common;

use common::*;
use vaultrs::api::pki::requests::{SignCertificateRequest, SignIntermediateRequest};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

const TRUST_DOMAIN: &str = "example.org";

const POLICY: &str = r#"
[profiles.web]
usage = "server"
maxLifetimeSecs = 604800
names = { allow = [{ type = "dns", value = ".example.com" }, { type = "ip", value = "10.0.0.0/8" }] }

[profiles.spire]
maxLifetimeSecs = 86400
subjectFrom = "csr"
subject = { organization = "SPIRE via wasm-pki" }
spiffe = { trustDomain = "example.org" }
intermediate = { pathLen = 0, nameConstraints = { permittedDns = ["example.org"] } }

[vault]
mount = "pki"
roles = { web = "web" }
intermediateProfile = "spire"

[bundle]
path = "/bundle.json"
refreshHintSecs = 120
"#;

fn client(server: &Server, root: &std::path::Path, token: &str) -> VaultClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&server.base)
            .token(token)
            .ca_certs(vec![root.to_str().unwrap().to_string()])
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// The status of a Vault API error, after checking it came in Vault's `{"errors": […]}` shape.
fn api_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::APIError { code, errors }) => {
            assert!(!errors.is_empty(), "an error without a message");
            (code, errors.join("; "))
        }
        other => panic!("expected a Vault API error, got {other:?}"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn vault_clients_sign_leaves_and_intermediates_under_policy() {
    if no_module() {
        return;
    }
    let (tmp, dir) = new_ca("vault", &[]);
    let work = tmp.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let policy = tmp.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let root_path = dir.join("root.pem");
    let root_pem = std::fs::read_to_string(&root_path).unwrap();
    let server = Server::start(&dir, &["--policy", policy.to_str().unwrap()]);
    let web = token(&dir, &["--profile", "web", "--uses", "20", "--ttl", "1h"]);
    let spire = token(&dir, &["--profile", "spire", "--uses", "5", "--ttl", "1h"]);
    let rt = rt();

    // Health and lookup-self, as SPIRE's plugin reads them.
    let c = client(&server, &root_path, &web);
    let health = rt.block_on(vaultrs::sys::health(&c)).unwrap();
    assert!(health.initialized && !health.sealed);
    let me = rt.block_on(vaultrs::token::lookup_self(&c)).unwrap();
    assert_eq!(me.id, web);
    assert!(me.ttl > 3500 && me.ttl <= 3600, "ttl {}", me.ttl);
    assert_eq!(me.renewable, Some(false));
    assert_eq!(me.num_uses, 20);
    let stranger = client(&server, &root_path, "wpk_not-a-token");
    assert_eq!(
        api_error(rt.block_on(vaultrs::token::lookup_self(&stranger))).0,
        403
    );

    // cert-manager's request: common_name, alt_names, ip_sans, ttl as Go prints it.
    let csr = openssl_csr(
        &work,
        "leaf",
        P256,
        "/CN=a.example.com",
        Some("DNS:a.example.com"),
    );
    let signed = rt
        .block_on(vaultrs::pki::cert::ca::sign(
            &c,
            "pki",
            "web",
            &csr,
            "a.example.com",
            Some(
                SignCertificateRequest::builder()
                    .alt_names("b.example.com")
                    .ip_sans("10.1.2.3")
                    .ttl("2h0m0s")
                    .exclude_cn_from_sans(false),
            ),
        ))
        .unwrap();
    std::fs::write(work.join("leaf.pem"), &signed.certificate).unwrap();
    std::fs::write(work.join("root.pem"), &root_pem).unwrap();
    let text = openssl_ok(&work, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    for want in [
        "DNS:a.example.com",
        "DNS:b.example.com",
        "IP Address:10.1.2.3",
        "TLS Web Server Authentication",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("CA:TRUE"));
    openssl_ok(&work, &["verify", "-CAfile", "root.pem", "leaf.pem"]);
    let chain = signed.ca_chain.clone().unwrap();
    assert_eq!(chain.last().unwrap().trim(), root_pem.trim());
    assert_eq!(signed.issuing_ca.trim(), root_pem.trim());
    assert_eq!(
        signed.serial_number.replace(':', ""),
        serial_of(&work, &signed.certificate)
    );
    let lifetime = signed.expiration as i64 - wasm_pki_host::authority::now();
    assert!((7000..=7200).contains(&lifetime), "lifetime {lifetime}");
    // The exact JSON cert-manager's Vault issuer POSTs (every value a string; the CSR's CN, which
    // may be free text, with exclude_cn_from_sans "true"; Go's duration form).
    let cm_csr = openssl_csr(
        &work,
        "cm",
        P256,
        "/CN=My App",
        Some("DNS:app.example.com,IP:10.9.8.7"),
    );
    let auth = [("X-Vault-Token", web.as_str())];
    let cert_manager = |ttl: &str| {
        let body = serde_json::json!({
            "common_name": "My App",
            "alt_names": "app.example.com",
            "ip_sans": "10.9.8.7",
            "uri_sans": "",
            "ttl": ttl,
            "csr": cm_csr,
            "exclude_cn_from_sans": "true",
        });
        http(
            &server.addr,
            "POST",
            "/v1/pki/sign/web",
            &auth,
            body.to_string().as_bytes(),
        )
        .unwrap()
    };
    let r = cert_manager("2160h0m0s");
    assert_eq!(
        r.status, 400,
        "2160h is past the profile's 7 days: {}",
        r.body
    );
    let r = cert_manager("24h0m0s");
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::write(
        work.join("cm.pem"),
        r.json()["data"]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let text = openssl_ok(&work, &["x509", "-in", "cm.pem", "-noout", "-text"]);
    assert!(
        text.contains("DNS:app.example.com") && text.contains("IP Address:10.9.8.7"),
        "{text}"
    );
    assert!(
        !text.contains("My App"),
        "free text from the request became part of the certificate"
    );
    let before = issued(&dir).lines().count();

    // What would widen the profile is refused in Vault's shape, and nothing is recorded.
    let other_csr = openssl_csr(&work, "other", P256, "/CN=c.example.com", None);
    let ca_csr = {
        openssl_ok(
            &work,
            &[
                "genpkey", "-out", "ca.key", P256[0], P256[1], P256[2], P256[3],
            ],
        );
        openssl_ok(
            &work,
            &[
                "req",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=c.example.com",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-out",
                "ca.csr",
            ],
        );
        std::fs::read_to_string(work.join("ca.csr")).unwrap()
    };
    type Builder = fn(&mut vaultrs::api::pki::requests::SignCertificateRequestBuilder);
    let refusals: Vec<(&str, &str, &str, Builder, u16)> = vec![
        ("a wildcard", &other_csr, "*.example.com", |_| {}, 400),
        (
            "a foreign name",
            &other_csr,
            "c.example.com",
            |b| {
                b.alt_names("evil.example.net");
            },
            400,
        ),
        (
            "a foreign address",
            &other_csr,
            "c.example.com",
            |b| {
                b.ip_sans("192.0.2.1");
            },
            400,
        ),
        (
            "an over-long ttl",
            &other_csr,
            "c.example.com",
            |b| {
                b.ttl("9999h");
            },
            400,
        ),
        (
            "other_sans",
            &other_csr,
            "c.example.com",
            |b| {
                b.other_sans(vec![
                    "1.3.6.1.4.1.311.20.2.3;UTF8:admin@example.com".to_string()
                ]);
            },
            400,
        ),
        (
            "a CA flag through sign",
            &ca_csr,
            "c.example.com",
            |_| {},
            400,
        ),
        (
            "a URI SAN",
            &other_csr,
            "c.example.com",
            |b| {
                b.uri_sans("spiffe://example.org/admin");
            },
            400,
        ),
    ];
    for (what, csr, cn, build, want) in refusals {
        let mut b = SignCertificateRequest::builder();
        build(&mut b);
        let (code, msg) = api_error(rt.block_on(vaultrs::pki::cert::ca::sign(
            &c,
            "pki",
            "web",
            csr,
            cn,
            Some(&mut b),
        )));
        assert_eq!(code, want, "{what}: {msg}");
    }
    // A role this token is not for, an unknown role, a token of the intermediate profile.
    let (code, msg) = api_error(rt.block_on(vaultrs::pki::cert::ca::sign(
        &client(&server, &root_path, &spire),
        "pki",
        "web",
        &other_csr,
        "c.example.com",
        None,
    )));
    assert_eq!(code, 403, "{msg}");
    assert_eq!(
        api_error(rt.block_on(vaultrs::pki::cert::ca::sign(
            &c,
            "pki",
            "admin",
            &other_csr,
            "c.example.com",
            None
        )))
        .0,
        400
    );
    // Raw requests vaultrs would never send: unknown fields, a JSON bomb, no token, not JSON.
    let csr_json = serde_json::to_string(&other_csr).unwrap();
    let bomb = format!(
        "{{\"csr\":{csr_json},\"x\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    for (what, headers, body, want) in [
        (
            "an unknown field",
            &auth[..],
            format!("{{\"csr\":{csr_json},\"allow_any_name\":true}}"),
            400,
        ),
        ("a JSON bomb", &auth[..], bomb, 400),
        (
            "a duplicate csr",
            &auth[..],
            format!("{{\"csr\":{csr_json},\"csr\":{csr_json}}}"),
            400,
        ),
        ("no token", &[][..], format!("{{\"csr\":{csr_json}}}"), 403),
        ("not JSON", &auth[..], "csr=x".to_string(), 400),
        (
            "a huge body",
            &auth[..],
            format!("{{\"csr\":\"{}\"}}", "A".repeat(40_000)),
            413,
        ),
    ] {
        let r = http(
            &server.addr,
            "PUT",
            "/v1/pki/sign/web",
            headers,
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, want, "{what}: {}", r.body);
        let errors = r.json()["errors"].as_array().cloned().unwrap_or_default();
        assert!(!errors.is_empty(), "{what}: not Vault's shape: {}", r.body);
    }
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "a refusal was recorded"
    );
    // Every refusal gave its use back: 20 - 2 issued.
    assert_eq!(
        rt.block_on(vaultrs::token::lookup_self(&c))
            .unwrap()
            .num_uses,
        18
    );

    // SPIRE's sign-intermediate: a CSR with the trust domain's ID and the fields SPIRE's plugin
    // sends (common_name, organization, country, csr, ttl as whole seconds; no uri_sans).
    let spire_c = client(&server, &root_path, &spire);
    let int_csr = openssl_csr(
        &work,
        "int",
        P256,
        "/C=US/O=SPIFFE",
        Some("URI:spiffe://example.org"),
    );
    let int = rt
        .block_on(vaultrs::pki::cert::ca::sign_intermediate(
            &spire_c,
            "pki",
            &int_csr,
            "",
            Some(
                SignIntermediateRequest::builder()
                    .organization(vec!["SPIFFE".to_string()])
                    .country(vec!["US".to_string()])
                    .ttl("3600"),
            ),
        ))
        .unwrap();
    std::fs::write(work.join("int.pem"), &int.certificate).unwrap();
    let text = openssl_ok(&work, &["x509", "-in", "int.pem", "-noout", "-text"]);
    // As SPIRE checks an upstream-signed CA: CA:true, keyCertSign, only CA key usages, the URI
    // SAN exactly the trust domain.
    for want in [
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "URI:spiffe://example.org\n",
        "Permitted:",
        "DNS:example.org",
        "O = SPIRE via wasm-pki",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(
        !text.contains("Digital Signature") && !text.contains("Extended Key Usage"),
        "{text}"
    );
    let x = wasm_pki::Certificate::parse_all(int.certificate.as_bytes()).unwrap();
    assert!(x[0].not_after() - wasm_pki_host::authority::now() <= 3600);
    // The intermediate is used: openssl signs a SPIRE-like leaf with it, which verifies through
    // the chain wasm-pki handed out.
    std::fs::write(
        work.join("svid.ext"),
        "subjectAltName=URI:spiffe://example.org/workload\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl_csr(&work, "svid", P256, "/O=SPIRE", None);
    sign_with_intermediate(&work, "7", "svid.ext", "svid.pem");
    let up_chain: String = int.ca_chain.clone().unwrap().join("\n");
    std::fs::write(
        work.join("up.pem"),
        format!("{}\n{up_chain}\n", int.certificate),
    )
    .unwrap();
    openssl_ok(
        &work,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "up.pem",
            "svid.pem",
        ],
    );
    // The name constraints hold: a DNS name outside them does not verify.
    std::fs::write(
        work.join("bad.ext"),
        "subjectAltName=DNS:evil.example.net\n",
    )
    .unwrap();
    sign_with_intermediate(&work, "8", "bad.ext", "bad.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "up.pem",
            "bad.pem",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a name outside the constraints verified"
    );

    // The same request in the exact JSON SPIRE's Go client writes (strings everywhere, PUT), and
    // SPIRE's reading of the answer: issuing_ca plus every other ca_chain entry as its roots.
    let spire_body = serde_json::json!({
        "common_name": "",
        "organization": "SPIFFE",
        "country": "US",
        "csr": openssl_csr(&work, "int3", P256, "/C=US/O=SPIFFE", Some("URI:spiffe://example.org")),
        "ttl": "",
    });
    let r = http(
        &server.addr,
        "PUT",
        "/v1/pki/root/sign-intermediate",
        &[("X-Vault-Token", spire.as_str())],
        spire_body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.json()["data"];
    let issuing = d["issuing_ca"].as_str().unwrap();
    let roots: Vec<&str> = std::iter::once(issuing)
        .chain(
            d["ca_chain"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .filter(|c| *c != issuing),
        )
        .collect();
    assert_eq!(roots, [root_pem.trim()], "SPIRE's upstream roots");
    assert!(r.json()["warnings"][0]
        .as_str()
        .unwrap()
        .contains("organization"));

    // Intermediates: only for the intermediate profile's tokens, never wider than it.
    let before = issued(&dir).lines().count();
    let other_int = openssl_csr(
        &work,
        "int2",
        P256,
        "/O=SPIFFE",
        Some("URI:spiffe://example.org"),
    );
    let (code, msg) = api_error(rt.block_on(vaultrs::pki::cert::ca::sign_intermediate(
        &c, "pki", &other_int, "", None,
    )));
    assert_eq!(code, 403, "a web token minted an intermediate: {msg}");
    type IntBuilder = fn(&mut vaultrs::api::pki::requests::SignIntermediateRequestBuilder);
    let int_refusals: Vec<(&str, IntBuilder)> = vec![
        ("a DNS name", |b| {
            b.alt_names("spire.example.org");
        }),
        ("a workload ID", |b| {
            b.uri_sans("spiffe://example.org/ns/admin");
        }),
        ("another trust domain", |b| {
            b.uri_sans("spiffe://evil.example");
        }),
        ("a longer path", |b| {
            b.max_path_length(1);
        }),
        ("unlimited path", |b| {
            b.max_path_length(-1);
        }),
        ("its own name constraints", |b| {
            b.permitted_dns_domains(vec!["com".to_string()]);
        }),
        ("an over-long ttl", |b| {
            b.ttl("720h");
        }),
    ];
    for (what, build) in int_refusals {
        let mut b = SignIntermediateRequest::builder();
        build(&mut b);
        let (code, msg) = api_error(rt.block_on(vaultrs::pki::cert::ca::sign_intermediate(
            &spire_c,
            "pki",
            &other_int,
            "",
            Some(&mut b),
        )));
        assert_eq!(code, 400, "{what}: {msg}");
    }
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "a refused intermediate was recorded"
    );

    // The CA reads: vaultrs's cert/ca, and the raw PEM paths.
    let ca = rt
        .block_on(vaultrs::pki::cert::read(&c, "pki", "ca"))
        .unwrap();
    assert_eq!(ca.certificate.trim(), root_pem.trim());
    for path in ["/v1/pki/ca/pem", "/v1/pki/ca_chain"] {
        let r = http(&server.addr, "GET", path, &[], b"").unwrap();
        assert_eq!((r.status, r.body.trim()), (200, root_pem.trim()), "{path}");
    }
    let crl = http(&server.addr, "GET", "/v1/pki/crl/pem", &[], b"").unwrap();
    assert!(
        crl.status == 200 && crl.body.contains("BEGIN X509 CRL"),
        "{}",
        crl.body
    );
    figures("vault: vaultrs sign + sign-intermediate; 7 leaf and 7 intermediate refusals, 6 raw hostile bodies, 0 recorded");
}

#[test]
fn the_trust_bundle_parses_with_spiffe_libraries_and_its_sequence_only_grows() {
    if no_module() {
        return;
    }
    let (tmp, dir) = new_ca("bundle", &[]);
    let policy = tmp.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let server = Server::start(&dir, &["--policy", policy.to_str().unwrap()]);
    let r = http(&server.addr, "GET", "/v1/bundle", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, ctype, _) = get_bytes(&server.addr, "/v1/bundle");
    assert_eq!(ctype, "application/json");
    let first: serde_json::Value = r.json();
    assert_eq!(first["spiffe_sequence"], 1);
    assert_eq!(first["spiffe_refresh_hint"], 120);
    // The federation path serves the same document; no client authentication is asked.
    let again = http(&server.addr, "GET", "/bundle.json", &[], b"").unwrap();
    assert_eq!(again.json(), first);

    let root_pem = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let roots = check_bundle(&r.body);
    assert_eq!(roots.len(), 1);
    assert_eq!(
        roots[0],
        wasm_pki::Certificate::parse_all(root_pem.as_bytes()).unwrap()[0].der()
    );
    drop(server);

    // A CA change (a new CA with an intermediate) on the same ledger: the sequence grows, stays,
    // and grows again when the first set comes back; never down.
    let (_tmp2, dir2) = new_ca("bundle2", &["--intermediate"]);
    let ledger = format!("sqlite:{}", dir.join("ledger.sqlite").display());
    let bundle_of = |d: &std::path::Path| {
        cli_ok(&[
            "bundle",
            "--dir",
            d.to_str().unwrap(),
            "--ledger",
            &ledger,
            "--policy",
            policy.to_str().unwrap(),
        ])
    };
    let changed = bundle_of(&dir2);
    let v: serde_json::Value = serde_json::from_str(&changed).unwrap();
    assert_eq!(v["spiffe_sequence"], 2);
    assert_eq!(
        check_bundle(&changed).len(),
        2,
        "the intermediate and its root"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&bundle_of(&dir2)).unwrap()["spiffe_sequence"],
        2
    );
    let back: serde_json::Value = serde_json::from_str(&bundle_of(&dir)).unwrap();
    assert_eq!(back["spiffe_sequence"], 3);
    assert_eq!(back["keys"], first["keys"]);
    figures("bundle: sequence 1 → 2 (new intermediate) → 2 (same) → 3 (back to the first set)");
}

/// Parse a bundle document as a SPIFFE consumer does: a JWK Set (jsonwebtoken's), each key
/// `use: x509-svid` with one certificate whose key matches the JWK's parameters, or `use:
/// jwt-svid` with a `kid` (one: the CA's JWT authority); the certificates form an X.509 bundle
/// (the spiffe crate's). Returns the X.509 authorities, DER.
fn check_bundle(doc: &str) -> Vec<Vec<u8>> {
    use base64ct::Encoding;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(doc).unwrap();
    let raw: serde_json::Value = serde_json::from_str(doc).unwrap();
    let mut ders = Vec::new();
    let mut jwt = 0;
    for (jwk, raw_key) in set.keys.iter().zip(raw["keys"].as_array().unwrap()) {
        if raw_key["use"] == "jwt-svid" {
            assert_eq!(jwk.common.key_id.as_deref(), raw_key["kid"].as_str());
            let a = wasm_pki::JwtAuthority::from_jwk(raw_key).unwrap();
            assert_eq!(a.kid, raw_key["kid"].as_str().unwrap());
            jwt += 1;
            continue;
        }
        assert_eq!(raw_key["use"], "x509-svid");
        assert!(raw_key.get("kid").is_none(), "an x509-svid key has no kid");
        let x5c = jwk.common.x509_chain.as_ref().unwrap();
        assert_eq!(x5c.len(), 1);
        let der = base64ct::Base64::decode_vec(&x5c[0]).unwrap();
        let cert = &wasm_pki::Certificate::parse_all(
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                x5c[0]
            )
            .as_bytes(),
        )
        .unwrap()[0];
        let from_cert = serde_json::to_value(cert.public_key().unwrap().to_jwk()).unwrap();
        match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => {
                assert_eq!(from_cert["x"], ec.x);
                assert_eq!(from_cert["y"], ec.y);
            }
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => {
                assert_eq!(from_cert["x"], okp.x)
            }
            jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => {
                assert_eq!(from_cert["n"], rsa.n)
            }
            other => panic!("unexpected key {other:?}"),
        }
        ders.push(der);
    }
    assert_eq!(jwt, 1, "the CA's JWT authority");
    let td = spiffe::TrustDomain::new(TRUST_DOMAIN).unwrap();
    let bundle = spiffe::X509Bundle::parse_from_der(td, &ders.concat()).unwrap();
    assert_eq!(bundle.authorities().len(), ders.len());
    for (a, d) in bundle.authorities().iter().zip(&ders) {
        assert_eq!(a.as_ref(), &d[..]);
    }
    ders
}

/// openssl signs `svid.csr` with the minted intermediate (`int.pem`, `int.key`), as SPIRE would.
fn sign_with_intermediate(work: &std::path::Path, serial: &str, ext: &str, out: &str) {
    openssl_ok(
        work,
        &[
            "x509",
            "-req",
            "-in",
            "svid.csr",
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-set_serial",
            serial,
            "-days",
            "1",
            "-extfile",
            ext,
            "-out",
            out,
        ],
    );
}
