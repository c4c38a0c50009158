//! Make a root CA, a workload key and CSR, issue a certificate under a profile, and print it all.
//! Run: `cargo run --example quickstart -- [out-dir]` (files are written when a directory is given).

use wasm_pki::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The core never reads the clock or the OS RNG itself: the caller passes both in.
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = OffsetDateTime::from_unix_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64,
    )?;

    let ca = CertificateAuthority::new_root(&CaParams::new("Example Root CA"), now, &mut rng)?;

    let key = KeyPair::generate(Algorithm::P256, &mut rng);
    let csr = CsrRequest {
        subject: Subject::common_name("web.example.com"),
        names: vec![SanName::dns("web.example.com")?],
    }
    .sign(&key)?;

    let parsed = ParsedCsr::parse(csr.to_pem().as_bytes())?;
    let profile = Profile::allowing(vec![NamePattern::dns(".example.com").unwrap()]);
    let opts = IssueOptions {
        identity: Some(SanName::dns("web.example.com")?),
        lifetime_secs: Some(3600),
        ..Default::default()
    };
    let issued = ca.issue(&parsed, &profile, &opts, now, &mut rng)?;
    let chain = [issued.certificate.clone(), ca.certificate().clone()];
    let verified = verify_chain(&chain, now.unix_timestamp())?;

    println!(
        "{}",
        serde_json::to_string_pretty(&inspect(issued.certificate.to_pem().as_bytes())?)?
    );
    println!(
        "chain OK: {:?}, renew after {}",
        verified.subjects,
        issued.certificate.renew_after(0.5)?
    );
    if let Some(dir) = std::env::args().nth(1) {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/ca.pem"), ca.certificate().to_pem())?;
        std::fs::write(format!("{dir}/leaf.pem"), issued.certificate.to_pem())?;
        std::fs::write(format!("{dir}/leaf.csr"), csr.to_pem())?;
        println!("wrote {dir}/ca.pem, leaf.pem, leaf.csr (check: openssl verify -CAfile {dir}/ca.pem {dir}/leaf.pem)");
    }
    Ok(())
}
