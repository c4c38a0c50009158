//! Sandboxed issue against the same core natively, side by side in one run (interleaved rounds,
//! medians), for P-256 and Ed25519, with the npm package's module and (when built) the server build
//! host/dist/wasm_pki_server.wasm, each with the host verifying the CSR's signature (ring, the
//! default) and with the guest verifying it in wasm. `cargo bench -p wasm-pki-host --bench issue`. Lines starting
//! with SUMMARY feed scripts/bench.sh's table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use wasm_pki::protocol::{LoadCa, Request, Seed, SignRequest, Signed};
use wasm_pki::*;
use wasm_pki_host::sandbox::Sandbox;

const ROUNDS: usize = 15;
const PER_ROUND: usize = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut modules = vec![(
        "npm module",
        std::env::var("WASM_PKI_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| here.join("../pkg/dist/wasm_pki_bg.wasm")),
    )];
    let server = here.join("dist/wasm_pki_server.wasm");
    if server.exists() {
        modules.push(("server build", server));
    }
    let cache = std::env::temp_dir().join("wasm-pki-bench-cache");
    let now_secs = wasm_pki_host::authority::now();
    let now = OffsetDateTime::from_unix_timestamp(now_secs).unwrap();
    println!("| CA/CSR algorithm | module | native µs | sandboxed µs | ratio |");
    println!("|---|---|---|---|---|");
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let mut p = CaParams::new("Bench CA");
        p.algorithm = alg;
        let ca = CertificateAuthority::new_root(&p, now, &mut rng).unwrap();
        let key = KeyPair::generate(alg, &mut rng);
        let csr_pem = CsrRequest {
            subject: Subject::default(),
            names: vec![SanName::dns("bench.example.com").unwrap()],
        }
        .sign(&key)
        .unwrap()
        .to_pem();
        let profile = Profile::default();
        let opts = IssueOptions {
            identity: Some(SanName::dns("bench.example.com").unwrap()),
            lifetime_secs: None,
            ..Default::default()
        };
        let request = || {
            Request::Sign(Box::new(SignRequest {
                csr_pem: csr_pem.clone(),
                profile: profile.clone(),
                identity: Some("bench.example.com".into()),
                lifetime_secs: None,
                now: now_secs,
                seed: Seed([0xab; 32]),
                renew_fraction: None,
                extra_names: Vec::new(),
                exact_names: None,
            }))
        };
        let native = |n: usize| {
            let mut rng = SeedRng::from_seed([7; 32]);
            let t = Instant::now();
            for _ in 0..n {
                let csr = ParsedCsr::parse(csr_pem.as_bytes()).unwrap();
                let issued = ca.issue(&csr, &profile, &opts, now, &mut rng).unwrap();
                std::hint::black_box(issued.certificate.to_pem());
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        // (label, sandboxed / native): each against the native core interleaved with it.
        let mut ratios: Vec<(String, f64)> = Vec::new();
        for ((label, module), host_verifies) in modules.iter().flat_map(|m| [(m, true), (m, false)])
        {
            let label = if host_verifies {
                format!("{label}, host verifies")
            } else {
                format!("{label}, wasm verifies")
            };
            let sandbox = Sandbox::from_file(module, &cache, 1).unwrap();
            sandbox
                .load_ca(LoadCa {
                    cert_pem: ca.certificate().to_pem(),
                    key_pem: Some(ca.key().unwrap().to_pkcs8_pem().unwrap().to_string()),
                    passphrase: None,
                    public_urls: None,
                    host_verifies,
                    jwt_key_pem: None,
                    jwt_public_key_pem: None,
                })
                .unwrap();
            let sandboxed = |n: usize| {
                let t = Instant::now();
                for _ in 0..n {
                    let out = sandbox
                        .call::<Signed>(&request(), Duration::from_secs(5))
                        .unwrap();
                    assert!(out.is_ok(), "{out:?}");
                }
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            };
            native(20);
            sandboxed(20);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                a.push(native(PER_ROUND));
                b.push(sandboxed(PER_ROUND));
            }
            let (na, sb) = (median(a), median(b));
            ratios.push((label.clone(), sb / na));
            println!("| {alg} | {label} | {na:.0} | {sb:.0} | {:.2}x |", sb / na);
            let target = if alg == Algorithm::P256 {
                "<= 1.5x, < 500 µs"
            } else {
                "<= 1.3x"
            };
            println!(
                "SUMMARY\t{alg} issue, sandboxed ({label}) vs native\t{sb:.0} µs\t{na:.0} µs\t{:.2}x\t{target}",
                sb / na
            );
            if std::env::var("WASM_PKI_BENCH_BREAKDOWN").is_ok() {
                breakdown(&sandbox, &csr_pem, &ca);
            }
        }
        // One module everywhere unless the wide-arithmetic build still wins by more than 15%.
        let of = |l: &str| ratios.iter().find(|(x, _)| x == l).map(|(_, r)| *r);
        if let (Some(npm), Some(server)) = (
            of("npm module, host verifies"),
            of("server build, host verifies"),
        ) {
            println!(
                "SUMMARY\t{alg} issue, server build vs npm module (both host-verified)\t{:.2}x native\t{:.2}x native\t{:.2}x faster\tretire it unless > 1.15x",
                server,
                npm,
                npm / server
            );
        }
    }
}

/// Where a sandboxed call spends its time: the bare call, CSR parse+verify, certificate parse.
fn breakdown(sandbox: &Sandbox, csr_pem: &str, ca: &CertificateAuthority) {
    let time = |req: &serde_json::Value| {
        let bytes = req.to_string().into_bytes();
        let t = Instant::now();
        for _ in 0..200 {
            std::hint::black_box(sandbox.call_bytes(&bytes, Duration::from_secs(5)).unwrap());
        }
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    };
    // An unknown op: the guest decodes and refuses it, so this is the bare call's cost.
    let noop = time(&json!({"op": "nope"}));
    let inspect_csr = time(&json!({"op": "inspect", "pem": csr_pem}));
    let inspect_ca = time(&json!({"op": "inspect", "pem": ca.certificate().to_pem()}));
    let t = Instant::now();
    for _ in 0..200 {
        std::hint::black_box(ParsedCsr::parse(csr_pem.as_bytes()).unwrap());
    }
    let native_parse = t.elapsed().as_secs_f64() * 1e6 / 200.0;
    println!("|   breakdown | | call overhead {noop:.0} µs, inspect CSR (parse+verify) {inspect_csr:.0} µs (native parse+verify {native_parse:.0}), inspect CA cert {inspect_ca:.0} µs | | |");
}
