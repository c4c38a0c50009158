//! Replays the fuzz seed corpus and every input a fuzz run ever crashed on (fuzz/regressions/)
//! through the fuzz targets' bodies: each must now be handled without a panic.

#[allow(dead_code)]
#[path = "../fuzz/src/bodies.rs"]
mod bodies;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                panic!("{target}: {} panics", path.display());
            }
            n += 1;
        }
    }
    n
}

#[test]
fn csr_inputs() {
    assert!(replay("csr", bodies::csr) >= 6);
}

#[test]
fn key_inputs() {
    assert!(replay("key_import", bodies::key_import) >= 8);
}

#[test]
fn policy_inputs() {
    assert!(replay("policy", bodies::policy) >= 3);
}

#[test]
fn sandbox_inputs() {
    assert!(replay("sandbox_request", bodies::sandbox_request) >= 8);
}

#[test]
fn proof_inputs() {
    assert!(replay("proof", bodies::proof) >= 4);
}

#[test]
fn kbs_inputs() {
    assert!(replay("kbs", bodies::kbs) >= 5);
}

#[test]
fn vault_inputs() {
    assert!(replay("vault", bodies::vault) >= 5);
}

#[test]
fn jwt_svid_inputs() {
    assert!(replay("jwt_svid", bodies::jwt_svid) >= 4);
}

#[test]
fn agent_body_inputs() {
    assert!(replay("agent_bodies", bodies::agent_bodies) >= 5);
}

#[test]
fn acme_inputs() {
    assert!(replay("acme", bodies::acme) >= 8);
}
