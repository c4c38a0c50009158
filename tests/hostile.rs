//! Hostile and malformed input: every case must be a clear `Err`, never a panic or a hang.

mod common;

use common::{now, rng};
use wasm_pki::*;

// --- minimal DER helpers for splicing requests ---

fn read_tlv(d: &[u8]) -> (usize, usize) {
    // returns (header length, content length) of the TLV at d[0]
    let first = d[1];
    if first < 0x80 {
        (2, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        let mut len = 0usize;
        for b in &d[2..2 + n] {
            len = (len << 8) | *b as usize;
        }
        (2 + n, len)
    }
}

fn children(seq: &[u8]) -> Vec<&[u8]> {
    let (h, l) = read_tlv(seq);
    let mut body = &seq[h..h + l];
    let mut out = Vec::new();
    while !body.is_empty() {
        let (h, l) = read_tlv(body);
        out.push(&body[..h + l]);
        body = &body[h + l..];
    }
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend([0x81, n as u8]);
    } else {
        v.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn assemble(info: &[u8], algid: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig);
    let mut body = info.to_vec();
    body.extend_from_slice(algid);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

fn p256_csr(cn: &str) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate(Algorithm::P256, &mut rng());
    let csr = CsrRequest {
        subject: Subject::common_name(cn),
        names: vec![SanName::dns("ok.example.com").unwrap()],
    }
    .sign(&key)
    .unwrap();
    (key, csr.der().to_vec())
}

/// Replace bytes inside the request info and sign it again, so the signature is valid.
fn resign_with(key: &KeyPair, der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let parts = children(der);
    let info = parts[0].to_vec();
    let pos = info
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in info");
    let mut info = info;
    info.splice(pos..pos + from.len(), to.iter().copied());
    let sig = key.sign(&info);
    assemble(&info, parts[1], &sig)
}

#[test]
fn truncated_csrs_at_every_length_are_errors() {
    let (_k, der) = p256_csr("truncate.example.com");
    for n in 0..der.len() {
        assert!(
            ParsedCsr::parse(&der[..n]).is_err(),
            "truncated at {n} accepted"
        );
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(ParsedCsr::parse(&trailing).is_err());
}

#[test]
fn garbage_is_an_error() {
    let mut state = 0x1234_5678_9abc_def0u64;
    for len in [0usize, 1, 2, 16, 100, 1000, 5000] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(ParsedCsr::parse(&bytes).is_err());
            assert!(Certificate::parse(&bytes).is_err());
            assert!(KeyPair::from_pkcs8_der(&bytes).is_err());
            assert!(inspect(&bytes).is_err());
        }
    }
    for text in [
        "",
        "-----BEGIN CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        assert!(ParsedCsr::parse(text.as_bytes()).is_err(), "{text:?}");
    }
}

#[test]
fn a_mebibyte_csr_is_refused_by_size() {
    let mut big = b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec();
    big.resize(1 << 20, b'A');
    let err = ParsedCsr::parse(&big).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(err.to_string().contains("1048576 bytes"), "{err}");
    let err = ParsedCsr::parse(&vec![0x30; 1 << 20]).unwrap_err();
    assert_eq!(err.code(), "too_large");
}

#[test]
fn deeply_nested_der_is_an_error_not_a_stack_overflow() {
    let mut der = vec![0x05, 0x00];
    for _ in 0..5000 {
        der = tlv(0x30, &der);
        if der.len() > 60_000 {
            break;
        }
    }
    assert!(ParsedCsr::parse(&der).is_err());
    assert!(Certificate::parse(&der).is_err());
    assert!(inspect(&der).is_err());
    // Indefinite-length nesting (BER), which DER forbids.
    let mut ber = [0x30u8, 0x80].repeat(20_000);
    ber.extend([0x00u8, 0x00].repeat(20_000));
    assert!(ParsedCsr::parse(&ber[..60_000]).is_err());
}

#[test]
fn a_signature_that_does_not_match_is_refused() {
    let (_k, der) = p256_csr("sig.example.com");
    let (other, _) = p256_csr("other.example.com");
    let parts = children(&der);
    let forged = assemble(parts[0], parts[1], &other.sign(parts[0]));
    assert_eq!(
        ParsedCsr::parse(&forged).unwrap_err().code(),
        "bad_signature"
    );
}

