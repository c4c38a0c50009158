//! Renewal proofs (src/wire/proof.rs): what the page and `wasm-pki renew --proof` sign verifies, and
//! each way a hostile or stale proof is refused, with its code.

mod common;

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use common::rng;
use wasm_pki::wire::proof;
use wasm_pki::*;

const AUD: &str = "https://ca.example:8443/v1/renew";
const NOW: i64 = 1_800_000_000;

fn issued(alg: Algorithm) -> (KeyPair, Certificate) {
    let mut r = rng();
    let at = OffsetDateTime::from_unix_timestamp(NOW - 100).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Proof Test CA"), at, &mut r).unwrap();
    let (key, csr, opts) = common::dns_request(alg, "node.example", Some(3600));
    let cert = ca
        .issue(&csr, &Profile::default(), &opts, at, &mut r)
        .unwrap()
        .certificate;
    (key, cert)
}

fn auds() -> Vec<String> {
    vec!["https://other.example/v1/renew".into(), AUD.into()]
}

fn code(r: Result<VerifiedProof>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("accepted")
}

/// Build a proof from raw header and claims JSON, signed by `key`.
fn forge(key: &KeyPair, header: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(claims.as_bytes())
    );
    let sig = Base64UrlUnpadded::encode_string(&key.sign_raw(input.as_bytes()));
    format!("{input}.{sig}")
}

fn header(cert: &Certificate, alg: &str) -> String {
    format!(
        r#"{{"alg":"{alg}","typ":"JWT","x5c":["{}"]}}"#,
        Base64::encode_string(cert.der())
    )
}

fn claims(aud: &str, iat: i64, exp: i64, jti: &str) -> String {
    format!(r#"{{"aud":"{aud}","iat":{iat},"exp":{exp},"jti":"{jti}"}}"#)
}

#[test]
fn a_signed_proof_verifies_and_names_its_certificate() {
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let (key, cert) = issued(alg);
        let p = sign_proof(&key, &cert, AUD, NOW, &mut rng()).unwrap();
        let v = verify_proof(&p, &auds(), NOW + 5).unwrap();
        assert_eq!(v.certificate.der(), cert.der());
        assert_eq!(v.jti.len(), 32);
        assert_eq!(
            v.expires_at,
            NOW + proof::PROOF_LIFETIME_SECS + proof::PROOF_LEEWAY_SECS
        );
        // Every proof gets its own id.
        let q = sign_proof(&key, &cert, AUD, NOW, &mut rng()).unwrap();
        assert_ne!(verify_proof(&q, &auds(), NOW).unwrap().jti, v.jti);
    }
}

/// A key outside the core (WebCrypto) signs the signing input; the assembled proof is one the
/// verifier accepts, and a signature that is not the key's over that input is refused at once.
#[test]
fn a_proof_signed_outside_verifies_and_a_wrong_signature_is_refused() {
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let (key, cert) = issued(alg);
        let u = UnsignedProof::new(key.public_key(), &cert, AUD, NOW, &mut rng()).unwrap();
        let sig = key.sign_raw(u.signing_input.as_bytes());
        let p = u.assemble(&sig).unwrap();
        let v = verify_proof(&p, &auds(), NOW + 5).unwrap();
        assert_eq!(v.certificate.der(), cert.der());
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        let other = KeyPair::generate(alg, &mut rng()).sign_raw(u.signing_input.as_bytes());
        for bad in [flipped, other, sig[..63].to_vec(), Vec::new(), vec![0; 72]] {
            assert_eq!(u.assemble(&bad).unwrap_err().code(), "bad_signature");
        }
    }
    let (_, cert) = issued(Algorithm::P256);
    let stranger = KeyPair::generate(Algorithm::P256, &mut rng());
    let e = UnsignedProof::new(stranger.public_key(), &cert, AUD, NOW, &mut rng()).unwrap_err();
    assert_eq!(e.code(), "invalid_parameter");
}

#[test]
fn sign_refuses_a_key_that_is_not_the_certificates() {
    let (_, cert) = issued(Algorithm::P256);
    let other = KeyPair::generate(Algorithm::P256, &mut rng());
    let e = sign_proof(&other, &cert, AUD, NOW, &mut rng()).unwrap_err();
    assert_eq!(e.code(), "invalid_parameter");
}

