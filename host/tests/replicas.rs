//! Several signers, one PostgreSQL ledger, as one CA: a single-use token raced on three
//! replicas, a revocation through one in every replica's CRL (one CRL number sequence), a
//! replica SIGKILLed under load, the database crashing and coming back under load, a copy from
//! SQLite, the schema version and TLS to the database. A real PostgreSQL (scripts/pg.sh).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// One test at a time: one of them takes the shared PostgreSQL down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const ID: &str = "r.example.com";

struct Cluster {
    tmp: TempDir,
    dir: PathBuf,
    url: String,
    servers: Vec<Server>,
    csr: String,
}

impl Cluster {
    fn start(tag: &str, replicas: usize) -> Option<Cluster> {
        let url = pg_database(tag)?;
        let (tmp, dir) = new_ca(tag, &[]);
        let servers = (0..replicas)
            .map(|_| Server::start(&dir, &["--ledger", &url]))
            .collect();
        let csr = openssl_csr(&tmp.0, "c", P256, &format!("/CN={ID}"), None);
        Some(Cluster {
            tmp,
            dir,
            url,
            servers,
            csr,
        })
    }

    fn token(&self, uses: u32) -> String {
        token(
            &self.dir,
            &[
                "--ledger",
                &self.url,
                "--identity",
                ID,
                "--uses",
                &uses.to_string(),
            ],
        )
    }