#[test]
fn an_algorithm_that_does_not_match_the_key_is_refused() {
    let (key, der) = p256_csr("alg.example.com");
    let parts = children(&der);
    let ed_algid = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    let spliced = assemble(parts[0], &ed_algid, &key.sign(parts[0]));
    let err = ParsedCsr::parse(&spliced).unwrap_err();
    assert_eq!(err.code(), "algorithm_mismatch", "{err}");
    assert!(
        err.to_string().contains("Ed25519") && err.to_string().contains("P-256"),
        "{err}"
    );
    // An unknown signature algorithm is named in the error.
    let md5 = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04, 0x05, 0x00,
    ];
    let err = ParsedCsr::parse(&assemble(parts[0], &md5, &key.sign(parts[0]))).unwrap_err();
    assert!(err.to_string().contains("md5WithRSAEncryption"), "{err}");
}

#[test]
fn names_with_nul_bytes_or_bad_utf8_are_refused() {
    let (key, der) = p256_csr("AAAAAAAA.example.com");
    let nul = resign_with(&key, &der, b"AAAAAAAA", b"evil\0com");
    let err = ParsedCsr::parse(&nul).unwrap_err();
    assert_eq!(err.code(), "invalid_name", "{err}");
    let bad_utf8 = resign_with(
        &key,
        &der,
        b"AAAAAAAA",
        &[0xff, 0xfe, 0xc3, 0x28, 0x41, 0x41, 0x41, 0x41],
    );
    let err = ParsedCsr::parse(&bad_utf8).unwrap_err();
    assert_eq!(err.code(), "invalid_name", "{err}");
    // A NUL inside a DNS SAN.
    let san_nul = resign_with(&key, &der, b"ok.example.com", b"ok\0example.com");
    assert_eq!(
        ParsedCsr::parse(&san_nul).unwrap_err().code(),
        "invalid_name"
    );
    // Our own builder refuses them before anything is signed.
    let req = CsrRequest {
        subject: Subject::common_name("a\0b"),
        names: vec![],
    };
    assert_eq!(req.sign(&key).unwrap_err().code(), "invalid_name");
}

#[test]
fn leaves_never_outlive_their_issuer() {
    let mut p = CaParams::new("Short Root");
    p.validity_secs = 600;
    let ca = CertificateAuthority::new_root(&p, now(), &mut rng()).unwrap();
    let (_key, csr, opts) = common::dns_request(Algorithm::Ed25519, "a.example.com", Some(86_400));
    let issued = ca
        .issue(&csr, &Profile::default(), &opts, now(), &mut rng())
        .unwrap();
    assert_eq!(issued.certificate.not_after(), ca.certificate().not_after());
    // After the CA expired, nothing is issued.
    let later = now() + time::Duration::seconds(3600);
    assert_eq!(
        ca.issue(&csr, &Profile::default(), &opts, later, &mut rng())
            .unwrap_err()
            .code(),
        "policy"
    );
}

#[test]
fn encrypted_keys_with_absurd_kdf_costs_are_refused_quickly() {
    use pkcs8::der::Encode;
    let iv = [7u8; 16];
    let salt = [1u8; 16];
    let params =
        pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(100_000_000, &salt, iv).unwrap();
    let data = [0u8; 64];
    let info = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: pkcs5::EncryptionScheme::Pbes2(params),
        encrypted_data: pkcs8::der::asn1::OctetStringRef::new(&data).unwrap(),
    };
    let der = info.to_der().unwrap();
    let start = std::time::Instant::now();
    let err = KeyPair::from_encrypted_pkcs8_der(&der, b"pw").unwrap_err();
    assert!(err.to_string().contains("iterations"), "{err}");
    assert!(
        start.elapsed().as_secs() < 2,
        "a hostile KDF cost was not refused up front"
    );
    // Garbage ciphertext under sane parameters: a passphrase error, not a panic.
    let params =
        pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(1000, &salt, iv).unwrap();
    let info = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: pkcs5::EncryptionScheme::Pbes2(params),
        encrypted_data: pkcs8::der::asn1::OctetStringRef::new(&data).unwrap(),
    };
    assert_eq!(
        KeyPair::from_encrypted_pkcs8_der(&info.to_der().unwrap(), b"pw")
            .unwrap_err()
            .code(),
        "passphrase"
    );
}

