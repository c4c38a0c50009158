//! Bodies of the fuzz targets. `cargo +nightly fuzz` drives them (scripts/fuzz.sh), and the core's
//! `tests/fuzz_regressions.rs` replays the checked-in corpus and every past crash through them.
//! Each body panics only when an invariant breaks; errors are the expected answer to bad input.

use std::sync::LazyLock;
use wasm_pki::wire::{kbs, vault};
use wasm_pki::*;

/// CSR parse + signature verification, then the description and a policy decision.
pub fn csr(data: &[u8]) {
    if let Ok(csr) = ParsedCsr::parse(data) {
        let _ = inspect::describe_csr(&csr);
        let _ = Profile::accept_csr().decide(&csr, &IssueOptions::default());
    }
}

/// Private and public key import: PEM (plain and encrypted PKCS#8), DER, SPKI.
pub fn key_import(data: &[u8]) {
    for pass in [None, Some(&b"fuzz"[..])] {
        if let Ok(key) = KeyPair::from_pem(data, pass) {
            // Whatever imports must export and import again to the same public key.
            let again = KeyPair::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
            assert_eq!(again.public_key().spki_der(), key.public_key().spki_der());
        }
    }
    let _ = KeyPair::from_pkcs8_der(data);
    let _ = KeyPair::from_encrypted_pkcs8_der(data, b"fuzz");
    let _ = PublicKey::from_spki(data);
}

/// A guest (the sandbox's request handler, as the module runs it) with a CA loaded.
static GUEST: LazyLock<std::sync::Mutex<protocol::Guest>> = LazyLock::new(|| {
    let mut rng = SeedRng::from_seed([3; 32]);
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Fuzz CA"), now, &mut rng).unwrap();
    let req = protocol::Request::LoadCa(protocol::LoadCa {
        cert_pem: ca.certificate().to_pem(),
        key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
        passphrase: None,
        public_urls: None,
        // The resumable path (verify ask, verdict); the csr target covers verifying in wasm.
        host_verifies: true,
        jwt_key_pem: None,
        jwt_public_key_pem: None,
    });
    let mut guest = protocol::Guest::default();
    let out = guest.handle(&protocol::encode_request(&req).unwrap());
    assert!(
        out.starts_with(br#"{"ok""#),
        "{}",
        String::from_utf8_lossy(&out)
    );
    std::sync::Mutex::new(guest)
});

/// The sandbox's request decoder and every operation behind it, with a CA loaded.
pub fn sandbox_request(data: &[u8]) {
    let mut guest = GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = guest.handle(data);
    if let Some(ask) = protocol::VerifyAsk::from_reply(&out) {
        // A verify ask is well formed; either verdict then ends the request.
        let check = ask.expect("the guest's signature check decodes");
        let verdict = protocol::Request::Verified(protocol::Verdict {
            valid: check.signature.len() == 64 && data.len().is_multiple_of(2),
        });
        out = guest.handle(&protocol::encode_request(&verdict).unwrap());
    }
    drop(guest);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("the response is JSON");
    let obj = v.as_object().expect("the response is an object");
    assert_eq!(obj.len(), 1, "{v}");
    assert!(obj.contains_key("ok") || obj.contains_key("error"), "{v}");
}

static KEY: LazyLock<KeyPair> =
    LazyLock::new(|| KeyPair::generate(Algorithm::Ed25519, &mut SeedRng::from_seed([5; 32])));

fn san(s: &str) -> Option<SanName> {
    if let Ok(ip) = s.parse() {
        return Some(SanName::Ip(ip));
    }
    if s.contains(':') {
        SanName::uri(s).ok()
    } else if s.contains('@') {
        SanName::email(s).ok()
    } else {
        SanName::dns(s).ok()
    }
}

/// The policy check: a profile (JSON), a caller identity and the names and CN a CSR asks for.
/// Input: `{"profile": {...}, "identity": "...", "names": ["..."], "cn": "...", "lifetime": N}`.
pub fn policy(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(profile) = serde_json::from_value::<Profile>(v["profile"].clone()) else {
        return;
    };
    let names: Vec<SanName> = v["names"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().and_then(san)).collect())
        .unwrap_or_default();
    let subject = match v["cn"].as_str() {
        Some(cn) => Subject::common_name(cn),
        None => Subject::default(),
    };
    let Ok(csr) = (CsrRequest { subject, names }).sign(&KEY) else {
        return;
    };
    let csr = ParsedCsr::parse(csr.der()).expect("our own CSR parses");
    let identity = v["identity"].as_str().and_then(san);
    let opts = IssueOptions {
        identity: identity.clone(),
        lifetime_secs: v["lifetime"].as_u64(),
        ..Default::default()
    };
    let Ok(d) = profile.decide(&csr, &opts) else {
        return;
    };
    assert!(d.lifetime_secs > 0 && d.lifetime_secs <= profile.max_lifetime_secs);
    assert!(d.names.len() <= profile.names.max_names);
    for n in d.names.iter().filter(|n| Some(*n) != identity.as_ref()) {
        assert!(
            !profile.names.deny.iter().any(|p| p.matches(n, true)),
            "denied name {n} issued"
        );
        if let SanName::Dns(dns) = n {
            assert!(
                profile.names.allow_wildcards || !dns.starts_with("*."),
                "wildcard {n} issued"
            );
        }
    }
    if profile.spiffe.is_some() {
        let uris = d.names.iter().filter(|n| matches!(n, SanName::Uri(_)));
        assert_eq!(uris.count(), 1, "an SVID with other than one URI");
    }
}

