//! The node agent and the SPIFFE Workload API, driven by a client nobody here wrote (the Rust
//! `spiffe` crate): a signer with an `[agent]` policy, entries made with the CLI, `wasm-pki
//! agent` enrolled with a node token; the X.509 context (openssl verifies the chain against the
//! bundle, the key is the leaf's, the SPIFFE ID is the entry's), a rotated SVID on the same
//! stream, clients running as other uids (another SVID, PermissionDenied, a `unix:sha256` entry
//! that matches one binary only), a raw call without the security header, and the signer-side
//! refusals (no node certificate, another node's entry, a CSR asking for more).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokio_stream::StreamExt;

const POLICY: &str = r#"
[profiles.node]
defaultLifetimeSecs = 86400
maxLifetimeSecs = 86400

[profiles.workload]
maxLifetimeSecs = 3600
backdateSecs = 1
spiffe = { trustDomain = "example.org", pathPrefix = "/ns" }

[agent]
nodeProfile = "node"
workloadProfile = "workload"
"#;

/// The signer's public URL: the JWT-SVIDs' issuer.
const ISSUER: &str = "https://ca.example.org";

/// When set, the `child_client` test is a Workload API client run by the parent test as
/// another uid: it prints what it got and exits.
const CHILD_ENV: &str = "WASM_PKI_AGENT_CHILD_SOCKET";

/// A Workload API client as a separate process (the parent runs it as another uid).
#[test]
fn child_client() {
    let Ok(endpoint) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let said = rt.block_on(async {
        let client = match spiffe::WorkloadApiClient::connect_to(&endpoint).await {
            Ok(c) => c,
            Err(e) => return format!("ERROR={e}"),
        };
        match tokio::time::timeout(Duration::from_secs(20), client.fetch_x509_svid()).await {
            Ok(Ok(svid)) => format!("SPIFFE_ID={}", svid.spiffe_id()),
            Ok(Err(e)) => format!("ERROR={e:?}"),
            Err(_) => "ERROR=timeout".into(),
        }
    });
    println!("CHILD {said}");
}

