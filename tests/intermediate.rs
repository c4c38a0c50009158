//! Intermediate profiles: what makes one valid, what it issues (CA:true with the profile's path
//! length, keyCertSign and cRLSign only, the trust domain's ID at most, name constraints), what
//! it refuses, and that the intermediate works: loaded as a CA it issues a leaf that rustls's
//! webpki and openssl chain to the root, and the name constraints bind it.

mod common;

use common::*;
use wasm_pki::*;

fn spec(extra: &str) -> std::result::Result<Profile, String> {
    let json = format!(
        r#"{{"subjectFrom":"csr","subject":{{"organization":"Upstream"}},"spiffe":{{"trustDomain":"example.org"}},"intermediate":{{"pathLen":0,"nameConstraints":{{"permittedDns":["example.org"],"excludedIp":["10.0.0.0/8"]}}}}{extra}}}"#
    );
    serde_json::from_str::<Profile>(&json).map_err(|e| e.to_string())
}

fn csr_for(key: &KeyPair, subject: Subject, names: Vec<SanName>) -> ParsedCsr {
    let csr = CsrRequest { subject, names }.sign(key).unwrap();
    ParsedCsr::parse(csr.der()).unwrap()
}

fn spire_csr(key: &KeyPair) -> ParsedCsr {
    let subject = Subject {
        country: Some("US".into()),
        organization: Some("SPIFFE".into()),
        ..Default::default()
    };
    csr_for(
        key,
        subject,
        vec![SanName::uri("spiffe://example.org").unwrap()],
    )
}