    /// Serials of the certificates issued to clients (not the listeners'), from the database.
    fn recorded(&self) -> Vec<String> {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.query(
            "SELECT serial FROM certificates WHERE token_id <> 'listener'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

fn code(r: &Resp) -> String {
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default()["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn try_sign(addr: &str, token: &str, csr: &str) -> Option<Resp> {
    let body = serde_json::json!({ "csr": csr }).to_string();
    http(
        addr,
        "POST",
        "/v1/sign",
        &[("Authorization", &format!("Bearer {token}"))],
        body.as_bytes(),
    )
    .ok()
}

#[test]
fn a_single_use_token_raced_on_three_replicas_gives_one_certificate() {
    let _one = one_at_a_time();
    let Some(c) = Cluster::start("race", 3) else {
        return;
    };
    let rounds = 20;
    let mut refused = 0;
    for round in 0..rounds {
        let tok = c.token(1);
        let gate = Arc::new(Barrier::new(c.servers.len()));
        let racers: Vec<_> = c
            .servers
            .iter()
            .map(|s| {
                let (addr, tok, csr, gate) =
                    (s.addr.clone(), tok.clone(), c.csr.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    sign(&addr, &tok, &csr)
                })
            })
            .collect();
        let answers: Vec<Resp> = racers.into_iter().map(|h| h.join().unwrap()).collect();
        let won = answers.iter().filter(|r| r.status == 200).count();
        assert_eq!(won, 1, "round {round}: {won} certificates for one use");
        for r in answers.iter().filter(|r| r.status != 200) {
            assert_eq!(
                (r.status, code(r).as_str()),
                (401, "token_used"),
                "round {round}: {}",
                r.body
            );
            refused += 1;
        }
    }
    assert_eq!(c.recorded().len(), rounds);
    figures(&format!(
        "replicas: a single-use token raced on 3 signers sharing PostgreSQL, {rounds} rounds: {rounds} certificates, {refused} token_used"
    ));
}

/// The CRL a replica serves: its number and the serials it lists (lower-case hex).
fn crl_of(work: &std::path::Path, addr: &str) -> (u64, Vec<String>) {
    let (status, _, der) = get_bytes(addr, "/v1/crl.der");
    assert_eq!(status, 200);
    std::fs::write(work.join("crl.der"), der).unwrap();
    let text = openssl_ok(
        work,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    let number = text
        .split("X509v3 CRL Number:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no CRL number: {text}"));
    let serials = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    (number, serials)
}

#[test]
fn a_revocation_through_one_replica_is_in_every_replicas_crl() {
    let _one = one_at_a_time();
    let Some(c) = Cluster::start("crl", 2) else {
        return;
    };
    let tok = c.token(2);
    let first = sign(&c.servers[0].addr, &tok, &c.csr);
    let second = sign(&c.servers[1].addr, &tok, &c.csr);
    assert_eq!((first.status, second.status), (200, 200));
    let serial = first.json()["serial"].as_str().unwrap().to_string();
    let kept = second.json()["serial"].as_str().unwrap().to_string();
    cli_ok(&["revoke", "--ledger", &c.url, "--serial", &serial]);
    let mut last = 0;
    for i in 0..6 {
        let (number, serials) = crl_of(&c.tmp.0, &c.servers[i % 2].addr);
        assert!(serials.contains(&serial), "replica {}: {serials:?}", i % 2);
        assert!(!serials.contains(&kept));
        assert!(
            number > last,
            "CRL numbers must only grow across replicas: {number} after {last}"
        );
        last = number;
    }
}

#[test]
fn a_replica_killed_under_load_loses_no_certificate() {
    let _one = one_at_a_time();
    let Some(mut c) = Cluster::start("kill", 2) else {
        return;
    };
    let tok = c.token(1_000_000);
    let addrs: Vec<String> = c.servers.iter().map(|s| s.addr.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (addrs, tok, csr, stop, received) = (
                addrs.clone(),
                tok.clone(),
                c.csr.clone(),
                stop.clone(),
                received.clone(),
            );
            std::thread::spawn(move || {
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match try_sign(&addrs[n % addrs.len()], &tok, &csr) {
                        Some(r) if r.status == 200 => received
                            .lock()
                            .unwrap()
                            .push(r.json()["serial"].as_str().unwrap().to_string()),
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let before = received.lock().unwrap().len();
    c.servers[0].kill(); // SIGKILL
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().unwrap();
    }
    let received = received.lock().unwrap().clone();
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "a serial was answered twice");
    let recorded: HashSet<String> = c.recorded().into_iter().collect();
    let missing: Vec<&&String> = unique.iter().filter(|s| !recorded.contains(**s)).collect();
    assert!(missing.is_empty(), "answered but not recorded: {missing:?}");
    assert!(
        received.len() > before,
        "the surviving replica kept signing"
    );
    figures(&format!(
        "replicas: SIGKILL of one of 2 signers under 8 clients: {} certificates answered ({before} before the kill), all {} in PostgreSQL once ({} records: a record may outlive its lost answer)",
        received.len(),
        received.len(),
        recorded.len()
    ));
}

/// Status and Retry-After of a sign request, from the raw answer.
fn sign_raw(addr: &str, token: &str, csr: &str) -> Option<(u16, Option<String>, String)> {
    let body = serde_json::json!({ "csr": csr }).to_string();
    let head = format!(
        "POST /v1/sign HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let raw = exchange(addr, head.as_bytes());
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: ").map(String::from));
    Some((status, retry, text))
}

#[test]
fn the_database_crashing_under_load_gives_503s_then_recovers_without_a_restart() {
    let _one = one_at_a_time();
    let Some(pg_dir) = std::env::var("WASM_PKI_PG_DIR").ok() else {
        return;
    };
    let Some(c) = Cluster::start("restart", 2) else {
        return;
    };
    let tok = c.token(1_000_000);
    let addrs: Vec<String> = c.servers.iter().map(|s| s.addr.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<(Instant, u16, Option<String>)>::new()));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (addrs, tok, csr, stop, log) = (
                addrs.clone(),
                tok.clone(),
                c.csr.clone(),
                stop.clone(),
                log.clone(),
            );
            std::thread::spawn(move || {
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if let Some((status, _, text)) = sign_raw(&addrs[n % addrs.len()], &tok, &csr) {
                        let serial = (status == 200).then(|| {
                            let body = text.split_once("\r\n\r\n").unwrap().1;
                            serde_json::from_str::<serde_json::Value>(body).unwrap()["serial"]
                                .as_str()
                                .unwrap()
                                .to_string()
                        });
                        if status != 200 {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        log.lock().unwrap().push((Instant::now(), status, serial));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let down_at = Instant::now();
    pg_sh(&["down", &pg_dir]);
    std::thread::sleep(Duration::from_millis(1500));
    // While it is down: 503 with Retry-After, and the replicas say they are not ready.
    let (status, retry, text) = sign_raw(&addrs[0], &tok, &c.csr).unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(retry.is_some(), "{text}");
    assert!(text.contains("ledger_unavailable"), "{text}");
    assert_eq!(
        http(&addrs[1], "GET", "/readyz", &[], b"").unwrap().status,
        503
    );
    std::thread::sleep(Duration::from_millis(1500));
    pg_sh(&["up", &pg_dir]);
    let up_at = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().unwrap();
    }
    let log = log.lock().unwrap().clone();
    let statuses: HashSet<u16> = log.iter().map(|e| e.1).collect();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    let ok_before = log.iter().filter(|e| e.1 == 200 && e.0 < down_at).count();
    let unavailable = log.iter().filter(|e| e.1 == 503).count();
    let ok_after = log.iter().filter(|e| e.1 == 200 && e.0 > up_at).count();
    assert!(
        ok_before > 0 && unavailable > 0 && ok_after > 0,
        "{ok_before} / {unavailable} / {ok_after}"
    );
    // Every certificate answered is recorded, before, during and after.
    let recorded: HashSet<String> = c.recorded().into_iter().collect();
    let answered: Vec<&String> = log.iter().filter_map(|e| e.2.as_ref()).collect();
    assert!(
        answered.iter().all(|s| recorded.contains(*s)),
        "an answered certificate is not recorded"
    );
    let first_after = log
        .iter()
        .filter(|e| e.1 == 200 && e.0 > up_at)
        .map(|e| e.0 - up_at)
        .min()
        .unwrap();
    assert_eq!(
        http(&addrs[1], "GET", "/readyz", &[], b"").unwrap().status,
        200
    );
    figures(&format!(
        "replicas: PostgreSQL crashed for 3 s under 4 clients on 2 signers: {ok_before} certificates before, {unavailable} answers 503 (Retry-After), {ok_after} after it came back (first {:.0} ms after), all {} answered ones recorded; no signer restarted",
        first_after.as_secs_f64() * 1000.0,
        answered.len()
    ));
}

#[test]
fn a_sqlite_ledger_is_copied_to_postgresql_and_goes_on_there() {
    let _one = one_at_a_time();
    let Some(url) = pg_database("migrate") else {
        return;
    };
    let (tmp, dir) = new_ca("migrate", &[]);
    let d = dir.to_str().unwrap();
    let csr = openssl_csr(&tmp.0, "m", P256, &format!("/CN={ID}"), None);
    let server = Server::start(&dir, &[]);
    let tok = token(&dir, &["--identity", ID, "--uses", "3"]);
    let spare = token(&dir, &["--identity", ID]);
    let a = sign(&server.addr, &tok, &csr);
    let b = sign(&server.addr, &tok, &csr);
    assert_eq!((a.status, b.status), (200, 200));
    let revoked = a.json()["serial"].as_str().unwrap().to_string();
    cli_ok(&["revoke", "--dir", d, "--serial", &revoked]);
    let (crl_before, _) = crl_of(&tmp.0, &server.addr);
    drop(server);
    let before = cli_ok(&["list", "--dir", d]);
    // A registration entry (node agents' ledger rows) goes along.
    let policy = tmp.path("agent-policy.toml");
    std::fs::write(
        &policy,
        "[profiles.node]\n[profiles.workload]\nspiffe = { trustDomain = \"example.org\" }\n[agent]\nnodeProfile = \"node\"\nworkloadProfile = \"workload\"\n",
    )
    .unwrap();
    cli_ok(&[
        "entry",
        "create",
        "--dir",
        d,
        "--policy",
        policy.to_str().unwrap(),
        "--node",
        "node1.example.org",
        "--spiffe-id",
        "spiffe://example.org/migrated",
        "--selector",
        "unix:uid:1000",
    ]);
    let entries_before = cli_ok(&["entry", "list", "--dir", d]);

    let sqlite = format!("sqlite:{d}/ledger.sqlite");
    let out = cli_ok(&["ledger", "migrate", "--from", &sqlite, "--to", &url]);
    let certs = before.lines().count();
    assert!(
        out.contains(&format!(
            "copied 2 tokens, {certs} certificates (1 revoked), 1 registration entries, 0 ACME objects"
        )),
        "{out}"
    );
    assert!(out.contains("reads back identical"), "{out}");
    // A second copy into the same database merges nothing.
    let (ok, _, err) = cli(&["ledger", "migrate", "--from", &sqlite, "--to", &url]);
    assert!(!ok && err.contains("not empty"), "{err}");
    // The same list through WASM_PKI_LEDGER.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-pki"))
        .args(["list"])
        .env("WASM_PKI_LEDGER", &url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), before);
    assert_eq!(
        cli_ok(&["entry", "list", "--ledger", &url]),
        entries_before,
        "the registration entry, as it was"
    );

    // The signer goes on on PostgreSQL: the tokens' uses carried over, the revocation is in its
    // CRL, whose number goes on growing.
    let server = Server::start(&dir, &["--ledger", &url]);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200, "the third use");
    let r = sign(&server.addr, &tok, &csr);
    assert_eq!((r.status, code(&r).as_str()), (401, "token_used"));
    assert_eq!(sign(&server.addr, &spare, &csr).status, 200);
    let (crl_after, serials) = crl_of(&tmp.0, &server.addr);
    assert!(serials.contains(&revoked));
    assert!(crl_after > crl_before, "{crl_after} after {crl_before}");
    // A missing source is an error, not an empty copy.
    let (ok, _, err) = cli(&[
        "ledger",
        "migrate",
        "--from",
        "sqlite:/nonexistent/l.sqlite",
        "--to",
        &url,
    ]);
    assert!(!ok && err.contains("no such ledger"), "{err}");
}

#[test]
fn schema_versions_and_tls_to_the_database() {
    let _one = one_at_a_time();
    let Some(url) = pg_database("schema") else {
        return;
    };
    // The binary creates the schema; a newer schema than it knows is refused, clearly.
    cli_ok(&["list", "--ledger", &url]);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let version = |admin: &mut postgres::Client| {
        admin
            .query_one("SELECT version FROM wasm_pki_schema", &[])
            .unwrap()
            .get::<_, i32>(0)
    };
    assert_eq!(version(&mut admin), 6);
    // A database at version 1 is migrated to 6 (the identity index, the trust bundle's
    // sequence table, the CSR digest column, the entries table, then the ACME objects' table)
    // when a signer opens it.
    admin
        .batch_execute("DROP INDEX certificates_identity; DROP TABLE bundle_sequence; ALTER TABLE certificates DROP COLUMN csr_sha256; DROP TABLE entries; DROP TABLE acme_objects; UPDATE wasm_pki_schema SET version = 1")
        .unwrap();
    cli_ok(&["list", "--ledger", &url]);
    assert_eq!(version(&mut admin), 6);
    admin
        .query_one("SELECT COUNT(*) FROM acme_objects", &[])
        .unwrap();
    admin
        .query_one("SELECT COUNT(csr_sha256) FROM certificates", &[])
        .unwrap();
    admin
        .query_one("SELECT COUNT(*) FROM bundle_sequence", &[])
        .unwrap();
    let indexed: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'certificates_identity'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(indexed, 1);
    admin
        .execute("UPDATE wasm_pki_schema SET version = 99", &[])
        .unwrap();
    let (ok, _, err) = cli(&["list", "--ledger", &url]);
    assert!(
        !ok && err.contains("schema version 99, newer than this wasm-pki knows"),
        "{err}"
    );

    // TLS when the URL asks for it, checked against the given root.
    let Ok(pg_dir) = std::env::var("WASM_PKI_PG_DIR") else {
        return;
    };
    let Some(url) = pg_database("tls") else {
        return;
    };
    let root = format!("{pg_dir}/ca.crt");
    let tls = format!("{url}?sslmode=require&sslrootcert={root}");
    let (tmp, dir) = new_ca("tls", &[]);
    let server = Server::start(&dir, &["--ledger", &tls]);
    let tok = token(&dir, &["--ledger", &tls, "--identity", ID]);
    let csr = openssl_csr(&tmp.0, "t", P256, &format!("/CN={ID}"), None);
    assert_eq!(sign(&server.addr, &tok, &csr).status, 200);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'wasm-pki'",
            &[],
        )
        .unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.get::<_, bool>(0)),
        "the signer's connections are not all TLS"
    );
    drop(server);
    // Another root: the database's certificate is refused. No root: a clear error.
    let wrong = format!(
        "{url}?sslmode=require&sslrootcert={}",
        dir.join("root.pem").display()
    );
    let (ok, _, err) = cli(&["list", "--ledger", &wrong]);
    assert!(!ok && err.to_lowercase().contains("certificate"), "{err}");
    let (ok, _, err) = cli(&["list", "--ledger", &format!("{url}?sslmode=require")]);
    assert!(!ok && err.contains("needs sslrootcert"), "{err}");
    // The password never shows in an error.
    let secret = url.replace("postgres@", "postgres:hunter2@") + "?sslmode=require";
    let (_, _, err) = cli(&["list", "--ledger", &secret]);
    assert!(!err.contains("hunter2"), "{err}");
}

/// A plain-HTTP reverse proxy on loopback that sends each request to the next of `backends`
/// in turn (one backend connection per request, `Connection: close` both ways), counting the
/// ACME POSTs each backend answered: what a round-robin load balancer in front of replicas does.
struct RoundRobin {
    addr: String,
    posts: Arc<Vec<std::sync::atomic::AtomicUsize>>,
}

impl RoundRobin {
    fn start(backends: Vec<String>) -> RoundRobin {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let posts: Arc<Vec<std::sync::atomic::AtomicUsize>> =
            Arc::new(backends.iter().map(|_| Default::default()).collect());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counts = posts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (backends, next, counts) = (backends.clone(), next.clone(), counts.clone());
                std::thread::spawn(move || {
                    let mut client = client;
                    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
                    // The request head, then its body by Content-Length.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match client.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut headers);
                    if req.parse(&buf[..head_end]).is_err() {
                        return;
                    }
                    let length = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .unwrap_or(0usize);
                    let method = req.method.unwrap_or("").to_string();
                    let path = req.path.unwrap_or("/").to_string();
                    let mut head = format!("{method} {path} HTTP/1.1\r\n");
                    for h in req.headers.iter() {
                        if !h.name.eq_ignore_ascii_case("connection") {
                            head.push_str(&format!(
                                "{}: {}\r\n",
                                h.name,
                                String::from_utf8_lossy(h.value)
                            ));
                        }
                    }
                    head.push_str("connection: close\r\n\r\n");
                    while buf.len() < head_end + length {
                        match client.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst) % backends.len();
                    if method == "POST" && path.starts_with("/acme/") {
                        counts[i].fetch_add(1, Ordering::SeqCst);
                    }
                    let Ok(mut backend) = std::net::TcpStream::connect(&backends[i]) else {
                        return;
                    };
                    let _ = backend.write_all(head.as_bytes());
                    let _ = backend.write_all(&buf[head_end..head_end + length]);
                    let mut answer = Vec::new();
                    let _ = backend.read_to_end(&mut answer);
                    let _ = client.write_all(&answer);
                });
            }
        });
        RoundRobin { addr, posts }
    }