#[test]
fn a_proof_signed_by_another_key_is_refused() {
    let (_, cert) = issued(Algorithm::P256);
    let thief = KeyPair::generate(Algorithm::P256, &mut rng());
    let p = forge(
        &thief,
        &header(&cert, "ES256"),
        &claims(AUD, NOW, NOW + 60, "a1"),
    );
    assert_eq!(code(verify_proof(&p, &auds(), NOW)), "proof_signature");
    // An alg that does not fit the certificate's key, and "none".
    let (key, cert) = issued(Algorithm::P256);
    for alg in ["EdDSA", "RS256", "none", "HS256", "ES384"] {
        let p = forge(&key, &header(&cert, alg), &claims(AUD, NOW, NOW + 60, "a1"));
        assert_eq!(
            code(verify_proof(&p, &auds(), NOW)),
            "proof_signature",
            "{alg}"
        );
    }
}

#[test]
fn tampering_after_signing_breaks_the_signature() {
    let (key, cert) = issued(Algorithm::Ed25519);
    let p = sign_proof(&key, &cert, AUD, NOW, &mut rng()).unwrap();
    let parts: Vec<&str> = p.split('.').collect();
    let other = Base64UrlUnpadded::encode_string(claims(AUD, NOW, NOW + 300, "x").as_bytes());
    let p2 = format!("{}.{}.{}", parts[0], other, parts[2]);
    assert_eq!(code(verify_proof(&p2, &auds(), NOW)), "proof_signature");
    // The certificate swapped for another one: its key did not sign.
    let (_, cert2) = issued(Algorithm::Ed25519);
    let h = Base64UrlUnpadded::encode_string(header(&cert2, "EdDSA").as_bytes());
    let p3 = format!("{h}.{}.{}", parts[1], parts[2]);
    assert_eq!(code(verify_proof(&p3, &auds(), NOW)), "proof_signature");
}

#[test]
fn lifetime_and_clock_are_checked() {
    let (key, cert) = issued(Algorithm::P256);
    let h = header(&cert, "ES256");
    let at = |iat: i64, exp: i64, now: i64| {
        code(verify_proof(
            &forge(&key, &h, &claims(AUD, iat, exp, "j")),
            &auds(),
            now,
        ))
    };
    assert_eq!(at(NOW, NOW + 300, NOW), "accepted");
    assert_eq!(
        at(NOW, NOW + 301, NOW),
        "proof_expired",
        "longer than 5 minutes"
    );
    assert_eq!(at(NOW, NOW, NOW), "proof_expired", "exp not after iat");
    assert_eq!(
        at(NOW, NOW + 60, NOW + 120),
        "accepted",
        "within the leeway"
    );
    assert_eq!(at(NOW, NOW + 60, NOW + 121), "proof_expired");
    assert_eq!(
        at(NOW + 60, NOW + 120, NOW),
        "accepted",
        "a fast clock, within leeway"
    );
    assert_eq!(
        at(NOW + 61, NOW + 120, NOW),
        "proof_expired",
        "from the future"
    );
    assert_eq!(at(i64::MAX - 10, i64::MAX, NOW), "proof_expired");
    assert_eq!(at(i64::MIN, i64::MIN + 10, NOW), "proof_expired");
    // nbf later than iat counts.
    let c = format!(
        r#"{{"aud":"{AUD}","iat":{NOW},"nbf":{},"exp":{},"jti":"j"}}"#,
        NOW + 200,
        NOW + 250
    );
    assert_eq!(
        code(verify_proof(&forge(&key, &h, &c), &auds(), NOW)),
        "proof_expired"
    );
}

