//! Every CSR signature verifier refuses exactly the same inputs: the core in pure Rust, the core
//! with ring doing the arithmetic, the sandbox verifying in wasm, the sandbox with the host
//! (ring: P-256, Ed25519, RSA PKCS#1 and PSS-32) verifying, and in Node the module in wasm (`issue`), with node:crypto (`issueAsync`)
//! and with WebCrypto (the browser entry's verifier). The table holds tampered signatures, wrong
//! algorithm OIDs, wrong keys for the algorithm, truncated and non-canonical signatures, Ed25519
//! weak keys and small-order R (which ring alone would accept), and RSA-PSS parameter tricks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use curve25519_dalek::{EdwardsPoint, Scalar};
use sha2::{Digest, Sha512};
use wasm_pki::protocol::{LoadCa, Request, Seed, SignRequest, Signed};
use wasm_pki::*;
use wasm_pki_host::sandbox::Sandbox;

mod common;

// ---- DER surgery -------------------------------------------------------------------------

/// (header length, content length) of the TLV at the start of `d`.
fn tlv_len(d: &[u8]) -> (usize, usize) {
    match d[1] {
        n if n < 0x80 => (2, n as usize),
        0x81 => (3, d[2] as usize),
        0x82 => (4, (d[2] as usize) << 8 | d[3] as usize),
        _ => panic!("long DER length"),
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend(content);
    out
}

/// The three parts of a CSR: info (whole TLV), algorithm (whole TLV), signature bytes.
fn split(csr: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (h, _) = tlv_len(csr);
    let body = &csr[h..];
    let (ih, il) = tlv_len(body);
    let info = body[..ih + il].to_vec();
    let rest = &body[ih + il..];
    let (ah, al) = tlv_len(rest);
    let alg = rest[..ah + al].to_vec();
    let bits = &rest[ah + al..];
    let (bh, bl) = tlv_len(bits);
    (info, alg, bits[bh + 1..bh + bl].to_vec())
}

fn assemble(info: &[u8], alg: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend(sig);
    let mut body = info.to_vec();
    body.extend(alg);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ALG_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// P-256 group order.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// a - b for 256-bit big-endian numbers (a >= b).
fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = (d < 0) as i16;
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// A DER INTEGER for a 32-byte big-endian value, minimal.
fn der_int(v: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = der_int(r);
    body.extend(der_int(s));
    tlv(0x30, &body)
}

/// (r, s) of a DER ECDSA signature, 32 bytes each.
fn ecdsa_parts(sig: &[u8]) -> ([u8; 32], [u8; 32]) {
    let (h, _) = tlv_len(sig);
    let int = |d: &[u8]| {
        let (h, l) = tlv_len(d);
        let v = &d[h..h + l];
        let mut out = [0u8; 32];
        let v = &v[v.len().saturating_sub(32)..];
        out[32 - v.len()..].copy_from_slice(v);
        (out, h + l)
    };
    let (r, used) = int(&sig[h..]);
    let (s, _) = int(&sig[h + used..]);
    (r, s)
}

/// An Ed25519 signature made by hand: any nonce, any (even hostile) encoded key and R.
fn ed_sign(a: &Scalar, key: &[u8; 32], r: &Scalar, r_enc: &[u8; 32], msg: &[u8]) -> Vec<u8> {
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_enc)
            .chain_update(key)
            .chain_update(msg),
    );
    let s = r + k * a;
    let mut sig = r_enc.to_vec();
    sig.extend(s.to_bytes());
    sig
}