    fn posts(&self) -> Vec<usize> {
        self.posts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

/// ACME across replicas: one certbot run (account, order, http-01, finalize, download) and a
/// revocation through a round-robin proxy in front of two signers sharing one PostgreSQL
/// ledger: nonces made by one replica are taken by the other, an account, order or
/// authorization made on one is found on the other, and validation started on one completes
/// wherever the client polls next. (Plain HTTP behind the proxy, as behind a TLS-terminating
/// load balancer; URLs follow the proxy's Host.)
#[test]
fn one_certbot_run_spans_two_replicas_on_postgresql() {
    let _one = one_at_a_time();
    let Some(dns) = common::acme::Dns::from_env() else {
        return;
    };
    let Some(url) = pg_database("acme_replicas") else {
        return;
    };
    let (tmp, dir) = new_ca("acme-replicas", &[]);
    let http_port = free_port();
    let policy = tmp.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[profiles.web]
usage = "server"
maxLifetimeSecs = 604800
names = {{ allow = [{{ type = "dns", value = ".acme.test" }}] }}

[acme.web]
profile = "web"
challenges = ["http-01"]
validationPorts = {{ http = {http_port}, tls = 443 }}
resolvers = ["{}"]
allowedNetworks = ["127.0.0.0/8"]
"#,
            dns.addr
        ),
    )
    .unwrap();
    let args = [
        "--ledger",
        url.as_str(),
        "--policy",
        policy.to_str().unwrap(),
        "--plain-http",
    ];
    let replicas: Vec<Server> = (0..2).map(|_| Server::start(&dir, &args)).collect();
    let proxy = RoundRobin::start(replicas.iter().map(|s| s.addr.clone()).collect());
    let directory = format!("http://{}/acme/web/directory", proxy.addr);
    let work = tmp.path("certbot");
    let root = dir.join("root.pem");
    let name = dns.unique_name("r");
    let port = http_port.to_string();
    common::acme::certbot_ok(
        &root,
        &[
            "certonly",
            "--standalone",
            "--http-01-port",
            &port,
            "--http-01-address",
            "127.0.0.1",
            "--server",
            &directory,
            "-d",
            &name,
        ],
        &[],
        &work,
    );
    let live = common::acme::certbot_live(&work, &name);
    common::acme::assert_issued(
        &root,
        &live.join("cert.pem"),
        Some(&live.join("chain.pem")),
        &[name.as_str()],
    );
    let serial = common::acme::cert_serial(&work, &live.join("cert.pem"));
    common::acme::certbot_ok(
        &root,
        &[
            "revoke",
            "--cert-path",
            live.join("cert.pem").to_str().unwrap(),
            "--server",
            &directory,
            "--no-delete-after-revoke",
        ],
        &[],
        &work,
    );
    let posts = proxy.posts();
    assert!(
        posts.iter().all(|&n| n >= 3),
        "each replica answered ACME POSTs of the run: {posts:?}"
    );
    // Both replicas' CRLs list it (one ledger).
    for r in &replicas {
        let (_, serials) = crl_of(&tmp.0, &r.addr);
        let want = common::acme::normal_serial(&serial);
        assert!(
            serials
                .iter()
                .any(|s| common::acme::normal_serial(s) == want),
            "{} does not list {serial}: {serials:?}",
            r.addr
        );
    }
    println!("acme across replicas: ACME POSTs per replica {posts:?}");
}
