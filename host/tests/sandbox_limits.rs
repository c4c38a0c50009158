//! The sandbox's limits, proven with a test build of the module that has two hostile requests:
//! an endless loop and an unbounded allocation. Build it with `scripts/build-pkg.sh --test-hooks`
//! (the test command does) and point WASM_PKI_TEST_MODULE at it.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use wasm_pki::{
    CaParams, CertificateAuthority, CsrRequest, KeyPair, OffsetDateTime, SanName, Subject,
};
use wasm_pki_host::sandbox::{CallError, Sandbox};

fn test_module() -> PathBuf {
    PathBuf::from(std::env::var("WASM_PKI_TEST_MODULE").expect("WASM_PKI_TEST_MODULE must name the test-hooks module (scripts/build-pkg.sh --test-hooks prints it)"))
}

#[test]
fn hostile_calls_fail_cleanly_and_the_next_request_succeeds() {
    let cache = std::env::temp_dir().join(format!("wasm-pki-cache-{}", std::process::id()));
    let sandbox = Sandbox::new(&test_module(), &cache, 1).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = OffsetDateTime::from_unix_timestamp(wasm_pki_host::signer::now()).unwrap();
    let ca = CertificateAuthority::new_root(&CaParams::new("Limits CA"), now, &mut rng).unwrap();
    let loaded = sandbox
        .load_ca(
            &ca.certificate().to_pem(),
            ca.key().to_pkcs8_pem().unwrap().as_str(),
            None,
        )
        .unwrap();
    assert!(loaded.get("ok").is_some(), "{loaded}");
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

    ok(sandbox.call(&sign(1), Duration::from_secs(5)).unwrap());
    // An endless loop is stopped by the epoch deadline.
    let t = Instant::now();
    match sandbox.call(&json!({"op": "spin"}), Duration::from_secs(5)) {
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
    ok(sandbox.call(&sign(2), Duration::from_secs(5)).unwrap());
    // A huge allocation hits the memory cap.
    match sandbox.call(
        &json!({"op": "grow", "bytes": 512usize << 20}),
        Duration::from_secs(5),
    ) {
        Err(CallError::Trap(_)) => {}
        other => panic!("grow: {other:?}"),
    }
    ok(sandbox.call(&sign(3), Duration::from_secs(5)).unwrap());
    // A modest allocation is fine; malformed requests are errors, not traps.
    ok(sandbox
        .call(
            &json!({"op": "grow", "bytes": 1 << 20}),
            Duration::from_secs(5),
        )
        .unwrap());
    let bad = sandbox.call(&json!({"op": "sign", "csrPem": "garbage", "profile": {}, "now": 0, "seed": "00".repeat(32)}), Duration::from_secs(5)).unwrap();
    assert_eq!(bad["error"]["code"], "malformed", "{bad}");
    assert_eq!(sandbox.traps.load(Ordering::Relaxed), 2);
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn the_shipped_module_has_no_hostile_hooks() {
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pkg/dist/wasm_pki_bg.wasm");
    let cache = std::env::temp_dir().join(format!("wasm-pki-cache-ship-{}", std::process::id()));
    let sandbox = Sandbox::new(&module, &cache, 1).unwrap();
    let v = sandbox
        .call(&json!({"op": "spin"}), Duration::from_secs(5))
        .unwrap();
    assert_eq!(v["error"]["code"], "invalid_parameter", "{v}");
    let _ = std::fs::remove_dir_all(cache);
}
