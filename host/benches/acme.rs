//! ACME with the release signer, measured from outside: 8 accounts of instant-acme (a Rust ACME
//! client we did not write) issue concurrently for a while, each issuance a new order for
//! 127.0.0.1, its http-01 challenge answered on loopback and validated by the signer, finalize,
//! and the certificate downloaded: issuances per second and their p50/p99. Then the signer's CPU
//! time per certificate (utime + stime of its process, /proc) for ACME against `/v1/sign` with a
//! token, the same 8-way concurrency and HTTP client, side by side in one run. `cargo bench -p wasm-pki-host
//! --bench acme` (needs the release binary: `cargo build --release -p wasm-pki-host`, or
//! WASM_PKI_RELEASE_BIN). Lines starting with SUMMARY feed scripts/bench.sh's table.
//! WASM_PKI_BENCH_TRACE=1 prints each issuance's steps.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

const ACCOUNTS: usize = 8;
const ACME_SECS: u64 = 20;
const SIGN_SECS: u64 = 10;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
}

/// The signer's CPU time so far (user + system), seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

/// A tiny http-01 responder on 127.0.0.1:`port` answering the tokens in `keys`.
fn http01_server(port: u16, keys: Arc<Mutex<HashMap<String, String>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let token = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                    .unwrap_or("")
                    .to_string();
                let body = keys.lock().unwrap().get(&token).cloned();
                let mut s = stream;
                let _ = match body {
                    Some(b) => write!(
                        s,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                        b.len()
                    ),
                    None => write!(
                        s,
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                };
            });
        }
    });
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// instant-acme's own HTTP client (hyper, rustls, h2 by ALPN) but with TCP_NODELAY, as
/// production HTTP clients set it: without it, each request's second segment waits for the
/// server's delayed ACK (40 ms), which would measure Nagle's algorithm, not the CA.
fn client(root: &Path) -> Box<dyn instant_acme::HttpClient> {
    Box::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector(root)),
    )
}

/// The same client for `/v1/sign`.
fn sign_client(
    root: &Path,
) -> hyper_util::client::legacy::Client<Https, http_body_util::Full<bytes::Bytes>> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector(root))
}

