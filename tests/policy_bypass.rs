//! Policy bypass suite: requests that must be refused, each with the reason it must give. Every
//! case goes through parsing and issuing exactly as a request from outside would; a control row per
//! profile proves the profile itself issues, so a refusal is about the trick and nothing else.
//! (Token tricks: expired, used, another profile's, are in host/tests/policy_bypass.rs.)

mod common;

use common::*;
use wasm_pki::*;

/// A CSR for `key` made by rcgen (an independent encoder) with whatever `f` asks for.
fn rcgen_csr(key: &KeyPair, f: impl FnOnce(&mut rcgen::CertificateParams)) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    f(&mut params);
    params.serialize_request(key).unwrap().der().to_vec()
}

fn dns(p: &mut rcgen::CertificateParams, name: &str) {
    p.subject_alt_names
        .push(rcgen::SanType::DnsName(name.try_into().unwrap()));
}

fn uri(p: &mut rcgen::CertificateParams, u: &str) {
    p.subject_alt_names
        .push(rcgen::SanType::URI(u.try_into().unwrap()));
}

fn cn(p: &mut rcgen::CertificateParams, v: &str) {
    p.distinguished_name.push(rcgen::DnType::CommonName, v);
}

/// An openssl CSR for ok.example.com with a key of `genpkey` options `alg`.
fn openssl_ok_csr(tmp: &TempDir, tag: &str, alg: &[&str]) -> Vec<u8> {
    let san = ["-addext", "subjectAltName=DNS:ok.example.com"];
    openssl_csr(tmp, tag, alg, "/CN=ok.example.com", &san)
}

struct Case {
    what: &'static str,
    csr: Vec<u8>,
    profile: Profile,
    identity: &'static str,
    lifetime_secs: Option<u64>,
    code: &'static str,
    reason: &'static str,
}

fn identity(s: &str) -> Option<SanName> {
    match s {
        "" => None,
        u if u.starts_with("spiffe://") => Some(SanName::uri(u).unwrap()),
        d => Some(SanName::dns(d).unwrap()),
    }
}

fn issue(ca: &CertificateAuthority, c: &Case) -> Result<Issued> {
    let csr = ParsedCsr::parse(&c.csr)?;
    let opts = IssueOptions {
        identity: identity(c.identity),
        lifetime_secs: c.lifetime_secs,
        ..Default::default()
    };
    ca.issue(&csr, &c.profile, &opts, now(), &mut rng())
}