#[test]
fn an_intermediate_profile_is_valid_by_construction() {
    assert!(spec("").is_ok());
    for (what, json) in [
        ("acceptCsr", r#"{"acceptCsr":true,"intermediate":{}}"#),
        (
            "host names",
            r#"{"subject":{"commonName":"x"},"names":{"allow":[{"type":"dns","value":".example.com"}]},"intermediate":{}}"#,
        ),
        (
            "a path prefix",
            r#"{"subject":{"commonName":"x"},"spiffe":{"trustDomain":"td","pathPrefix":"/ns"},"intermediate":{}}"#,
        ),
        ("no subject", r#"{"intermediate":{}}"#),
        (
            "a wildcard subtree",
            r#"{"subject":{"commonName":"x"},"intermediate":{"nameConstraints":{"permittedDns":["*.example.com"]}}}"#,
        ),
        (
            "a bad subtree",
            r#"{"subject":{"commonName":"x"},"intermediate":{"nameConstraints":{"permittedDns":["exa mple.com"]}}}"#,
        ),
        (
            "a bad block",
            r#"{"subject":{"commonName":"x"},"intermediate":{"nameConstraints":{"permittedIp":["10.0.0.0/33"]}}}"#,
        ),
        (
            "a typo",
            r#"{"subject":{"commonName":"x"},"intermediate":{"pathlen":1}}"#,
        ),
        (
            "a path length past u8",
            r#"{"subject":{"commonName":"x"},"intermediate":{"pathLen":256}}"#,
        ),
    ] {
        assert!(
            serde_json::from_str::<Profile>(json).is_err(),
            "{what} accepted"
        );
    }
}

#[test]
fn it_issues_a_constrained_ca_that_works_and_refuses_what_is_wider() {
    let t = TempDir::new("intermediate");
    let root = CertificateAuthority::new_root(&CaParams::new("Root"), now(), &mut rng()).unwrap();
    let profile = spec("").unwrap();
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let opts = IssueOptions {
        lifetime_secs: Some(3600),
        extra_names: vec![SanName::uri("spiffe://example.org").unwrap()],
        ..Default::default()
    };
    let issued = root
        .issue(&spire_csr(&key), &profile, &opts, now(), &mut rng())
        .unwrap();
    t.write("root.pem", root.certificate().to_pem());
    t.write("int.pem", issued.certificate.to_pem());
    let text = openssl_ok(&t.0, &["x509", "-in", "int.pem", "-noout", "-text"]);
    for want in [
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "URI:spiffe://example.org\n",
        "DNS:example.org",
        "IP:10.0.0.0/255.0.0.0",
        "C = US, O = Upstream",
        "Authority Key Identifier",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(!text.contains("Extended Key Usage") && !text.contains("Digital Signature"));
    openssl_ok(
        &t.0,
        &["verify", "-x509_strict", "-CAfile", "root.pem", "int.pem"],
    );

    // Loaded as a CA, the intermediate issues a leaf; webpki and openssl chain it to the root.
    let int = CertificateAuthority::load(
        issued.certificate.clone(),
        key,
        vec![root.certificate().clone()],
    )
    .unwrap();
    let (_k, leaf_csr, leaf_opts) = dns_request(Algorithm::P256, "svc.example.org", None);
    let leaf = int
        .issue(
            &leaf_csr,
            &Profile::allowing(vec![NamePattern::dns(".example.org").unwrap()]),
            &leaf_opts,
            now(),
            &mut rng(),
        )
        .unwrap();
    t.write("leaf.pem", leaf.certificate.to_pem());
    openssl_ok(
        &t.0,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "leaf.pem",
        ],
    );
    assert!(webpki(
        &root,
        &issued.certificate,
        &leaf.certificate,
        "svc.example.org"
    )
    .is_ok());
    // Outside the constraints: the intermediate signs it, no verifier accepts it.
    let (_k, out_csr, out_opts) = dns_request(Algorithm::P256, "evil.example.com", None);
    let outside = int
        .issue(
            &out_csr,
            &Profile::allowing(vec![NamePattern::dns(".example.com").unwrap()]),
            &out_opts,
            now(),
            &mut rng(),
        )
        .unwrap();
    t.write("out.pem", outside.certificate.to_pem());
    assert!(
        !openssl(
            &t.0,
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "int.pem",
                "out.pem"
            ]
        )
        .ok,
        "a name outside the constraints verified"
    );
    let e = webpki(
        &root,
        &issued.certificate,
        &outside.certificate,
        "evil.example.com",
    )
    .unwrap_err();
    assert!(e.contains("NameConstraint"), "{e}");
    // Path length 0: the intermediate cannot mint another intermediate.
    let e = int
        .issue(
            &spire_csr(&KeyPair::generate(Algorithm::P256, &mut rng())),
            &profile,
            &opts,
            now(),
            &mut rng(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("path length 0"), "{e}");

    // Refusals under the root: names, a longer requested path, a lifetime past the profile.
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let refused = |csr: &ParsedCsr, opts: &IssueOptions| {
        root.issue(csr, &profile, opts, now(), &mut rng())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    for (what, names) in [
        (
            "a DNS name",
            vec![SanName::dns("spire.example.org").unwrap()],
        ),
        (
            "a workload ID",
            vec![SanName::uri("spiffe://example.org/w").unwrap()],
        ),
        (
            "another domain",
            vec![SanName::uri("spiffe://other.org").unwrap()],
        ),
        ("an address", vec![SanName::Ip("10.0.0.1".parse().unwrap())]),
    ] {
        let csr = csr_for(&key, Subject::common_name("x"), names.clone());
        let m = refused(&csr, &IssueOptions::default());
        assert!(m.contains("carries no name but"), "{what}: {m}");
        let m = refused(
            &spire_csr(&key),
            &IssueOptions {
                extra_names: names,
                ..Default::default()
            },
        );
        assert!(
            m.contains("carries no name but"),
            "{what} asked outside the CSR: {m}"
        );
    }
    let long = IssueOptions {
        lifetime_secs: Some(profile.max_lifetime_secs + 1),
        ..Default::default()
    };
    assert!(refused(&spire_csr(&key), &long).contains("at most"));
    let deeper = csr_with_path_len(3);
    assert!(refused(&deeper, &IssueOptions::default()).contains("path length 3"));
    // An identity that is not the trust domain is refused too.
    let as_host = IssueOptions {
        identity: Some(SanName::dns("spire.example.org").unwrap()),
        ..Default::default()
    };
    assert!(refused(&spire_csr(&key), &as_host).contains("carries no name"));
}

#[test]
fn a_ca_with_a_path_length_bounds_the_profiles_under_it() {
    let mut p = CaParams::new("Root");
    p.path_len = Some(1);
    let root = CertificateAuthority::new_root(&p, now(), &mut rng()).unwrap();
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let one = spec("").unwrap();
    assert!(root
        .issue(
            &spire_csr(&key),
            &one,
            &IssueOptions::default(),
            now(),
            &mut rng()
        )
        .is_ok());
    let mut s = one.to_spec();
    s.intermediate.as_mut().unwrap().path_len = 1;
    let two = s.build().unwrap();
    let e = root
        .issue(
            &spire_csr(&key),
            &two,
            &IssueOptions::default(),
            now(),
            &mut rng(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("allows at most 0"), "{e}");
}

/// A CSR that asks for basicConstraints CA:true with `path_len`, made by openssl.
fn csr_with_path_len(path_len: u32) -> ParsedCsr {
    let t = TempDir::new("pathlen");
    let pem = openssl_csr(
        &t,
        "p",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/O=SPIFFE",
        &[
            "-addext",
            &format!("basicConstraints=critical,CA:TRUE,pathlen:{path_len}"),
            "-addext",
            "subjectAltName=URI:spiffe://example.org",
        ],
    );
    ParsedCsr::parse(&pem).unwrap()
}

/// rustls's webpki verifies `leaf` for `name` through `int` to `root`.
fn webpki(
    root: &CertificateAuthority,
    int: &Certificate,
    leaf: &Certificate,
    name: &str,
) -> std::result::Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(root.certificate().der().to_vec()))
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.der().to_vec()),
            &[CertificateDer::from(int.der().to_vec())],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}