#[test]
fn the_audience_must_be_this_signer() {
    let (key, cert) = issued(Algorithm::P256);
    let p = sign_proof(
        &key,
        &cert,
        "https://evil.example/v1/renew",
        NOW,
        &mut rng(),
    )
    .unwrap();
    assert_eq!(code(verify_proof(&p, &auds(), NOW)), "proof_audience");
    assert_eq!(code(verify_proof(&p, &[], NOW)), "proof_audience");
    let h = header(&cert, "ES256");
    let many = format!(
        r#"{{"aud":["x","{AUD}"],"iat":{NOW},"exp":{},"jti":"j"}}"#,
        NOW + 60
    );
    assert_eq!(
        code(verify_proof(&forge(&key, &h, &many), &auds(), NOW)),
        "accepted"
    );
    let none = format!(r#"{{"aud":[],"iat":{NOW},"exp":{},"jti":"j"}}"#, NOW + 60);
    assert_eq!(
        code(verify_proof(&forge(&key, &h, &none), &auds(), NOW)),
        "proof_audience"
    );
    // A prefix or a case change is another audience.
    let p = sign_proof(&key, &cert, &AUD.to_uppercase(), NOW, &mut rng()).unwrap();
    assert_eq!(code(verify_proof(&p, &auds(), NOW)), "proof_audience");
}

#[test]
fn hostile_proofs_get_clear_refusals() {
    let (key, cert) = issued(Algorithm::P256);
    let h = header(&cert, "ES256");
    let c = claims(AUD, NOW, NOW + 60, "j");
    let good = forge(&key, &h, &c);
    let b = |s: &str| Base64UrlUnpadded::encode_string(s.as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    let x5c = Base64::encode_string(cert.der());
    let big = "A".repeat(proof::MAX_PROOF_BYTES + 1);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "proof_malformed"),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            "proof_malformed",
        ),
        ("four parts", format!("{good}.x"), "proof_malformed"),
        (
            "padding",
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            "proof_malformed",
        ),
        (
            "standard base64",
            good.replace('-', "+").replace('_', "/") + "+",
            "proof_malformed",
        ),
        (
            "header not JSON",
            format!("{}.{}.{}", b("nope"), parts[1], parts[2]),
            "proof_malformed",
        ),
        ("too large", big, "too_large"),
        (
            "empty signature",
            format!("{}.{}.", parts[0], parts[1]),
            "proof_signature",
        ),
    ];
    for (what, p, want) in &cases {
        assert_eq!(code(verify_proof(p, &auds(), NOW)), *want, "{what}");
    }
    let signed: Vec<(&str, String, String, &str)> = vec![
        (
            "unknown header field",
            format!(r#"{{"alg":"ES256","x5c":["{x5c}"],"crit":["exp"]}}"#),
            c.clone(),
            "proof_malformed",
        ),
        (
            "typ not JWT",
            format!(r#"{{"alg":"ES256","typ":"JOSE+JSON","x5c":["{x5c}"]}}"#),
            c.clone(),
            "proof_malformed",
        ),
        (
            "no x5c",
            r#"{"alg":"ES256"}"#.into(),
            c.clone(),
            "proof_malformed",
        ),
        (
            "empty x5c",
            r#"{"alg":"ES256","x5c":[]}"#.into(),
            c.clone(),
            "proof_malformed",
        ),
        (
            "five x5c",
            format!(r#"{{"alg":"ES256","x5c":["{x5c}","{x5c}","{x5c}","{x5c}","{x5c}"]}}"#),
            c.clone(),
            "proof_malformed",
        ),
        (
            "x5c not base64",
            r#"{"alg":"ES256","x5c":["%%%"]}"#.into(),
            c.clone(),
            "proof_malformed",
        ),
        (
            "x5c not a certificate",
            format!(
                r#"{{"alg":"ES256","x5c":["{}"]}}"#,
                Base64::encode_string(b"junk")
            ),
            c.clone(),
            "proof_malformed",
        ),
        (
            "duplicate alg",
            format!(r#"{{"alg":"ES256","alg":"none","x5c":["{x5c}"]}}"#),
            c.clone(),
            "proof_malformed",
        ),
        (
            "unknown claim",
            h.clone(),
            format!(
                r#"{{"aud":"{AUD}","iat":{NOW},"exp":{},"jti":"j","admin":true}}"#,
                NOW + 60
            ),
            "proof_malformed",
        ),
        (
            "no jti",
            h.clone(),
            format!(r#"{{"aud":"{AUD}","iat":{NOW},"exp":{}}}"#, NOW + 60),
            "proof_malformed",
        ),
        (
            "empty jti",
            h.clone(),
            claims(AUD, NOW, NOW + 60, ""),
            "proof_malformed",
        ),
        (
            "long jti",
            h.clone(),
            claims(AUD, NOW, NOW + 60, &"j".repeat(129)),
            "proof_malformed",
        ),
        (
            "no exp",
            h.clone(),
            format!(r#"{{"aud":"{AUD}","iat":{NOW},"jti":"j"}}"#),
            "proof_malformed",
        ),
        (
            "exp as a string",
            h.clone(),
            format!(
                r#"{{"aud":"{AUD}","iat":{NOW},"exp":"{}","jti":"j"}}"#,
                NOW + 60
            ),
            "proof_malformed",
        ),
        (
            "exp as a float",
            h.clone(),
            format!(r#"{{"aud":"{AUD}","iat":{NOW},"exp":1.8e9,"jti":"j"}}"#),
            "proof_malformed",
        ),
        (
            "sub of another serial",
            h.clone(),
            format!(
                r#"{{"aud":"{AUD}","iat":{NOW},"exp":{},"jti":"j","sub":"01"}}"#,
                NOW + 60
            ),
            "proof_malformed",
        ),
        (
            "claims not an object",
            h.clone(),
            "[1,2]".into(),
            "proof_malformed",
        ),
    ];
    for (what, h, c, want) in &signed {
        assert_eq!(
            code(verify_proof(&forge(&key, h, c), &auds(), NOW)),
            *want,
            "{what}"
        );
    }
}
