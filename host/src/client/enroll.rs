//! `wasm-pki enroll`: trust the signer by its pinned root, make the key here, send only the CSR
//! with the enrolment token, and install what comes back.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use super::{http::Server, material, post, store, trust, Failure};
use wasm_pki::{Algorithm, CsrRequest, KeyPair, SanName, Subject};

/// What `wasm-pki enroll` was asked.
pub struct Enroll {
    /// The signer's base URL.
    pub server: String,
    /// The root's SHA-256 fingerprint to pin.
    pub ca_fingerprint: Option<String>,
    /// Or the root itself.
    pub ca_file: Option<PathBuf>,
    /// The enrolment token.
    pub token: Zeroizing<String>,
    /// The name to ask for (the token's grant decides whether it is allowed).
    pub identity: Option<String>,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// The output directory.
    pub out: PathBuf,
    /// Make the key and CSR, print the CSR, send and write nothing.
    pub dry_run: bool,
    /// Replace a certificate the directory already holds.
    pub force: bool,
}

/// Enrol; returns what was installed.
pub fn enroll(e: &Enroll) -> Result<store::Meta> {
    let server = Server::parse(&e.server)?;
    if store::exists(&e.out) && !e.force && !e.dry_run {
        bail!(
            "{} already holds a certificate: renew it (wasm-pki renew --out {}) or pass --force",
            e.out.display(),
            e.out.display()
        );
    }
    let key = KeyPair::generate(e.algorithm, &mut super::rng()?);
    // Without --identity the CSR asks for nothing: the token's identity decides the names.
    let csr = match &e.identity {
        Some(i) => CsrRequest {
            subject: Subject::default(),
            names: vec![SanName::parse(i).with_context(|| format!("--identity {i}"))?],
        }
        .sign(&key)?,
        None => CsrRequest::sign_nameless(&key)?,
    }
    .to_pem();
    if e.dry_run {
        print!("{csr}");
        eprintln!(
            "dry run: would POST {}/v1/sign with the token and this CSR ({} key made here); nothing was sent or written",
            server.base, e.algorithm
        );
        return Ok(store::Meta {
            server: server.base,
            serial: String::new(),
            not_before: 0,
            not_after: 0,
            renew_after: 0,
        });
    }
    let root_pem = match (&e.ca_file, &e.ca_fingerprint) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("reading --ca-file {}", f.display()))?,
        (None, Some(fp)) => trust::bootstrap(&server, fp)?,
        (None, None) => bail!("pin the signer's CA: --ca-fingerprint SHA256 (as `wasm-pki serve` prints it) or --ca-file PEM"),
    };
    let config = trust::config(&root_pem, None)?;
    let auth = Zeroizing::new(format!("Bearer {}", e.token.trim()));
    let body = serde_json::to_vec(&serde_json::json!({ "csr": csr }))?;
    let answer = post(
        &server,
        config,
        "/v1/sign",
        &[("authorization", auth.as_str())],
        body,
    )
    .map_err(|f| match f {
        Failure::Refused { code, message } => {
            anyhow::anyhow!("enrolment refused ({code}): {message}")
        }
        Failure::Transient { reason, .. } => anyhow::anyhow!("enrolment failed: {reason}"),
    })?;
    let m = material(answer, &key, &root_pem, &server)?;
    let meta = m.meta.clone();
    store::install(&e.out, &m)?;
    Ok(meta)
}