fn openssl_rsa_csr(dir: &Path, name: &str, sigopts: &[&str]) -> Vec<u8> {
    let key = dir.join(format!("{name}.key"));
    let out = dir.join(format!("{name}.der"));
    let mut args = vec![
        "req".to_string(),
        "-new".into(),
        "-newkey".into(),
        "rsa:2048".into(),
        "-nodes".into(),
        "-keyout".into(),
        key.display().to_string(),
        "-subj".into(),
        "/CN=parity".into(),
        "-sha256".into(),
        "-outform".into(),
        "DER".into(),
        "-out".into(),
        out.display().to_string(),
    ];
    for o in sigopts {
        args.push("-sigopt".into());
        args.push(o.to_string());
    }
    let st = Command::new("openssl")
        .args(&args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req {sigopts:?}");
    std::fs::read(out).unwrap()
}

/// The hostile table: (name, CSR DER, expected: accepted?).
fn table(dir: &Path) -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut t = Vec::new();
    let csr = |key: &KeyPair| {
        CsrRequest {
            subject: Subject {
                common_name: Some("parity".into()),
                ..Default::default()
            },
            names: vec![],
        }
        .sign(key)
        .unwrap()
        .der()
        .to_vec()
    };

    // P-256.
    let p = KeyPair::generate(Algorithm::P256, &mut rng);
    let good = csr(&p);
    let (info, alg, sig) = split(&good);
    let (r, s) = ecdsa_parts(&sig);
    t.push(("p256 valid", good.clone(), true));
    let mut flipped = sig.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    t.push((
        "p256 signature bit flipped",
        assemble(&info, &alg, &flipped),
        false,
    ));
    let mut info2 = info.clone();
    let at = info2.windows(6).position(|w| w == b"parity").unwrap();
    info2[at] = b'P';
    t.push((
        "p256 signed bytes changed",
        assemble(&info2, &alg, &sig),
        false,
    ));
    let high_s = sub_be(&N, &s);
    t.push((
        "p256 high-S (valid ECDSA)",
        assemble(&info, &alg, &ecdsa_der(&r, &high_s)),
        true,
    ));
    t.push((
        "p256 r = 0",
        assemble(&info, &alg, &ecdsa_der(&[0; 32], &s)),
        false,
    ));
    t.push((
        "p256 s = n",
        assemble(&info, &alg, &ecdsa_der(&r, &N)),
        false,
    ));
    t.push((
        "p256 s = n + s (unreduced)",
        assemble(&info, &alg, &{
            let mut body = der_int(&r);
            let mut big = vec![0x01];
            big.extend(s);
            body.extend(tlv(0x02, &big));
            tlv(0x30, &body)
        }),
        false,
    ));
    t.push((
        "p256 non-minimal DER integer",
        assemble(&info, &alg, &{
            let mut body = tlv(0x02, &[&[0u8, 0][..], &r[..]].concat());
            body.extend(der_int(&s));
            tlv(0x30, &body)
        }),
        false,
    ));
    t.push((
        "p256 signature truncated",
        assemble(&info, &alg, &sig[..sig.len() - 1]),
        false,
    ));
    t.push((
        "p256 signature with trailing bytes",
        assemble(&info, &alg, &[&sig[..], &[0, 0]].concat()),
        false,
    ));
    t.push((
        "p256 signature as r||s, not DER",
        assemble(&info, &alg, &[&r[..], &s[..]].concat()),
        false,
    ));
    t.push(("p256 empty signature", assemble(&info, &alg, &[]), false));
    t.push((
        "p256 key, ecdsa-with-SHA384",
        assemble(&info, ALG_ECDSA_SHA384, &sig),
        false,
    ));
    t.push((
        "p256 key, Ed25519 OID",
        assemble(&info, ALG_ED25519, &sig),
        false,
    ));

    // Ed25519, signed by hand so that key, R and S can be hostile.
    let random = || {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        b
    };
    let seed = random();
    let h = Sha512::digest(seed);
    let mut a_bytes: [u8; 32] = h[..32].try_into().unwrap();
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let key = EdwardsPoint::mul_base(&a).compress().to_bytes();
    let ed = KeyPair::generate(Algorithm::Ed25519, &mut rng);
    let template = csr(&ed);
    let (tinfo, ealg, _) = split(&template);
    let with_key = |k: &[u8; 32]| {
        let mut i = tinfo.clone();
        let at = i
            .windows(32)
            .position(|w| w == &ed.public_key().spki_der()[12..])
            .unwrap();
        i[at..at + 32].copy_from_slice(k);
        i
    };
    let einfo = with_key(&key);
    let nonce = Scalar::from_bytes_mod_order(random());
    let r_enc = EdwardsPoint::mul_base(&nonce).compress().to_bytes();
    let esig = ed_sign(&a, &key, &nonce, &r_enc, &einfo);
    t.push(("ed25519 valid", assemble(&einfo, &ealg, &esig), true));
    let mut eflip = esig.clone();
    eflip[5] ^= 4;
    t.push((
        "ed25519 R bit flipped",
        assemble(&einfo, &ealg, &eflip),
        false,
    ));
    let mut eflip = esig.clone();
    eflip[40] ^= 4;
    t.push((
        "ed25519 S bit flipped",
        assemble(&einfo, &ealg, &eflip),
        false,
    ));
    // S + L: the same point, a non-canonical scalar.
    let l: [u8; 32] = (Scalar::ZERO - Scalar::ONE).to_bytes();
    let mut s_plus_l = [0u8; 32];
    let mut carry = 1u16; // (L - 1) + 1 = L
    for i in 0..32 {
        let v = esig[32 + i] as u16 + l[i] as u16 + carry;
        s_plus_l[i] = v as u8;
        carry = v >> 8;
    }
    t.push((
        "ed25519 S + L (non-canonical)",
        assemble(&einfo, &ealg, &[&esig[..32], &s_plus_l[..]].concat()),
        false,
    ));
    // Identity as the key: [s]B = R holds for any message with s = nonce; ring alone accepts it.
    let identity = EdwardsPoint::default().compress().to_bytes();
    let winfo = with_key(&identity);
    let wsig = ed_sign(&Scalar::ZERO, &identity, &nonce, &r_enc, &winfo);
    t.push((
        "ed25519 weak (identity) key",
        assemble(&winfo, &ealg, &wsig),
        false,
    ));
    // Identity as R with s = k·a: the cofactorless equation holds; verify_strict refuses it.
    let rsig = ed_sign(&a, &key, &Scalar::ZERO, &identity, &einfo);
    // ring on its own accepts it: the core's encoding checks are what make the verifiers agree.
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
        .verify(&einfo, &rsig)
        .expect("ring alone accepts a small-order R");
    t.push((
        "ed25519 small-order R",
        assemble(&einfo, &ealg, &rsig),
        false,
    ));
    t.push((
        "ed25519 truncated signature",
        assemble(&einfo, &ealg, &esig[..63]),
        false,
    ));
    t.push((
        "ed25519 key, ecdsa-with-SHA256",
        assemble(&einfo, ALG_ECDSA_SHA256, &esig),
        false,
    ));

    // RSA from openssl (PKCS#1 v1.5, PSS with salts 32 and 20), and PSS parameter tricks.
    let rsa = openssl_rsa_csr(dir, "rsa", &[]);
    t.push(("rsa pkcs1 valid (openssl)", rsa.clone(), true));
    let (rinfo, ralg, rsig) = split(&rsa);
    let mut rflip = rsig.clone();
    rflip[100] ^= 1;
    t.push((
        "rsa pkcs1 bit flipped",
        assemble(&rinfo, &ralg, &rflip),
        false,
    ));
    t.push((
        "rsa pkcs1 truncated",
        assemble(&rinfo, &ralg, &rsig[..255]),
        false,
    ));
    t.push((
        "rsa signature with a leading zero byte",
        assemble(&rinfo, &ralg, &[&[0u8][..], &rsig[..]].concat()),
        false,
    ));
    t.push((
        "rsa key, ecdsa OID",
        assemble(&rinfo, ALG_ECDSA_SHA256, &rsig),
        false,
    ));
    let pss = openssl_rsa_csr(
        dir,
        "pss32",
        &[
            "rsa_padding_mode:pss",
            "rsa_pss_saltlen:32",
            "rsa_mgf1_md:sha256",
        ],
    );
    t.push(("rsa-pss salt 32 valid (openssl)", pss.clone(), true));
    let pss20 = openssl_rsa_csr(
        dir,
        "pss20",
        &[
            "rsa_padding_mode:pss",
            "rsa_pss_saltlen:20",
            "rsa_mgf1_md:sha256",
        ],
    );
    t.push(("rsa-pss salt 20 valid (openssl)", pss20.clone(), true));
    let (pinfo, _, psig) = split(&pss);
    // The salt length field says 20 while the signature used 32.
    let (_, p20alg, _) = split(&pss20);
    t.push((
        "rsa-pss salt length lies",
        assemble(&pinfo, &p20alg, &psig),
        false,
    ));
    let sha1 = openssl_rsa_csr(
        dir,
        "pss-sha1",
        &[
            "rsa_padding_mode:pss",
            "rsa_pss_saltlen:20",
            "rsa_mgf1_md:sha1",
        ],
    );
    t.push(("rsa-pss MGF1-SHA1 (unsupported)", sha1, false));
    // RSASSA-PSS without parameters.
    let bare_pss: &[u8] = &[
        0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
    ];
    t.push((
        "rsa-pss without parameters",
        assemble(&pinfo, bare_pss, &psig),
        false,
    ));
    t.push((
        "rsa-pss signature as pkcs1",
        assemble(&pinfo, &ralg, &psig),
        false,
    ));
    // Truncated and garbage CSRs.
    t.push(("csr truncated", good[..good.len() / 2].to_vec(), false));
    t.push(("garbage", b"\x30\x03\x02\x01\x00".to_vec(), false));
    t
}

