//! One suite, both backends: every ledger test runs against SQLite and, when
//! `WASM_PKI_TEST_PG` names a PostgreSQL server (`postgres://USER@HOST:PORT`; the test command
//! starts a throwaway one), against a fresh database there. Under CI the server must be there.

use std::sync::Arc;

use super::*;

pub(super) fn record(serial: &str, token: &str) -> Record {
    Record {
        serial: serial.into(),
        subject: "CN=x".into(),
        names: vec!["DNS:x".into()],
        not_before: 1,
        not_after: 2,
        fingerprint: "f".into(),
        token_id: token.into(),
        profile: "default".into(),
        issued_at: 1,
        revoked_at: None,
        pem: "pem".into(),
        identity: None,
        renewed_from: None,
        csr_sha256: None,
        revocation_reason: None,
    }
}

pub(super) fn entry(id: &str, node: &str, at: i64) -> Entry {
    Entry {
        id: id.into(),
        node: node.into(),
        spiffe_id: format!("spiffe://example.org/{id}"),
        selectors: vec!["unix:gid:10".into(), "unix:uid:1000".into()],
        x509_ttl_secs: 3600,
        jwt_ttl_secs: 300,
        dns: vec![format!("{id}.example.org")],
        hint: Some("internal".into()),
        created_at: at,
    }
}

pub(super) fn acme(
    kind: AcmeKind,
    id: &str,
    directory: &str,
    account: &str,
    key: Option<&str>,
    at: i64,
) -> AcmeRow {
    AcmeRow {
        kind,
        id: id.into(),
        directory: directory.into(),
        account: account.into(),
        key: key.map(String::from),
        body: format!(r#"{{"id":"{id}","status":"pending"}}"#),
        version: 1,
        created_at: at,
    }
}

/// A URL for a fresh, empty database on the test server, if there is one.
pub(crate) fn fresh_pg_database(tag: &str) -> Option<String> {
    let Some(base) = std::env::var("WASM_PKI_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the ledger suite against PostgreSQL: set WASM_PKI_TEST_PG"
        );
        return None;
    };
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).unwrap();
    let name = format!("wasm_pki_{tag}_{}", wasm_pki::hex(&rnd));
    let mut admin = ::postgres::Client::connect(&format!("{base}/postgres"), ::postgres::NoTls)
        .expect("the test PostgreSQL server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    Some(format!("{base}/{name}"))
}

/// A fresh ledger of each backend, with what keeps it alive.
fn backends(tag: &str) -> Vec<(&'static str, Arc<dyn Ledger>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Ledger> =
        Arc::new(SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap());
    let mut v = vec![("sqlite", sqlite, dir)];
    if let Some(url) = fresh_pg_database(tag) {
        let pg: Arc<dyn Ledger> = Arc::new(PgLedger::open(&url).unwrap());
        v.push(("postgres", pg, tempfile::tempdir().unwrap()));
    }
    v
}

/// A backend's name, two ledgers over one database (two replicas), and what keeps it alive.
type Replicas = (&'static str, [Arc<dyn Ledger>; 2], tempfile::TempDir);

/// Two ledgers of each backend over one database.
fn replicas(tag: &str) -> Vec<Replicas> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let sqlite = || -> Arc<dyn Ledger> { Arc::new(SqliteLedger::open(&path).unwrap()) };
    let mut v = vec![("sqlite", [sqlite(), sqlite()], dir)];
    if let Some(url) = fresh_pg_database(tag) {
        let pg = || -> Arc<dyn Ledger> { Arc::new(PgLedger::open(&url).unwrap()) };
        v.push(("postgres", [pg(), pg()], tempfile::tempdir().unwrap()));
    }
    v
}

