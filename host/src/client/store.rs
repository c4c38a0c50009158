//! The client's output directory. Each certificate gets its own generation folder
//! (`versions/NNNNNN-SERIAL/`, numbered in order: `key.pem` 0600, `cert.pem` leaf and chain, `chain.pem`, `ca.pem`,
//! `meta.json`), written and synced completely before one atomic rename of the `current` link
//! makes it live. `key.pem`, `cert.pem`, `chain.pem` and `ca.pem` at the top are links through
//! `current`; a reader that must never mix two generations (a re-key changes both files)
//! resolves `current` once and reads both files from there. The previous generation is kept so
//! such a reader is never left with a folder that vanished; older ones are removed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::files::{ensure_private_dir, read_secret, write_atomic};

/// The files every generation has, linked at the top of the directory.
pub const FILES: [&str; 4] = ["key.pem", "cert.pem", "chain.pem", "ca.pem"];

/// What the client remembers about a certificate, next to it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The signer's base URL.
    pub server: String,
    /// Serial, hex.
    pub serial: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When the signer advises renewing, Unix seconds.
    pub renew_after: i64,
}

/// One generation: a key, its certificate, the issuing chain and the root.
pub struct Material {
    /// The private key, PKCS#8 PEM.
    pub key_pem: Zeroizing<String>,
    /// The leaf, PEM.
    pub leaf_pem: String,
    /// The issuing CA and any intermediates, PEM each.
    pub chain: Vec<String>,
    /// The root, PEM.
    pub ca_pem: String,
    /// Facts kept with it.
    pub meta: Meta,
}

/// Whether `dir` already holds a live certificate.
pub fn exists(dir: &Path) -> bool {
    dir.join("current").exists()
}

/// Write `m` as a new generation and make it live; the old one stays until this returns.
pub fn install(dir: &Path, m: &Material) -> Result<PathBuf> {
    ensure_private_dir(dir)?;
    let versions = dir.join("versions");
    ensure_private_dir(&versions)?;
    // Generations are numbered in the order they were made (two can share a notBefore second).
    let next = generations(&versions)?.last().map_or(1, |(n, _)| n + 1);
    let name = format!("{next:06}-{}", m.meta.serial);
    let gen = versions.join(&name);
    if gen.exists() {
        fs::remove_dir_all(&gen)?; // an earlier attempt that never went live
    }
    fs::create_dir(&gen).with_context(|| format!("creating {}", gen.display()))?;
    ensure_private_dir(&gen)?;
    let chain: String = m.chain.concat();
    write_atomic(&gen.join("key.pem"), m.key_pem.as_bytes(), 0o600)?;
    write_atomic(
        &gen.join("cert.pem"),
        format!("{}{chain}", m.leaf_pem).as_bytes(),
        0o644,
    )?;
    write_atomic(&gen.join("chain.pem"), chain.as_bytes(), 0o644)?;
    write_atomic(&gen.join("ca.pem"), m.ca_pem.as_bytes(), 0o644)?;
    write_atomic(
        &gen.join("meta.json"),
        &serde_json::to_vec_pretty(&m.meta)?,
        0o644,
    )?;
    fs::File::open(&gen)?.sync_all()?;
    // The switch: a new link renamed over `current` (rename(2) replaces it atomically).
    let tmp = dir.join(format!(".current.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(Path::new("versions").join(&name), &tmp)?;
    fs::rename(&tmp, dir.join("current")).context("switching to the new certificate")?;
    fs::File::open(dir)?.sync_all()?;
    for f in FILES {
        let link = dir.join(f);
        let target = Path::new("current").join(f);
        match fs::read_link(&link) {
            Ok(t) if t == target => {}
            Ok(_) => {
                fs::remove_file(&link)?;
                symlink(&target, &link)?;
            }
            Err(_) if link.symlink_metadata().is_ok() => {
                bail!(
                    "{} exists and is not this client's link; move it away",
                    link.display()
                )
            }
            Err(_) => symlink(&target, &link)?,
        }
    }
    prune(&versions, &name)?;
    Ok(gen)
}

/// The generation folders, oldest first, with their numbers.
fn generations(versions: &Path) -> Result<Vec<(u64, String)>> {
    let mut names: Vec<(u64, String)> = fs::read_dir(versions)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| Some((n.split('-').next()?.parse().ok()?, n)))
        .collect();
    names.sort();
    Ok(names)
}

/// Remove generations older than the live one and the one before it.
fn prune(versions: &Path, live: &str) -> Result<()> {
    let names = generations(versions)?;
    let keep_from = names
        .iter()
        .position(|(_, n)| n == live)
        .unwrap_or(names.len())
        .saturating_sub(1);
    for (_, n) in &names[..keep_from] {
        let _ = fs::remove_dir_all(versions.join(n));
    }
    Ok(())
}

/// The live generation, read through one resolution of `current`.
pub struct Live {
    /// Its folder.
    pub dir: PathBuf,
    /// The key.
    pub key: wasm_pki::KeyPair,
    /// The leaf.
    pub leaf: wasm_pki::Certificate,
    /// The leaf and its chain as in `cert.pem`.
    pub cert_chain: Vec<wasm_pki::Certificate>,
    /// The root, PEM.
    pub ca_pem: String,
    /// Its facts.
    pub meta: Meta,
}

/// Read the live generation of `dir`.
pub fn load(dir: &Path) -> Result<Live> {
    let link = fs::read_link(dir.join("current")).with_context(|| {
        format!(
            "{} holds no certificate: enrol first (wasm-pki enroll --out {})",
            dir.display(),
            dir.display()
        )
    })?;
    let gen = dir.join(link);
    let key_pem = Zeroizing::new(read_secret(&gen.join("key.pem"))?);
    let key = wasm_pki::KeyPair::from_pem(key_pem.as_bytes(), None)
        .with_context(|| format!("{}/key.pem", gen.display()))?;
    let cert_chain = wasm_pki::Certificate::parse_all(&fs::read(gen.join("cert.pem"))?)
        .with_context(|| format!("{}/cert.pem", gen.display()))?;
    let leaf = cert_chain.first().context("cert.pem is empty")?.clone();
    if leaf.public_key()?.spki_der() != key.public_key().spki_der() {
        bail!("{}: key.pem is not the key of cert.pem", gen.display());
    }
    let ca_pem = fs::read_to_string(gen.join("ca.pem"))?;
    let meta: Meta = serde_json::from_slice(&fs::read(gen.join("meta.json"))?)
        .with_context(|| format!("{}/meta.json", gen.display()))?;
    Ok(Live {
        dir: gen,
        key,
        leaf,
        cert_chain,
        ca_pem,
        meta,
    })
}