#[test]
fn chain_verification_refuses_what_it_should() {
    let root =
        CertificateAuthority::new_root(&CaParams::new("Chain Root"), now(), &mut rng()).unwrap();
    let int = root
        .new_intermediate(&CaParams::new("Chain Int"), now(), &mut rng())
        .unwrap();
    let other =
        CertificateAuthority::new_root(&CaParams::new("Other Root"), now(), &mut rng()).unwrap();
    let (key, csr, opts) = common::dns_request(Algorithm::P256, "c.example.com", Some(3600));
    let leaf = int
        .issue(&csr, &Profile::default(), &opts, now(), &mut rng())
        .unwrap()
        .certificate;
    let t = now().unix_timestamp();
    let good = [
        leaf.clone(),
        int.certificate().clone(),
        root.certificate().clone(),
    ];
    let v = verify_chain(&good, t).unwrap();
    assert_eq!(v.subjects.len(), 3);
    assert_eq!(v.valid_until, leaf.not_after());
    // Wrong root, wrong order, missing intermediate, expired, not yet valid.
    assert!(verify_chain(
        &[
            leaf.clone(),
            int.certificate().clone(),
            other.certificate().clone()
        ],
        t
    )
    .is_err());
    assert!(verify_chain(
        &[
            int.certificate().clone(),
            leaf.clone(),
            root.certificate().clone()
        ],
        t
    )
    .is_err());
    assert!(verify_chain(&[leaf.clone(), root.certificate().clone()], t).is_err());
    assert!(verify_chain(&good, t + 7200)
        .unwrap_err()
        .to_string()
        .contains("expired"));
    assert!(verify_chain(&good, t - 7200)
        .unwrap_err()
        .to_string()
        .contains("not valid yet"));
    // A leaf cannot act as an issuer.
    let leaf_key_ca = CertificateAuthority::load(leaf.clone(), key, vec![]);
    assert!(leaf_key_ca.is_err());
    // Tampered signature.
    let mut der = leaf.der().to_vec();
    let n = der.len();
    der[n - 3] ^= 0x40;
    let tampered = Certificate::from_der(der).unwrap();
    assert!(verify_chain(
        &[
            tampered,
            int.certificate().clone(),
            root.certificate().clone()
        ],
        t
    )
    .is_err());
    // renew_after defaults to half the lifetime, and refuses nonsense fractions.
    assert_eq!(
        leaf.renew_after(0.5).unwrap(),
        leaf.not_before() + (leaf.not_after() - leaf.not_before()) / 2
    );
    assert!(leaf.renew_after(0.0).is_err());
    assert!(leaf.renew_after(f64::NAN).is_err());
}

#[test]
fn loading_a_ca_round_trips_and_checks_the_key() {
    let mut r = rng();
    let root = CertificateAuthority::new_root(&CaParams::new("Load Root"), now(), &mut r).unwrap();
    let key_pem = root
        .key()
        .unwrap()
        .to_encrypted_pkcs8_pem(b"pw", KeyEncryption::Scrypt, &mut r)
        .unwrap();
    let loaded = CertificateAuthority::from_pem(
        root.certificate().to_pem().as_bytes(),
        key_pem.as_bytes(),
        Some(b"pw"),
    )
    .unwrap();
    let (_key, csr, opts) = common::dns_request(Algorithm::Ed25519, "l.example.com", None);
    let leaf = loaded
        .issue(&csr, &Profile::default(), &opts, now(), &mut r)
        .unwrap()
        .certificate;
    verify_chain(&[leaf, root.certificate().clone()], now().unix_timestamp()).unwrap();
    // The wrong key is refused.
    let wrong = KeyPair::generate(Algorithm::P256, &mut r);
    let err = CertificateAuthority::load(root.certificate().clone(), wrong, vec![]).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn inspect_describes_certificates_and_csrs() {
    let mut r = rng();
    let root =
        CertificateAuthority::new_root(&CaParams::new("Inspect Root"), now(), &mut r).unwrap();
    let d = inspect(root.certificate().to_pem().as_bytes()).unwrap();
    assert!(d.is_ca && d.self_issued);
    assert_eq!(d.serial.as_ref().unwrap().len(), 40);
    let key = KeyPair::generate(Algorithm::Ed25519, &mut r);
    let csr = CsrRequest {
        subject: Subject::common_name("x"),
        names: vec![SanName::Ip("::1".parse().unwrap())],
    }
    .sign(&key)
    .unwrap();
    let d = inspect(csr.to_pem().as_bytes()).unwrap();
    assert_eq!(d.names.ip, vec!["::1"]);
    assert_eq!(d.key.algorithm, "Ed25519");
    assert_eq!(d.key.jwk.kty, "OKP");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["kind"], "csr");
    assert_eq!(json["key"]["kind"]["type"], "ed25519");
    assert!(inspect(key.to_pkcs8_pem().unwrap().as_bytes()).is_err());
}
