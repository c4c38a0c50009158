//! The CA key outside the guest (`--key-store memory`): the host's key store signs only what it
//! has checked. A lying guest (the test build of the module, told how to lie by the `lie` hook)
//! asks for a foreign key, another issuer, CA powers, a longer validity, a reused serial, bytes
//! that are no TBSCertificate, another scheme, a second signature, a signature before any CSR
//! check, hands back a certificate other than the one signed, or a CRL that drops a revocation:
//! every one is refused as `sandbox_violation`, counted, its instance dropped, nothing recorded;
//! the next request, on a fresh instance, is signed honestly and openssl verifies it.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::json;
use wasm_pki::{
    Algorithm, CaParams, CertificateAuthority, CsrRequest, IssueOptions, KeyPair, OffsetDateTime,
    ParsedCsr, Profile, SanName, SeedRng, Subject,
};
use wasm_pki_host::authority::policy::Policy;
use wasm_pki_host::authority::{Authority, DataDir, Pool};
use wasm_pki_host::db::LedgerSpec;
use wasm_pki_host::keys::KeyStoreSpec;
use wasm_pki_host::sandbox::Verifier;

const POLICY: &str = r#"
[profiles.web]
usage = "server"
maxLifetimeSecs = 86400
names = { allow = [{ type = "dns", value = ".example.com" }] }
"#;

fn open(dir: &Path) -> Authority {
    Authority::open(
        dir,
        &std::fs::read(test_module()).unwrap(),
        Policy::parse(POLICY).unwrap(),
        None,
        Pool {
            instances: 1,
            verifier: Verifier::Host,
            key_store: KeyStoreSpec::Memory,
        },
        &[],
        &LedgerSpec::parse(None, Some(dir)).unwrap(),
    )
    .unwrap()
}

fn csr_for(key: &KeyPair, name: &str) -> String {
    CsrRequest {
        subject: Subject::default(),
        names: vec![SanName::dns(name).unwrap()],
    }
    .sign(key)
    .unwrap()
    .to_pem()
}

/// A TBS as `ca` would build it for `csr` under `profile`, a few seconds ahead of the host's
/// clock (inside the request's bounds unless the lie is about time).
fn tbs(ca: &CertificateAuthority, csr: &str, profile: &Profile, lifetime: u64) -> Vec<u8> {
    let identity = profile
        .intermediate
        .is_none()
        .then(|| SanName::dns("a.example.com").unwrap());
    let now = OffsetDateTime::from_unix_timestamp(wasm_pki_host::authority::now() + 5).unwrap();
    let opts = IssueOptions {
        identity,
        lifetime_secs: Some(lifetime),
        ..Default::default()
    };
    let csr = ParsedCsr::parse(csr.as_bytes()).unwrap();
    let mut rng = SeedRng::from_seed(rand_seed());
    ca.issue_unsigned(&csr, profile, &opts, now, &mut rng)
        .unwrap()
        .tbs
        .der
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    seed
}

