//! Criterion benchmarks of the core: keygen, CSR create, CSR parse+verify, and issue, per algorithm.

use criterion::{criterion_group, criterion_main, Criterion};
use wasm_pki::*;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn now() -> OffsetDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn bench(c: &mut Criterion) {
    for alg in [Algorithm::P256, Algorithm::Ed25519] {
        let mut g = c.benchmark_group(alg.to_string());
        let mut r = rng();
        g.bench_function("keygen", |b| b.iter(|| KeyPair::generate(alg, &mut r)));
        let key = KeyPair::generate(alg, &mut r);
        let req = CsrRequest {
            subject: Subject::common_name("bench.example.com"),
            names: vec![SanName::dns("bench.example.com").unwrap()],
        };
        g.bench_function("csr_create", |b| b.iter(|| req.sign(&key).unwrap()));
        let csr_der = req.sign(&key).unwrap().der().to_vec();
        g.bench_function("csr_parse_verify", |b| {
            b.iter(|| ParsedCsr::parse(&csr_der).unwrap())
        });
        let mut p = CaParams::new("Bench CA");
        p.algorithm = alg;
        let ca = CertificateAuthority::new_root(&p, now(), &mut r).unwrap();
        let profile = Profile::default();
        let opts = IssueOptions {
            identity: Some(SanName::dns("bench.example.com").unwrap()),
            lifetime_secs: None,
            ..Default::default()
        };
        let t = now();
        g.bench_function("issue", |b| {
            b.iter(|| {
                let csr = ParsedCsr::parse(&csr_der).unwrap();
                ca.issue(&csr, &profile, &opts, t, &mut r).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
