//! Enrolment tokens: 256 random bits shown once, stored only as a SHA-256 hash.

use anyhow::{bail, Result};
use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

/// A token order that cannot be carried out (no use, a bad identity or lifetime).
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A token just created: the secret (shown once), its public id and expiry.
pub struct Created {
    /// The secret, `wpk_…`.
    pub secret: zeroize::Zeroizing<String>,
    /// The public id (in logs and the ledger).
    pub id: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Create and store a token for `profile` bound to `identity` (checked to be a name), for
/// `uses` certificates, valid `ttl_secs` from `now`. Shared by the CLI and the KBS plugin's
/// admin route; the profile is checked against the policy by the caller.
pub fn create(
    ledger: &dyn crate::db::Ledger,
    profile: &str,
    identity: Option<&str>,
    uses: u32,
    ttl_secs: i64,
    now: i64,
) -> Result<Created> {
    if let Some(id) = identity {
        wasm_pki::SanName::parse(id).map_err(|e| Invalid(format!("identity \"{id}\": {e}")))?;
    }
    if uses == 0 {
        return Err(Invalid("uses must be at least 1".into()).into());
    }
    if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
        return Err(Invalid(format!("the lifetime must be 1 s to {MAX_TTL_SECS} s")).into());
    }
    let (secret, hash, id) = generate()?;
    ledger.create_token(&crate::db::NewToken {
        hash: &hash,
        id: &id,
        profile,
        identity,
        uses,
        expires_at: now + ttl_secs,
        created_at: now,
    })?;
    Ok(Created {
        secret: zeroize::Zeroizing::new(secret),
        id,
        expires_at: now + ttl_secs,
    })
}

/// Longest token lifetime: a year.
pub const MAX_TTL_SECS: i64 = 365 * 86_400;

/// Prefix that makes tokens recognisable in logs and secret scanners.
const PREFIX: &str = "wpk_";

/// A new token: (secret text, hash to store, public id).
pub fn generate() -> Result<(String, [u8; 32], String)> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    let secret = format!("{PREFIX}{}", Base64UrlUnpadded::encode_string(raw.as_ref()));
    let hash = hash(&secret);
    let id = id_of(&hash);
    Ok((secret, hash, id))
}

/// The public id of a presented token (as `token create` prints it and the ledger records it),
/// for logs; `None` when it is not a well-formed token.
pub fn public_id(secret: &str) -> Option<String> {
    well_formed(secret).then(|| id_of(&hash(secret)))
}

/// The public id of a token: the first 64 bits of its stored hash, hex.
fn id_of(hash: &[u8; 32]) -> String {
    wasm_pki::hex(&hash[..8])
}

/// The stored form of a token.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Checks the shape of a presented token before any lookup.
pub fn well_formed(secret: &str) -> bool {
    secret.len() == PREFIX.len() + 43
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parse a token lifetime such as `90s`, `15m`, `1h`, `7d` or `1h 30m` (humantime's syntax; a
/// bare number is seconds), between 1 s and 365 days.
pub fn parse_ttl(s: &str) -> Result<i64> {
    let s = s.trim();
    if s.contains('.') {
        bail!("invalid duration \"{s}\": use whole units, e.g. 90m rather than 1.5h");
    }
    let secs = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        humantime::parse_duration(s)
            .map_err(|e| {
                anyhow::anyhow!("invalid duration \"{s}\" ({e}; use e.g. 90s, 15m, 1h, 7d)")
            })?
            .as_secs()
    };
    if secs == 0 || secs > MAX_TTL_SECS as u64 {
        bail!("token lifetime must be between 1 s and 365 days");
    }
    Ok(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, ha, ida) = generate().unwrap();
        let (b, _, idb) = generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(ida, idb);
        assert!(well_formed(&a));
        assert_eq!(public_id(&a).as_deref(), Some(ida.as_str()));
        assert_eq!(public_id("wpk_short"), None);
        assert_eq!(hash(&a), ha);
        for bad in [
            "",
            "wpk_",
            "wpk_short",
            &format!("xyz_{}", &a[4..]),
            &format!("{a}x"),
            &a.replace('_', " "),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert_eq!(parse_ttl("1h 30m").unwrap(), 5400);
        for bad in [
            "",
            "h",
            "1y",
            "-1h",
            "0s",
            "999d",
            "1.5h",
            "106751991167301d",
            "9223372036854775807h",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}

/// What a token lets its holder ask for, for the page to show before anything is made or sent:
/// the identity it vouches for, its profile's public form, uses left and expiry.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// The identity the certificate gets (DNS name, IP, e-mail or SPIFFE ID), if any.
    pub identity: Option<String>,
    /// The profile's name.
    pub profile: String,
    /// The profile, as the policy file and `checkRequest` read it.
    pub rules: wasm_pki::ProfileSpec,
    /// The lifetime a certificate gets when the request asks for none, seconds.
    pub lifetime_secs: u64,
    /// Uses left.
    pub uses_left: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl super::Authority {
    /// The rules of `token` without spending a use: refused exactly as signing refuses it (a
    /// malformed, unknown, expired or used-up token, with the same codes and messages). The
    /// lookup is by the token's SHA-256, as signing's.
    pub fn token_rules(&self, token: &str) -> Result<Rules, super::AuthorityError> {
        let state = self.token_state(token)?;
        let profile = self.policy.profiles.get(&state.profile).ok_or_else(|| {
            super::AuthorityError::Internal(format!(
                "the token's profile {:?} is not in the policy",
                state.profile
            ))
        })?;
        Ok(Rules {
            identity: state.identity,
            profile: state.profile,
            rules: profile.to_spec(),
            lifetime_secs: profile.default_lifetime(),
            uses_left: state.uses_left,
            expires_at: state.expires_at,
        })
    }
}
