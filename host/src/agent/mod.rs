//! `wasm-pki agent`: the node agent. It enrols the node once (its key made here, as `enroll`
//! does, with a token of the `[agent]` node profile), keeps the node certificate renewed, and
//! serves the SPIFFE Workload API on a Unix socket: local processes are attested by the kernel's
//! peer credentials, and get the X.509-SVIDs of the registration entries they match, their keys
//! made here and kept in memory only.
//!
//! May: read /proc for attestation, talk to the signer over HTTPS with the node certificate.
//! Must never: write a workload's key anywhere or send it, trust a field of a workload's request
//! for its identity, or serve an SVID that has expired.

pub mod attest;
mod state;
mod sync;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::client::{enroll, store};

/// What `wasm-pki agent` was asked.
pub struct Agent {
    /// The signer's base URL (first start only; later starts use the enrolled one).
    pub server: Option<String>,
    /// The root's SHA-256 fingerprint to pin (first start).
    pub ca_fingerprint: Option<String>,
    /// Or the root itself (first start).
    pub ca_file: Option<PathBuf>,
    /// The node profile's enrolment token (first start).
    pub token: Option<Zeroizing<String>>,
    /// The node's identity to ask for (first start; the token's grant decides).
    pub identity: Option<String>,
    /// The agent's directory: the node certificate lives in `DIR/node`.
    pub data_dir: PathBuf,
    /// The Workload API socket.
    pub socket: PathBuf,
    /// The longest wait between two reads of the node's entries.
    pub sync_interval: Duration,
}

fn now() -> i64 {
    crate::authority::now()
}

/// Enrol if needed, then serve until the process ends.
pub fn run(a: &Agent) -> Result<()> {
    crate::files::ensure_private_dir(&a.data_dir)?;
    let node_dir = a.data_dir.join("node");
    if !store::exists(&node_dir) {
        let (Some(server), Some(token)) = (&a.server, &a.token) else {
            anyhow::bail!(
                "{} holds no node certificate: the first start needs --server, --ca-fingerprint (or --ca-file) and --token",
                a.data_dir.display()
            );
        };
        let meta = enroll::enroll(&enroll::Enroll {
            server: server.clone(),
            ca_fingerprint: a.ca_fingerprint.clone(),
            ca_file: a.ca_file.clone(),
            token: token.clone(),
            identity: a.identity.clone(),
            algorithm: wasm_pki::Algorithm::P256,
            out: node_dir.clone(),
            dry_run: false,
            force: false,
        })
        .context("enrolling the node")?;
        eprintln!("wasm-pki agent: node enrolled (serial {})", meta.serial);
    }
    let state = Arc::new(state::State::default());
    let sync = sync::Sync {
        node_dir: node_dir.clone(),
        interval: a.sync_interval,
        state: state.clone(),
    };
    std::thread::Builder::new()
        .name("agent-sync".into())
        .spawn(move || sync::run(&sync))?;
    let socket = std::path::absolute(&a.socket)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = workload::bind(&socket)?;
        println!("SPIFFE_ENDPOINT_SOCKET=unix://{}", socket.display());
        workload::serve(listener, state, node_dir).await
    })
}