fn lie(auth: &Authority, how: serde_json::Value) {
    let mut how = how;
    how["op"] = json!("lie");
    let out = auth
        .sandbox
        .call_bytes(how.to_string().as_bytes(), Duration::from_secs(2))
        .unwrap();
    assert_eq!(out, br#"{"ok":null}"#, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_lying_guest_gets_nothing_signed() {
    if missing(&test_module(), "scripts/build-pkg.sh --test-hooks") {
        return;
    }
    let tmp = TempDir::new("keystore-lies");
    let dir = tmp.0.as_path();
    cli_ok(&["init", "--dir", dir.to_str().unwrap()]);
    let auth = open(dir);
    let d = DataDir(dir.to_path_buf());
    let ca = CertificateAuthority::from_pem(
        std::fs::read_to_string(d.ca_cert()).unwrap().as_bytes(),
        std::fs::read_to_string(d.ca_key()).unwrap().as_bytes(),
        None,
    )
    .unwrap();
    let web: Profile = serde_json::from_value(json!({
        "usage": "server", "maxLifetimeSecs": 86400,
        "names": {"allow": [{"type": "dns", "value": ".example.com"}]}
    }))
    .unwrap();
    let long: Profile = serde_json::from_value(json!({
        "usage": "server", "maxLifetimeSecs": 864000,
        "names": {"allow": [{"type": "dns", "value": ".example.com"}]}
    }))
    .unwrap();
    let sub: Profile =
        serde_json::from_value(json!({"intermediate": {"pathLen": 0}, "subjectFrom": "csr"}))
            .unwrap();
    let mut rng = SeedRng::from_seed(rand_seed());
    let leaf = KeyPair::generate(Algorithm::P256, &mut rng);
    let csr = csr_for(&leaf, "a.example.com");
    let foreign_csr = csr_for(
        &KeyPair::generate(Algorithm::P256, &mut rng),
        "a.example.com",
    );
    // The same key asking for a CA certificate (no names, a CN).
    let ca_csr = CsrRequest {
        subject: Subject::common_name("Sub CA"),
        names: Vec::new(),
    }
    .sign(&leaf)
    .unwrap()
    .to_pem();
    let now = OffsetDateTime::from_unix_timestamp(wasm_pki_host::authority::now()).unwrap();
    let other_name =
        CertificateAuthority::new_root(&CaParams::new("Other CA"), now, &mut rng).unwrap();
    let other_ca =
        CertificateAuthority::new_root(&CaParams::new("wasm-pki CA"), now, &mut rng).unwrap();

    let honest = |auth: &Authority| {
        let s = auth
            .sign_as_operator(&csr, "web", Some("a.example.com"))
            .unwrap();
        let pem = tmp.path("leaf.pem");
        std::fs::write(&pem, &s.certificate).unwrap();
        let out = openssl_ok(
            dir,
            &[
                "verify",
                "-CAfile",
                d.root_cert().to_str().unwrap(),
                pem.to_str().unwrap(),
            ],
        );
        assert!(out.contains(": OK"), "{out}");
        s
    };
    let first = honest(&auth);

    // A TBS the guard would pass but for its serial, which the honest one already has.
    let reused = {
        let mut t = tbs(&ca, &csr, &web, 3600);
        let (_, parsed) =
            <x509_parser::certificate::TbsCertificate as x509_parser::prelude::FromDer<_>>::from_der(&t)
                .unwrap();
        let fresh = parsed.raw_serial().to_vec();
        let old = wasm_pki::unhex("serial", &first.serial, 32).unwrap();
        assert_eq!(fresh.len(), old.len());
        let at = t.windows(fresh.len()).position(|w| w == fresh).unwrap();
        t[at..at + old.len()].copy_from_slice(&old);
        t
    };
    let other_answer = json!({"ok": {
        "certificate": first.certificate, "chain": [], "serial": first.serial,
        "subject": "CN=a.example.com", "names": ["DNS:a.example.com"], "notBefore": 0,
        "notAfter": first.not_after, "renewAfter": first.renew_after, "fingerprint": "00"
    }})
    .to_string();
    let hex = wasm_pki::hex;
    // Each lie with the reason the host gives in its log: refused for that, not by accident.
    let lies = [
        (
            "a foreign public key",
            json!({"tbs": hex(&tbs(&ca, &foreign_csr, &web, 3600))}),
            "the public key is not the CSR's",
        ),
        (
            "another issuer",
            json!({"tbs": hex(&tbs(&other_name, &csr, &web, 3600))}),
            "the issuer is not this CA",
        ),
        (
            "another CA of the same name",
            json!({"tbs": hex(&tbs(&other_ca, &csr, &web, 3600))}),
            "the authority key identifier is not this CA's",
        ),
        (
            "CA:true under a leaf profile",
            json!({"tbs": hex(&tbs(&ca, &ca_csr, &sub, 3600))}),
            "CA powers without an intermediate profile",
        ),
        (
            "a validity beyond the profile",
            json!({"tbs": hex(&tbs(&ca, &csr, &long, 5 * 86400))}),
            "the validity is outside the profile's bounds",
        ),
        (
            "a reused serial",
            json!({"tbs": hex(&reused)}),
            "the serial of a certificate already issued",
        ),
        (
            "bytes that are not a TBSCertificate",
            json!({"tbs": "3003020101"}),
            "not a TBSCertificate",
        ),
        (
            "another scheme",
            json!({"scheme": "EdDSA"}),
            "a sign ask for Ed25519",
        ),
        (
            "a second sign ask in one call",
            json!({"askTwice": true}),
            "a second sign ask in one call",
        ),
        (
            "a sign ask before any CSR check",
            json!({"askFirst": true, "tbs": hex(&tbs(&ca, &csr, &web, 3600))}),
            "a sign ask without a CSR signature the host verified",
        ),
        (
            "another certificate as the answer",
            json!({"answer": other_answer}),
            "the certificate is not the one the key store signed",
        ),
    ];
    for (what, how, reason) in lies {
        let before = auth.sandbox.violations.load(Ordering::Relaxed);
        let recorded = auth.certificates().unwrap().len();
        lie(&auth, how);
        let err = auth
            .sign_as_operator(&csr, "web", Some("a.example.com"))
            .expect_err(what);
        assert_eq!(err.code(), "sandbox_violation", "{what}: {err}");
        assert!(format!("{err:?}").contains(reason), "{what}: {err:?}");
        assert!(
            !err.message().contains(reason),
            "{what}: the reason is for the log, not the client: {err}"
        );
        assert_eq!(auth.certificates().unwrap().len(), recorded, "{what}");
        assert_eq!(
            auth.sandbox.violations.load(Ordering::Relaxed),
            before + 1,
            "{what}"
        );
        assert_eq!(auth.sandbox.instances(), 0, "{what}: the instance was kept");
        // A fresh instance has no lie to tell.
        honest(&auth);
    }

    // CRLs: a guest that drops a revocation gets nothing signed; the honest CRL verifies.
    auth.revoke(&first.serial, false, Some(1)).unwrap();
    let empty = ca.crl_unsigned(&[], now, 86_400, 1).unwrap();
    lie(&auth, json!({"tbs": hex(&empty.der)}));
    let err = auth.crl().expect_err("a CRL without the revocation");
    assert_eq!(err.code(), "sandbox_violation", "{err}");
    let crl = auth.crl().unwrap();
    let path = tmp.path("crl.pem");
    std::fs::write(&path, &crl).unwrap();
    let text = openssl_ok(
        dir,
        &[
            "crl",
            "-in",
            path.to_str().unwrap(),
            "-CAfile",
            d.root_cert().to_str().unwrap(),
            "-noout",
            "-text",
        ],
    );
    assert!(
        text.to_uppercase().contains(&first.serial.to_uppercase()),
        "{text}"
    );

    // JWT-SVIDs: the JWT authority's key is the host's too. The honest token passes the spiffe
    // crate's offline validation against the authority's JWK; a guest that asks for another
    // subject, audience, lifetime, key id or header, or answers with another token, gets
    // nothing signed.
    let jwt_authority = auth.jwt_authority.clone().unwrap();
    let audience = vec!["db".to_string()];
    let spiffe_id = "spiffe://example.org/web";
    let honest_jwt = |auth: &Authority| {
        let signed = auth.sign_jwt_svid(spiffe_id, &audience, 300).unwrap();
        let td = spiffe::TrustDomain::new("example.org").unwrap();
        let jwks = json!({"keys": [jwt_authority.to_bundle_jwk()]}).to_string();
        let mut set = spiffe::JwtBundleSet::new();
        set.add_bundle(spiffe::JwtBundle::from_jwt_authorities(td, jwks.as_bytes()).unwrap());
        let svid = spiffe::JwtSvid::parse_and_validate(&signed.token, &set, &["db"]).unwrap();
        assert_eq!(svid.spiffe_id().to_string(), spiffe_id);
        signed
    };
    let honest_token = honest_jwt(&auth);
    let input = |sub: &str, aud: &[&str], lifetime: i64, kid: &str| {
        let now = wasm_pki_host::authority::now();
        let claims = wasm_pki::JwtSvidClaims {
            spiffe_id: wasm_pki::SpiffeId::parse(sub).unwrap(),
            audience: aud.iter().map(|a| a.to_string()).collect(),
            issued_at: now,
            expires_at: now + lifetime,
            issuer: None,
        };
        hex(wasm_pki::jwt_svid_signing_input(kid, &claims)
            .unwrap()
            .as_bytes())
    };
    let kid = jwt_authority.kid.clone();
    let other_token =
        json!({"ok": {"token": honest_token.token, "expiresAt": honest_token.expires_at}})
            .to_string();
    let jwt_lies = [
        (
            "another subject",
            json!({"tbs": input("spiffe://example.org/admin", &["db"], 300, &kid)}),
            "another subject",
        ),
        (
            "another audience",
            json!({"tbs": input(spiffe_id, &["db", "bank"], 300, &kid)}),
            "another audience",
        ),
        (
            "a longer lifetime",
            json!({"tbs": input(spiffe_id, &["db"], 86_400, &kid)}),
            "another lifetime",
        ),
        (
            "another key id",
            json!({"tbs": input(spiffe_id, &["db"], 300, "not-the-kid")}),
            "another alg, typ or kid",
        ),
        (
            "a TBSCertificate instead",
            json!({"tbs": hex(&tbs(&ca, &csr, &web, 3600))}),
            "the JWT-SVID is not the one the host asked for",
        ),
        (
            "another scheme",
            json!({"scheme": "EdDSA"}),
            "the JWT authority's key is ES256",
        ),
        (
            "another token as the answer",
            json!({"answer": other_token}),
            "the JWT-SVID is not the one the key store signed",
        ),
    ];
    for (what, how, reason) in jwt_lies {
        let before = auth.sandbox.violations.load(Ordering::Relaxed);
        lie(&auth, how);
        let err = auth
            .sign_jwt_svid(spiffe_id, &audience, 300)
            .expect_err(what);
        assert_eq!(err.code(), "sandbox_violation", "{what}: {err}");
        assert!(format!("{err:?}").contains(reason), "{what}: {err:?}");
        assert_eq!(
            auth.sandbox.violations.load(Ordering::Relaxed),
            before + 1,
            "{what}"
        );
        assert_eq!(auth.sandbox.instances(), 0, "{what}: the instance was kept");
        honest_jwt(&auth);
    }
}