#[test]
fn requests_that_must_be_refused_are_refused_with_their_reason() {
    let tmp = TempDir::new("bypass");
    let ca =
        CertificateAuthority::new_root(&CaParams::new("Bypass Root"), now(), &mut rng()).unwrap();
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    // Names under example.com may be asked for; the token vouches for ok.example.com.
    let dns_profile = Profile::allowing(vec![NamePattern::dns(".example.com").unwrap()]);
    // The subject is taken from the CSR, names under example.com.
    let csr_subject = ProfileSpec {
        subject_from: SubjectSource::Csr,
        ..dns_profile.to_spec()
    }
    .build()
    .unwrap();
    let svid = Profile::spiffe("example.org", "/ns/prod/").unwrap();
    let id = "ok.example.com";
    let svid_id = "spiffe://example.org/ns/prod/sa/web";
    let plain = |f: &dyn Fn(&mut rcgen::CertificateParams)| {
        rcgen_csr(&key, |p| {
            dns(p, id);
            f(p)
        })
    };
    let svid_csr = |uris: &[&str]| {
        rcgen_csr(&key, |p| {
            for u in uris {
                uri(p, u)
            }
        })
    };
    let case = |what, csr, profile: &Profile, identity, code, reason| Case {
        what,
        csr,
        profile: profile.clone(),
        identity,
        lifetime_secs: None,
        code,
        reason,
    };
    let mut cases = vec![
        // CA powers.
        case(
            "basicConstraints CA:true",
            plain(&|p| p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)),
            &dns_profile,
            id,
            "policy",
            "CA:true",
        ),
        case(
            "pathLen",
            plain(&|p| p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0))),
            &dns_profile,
            id,
            "policy",
            "CA:true",
        ),
        case(
            "keyCertSign",
            plain(&|p| p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign]),
            &dns_profile,
            id,
            "policy",
            "keyCertSign",
        ),
        case(
            "cRLSign",
            plain(&|p| p.key_usages = vec![rcgen::KeyUsagePurpose::CrlSign]),
            &dns_profile,
            id,
            "policy",
            "cRLSign",
        ),
        // Names outside the policy, and tricks with their spelling.
        case(
            "foreign DNS SAN",
            plain(&|p| dns(p, "evil.com")),
            &dns_profile,
            id,
            "policy",
            "DNS:evil.com is not allowed",
        ),
        case(
            "case trick on a foreign name",
            plain(&|p| dns(p, "EVIL.Com")),
            &dns_profile,
            id,
            "policy",
            "DNS:evil.com is not allowed",
        ),
        case(
            "allowed suffix as a prefix (example.com.evil.com)",
            plain(&|p| dns(p, "ok.Example.COM.evil.com")),
            &dns_profile,
            id,
            "policy",
            "DNS:ok.example.com.evil.com is not allowed",
        ),
        case(
            "suffix without a dot (notexample.com)",
            plain(&|p| dns(p, "notexample.com")),
            &dns_profile,
            id,
            "policy",
            "not allowed",
        ),
        case(
            "trailing dot",
            plain(&|p| dns(p, "ok.example.com.")),
            &dns_profile,
            id,
            "invalid_name",
            "trailing dot",
        ),
        case(
            "IDNA look-alike of example.com (xn--exmple-cua.com)",
            plain(&|p| dns(p, "login.xn--exmple-cua.com")),
            &dns_profile,
            id,
            "policy",
            "not allowed",
        ),
        case(
            "IP address in a DNS SAN",
            plain(&|p| dns(p, "10.0.0.1")),
            &dns_profile,
            id,
            "invalid_name",
            "IP address",
        ),
        case(
            "IP SAN outside the policy",
            plain(&|p| {
                p.subject_alt_names
                    .push(rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap()))
            }),
            &dns_profile,
            id,
            "policy",
            "IP:10.0.0.1 is not allowed",
        ),
        case(
            "wildcard where not allowed",
            plain(&|p| dns(p, "*.example.com")),
            &dns_profile,
            id,
            "policy",
            "wildcard",
        ),
        case(
            "wildcard not in the leftmost label",
            plain(&|p| dns(p, "a.*.example.com")),
            &dns_profile,
            id,
            "invalid_name",
            "",
        ),
        case(
            "underscore label",
            plain(&|p| dns(p, "a_b.example.com")),
            &dns_profile,
            id,
            "invalid_name",
            "",
        ),
        case(
            "e-mail SAN with no e-mail rule",
            plain(&|p| {
                p.subject_alt_names.push(rcgen::SanType::Rfc822Name(
                    "root@example.com".try_into().unwrap(),
                ))
            }),
            &dns_profile,
            id,
            "policy",
            "not allowed",
        ),
        case(
            "more names than the profile allows",
            plain(&|p| {
                for i in 0..200 {
                    dns(p, &format!("n{i}.example.com"))
                }
            }),
            &dns_profile,
            id,
            "policy",
            "at most",
        ),
        // SPIFFE IDs.
        case(
            "SPIFFE ID with ..",
            svid_csr(&["spiffe://example.org/ns/prod/../admin"]),
            &svid,
            "",
            "invalid_name",
            "'..' path segments",
        ),
        case(
            "SPIFFE ID with an empty segment",
            svid_csr(&["spiffe://example.org/ns//prod/x"]),
            &svid,
            "",
            "invalid_name",
            "empty path segment",
        ),
        case(
            "SPIFFE ID with a port",
            svid_csr(&["spiffe://example.org:8443/ns/prod/x"]),
            &svid,
            "",
            "invalid_name",
            "a port is not allowed",
        ),
        case(
            "SPIFFE ID with a query",
            svid_csr(&["spiffe://example.org/ns/prod/x?admin=1"]),
            &svid,
            "",
            "invalid_name",
            "a query is not allowed",
        ),
        case(
            "SPIFFE ID with a fragment",
            svid_csr(&["spiffe://example.org/ns/prod/x#frag"]),
            &svid,
            "",
            "invalid_name",
            "a fragment is not allowed",
        ),
        case(
            "SPIFFE ID with user info",
            svid_csr(&["spiffe://admin@example.org/ns/prod/x"]),
            &svid,
            "",
            "invalid_name",
            "user info is not allowed",
        ),
        case(
            "SPIFFE ID in a foreign trust domain",
            svid_csr(&["spiffe://evil.org/ns/prod/x"]),
            &svid,
            "",
            "policy",
            "trust domain evil.org",
        ),
        case(
            "SPIFFE trust domain in upper case",
            svid_csr(&["spiffe://EXAMPLE.org/ns/prod/x"]),
            &svid,
            "",
            "invalid_name",
            "not allowed in the trust domain",
        ),
        case(
            "SPIFFE path outside the prefix (prefix as a string prefix)",
            svid_csr(&["spiffe://example.org/ns/production/x"]),
            &svid,
            "",
            "policy",
            "",
        ),
        case(
            "SPIFFE ID naming the trust domain itself",
            svid_csr(&["spiffe://example.org"]),
            &svid,
            "",
            "policy",
            "",
        ),
        case(
            "two URI SANs in an SVID",
            svid_csr(&[svid_id, "spiffe://example.org/ns/prod/sa/other"]),
            &svid,
            "",
            "policy",
            "exactly one URI SAN",
        ),
        case(
            "a second SPIFFE ID next to the token's",
            svid_csr(&["spiffe://example.org/ns/prod/sa/admin"]),
            &svid,
            svid_id,
            "policy",
            "exactly one URI SAN",
        ),
        case(
            "an SVID with no SPIFFE ID",
            rcgen_csr(&key, |p| dns(p, id)),
            &svid,
            "",
            "policy",
            "",
        ),
        // Subject injection when the subject comes from the CSR.
        case(
            "CSR CN naming a foreign host",
            plain(&|p| cn(p, "evil.com")),
            &csr_subject,
            id,
            "policy",
            "subject CN",
        ),
        case(
            "CSR CN with a wildcard",
            plain(&|p| cn(p, "*.example.com")),
            &csr_subject,
            id,
            "policy",
            "wildcard",
        ),
        case(
            "CSR CN as free text where only names are allowed",
            plain(&|p| cn(p, "Example Root CA")),
            &csr_subject,
            id,
            "policy",
            "free-text",
        ),
        case(
            "CSR CN with a newline and a fake RDN",
            plain(&|p| cn(p, "ok.example.com\nO=Evil")),
            &csr_subject,
            id,
            "invalid_name",
            "",
        ),
        case(
            "CSR CN with a NUL",
            plain(&|p| cn(p, "ok.example.com\0.evil.com")),
            &csr_subject,
            id,
            "invalid_name",
            "",
        ),
        // Key types.
        case(
            "Ed25519 key where the profile wants P-256",
            rcgen_csr(&KeyPair::generate(Algorithm::Ed25519, &mut rng()), |p| {
                dns(p, id)
            }),
            &ProfileSpec {
                key_types: vec![KeyKind::P256],
                ..dns_profile.to_spec()
            }
            .build()
            .unwrap(),
            id,
            "policy",
            "Ed25519 keys are not accepted",
        ),
        case(
            "RSA-1024",
            openssl_ok_csr(
                &tmp,
                "rsa1024",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
            ),
            &dns_profile,
            id,
            "invalid_key",
            "RSA-1024 is too weak",
        ),
        case(
            "RSA-2048 where the profile wants 3072",
            openssl_ok_csr(
                &tmp,
                "rsa2048",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
            &ProfileSpec {
                rsa_min_bits: 3072,
                ..dns_profile.to_spec()
            }
            .build()
            .unwrap(),
            id,
            "policy",
            "at least 3072",
        ),
        case(
            "P-384",
            openssl_ok_csr(
                &tmp,
                "p384",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            ),
            &dns_profile,
            id,
            "unsupported_algorithm",
            "P-384",
        ),
        case(
            "secp256k1",
            openssl_ok_csr(
                &tmp,
                "k256",
                &[
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:secp256k1",
                ],
            ),
            &dns_profile,
            id,
            "unsupported_algorithm",
            "",
        ),
        case(
            "nothing to certify",
            rcgen_csr(&key, |_| {}),
            &dns_profile,
            "",
            "policy",
            "nothing to certify",
        ),
    ];
    let mut long = case(
        "a lifetime beyond the profile's maximum",
        plain(&|_| {}),
        &dns_profile,
        id,
        "policy",
        "allows at most",
    );
    long.lifetime_secs = Some(dns_profile.max_lifetime_secs + 1);
    cases.push(long);

    let mut wrong = Vec::new();
    for c in &cases {
        match issue(&ca, c) {
            Ok(cert) => wrong.push(format!("{}: ISSUED {}", c.what, cert.certificate.to_pem())),
            Err(e) if e.code() != c.code || !e.to_string().contains(c.reason) => {
                wrong.push(format!(
                    "{}: want {} \"{}\", got {} \"{e}\"",
                    c.what,
                    c.code,
                    c.reason,
                    e.code()
                ))
            }
            Err(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // Controls: each profile issues for a plain request, so the refusals above are about the trick.
    let controls = [
        case(
            "control: DNS",
            plain(&|p| dns(p, "b.example.com")),
            &dns_profile,
            id,
            "",
            "",
        ),
        case(
            "control: CSR subject",
            plain(&|p| cn(p, id)),
            &csr_subject,
            id,
            "",
            "",
        ),
        case("control: SVID", svid_csr(&[svid_id]), &svid, "", "", ""),
        case(
            "control: SVID by token",
            svid_csr(&[]),
            &svid,
            svid_id,
            "",
            "",
        ),
    ];
    for c in &controls {
        let cert = issue(&ca, c).unwrap_or_else(|e| panic!("{}: {e}", c.what));
        assert!(!cert.certificate.to_pem().is_empty());
    }

    // The same rows for the npm package's `checkRequest` (tests/node/check.test.mjs), which must
    // agree with `ca.issue` on every one. Most CSRs here are DER, openssl's are PEM.
    let csr_pem = |csr: &[u8]| match std::str::from_utf8(csr) {
        Ok(text) if text.starts_with("-----BEGIN") => text.to_string(),
        _ => {
            use base64ct::{Base64, Encoding};
            let b64 = Base64::encode_string(csr);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|l| std::str::from_utf8(l).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                lines.join("\n")
            )
        }
    };
    let rows: Vec<serde_json::Value> = cases
        .iter()
        .chain(&controls)
        .map(|c| {
            serde_json::json!({
                "what": c.what,
                "csrPem": csr_pem(&c.csr),
                "profile": serde_json::to_value(&c.profile).unwrap(),
                "identity": (!c.identity.is_empty()).then_some(c.identity),
                "lifetimeSecs": c.lifetime_secs,
                "code": c.code,
            })
        })
        .collect();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("policy_bypass.json"),
        serde_json::to_string_pretty(&rows).unwrap(),
    )
    .unwrap();
}

