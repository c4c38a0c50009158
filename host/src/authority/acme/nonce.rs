//! ACME anti-replay nonces (RFC 8555 §6.5) that hold across replicas without a shared store
//! for issuing: a nonce is `expiry ‖ random ‖ MAC`, the MAC keyed by a secret every replica
//! derives from the CA's JWT authority key (already copied to each replica, see the README), so
//! any replica recognises a nonce any other made; the ledger they share makes each one usable
//! once (`spend_proof`). An unknown, forged, expired or replayed nonce is `badNonce`.
//!
//! A signer with its own SQLite ledger shares nonces with nobody: it keeps the spent ones in
//! memory instead (an fsync per request saved), and MACs every nonce with a random id of this
//! run, so a nonce made before a restart is unknown after it and cannot be replayed.

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::hmac;

use crate::db::Ledger;

/// How long a nonce stays usable, seconds.
pub const NONCE_LIFETIME_SECS: i64 = 3600;
/// The ledger's name for spent nonces (the `fingerprint` column of the spent-proof table).
const SPENT_AS: &str = "acme-nonce";
const RANDOM: usize = 16;
/// The whole HMAC-SHA256 tag, so ring's own constant-time `verify` checks it.
const TAG: usize = 32;
/// A nonce's length in bytes before base64url: expiry (8) ‖ random ‖ tag.
const LEN: usize = 8 + RANDOM + TAG;

/// Why a nonce is refused (each an ACME `badNonce`).
#[derive(Debug, PartialEq, Eq)]
pub enum BadNonce {
    /// Not one of ours: wrong form or MAC.
    Unknown,
    /// Ours, but past its lifetime.
    Expired,
    /// Ours, and already used.
    Replayed,
}

impl std::fmt::Display for BadNonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadNonce::Unknown => "the nonce was not issued by this CA",
            BadNonce::Expired => "the nonce has expired; use the Replay-Nonce of this answer",
            BadNonce::Replayed => "the nonce was already used; use the Replay-Nonce of this answer",
        })
    }
}

/// Makes and checks nonces.
pub struct Nonces {
    key: hmac::Key,
    /// This run's id and its spent nonces, when no other signer shares the ledger.
    local: Option<Local>,
}

/// The most spent nonces kept in memory (about 50 MB); past it, nonces are refused until the
/// oldest expire (a lone signer taking more than this many ACME requests an hour).
const MAX_LOCAL_SPENT: usize = 1_000_000;

struct Local {
    run: [u8; 16],
    spent: std::sync::Mutex<std::collections::HashMap<[u8; RANDOM], i64>>,
}

