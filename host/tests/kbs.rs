//! The Trustee KBS external plugin, with a gRPC client playing KBS exactly as Trustee does:
//! ValidateAuth, then Handle, then NeedsEncryption, the backend stripped from the path, the query
//! as a map. Attested issuance (openssl CSR in base64url → a certificate openssl verifies), the
//! identity binding, idempotent retries, the admin routes, hostile requests answered with 4xx in
//! `PluginResponse`, the service staying up, and the wire format checked against hand-built
//! protobuf bytes.

mod common;

use std::collections::HashMap;

use base64ct::{Base64UrlUnpadded, Encoding};
use common::*;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use wasm_pki_host::api::kbs::proto::kbs_plugin_client::KbsPluginClient;
use wasm_pki_host::api::kbs::proto::{
    NeedsEncryptionRequest, PluginRequest, PluginResponse, ValidateAuthRequest,
};

const POLICY: &str = r#"
[profiles.tee]
spiffe = { trustDomain = "coco.example", pathPrefix = "/pod" }

[profiles.web]
names = { allow = [{ type = "dns", value = ".example.com" }] }

[profiles.upstream]
subject = { organization = "Upstream" }
spiffe = { trustDomain = "coco.example" }
intermediate = { pathLen = 0 }
"#;

const POD: &str = "spiffe://coco.example/pod/p1";

/// What a bypass row tries: what, profile, the other query pairs, and the status and code it gets.
type BypassRow<'a> = (&'a str, String, Vec<(&'a str, String)>, u16, &'a str);
/// A hostile request: what, method, path, query, body, and the status it gets.
type HostileRow<'a> = (
    &'a str,
    &'a str,
    Vec<&'a str>,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    i32,
);