#[test]
fn an_injected_subject_is_ignored_when_the_issuer_decides_it() {
    let ca =
        CertificateAuthority::new_root(&CaParams::new("Subject Root"), now(), &mut rng()).unwrap();
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let csr = rcgen_csr(&key, |p| {
        cn(p, "Subject Root");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Evil Corp");
        dns(p, "ok.example.com");
    });
    let csr = ParsedCsr::parse(&csr).unwrap();
    let opts = IssueOptions {
        identity: Some(SanName::dns("ok.example.com").unwrap()),
        lifetime_secs: None,
        ..Default::default()
    };
    let issued = ca
        .issue(&csr, &Profile::default(), &opts, now(), &mut rng())
        .unwrap();
    assert_eq!(
        issued.subject.common_name.as_deref(),
        Some("ok.example.com")
    );
    assert_eq!(issued.subject.organization, None);
    let text = format!(
        "{:?}",
        inspect(issued.certificate.to_pem().as_bytes()).unwrap()
    );
    assert!(!text.contains("Evil Corp"), "{text}");
}

/// What a renewal row tries: certificate (default: the good one), re-key CSR, profile, lifetime,
/// and the code and reason it must be refused with.
type RenewRow<'a> = (
    &'a str,
    Option<String>,
    Option<String>,
    &'a Profile,
    Option<u64>,
    &'a str,
    &'a str,
);