impl Nonces {
    /// The nonce key derived from `secret` (the JWT authority's PKCS#8 DER), domain-separated so
    /// the derived key says nothing about the signing key.
    pub fn from_secret(secret: &[u8]) -> Self {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"wasm-pki acme nonce");
        let prk = salt.extract(secret);
        let okm = prk
            .expand(&[b"v1"], hmac::HMAC_SHA256)
            .expect("HMAC-SHA256 key length is a valid HKDF output length");
        Nonces {
            key: hmac::Key::from(okm),
            local: None,
        }
    }

    /// Nonces for a signer whose ledger nobody else uses: spent ones are kept in memory, and a
    /// restart makes every earlier nonce unknown.
    pub fn local(secret: &[u8], rng: &dyn ring::rand::SecureRandom) -> Self {
        let mut run = [0u8; 16];
        let _ = rng.fill(&mut run);
        Nonces {
            local: Some(Local {
                run,
                spent: Default::default(),
            }),
            ..Self::from_secret(secret)
        }
    }

    /// What the MAC covers: this run's id when local, then a nonce's expiry and random part.
    fn signed(&self, body: &[u8]) -> Vec<u8> {
        let mut m = self.local.as_ref().map_or(Vec::new(), |l| l.run.to_vec());
        m.extend_from_slice(body);
        m
    }

    /// A fresh nonce, valid for [`NONCE_LIFETIME_SECS`] from `now`.
    pub fn make(&self, now: i64, rng: &dyn ring::rand::SecureRandom) -> String {
        let mut raw = [0u8; LEN];
        raw[..8].copy_from_slice(&(now + NONCE_LIFETIME_SECS).to_be_bytes());
        // A failing OS RNG leaves zeros: the nonce is then still unique by its expiry and MAC
        // only per second, and spending it once still holds.
        let _ = rng.fill(&mut raw[8..8 + RANDOM]);
        let tag = hmac::sign(&self.key, &self.signed(&raw[..8 + RANDOM]));
        raw[8 + RANDOM..].copy_from_slice(tag.as_ref());
        Base64UrlUnpadded::encode_string(&raw)
    }

    /// Accept `nonce` once: it must be ours (MAC checked in constant time), unexpired at `now`,
    /// and not spent before (recorded in `ledger` until it expires).
    pub fn spend(
        &self,
        ledger: &dyn Ledger,
        nonce: &str,
        now: i64,
    ) -> anyhow::Result<Result<(), BadNonce>> {
        let Some(expiry) = self.verify(nonce) else {
            return Ok(Err(BadNonce::Unknown));
        };
        if now >= expiry {
            return Ok(Err(BadNonce::Expired));
        }
        if let Some(local) = &self.local {
            let mut random = [0u8; RANDOM];
            if let Ok(raw) = Base64UrlUnpadded::decode_vec(nonce) {
                random.copy_from_slice(&raw[8..8 + RANDOM]);
            }
            let mut spent = local.spent.lock().unwrap_or_else(|e| e.into_inner());
            if spent.len() >= MAX_LOCAL_SPENT {
                spent.retain(|_, e| *e > now);
                if spent.len() >= MAX_LOCAL_SPENT {
                    return Ok(Err(BadNonce::Expired));
                }
            }
            return Ok(match spent.insert(random, expiry) {
                None => Ok(()),
                Some(_) => Err(BadNonce::Replayed),
            });
        }
        if !ledger.spend_proof(SPENT_AS, nonce, expiry, now)? {
            return Ok(Err(BadNonce::Replayed));
        }
        Ok(Ok(()))
    }

    /// The expiry of a nonce this key made; `None` for anything else.
    fn verify(&self, nonce: &str) -> Option<i64> {
        // Base64url of LEN bytes, no padding: exactly this many characters.
        if nonce.len() != (LEN * 4).div_ceil(3) {
            return None;
        }
        let raw = Base64UrlUnpadded::decode_vec(nonce).ok()?;
        if raw.len() != LEN {
            return None;
        }
        hmac::verify(
            &self.key,
            &self.signed(&raw[..8 + RANDOM]),
            &raw[8 + RANDOM..],
        )
        .ok()?;
        Some(i64::from_be_bytes(raw[..8].try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_ours_once_and_only_while_fresh() {
        let dir = std::env::temp_dir().join(format!("wasm-pki-nonce-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ledger = crate::db::SqliteLedger::open(&dir.join("ledger.sqlite")).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let a = Nonces::from_secret(b"replica secret");
        let b = Nonces::from_secret(b"replica secret");
        let other = Nonces::from_secret(b"another CA");
        let now = 1_800_000_000;
        let n = a.make(now, &rng);
        assert_ne!(n, a.make(now, &rng), "two nonces differ");
        assert_eq!(
            other.spend(&ledger, &n, now).unwrap(),
            Err(BadNonce::Unknown)
        );
        // Another replica with the same secret takes it, once.
        assert_eq!(b.spend(&ledger, &n, now + 1).unwrap(), Ok(()));
        assert_eq!(
            a.spend(&ledger, &n, now + 2).unwrap(),
            Err(BadNonce::Replayed)
        );
        let late = a.make(now, &rng);
        assert_eq!(
            a.spend(&ledger, &late, now + NONCE_LIFETIME_SECS).unwrap(),
            Err(BadNonce::Expired)
        );
        // Tampered, truncated, padded, or not base64url at all.
        let fresh = a.make(now, &rng);
        let mut flipped = fresh.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::from_utf8(flipped).unwrap(),
            fresh[..fresh.len() - 1].to_string(),
            format!("{fresh}="),
            "".into(),
            "!".repeat(fresh.len()),
            "A".repeat(10_000),
        ] {
            assert_eq!(
                a.spend(&ledger, &bad, now).unwrap(),
                Err(BadNonce::Unknown),
                "{bad:.20}"
            );
        }
        assert_eq!(a.spend(&ledger, &fresh, now).unwrap(), Ok(()));

        // A lone signer: spent in memory, once; a restart (another run id) knows none of them.
        let run1 = Nonces::local(b"replica secret", &rng);
        let n = run1.make(now, &rng);
        assert_eq!(a.spend(&ledger, &n, now).unwrap(), Err(BadNonce::Unknown));
        assert_eq!(run1.spend(&ledger, &n, now).unwrap(), Ok(()));
        assert_eq!(
            run1.spend(&ledger, &n, now).unwrap(),
            Err(BadNonce::Replayed)
        );
        let m = run1.make(now, &rng);
        let run2 = Nonces::local(b"replica secret", &rng);
        assert_eq!(
            run2.spend(&ledger, &m, now).unwrap(),
            Err(BadNonce::Unknown)
        );
        let late = run1.make(now, &rng);
        assert_eq!(
            run1.spend(&ledger, &late, now + NONCE_LIFETIME_SECS)
                .unwrap(),
            Err(BadNonce::Expired)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
