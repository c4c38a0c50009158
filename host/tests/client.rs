//! The node-side client against a real signer on its HTTPS listener: `wasm-pki enroll` (pinned
//! CA, key made locally, files and modes), `wasm-pki renew` over mTLS, with a renewal proof and
//! as a re-key; every proof refusal by code with nothing recorded; expired certificates within
//! and beyond the profile's grace; and the renew daemon on 20-second certificates across a
//! signer restart, with a reader that never sees a mismatched pair.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use common::*;

const POLICY: &str = r#"
[profiles.node]
names = { allow = [{ type = "dns", value = ".example.com" }] }

[profiles.brief]
defaultLifetimeSecs = 2
backdateSecs = 0
renewal = { expiredGraceSecs = 600 }

[profiles.strict]
defaultLifetimeSecs = 2
backdateSecs = 0

[profiles.twenty]
defaultLifetimeSecs = 20
backdateSecs = 0
"#;

struct Ca {
    tmp: TempDir,
    dir: PathBuf,
    policy: PathBuf,
}

impl Ca {
    fn new(tag: &str) -> Ca {
        Self::with(tag, &[])
    }
    fn with(tag: &str, init: &[&str]) -> Ca {
        let (tmp, dir) = new_ca(tag, init);
        let policy = tmp.path("policy.toml");
        std::fs::write(&policy, POLICY).unwrap();
        Ca { tmp, dir, policy }
    }
    fn d(&self) -> &str {
        self.dir.to_str().unwrap()
    }
    fn p(&self) -> &str {
        self.policy.to_str().unwrap()
    }
    fn token(&self, profile: &str, identity: &str) -> String {
        token(
            &self.dir,
            &[
                "--profile",
                profile,
                "--identity",
                identity,
                "--policy",
                self.p(),
            ],
        )
    }
    fn serve(&self, extra: &[&str]) -> Server {
        Server::start(&self.dir, &[&["--policy", self.p()], extra].concat())
    }
    /// The root's fingerprint as `openssl x509 -fingerprint -sha256` prints it (AA:BB:…).
    fn fingerprint(&self) -> String {
        let out = openssl_ok(
            &self.dir,
            &[
                "x509",
                "-in",
                "root.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        out.trim().rsplit('=').next().unwrap().to_string()
    }
}

fn enroll(
    server: &str,
    ca: &Ca,
    token: &str,
    out: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let fp = ca.fingerprint();
    let mut args = vec![
        "enroll",
        "--server",
        server,
        "--ca-fingerprint",
        fp.as_str(),
        "--token",
        token,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

fn renew_cli(out: &Path, extra: &[&str]) -> (bool, String, String) {
    cli(&[&["renew", "--out", out.to_str().unwrap()], extra].concat())
}

/// openssl verifies the live certificate of an output directory with its chain and root.
fn verify_dir(out: &Path) {
    let args = [
        "verify",
        "-CAfile",
        "ca.pem",
        "-untrusted",
        "chain.pem",
        "cert.pem",
    ];
    let verify = openssl_ok(out, &args);
    assert!(verify.contains("cert.pem: OK"), "{verify}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The live pair of an output directory, read through one resolution of `current`: (key, leaf).
fn live_pair(out: &Path) -> Option<(wasm_pki::KeyPair, wasm_pki::Certificate)> {
    let gen = out.join(std::fs::read_link(out.join("current")).ok()?);
    let key = std::fs::read(gen.join("key.pem")).ok()?;
    let cert = std::fs::read(gen.join("cert.pem")).ok()?;
    let key = wasm_pki::KeyPair::from_pem(&key, None).expect("key.pem is a whole key");
    let cert = wasm_pki::Certificate::parse_all(&cert).expect("cert.pem is whole")[0].clone();
    Some((key, cert))
}

fn matches(key: &wasm_pki::KeyPair, cert: &wasm_pki::Certificate) -> bool {
    cert.public_key().unwrap().spki_der() == key.public_key().spki_der()
}

fn rows(dir: &Path) -> usize {
    issued(dir).lines().count()
}

#[test]
fn enroll_pins_the_ca_makes_the_key_here_and_writes_private_files() {
    if common::no_module() {
        return;
    }
    // An intermediate issues, so chain.pem has something in it.
    let ca = Ca::with("enroll", &["--intermediate"]);
    let server = ca.serve(&[]);
    let tok = ca.token("node", "n1.example.com");
    let out = ca.tmp.path("n1");

    // A wrong pin: refused before anything is sent, nothing written, the token unspent.
    let wrong = vec!["AB"; 32].join(":");
    let (ok, _, err) = cli(&[
        "enroll",
        "--server",
        &server.base,
        "--ca-fingerprint",
        &wrong,
        "--token",
        &tok,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("refusing to trust"), "{err}");
    assert!(!out.exists());

    // --dry-run: a CSR on stdout and no connection at all (a listener that counts them).
    let quiet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    quiet.set_nonblocking(true).unwrap();
    let url = format!("https://{}", quiet.local_addr().unwrap());
    let (ok, stdout, err) = enroll(&url, &ca, &tok, &out, &["--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        stdout.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{stdout}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(quiet.accept().is_err(), "the dry run connected");
    assert!(!out.exists());

    // The real thing, with the fingerprint as the signer printed it.
    let before = rows(&ca.dir);
    let (ok, stdout, err) = enroll(
        &server.base,
        &ca,
        &tok,
        &out,
        &["--identity", "n1.example.com"],
    );
    assert!(ok, "{stdout}{err}");
    assert_eq!(rows(&ca.dir), before + 1);
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    assert_eq!(mode(&out.join("versions")), 0o700);
    for f in ["cert.pem", "chain.pem", "ca.pem"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let o = out.to_str().unwrap();
    let t = Path::new(o);
    verify_dir(t);
    assert_eq!(
        openssl_ok(t, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]),
        openssl_ok(t, &["pkey", "-in", "key.pem", "-pubout"])
    );
    let text = openssl_ok(t, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(text.contains("DNS:n1.example.com"), "{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("ca.pem")).unwrap(),
        std::fs::read_to_string(ca.dir.join("root.pem")).unwrap()
    );

    // The directory holds a certificate: a second enrolment needs --force.
    let tok2 = ca.token("node", "n2.example.com");
    let (ok, _, err) = enroll(&server.base, &ca, &tok2, &out, &[]);
    assert!(!ok && err.contains("--force"), "{err}");
    // A spent token, a bad token: refused with the signer's code, nothing written.
    let other = ca.tmp.path("n3");
    let (ok, _, err) = enroll(&server.base, &ca, &tok, &other, &[]);
    assert!(!ok && err.contains("token_used"), "{err}");
    let (ok, _, err) = enroll(&server.base, &ca, "wpk_nonsense", &other, &[]);
    assert!(!ok && err.contains("bad_token"), "{err}");
    assert!(!other.exists());

    // --ca-file instead of a pin, and an Ed25519 key.
    let (ok, _, err) = cli(&[
        "enroll",
        "--server",
        &server.base,
        "--ca-file",
        ca.dir.join("root.pem").to_str().unwrap(),
        "--token",
        &tok2,
        "--algorithm",
        "ed25519",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let text = openssl_ok(&other, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(
        text.contains("ED25519") && text.contains("DNS:n2.example.com"),
        "{text}"
    );
}

/// A proof made by hand: header and claims as given, signed by `key`.
fn forge(key: &wasm_pki::KeyPair, header: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(claims.as_bytes())
    );
    let sig = Base64UrlUnpadded::encode_string(&key.sign_raw(input.as_bytes()));
    format!("{input}.{sig}")
}

fn rng() -> wasm_pki::SeedRng {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).unwrap();
    wasm_pki::SeedRng::from_seed(s)
}

fn now() -> i64 {
    wasm_pki_host::authority::now()
}

fn post_proof(server: &Server, proof: &str, body: &str) -> Resp {
    http(
        &server.addr,
        "POST",
        "/v1/renew",
        &[("Authorization", &format!("Bearer {proof}"))],
        body.as_bytes(),
    )
    .unwrap()
}

fn code(r: &Resp) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn renew_over_mtls_with_a_proof_and_rekeyed_and_every_proof_refusal() {
    if common::no_module() {
        return;
    }
    let ca = Ca::with("renew-client", &["--intermediate"]);
    let server = ca.serve(&[]);
    let out = ca.tmp.path("node");
    let (ok, _, err) = enroll(
        &server.base,
        &ca,
        &ca.token("node", "r.example.com"),
        &out,
        &[],
    );
    assert!(ok, "{err}");
    let (k0, c0) = live_pair(&out).unwrap();

    // Over mTLS: the same key, a new serial, linked to the first in the ledger.
    let (ok, stdout, err) = renew_cli(&out, &[]);
    assert!(ok, "{stdout}{err}");
    let (k1, c1) = live_pair(&out).unwrap();
    assert_eq!(k1.public_key().spki_der(), k0.public_key().spki_der());
    assert_ne!(c1.serial_hex(), c0.serial_hex());
    assert!(issued(&ca.dir).contains(&format!("renewed_from={}", c0.serial_hex())));
    // With a proof instead of the client certificate.
    let (ok, stdout, err) = renew_cli(&out, &["--proof"]);
    assert!(ok, "{stdout}{err}");
    let (_, c2) = live_pair(&out).unwrap();
    assert!(issued(&ca.dir).contains(&format!("renewed_from={}", c1.serial_hex())));
    // Re-keyed: a new key for the same names; the next mTLS renewal presents the new pair, so
    // rustls on both ends accepts it.
    let (ok, stdout, err) = renew_cli(&out, &["--rekey"]);
    assert!(ok, "{stdout}{err}");
    let (k3, c3) = live_pair(&out).unwrap();
    assert_ne!(k3.public_key().spki_der(), k0.public_key().spki_der());
    assert!(matches(&k3, &c3));
    assert!(issued(&ca.dir).contains(&format!("renewed_from={}", c2.serial_hex())));
    let (ok, _, err) = renew_cli(&out, &[]);
    assert!(ok, "{err}");
    let (k4, c4) = live_pair(&out).unwrap();
    let t = out.as_path();
    verify_dir(t);
    let text = openssl_ok(t, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(text.contains("DNS:r.example.com"), "{text}");
    // Only the live generation and the one before it are kept.
    assert_eq!(std::fs::read_dir(out.join("versions")).unwrap().count(), 2);

    // Proofs by hand. The audience the signer accepts is its URL's renew endpoint.
    let aud = format!("{}/v1/renew", server.base);
    let before = rows(&ca.dir);
    let good = wasm_pki::sign_proof(&k4, &c4, &aud, now(), &mut rng()).unwrap();
    let r = post_proof(&server, &good, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let renewed = r.json()["certificate"].as_str().unwrap().to_string();
    let c5 = wasm_pki::Certificate::parse(renewed.as_bytes()).unwrap();
    assert!(matches(&k4, &c5));
    // The same proof again, and concurrently with itself: refused, nothing issued.
    let r = post_proof(&server, &good, "");
    assert_eq!(
        (r.status, code(&r).as_str()),
        (401, "proof_replayed"),
        "{}",
        r.body
    );
    let fresh = wasm_pki::sign_proof(&k4, &c5, &aud, now(), &mut rng()).unwrap();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, p) = (server.addr.clone(), fresh.clone());
            std::thread::spawn(move || {
                http(
                    &addr,
                    "POST",
                    "/v1/renew",
                    &[("Authorization", &format!("Bearer {p}"))],
                    b"",
                )
                .unwrap()
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(rows(&ca.dir), before + 2);

    let before = rows(&ca.dir);
    let x5c = Base64::encode_string(c5.der());
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","x5c":["{x5c}"]}}"#);
    let claims = |aud: &str, iat: i64, exp: i64| {
        format!(
            r#"{{"aud":"{aud}","iat":{iat},"exp":{exp},"jti":"{}"}}"#,
            iat ^ 0x5a5a
        )
    };
    let thief = wasm_pki::KeyPair::generate(wasm_pki::Algorithm::P256, &mut rng());
    let n = now();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another audience",
            forge(
                &k4,
                &header,
                &claims("https://evil.example/v1/renew", n, n + 60),
            ),
            "proof_audience",
        ),
        (
            "the sign endpoint as audience",
            forge(
                &k4,
                &header,
                &claims(&format!("{}/v1/sign", server.base), n, n + 60),
            ),
            "proof_audience",
        ),
        (
            "signed by another key",
            forge(&thief, &header, &claims(&aud, n, n + 60)),
            "proof_signature",
        ),
        (
            "expired",
            forge(&k4, &header, &claims(&aud, n - 600, n - 500)),
            "proof_expired",
        ),
        (
            "too long-lived",
            forge(&k4, &header, &claims(&aud, n, n + 3600)),
            "proof_expired",
        ),
        ("garbage", "not-a-proof".into(), "proof_malformed"),
    ];
    for (what, proof, want) in &cases {
        let r = post_proof(&server, proof, "");
        assert_eq!(
            (r.status, code(&r).as_str()),
            (401, *want),
            "{what}: {}",
            r.body
        );
    }
    let r = http(
        &server.addr,
        "POST",
        "/v1/renew",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        b"",
    )
    .unwrap();
    assert_eq!((r.status, code(&r).as_str()), (401, "proof_malformed"));
    // A proof for a certificate from another CA: its signature is good, the ledger knows it not.
    let other = Ca::new("renew-foreign");
    let foreign_out = other.tmp.path("f");
    let other_server = other.serve(&[]);
    let (ok, _, err) = enroll(
        &other_server.base,
        &other,
        &other.token("node", "f.example.com"),
        &foreign_out,
        &[],
    );
    assert!(ok, "{err}");
    let (fk, fc) = live_pair(&foreign_out).unwrap();
    let p = wasm_pki::sign_proof(&fk, &fc, &aud, now(), &mut rng()).unwrap();
    let r = post_proof(&server, &p, "");
    assert_eq!(
        (r.status, code(&r).as_str()),
        (401, "not_issued_here"),
        "{}",
        r.body
    );
    assert_eq!(rows(&ca.dir), before, "a refused proof recorded something");

    // Revoked: the client exits non-zero with the reason.
    cli_ok(&[
        "revoke",
        "--dir",
        ca.d(),
        "--serial",
        &live_pair(&out).unwrap().1.serial_hex(),
    ]);
    let (ok, _, err) = renew_cli(&out, &[]);
    assert!(!ok && err.contains("revoked"), "{err}");
    let (ok, _, err) = renew_cli(&out, &["--proof"]);
    assert!(!ok && err.contains("revoked"), "{err}");

    // Expired: a proof within the profile's grace renews; without grace, refused.
    let brief = ca.tmp.path("brief");
    let strict = ca.tmp.path("strict");
    for (dir, profile) in [(&brief, "brief"), (&strict, "strict")] {
        let (ok, _, err) = enroll(
            &server.base,
            &ca,
            &ca.token(profile, &format!("{profile}.example.com")),
            dir,
            &[],
        );
        assert!(ok, "{err}");
    }
    let expires = live_pair(&strict)
        .unwrap()
        .1
        .not_after()
        .max(live_pair(&brief).unwrap().1.not_after());
    while now() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, stdout, err) = renew_cli(&brief, &[]);
    assert!(ok, "expired within grace: {stdout}{err}");
    let (ok, _, err) = renew_cli(&strict, &[]);
    assert!(!ok && err.contains("certificate_expired"), "{err}");
}

#[test]
fn the_renew_daemon_keeps_a_20_second_certificate_fresh_across_a_signer_restart() {
    if common::no_module() {
        return;
    }
    let ca = Ca::new("daemon");
    let mut server = ca.serve(&[]);
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let out = ca.tmp.path("node");
    let (ok, _, err) = enroll(
        &server.base,
        &ca,
        &ca.token("twenty", "d.example.com"),
        &out,
        &[],
    );
    assert!(ok, "{err}");
    let first = live_pair(&out).unwrap().1;
    assert_eq!(first.not_after() - first.not_before(), 20);

    // A reader polling the live pair the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, mismatches) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (out, stop, reads, mismatches) =
            (out.clone(), stop.clone(), reads.clone(), mismatches.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match live_pair(&out) {
                    Some((k, c)) if matches(&k, &c) => reads.fetch_add(1, Ordering::Relaxed),
                    _ => mismatches.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let hook_log = ca.tmp.path("hook.log");
    let hook = format!("echo \"$WASM_PKI_CERT\" >> {}", hook_log.display());
    let daemon = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-pki"))
        .args([
            "renew",
            "--daemon",
            "--rekey",
            "--out",
            out.to_str().unwrap(),
            "--exec",
            &hook,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = KillOnDrop(daemon);
    let serials = |out: &Path| live_pair(out).map(|p| p.1.serial_hex()).unwrap_or_default();
    let mut seen = vec![serials(&out)];
    let started = Instant::now();
    let mut wait_for_renewals = |n: usize, within: Duration| {
        let deadline = Instant::now() + within;
        let target = seen.len() + n;
        while seen.len() < target {
            assert!(
                Instant::now() < deadline,
                "only {} renewals after {:?}",
                seen.len() - 1,
                started.elapsed()
            );
            let s = serials(&out);
            if seen.last() != Some(&s) {
                seen.push(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_renewals(2, Duration::from_secs(30));
    // The signer goes away for longer than the daemon's first retries, and comes back on the
    // same port.
    server.kill();
    std::thread::sleep(Duration::from_secs(13));
    let server = Server::start(
        &ca.dir,
        &["--policy", ca.p(), "--listen", &format!("127.0.0.1:{port}")],
    );
    wait_for_renewals(2, Duration::from_secs(30));
    // Revoke the live certificate and its lineage: the daemon's next renewal is refused and it
    // stops, non-zero, saying why.
    let live = serials(&out);
    cli_ok(&["revoke", "--dir", ca.d(), "--serial", &live, "--lineage"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop after revocation"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let mut err = String::new();
    use std::io::Read;
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("revoked"), "{err}");
    assert!(
        err.contains("retrying in"),
        "the daemon never retried while the signer was down: {err}"
    );
    assert_eq!(
        mismatches.load(Ordering::Relaxed),
        0,
        "a reader saw a mismatched pair"
    );
    let hooks = std::fs::read_to_string(&hook_log).unwrap().lines().count();
    assert!(hooks >= 4, "{hooks} hook runs");
    // Every renewal was recorded as a renewal of the one before, each with a new key.
    let list = issued(&ca.dir);
    for pair in seen.windows(2) {
        let line = list
            .lines()
            .find(|l| l.starts_with(&pair[1]))
            .unwrap_or_default();
        assert!(
            line.contains(&format!("renewed_from={}", pair[0])),
            "{line}\n{list}"
        );
    }
    figures(&format!(
        "renew daemon: {} renewals of a 20 s certificate in {:.0} s across a signer restart, {} pair reads, 0 mismatched",
        seen.len() - 1,
        started.elapsed().as_secs_f64(),
        reads.load(Ordering::Relaxed)
    ));
    drop(server);
}