/// Run `binary` (a copy of this test binary) as `uid` in child mode; what it printed.
fn as_uid(binary: &Path, uid: u32, endpoint: &str) -> String {
    let out = Command::new(binary)
        .args([
            "--exact",
            "child_client",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, endpoint)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // The harness prints "test child_client ... " on the same line first.
    text.lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, said)| said.to_string()))
        .unwrap_or_else(|| format!("no answer: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// A node-profile enrolment token for `identity` (the CA in `d`, the policy in `p`).
fn node_token(d: &str, p: &str, identity: &str) -> String {
    cli_ok(&[
        "token",
        "create",
        "--dir",
        d,
        "--profile",
        "node",
        "--identity",
        identity,
        "--policy",
        p,
    ])
    .lines()
    .last()
    .unwrap()
    .to_string()
}

fn entry(dir: &Path, policy: &Path, args: &[&str]) -> (bool, String, String) {
    cli(&[
        &[
            "entry",
            "create",
            "--dir",
            dir.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        args,
    ]
    .concat())
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    wasm_pki::hex(&sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn the_agent_serves_the_workload_api() {
    if common::no_module() || std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let (tmp, dir) = new_ca("agent", &[]);
    // Children running as other uids reach the socket and their binaries through this folder.
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let policy = tmp.path("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let server = Server::start(
        &dir,
        &["--policy", policy.to_str().unwrap(), "--public-url", ISSUER],
    );
    // The test command runs this once more with the CA and JWT keys in the host's store.
    let info: serde_json::Value = serde_json::from_str(
        &http(&server.addr, "GET", "/v1/info", &[], b"")
            .unwrap()
            .body,
    )
    .unwrap();
    let store = std::env::var("WASM_PKI_KEY_STORE").unwrap_or_else(|_| "sandbox".into());
    assert_eq!(info["keyStore"], store.as_str(), "{info}");
    let me = nix_uid();
    let d = dir.to_str().unwrap();
    let p = policy.to_str().unwrap();
    let token = node_token(d, p, "node1.example.org");

    // Two copies of this binary: the sha256 entry names the first only.
    let client_a = tmp.path("client-a");
    let client_b = tmp.path("client-b");
    std::fs::copy(std::env::current_exe().unwrap(), &client_a).unwrap();
    let mut b = std::fs::read(&client_a).unwrap();
    b.push(0);
    std::fs::write(&client_b, b).unwrap();
    for c in [&client_a, &client_b] {
        std::fs::set_permissions(c, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sha_a = sha256_hex(&client_a);

    let root_id = "spiffe://example.org/ns/root";
    let (ok, out, err) = entry(
        &dir,
        &policy,
        &[
            "--node",
            "node1.example.org",
            "--spiffe-id",
            root_id,
            "--selector",
            &format!("unix:uid:{me}"),
            "--x509-ttl",
            "20s",
            "--dns",
            "root.example.org",
            "--hint",
            "internal",
        ],
    );
    assert!(ok, "{out}{err}");
    let root_entry: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for (uid, name, extra) in [
        (65534u32, "nobody", None),
        (65533, "hashed", Some(format!("unix:sha256:{sha_a}"))),
    ] {
        let mut args = vec![
            "--node".to_string(),
            "node1.example.org".into(),
            "--spiffe-id".into(),
            format!("spiffe://example.org/ns/{name}"),
            "--selector".into(),
            format!("unix:uid:{uid}"),
        ];
        if let Some(s) = extra {
            args.extend(["--selector".into(), s]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = entry(&dir, &policy, &args);
        assert!(ok, "{out}{err}");
    }
    // Another node's entry, for the same uid: never served to node1.
    let (ok, out, err) = entry(
        &dir,
        &policy,
        &[
            "--node",
            "node2.example.org",
            "--spiffe-id",
            "spiffe://example.org/ns/elsewhere",
            "--selector",
            &format!("unix:uid:{me}"),
        ],
    );
    assert!(ok, "{out}{err}");
    let other_entry: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // Entries outside the workload profile are refused when made.
    for (id, sel) in [
        ("spiffe://other.org/ns/x", "unix:uid:1"),
        ("spiffe://example.org/x", "unix:uid:1"),
        ("spiffe://example.org/ns/x", "unix:pid:1"),
    ] {
        let (ok, _, err) = entry(
            &dir,
            &policy,
            &[
                "--node",
                "node1.example.org",
                "--spiffe-id",
                id,
                "--selector",
                sel,
            ],
        );
        assert!(!ok, "{id} {sel} was accepted");
        assert!(!err.is_empty());
    }
    let listed = cli_ok(&["entry", "list", "--dir", d, "--node", "node1.example.org"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");

    // The signer side without a node certificate, and with a certificate that is not a node's.
    let r = http(&server.addr, "GET", "/v1/agent/entries", &[], b"").unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("missing_certificate"))
    );

    // The agent: enrols with the token, then serves the socket.
    let socket = tmp.path("agent.sock");
    let (agent, endpoint) = start_agent(&server.base, &dir, &token, &tmp.path("agent"), &socket);
    assert!(
        issued(&dir).contains("node1.example.org"),
        "the node certificate is recorded"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
            .await
            .unwrap();
        let started = Instant::now();
        let ctx = tokio::time::timeout(Duration::from_secs(30), client.fetch_x509_context())
            .await
            .unwrap()
            .unwrap();
        eprintln!("first X.509 context after {:?}", started.elapsed());
        let svid = ctx.default_svid().unwrap().clone();
        assert_eq!(svid.spiffe_id().to_string(), root_id);
        assert_eq!(
            ctx.svids().len(),
            1,
            "only this uid's entry, never another node's"
        );
        assert_eq!(svid.hint(), Some("internal"));
        // openssl: the chain verifies against the bundle; the key is the leaf's.
        let t = &tmp.0;
        let td = spiffe::TrustDomain::new("example.org").unwrap();
        let bundle = ctx.bundle_set().get(&td).unwrap();
        let pem = |der: &[u8], label: &str| {
            pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap()
        };
        let roots: String = bundle
            .authorities()
            .iter()
            .map(|c| pem(c.as_bytes(), "CERTIFICATE"))
            .collect();
        std::fs::write(t.join("bundle.pem"), roots).unwrap();
        std::fs::write(
            t.join("svid.pem"),
            pem(svid.leaf().as_bytes(), "CERTIFICATE"),
        )
        .unwrap();
        std::fs::write(
            t.join("svid.key"),
            pem(svid.private_key().as_bytes(), "PRIVATE KEY"),
        )
        .unwrap();
        openssl_ok(t, &["verify", "-CAfile", "bundle.pem", "svid.pem"]);
        let text = openssl_ok(t, &["x509", "-in", "svid.pem", "-noout", "-text"]);
        assert!(
            text.contains(&format!("URI:{root_id}")) && text.contains("DNS:root.example.org"),
            "{text}"
        );
        assert_eq!(
            openssl_ok(t, &["x509", "-in", "svid.pem", "-noout", "-pubkey"]),
            openssl_ok(t, &["pkey", "-in", "svid.key", "-pubout"]),
        );
        let serial = svid.leaf().as_bytes().to_vec();

        // The same stream delivers the rotated SVID (TTL 20 s: rotation at about half), while a
        // bundle stream opened before gets nothing more: the rotation leaves the bundle as it
        // was, and identical updates are not resent.
        use wasm_pki_host::agent::workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient as RawClient;
        use wasm_pki_host::agent::workload::proto::X509BundlesRequest;
        let mut bundle_stream = RawClient::new(raw_channel(&socket).await)
            .fetch_x509_bundles(with_header(X509BundlesRequest {}))
            .await
            .unwrap()
            .into_inner();
        let first_bundle = bundle_stream.next().await.unwrap().unwrap();
        assert_eq!(first_bundle.bundles.len(), 1);
        let mut stream = client.stream_x509_svids().await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        let rotated = tokio::time::timeout(Duration::from_secs(40), async {
            loop {
                let s = stream.next().await.unwrap().unwrap();
                if s.leaf().as_bytes() != first.leaf().as_bytes() {
                    return s;
                }
            }
        })
        .await
        .expect("no rotated SVID within 40 s");
        assert_eq!(rotated.spiffe_id().to_string(), root_id);
        assert_ne!(rotated.leaf().as_bytes(), &serial[..]);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), bundle_stream.next())
                .await
                .is_err(),
            "the bundle stream was sent the same bundle again"
        );

        // The bundle stream.
        let bundles = client.fetch_x509_bundles().await.unwrap();
        assert!(bundles.get(&td).is_some());

        // JWT-SVIDs: fetched; verified offline by the spiffe crate (jsonwebtoken) against the
        // JWT bundle the agent serves; validated by the agent; cached per audience set.
        let jwt = client.fetch_jwt_svid(["db", "cache"], None).await.unwrap();
        assert_eq!(jwt.spiffe_id().to_string(), root_id);
        let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
        let offline =
            spiffe::JwtSvid::parse_and_validate(jwt.token(), &jwt_bundles, &["db"]).unwrap();
        assert_eq!(offline.spiffe_id().to_string(), root_id);
        use base64ct::Encoding;
        let payload =
            base64ct::Base64UrlUnpadded::decode_vec(jwt.token().split('.').nth(1).unwrap())
                .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300,
            "the entry's JWT TTL (default 5 min)"
        );
        assert_eq!(
            claims["exp"].as_i64(),
            Some(offline.expiry().unix_timestamp())
        );
        assert_eq!(claims["iss"], ISSUER);
        let validated = client
            .validate_jwt_token("cache", jwt.token())
            .await
            .unwrap();
        assert_eq!(validated.spiffe_id().to_string(), root_id);
        let again = client.fetch_jwt_svid(["cache", "db"], None).await.unwrap();
        assert_eq!(
            again.token(),
            jwt.token(),
            "the same audience set is served from the cache"
        );
        assert!(
            client
                .validate_jwt_token("other", jwt.token())
                .await
                .is_err(),
            "another audience"
        );
        assert!(client.validate_jwt_token("db", "not.a.jwt").await.is_err());
        let mut forged = jwt.token().to_string();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert!(
            client.validate_jwt_token("db", &forged).await.is_err(),
            "a tampered signature"
        );
        let nobody = spiffe::SpiffeId::new("spiffe://example.org/ns/nobody").unwrap();
        assert!(
            client.fetch_jwt_svid(["db"], Some(&nobody)).await.is_err(),
            "a SPIFFE ID the caller does not hold"
        );
        // Latency from a warm agent (figures, not assertions: a debug build on a shared machine):
        // a new stream's first X.509 context, and a cached JWT-SVID.
        let mut x509 = Vec::new();
        let mut jwts = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            client.fetch_x509_context().await.unwrap();
            x509.push(t.elapsed());
            let t = Instant::now();
            client.fetch_jwt_svid(["db", "cache"], None).await.unwrap();
            jwts.push(t.elapsed());
        }
        let pct = |v: &mut Vec<Duration>, p: usize| {
            v.sort();
            v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
        };
        figures(&format!(
            "agent (debug build): FetchX509SVID first response p50 {:.2} ms p99 {:.2} ms; cached FetchJWTSVID p50 {:.2} ms p99 {:.2} ms (200 calls each)",
            pct(&mut x509, 50), pct(&mut x509, 99), pct(&mut jwts, 50), pct(&mut jwts, 99)
        ));
        // OIDC discovery points at the same key.
        let r = http(
            &server.addr,
            "GET",
            "/.well-known/openid-configuration",
            &[],
            b"",
        )
        .unwrap()
        .json();
        assert_eq!(r["issuer"], ISSUER);
        assert_eq!(r["jwks_uri"], format!("{ISSUER}/v1/jwks"));
        assert_eq!(
            r["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        let keys = http(&server.addr, "GET", "/v1/jwks", &[], b"")
            .unwrap()
            .json();
        assert_eq!(keys["keys"][0]["kid"].as_str(), Some(offline.key_id()));
    });

    // Clients as other uids: nobody gets its own SVID; a uid without an entry is refused; the
    // sha256 entry matches the first binary only. (Starting them needs root, as CI runs.)
    if me == 0 {
        assert_eq!(
            as_uid(&client_a, 65534, &endpoint),
            "SPIFFE_ID=spiffe://example.org/ns/nobody"
        );
        // The spiffe crate reads PermissionDenied as "no identity issued".
        let denied = as_uid(&client_a, 65532, &endpoint);
        assert!(denied.contains("NoIdentityIssued"), "{denied}");
        assert_eq!(
            as_uid(&client_a, 65533, &endpoint),
            "SPIFFE_ID=spiffe://example.org/ns/hashed"
        );
        let other_binary = as_uid(&client_b, 65533, &endpoint);
        assert!(other_binary.contains("NoIdentityIssued"), "{other_binary}");
    } else {
        eprintln!("skipped: clients as other uids need root");
    }

    // Raw calls: no security header or another value (InvalidArgument), an oversized audience
    // list and malformed or foreign JWTs (InvalidArgument), a WIT-SVID call (Unimplemented: the
    // standard's newer methods are not served).
    rt.block_on(async {
        use wasm_pki_host::agent::workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
        use wasm_pki_host::agent::workload::proto::{
            JwtsvidRequest, ValidateJwtsvidRequest, X509svidRequest, X509svidResponse,
        };
        let channel = raw_channel(&socket).await;
        let mut raw = SpiffeWorkloadApiClient::new(channel.clone());
        let e = raw.fetch_x509svid(X509svidRequest {}).await.err().unwrap();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        let mut req = tonic::Request::new(X509svidRequest {});
        req.metadata_mut().insert("workload.spiffe.io", "yes".parse().unwrap());
        assert_eq!(raw.fetch_x509svid(req).await.err().unwrap().code(), tonic::Code::InvalidArgument);
        let req = with_header(JwtsvidRequest { audience: vec!["a".into(); 1000], spiffe_id: String::new() });
        assert_eq!(raw.fetch_jwtsvid(req).await.err().unwrap().code(), tonic::Code::InvalidArgument);
        // A well-formed JWT-SVID for this caller's SPIFFE ID, signed by a key the bundle lacks.
        let other_key = wasm_pki::KeyPair::generate(
            wasm_pki::Algorithm::P256,
            &mut wasm_pki::SeedRng::from_seed([9; 32]),
        );
        let other_kid = wasm_pki::JwtAuthority::new(other_key.public_key().clone()).kid;
        let foreign = wasm_pki::sign_jwt_svid(
            &other_key,
            &other_kid,
            &wasm_pki::JwtSvidClaims {
                spiffe_id: wasm_pki::SpiffeId::parse(root_id).unwrap(),
                audience: vec!["db".into()],
                issued_at: authority_now(),
                expires_at: authority_now() + 60,
                issuer: None,
            },
        )
        .unwrap();
        for svid in ["", "a.b", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", &"x".repeat(60_000), &foreign] {
            let e = raw
                .validate_jwtsvid(with_header(ValidateJwtsvidRequest { audience: "db".into(), svid: svid.to_string() }))
                .await
                .err()
                .unwrap_or_else(|| panic!("{svid:.40} validated"));
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{svid:.40}: {e:?}");
        }
        // Past the gRPC message limit (64 KiB): refused by the transport before any parsing.
        let e = raw
            .validate_jwtsvid(with_header(ValidateJwtsvidRequest { audience: "db".into(), svid: "x".repeat(100_000) }))
            .await
            .err()
            .unwrap();
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let e = grpc
            .unary(
                with_header(X509svidRequest {}),
                tonic::codegen::http::uri::PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchWITSVID"),
                tonic_prost::ProstCodec::<X509svidRequest, X509svidResponse>::default(),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    });

    // Signer-side refusals with the node's own certificate: another node's entry, and a CSR
    // with an extra SAN or another SPIFFE ID for its own entry; nothing recorded.
    let node_dir = tmp.path("agent/node");
    let before = issued(&dir).lines().count();
    let other_id = other_entry["id"].as_str().unwrap();
    let root_entry_id = root_entry["id"].as_str().unwrap();
    let key = wasm_pki::KeyPair::generate(
        wasm_pki::Algorithm::P256,
        &mut wasm_pki::SeedRng::from_seed([7; 32]),
    );
    let csr = |names: &[&str]| {
        wasm_pki::CsrRequest {
            subject: wasm_pki::Subject::default(),
            names: names
                .iter()
                .map(|n| wasm_pki::SanName::parse(n).unwrap())
                .collect(),
        }
        .sign(&key)
        .unwrap()
        .to_pem()
    };
    let rows = [
        (
            "another node's entry",
            other_id,
            csr(&["spiffe://example.org/ns/elsewhere"]),
            "forbidden",
        ),
        (
            "an extra SAN",
            root_entry_id,
            csr(&[root_id, "evil.example.org"]),
            "policy",
        ),
        (
            "another SPIFFE ID",
            root_entry_id,
            csr(&["spiffe://example.org/ns/nobody"]),
            "policy",
        ),
        (
            "a second SPIFFE ID",
            root_entry_id,
            csr(&[root_id, "spiffe://example.org/ns/nobody"]),
            "policy",
        ),
    ];
    for (what, id, pem, want) in rows {
        let body = serde_json::json!({"csrs": [{"entryId": id, "csr": pem}]}).to_string();
        let r = mtls(
            &server.addr,
            &node_dir,
            &dir.join("root.pem"),
            "POST",
            "/v1/agent/sign",
            &body,
        );
        assert_eq!(
            r["svids"][0]["error"]["code"].as_str(),
            Some(want),
            "{what}: {r}"
        );
    }
    // JWT-SVIDs: another node's entry or one that does not exist (a `sub` outside the node's
    // entries), a body naming the `sub` itself, no audience.
    for (what, body, want) in [
        (
            "another node's entry",
            serde_json::json!({"entryId": other_id, "audience": ["db"]}),
            "forbidden",
        ),
        (
            "no such entry",
            serde_json::json!({"entryId": "nonexistent", "audience": ["db"]}),
            "forbidden",
        ),
        (
            "a sub of its own",
            serde_json::json!({"entryId": root_entry_id, "audience": ["db"], "sub": "spiffe://example.org/ns/nobody"}),
            "bad_request",
        ),
        (
            "no audience",
            serde_json::json!({"entryId": root_entry_id, "audience": []}),
            "bad_request",
        ),
    ] {
        let r = mtls(
            &server.addr,
            &node_dir,
            &dir.join("root.pem"),
            "POST",
            "/v1/agent/jwt",
            &body.to_string(),
        );
        assert_eq!(r["error"]["code"].as_str(), Some(want), "{what}: {r}");
        assert!(r.get("token").is_none(), "{what}: {r}");
    }
    let r = mtls(
        &server.addr,
        &node_dir,
        &dir.join("root.pem"),
        "GET",
        "/v1/agent/entries",
        "",
    );
    let ids: Vec<&str> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&other_id) && ids.contains(&root_entry_id),
        "{r}"
    );
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "refused CSRs record nothing"
    );

    // 1,000 streams (each on its own connection) that never read: other callers are served at
    // once, and the agent's memory stays bounded (each stream holds at most one message).
    let agent_pid = agent.0.id();
    let rss = || -> u64 {
        std::fs::read_to_string(format!("/proc/{agent_pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rss_before = rss();
    rt.block_on(async {
        use wasm_pki_host::agent::workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
        use wasm_pki_host::agent::workload::proto::X509svidRequest;
        let mut idle = Vec::new();
        for _ in 0..1000 {
            let mut c = SpiffeWorkloadApiClient::new(raw_channel(&socket).await);
            let req = with_header(X509svidRequest {});
            idle.push(c.fetch_x509svid(req).await.unwrap());
        }
        let client = spiffe::WorkloadApiClient::connect_to(&endpoint).await.unwrap();
        let t = Instant::now();
        let svid = tokio::time::timeout(Duration::from_secs(5), client.fetch_x509_svid())
            .await
            .expect("a caller waited behind 1,000 idle streams")
            .unwrap();
        assert_eq!(svid.spiffe_id().to_string(), root_id);
        let with_idle = t.elapsed();
        // Let a rotation push to all of them (TTL 20 s: one within 12 s).
        tokio::time::sleep(Duration::from_secs(12)).await;
        let rss_idle = rss();
        figures(&format!(
            "agent: 1,000 streams that never read: agent RSS {} KiB before, {} KiB with them (after a rotation pushed to all); another caller served in {:.1} ms",
            rss_before, rss_idle, with_idle.as_secs_f64() * 1e3
        ));
        assert!(rss_idle < rss_before + 200 * 1024, "RSS grew from {rss_before} to {rss_idle} KiB");
        drop(idle);
    });

    // The signer down for 30 s while the 20 s SVID runs out: the agent never hands out an
    // expired SVID (a call then waits for a valid one), and catches up by itself when the
    // signer is back on the same address.
    let addr = server.addr.clone();
    let mut server = server;
    server.kill();
    let down = Instant::now();
    let (mut served, mut withheld) = (0, 0);
    rt.block_on(async {
        let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
            .await
            .unwrap();
        while down.elapsed() < Duration::from_secs(30) {
            if let Ok(Ok(svid)) =
                tokio::time::timeout(Duration::from_secs(1), client.fetch_x509_svid()).await
            {
                let not_after = wasm_pki::Certificate::from_der(svid.leaf().as_bytes().to_vec())
                    .unwrap()
                    .not_after();
                assert!(not_after > authority_now(), "an expired SVID was served");
                served += 1;
            } else {
                withheld += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    assert!(served > 0, "the SVID held was served while it was valid");
    assert!(
        withheld > 0,
        "once it expired, calls waited instead of getting it"
    );
    let server = Server::start(
        &dir,
        &["--policy", p, "--public-url", ISSUER, "--listen", &addr],
    );
    rt.block_on(async {
        let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
            .await
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(40), async {
            loop {
                if let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(2), client.fetch_x509_svid()).await
                {
                    return s;
                }
            }
        })
        .await
        .expect("the agent did not recover within 40 s of the signer's return");
        assert_eq!(back.spiffe_id().to_string(), root_id);
    });
    figures(&format!(
        "agent: signer down 30 s: {served} calls served a valid SVID, {withheld} waited once it expired, none got an expired one; recovered after the signer returned"
    ));

    // The node certificate revoked: nothing new for it.
    let node_serial = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(node_dir.join("current/meta.json")).unwrap(),
    )
    .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    cli_ok(&["revoke", "--dir", d, "--serial", &node_serial]);
    let r = mtls(
        &server.addr,
        &node_dir,
        &dir.join("root.pem"),
        "GET",
        "/v1/agent/entries",
        "",
    );
    assert_eq!(r["error"]["code"].as_str(), Some("revoked"), "{r}");
    drop(agent);
    drop(server);
}

/// The agent renews its node certificate by itself (a 24 s node profile) and keeps serving with
/// the new one; the signer refuses a node certificate it has no record of (not_issued_here,
/// nothing signed or recorded) and an expired one (the TLS handshake's certificate_expired).
#[test]
fn the_node_certificate_is_renewed_and_stale_ones_refused() {
    if common::no_module() || std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let (tmp, dir) = new_ca("agent-renew", &[]);
    let policy = tmp.path("policy.toml");
    std::fs::write(
        &policy,
        POLICY.replace(
            "defaultLifetimeSecs = 86400\nmaxLifetimeSecs = 86400",
            "defaultLifetimeSecs = 24\nmaxLifetimeSecs = 24\nbackdateSecs = 1",
        ),
    )
    .unwrap();
    let (d, p) = (dir.to_str().unwrap(), policy.to_str().unwrap());
    let server = Server::start(&dir, &["--policy", p]);
    let token = node_token(d, p, "node9.example.org");
    let id = "spiffe://example.org/ns/renewing";
    let (ok, out, err) = entry(
        &dir,
        &policy,
        &[
            "--node",
            "node9.example.org",
            "--spiffe-id",
            id,
            "--selector",
            &format!("unix:uid:{}", nix_uid()),
        ],
    );
    assert!(ok, "{out}{err}");
    let entry_id = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = tmp.path("agent");
    let (agent, endpoint) = start_agent(&server.base, &dir, &token, &data, &tmp.path("a.sock"));
    let node_dir = data.join("node");
    let generation = || std::fs::canonicalize(node_dir.join("current")).unwrap();
    let first = generation();
    let started = Instant::now();
    while generation() == first {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the node certificate was not renewed within 40 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let second = generation();
    figures(&format!(
        "agent: node certificate (24 s profile) renewed by the agent after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(first_svid_id(&endpoint).await, id);
    });
    let nodes = issued(&dir)
        .lines()
        .filter(|l| l.contains("node9.example.org"))
        .count();
    assert!(nodes >= 2, "both node certificates are recorded: {nodes}");
    drop(agent);

    // A later start reuses the data directory: no enrolment (the token given is not even one),
    // the same node certificate, and SVIDs served again.
    let (agent, endpoint) = start_agent(
        &server.base,
        &dir,
        "not-a-token",
        &data,
        &tmp.path("b.sock"),
    );
    rt.block_on(async {
        assert_eq!(first_svid_id(&endpoint).await, id);
        // The entry deleted while a stream is open: the stream ends with PermissionDenied
        // (the caller has no identity any more), at the agent's next sync.
        use wasm_pki_host::agent::workload::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
        use wasm_pki_host::agent::workload::proto::X509svidRequest;
        let mut stream = SpiffeWorkloadApiClient::new(raw_channel(&tmp.path("b.sock")).await)
            .fetch_x509svid(with_header(X509svidRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stream.next().await.unwrap().unwrap().svids.len(), 1);
        cli_ok(&["entry", "delete", "--dir", dir.to_str().unwrap(), &entry_id]);
        let end = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the stream went on for 20 s after its entry was deleted");
        assert_eq!(end.unwrap().unwrap_err().code(), tonic::Code::PermissionDenied);
    });
    drop(agent);

    // Not in the ledger (its record removed behind the signer's back): nothing signed.
    let serial = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(second.join("meta.json")).unwrap(),
    )
    .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let db = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    assert_eq!(
        db.execute("DELETE FROM certificates WHERE serial = ?1", [&serial])
            .unwrap(),
        1
    );
    drop(db);
    let before = issued(&dir).lines().count();
    let key = wasm_pki::KeyPair::generate(
        wasm_pki::Algorithm::P256,
        &mut wasm_pki::SeedRng::from_seed([5; 32]),
    );
    let csr = wasm_pki::CsrRequest {
        subject: wasm_pki::Subject::default(),
        names: vec![wasm_pki::SanName::parse(id).unwrap()],
    }
    .sign(&key)
    .unwrap()
    .to_pem();
    let body = serde_json::json!({"csrs": [{"entryId": entry_id, "csr": csr}]}).to_string();
    let root = dir.join("root.pem");
    let r = mtls(
        &server.addr,
        &second,
        &root,
        "POST",
        "/v1/agent/sign",
        &body,
    );
    assert_eq!(r["error"]["code"].as_str(), Some("not_issued_here"), "{r}");
    let r = mtls(&server.addr, &second, &root, "GET", "/v1/agent/entries", "");
    assert_eq!(r["error"]["code"].as_str(), Some("not_issued_here"), "{r}");

    // Expired: the first node certificate, once past its notAfter.
    let not_after = wasm_pki::Certificate::parse(&std::fs::read(first.join("cert.pem")).unwrap())
        .unwrap()
        .not_after();
    while authority_now() <= not_after + 1 {
        std::thread::sleep(Duration::from_millis(250));
    }
    // rustls, which reads the server's alert after its own Finished (TLS 1.3).
    let config = tls_client(
        &std::fs::read_to_string(&root).unwrap(),
        Some((
            &std::fs::read_to_string(first.join("cert.pem")).unwrap(),
            &std::fs::read_to_string(first.join("key.pem")).unwrap(),
        )),
    );
    // Only the handshake, then read: the server refuses the certificate in the handshake with
    // an alert and closes, and a request written after it would meet a broken pipe (whose
    // error rustls then reports instead of the alert).
    let said = (|| -> std::io::Result<Vec<u8>> {
        let mut s = connect_with(&server.addr, Some(config))?;
        read_all(&mut *s)
    })();
    let said = format!("{said:?}");
    assert!(said.contains("CertificateExpired"), "{said}");
    assert_eq!(
        issued(&dir).lines().count(),
        before,
        "refused node certificates record nothing"
    );
    drop(server);
}

/// `wasm-pki agent` enrolled with `token` against the signer at `base` (its data in `data`):
/// the process and the endpoint it printed.
fn start_agent(
    base: &str,
    dir: &Path,
    token: &str,
    data: &Path,
    socket: &Path,
) -> (KillOnDrop, String) {
    let mut agent = KillOnDrop(
        Command::new(BIN)
            .args([
                "agent",
                "--server",
                base,
                "--ca-file",
                dir.join("root.pem").to_str().unwrap(),
                "--token",
                token,
                "--data-dir",
                data.to_str().unwrap(),
                "--socket",
                socket.to_str().unwrap(),
                "--sync-interval",
                "2s",
            ])
            .env("WASM_PKI_MODULE", module())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(agent.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("SPIFFE_ENDPOINT_SOCKET=")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert_eq!(endpoint, format!("unix://{}", socket.display()));
    (agent, endpoint)
}

/// The SPIFFE ID of the first X.509-SVID the spiffe crate's client gets at `endpoint`.
async fn first_svid_id(endpoint: &str) -> String {
    let client = spiffe::WorkloadApiClient::connect_to(endpoint)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), client.fetch_x509_svid())
        .await
        .expect("no X.509-SVID within 20 s")
        .unwrap()
        .spiffe_id()
        .to_string()
}

/// A generated Workload API client on the agent's socket, for calls the spiffe crate does not
/// make (no security header, a method the proto lacks).
async fn raw_channel(socket: &Path) -> tonic::transport::Channel {
    let path = socket.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

/// `r` with the Workload API's security header.
fn with_header<T>(r: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(r);
    req.metadata_mut()
        .insert("workload.spiffe.io", "true".parse().unwrap());
    req
}

fn authority_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn nix_uid() -> u32 {
    // The effective uid, from /proc (as the agent reads its callers).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// One request with the node's certificate as the TLS client certificate (curl), its JSON.
fn mtls(
    addr: &str,
    node_dir: &Path,
    root: &Path,
    method: &str,
    path: &str,
    body: &str,
) -> serde_json::Value {
    let mut args = vec![
        "-sS".to_string(),
        "--cacert".into(),
        root.display().to_string(),
        "--cert".into(),
        node_dir.join("cert.pem").display().to_string(),
        "--key".into(),
        node_dir.join("key.pem").display().to_string(),
        "-X".into(),
        method.into(),
        format!("https://{addr}{path}"),
    ];
    if !body.is_empty() {
        args.extend([
            "-H".into(),
            "content-type: application/json".into(),
            "--data-binary".into(),
            body.into(),
        ]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| serde_json::json!({"raw": String::from_utf8_lossy(&out.stdout), "stderr": String::from_utf8_lossy(&out.stderr)}))
}
