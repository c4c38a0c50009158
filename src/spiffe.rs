//! SPIFFE IDs, checked to the letter of the SPIFFE-ID specification.

use core::fmt;

use crate::error::{Error, Result};

/// Longest SPIFFE ID the specification allows, in bytes.
const MAX_SPIFFE_ID_LEN: usize = 2048;

/// A valid SPIFFE ID: `spiffe://<trust domain><path>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses and validates an ID. Refused: upper-case or other characters outside `[a-z0-9._-]` in
    /// the trust domain, a port or user info, empty, `.` or `..` segments, a trailing `/`, a query,
    /// a fragment, percent-encoding, and IDs over 2048 bytes.
    pub fn parse(id: &str) -> Result<Self> {
        let bad =
            |why: &str| Error::InvalidName(format!("SPIFFE ID \"{}\": {why}", id.escape_debug()));
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(bad("longer than 2048 bytes"));
        }
        let Some(rest) = id.strip_prefix("spiffe://") else {
            return Err(bad("must start with \"spiffe://\" (lower case)"));
        };
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Self::check_trust_domain(td).map_err(|e| bad(&e))?;
        if !path.is_empty() {
            Self::check_path(path).map_err(|e| bad(&e))?;
        }
        Ok(SpiffeId {
            trust_domain: td.to_string(),
            path: path.to_string(),
        })
    }

    fn check_trust_domain(td: &str) -> core::result::Result<(), String> {
        if td.is_empty() {
            return Err("empty trust domain".into());
        }
        if td.contains(':') {
            return Err("a port is not allowed in the trust domain".into());
        }
        if td.contains('@') {
            return Err("user info is not allowed".into());
        }
        if let Some(c) = td
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c)))
        {
            return Err(format!(
                "character {:?} is not allowed in the trust domain (only a-z 0-9 . - _)",
                c
            ));
        }
        Ok(())
    }

    fn check_path(path: &str) -> core::result::Result<(), String> {
        if path.contains('?') {
            return Err("a query is not allowed".into());
        }
        if path.contains('#') {
            return Err("a fragment is not allowed".into());
        }
        for seg in path[1..].split('/') {
            match seg {
                "" => return Err("empty path segment (double or trailing '/')".into()),
                "." | ".." => return Err("'.' and '..' path segments are not allowed".into()),
                _ => {}
            }
            if let Some(c) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
            {
                return Err(format!(
                    "character {c:?} is not allowed in the path (only A-Z a-z 0-9 . - _)"
                ));
            }
        }
        Ok(())
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when the path equals `prefix` or continues it at a segment boundary
    /// (`/ns/a` is under `/ns` but `/nsx` is not).
    pub fn path_is_under(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || self.path == prefix
            || (self.path.starts_with(prefix)
                && self.path.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// Validates a trust domain name on its own (for profiles).
pub(crate) fn validate_trust_domain(td: &str) -> Result<()> {
    SpiffeId::check_trust_domain(td)
        .map_err(|e| Error::InvalidParameter(format!("SPIFFE trust domain \"{td}\": {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa/web");
        assert!(id.path_is_under("/ns/prod"));
        assert!(id.path_is_under("/ns/prod/"));
        assert!(!id.path_is_under("/ns/pro"));
        assert_eq!(id.to_string(), "spiffe://example.org/ns/prod/sa/web");
        assert!(SpiffeId::parse("spiffe://td").is_ok());
    }

    #[test]
    fn invalid_ids() {
        for bad in [
            "SPIFFE://example.org/a",
            "spiffe://Example.org/a",
            "spiffe://example.org:8080/a",
            "spiffe://user@example.org/a",
            "spiffe:///a",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/./b",
            "spiffe://example.org//b",
            "spiffe://example.org/b/",
            "spiffe://example.org/b?x=1",
            "spiffe://example.org/b#f",
            "spiffe://example.org/b%20c",
            "https://example.org/b",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} accepted");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2050));
        assert!(SpiffeId::parse(&long).is_err());
    }
}