#[test]
fn acme_objects_inserted_together_are_all_stored_or_none() {
    use AcmeKind::{Authz, Order};
    for (b, l, _keep) in backends("acme_all") {
        let order = acme(Order, "o-1", "web", "acc-A", None, 10);
        let z1 = acme(Authz, "z-1", "web", "acc-A", None, 10);
        let z2 = AcmeRow {
            version: 9,
            ..acme(Authz, "z-2", "web", "acc-A", None, 10)
        };
        assert!(
            l.acme_insert_all(&[z1.clone(), z2.clone(), order.clone()])
                .unwrap(),
            "{b}"
        );
        assert_eq!(
            l.acme_get(Order, "o-1").unwrap().as_ref(),
            Some(&order),
            "{b}"
        );
        assert_eq!(
            l.acme_get(Authz, "z-2").unwrap().map(|r| r.version),
            Some(1),
            "{b}: version 1 whatever the row says"
        );
        // One taken id among them: none of the others is stored.
        let fresh = acme(Authz, "z-3", "web", "acc-A", None, 11);
        let again = acme(Order, "o-2", "web", "acc-A", None, 11);
        assert!(
            !l.acme_insert_all(&[fresh, z1.clone(), again]).unwrap(),
            "{b}"
        );
        assert_eq!(l.acme_get(Authz, "z-3").unwrap(), None, "{b}: rolled back");
        assert_eq!(l.acme_get(Order, "o-2").unwrap(), None, "{b}: rolled back");
        assert!(l.acme_insert_all(&[]).unwrap(), "{b}: nothing to store");
    }
}

#[test]
fn acme_objects_are_stored_found_and_listed() {
    use AcmeKind::{Account, Authz, Order};
    for (b, l, _keep) in backends("acme") {
        let alice = acme(Account, "acc-A", "web", "acc-A", Some("thumb-1"), 10);
        // Stored at version 1 whatever the row says.
        assert!(
            l.acme_insert(&AcmeRow {
                version: 7,
                ..alice.clone()
            })
            .unwrap(),
            "{b}"
        );
        assert_eq!(
            l.acme_get(Account, "acc-A").unwrap().as_ref(),
            Some(&alice),
            "{b}"
        );
        assert_eq!(l.acme_get(Order, "acc-A").unwrap(), None, "{b}: per kind");
        assert_eq!(l.acme_get(Account, "nope").unwrap(), None, "{b}");
        assert_eq!(
            l.acme_by_key(Account, "web", "thumb-1").unwrap().as_ref(),
            Some(&alice),
            "{b}"
        );
        assert_eq!(
            l.acme_by_key(Account, "other", "thumb-1").unwrap(),
            None,
            "{b}: per directory"
        );
        assert_eq!(l.acme_by_key(Order, "web", "thumb-1").unwrap(), None, "{b}");

        // A taken id, or a taken key in the same directory: false, and nothing changed.
        let mut twin = acme(Account, "acc-A", "web", "acc-A", Some("thumb-2"), 11);
        twin.body = "{}".into();
        assert!(!l.acme_insert(&twin).unwrap(), "{b}: id taken");
        let thief = acme(Account, "acc-B", "web", "acc-B", Some("thumb-1"), 11);
        assert!(!l.acme_insert(&thief).unwrap(), "{b}: key taken");
        assert_eq!(l.acme_get(Account, "acc-B").unwrap(), None, "{b}");
        assert_eq!(
            l.acme_by_key(Account, "web", "thumb-2").unwrap(),
            None,
            "{b}"
        );
        assert_eq!(
            l.acme_get(Account, "acc-A").unwrap().as_ref(),
            Some(&alice),
            "{b}"
        );
        // The same key in another directory is another account; the same id of another kind is
        // another object; objects without a key never collide.
        let elsewhere = acme(Account, "acc-C", "internal", "acc-C", Some("thumb-1"), 12);
        assert!(l.acme_insert(&elsewhere).unwrap(), "{b}");
        assert_eq!(
            l.acme_by_key(Account, "internal", "thumb-1").unwrap(),
            Some(elsewhere),
            "{b}"
        );
        assert!(
            l.acme_insert(&acme(Order, "acc-A", "web", "acc-A", None, 12))
                .unwrap(),
            "{b}"
        );

        // Orders of one account: oldest first (created_at, then id), at most `limit`.
        for (id, account, at) in [
            ("o-3", "acc-A", 30),
            ("o-1", "acc-A", 20),
            ("o-2", "acc-A", 20),
            ("o-x", "acc-C", 5),
        ] {
            assert!(
                l.acme_insert(&acme(Order, id, "web", account, None, at))
                    .unwrap(),
                "{b}"
            );
        }
        l.acme_insert(&acme(Authz, "z-1", "web", "acc-A", None, 1))
            .unwrap();
        let ids = |v: Vec<AcmeRow>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(l.acme_list(Order, "acc-A", 10).unwrap()),
            ["acc-A", "o-1", "o-2", "o-3"],
            "{b}"
        );
        assert_eq!(
            ids(l.acme_list(Order, "acc-A", 2).unwrap()),
            ["acc-A", "o-1"],
            "{b}: limit"
        );
        assert!(l.acme_list(Order, "acc-A", 0).unwrap().is_empty(), "{b}");
        assert_eq!(
            ids(l.acme_list(Order, "acc-A", usize::MAX).unwrap()).len(),
            4,
            "{b}"
        );
        assert_eq!(
            ids(l.acme_list(Authz, "acc-A", 10).unwrap()),
            ["z-1"],
            "{b}"
        );
        assert_eq!(
            ids(l.acme_list(Account, "acc-A", 10).unwrap()),
            ["acc-A"],
            "{b}"
        );
        assert!(l.acme_list(Order, "nobody", 10).unwrap().is_empty(), "{b}");
    }
}

