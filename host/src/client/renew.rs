//! `wasm-pki renew`: the certificate in the output directory is the credential (presented in TLS,
//! or as a renewal proof signed by its key). Once, or as a daemon that renews at the signer's
//! `renewAfter` plus jitter, retries with capped exponential backoff while the signer is
//! unreachable, swaps the new pair in only when it is wholly on disk, then runs the hook. A
//! refusal (revoked, policy, expired…) ends it with the reason.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::{http::Server, material, post, store, trust, Failure};
use wasm_pki::{CsrRequest, KeyPair, ParsedCsr, Subject};

/// Longest wait between two tries while the signer is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A process to signal after each renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// Its pid.
    pub pid: u32,
    /// The signal's name (HUP, USR1…).
    pub name: String,
}

impl std::str::FromStr for Signal {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (pid, sig) = s
            .split_once(':')
            .with_context(|| format!("--signal {s}: expected PID:SIGNAL, e.g. 1234:HUP"))?;
        let pid: u32 = pid
            .parse()
            .ok()
            .filter(|p| *p > 1)
            .with_context(|| format!("--signal {s}: {pid} is not a process id"))?;
        let name = sig.trim_start_matches("SIG").to_uppercase();
        const KNOWN: [&str; 7] = ["HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH"];
        if !KNOWN.contains(&name.as_str()) {
            bail!("--signal {s}: {sig} is not one of {}", KNOWN.join(", "));
        }
        Ok(Signal { pid, name })
    }
}

/// What `wasm-pki renew` was asked.
pub struct Renew {
    /// The directory `wasm-pki enroll` wrote.
    pub out: PathBuf,
    /// Another base URL than the one enrolment used.
    pub server: Option<String>,
    /// Keep renewing.
    pub daemon: bool,
    /// A new key each time (same names).
    pub rekey: bool,
    /// Authenticate with a signed proof instead of the TLS client certificate (for a signer
    /// behind a TLS-terminating proxy). An expired certificate always uses a proof.
    pub proof: bool,
    /// A shell command run after each renewal.
    pub exec: Option<String>,
    /// A process signalled after each renewal.
    pub signal: Option<Signal>,
}