/// HTTPS trusting only `root`, h2 or HTTP/1.1 by ALPN, TCP_NODELAY.
fn connector(root: &Path) -> Https {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    let (_, der) = pem_rfc7468::decode_vec(&pem).unwrap();
    roots.add(der.into()).unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// One complete ACME issuance for 127.0.0.1 by `account`.
async fn issue(
    account: &Account,
    keys: &Mutex<HashMap<String, String>>,
) -> Result<(), instant_acme::Error> {
    let ids = [Identifier::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let trace = std::env::var_os("WASM_PKI_BENCH_TRACE").is_some();
    let t0 = Instant::now();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let t_order = t0.elapsed();
    let fast = RetryPolicy::new()
        .initial_delay(Duration::from_millis(5))
        .backoff(1.5)
        .timeout(Duration::from_secs(30));
    {
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz?;
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("no http-01 challenge")?;
            let token = challenge.token.clone();
            keys.lock()
                .unwrap()
                .insert(token, challenge.key_authorization().as_str().to_string());
            challenge.set_ready().await?;
        }
    }
    let t_chall = t0.elapsed();
    let status = order.poll_ready(&fast).await?;
    let t_ready = t0.elapsed();
    if status != OrderStatus::Ready {
        eprintln!("the order is {status:?}");
        return Err("the order did not become ready".into());
    }
    order.finalize().await?;
    let t_final = t0.elapsed();
    let chain = order.poll_certificate(&fast).await?;
    if trace {
        eprintln!(
            "order {t_order:?} challenge {t_chall:?} ready {t_ready:?} finalized {t_final:?} certificate {:?}",
            t0.elapsed()
        );
    }
    assert!(chain.contains("BEGIN CERTIFICATE"));
    Ok(())
}

fn main() {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = std::env::var("WASM_PKI_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target.join("release/wasm-pki"));
    assert!(
        bin.exists(),
        "{}: build it first (cargo build --release -p wasm-pki-host)",
        bin.display()
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = std::env::temp_dir().join(format!("wasm-pki-acme-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let dir = work.join("ca");
    let d = dir.to_str().unwrap();
    run(&bin, &["init", "--dir", d, "--name", "ACME bench CA"]);

    let http_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let policy = work.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[profiles.local]
usage = "server"
maxLifetimeSecs = 86400
names = {{ allow = [{{ type = "ip", value = "127.0.0.0/8" }}] }}

[acme.bench]
profile = "local"
challenges = ["http-01"]
validationPorts = {{ http = {http_port}, tls = 443 }}
allowedNetworks = ["127.0.0.0/8"]
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
            "--log-format",
            "off",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the signer stopped");
        if let Some(rest) = line.trim().strip_prefix("wasm-pki signer: listening on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let _signer = Kill(child);
    let root = dir.join("root.pem");
    let directory = format!("{base}/acme/bench/directory");
    let keys: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    http01_server(http_port, keys.clone());

    let metrics_client = sign_client(&root);
    let acme_requests = |rt: &tokio::runtime::Runtime| -> f64 {
        rt.block_on(async {
            let resp = metrics_client
                .request(
                    hyper::Request::get(format!("{base}/metrics"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let text = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| l.starts_with("wasm_pki_requests_total{route=\"acme:"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // ACME: 8 accounts, each issuing one certificate after another for ACME_SECS.
    let requests_before = std::cell::Cell::new(0.0);
    let (latencies, issued, cpu_acme) = rt.block_on(async {
        let mut accounts = Vec::new();
        for _ in 0..ACCOUNTS {
            let (account, _) = Account::builder_with_http(client(&root))
                .create(
                    &NewAccount {
                        contact: &[],
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    directory.clone(),
                    None,
                )
                .await
                .unwrap();
            accounts.push(account);
        }
        // One issuance each to warm up.
        for a in &accounts {
            issue(a, &keys).await.unwrap();
        }
        let cpu0 = cpu_secs(pid);
        requests_before.set(tokio::task::block_in_place(|| {
            let probe = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            acme_requests(&probe)
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for account in accounts {
            let (stop, done, keys) = (stop.clone(), done.clone(), keys.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    issue(&account, &keys).await.unwrap();
                    lat.push(t.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs(ACME_SECS)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid) - cpu0;
        let n = done.load(Ordering::Relaxed);
        (all, (n, elapsed), cpu / n as f64)
    });
    let mut latencies = latencies;
    let (n, elapsed) = issued;
    let per_sec = n as f64 / elapsed;
    let (p50, p99) = (pct(&mut latencies, 50), pct(&mut latencies, 99));
    let per_cert = (acme_requests(&rt) - requests_before.get()) / n as f64;
    println!(
        "ACME: {n} issuances by {ACCOUNTS} accounts in {elapsed:.1} s = {per_sec:.1}/s; p50 {p50:.1} ms, p99 {p99:.1} ms; signer CPU {:.2} ms per certificate; {per_cert:.1} ACME requests per certificate",
        cpu_acme * 1e3
    );

    // /v1/sign with a token for SIGN_SECS.
    let token = run(
        &bin,
        &[
            "token",
            "create",
            "--dir",
            d,
            "--policy",
            policy.to_str().unwrap(),
            "--profile",
            "local",
            "--identity",
            "127.0.0.1",
            "--uses",
            "1000000",
            "--ttl",
            "1h",
        ],
    )
    .lines()
    .last()
    .unwrap()
    .to_string();
    let key = work.join("k.pem");
    let csr = work.join("c.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    // The same HTTP client as the ACME accounts (keep-alive, h2, TCP_NODELAY), 8 tasks.
    let body = serde_json::json!({"csr": std::fs::read_to_string(&csr).unwrap()}).to_string();
    let http = sign_client(&root);
    let cpu0 = cpu_secs(pid);
    let signed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..ACCOUNTS {
            let (signed, stop, http) = (signed.clone(), stop.clone(), http.clone());
            let (body, token, url) = (body.clone(), token.clone(), format!("{base}/v1/sign"));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let rq = hyper::Request::post(&url)
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                        .unwrap();
                    let resp = http.request(rq).await.unwrap();
                    let status = resp.status();
                    let bytes = http_body_util::BodyExt::collect(resp.into_body())
                        .await
                        .unwrap()
                        .to_bytes();
                    assert!(status.is_success(), "{}", String::from_utf8_lossy(&bytes));
                    signed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(SIGN_SECS)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    });
    let m = signed.load(Ordering::Relaxed);
    let cpu_sign = (cpu_secs(pid) - cpu0) / m as f64;
    println!(
        "/v1/sign: {m} certificates in {:.1} s; signer CPU {:.2} ms per certificate",
        started.elapsed().as_secs_f64(),
        cpu_sign * 1e3
    );
    let ratio = cpu_acme / cpu_sign;
    println!("CPU per ACME certificate / per /v1/sign certificate: {ratio:.2}x");
    println!("SUMMARY\tACME issuances/s, 8 accounts (p50/p99 ms)\t{per_sec:.1}/s ({p50:.0}/{p99:.0})\t-\t-\t-");
    println!(
        "SUMMARY\tsigner CPU per ACME certificate vs /v1/sign\t{:.2} ms\t{:.2} ms\t{ratio:.2}x\t<= 3x",
        cpu_acme * 1e3,
        cpu_sign * 1e3
    );
    let _ = std::fs::remove_dir_all(&work);
}
