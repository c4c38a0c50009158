//! The sandbox's limits, proven with a test build of the module that has two hostile requests:
//! an endless loop and an unbounded allocation. `scripts/build-pkg.sh --test-hooks` builds it
//! (the test command does); it is found where that script puts it, or at WASM_PKI_TEST_MODULE.
//! The requests here are raw JSON on purpose: they are what a hostile host-side bug could send.

use std::path::PathBuf;

use common::test_module;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasm_pki::protocol::LoadCa;
use wasm_pki::{
    CaParams, CertificateAuthority, CsrRequest, KeyPair, OffsetDateTime, SanName, Subject,
};
use wasm_pki_host::sandbox::{CallError, Sandbox};

mod common;

fn no_test_module() -> bool {
    common::missing(&test_module(), "scripts/build-pkg.sh --test-hooks")
}

/// One raw JSON request; the reply as JSON.
fn call(
    sandbox: &Sandbox,
    request: &serde_json::Value,
    wait: Duration,
) -> Result<serde_json::Value, CallError> {
    let out = sandbox.call_bytes(request.to_string().as_bytes(), wait)?;
    Ok(serde_json::from_slice(&out).expect("the guest answers JSON"))
}

/// A pool of `size` instances of the test module with a fresh CA loaded; returns it, its module
/// cache folder and the time it was made.
fn loaded_sandbox(tag: &str, size: usize) -> (Arc<Sandbox>, PathBuf, OffsetDateTime) {
    let cache = std::env::temp_dir().join(format!("wasm-pki-cache-{tag}-{}", std::process::id()));
    let sandbox = Sandbox::from_file(&test_module(), &cache, size).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = OffsetDateTime::from_unix_timestamp(wasm_pki_host::authority::now()).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Limits CA"), now, &mut rng).unwrap();
    let loaded = sandbox
        .load_ca(LoadCa {
            cert_pem: ca.certificate().to_pem(),
            key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
            passphrase: None,
            public_urls: None,
            host_verifies: false,
            jwt_key_pem: None,
            jwt_public_key_pem: None,
        })
        .unwrap();
    assert_eq!(loaded.subject, "CN=Limits CA", "{loaded:?}");
    (sandbox, cache, now)
}

