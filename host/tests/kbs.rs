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

/// An openssl CSR (DER, base64url) for `san`, with the existing key `key`.
fn csr_b64_with_key(t: &std::path::Path, key: &str, name: &str, san: &str) -> String {
    let csr = format!("{name}.der");
    let ext = format!("subjectAltName={san}");
    openssl_ok(
        t,
        &[
            "req", "-new", "-key", key, "-subj", "/CN=pod", "-addext", &ext, "-outform", "DER",
            "-out", &csr,
        ],
    );
    Base64UrlUnpadded::encode_string(&std::fs::read(t.join(csr)).unwrap())
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
        let recorded = |a: &PluginResponse| json(a)["certificates"].as_array().map_or(0, Vec::len);
        let (_, list, _) = kbs(&mut c, "GET", &["certificates"], &[], b"").await;
        let before = recorded(&list);
        let (_, again, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
        assert_eq!(json(&again)["serial"].as_str(), Some(serial.as_str()));
        let (_, list, _) = kbs(&mut c, "GET", &["certificates"], &[], b"").await;
        assert_eq!(recorded(&list), before, "a retry records nothing");
        // The same key and names in a CSR signed again (new bytes) is a new request, decided and
        // issued anew; only the very same CSR is a retry.
        let resigned = csr_b64_with_key(&t, "p1.key", "p1s", &format!("URI:{POD}"));
        assert_ne!(resigned, csr);
        let q3 = [("profile", "tee"), ("identity", POD), ("csr", resigned.as_str())];
        let (_, a, _) = kbs(&mut c, "GET", &["sign"], &q3, b"").await;
        assert_eq!(a.status_code, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_ne!(json(&a)["serial"].as_str(), Some(serial.as_str()));
        let (_, again, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
        assert_eq!(json(&again)["serial"].as_str(), Some(serial.as_str()), "the first CSR still gets its own");
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
            // Within the retry window, the key of the certificate just issued asking for more is
            // not a retry: the full decision refuses it (it once got the earlier certificate).
            ("the same key + a second SPIFFE ID", "tee".into(), vec![("identity", POD.into()), ("csr", csr_b64_with_key(&t, "p1.key", "r1", &format!("URI:{POD},URI:spiffe://coco.example/pod/p2")))], 403, "policy"),
            ("the same key + another pod's SPIFFE ID", "tee".into(), vec![("identity", POD.into()), ("csr", csr_b64_with_key(&t, "p1.key", "r2", "URI:spiffe://coco.example/pod/p2"))], 403, "policy"),
            ("the same key + an extra DNS name", "tee".into(), vec![("identity", POD.into()), ("csr", csr_b64_with_key(&t, "p1.key", "r3", &format!("URI:{POD},DNS:p1.example.com")))], 403, "policy"),
        ];
        let (_, list, _) = kbs(&mut c, "GET", &["certificates"], &[], b"").await;
        let before = recorded(&list);
        for (what, profile, rest, status, want) in bypass {
            let mut q: Vec<(&str, &str)> = vec![("profile", profile.as_str())];
            q.extend(rest.iter().map(|(k, v)| (*k, v.as_str())));
            let (admin, a, _) = kbs(&mut c, "GET", &["sign"], &q, b"").await;
            assert!(!admin);
            assert_eq!((a.status_code, code(&a).as_str()), (i32::from(status), want), "{what}: {}", String::from_utf8_lossy(&a.body));
        }
        let (_, list, _) = kbs(&mut c, "GET", &["certificates"], &[], b"").await;
        assert_eq!(recorded(&list), before, "a refused request records nothing");

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

/// The plugin on an address other than the listener's (the README's `https://10.0.0.5:50051`):
/// the certificate it serves names that address, so KBS's TLS check passes; a name it does not
/// carry is still refused (the check is real).
#[test]
fn the_plugin_on_another_address_is_named_in_the_certificate() {
    if common::no_module() {
        return;
    }
    let (_tmp, dir) = new_ca("kbs-addr", &[]);
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plugin_addr = format!("127.0.0.2:{port}");
    let server = Server::start(&dir, &["--kbs-plugin", &plugin_addr]);
    assert!(server.addr.contains("127.0.0.1"), "{}", server.addr);
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Some(status) when the handshake and the call succeed, None when either fails.
        let health = |name: &'static str| {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&root))
                .domain_name(name);
            let url = format!("https://{plugin_addr}");
            async move {
                let channel = Channel::from_shared(url)
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
                    .connect()
                    .await
                    .ok()?;
                let mut c = tonic_health::pb::health_client::HealthClient::new(channel);
                let req = tonic_health::pb::HealthCheckRequest {
                    service: "kbs.plugin.v1.KbsPlugin".into(),
                };
                Some(c.check(req).await.ok()?.into_inner().status)
            }
        };
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        assert_eq!(
            health("127.0.0.2").await,
            Some(serving),
            "KBS connects to the plugin's own address"
        );
        assert_eq!(
            health("127.0.0.3").await,
            None,
            "a name the certificate lacks fails the handshake"
        );
    });
    // The listener itself still answers at its own address.
    assert_eq!(
        http(&server.addr, "GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
    drop(server);
}

/// EAR claims as Trustee's attestation service puts them in its token (what KBS gives the
/// resource policy as `input`): submodule `cpu0` with `ear.status`, a trust vector, and the
/// annotated evidence under the TEE's name plus the pod's init-data claims.
fn ear_claims(status: Option<&str>, tee: &str, name: serde_json::Value) -> serde_json::Value {
    let mut cpu0 = serde_json::json!({
        "ear.trustworthiness-vector": {"instance-identity": 0, "configuration": 2, "executables": 3,
            "file-system": 0, "hardware": 2, "runtime-opaque": 0, "storage-opaque": 0, "sourced-data": 0},
        "ear.appraisal-policy-id": "default_cpu",
        "ear.veraison.annotated-evidence": {
            "init_data": "6b1f",
            "init_data_claims": {"name": name},
            "report_data": "7465",
            "runtime_data_claims": {"tee-pubkey": {"kty": "EC"}},
            tee: {"svn": "1", "launch_digest": "abcde", "debug": false}
        }
    });
    if let Some(s) = status {
        cpu0["ear.status"] = s.into();
    }
    serde_json::json!({
        "eat_profile": "tag:github.com,2024:confidential-containers/Trustee",
        "iat": 1_760_426_134, "exp": 1_760_426_434,
        "ear.verifier-id": {"developer": "https://confidentialcontainers.org", "build": "attestation-service 0.1.0"},
        "submods": {"cpu0": cpu0}
    })
}

/// `data.policy.allow` for `claims` and a request, evaluated as KBS does it (regorus: the policy,
/// the request as data, the claims as input); anything but `true` is a denial, as in KBS.
fn rego_allows(
    policy: &str,
    claims: &serde_json::Value,
    path: &[&str],
    query: serde_json::Value,
) -> bool {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy("resource-policy.rego".into(), policy.into())
        .expect("the policy parses");
    let data = serde_json::json!({"plugin": "external", "resource-path": path, "query": query});
    engine
        .add_data(regorus::Value::from_json_str(&data.to_string()).unwrap())
        .unwrap();
    engine.set_input_json(&claims.to_string()).unwrap();
    matches!(engine.eval_rule("data.policy.allow".into()), Ok(v) if v == regorus::Value::from(true))
}

/// host/kbs/resource-policy.rego under the engine KBS uses, against EAR claim documents: only an
/// affirmed TEE of a real attester gets its own identity; the sample attester only by opt-in.
#[test]
fn the_shipped_resource_policy_fails_closed() {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kbs/resource-policy.rego"
    ))
    .unwrap();
    let opted_in = policy.replace(
        "allow_sample_attester := false",
        "allow_sample_attester := true",
    );
    assert_ne!(
        opted_in, policy,
        "the opt-in switch is where the README says"
    );
    let sign = ["wasm-pki", "sign"];
    let ask = |profile: &str, identity: &str| serde_json::json!({"profile": profile, "identity": identity, "csr": "MIIB"});
    let p1 = serde_json::json!("p1");
    let affirmed = ear_claims(Some("affirming"), "tdx", p1.clone());
    let mut gpu_bad = affirmed.clone();
    gpu_bad["submods"]["gpu0"] = serde_json::json!({"ear.status": "contraindicated"});
    let mut no_claims = affirmed.clone();
    no_claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["init_data_claims"] =
        serde_json::Value::Null;
    type Row<'a> = (
        &'a str,
        &'a str,
        serde_json::Value,
        Vec<&'a str>,
        serde_json::Value,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "affirming, its own name",
            &policy,
            affirmed.clone(),
            sign.to_vec(),
            ask("tee", POD),
            true,
        ),
        (
            "contraindicated",
            &policy,
            ear_claims(Some("contraindicated"), "tdx", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "warning",
            &policy,
            ear_claims(Some("warning"), "tdx", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "none",
            &policy,
            ear_claims(Some("none"), "tdx", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "no status",
            &policy,
            ear_claims(None, "tdx", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "affirming, another pod's name",
            &policy,
            ear_claims(Some("affirming"), "snp", "p2".into()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "affirming, asks for another pod",
            &policy,
            affirmed.clone(),
            sign.to_vec(),
            ask("tee", "spiffe://coco.example/pod/p2"),
            false,
        ),
        (
            "affirming, another profile",
            &policy,
            affirmed.clone(),
            sign.to_vec(),
            ask("web", POD),
            false,
        ),
        (
            "affirming, a name with a slash",
            &policy,
            ear_claims(Some("affirming"), "tdx", "p1/x".into()),
            sign.to_vec(),
            ask("tee", "spiffe://coco.example/pod/p1/x"),
            false,
        ),
        (
            "affirming, a name that is not text",
            &policy,
            ear_claims(Some("affirming"), "tdx", serde_json::json!(["p1"])),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "affirming, no init-data claims",
            &policy,
            no_claims,
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "cpu affirming, its GPU contraindicated",
            &policy,
            gpu_bad,
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "no claims at all",
            &policy,
            serde_json::json!({}),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "the sample attester, affirming",
            &policy,
            ear_claims(Some("affirming"), "sample", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "the sample attester, opted in",
            &opted_in,
            ear_claims(Some("affirming"), "sample", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            true,
        ),
        (
            "the sample attester, opted in, contraindicated",
            &opted_in,
            ear_claims(Some("contraindicated"), "sample", p1.clone()),
            sign.to_vec(),
            ask("tee", POD),
            false,
        ),
        (
            "ca, contraindicated TEE",
            &policy,
            ear_claims(Some("contraindicated"), "tdx", p1.clone()),
            vec!["wasm-pki", "ca"],
            serde_json::json!({}),
            true,
        ),
        (
            "bundle, warning TEE",
            &policy,
            ear_claims(Some("warning"), "snp", p1.clone()),
            vec!["wasm-pki", "bundle"],
            serde_json::json!({}),
            true,
        ),
        (
            "ca, sample attester",
            &policy,
            ear_claims(Some("affirming"), "sample", p1.clone()),
            vec!["wasm-pki", "ca"],
            serde_json::json!({}),
            false,
        ),
        (
            "bundle, sample attester opted in",
            &opted_in,
            ear_claims(Some("contraindicated"), "sample", p1.clone()),
            vec!["wasm-pki", "bundle"],
            serde_json::json!({}),
            true,
        ),
        (
            "ca, no claims at all",
            &policy,
            serde_json::json!({}),
            vec!["wasm-pki", "ca"],
            serde_json::json!({}),
            false,
        ),
        (
            "an admin route",
            &policy,
            affirmed.clone(),
            vec!["wasm-pki", "tokens"],
            serde_json::json!({}),
            false,
        ),
        (
            "another backend",
            &policy,
            affirmed.clone(),
            vec!["other", "sign"],
            ask("tee", POD),
            false,
        ),
    ];
    for (what, policy, claims, path, query, want) in rows {
        assert_eq!(rego_allows(policy, &claims, &path, query), want, "{what}");
    }
    // Another plugin (KBS's own `resource`) is not this policy's to allow.
    let mut engine = regorus::Engine::new();
    engine.add_policy("p.rego".into(), policy.clone()).unwrap();
    let data =
        serde_json::json!({"plugin": "resource", "resource-path": sign, "query": ask("tee", POD)});
    engine
        .add_data(regorus::Value::from_json_str(&data.to_string()).unwrap())
        .unwrap();
    engine.set_input_json(&affirmed.to_string()).unwrap();
    assert_eq!(
        engine.eval_rule("data.policy.allow".into()).unwrap(),
        regorus::Value::from(false)
    );
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
