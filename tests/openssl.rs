//! What the core emits, checked by the openssl CLI; what openssl emits, accepted by the core.

mod common;

use common::{now, openssl, openssl_csr, openssl_ok, rng, TempDir};
use wasm_pki::*;

fn ca_pair(alg: Algorithm) -> (CertificateAuthority, CertificateAuthority) {
    let mut r = rng();
    let mut p = CaParams::new(&format!("Test Root {alg}"));
    p.algorithm = alg;
    p.subject.organization = Some("wasm-pki tests".into());
    p.subject.country = Some("DE".into());
    let root = CertificateAuthority::new_root(&p, now(), &mut r).unwrap();
    let mut ip = CaParams::new(&format!("Test Intermediate {alg}"));
    ip.algorithm = alg;
    ip.path_len = Some(0);
    ip.validity_secs = 365 * 86_400;
    let int = root.new_intermediate(&ip, now(), &mut r).unwrap();
    (root, int)
}

fn csr_for(alg: Algorithm, req: &CsrRequest) -> (KeyPair, ParsedCsr) {
    let key = KeyPair::generate(alg, &mut rng());
    let csr = req.sign(&key).unwrap();
    (key, ParsedCsr::parse(csr.to_pem().as_bytes()).unwrap())
}

#[test]
fn openssl_verifies_our_csrs() {
    let dir = TempDir::new("csr");
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let key = KeyPair::generate(alg, &mut rng());
        let req = CsrRequest {
            subject: Subject {
                common_name: Some("workload.example.com".into()),
                organization: Some("Ünïcode Org".into()),
                organizational_unit: Some("ops".into()),
                country: Some("FR".into()),
                ..Default::default()
            },
            names: vec![
                SanName::dns("workload.example.com").unwrap(),
                SanName::Ip("192.0.2.10".parse().unwrap()),
                SanName::Ip("2001:db8::1".parse().unwrap()),
                SanName::uri("spiffe://example.org/ns/prod/sa/web").unwrap(),
                SanName::email("ops@example.com").unwrap(),
            ],
        };
        let csr = req.sign(&key).unwrap();
        let path = dir.write("req.pem", csr.to_pem());
        let out = openssl_ok(
            &dir.0,
            &[
                "req",
                "-in",
                path.to_str().unwrap(),
                "-verify",
                "-noout",
                "-text",
            ],
        );
        assert!(
            out.contains("verify OK")
                || out.contains("Certificate request self-signature verify OK"),
            "{out}"
        );
        for needle in [
            "CN = workload.example.com",
            "DNS:workload.example.com",
            "IP Address:192.0.2.10",
            "IP Address:2001:DB8:0:0:0:0:0:1",
            "URI:spiffe://example.org/ns/prod/sa/web",
            "email:ops@example.com",
        ] {
            assert!(out.contains(needle), "{alg}: missing {needle} in\n{out}");
        }
        // The public key openssl extracts from the CSR is ours.
        let pubkey = openssl_ok(&dir.0, &["req", "-in", "req.pem", "-pubkey", "-noout"]);
        assert_eq!(
            PublicKey::from_spki(pubkey.trim().as_bytes())
                .unwrap()
                .spki_der(),
            key.public_key().spki_der()
        );
    }
}

/// A key outside the core (WebCrypto in the page) signs the CertificationRequestInfo: the CSR is
/// byte for byte the one the core signs itself (RFC 6979 and Ed25519 are deterministic), openssl
/// verifies it, and a signature that is not the key's is refused when assembling.
#[test]
fn a_csr_signed_outside_is_the_same_csr_and_openssl_verifies_it() {
    let dir = TempDir::new("csr-outside");
    let req = CsrRequest {
        subject: Subject {
            common_name: Some("outside.example.com".into()),
            ..Default::default()
        },
        names: vec![SanName::dns("outside.example.com").unwrap()],
    };
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let key = KeyPair::generate(alg, &mut rng());
        let tbs = req.unsigned(key.public_key()).unwrap();
        let sig = key.sign_raw(&tbs.der);
        let kind = key.public_key().kind();
        let csr = Csr::assemble(&tbs, &sig, kind).unwrap();
        assert_eq!(csr, req.sign(&key).unwrap(), "{alg}");
        dir.write("outside.pem", csr.to_pem());
        let out = openssl_ok(&dir.0, &["req", "-in", "outside.pem", "-verify", "-noout"]);
        assert!(out.contains("verify OK"), "{out}");
        let other = KeyPair::generate(alg, &mut rng()).sign_raw(&tbs.der);
        let mut flipped = sig.clone();
        flipped[5] ^= 0x40;
        for bad in [other, flipped, vec![0; 64], sig[..32].to_vec()] {
            let e = Csr::assemble(&tbs, &bad, kind).unwrap_err();
            assert_eq!(e.code(), "bad_signature", "{alg}");
        }
    }
    let e = CsrRequest::default()
        .unsigned(KeyPair::generate(Algorithm::P256, &mut rng()).public_key())
        .unwrap_err();
    assert_eq!(e.code(), "invalid_parameter");
}

