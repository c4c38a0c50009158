//! The policy file: named issuance profiles (TOML), plus the built-in `default`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use wasm_pki::Profile;

use super::acme::config::AcmeDirectory;

/// Named profiles, and which of them the protocols other clients speak may use.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// The Vault-compatible PKI API; `None` (the default): not served.
    pub vault: Option<VaultConfig>,
    /// The SPIFFE trust bundle endpoint.
    pub bundle: BundleConfig,
    /// Node agents and the Workload API; `None` (the default): no agent is served.
    pub agent: Option<AgentConfig>,
    /// ACME directories by name (`[acme.NAME]`); none by default.
    pub acme: BTreeMap<String, AcmeDirectory>,
}

/// `[agent]`: node agents (`wasm-pki agent`) and the workloads they serve.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// The profile of node certificates: an agent enrols with a token of it, and its certificate
    /// (of this profile, recorded, unrevoked, unexpired) is its only credential.
    pub node_profile: String,
    /// The SPIFFE profile workloads' X.509-SVIDs are issued under: every entry's SPIFFE ID must
    /// lie in its trust domain and path prefix, its X.509 TTL within its lifetimes.
    pub workload_profile: String,
    /// The longest JWT-SVID lifetime an entry may ask for (default 3600 s).
    #[serde(default = "default_max_jwt_ttl")]
    pub max_jwt_ttl_secs: u64,
}

fn default_max_jwt_ttl() -> u64 {
    3600
}

/// `[vault]`: a Vault PKI secrets engine's API, as SPIRE's and cert-manager's Vault clients use it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultConfig {
    /// The mount path (`pki`: served under `/v1/pki/…`); one or more `[a-z0-9_-]` segments.
    pub mount: String,
    /// Vault role name → profile name; a role answers only tokens of its profile.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The profile `root/sign-intermediate` uses (an `intermediate` profile); absent: refused.
    #[serde(default)]
    pub intermediate_profile: Option<String>,
}

/// `[bundle]`: where else the trust bundle is served, and the refresh hint it carries.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleConfig {
    /// A second path for the bundle (SPIFFE federation's `bundle_endpoint_url`), besides
    /// `/v1/bundle`.
    #[serde(default)]
    pub path: Option<String>,
    /// `spiffe_refresh_hint`, seconds (default 300).
    #[serde(default = "default_refresh_hint")]
    pub refresh_hint_secs: u64,
}

fn default_refresh_hint() -> u64 {
    300
}

impl Default for BundleConfig {
    fn default() -> Self {
        BundleConfig {
            path: None,
            refresh_hint_secs: default_refresh_hint(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    vault: Option<VaultConfig>,
    #[serde(default)]
    bundle: BundleConfig,
    #[serde(default)]
    agent: Option<AgentConfig>,
    #[serde(default)]
    acme: BTreeMap<String, AcmeDirectory>,
}

impl Policy {
    /// The built-in policy: `default`, a server+client leaf for the token's identity only.
    pub fn builtin() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert("default".to_string(), Profile::default());
        Policy {
            profiles,
            vault: None,
            bundle: BundleConfig::default(),
            agent: None,
            acme: BTreeMap::new(),
        }
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
        policy.bundle = file.bundle;
        if let Some(p) = &policy.bundle.path {
            let reserved = ["/v1/", "/pkg/", "/healthz", "/readyz", "/metrics"];
            if !p.starts_with('/')
                || p.len() < 2
                || reserved.iter().any(|r| p.starts_with(r))
                || !p[1..].split('/').all(|s| {
                    !s.is_empty()
                        && s != "."
                        && s != ".."
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                })
            {
                bail!("bundle.path {p:?}: an absolute path of [A-Za-z0-9._-] segments, outside /v1/, /pkg/ and the health paths");
            }
        }
        if policy.bundle.refresh_hint_secs == 0 || policy.bundle.refresh_hint_secs > 86_400 * 7 {
            bail!("bundle.refreshHintSecs must be between 1 s and 7 days");
        }
        if let Some(v) = &file.vault {
            policy.check_vault(v)?;
        }
        policy.vault = file.vault;
        if let Some(a) = &file.agent {
            policy.check_agent(a)?;
        }
        policy.agent = file.agent;
        for (name, dir) in &file.acme {
            super::acme::config::check(name, dir, &policy.profiles)?;
        }
        policy.acme = file.acme;
        Ok(policy)
    }

    fn check_agent(&self, a: &AgentConfig) -> Result<()> {
        match self.profiles.get(&a.node_profile) {
            None => bail!("agent.nodeProfile: no profile named {:?}", a.node_profile),
            Some(p) if p.intermediate.is_some() => {
                bail!(
                    "agent.nodeProfile: {:?} issues intermediates",
                    a.node_profile
                )
            }
            Some(_) => {}
        }
        match self.profiles.get(&a.workload_profile) {
            None => bail!(
                "agent.workloadProfile: no profile named {:?}",
                a.workload_profile
            ),
            Some(p) if p.intermediate.is_some() || p.spiffe.is_none() || p.accept_csr => bail!(
                "agent.workloadProfile: {:?} must be a leaf profile with a spiffe rule (and no acceptCsr)",
                a.workload_profile
            ),
            Some(_) => {}
        }
        if a.node_profile == a.workload_profile {
            bail!("agent: the node and workload profiles must differ (a workload's SVID must not pass as a node's credential)");
        }
        if a.max_jwt_ttl_secs == 0 || a.max_jwt_ttl_secs > 86_400 {
            bail!("agent.maxJwtTtlSecs must be between 1 s and 1 day");
        }
        Ok(())
    }

    fn check_vault(&self, v: &VaultConfig) -> Result<()> {
        let segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
        };
        if !v.mount.split('/').all(segment) || ["sys", "auth"].contains(&v.mount.as_str()) {
            bail!(
                "vault.mount {:?}: one or more [a-z0-9_-] segments, not sys or auth",
                v.mount
            );
        }
        for (role, profile) in &v.roles {
            if !segment(role) {
                bail!("vault.roles: role name {role:?}: use [a-z0-9_-]");
            }
            match self.profiles.get(profile) {
                None => bail!("vault.roles.{role}: no profile named {profile:?}"),
                Some(p) if p.intermediate.is_some() => bail!(
                    "vault.roles.{role}: {profile:?} issues intermediates; give it as vault.intermediateProfile, not as a role"
                ),
                Some(_) => {}
            }
        }
        if let Some(name) = &v.intermediate_profile {
            match self.profiles.get(name) {
                None => bail!("vault.intermediateProfile: no profile named {name:?}"),
                Some(p) if p.intermediate.is_none() => bail!(
                    "vault.intermediateProfile: {name:?} is not an intermediate profile (give it an `intermediate` table)"
                ),
                Some(_) => {}
            }
        }
        Ok(())
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