#[test]
fn acme_updates_are_compare_and_swap() {
    use AcmeKind::{Account, Order};
    for (b, l, _keep) in backends("acmecas") {
        let a = acme(Account, "acc-A", "web", "acc-A", Some("k1"), 10);
        let other = acme(Account, "acc-B", "web", "acc-B", Some("k2"), 11);
        let far = acme(Account, "acc-C", "internal", "acc-C", Some("k3"), 12);
        for r in [&a, &other, &far] {
            assert!(l.acme_insert(r).unwrap(), "{b}");
        }
        // From the stored version: written, one more.
        let mut v1 = a.clone();
        v1.body = r#"{"status":"valid"}"#.into();
        assert_eq!(l.acme_update(&v1).unwrap(), AcmeUpdate::Done, "{b}");
        let got = l.acme_get(Account, "acc-A").unwrap().unwrap();
        assert_eq!(
            (got.version, got.body.as_str()),
            (2, v1.body.as_str()),
            "{b}"
        );
        // The same version again (a writer that lost the race): stale, nothing written.
        let mut late = a.clone();
        late.body = r#"{"status":"deactivated"}"#.into();
        assert_eq!(l.acme_update(&late).unwrap(), AcmeUpdate::Stale, "{b}");
        assert_eq!(l.acme_get(Account, "acc-A").unwrap().unwrap(), got, "{b}");
        // No such row (or another kind): stale.
        let mut gone = acme(Account, "nope", "web", "nope", None, 1);
        assert_eq!(l.acme_update(&gone).unwrap(), AcmeUpdate::Stale, "{b}");
        gone.id = "acc-A".into();
        gone.kind = Order;
        gone.version = 2;
        assert_eq!(l.acme_update(&gone).unwrap(), AcmeUpdate::Stale, "{b}");
        // Another account's key in the same directory: taken, nothing written.
        let mut rekey = got.clone();
        rekey.key = Some("k2".into());
        rekey.body = "{}".into();
        assert_eq!(l.acme_update(&rekey).unwrap(), AcmeUpdate::KeyTaken, "{b}");
        assert_eq!(l.acme_get(Account, "acc-A").unwrap().unwrap(), got, "{b}");
        assert_eq!(
            l.acme_by_key(Account, "web", "k2").unwrap().unwrap().id,
            "acc-B",
            "{b}"
        );
        // A key held only in another directory is free here (key change); the old key is let go.
        rekey.key = Some("k3".into());
        assert_eq!(l.acme_update(&rekey).unwrap(), AcmeUpdate::Done, "{b}");
        let moved = l.acme_by_key(Account, "web", "k3").unwrap().unwrap();
        assert_eq!((moved.id.as_str(), moved.version), ("acc-A", 3), "{b}");
        assert_eq!(l.acme_by_key(Account, "web", "k1").unwrap(), None, "{b}");
        assert_eq!(
            l.acme_by_key(Account, "internal", "k3").unwrap(),
            Some(far.clone()),
            "{b}"
        );
        // The released key can be taken, and a key can be dropped (None).
        let mut b2 = other.clone();
        b2.key = Some("k1".into());
        assert_eq!(l.acme_update(&b2).unwrap(), AcmeUpdate::Done, "{b}");
        let mut none = moved.clone();
        none.key = None;
        assert_eq!(l.acme_update(&none).unwrap(), AcmeUpdate::Done, "{b}");
        let last = l.acme_get(Account, "acc-A").unwrap().unwrap();
        assert_eq!((last.key, last.version), (None, 4), "{b}");
        // Directory, account and creation time are not what an update changes.
        assert_eq!(
            (
                last.directory.as_str(),
                last.account.as_str(),
                last.created_at
            ),
            ("web", "acc-A", 10),
            "{b}"
        );
    }
}