#[test]
fn openssl_verifies_issued_leaves_for_both_ca_algorithms() {
    for ca_alg in [Algorithm::P256, Algorithm::Ed25519] {
        let dir = TempDir::new("leaf");
        let (root, int) = ca_pair(ca_alg);
        dir.write("root.pem", root.certificate().to_pem());
        dir.write("int.pem", int.certificate().to_pem());
        for leaf_alg in [Algorithm::P256, Algorithm::Ed25519] {
            let (_key, csr) = csr_for(
                leaf_alg,
                &CsrRequest {
                    subject: Subject::common_name("ignored by the issuer"),
                    names: vec![SanName::dns("svc.example.com").unwrap()],
                },
            );
            let profile = Profile::allowing(vec![NamePattern::dns(".example.com").unwrap()]);
            let opts = IssueOptions {
                identity: Some(SanName::dns("svc.example.com").unwrap()),
                lifetime_secs: Some(3600),
                ..Default::default()
            };
            let issued = int.issue(&csr, &profile, &opts, now(), &mut rng()).unwrap();
            dir.write("leaf.pem", issued.certificate.to_pem());
            for purpose in ["sslclient", "sslserver"] {
                let out = openssl_ok(
                    &dir.0,
                    &[
                        "verify",
                        "-CAfile",
                        "root.pem",
                        "-untrusted",
                        "int.pem",
                        "-purpose",
                        purpose,
                        "-x509_strict",
                        "leaf.pem",
                    ],
                );
                assert!(
                    out.contains("leaf.pem: OK"),
                    "{ca_alg}/{leaf_alg}/{purpose}: {out}"
                );
            }
            let text = openssl_ok(&dir.0, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
            for needle in [
                "CA:FALSE",
                "X509v3 Basic Constraints: critical",
                "X509v3 Key Usage: critical",
                "Digital Signature",
                "TLS Web Server Authentication, TLS Web Client Authentication",
                "DNS:svc.example.com",
                "X509v3 Subject Key Identifier",
                "X509v3 Authority Key Identifier",
                "Subject: CN = svc.example.com",
            ] {
                assert!(
                    text.contains(needle),
                    "{ca_alg}/{leaf_alg}: missing {needle}:\n{text}"
                );
            }
            assert!(
                !text.contains("ignored by the issuer"),
                "CSR subject leaked into the certificate"
            );
            assert!(!text.contains("Certificate Sign"), "leaf has keyCertSign");
            // Serial: 20 octets, positive.
            let serial = openssl_ok(&dir.0, &["x509", "-in", "leaf.pem", "-noout", "-serial"]);
            let hex = serial.trim().trim_start_matches("serial=");
            assert_eq!(hex.len(), 40, "serial {hex}");
            assert!(u8::from_str_radix(&hex[..2], 16).unwrap() < 0x80);
            // notBefore is backdated by the profile's skew (60 s), notAfter is one hour later.
            let c = &issued.certificate;
            assert_eq!(c.not_after() - c.not_before(), 3600 + 60);
            // The chain verifies with our own verifier too, and openssl agrees with the leaf's key id chain.
            let chain = [
                issued.certificate.clone(),
                int.certificate().clone(),
                root.certificate().clone(),
            ];
            verify_chain(&chain, now().unix_timestamp()).unwrap();
        }
    }
}

#[test]
fn openssl_checks_the_root_and_intermediate() {
    let dir = TempDir::new("ca");
    let (root, int) = ca_pair(Algorithm::P256);
    dir.write("root.pem", root.certificate().to_pem());
    dir.write("int.pem", int.certificate().to_pem());
    let out = openssl_ok(
        &dir.0,
        &["verify", "-x509_strict", "-CAfile", "root.pem", "int.pem"],
    );
    assert!(out.contains("int.pem: OK"), "{out}");
    let text = openssl_ok(&dir.0, &["x509", "-in", "int.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    // An intermediate with pathLen 0 cannot make another CA.
    assert!(int
        .new_intermediate(&CaParams::new("too deep"), now(), &mut rng())
        .is_err());
}

#[test]
fn openssl_opens_our_pkcs8_plain_and_encrypted() {
    let dir = TempDir::new("pkcs8");
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let key = KeyPair::generate(alg, &mut rng());
        dir.write("plain.pem", key.to_pkcs8_pem().unwrap().as_bytes());
        let out = openssl_ok(&dir.0, &["pkey", "-in", "plain.pem", "-pubout"]);
        assert_eq!(
            PublicKey::from_spki(out.trim().as_bytes())
                .unwrap()
                .spki_der(),
            key.public_key().spki_der()
        );
        for enc in [KeyEncryption::Scrypt, KeyEncryption::Pbkdf2Sha256] {
            let pem = key
                .to_encrypted_pkcs8_pem(b"correct horse", enc, &mut rng())
                .unwrap();
            assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            dir.write("enc.pem", &pem);
            let out = openssl_ok(
                &dir.0,
                &[
                    "pkey",
                    "-in",
                    "enc.pem",
                    "-passin",
                    "pass:correct horse",
                    "-pubout",
                ],
            );
            assert_eq!(
                PublicKey::from_spki(out.trim().as_bytes())
                    .unwrap()
                    .spki_der(),
                key.public_key().spki_der(),
                "{alg} {enc:?}"
            );
            assert!(!openssl(&dir.0, &["pkey", "-in", "enc.pem", "-passin", "pass:wrong"]).ok);
            // And we read it back.
            let back = KeyPair::from_pem(pem.as_bytes(), Some(b"correct horse")).unwrap();
            assert_eq!(back.public_key().spki_der(), key.public_key().spki_der());
            assert_eq!(
                KeyPair::from_pem(pem.as_bytes(), Some(b"nope"))
                    .unwrap_err()
                    .code(),
                "passphrase"
            );
            assert_eq!(
                KeyPair::from_pem(pem.as_bytes(), None).unwrap_err().code(),
                "passphrase"
            );
        }
    }
}

#[test]
fn we_read_keys_openssl_makes() {
    let dir = TempDir::new("oskeys");
    openssl_ok(
        &dir.0,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
    );
    openssl_ok(
        &dir.0,
        &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"],
    );
    openssl_ok(
        &dir.0,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "ec.pem",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:pw",
            "-out",
            "ec-enc.pem",
        ],
    );
    openssl_ok(
        &dir.0,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "ed.pem",
            "-scrypt",
            "-passout",
            "pass:pw",
            "-out",
            "ed-enc.pem",
        ],
    );
    for (file, pass) in [
        ("ec.pem", None),
        ("ed.pem", None),
        ("ec-enc.pem", Some(&b"pw"[..])),
        ("ed-enc.pem", Some(&b"pw"[..])),
    ] {
        let pem = std::fs::read(dir.path(file)).unwrap();
        let key = KeyPair::from_pem(&pem, pass).unwrap_or_else(|e| panic!("{file}: {e}"));
        let pubout = openssl_ok(
            &dir.0,
            &["pkey", "-in", file, "-passin", "pass:pw", "-pubout"],
        );
        assert_eq!(
            PublicKey::from_spki(pubout.trim().as_bytes())
                .unwrap()
                .spki_der(),
            key.public_key().spki_der()
        );
    }
    openssl_ok(
        &dir.0,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    let err = KeyPair::from_pem(&std::fs::read(dir.path("rsa.pem")).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("rsaEncryption"), "{err}");
}

#[test]
fn we_accept_csrs_openssl_makes() {
    let dir = TempDir::new("oscsr");
    let subj = "/CN=openssl.example.com/O=Example";
    let cases: &[(&str, &[&str], &[&str], &str)] = &[
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &[],
            "P-256",
        ),
        ("ed25519", &["-algorithm", "ED25519"], &[], "Ed25519"),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            &["-sha256"],
            "RSA-2048",
        ),
        (
            "rsapss",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            &[
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
            "RSA-2048",
        ),
        (
            "rsapss-digestlen",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            &[
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ],
            "RSA-3072",
        ),
    ];
    let (root, _) = ca_pair(Algorithm::P256);
    dir.write("root.pem", root.certificate().to_pem());
    for (name, keyopts, sigopts, kind) in cases {
        let san = [
            "-addext",
            "subjectAltName=DNS:openssl.example.com,IP:10.1.2.3",
        ];
        let parsed = ParsedCsr::parse(&openssl_csr(
            &dir,
            name,
            keyopts,
            subj,
            &[&san[..], sigopts].concat(),
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.public_key().name(), *kind);
        assert_eq!(
            parsed.subject().common_name.as_deref(),
            Some("openssl.example.com")
        );
        assert_eq!(
            parsed.names(),
            &[
                SanName::dns("openssl.example.com").unwrap(),
                SanName::Ip("10.1.2.3".parse().unwrap())
            ]
        );
        // Issue it through the accept-the-CSR profile and let openssl verify the result.
        let issued = root
            .issue(
                &parsed,
                &Profile::accept_csr(),
                &IssueOptions::default(),
                now(),
                &mut rng(),
            )
            .unwrap();
        dir.write("leaf.pem", issued.certificate.to_pem());
        let out = openssl_ok(
            &dir.0,
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-purpose",
                "sslserver",
                "leaf.pem",
            ],
        );
        assert!(out.contains("OK"), "{name}: {out}");
        let text = openssl_ok(&dir.0, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert!(text.contains("CN = openssl.example.com"), "{text}");
        if kind.starts_with("RSA") {
            assert!(text.contains("Key Encipherment"), "{text}");
        }
    }
    // A tampered CSR: flip a byte in the signature.
    let mut der = pem_to_der(&std::fs::read(dir.path("p256.csr")).unwrap());
    let n = der.len();
    der[n - 5] ^= 0x01;
    assert_eq!(ParsedCsr::parse(&der).unwrap_err().code(), "bad_signature");
    // openssl's SHA-1 RSA CSR is refused by name.
    openssl_ok(
        &dir.0,
        &[
            "req", "-new", "-key", "rsa.key", "-subj", subj, "-sha1", "-out", "sha1.csr",
        ],
    );
    let err = ParsedCsr::parse(&std::fs::read(dir.path("sha1.csr")).unwrap()).unwrap_err();
    assert!(err.to_string().contains("sha1WithRSAEncryption"), "{err}");
    // Weak RSA and other curves: tests/policy_bypass.rs.
}

#[test]
fn spiffe_svid_follows_the_spec() {
    let dir = TempDir::new("svid");
    let (root, _) = ca_pair(Algorithm::Ed25519);
    dir.write("root.pem", root.certificate().to_pem());
    let id = "spiffe://example.org/ns/prod/sa/web";
    let (_k, csr) = csr_for(
        Algorithm::P256,
        &CsrRequest {
            subject: Subject::default(),
            names: vec![SanName::uri(id).unwrap()],
        },
    );
    let profile = Profile::spiffe("example.org", "/ns/prod").unwrap();
    let issued = root
        .issue(&csr, &profile, &IssueOptions::default(), now(), &mut rng())
        .unwrap();
    dir.write("svid.pem", issued.certificate.to_pem());
    openssl_ok(
        &dir.0,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-purpose",
            "sslclient",
            "svid.pem",
        ],
    );
    let d = inspect(issued.certificate.to_pem().as_bytes()).unwrap();
    assert_eq!(d.names.uri, vec![id.to_string()]);
    assert!(d.names.dns.is_empty());
    assert_eq!(d.key_usage, vec!["digitalSignature"]);
    assert_eq!(d.extended_key_usage, vec!["serverAuth", "clientAuth"]);
    assert!(!d.is_ca);
    let ku = d.extensions.iter().find(|e| e.name == "keyUsage").unwrap();
    assert!(ku.critical);
    // An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6).
    assert!(
        d.extensions
            .iter()
            .find(|e| e.name == "subjectAltName")
            .unwrap()
            .critical
    );
    let text = openssl_ok(&dir.0, &["x509", "-in", "svid.pem", "-noout", "-text"]);
    assert!(text.contains(&format!("URI:{id}")), "{text}");
    // Wrong trust domain, path outside the prefix, two URIs: refused.
    for names in [
        vec![SanName::uri("spiffe://other.org/ns/prod/x").unwrap()],
        vec![SanName::uri("spiffe://example.org/ns/dev/x").unwrap()],
        vec![
            SanName::uri(id).unwrap(),
            SanName::uri("spiffe://example.org/ns/prod/y").unwrap(),
        ],
        vec![],
    ] {
        let (_k, csr) = csr_for(
            Algorithm::P256,
            &CsrRequest {
                subject: Subject::common_name("x"),
                names,
            },
        );
        let err = root
            .issue(&csr, &profile, &IssueOptions::default(), now(), &mut rng())
            .unwrap_err();
        assert_eq!(err.code(), "policy", "{err}");
    }
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= table(*c) << (18 - 6 * i);
        }
        let take = chunk.len() * 6 / 8;
        for i in 0..take {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
