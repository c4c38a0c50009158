//! The signer: the sandbox, the ledger and the policy put together. Used by the HTTP API and the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::ledger::{Ledger, Record, SqliteLedger};
use crate::policy::Policy;
use crate::sandbox::{CallError, Sandbox};

/// Largest CSR accepted (PEM text), checked before it enters the sandbox.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// How long a request waits for a free sandbox instance before 503.
pub const SANDBOX_WAIT: Duration = Duration::from_secs(2);

/// A refusal with an HTTP status, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: String,
    /// Human message.
    pub message: String,
}

impl ApiError {
    /// Build one.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What a successful signing returns.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    /// Leaf PEM.
    pub certificate: String,
    /// Issuing CA and any intermediates above it, PEM each.
    pub chain: Vec<String>,
    /// The root CA PEM.
    pub ca: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When to renew, Unix seconds.
    pub renew_after: i64,
    /// Serial, hex.
    pub serial: String,
}

/// Paths of a CA data directory.
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// Issuing CA certificate, followed by its chain.
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    /// Issuing CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// Root certificate (the trust anchor clients install).
    pub fn root_cert(&self) -> PathBuf {
        self.0.join("root.pem")
    }
    /// Root key (kept only when an intermediate issues; move it offline).
    pub fn root_key(&self) -> PathBuf {
        self.0.join("root.key")
    }
    /// The ledger.
    pub fn ledger(&self) -> PathBuf {
        self.0.join("ledger.sqlite")
    }
    /// Compiled-module cache.
    pub fn module_cache(&self) -> PathBuf {
        self.0.join("module-cache")
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn seed() -> Result<String> {
    let mut s = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(s.as_mut()).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(crate::sandbox::hex(s.as_ref()))
}

/// Everything a running signer needs.
pub struct Signer {
    /// The sandbox pool.
    pub sandbox: Arc<Sandbox>,
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Profiles.
    pub policy: Policy,
    /// Root PEM.
    pub root_pem: String,
    /// Issuing CA PEM and its chain, as blocks.
    pub chain: Vec<String>,
    /// Description of the issuing CA from the sandbox.
    pub ca_info: Value,
}

impl Signer {
    /// Open the CA in `dir` with the module at `module`, loading the CA into the sandbox.
    pub fn open(
        dir: &Path,
        module: &Path,
        policy: Policy,
        passphrase: Option<&str>,
        workers: usize,
    ) -> Result<Self> {
        let d = DataDir(dir.to_path_buf());
        if !d.ca_cert().exists() {
            bail!(
                "no CA in {} (run `wasm-pki init --dir {}` first)",
                dir.display(),
                dir.display()
            );
        }
        let cert_pem = std::fs::read_to_string(d.ca_cert())
            .with_context(|| format!("reading {}", d.ca_cert().display()))?;
        let key_pem = crate::files::read_secret(&d.ca_key())?;
        let key_pem = zeroize::Zeroizing::new(key_pem);
        if key_pem.contains("ENCRYPTED PRIVATE KEY") && passphrase.is_none() {
            bail!(
                "the CA key is encrypted: give --passphrase-file (or set WASM_PKI_PASSPHRASE_FILE)"
            );
        }
        let root_pem = std::fs::read_to_string(d.root_cert()).unwrap_or_else(|_| cert_pem.clone());
        let chain = wasm_pki::Certificate::parse_all(cert_pem.as_bytes())
            .with_context(|| format!("reading {}", d.ca_cert().display()))?
            .iter()
            .map(wasm_pki::Certificate::to_pem)
            .collect();
        let sandbox = Sandbox::new(module, &d.module_cache(), workers)?;
        let ca_info = sandbox.load_ca(&cert_pem, &key_pem, passphrase)?;
        if let Some(e) = ca_info.get("error") {
            bail!(
                "the sandbox could not load the CA: {}",
                e["message"].as_str().unwrap_or("?")
            );
        }
        let ledger = Arc::new(SqliteLedger::open(&d.ledger())?);
        Ok(Signer {
            sandbox,
            ledger,
            policy,
            root_pem,
            chain,
            ca_info: ca_info["ok"].clone(),
        })
    }

    /// Issue a certificate for an untrusted CSR under a named profile, record it, and return it.
    /// `identity` comes from the token or the operator, never from the request body.
    pub fn sign(
        &self,
        csr_pem: &str,
        profile_name: &str,
        identity: Option<&str>,
        token_id: &str,
    ) -> Result<Signed, ApiError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(ApiError::new(
                413,
                "too_large",
                format!(
                    "the CSR is {} bytes; at most {MAX_CSR_BYTES} are accepted",
                    csr_pem.len()
                ),
            ));
        }
        let profile = self.policy.profiles.get(profile_name).ok_or_else(|| {
            ApiError::new(
                403,
                "unknown_profile",
                format!("profile \"{profile_name}\" is not in the policy"),
            )
        })?;
        let seed = seed().map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
        let req = json!({"op": "sign", "csrPem": csr_pem, "profile": profile, "identity": identity, "now": now(), "seed": seed});
        let out = self.sandbox.call(&req, SANDBOX_WAIT).map_err(|e| match e {
            CallError::Busy => ApiError::new(503, "busy", "the signer is saturated; retry shortly"),
            CallError::Trap(m) => ApiError::new(
                500,
                "sandbox_trap",
                format!("the sandbox stopped this request: {m}"),
            ),
            CallError::Setup(e) => ApiError::new(500, "sandbox_setup", format!("{e:#}")),
        })?;
        if let Some(err) = out.get("error") {
            let code = err["code"].as_str().unwrap_or("error").to_string();
            let status = match code.as_str() {
                "policy" => 403,
                "too_large" => 413,
                "encoding" | "chain" => 500,
                _ => 400,
            };
            return Err(ApiError {
                status,
                code,
                message: err["message"].as_str().unwrap_or("").to_string(),
            });
        }
        let ok = &out["ok"];
        let text = |k: &str| ok[k].as_str().unwrap_or_default().to_string();
        let record = Record {
            serial: text("serial"),
            subject: text("subject"),
            names: ok["names"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            not_before: ok["notBefore"].as_i64().unwrap_or(0),
            not_after: ok["notAfter"].as_i64().unwrap_or(0),
            fingerprint: text("fingerprint"),
            token_id: token_id.to_string(),
            profile: profile_name.to_string(),
            issued_at: now(),
            revoked_at: None,
            pem: text("certificate"),
        };
        // Recorded before anyone sees the certificate: no record, no certificate.
        self.ledger.record(&record).map_err(|e| {
            ApiError::new(
                500,
                "ledger",
                format!("the certificate could not be recorded, so it is not returned: {e:#}"),
            )
        })?;
        Ok(Signed {
            certificate: record.pem,
            chain: self.chain.clone(),
            ca: self.root_pem.clone(),
            not_after: record.not_after,
            renew_after: ok["renewAfter"].as_i64().unwrap_or(record.not_after),
            serial: record.serial,
        })
    }

    /// A fresh CRL (PEM) listing every revoked certificate.
    pub fn crl(&self) -> Result<String> {
        let revoked: Vec<Value> = self
            .ledger
            .revoked()?
            .into_iter()
            .map(|(s, at)| json!({"serial": s, "revokedAt": at}))
            .collect();
        let number = self.ledger.next_crl_number()?;
        let out = self
            .sandbox
            .call(&json!({"op": "crl", "revoked": revoked, "now": now(), "nextUpdateSecs": 86_400, "number": number}), SANDBOX_WAIT)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match out.get("ok").and_then(Value::as_str) {
            Some(pem) => Ok(pem.to_string()),
            None => bail!("CRL: {}", out["error"]["message"]),
        }
    }
}