#[test]
fn hostile_calls_fail_cleanly_and_the_next_request_succeeds() {
    if no_test_module() {
        return;
    }
    let (sandbox, cache, now) = loaded_sandbox("limits", 1);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let key = KeyPair::generate(wasm_pki::Algorithm::P256, &mut rng);
    let csr = CsrRequest {
        subject: Subject::default(),
        names: vec![SanName::dns("l.example.com").unwrap()],
    }
    .sign(&key)
    .unwrap()
    .to_pem();
    let sign = |seed: u8| json!({"op": "sign", "csrPem": csr, "profile": {}, "identity": "l.example.com", "now": now.unix_timestamp(), "seed": format!("{seed:02x}").repeat(32)});
    let ok = |v: serde_json::Value| assert!(v.get("ok").is_some(), "{v}");

    ok(call(&sandbox, &sign(1), Duration::from_secs(5)).unwrap());
    // An endless loop is stopped by the epoch deadline.
    let t = Instant::now();
    match call(&sandbox, &json!({"op": "spin"}), Duration::from_secs(5)) {
        Err(CallError::Trap(m)) => assert!(
            m.contains("interrupt") || m.contains("deadline") || m.contains("epoch"),
            "{m}"
        ),
        other => panic!("spin: {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "deadline too slow: {:?}",
        t.elapsed()
    );
    ok(call(&sandbox, &sign(2), Duration::from_secs(5)).unwrap());
    // A huge allocation hits the memory cap.
    match call(
        &sandbox,
        &json!({"op": "grow", "bytes": 512usize << 20}),
        Duration::from_secs(5),
    ) {
        Err(CallError::Trap(_)) => {}
        other => panic!("grow: {other:?}"),
    }
    ok(call(&sandbox, &sign(3), Duration::from_secs(5)).unwrap());
    // A modest allocation is fine; malformed requests are errors, not traps.
    ok(call(
        &sandbox,
        &json!({"op": "grow", "bytes": 1 << 20}),
        Duration::from_secs(5),
    )
    .unwrap());
    let bad = call(&sandbox, &json!({"op": "sign", "csrPem": "garbage", "profile": {}, "now": 0, "seed": "00".repeat(32)}), Duration::from_secs(5)).unwrap();
    assert_eq!(bad["error"]["code"], "malformed", "{bad}");
    assert_eq!(sandbox.traps.load(Ordering::Relaxed), 2);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn the_shipped_module_has_no_hostile_hooks() {
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pkg/dist/wasm_pki_bg.wasm");
    if common::missing(&module, "scripts/build-pkg.sh") {
        return;
    }
    let cache = std::env::temp_dir().join(format!("wasm-pki-cache-ship-{}", std::process::id()));
    let sandbox = Sandbox::from_file(&module, &cache, 1).unwrap();
    let v = call(&sandbox, &json!({"op": "spin"}), Duration::from_secs(5)).unwrap();
    assert_eq!(v["error"]["code"], "invalid_parameter", "{v}");
    let _ = std::fs::remove_dir_all(cache);
}

/// Traps and exhausted limits in one instance, while other requests run in the other instances of
/// the pool: every other request gets its own, correct certificate; trapped instances are
/// replaced; nothing of one request (names, keys) shows up in another's answer.
#[test]
fn a_trapping_request_never_affects_another_request() {
    if no_test_module() {
        return;
    }
    let (sandbox, cache, now) = loaded_sandbox("iso", 3);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    // Eight callers, each with its own key and name (as eight tokens would have).
    let callers: Vec<(String, Vec<u8>, String)> = (0..8)
        .map(|i| {
            let alg = if i % 2 == 0 {
                wasm_pki::Algorithm::P256
            } else {
                wasm_pki::Algorithm::Ed25519
            };
            let key = KeyPair::generate(alg, &mut rng);
            let name = format!("caller{i}.example.com");
            let csr = CsrRequest {
                subject: Subject::default(),
                names: vec![SanName::dns(&name).unwrap()],
            }
            .sign(&key)
            .unwrap()
            .to_pem();
            (name, key.public_key().spki_der().to_vec(), csr)
        })
        .collect();
    let callers = std::sync::Arc::new(callers);
    let hostile = {
        let sandbox = sandbox.clone();
        std::thread::spawn(move || {
            let mut traps = 0;
            for i in 0..6 {
                let req = if i % 2 == 0 {
                    json!({"op": "spin"})
                } else {
                    json!({"op": "grow", "bytes": 512usize << 20})
                };
                if let Err(CallError::Trap(_)) = call(&sandbox, &req, Duration::from_secs(10)) {
                    traps += 1;
                }
            }
            traps
        })
    };
    let workers: Vec<_> = (0..callers.len())
        .map(|i| {
            let (sandbox, callers) = (sandbox.clone(), callers.clone());
            std::thread::spawn(move || {
                let (name, spki, csr) = &callers[i];
                let mut done = 0;
                for round in 0..6u8 {
                    let req = json!({"op": "sign", "csrPem": csr, "profile": {}, "identity": name, "now": now.unix_timestamp(), "seed": format!("{:02x}", i as u8 * 16 + round).repeat(32)});
                    let v = call(&sandbox, &req, Duration::from_secs(10)).unwrap();
                    let pem = v["ok"]["certificate"].as_str().unwrap_or_else(|| panic!("{v}"));
                    let cert = wasm_pki::Certificate::parse(pem.as_bytes()).unwrap();
                    let der = cert.der();
                    let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
                    assert_eq!(v["ok"]["names"], json!([format!("DNS:{name}")]), "{v}");
                    assert!(has(spki), "caller {i}: the certificate is not for its key");
                    for (j, (other, other_spki, _)) in callers.iter().enumerate() {
                        if j != i {
                            assert!(!has(other.as_bytes()), "caller {i} got {other}");
                            assert!(!has(other_spki), "caller {i} got caller {j}'s key");
                        }
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    let signed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let traps = hostile.join().unwrap();
    assert_eq!(signed, 48);
    assert_eq!(traps, 6);
    assert_eq!(sandbox.traps.load(Ordering::Relaxed), 6);
    // Trapped instances are gone and replaced on demand: the pool serves three at once again.
    assert!(sandbox.instances() <= 3);
    let again: Vec<_> = (0..3)
        .map(|i| {
            let (sandbox, callers) = (sandbox.clone(), callers.clone());
            std::thread::spawn(move || {
                let (name, _, csr) = &callers[i];
                let req = json!({"op": "sign", "csrPem": csr, "profile": {}, "identity": name, "now": now.unix_timestamp(), "seed": "77".repeat(32)});
                call(&sandbox, &req, Duration::from_secs(10)).unwrap()["ok"].is_object()
            })
        })
        .collect();
    assert!(again.into_iter().all(|h| h.join().unwrap()));
    assert!((1..=3).contains(&sandbox.instances()));
    let _ = std::fs::remove_dir_all(cache);
}