/// What KBS does with one request: (requires_admin_auth, the plugin's answer, requires_payload_encryption).
async fn kbs(
    c: &mut KbsPluginClient<Channel>,
    method: &str,
    path: &[&str],
    query: &[(&str, &str)],
    body: &[u8],
) -> (bool, PluginResponse, bool) {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let query: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let admin = c
        .validate_auth(ValidateAuthRequest {
            body: body.to_vec(),
            query: query.clone(),
            path: path.clone(),
            method: method.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .requires_admin_auth;
    let answer = c
        .handle(PluginRequest {
            body: body.to_vec(),
            query: query.clone(),
            path: path.clone(),
            method: method.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let encrypt = c
        .needs_encryption(NeedsEncryptionRequest {
            body: body.to_vec(),
            query,
            path,
            method: method.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .requires_payload_encryption;
    (admin, answer, encrypt)
}

fn json(a: &PluginResponse) -> serde_json::Value {
    serde_json::from_slice(&a.body).unwrap_or_default()
}

fn code(a: &PluginResponse) -> String {
    json(a)["error"]["code"].as_str().unwrap_or("").to_string()
}

/// An openssl CSR (DER, base64url) for `san`.
fn csr_b64(t: &std::path::Path, name: &str, san: &str) -> String {
    openssl_csr(t, name, P256, "/CN=pod", Some(san));
    let der = openssl_ok(
        t,
        &[
            "req",
            "-in",
            &format!("{name}.csr"),
            "-outform",
            "DER",
            "-out",
            &format!("{name}.der"),
        ],
    );
    let _ = der;
    Base64UrlUnpadded::encode_string(&std::fs::read(t.join(format!("{name}.der"))).unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn kbs_plays_the_plugin_attested_admin_and_hostile() {
    if common::no_module() {
        return;
    }
    let (tmp, dir) = new_ca("kbs", &[]);
    let t = tmp.0.clone();
    let policy = tmp.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let port = free_port();
    let plugin_addr = format!("127.0.0.1:{port}");
    let server = Server::start(
        &dir,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--kbs-plugin",
            &plugin_addr,
        ],
    );
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // KBS's side: server-authenticated TLS with the CA it was given (ca_cert_path).
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&root))
            .domain_name("127.0.0.1");
        let channel = Channel::from_shared(format!("https://{plugin_addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = KbsPluginClient::new(channel.clone());

        // Attested issuance: GET sign, no admin credential, the answer encrypted to the TEE.
        let csr = csr_b64(&t, "p1", &format!("URI:{POD}"));
        let q = [("profile", "tee"), ("identity", POD), ("csr", csr.as_str())];
        let (admin, a, encrypt) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
        assert!(!admin && encrypt);
        assert_eq!(a.status_code, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.content_type, "application/json");
        let v = json(&a);
        for k in ["certificate", "chain", "ca", "notAfter", "renewAfter", "serial"] {
            assert!(!v[k].is_null(), "{k}: {v}");
        }
        std::fs::write(t.join("leaf.pem"), v["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(t.join("root.pem"), &root).unwrap();
        openssl_ok(&t, &["verify", "-CAfile", "root.pem", "leaf.pem"]);
        let text = openssl_ok(&t, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert!(text.contains(&format!("URI:{POD}")), "{text}");
        assert_eq!(
            openssl_ok(&t, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]),
            openssl_ok(&t, &["pkey", "-in", "p1.key", "-pubout"]),
            "the key is the TEE's own"
        );
        let serial = v["serial"].as_str().unwrap().to_string();

        // KBS failed after Handle (say, encrypting): the retry gets the same certificate.
        let (_, again, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
        assert_eq!(json(&again)["serial"].as_str(), Some(serial.as_str()));
        // A new key for the same identity is a new certificate.
        let csr2 = csr_b64(&t, "p1b", &format!("URI:{POD}"));
        let q2 = [("profile", "tee"), ("identity", POD), ("csr", csr2.as_str())];
        let (_, other, _) = kbs(&mut c, "GET", &["sign"], &q2, b"").await;
        assert_eq!(other.status_code, 200);
        assert_ne!(json(&other)["serial"].as_str(), Some(serial.as_str()));

        // The identity is the query's, bound by the KBS policy: a CSR for another pod, or for
        // more than the identity (even names the profile would allow), is refused.
        let web_csr = csr_b64(&t, "w", "DNS:a.example.com,DNS:b.example.com");
        let bypass: Vec<BypassRow> = vec![
            ("a CSR for another pod", "tee".into(), vec![("identity", POD.into()), ("csr", csr_b64(&t, "p2", "URI:spiffe://coco.example/pod/p2"))], 403, "policy"),
            ("a CSR asking for a second name", "web".into(), vec![("identity", "a.example.com".into()), ("csr", web_csr.clone())], 403, "policy"),
            ("an identity outside the trust domain", "tee".into(), vec![("identity", "spiffe://evil.example/pod/p1".into()), ("csr", csr.clone())], 403, "policy"),
            ("a profile the policy lacks", "admin".into(), vec![("identity", POD.into()), ("csr", csr.clone())], 403, "unknown_profile"),
            ("an intermediate profile", "upstream".into(), vec![("identity", "spiffe://coco.example".into()), ("csr", csr_b64(&t, "ca", "URI:spiffe://coco.example"))], 403, "forbidden"),
        ];
        for (what, profile, rest, status, want) in bypass {
            let mut q: Vec<(&str, &str)> = vec![("profile", profile.as_str())];
            q.extend(rest.iter().map(|(k, v)| (*k, v.as_str())));
            let (admin, a, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
            assert!(!admin);
            assert_eq!((a.status_code, code(&a).as_str()), (i32::from(status), want), "{what}: {}", String::from_utf8_lossy(&a.body));
        }

        // GET ca: the root, attested and encrypted like every attested answer.
        let (admin, a, encrypt) = kbs(&mut c, "GET", &["ca"], &[], b"").await;
        assert!(!admin && encrypt);
        assert_eq!((a.status_code, a.body.clone()), (200, root.clone().into_bytes()));
        // GET bundle: the SPIFFE trust bundle, the same document as GET /v1/bundle.
        let (admin, b, encrypt) = kbs(&mut c, "GET", &["bundle"], &[], b"").await;
        assert!(!admin && encrypt);
        assert_eq!((b.status_code, b.content_type.as_str()), (200, "application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(doc["keys"][0]["use"], "x509-svid");
        assert_eq!(doc, http(&server.addr, "GET", "/v1/bundle", &[], b"").unwrap().json());

        // Admin routes: KBS must check its admin credential; answers are not for a TEE.
        let order = serde_json::json!({"profile": "web", "identity": "n.example.com", "uses": 1, "ttl": "10m"}).to_string();
        let (admin, a, encrypt) = kbs(&mut c, "POST", &["tokens"], &[], order.as_bytes()).await;
        assert!(admin && !encrypt);
        assert_eq!(a.status_code, 200, "{}", String::from_utf8_lossy(&a.body));
        let token = json(&a)["token"].as_str().unwrap().to_string();
        let node_csr = openssl_csr(&t, "n", P256, "/CN=n.example.com", None);
        assert_eq!(sign(&server.addr, &token, &node_csr).status, 200, "the plugin's token works on /v1/sign");
        let (admin, a, _) = kbs(&mut c, "POST", &["revoke"], &[], serde_json::json!({"serial": serial}).to_string().as_bytes()).await;
        assert!(admin);
        assert_eq!(json(&a)["revoked"], serde_json::json!([serial]));
        let (admin, a, _) = kbs(&mut c, "GET", &["certificates"], &[], b"").await;
        assert!(admin);
        let list = json(&a)["certificates"].as_array().unwrap().clone();
        let ours = list.iter().find(|r| r["serial"] == serial.as_str()).unwrap();
        assert_eq!(ours["tokenId"], "kbs:wasm-pki/sign");
        assert_eq!(ours["identity"], POD);
        assert!(ours["revokedAt"].is_number());
        // The revoked certificate is not handed out again on a retry.
        let (_, a, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
        assert_ne!(json(&a)["serial"].as_str(), Some(serial.as_str()));

        // Hostile and wrong requests: 4xx in the answer, never a panic, admin unless attested.
        let big = "A".repeat(20_000);
        let hostile: Vec<HostileRow> = vec![
            ("unknown route", "GET", vec!["nope"], vec![], vec![], 404),
            ("no path", "GET", vec![], vec![], vec![], 404),
            ("two segments", "GET", vec!["sign", "x"], vec![], vec![], 404),
            ("traversal", "GET", vec!["..", "tokens"], vec![], vec![], 404),
            ("POST to sign", "POST", vec!["sign"], q.to_vec(), vec![], 405),
            ("lower-case method", "get", vec!["sign"], q.to_vec(), vec![], 405),
            ("GET tokens", "GET", vec!["tokens"], vec![], vec![], 405),
            ("unknown parameter", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", POD), ("csr", csr.as_str()), ("admin", "1")], vec![], 400),
            ("missing csr", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", POD)], vec![], 400),
            ("csr not base64url", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", POD), ("csr", "%%%")], vec![], 400),
            ("csr not a CSR", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", POD), ("csr", "AAAA")], vec![], 400),
            ("oversized csr", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", POD), ("csr", big.as_str())], vec![], 413),
            ("a body on a GET", "GET", vec!["sign"], q.to_vec(), b"x".to_vec(), 400),
            ("bad identity", "GET", vec!["sign"], vec![("profile", "tee"), ("identity", "not a name"), ("csr", csr.as_str())], vec![], 400),
            ("bad profile name", "GET", vec!["sign"], vec![("profile", "../x"), ("identity", POD), ("csr", csr.as_str())], vec![], 400),
            ("tokens body not JSON", "POST", vec!["tokens"], vec![], b"{".to_vec(), 400),
            ("tokens with an unknown field", "POST", vec!["tokens"], vec![], br#"{"profile":"web","admin":true}"#.to_vec(), 400),
            ("tokens for an unknown profile", "POST", vec!["tokens"], vec![], br#"{"profile":"nope"}"#.to_vec(), 403),
            ("tokens with zero uses", "POST", vec!["tokens"], vec![], br#"{"profile":"web","uses":0}"#.to_vec(), 400),
            ("revoke an unknown serial", "POST", vec!["revoke"], vec![], br#"{"serial":"ff"}"#.to_vec(), 404),
        ];
        for (what, method, path, query, body, status) in hostile {
            let (admin, a, encrypt) = kbs(&mut c, method, &path, &query, &body).await;
            assert_eq!(a.status_code, status, "{what}: {}", String::from_utf8_lossy(&a.body));
            assert_eq!(admin, !encrypt, "{what}");
            if status == 404 || method != "GET" || path.first() != Some(&"sign") {
                assert!(admin, "{what}: an unknown or admin route must need the admin credential");
            }
        }
        // A gRPC message over the limit is refused by the transport, and the service stays up.
        let huge = PluginRequest { body: vec![0; 100_000], query: HashMap::new(), path: vec!["tokens".into()], method: "POST".into() };
        assert!(c.handle(huge).await.is_err());
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest { service: "kbs.plugin.v1.KbsPlugin".into() })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    });
    drop(server);
}

/// The wire format, against bytes built by hand from the field numbers of Trustee's
/// `plugin.proto`: a wrong number or type in our `.proto` fails here.
#[test]
fn the_messages_have_trustees_field_numbers() {
    // PluginRequest { body = 1 (bytes), query = 2 (map), path = 3 (repeated string), method = 4 }
    let mut raw = vec![0x0a, 2, b'h', b'i'];
    let entry = [&[0x0a, 1, b'k'][..], &[0x12, 1, b'v'][..]].concat();
    raw.extend([0x12, entry.len() as u8]);
    raw.extend(&entry);
    raw.extend([0x1a, 4]);
    raw.extend(b"sign");
    raw.extend([0x22, 3]);
    raw.extend(b"GET");
    let r = PluginRequest::decode(&raw[..]).unwrap();
    assert_eq!(r.body, b"hi");
    assert_eq!(r.query.get("k").map(String::as_str), Some("v"));
    assert_eq!(r.path, ["sign"]);
    assert_eq!(r.method, "GET");
    // Field 5 is reserved: a sender using it is ignored, not misread.
    let mut with5 = raw.clone();
    with5.extend([0x2a, 1, b'x']);
    assert_eq!(PluginRequest::decode(&with5[..]).unwrap(), r);
    // PluginResponse { body = 1, status_code = 2 (int32), content_type = 3 }
    let a = PluginResponse {
        body: b"x".to_vec(),
        status_code: 200,
        content_type: "a".into(),
    };
    assert_eq!(
        a.encode_to_vec(),
        [0x0a, 1, b'x', 0x10, 0xc8, 0x01, 0x1a, 1, b'a']
    );
    // ValidateAuthResponse { requires_admin_auth = 1 }, NeedsEncryptionResponse { requires_payload_encryption = 1 }
    use wasm_pki_host::api::kbs::proto::{NeedsEncryptionResponse, ValidateAuthResponse};
    assert_eq!(
        ValidateAuthResponse {
            requires_admin_auth: true
        }
        .encode_to_vec(),
        [0x08, 1]
    );
    assert_eq!(
        NeedsEncryptionResponse {
            requires_payload_encryption: true
        }
        .encode_to_vec(),
        [0x08, 1]
    );
    // The same layout for the two other requests.
    let v = ValidateAuthRequest::decode(&raw[..]).unwrap();
    assert_eq!(
        (v.body, v.path, v.method),
        (b"hi".to_vec(), vec!["sign".to_string()], "GET".to_string())
    );
    let n = NeedsEncryptionRequest::decode(&raw[..]).unwrap();
    assert_eq!(n.query.get("k").map(String::as_str), Some("v"));
}