#[test]
fn racing_acme_updates_from_one_version_have_one_winner() {
    for (b, [r1, r2], _keep) in replicas("acmerace") {
        assert!(r1
            .acme_insert(&acme(AcmeKind::Order, "o", "web", "a", None, 1))
            .unwrap());
        // Each round: 8 writers on two replicas read the same version, then all write at once.
        for round in 0..10i64 {
            let seen = r2.acme_get(AcmeKind::Order, "o").unwrap().unwrap();
            assert_eq!(seen.version, round + 1, "{b}");
            let barrier = std::sync::Barrier::new(8);
            let outcomes: Vec<(usize, AcmeUpdate)> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..8)
                    .map(|t| {
                        let l = if t % 2 == 0 { &r1 } else { &r2 };
                        let (barrier, seen) = (&barrier, &seen);
                        s.spawn(move || {
                            let mut mine = seen.clone();
                            mine.body = format!(r#"{{"round":{round},"writer":{t}}}"#);
                            barrier.wait();
                            (t, l.acme_update(&mine).unwrap())
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let done: Vec<usize> = outcomes
                .iter()
                .filter(|(_, o)| *o == AcmeUpdate::Done)
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(done.len(), 1, "{b}: round {round}: {outcomes:?}");
            assert!(
                outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, AcmeUpdate::Done | AcmeUpdate::Stale)),
                "{b}: {outcomes:?}"
            );
            // The stored body is the winner's.
            let now = r1.acme_get(AcmeKind::Order, "o").unwrap().unwrap();
            assert_eq!(
                (now.version, now.body),
                (
                    round + 2,
                    format!(r#"{{"round":{round},"writer":{}}}"#, done[0])
                ),
                "{b}"
            );
        }
    }
}

#[test]
fn a_certificate_recorded_with_an_acme_object_moves_it_or_neither_is_written() {
    for (b, [r1, r2], _keep) in replicas("acmethen") {
        let order = acme(AcmeKind::Order, "o", "web", "a", None, 1);
        assert!(r1.acme_insert(&order).unwrap(), "{b}");
        // Eight finalizes on two replicas from the same version, each with its own certificate:
        // one certificate is recorded and the order moves once, to that certificate.
        let barrier = std::sync::Barrier::new(8);
        let outcomes: Vec<(usize, bool)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|t| {
                    let l = if t % 2 == 0 { &r1 } else { &r2 };
                    let (barrier, order) = (&barrier, &order);
                    s.spawn(move || {
                        let valid = AcmeRow {
                            body: format!(r#"{{"status":"valid","certificate":"c{t}"}}"#),
                            ..order.clone()
                        };
                        barrier.wait();
                        let done =
                            l.record_with(&record(&format!("c{t}"), "acme:web"), Some(&valid));
                        if let Err(e) = &done {
                            assert!(e.downcast_ref::<Stale>().is_some(), "{b}: {e:#}");
                        }
                        (t, done.is_ok())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<usize> = outcomes.iter().filter(|o| o.1).map(|o| o.0).collect();
        assert_eq!(won.len(), 1, "{b}: {outcomes:?}");
        let stored = r2.acme_get(AcmeKind::Order, "o").unwrap().unwrap();
        assert_eq!(
            (stored.version, stored.body),
            (
                2,
                format!(r#"{{"status":"valid","certificate":"c{}"}}"#, won[0])
            ),
            "{b}"
        );
        for t in 0..8 {
            assert_eq!(
                r1.find(&format!("c{t}")).unwrap().is_some(),
                t == won[0],
                "{b}: only the winner's certificate is recorded"
            );
        }
        // A stale version is refused on its own, with nothing recorded.
        let late = r1
            .record_with(&record("late", "acme:web"), Some(&order))
            .unwrap_err();
        assert!(late.downcast_ref::<Stale>().is_some(), "{b}: {late:#}");
        assert!(r2.find("late").unwrap().is_none(), "{b}");
        // Without an object, a record is a record.
        r2.record_with(&record("plain", "t"), None).unwrap();
        assert!(r1.find("plain").unwrap().is_some(), "{b}");
    }
}

#[test]
fn a_proof_is_spent_once_and_forgotten_after_it_expires() {
    for (b, l, _keep) in backends("proof") {
        assert!(l.spend_proof("f1", "j", 100, 10).unwrap(), "{b}");
        assert!(!l.spend_proof("f1", "j", 100, 20).unwrap(), "{b}: a replay");
        assert!(
            l.spend_proof("f2", "j", 100, 20).unwrap(),
            "{b}: another certificate's jti"
        );
        assert!(l.spend_proof("f1", "k", 100, 20).unwrap(), "{b}");
        // Past its expiry the record goes (the proof itself is refused as expired by then).
        assert!(l.spend_proof("f1", "j", 300, 101).unwrap(), "{b}");
        assert!(!l.spend_proof("f1", "j", 300, 102).unwrap(), "{b}");
    }
}

#[test]
fn a_lineage_is_found_from_any_member_branches_included() {
    for (b, ledger, _keep) in backends("lineage") {
        // a → b → c, b → d (renewed twice), and an unrelated e.
        for (serial, from) in [
            ("0a", None),
            ("0b", Some("0a")),
            ("0c", Some("0b")),
            ("0d", Some("0b")),
            ("0e", None),
        ] {
            let mut r = record(serial, "operator");
            r.renewed_from = from.map(String::from);
            ledger.record(&r).unwrap();
        }
        for member in ["0a", "0b", "0c", "0D"] {
            assert_eq!(
                ledger.lineage(member).unwrap(),
                ["0a", "0b", "0c", "0d"],
                "{b}: {member}"
            );
        }
        assert_eq!(ledger.lineage("0e").unwrap(), ["0e"], "{b}");
        assert!(ledger.lineage("ff").unwrap().is_empty(), "{b}");
    }
}

#[test]
fn reserved_uses_are_spent_with_the_record_or_released() {
    for (b, l, _keep) in backends("uses") {
        let t = NewToken {
            hash: b"h2",
            id: "t2",
            profile: "default",
            identity: None,
            uses: 2,
            expires_at: 100,
            created_at: 0,
        };
        l.create_token(&t).unwrap();
        // Two uses: two reservations succeed, the third is refused while they are in flight.
        let a = l.consume_token(b"h2", 10).unwrap().unwrap();
        let _b = l.consume_token(b"h2", 10).unwrap().unwrap();
        assert_eq!(
            l.consume_token(b"h2", 10).unwrap(),
            Err(TokenRefusal::Used),
            "{b}"
        );
        // One fails (released), one is recorded (spent): one use is left.
        l.refund_token(&a.id).unwrap();
        l.record(&record("01", "t2")).unwrap();
        let c = l.consume_token(b"h2", 10).unwrap().unwrap();
        l.record(&record("02", "t2")).unwrap();
        assert_eq!(c.id, "t2");
        assert_eq!(
            l.consume_token(b"h2", 10).unwrap(),
            Err(TokenRefusal::Used),
            "{b}"
        );
        // A repeated serial is refused and spends nothing.
        l.create_token(&NewToken {
            hash: b"h3",
            id: "t3",
            uses: 1,
            ..t
        })
        .unwrap();
        l.consume_token(b"h3", 10).unwrap().unwrap();
        assert!(l.record(&record("01", "t3")).is_err(), "{b}");
        l.refund_token("t3").unwrap();
        assert!(l.consume_token(b"h3", 10).unwrap().is_ok(), "{b}");
        assert_eq!(
            l.consume_token(b"nope", 10).unwrap(),
            Err(TokenRefusal::Unknown),
            "{b}"
        );
        assert_eq!(
            l.consume_token(b"h2", 100).unwrap(),
            Err(TokenRefusal::Expired),
            "{b}"
        );
        assert_eq!(l.list().unwrap().len(), 2, "{b}");
        // A token id or hash used twice is refused.
        assert!(l.create_token(&t).is_err(), "{b}");
    }
}

#[test]
fn concurrent_records_share_commits_and_fail_alone() {
    for (b, l, _keep) in backends("group") {
        l.create_token(&NewToken {
            hash: b"g",
            id: "g",
            profile: "default",
            identity: None,
            uses: 1000,
            expires_at: 100,
            created_at: 0,
        })
        .unwrap();
        // 8 threads x 50 records; every 10th repeats an earlier serial and must fail on its own.
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut failed = 0;
                    for i in 0..50 {
                        l.consume_token(b"g", 10).unwrap().unwrap();
                        let serial = if i % 10 == 9 {
                            format!("{t:02x}{:04x}", i - 1)
                        } else {
                            format!("{t:02x}{i:04x}")
                        };
                        if l.record(&record(&serial, "g")).is_err() {
                            l.refund_token("g").unwrap();
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let failed: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(failed, 8 * 5, "{b}");
        assert_eq!(l.list().unwrap().len(), 8 * 45, "{b}");
        // Exactly the recorded certificates spent uses: the rest can still be taken, no more.
        let left = l.export().unwrap().tokens[0].uses_left;
        assert_eq!(left, 1000 - 8 * 45, "{b}");
        for _ in 0..left {
            l.consume_token(b"g", 10).unwrap().unwrap();
        }
        assert_eq!(
            l.consume_token(b"g", 10).unwrap(),
            Err(TokenRefusal::Used),
            "{b}"
        );
    }
}

#[test]
fn revocations_crl_numbers_and_a_copy_to_the_other_backend() {
    let all = backends("copy");
    for (b, l, _keep) in &all {
        let t = NewToken {
            hash: b"k",
            id: "k",
            profile: "web",
            identity: Some("a.example.com"),
            uses: 3,
            expires_at: 100,
            created_at: 5,
        };
        l.create_token(&t).unwrap();
        for s in ["01", "02", "03"] {
            let mut r = record(s, "k");
            r.identity = Some("a.example.com".into());
            l.record(&r).unwrap();
        }
        assert!(l.revoke("02", 50, Some(1)).unwrap(), "{b}");
        assert!(!l.revoke("02", 60, Some(4)).unwrap(), "{b}: revoked once");
        assert!(!l.revoke("ff", 60, None).unwrap(), "{b}: unknown");
        assert!(l.revoke("03", 55, None).unwrap(), "{b}");
        let revocations = [
            Revocation {
                serial: "02".into(),
                revoked_at: 50,
                reason: Some(1),
            },
            Revocation {
                serial: "03".into(),
                revoked_at: 55,
                reason: None,
            },
        ];
        assert_eq!(
            l.revoked().unwrap(),
            revocations,
            "{b}: the first reason stays"
        );
        let two = l.find("02").unwrap().unwrap();
        assert_eq!(
            (two.revoked_at, two.revocation_reason),
            (Some(50), Some(1)),
            "{b}"
        );
        assert_eq!(
            l.find("03").unwrap().unwrap().revocation_reason,
            None,
            "{b}"
        );
        assert_eq!(
            l.find("01").unwrap().unwrap().revocation_reason,
            None,
            "{b}"
        );
        let numbers: Vec<u64> = (0..3).map(|_| l.next_crl_number().unwrap()).collect();
        assert_eq!(numbers, [1, 2, 3], "{b}");
        assert_eq!(l.bundle_sequence("set-a", 1).unwrap(), 1, "{b}");
        assert_eq!(l.bundle_sequence("set-b", 2).unwrap(), 2, "{b}");
        l.check_writable().unwrap();
        // Registration entries: by node, oldest first; an id once; delete once.
        for (id, node, at) in [("e2", "n1", 20), ("e1", "n1", 10), ("e3", "n2", 10)] {
            l.create_entry(&entry(id, node, at)).unwrap();
        }
        assert!(
            l.create_entry(&entry("e1", "n2", 30)).is_err(),
            "{b}: an id once"
        );
        let ids = |v: Vec<Entry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(l.entries(Some("n1")).unwrap()), ["e1", "e2"], "{b}");
        assert_eq!(ids(l.entries(None).unwrap()), ["e1", "e3", "e2"], "{b}");
        assert_eq!(
            l.entries(Some("n1")).unwrap()[0],
            entry("e1", "n1", 10),
            "{b}: read back whole"
        );
        l.create_entry(&entry("gone", "n1", 40)).unwrap();
        assert!(l.delete_entry("gone").unwrap(), "{b}");
        assert!(!l.delete_entry("gone").unwrap(), "{b}: deleted once");
        // ACME objects of every kind, one updated (its version goes along), ids whose byte order
        // differs from a locale's order.
        for a in [
            acme(AcmeKind::Order, "b_1", "web", "Zed", None, 7),
            acme(AcmeKind::Account, "Zed", "web", "Zed", Some("thumb"), 5),
            acme(AcmeKind::Order, "B-2", "web", "Zed", None, 7),
            acme(AcmeKind::Authz, "z", "web", "Zed", None, 8),
            acme(AcmeKind::Order, "a", "web", "Zed", None, 7),
            acme(
                AcmeKind::Account,
                "acc",
                "internal",
                "acc",
                Some("thumb"),
                6,
            ),
        ] {
            assert!(l.acme_insert(&a).unwrap(), "{b}");
        }
        let mut zed = l.acme_get(AcmeKind::Account, "Zed").unwrap().unwrap();
        zed.body = r#"{"status":"valid"}"#.into();
        assert_eq!(l.acme_update(&zed).unwrap(), AcmeUpdate::Done, "{b}");
        // Export, import into a fresh ledger of every backend: the same content, and the CRL
        // number goes on from where it was.
        let snap = l.export().unwrap();
        assert_eq!(
            (
                snap.tokens.len(),
                snap.certificates.len(),
                snap.crl_number,
                snap.entries.len(),
                snap.acme.len()
            ),
            (1, 3, 3, 3, 6),
            "{b}"
        );
        let order: Vec<(&str, &str, i64)> = snap
            .acme
            .iter()
            .map(|a| (a.kind.name(), a.id.as_str(), a.version))
            .collect();
        assert_eq!(
            order,
            [
                ("account", "Zed", 2),
                ("account", "acc", 1),
                ("authz", "z", 1),
                ("order", "B-2", 1),
                ("order", "a", 1),
                ("order", "b_1", 1),
            ],
            "{b}: by kind, created_at, id (bytes)"
        );
        for (b2, fresh, _k) in backends("copyto") {
            fresh.import(&snap).unwrap();
            assert_eq!(fresh.export().unwrap(), snap, "{b} → {b2}");
            assert_eq!(fresh.next_crl_number().unwrap(), 4, "{b} → {b2}");
            assert_eq!(fresh.bundle_sequence("set-b", 9).unwrap(), 2, "{b} → {b2}");
            assert_eq!(fresh.bundle_sequence("set-a", 9).unwrap(), 3, "{b} → {b2}");
            assert!(
                fresh.import(&snap).is_err(),
                "{b} → {b2}: a second import merges nothing"
            );
            assert_eq!(fresh.find("02").unwrap().unwrap().revoked_at, Some(50));
            assert_eq!(fresh.revoked().unwrap(), revocations, "{b} → {b2}");
            // The copied objects go on: versions, keys and lists as they were.
            let z = fresh.acme_get(AcmeKind::Account, "Zed").unwrap().unwrap();
            assert_eq!(z.version, 2, "{b} → {b2}");
            assert_eq!(
                fresh
                    .acme_by_key(AcmeKind::Account, "web", "thumb")
                    .unwrap(),
                Some(z.clone()),
                "{b} → {b2}"
            );
            assert_eq!(
                fresh.acme_update(&z).unwrap(),
                AcmeUpdate::Done,
                "{b} → {b2}"
            );
            assert_eq!(
                fresh.acme_list(AcmeKind::Order, "Zed", 2).unwrap().len(),
                2,
                "{b} → {b2}"
            );
        }
    }
}

#[test]
fn recent_certificates_of_an_identity_and_credential() {
    for (b, l, _keep) in backends("recent") {
        for (serial, identity, token, at) in [
            ("01", "a", "kbs:x/sign", 100),
            ("02", "a", "kbs:x/sign", 200),
            ("03", "b", "kbs:x/sign", 200),
            ("04", "a", "operator", 200),
            ("05", "a", "kbs:x/sign", 300),
        ] {
            let mut r = record(serial, token);
            r.identity = Some(identity.into());
            r.issued_at = at;
            r.csr_sha256 = Some(format!("csr-of-{serial}"));
            l.record(&r).unwrap();
        }
        l.revoke("05", 301, Some(5)).unwrap();
        assert_eq!(
            l.find("02").unwrap().unwrap().csr_sha256.as_deref(),
            Some("csr-of-02"),
            "{b}: the CSR's digest is kept"
        );
        let got: Vec<String> = l
            .recent("a", "kbs:x/sign", 150)
            .unwrap()
            .into_iter()
            .map(|r| r.serial)
            .collect();
        assert_eq!(got, ["02"], "{b}");
        assert_eq!(l.recent("a", "kbs:x/sign", 0).unwrap().len(), 2, "{b}");
    }
}

#[test]
fn token_state_is_read_without_spending_and_the_bundle_sequence_only_grows() {
    for (b, l, _keep) in backends("peek") {
        assert_eq!(l.token_info(b"nope").unwrap(), None, "{b}");
        l.create_token(&NewToken {
            hash: b"h",
            id: "t1",
            profile: "web",
            identity: None,
            uses: 2,
            expires_at: 1_000,
            created_at: 10,
        })
        .unwrap();
        for _ in 0..3 {
            let i = l.token_info(b"h").unwrap().unwrap();
            assert_eq!(
                (i.grant.id.as_str(), i.uses_left, i.expires_at, i.created_at),
                ("t1", 2, 1_000, 10),
                "{b}"
            );
        }
        let g = l.consume_token(b"h", 20).unwrap().unwrap();
        l.record(&record("aa", &g.id)).unwrap();
        assert_eq!(l.token_info(b"h").unwrap().unwrap().uses_left, 1, "{b}");

        // Same set: same number; a new set: one more; an old set again: one more still.
        let seq: Vec<u64> = ["x", "x", "y", "y", "x", "z", "z"]
            .iter()
            .map(|d| l.bundle_sequence(d, 1).unwrap())
            .collect();
        assert_eq!(seq, [1, 1, 2, 2, 3, 4, 4], "{b}");
        // Signers meeting one new set at once agree on one number.
        let racing: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| s.spawn(|| l.bundle_sequence("w", 2).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(racing.iter().all(|n| *n == 5), "{b}: {racing:?}");
    }
}