// ---- the verification paths ------------------------------------------------------------

type Outcome = Result<(), String>;

fn code(e: &Error) -> String {
    e.code().to_string()
}

fn outcomes_native(
    table: &[(&'static str, Vec<u8>, bool)],
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> (Vec<Outcome>, Vec<Outcome>) {
    let mut rng = SeedRng::from_seed([3; 32]);
    let opts = IssueOptions {
        identity: Some(SanName::dns("parity.example.com").unwrap()),
        ..Default::default()
    };
    let profile = Profile::default();
    let mut issue = |csr: Result<ParsedCsr>| -> Outcome {
        let csr = csr.map_err(|e| code(&e))?;
        ca.issue(&csr, &profile, &opts, now, &mut rng)
            .map(|_| ())
            .map_err(|e| code(&e))
    };
    let mut core = Vec::new();
    let mut ring = Vec::new();
    for (_, der, _) in table {
        core.push(issue(ParsedCsr::parse(der)));
        ring.push(issue(UncheckedCsr::parse(der).and_then(|u| {
            let valid = u.check().map(|c| wasm_pki_host::sandbox::verify(&c));
            match valid {
                Some(v) => u.accept_verdict(v),
                None => u.verify(),
            }
        })));
    }
    (core, ring)
}

/// Who verifies CSR signatures in the sandbox, and where the CA key is.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The guest verifies, and signs with the key it holds.
    Wasm,
    /// The host verifies (ring); the guest signs.
    HostVerifies,
    /// The host verifies and its key store (`memory`) signs what the guest builds.
    KeyStore,
}

fn outcomes_sandbox(
    table: &[(&'static str, Vec<u8>, bool)],
    ca: &CertificateAuthority,
    now: i64,
    mode: Mode,
) -> Vec<Outcome> {
    let cache = std::env::temp_dir().join(format!("wasm-pki-parity-{}", std::process::id()));
    let sandbox = Sandbox::from_file(&common::module(), &cache, 1).unwrap();
    let key_pem = ca.key().unwrap().to_pkcs8_pem().unwrap().to_string();
    let store = wasm_pki_host::keys::MemoryKey::from_pem(key_pem.as_bytes(), None).unwrap();
    sandbox
        .load_ca(LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: (mode != Mode::KeyStore).then_some(key_pem),
            passphrase: None,
            public_urls: None,
            host_verifies: mode != Mode::Wasm,
            jwt_key_pem: None,
            jwt_public_key_pem: None,
        })
        .unwrap();
    table
        .iter()
        .map(|(_, der, _)| {
            let req = Request::Sign(Box::new(SignRequest {
                csr_pem: pem_csr(der),
                profile: Profile::default(),
                identity: Some("parity.example.com".into()),
                lifetime_secs: None,
                now,
                seed: Seed([5; 32]),
                renew_fraction: None,
                extra_names: Vec::new(),
                exact_names: None,
            }));
            let bytes = wasm_pki::protocol::encode_request(&req).unwrap();
            let reply = sandbox
                .call_signing(
                    &bytes,
                    Duration::from_secs(5),
                    &mut |ask, verified| {
                        assert!(
                            mode == Mode::KeyStore,
                            "a sign ask with the key in the guest"
                        );
                        assert!(verified.is_some(), "a sign ask without a verified CSR");
                        Ok(store.sign(&ask.tbs).unwrap())
                    },
                    &mut |_| Ok(()),
                )
                .unwrap();
            match wasm_pki::protocol::decode_reply::<Signed>(&reply).unwrap() {
                Ok(s) => {
                    let cert = Certificate::parse(s.certificate.as_bytes()).unwrap();
                    wasm_pki::chain::check_issued_by(&cert, ca.certificate()).unwrap();
                    Ok(())
                }
                Err(e) => Err(e.code),
            }
        })
        .collect()
}

fn pem_csr(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, der).unwrap()
}

/// Node: `issue` (wasm), `issueAsync` (node:crypto) and the WebCrypto verifier of web.js.
fn outcomes_node(
    table: &[(&'static str, Vec<u8>, bool)],
    ca: &CertificateAuthority,
) -> Option<[Vec<Outcome>; 3]> {
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg");
    if common::missing(&pkg.join("dist/wasm_pki.js"), "scripts/build-pkg.sh") {
        return None;
    }
    let script = r#"
import { loadCa, Ca } from './node.mjs';
import { webCryptoVerifier } from './verify.js';
const input = JSON.parse(await new Promise((ok) => {
  let s = ''; process.stdin.on('data', (d) => (s += d)); process.stdin.on('end', () => ok(s));
}));
const ca = loadCa(input.cert, input.key);
const web = webCryptoVerifier(globalThis.crypto.subtle);
const code = (e) => (e && e.code) || String(e);
const out = { wasm: [], node: [], web: [] };
const opts = { identity: 'parity.example.com' };
for (const csr of input.csrs) {
  try { ca.issue(csr, {}, opts); out.wasm.push(null); } catch (e) { out.wasm.push(code(e)); }
  try { await ca.issueAsync(csr, {}, opts); out.node.push(null); } catch (e) { out.node.push(code(e)); }
  try {
    const p = ca.beginIssue(csr, {}, opts);
    const valid = p.algorithm === undefined ? undefined : await web(p);
    ca.finishIssue(p, valid);
    out.web.push(null);
  } catch (e) { out.web.push(code(e)); }
}
console.log(JSON.stringify(out));
"#;
    let input = serde_json::json!({
        "cert": ca.certificate().to_pem(),
        "key": ca.key().unwrap().to_pkcs8_pem().unwrap().to_string(),
        "csrs": table.iter().map(|(_, d, _)| pem_csr(d)).collect::<Vec<_>>(),
    });
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(&pkg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = |k: &str| -> Vec<Outcome> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| match x.as_str() {
                None => Ok(()),
                Some(c) => Err(c.to_string()),
            })
            .collect()
    };
    Some([read("wasm"), read("node"), read("web")])
}

#[test]
fn every_verifier_refuses_the_same_csrs() {
    if common::no_module() {
        return;
    }
    let dir = common::TempDir::new("parity");
    let table = table(&dir.0);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now_secs = wasm_pki_host::authority::now();
    let now = OffsetDateTime::from_unix_timestamp(now_secs).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Parity CA"), now, &mut rng).unwrap();

    let (core, ring) = outcomes_native(&table, &ca, now);
    let mut paths: Vec<(&str, Vec<Outcome>)> = vec![
        ("core (pure Rust)", core),
        ("core + ring", ring),
        (
            "sandbox, wasm verifies",
            outcomes_sandbox(&table, &ca, now_secs, Mode::Wasm),
        ),
        (
            "sandbox, host verifies",
            outcomes_sandbox(&table, &ca, now_secs, Mode::HostVerifies),
        ),
    ];
    // With the key in the host's store, the host must know each CSR's key: the one kind only
    // the guest verifies (RSA-PSS with a 20-byte salt, which ring lacks) is refused there.
    let mut key_store = outcomes_sandbox(&table, &ca, now_secs, Mode::KeyStore);
    let pss20 = table
        .iter()
        .position(|(n, _, _)| *n == "rsa-pss salt 20 valid (openssl)")
        .unwrap();
    assert_eq!(
        key_store[pss20],
        Err("unsupported_algorithm".to_string()),
        "PSS-20 with the key outside"
    );
    key_store[pss20] = paths[0].1[pss20].clone();
    paths.push(("sandbox, key store in the host (memory)", key_store));
    if let Some([wasm, node, web]) = outcomes_node(&table, &ca) {
        paths.push(("node issue (wasm)", wasm));
        paths.push(("node issueAsync (node:crypto)", node));
        paths.push(("node WebCrypto verifier", web));
    }
    let mut refused = 0;
    for (i, (name, _, accepted)) in table.iter().enumerate() {
        let first = &paths[0].1[i];
        for (path, outcomes) in &paths {
            assert_eq!(
                &outcomes[i], first,
                "{name}: {path} says {:?}, {} says {first:?}",
                outcomes[i], paths[0].0
            );
        }
        assert_eq!(first.is_ok(), *accepted, "{name}: {first:?}");
        if first.is_err() {
            refused += 1;
        }
        println!("{name}: {first:?}");
    }
    // The host's verifier really is on the path: what passes the encoding checks is handed out,
    // but for PSS with a 20-byte salt.
    let handed_out: Vec<&str> = table
        .iter()
        .filter(|(_, d, _)| {
            UncheckedCsr::parse(d)
                .ok()
                .and_then(|u| u.check())
                .is_some()
        })
        .map(|(n, _, _)| *n)
        .collect();
    for name in [
        "p256 valid",
        "p256 high-S (valid ECDSA)",
        "p256 signature bit flipped",
        "ed25519 valid",
        "ed25519 S bit flipped",
        "rsa pkcs1 valid (openssl)",
        "rsa pkcs1 bit flipped",
        "rsa-pss salt 32 valid (openssl)",
    ] {
        assert!(
            handed_out.contains(&name),
            "{name} not handed out: {handed_out:?}"
        );
    }
    assert!(!handed_out.contains(&"rsa-pss salt 20 valid (openssl)"));
    println!(
        "{} CSRs, {refused} refused, identically by {} paths; {} checked outside the core",
        table.len(),
        paths.len(),
        handed_out.len()
    );
}