/// A certificate of the fuzz CA and its key, for renewal proofs.
static PROOF_CERT: LazyLock<(KeyPair, Certificate, CertificateAuthority)> = LazyLock::new(|| {
    let mut rng = SeedRng::from_seed([5; 32]);
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Proof CA"), now, &mut rng).unwrap();
    let key = KeyPair::generate(Algorithm::P256, &mut rng);
    let name = SanName::dns("node.example").unwrap();
    let csr = CsrRequest {
        subject: Subject::default(),
        names: vec![name.clone()],
    }
    .sign(&key)
    .unwrap();
    let csr = ParsedCsr::parse(csr.der()).unwrap();
    let opts = IssueOptions {
        identity: Some(name),
        lifetime_secs: Some(3600),
        ..Default::default()
    };
    let issued = ca
        .issue(&csr, &Profile::default(), &opts, now, &mut rng)
        .unwrap();
    (key, issued.certificate, ca)
});

/// The renewal-proof verifier: the input as a whole proof, and as the claims of a proof signed by a
/// real certificate's key (so the fuzzer reaches the claim checks behind the signature).
pub fn proof(data: &[u8]) {
    let aud = vec!["https://ca.example/v1/renew".to_string()];
    let at = 1_790_000_010;
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = verify_proof(text, &aud, at) {
            assert!(!p.jti.is_empty() && p.jti.len() <= 128);
        }
    }
    let (key, cert, _) = &*PROOF_CERT;
    use base64ct::{Base64, Base64UrlUnpadded, Encoding};
    let header = format!(
        r#"{{"alg":"ES256","x5c":["{}"]}}"#,
        Base64::encode_string(cert.der())
    );
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(data)
    );
    let sig = Base64UrlUnpadded::encode_string(&key.sign_raw(input.as_bytes()));
    if let Ok(p) = verify_proof(&format!("{input}.{sig}"), &aud, at) {
        // Accepted claims were really checked: the certificate is the signer's.
        assert_eq!(p.certificate.der(), cert.der());
        assert!(p.expires_at >= at);
    }
}

/// A JWT authority's key, for JWT-SVIDs.
static JWT_KEY: LazyLock<(KeyPair, JwtAuthority)> = LazyLock::new(|| {
    let key = KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([11; 32]));
    let auth = JwtAuthority::new(key.public_key().clone());
    (key, auth)
});

/// The JWT-SVID validator: the input as a whole token, as the claims of a token signed by the
/// authority (so the fuzzer reaches the claim checks behind the signature), and as a bundle's
/// JWK. What validates was really checked: the audience, the expiry, a SPIFFE ID.
pub fn jwt_svid(data: &[u8]) {
    let (key, auth) = &*JWT_KEY;
    let auths = std::slice::from_ref(auth);
    let at = 1_790_000_010;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = validate_jwt_svid(text, auths, "db", at);
    }
    use base64ct::{Base64UrlUnpadded, Encoding};
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, auth.kid);
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(data)
    );
    let sig = Base64UrlUnpadded::encode_string(&key.sign_raw(input.as_bytes()));
    if let Ok(v) = validate_jwt_svid(&format!("{input}.{sig}"), auths, "db", at) {
        assert!(v.claims.audience.iter().any(|a| a == "db"));
        assert!(v.claims.expires_at > at);
        assert!(v.claims.spiffe_id.to_string().starts_with("spiffe://"));
    }
    if let Ok(jwk) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = JwtAuthority::from_jwk(&jwk);
    }
}