/// Renew once, or forever with `daemon`; an error ends it (a refusal, or files it cannot use).
pub fn run(r: &Renew) -> Result<()> {
    if !r.daemon {
        let meta = once(r).map_err(|f| anyhow::anyhow!("renewal failed: {f}"))?;
        report(&meta);
        return hooks(r);
    }
    let mut renewed_at: Option<i64> = None;
    loop {
        let live = store::load(&r.out)?;
        let lifetime = (live.meta.not_after - live.meta.not_before).max(1);
        // Jitter (up to a twentieth of the lifetime) so a fleet enrolled together does not
        // come back together.
        let jitter = (random_u64()? % (lifetime as u64 / 20 + 1)) as i64;
        let mut at = live.meta.renew_after.saturating_add(jitter);
        // A certificate just received is not renewed before a third of what is left of it has
        // passed, whatever renewAfter says (a backdated notBefore moves it early on short
        // lifetimes): never a tight loop against the signer.
        if let Some(t) = renewed_at {
            at = at.max(t + (live.meta.not_after - t).max(0) / 3);
        }
        let wait = (at - super::now()).max(0) as u64;
        eprintln!(
            "wasm-pki renew: serial {} valid until {}; next renewal in {wait} s",
            live.meta.serial,
            super::when(live.meta.not_after)
        );
        std::thread::sleep(Duration::from_secs(wait));
        // Backoff from 1 s, doubling, capped at a tenth of the lifetime (and 5 minutes).
        let cap = Duration::from_secs((lifetime as u64 / 10).clamp(1, MAX_BACKOFF.as_secs()));
        let mut backoff = Duration::from_secs(1);
        let meta = loop {
            match once(r) {
                Ok(m) => break m,
                Err(Failure::Transient {
                    reason,
                    retry_after,
                }) => {
                    let pause = retry_after
                        .map(Duration::from_secs)
                        .unwrap_or(backoff)
                        .min(cap);
                    eprintln!("wasm-pki renew: {reason}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                    backoff = (backoff * 2).min(cap);
                }
                Err(f) => bail!("renewal failed: {f}"),
            }
        };
        renewed_at = Some(super::now());
        report(&meta);
        if let Err(e) = hooks(r) {
            eprintln!("wasm-pki renew: the hook failed: {e:#}");
        }
    }
}

fn report(m: &store::Meta) {
    println!(
        "wasm-pki renew: renewed: serial {} valid until {} (renew after {})",
        m.serial,
        super::when(m.not_after),
        super::when(m.renew_after)
    );
}

fn random_u64() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

/// One renewal: read the live pair, ask, check, install.
pub fn once(r: &Renew) -> Result<store::Meta, Failure> {
    let live = store::load(&r.out)?;
    let server = Server::parse(r.server.as_deref().unwrap_or(&live.meta.server))?;
    let now = super::now();
    let (new_key, body) = if r.rekey {
        let key = KeyPair::generate(live.key.algorithm(), &mut super::rng()?);
        let names = ParsedCsr::from_certificate(&live.leaf)
            .map_err(anyhow::Error::from)?
            .names()
            .to_vec();
        let csr = CsrRequest {
            subject: Subject::default(),
            names,
        }
        .sign(&key)
        .map_err(anyhow::Error::from)?;
        let body = serde_json::json!({ "csr": csr.to_pem() });
        (
            Some(key),
            serde_json::to_vec(&body).map_err(anyhow::Error::from)?,
        )
    } else {
        (None, Vec::new())
    };
    let key = new_key.as_ref().unwrap_or(&live.key);
    // A certificate past its notAfter cannot pass a TLS handshake: a proof carries it (the
    // signer then applies the profile's grace).
    let use_proof = r.proof || now >= live.meta.not_after;
    let answer = if use_proof {
        let proof = Zeroizing::new(
            wasm_pki::sign_proof(
                &live.key,
                &live.leaf,
                &format!("{}/v1/renew", server.base),
                now,
                &mut super::rng()?,
            )
            .map_err(anyhow::Error::from)?,
        );
        let auth = Zeroizing::new(format!("Bearer {}", proof.as_str()));
        let config = trust::config(&live.ca_pem, None)?;
        post(
            &server,
            config,
            "/v1/renew",
            &[("authorization", auth.as_str())],
            body,
        )?
    } else {
        let chain: Vec<CertificateDer<'static>> = live
            .cert_chain
            .iter()
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect();
        let pkcs8 = live.key.to_pkcs8_der().map_err(anyhow::Error::from)?;
        let der = PrivateKeyDer::Pkcs8(pkcs8.to_vec().into());
        let config = trust::config(&live.ca_pem, Some((chain, der)))?;
        post(&server, config, "/v1/renew", &[], body)?
    };
    let m = material(answer, key, &live.ca_pem, &server)?;
    let meta = m.meta.clone();
    store::install(&r.out, &m)?;
    Ok(meta)
}

/// The hooks after a renewal: the command, then the signal.
fn hooks(r: &Renew) -> Result<()> {
    if let Some(cmd) = &r.exec {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("WASM_PKI_DIR", &r.out)
            .env("WASM_PKI_CERT", r.out.join("cert.pem"))
            .env("WASM_PKI_KEY", r.out.join("key.pem"))
            .status()
            .with_context(|| format!("running --exec {cmd}"))?;
        if !status.success() {
            bail!("--exec {cmd} exited with {status}");
        }
    }
    if let Some(s) = &r.signal {
        let status = std::process::Command::new("kill")
            .args(["-s", &s.name, &s.pid.to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -s {} {} failed ({status})", s.name, s.pid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked() {
        let s: Signal = "1234:hup".parse().unwrap();
        assert_eq!((s.pid, s.name.as_str()), (1234, "HUP"));
        assert_eq!("99:SIGUSR1".parse::<Signal>().unwrap().name, "USR1");
        for bad in [
            "1234", "x:HUP", "1:HUP", "0:HUP", "12:KILL", "12:", ":HUP", "-5:HUP",
        ] {
            assert!(bad.parse::<Signal>().is_err(), "{bad}");
        }
    }
}