/// Renewals and re-keys that must be refused, through the guest exactly as the sandbox runs it
/// (the host has already checked the ledger; these are what the certificate and CSR can try).
#[test]
fn renewals_that_must_be_refused_are_refused_with_their_reason() {
    use protocol::{
        decode_reply, encode_request, Guest, LoadCa, RenewRequest, Request, Seed, Signed,
    };
    let ca =
        CertificateAuthority::new_root(&CaParams::new("Renew Root"), now(), &mut rng()).unwrap();
    let other_ca =
        CertificateAuthority::new_root(&CaParams::new("Other Root"), now(), &mut rng()).unwrap();
    let mut guest = Guest::default();
    let load = Request::LoadCa(LoadCa {
        cert_pem: ca.certificate().to_pem(),
        key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
        passphrase: None,
        public_urls: None,
        host_verifies: false,
        jwt_key_pem: None,
        jwt_public_key_pem: None,
    });
    assert!(guest
        .handle(&encode_request(&load).unwrap())
        .starts_with(br#"{"ok""#));
    let profile = Profile::allowing(vec![NamePattern::dns(".example.com").unwrap()]);
    let narrowed = Profile::allowing(vec![NamePattern::dns(".example.org").unwrap()]);
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let id = "ok.example.com";
    let csr = ParsedCsr::parse(&rcgen_csr(&key, |p| dns(p, id))).unwrap();
    let opts = IssueOptions {
        identity: Some(SanName::dns(id).unwrap()),
        lifetime_secs: Some(3600),
        ..Default::default()
    };
    let cert = ca
        .issue(&csr, &profile, &opts, now(), &mut rng())
        .unwrap()
        .certificate;
    let foreign = other_ca
        .issue(&csr, &profile, &opts, now(), &mut rng())
        .unwrap()
        .certificate;
    let new_key = KeyPair::generate(Algorithm::P256, &mut rng());
    let pem = |der: Vec<u8>| {
        pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, &der)
            .unwrap()
    };
    let rekey =
        |f: &dyn Fn(&mut rcgen::CertificateParams)| Some(pem(rcgen_csr(&new_key, |p| f(p))));
    // A certificate whose name a rule allowed (no identity vouched for it).
    let ruled_csr = ParsedCsr::parse(&rcgen_csr(&key, |p| dns(p, "ruled.example.com"))).unwrap();
    let no_identity = IssueOptions {
        identity: None,
        lifetime_secs: Some(3600),
        ..Default::default()
    };
    let ruled = ca
        .issue(&ruled_csr, &profile, &no_identity, now(), &mut rng())
        .unwrap()
        .certificate;
    let renew =
        |cert_pem: String, csr_pem: Option<String>, profile: &Profile, lifetime: Option<u64>| {
            let identity = (cert_pem != ruled.to_pem()).then(|| id.to_string());
            let req = Request::Renew(Box::new(RenewRequest {
                certificate_pem: cert_pem,
                csr_pem,
                profile: profile.clone(),
                identity,
                lifetime_secs: lifetime,
                now: now().unix_timestamp(),
                seed: Seed([9; 32]),
                renew_fraction: None,
            }));
            let mut g = Guest::default();
            assert!(g
                .handle(&encode_request(&load).unwrap())
                .starts_with(br#"{"ok""#));
            decode_reply::<Signed>(&g.handle(&encode_request(&req).unwrap())).unwrap()
        };
    // Controls: the same key, and a new key for the same name, renew.
    let same = renew(cert.to_pem(), None, &profile, None).unwrap();
    assert!(
        same.names == vec![format!("DNS:{id}")] || same.names == vec![id.to_string()],
        "{:?}",
        same.names
    );
    renew(cert.to_pem(), rekey(&|p| dns(p, id)), &profile, None).unwrap();
    renew(ruled.to_pem(), None, &profile, None).unwrap();

    let cases: Vec<RenewRow> = vec![
        (
            "re-key asking for CA:true",
            None,
            rekey(&|p| {
                dns(p, id);
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
            }),
            &profile,
            None,
            "policy",
            "CA",
        ),
        (
            "re-key adding a foreign name",
            None,
            rekey(&|p| {
                dns(p, id);
                dns(p, "evil.com")
            }),
            &profile,
            None,
            "policy",
            "evil.com",
        ),
        (
            "re-key adding an allowed name the certificate lacks",
            None,
            rekey(&|p| {
                dns(p, id);
                dns(p, "more.example.com")
            }),
            &profile,
            None,
            "policy",
            "more.example.com",
        ),
        (
            "re-key with the certificate's own key",
            None,
            Some(pem(rcgen_csr(&key, |p| dns(p, id)))),
            &profile,
            None,
            "policy",
            "new key",
        ),
        (
            "re-key CSR not signed by its key",
            None,
            Some(pem({
                let mut d = rcgen_csr(&new_key, |p| dns(p, id));
                let n = d.len();
                d[n - 5] ^= 1;
                d
            })),
            &profile,
            None,
            "bad_signature",
            "",
        ),
        (
            "a certificate of another CA",
            Some(foreign.to_pem()),
            None,
            &profile,
            None,
            "chain",
            "",
        ),
        (
            "the CA's own certificate",
            Some(ca.certificate().to_pem()),
            None,
            &profile,
            None,
            "policy",
            "CA certificate",
        ),
        (
            "a profile narrowed since",
            Some(ruled.to_pem()),
            None,
            &narrowed,
            None,
            "policy",
            "ruled.example.com",
        ),
        (
            "a lifetime beyond the profile's",
            None,
            None,
            &profile,
            Some(400 * 86_400),
            "policy",
            "lifetime",
        ),
        (
            "not a certificate",
            Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()),
            None,
            &profile,
            None,
            "malformed",
            "",
        ),
    ];
    for (what, cert_pem, csr_pem, profile, lifetime, code, reason) in cases {
        let err = renew(
            cert_pem.unwrap_or_else(|| cert.to_pem()),
            csr_pem,
            profile,
            lifetime,
        )
        .err()
        .unwrap_or_else(|| panic!("{what}: renewed"));
        assert_eq!(err.code, code, "{what}: {}", err.message);
        assert!(err.message.contains(reason), "{what}: {}", err.message);
    }
}

/// A KBS request row: what, method, path, query, body.
type KbsRow<'a> = (
    &'a str,
    &'a str,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
    &'a [u8],
);

/// KBS plugin requests that must not reach issuance, or must not pass as attested: decoded as
/// KBS forwards them (method, path after the backend, query map, body).
#[test]
fn kbs_plugin_requests_that_must_be_refused() {
    use std::collections::BTreeMap;
    use wasm_pki::wire::kbs::{decode, needs_encryption, requires_admin, KbsError};
    let q = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let p = |segs: &[&str]| -> Vec<String> { segs.iter().map(|s| s.to_string()).collect() };
    let csr = "MIIB";
    let good = q(&[
        ("profile", "tee"),
        ("identity", "spiffe://coco.example/pod/p1"),
        ("csr", csr),
    ]);
    assert!(decode("GET", &p(&["sign"]), &good, b"").is_ok(), "control");
    assert!(!requires_admin("GET", &p(&["sign"])) && needs_encryption("GET", &p(&["sign"])));
    let refused: Vec<KbsRow> = vec![
        (
            "admin route reached by a path trick",
            "GET",
            p(&["sign", "..", "tokens"]),
            good.clone(),
            b"",
        ),
        ("upper-case route", "GET", p(&["SIGN"]), good.clone(), b""),
        ("method case", "get", p(&["sign"]), good.clone(), b""),
        (
            "a parameter that picks more",
            "GET",
            p(&["sign"]),
            q(&[
                ("profile", "tee"),
                ("identity", "spiffe://coco.example/pod/p1"),
                ("csr", csr),
                ("names", "evil.com"),
            ]),
            b"",
        ),
        (
            "a wildcard identity",
            "GET",
            p(&["sign"]),
            q(&[
                ("profile", "tee"),
                ("identity", "*.example.com"),
                ("csr", csr),
            ]),
            b"",
        ),
        (
            "an identity with a NUL",
            "GET",
            p(&["sign"]),
            q(&[
                ("profile", "tee"),
                ("identity", "a.example.com\0.evil"),
                ("csr", csr),
            ]),
            b"",
        ),
        (
            "a profile path",
            "GET",
            p(&["sign"]),
            q(&[
                ("profile", "../admin"),
                ("identity", "a.example.com"),
                ("csr", csr),
            ]),
            b"",
        ),
        (
            "an empty identity",
            "GET",
            p(&["sign"]),
            q(&[("profile", "tee"), ("identity", ""), ("csr", csr)]),
            b"",
        ),
        (
            "a token order with extra powers",
            "POST",
            p(&["tokens"]),
            q(&[]),
            br#"{"profile":"web","caTrue":true}"#,
        ),
        (
            "a query on an admin route",
            "POST",
            p(&["revoke"]),
            q(&[("serial", "01")]),
            br#"{"serial":"01"}"#,
        ),
    ];
    for (what, method, path, query, body) in refused {
        let e = decode(method, &path, &query, body).err();
        assert!(e.is_some(), "{what}: decoded");
        assert!(
            !matches!(e, Some(KbsError::MethodNotAllowed { allowed: "POST" }) if method == "GET" && path == ["sign"]),
            "{what}"
        );
    }
    // Which routes are attested is a function of method and path only: admin routes and any
    // unknown path need KBS's admin credential, whatever the body or query says.
    for (method, path) in [
        ("POST", "tokens"),
        ("POST", "revoke"),
        ("GET", "certificates"),
        ("GET", "tokens"),
        ("POST", "sign"),
        ("DELETE", "ca"),
        ("GET", "x"),
        ("GET", ""),
    ] {
        let path = if path.is_empty() { vec![] } else { p(&[path]) };
        assert!(requires_admin(method, &path), "{method} {path:?}");
        assert!(!needs_encryption(method, &path), "{method} {path:?}");
    }
}

/// ACME finalize (the sandbox protocol as the host sends it: `exactNames` = the order's
/// identifiers): a CSR must ask for exactly the order's names, each still allowed by the profile
/// now; the CN, if any, one of them. One control row issues.
#[test]
fn acme_finalize_requests_that_must_be_refused() {
    use wasm_pki::protocol::{Guest, LoadCa, Request, Seed, SignRequest};
    let ca = CertificateAuthority::new_root(&CaParams::new("ACME Bypass Root"), now(), &mut rng())
        .unwrap();
    let mut guest = Guest::default();
    let loaded = guest.handle_request(Request::LoadCa(LoadCa {
        cert_pem: ca.certificate().to_pem(),
        key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
        passphrase: None,
        public_urls: None,
        host_verifies: false,
        jwt_key_pem: None,
        jwt_public_key_pem: None,
    }));
    assert!(String::from_utf8_lossy(&loaded).contains("\"ok\""));
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let web = ProfileSpec {
        names: NameRules {
            allow: vec![NamePattern::dns(".example.com").unwrap()],
            deny: vec![NamePattern::dns("admin.example.com").unwrap()],
            ..NameRules::default()
        },
        ..ProfileSpec::default()
    }
    .build()
    .unwrap();
    let wild = ProfileSpec {
        names: NameRules {
            allow_wildcards: true,
            ..web.to_spec().names
        },
        ..web.to_spec()
    }
    .build()
    .unwrap();
    let order = |names: &[&str]| -> Vec<SanName> {
        names.iter().map(|n| SanName::dns(n).unwrap()).collect()
    };
    let mut sign = |csr: &[u8], profile: &Profile, names: Vec<SanName>| -> serde_json::Value {
        let pem =
            pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, csr)
                .unwrap();
        let reply = guest.handle_request(Request::Sign(Box::new(SignRequest {
            csr_pem: pem,
            profile: profile.clone(),
            identity: None,
            lifetime_secs: None,
            now: now().unix_timestamp(),
            seed: Seed([7; 32]),
            renew_fraction: None,
            extra_names: Vec::new(),
            exact_names: Some(names),
        })));
        serde_json::from_slice(&reply).unwrap()
    };
    let two = rcgen_csr(&key, |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        dns(p, "a.example.com");
        dns(p, "b.example.com");
    });

    // Control: exactly the order's names, in another order, no CN: issued with those names and
    // the first identifier as the CN.
    let ok = sign(&two, &web, order(&["b.example.com", "a.example.com"]));
    assert_eq!(
        ok["ok"]["names"],
        serde_json::json!(["DNS:b.example.com", "DNS:a.example.com"]),
        "{ok}"
    );
    assert_eq!(ok["ok"]["subject"], "CN=b.example.com", "{ok}");

    // (what, CSR, profile, the order's names, the refusal's words)
    type Row<'a> = (&'a str, Vec<u8>, &'a Profile, Vec<SanName>, &'a str);
    let cases: Vec<Row> = vec![
        (
            "a name the order does not have",
            two.clone(),
            &web,
            order(&["a.example.com"]),
            "b.example.com, which is not one of the order's identifiers",
        ),
        (
            "an order name the CSR leaves out",
            rcgen_csr(&key, |p| no_cn_dns(p, "a.example.com")),
            &web,
            order(&["a.example.com", "b.example.com"]),
            "does not ask for DNS:b.example.com",
        ),
        (
            "a CN outside the order",
            rcgen_csr(&key, |p| {
                p.distinguished_name = rcgen::DistinguishedName::new();
                cn(p, "evil.example.com");
                dns(p, "a.example.com");
            }),
            &web,
            order(&["a.example.com"]),
            "CN \"evil.example.com\" is not one of the order's identifiers",
        ),
        (
            "an identifier the profile denies (the policy changed after the order)",
            rcgen_csr(&key, |p| no_cn_dns(p, "admin.example.com")),
            &web,
            order(&["admin.example.com"]),
            "denied by the profile rule",
        ),
        (
            "an identifier outside the profile",
            rcgen_csr(&key, |p| no_cn_dns(p, "db.example.org")),
            &web,
            order(&["db.example.org"]),
            "not allowed by this profile",
        ),
        (
            "a wildcard the profile does not allow",
            rcgen_csr(&key, |p| no_cn_dns(p, "*.example.com")),
            &web,
            order(&["*.example.com"]),
            "wildcard names are not allowed",
        ),
        (
            "CA:true asked for",
            rcgen_csr(&key, |p| {
                p.distinguished_name = rcgen::DistinguishedName::new();
                dns(p, "a.example.com");
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            }),
            &web,
            order(&["a.example.com"]),
            "asks for a CA certificate",
        ),
        (
            "an empty order",
            rcgen_csr(&key, |p| no_cn_dns(p, "a.example.com")),
            &web,
            Vec::new(),
            "an order without names",
        ),
    ];
    for (what, csr, profile, names, reason) in cases {
        let r = sign(&csr, profile, names);
        let err = &r["error"];
        assert_eq!(err["code"], "policy", "{what}: {r}");
        assert!(
            err["message"].as_str().unwrap_or("").contains(reason),
            "{what}: expected \"{reason}\" in {r}"
        );
    }
    // The wildcard profile issues the same wildcard order.
    let w = sign(
        &rcgen_csr(&key, |p| no_cn_dns(p, "*.example.com")),
        &wild,
        order(&["*.example.com"]),
    );
    assert_eq!(
        w["ok"]["names"],
        serde_json::json!(["DNS:*.example.com"]),
        "{w}"
    );
}

/// A SAN `name` and no subject at all (rcgen puts a CN in by default).
fn no_cn_dns(p: &mut rcgen::CertificateParams, name: &str) {
    p.distinguished_name = rcgen::DistinguishedName::new();
    dns(p, name);
}