/// The KBS plugin's request decoder: the input is `METHOD\nseg/seg\nk=v&k=v\nbody`, as KBS would
/// forward it. Whatever decodes, the admin and encryption answers agree with the route.
pub fn kbs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let method = parts.next().unwrap_or_default();
    let path: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let query: std::collections::BTreeMap<String, String> = parts
        .next()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = parts.next().unwrap_or_default().as_bytes();
    let admin = kbs::requires_admin(method, &path);
    assert_eq!(kbs::needs_encryption(method, &path), !admin);
    match kbs::decode(method, &path, &query, body) {
        Ok(kbs::KbsRequest::Sign { identity, .. }) => {
            assert!(!admin, "sign must be an attested route");
            assert_eq!(method, "GET");
            assert_eq!(SanName::parse(&identity.value()).as_ref(), Ok(&identity));
        }
        Ok(kbs::KbsRequest::Ca) | Ok(kbs::KbsRequest::Bundle) => assert!(!admin),
        Ok(_) => assert!(admin, "an admin route decoded without the admin credential"),
        Err(_) => {}
    }
}

/// The Vault API's body decoder: the first byte picks the endpoint (and the intermediate path
/// length), the rest is the body. Whatever decodes carries a CSR, and names that are their own
/// normal form; a lifetime is never zero.
pub fn vault(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let endpoint = match pick % 3 {
        0 => vault::Endpoint::Sign,
        n => vault::Endpoint::SignIntermediate { path_len: n - 1 },
    };
    if let Ok(r) = vault::decode(body, endpoint) {
        assert!(!r.csr.trim().is_empty());
        assert_ne!(r.lifetime_secs, Some(0));
        for n in &r.extra_names {
            let again = match n {
                SanName::Dns(d) => SanName::dns(d),
                SanName::Email(e) => SanName::email(e),
                SanName::Uri(u) => SanName::uri(u),
                SanName::Ip(ip) => Ok(SanName::Ip(*ip)),
            };
            assert_eq!(again.as_ref(), Ok(n), "{n}");
        }
    }
}

/// The signer's node-agent API bodies (`POST /v1/agent/sign`, `POST /v1/agent/jwt`): whatever
/// decodes holds within its limits and encodes back to itself, and each CSR of a batch goes
/// through the CSR parser as the authority would give it.
pub fn agent_bodies(data: &[u8]) {
    use wasm_pki::wire::agent::{JwtAsk, SignBatch, MAX_BATCH};
    if let Ok(batch) = SignBatch::decode(data) {
        assert!((1..=MAX_BATCH).contains(&batch.csrs.len()));
        let again = SignBatch::decode(&serde_json::to_vec(&batch).unwrap()).unwrap();
        assert_eq!(again, batch);
        for c in &batch.csrs {
            let _ = ParsedCsr::parse(c.csr.as_bytes());
        }
    }
    if let Ok(ask) = JwtAsk::decode(data) {
        assert!(!ask.audience.is_empty() && !ask.entry_id.is_empty());
        let again = JwtAsk::decode(&serde_json::to_vec(&ask).unwrap()).unwrap();
        assert_eq!(again, ask);
    }
}

/// ACME requests (`src/wire/acme/`): the flattened JWS envelope, its account key and signature
/// pieces, a key change's inner JWS, an external account binding, and every payload decoder.
/// Whatever decodes keeps the envelope's rules: exactly one of `jwk` and `kid`, a bounded url,
/// POST-as-GET only for an empty payload, and an account key whose thumbprint is stable.
pub fn acme(data: &[u8]) {
    use wasm_pki::wire::acme::*;
    if let Ok(jws) = AcmeJws::decode(data) {
        assert!(jws.jwk().is_some() != jws.kid().is_some());
        assert!(jws.url().len() <= jws::MAX_URL_BYTES);
        assert_eq!(jws.is_post_as_get(), jws.payload().is_empty());
        if let Some(key) = jws.jwk() {
            let again =
                AccountKey::from_jwk(&serde_json::from_str(key.canonical_jwk()).unwrap()).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            let _ = jws.signature_check();
            let _ = jws.verify_in_core(key);
        }
        let _ = KeyChange::decode(&jws);
        if let Ok(account) = jws.payload_as::<NewAccount>() {
            if let Some(eab) = &account.external_account_binding {
                if let Ok(b) = ExternalAccountBinding::decode(eab, &jws) {
                    let _ = b.verify(b"fuzz-hmac-key-0123456789abcdef");
                }
            }
        }
    }
    let _ = NewAccount::decode(data);
    let _ = AccountUpdate::decode(data);
    if let Ok(order) = NewOrder::decode(data) {
        assert!(!order.identifiers.is_empty());
    }
    if let Ok(f) = Finalize::decode(data) {
        let _ = f.parse_csr();
    }
    let _ = RevokeCert::decode(data);
    let _ = ChallengeResponse::decode(data);
}
