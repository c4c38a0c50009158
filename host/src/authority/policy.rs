//! The policy file: named issuance profiles (TOML), plus the built-in `default`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use wasm_pki::Profile;

/// Named profiles.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

impl Policy {
    /// The built-in policy: `default`, a server+client leaf for the token's identity only.
    pub fn builtin() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert("default".to_string(), Profile::default());
        Policy { profiles }
    }

    /// Read a TOML policy: `[profiles.NAME]` tables with the core's profile fields (camelCase).
    /// The built-in `default` stays unless the file redefines it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the policy {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the policy {}", path.display()))
    }

    /// Parse policy text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: PolicyFile = toml::from_str(text)?;
        let mut policy = Self::builtin();
        // Each profile was checked as it was read: an invalid one cannot be constructed.
        policy.profiles.extend(file.profiles);
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles_and_refuses_typos() {
        let p = Policy::parse(
            r#"
            [profiles.web]
            usage = "server"
            maxLifetimeSecs = 604800
            names = { allow = [{ type = "dns", value = ".example.com" }] }

            [profiles.svid]
            spiffe = { trustDomain = "example.org", pathPrefix = "/ns/prod" }
            "#,
        )
        .unwrap();
        assert_eq!(p.profiles.len(), 3);
        assert!(p.profiles["svid"].spiffe.is_some());
        for bad in [
            "[profiles.x]\nusage = \"everything\"",
            "[profiles.x]\nmaxLifetime = 5",
            "[profile.x]",
            "[profiles.x]\ndefaultLifetimeSecs = 10\nmaxLifetimeSecs = 5",
            "[profiles.x]\nspiffe = { trustDomain = \"Bad.Domain\" }",
            "not toml",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }
}
