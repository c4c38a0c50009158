//! The node agent with the release signer, measured from outside as a workload sees it: an agent
//! whose node has 1,000 registration entries gets all its first X.509-SVIDs from the signer
//! (batched; the agent's own log line says when), its RSS then; and from the warm agent, through
//! the `spiffe` crate's client, FetchX509SVID's first response on a new stream and a cached
//! FetchJWTSVID, p50/p99. `cargo bench -p wasm-pki-host --bench agent` (needs the release binary:
//! `cargo build --release -p wasm-pki-host`, or WASM_PKI_RELEASE_BIN). Lines starting with
//! SUMMARY feed scripts/bench.sh's table.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENTRIES: usize = 1000;
const CALLS: usize = 2000;

const POLICY: &str = r#"
[profiles.node]
defaultLifetimeSecs = 86400
maxLifetimeSecs = 86400

[profiles.workload]
maxLifetimeSecs = 3600
spiffe = { trustDomain = "example.org", pathPrefix = "/bench" }

[agent]
nodeProfile = "node"
workloadProfile = "workload"
"#;

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
        "wasm-pki {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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
    let work = std::env::temp_dir().join(format!("wasm-pki-agent-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let dir = work.join("ca");
    let d = dir.to_str().unwrap();
    run(&bin, &["init", "--dir", d]);
    let policy = work.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let p = policy.to_str().unwrap();

    // 1,000 entries for this node: one for this process's uid, the rest for other uids (the
    // agent signs an SVID for every entry of its node, as SPIRE's does).
    let uid: u32 = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let t = Instant::now();
    for i in 0..ENTRIES {
        let selector = if i == 0 {
            format!("unix:uid:{uid}")
        } else {
            format!("unix:uid:{}", 100_000 + i)
        };
        run(
            &bin,
            &[
                "entry",
                "create",
                "--dir",
                d,
                "--policy",
                p,
                "--node",
                "bench-node",
                "--spiffe-id",
                &format!("spiffe://example.org/bench/w{i}"),
                "--selector",
                &selector,
            ],
        );
    }
    eprintln!(
        "{ENTRIES} entries made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let token = run(
        &bin,
        &[
            "token",
            "create",
            "--dir",
            d,
            "--profile",
            "node",
            "--identity",
            "bench-node",
            "--policy",
            p,
        ],
    )
    .lines()
    .last()
    .unwrap()
    .to_string();

    let mut server = Kill(
        Command::new(&bin)
            .args([
                "serve",
                "--dir",
                d,
                "--policy",
                p,
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "off",
                "--public-url",
                "https://ca.example.org",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the signer did not start").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split(' ')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    // The agent from cold: enrolment, then every entry's first SVID.
    let socket = work.join("agent.sock");
    let started = Instant::now();
    let mut agent = Kill(
        Command::new(&bin)
            .args([
                "agent",
                "--server",
                &base,
                "--ca-file",
                dir.join("root.pem").to_str().unwrap(),
                "--token",
                &token,
                "--data-dir",
                work.join("agent").to_str().unwrap(),
                "--socket",
                socket.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = agent.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("SVIDs due signed") {
                let _ = tx.send((line, Instant::now()));
            }
        }
    });
    let (line, at) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the agent signed no SVIDs within 120 s");
    let from_start = at - started;
    assert!(
        line.contains(&format!("{ENTRIES} of {ENTRIES} SVIDs due signed")),
        "{line}"
    );
    let signing_ms: f64 = line
        .split(" signed in ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(agent.0.id());
    println!("agent: {line}");
    println!(
        "agent: {ENTRIES} entries: all first SVIDs {:.0} ms after the agent started (enrolment included), {signing_ms:.0} ms of batched signing; RSS {rss} KiB",
        from_start.as_secs_f64() * 1e3
    );

    // The warm agent, through the spiffe crate.
    let endpoint = format!("unix://{}", socket.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut x509, mut jwt, first_jwt) = rt.block_on(async {
        let client = spiffe::WorkloadApiClient::connect_to(&endpoint)
            .await
            .unwrap();
        let svid = client.fetch_x509_svid().await.unwrap();
        assert_eq!(
            svid.spiffe_id().to_string(),
            "spiffe://example.org/bench/w0"
        );
        let t = Instant::now();
        client.fetch_jwt_svid(["bench"], None).await.unwrap();
        let first_jwt = t.elapsed();
        let (mut x509, mut jwt) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            client.fetch_x509_context().await.unwrap();
            client.fetch_jwt_svid(["bench"], None).await.unwrap();
        }
        for _ in 0..CALLS {
            let t = Instant::now();
            client.fetch_x509_context().await.unwrap();
            x509.push(t.elapsed());
            let t = Instant::now();
            client.fetch_jwt_svid(["bench"], None).await.unwrap();
            jwt.push(t.elapsed());
        }
        (x509, jwt, first_jwt)
    });
    let (x50, x99) = (pct(&mut x509, 50), pct(&mut x509, 99));
    let (j50, j99) = (pct(&mut jwt, 50), pct(&mut jwt, 99));
    println!(
        "agent ({ENTRIES} entries on the node): FetchX509SVID first response p50 {x50:.2} ms p99 {x99:.2} ms; cached FetchJWTSVID p50 {j50:.2} ms p99 {j99:.2} ms ({CALLS} calls each); first JWT-SVID (from the signer) {:.2} ms",
        first_jwt.as_secs_f64() * 1e3
    );
    println!(
        "SUMMARY\tagent: FetchX509SVID first response, warm (1,000 entries)\tp50 {x50:.2} ms, p99 {x99:.2} ms\t-\t-\tp99 <= 5 ms"
    );
    println!(
        "SUMMARY\tagent: cached FetchJWTSVID, warm\tp50 {j50:.2} ms, p99 {j99:.2} ms\t-\t-\tp99 <= 2 ms"
    );
    println!(
        "SUMMARY\tagent: 1,000 entries' first SVIDs from the signer (batched)\t{signing_ms:.0} ms signing, {:.0} ms from start; RSS {} MiB\t-\t-\t<= 3 s",
        from_start.as_secs_f64() * 1e3,
        rss / 1024
    );
    drop(agent);
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}
