//! Registration entries: the operator's word on which workload of which node gets which SPIFFE
//! ID. An entry is checked against the policy's `[agent]` workload profile when it is made and
//! again at every issuance (the policy may have changed since). Selectors are SPIRE's `unix`
//! workload attestor's, and a workload matches an entry when it has every selector the entry
//! names (SPIRE's subset rule).

use crate::db::Entry;

use super::policy::Policy;

/// Default lifetime of an entry's X.509-SVIDs (SPIRE's default), capped by the profile.
pub const DEFAULT_X509_TTL_SECS: i64 = 3600;
/// Default lifetime of an entry's JWT-SVIDs (SPIRE's default).
pub const DEFAULT_JWT_TTL_SECS: i64 = 300;
/// Most selectors an entry may name.
pub const MAX_SELECTORS: usize = 16;
/// Most DNS names an entry may add to its X.509-SVIDs.
pub const MAX_DNS: usize = 16;

/// An entry (or one of its parts) that cannot be made or no longer fits the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry(pub String);

impl std::fmt::Display for InvalidEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidEntry {}

fn invalid(m: impl Into<String>) -> InvalidEntry {
    InvalidEntry(m.into())
}

/// Read a selector (`unix:uid:1000`, `unix:path:/usr/bin/app`, …) into its canonical text.
/// Kinds: `uid`, `gid`, `supplementary_gid` (numbers), `user`, `group`, `supplementary_group`
/// (POSIX names), `path` (absolute), `sha256` (64 hex digits, lower case).
pub fn parse_selector(text: &str) -> Result<String, InvalidEntry> {
    let bad = |why: &str| invalid(format!("selector {:?}: {why}", text.escape_debug()));
    let Some(rest) = text.strip_prefix("unix:") else {
        return Err(bad(
            "only unix selectors are known (unix:uid:1000, unix:path:/usr/bin/app, …)",
        ));
    };
    let (kind, value) = rest.split_once(':').ok_or_else(|| bad("unix:KIND:VALUE"))?;
    let ok = match kind {
        "uid" | "gid" | "supplementary_gid" => {
            value.parse::<u32>().is_ok() && !value.starts_with('+') && !value.starts_with('0')
                || value == "0"
        }
        "user" | "group" | "supplementary_group" => {
            !value.is_empty()
                && value.len() <= 64
                && !value.starts_with('-')
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        "path" => {
            value.starts_with('/')
                && value.len() <= 4096
                && !value.contains('\0')
                && !value.split('/').any(|s| s == "." || s == "..")
        }
        "sha256" => {
            value.len() == 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => return Err(bad("unknown kind (uid, gid, user, group, supplementary_gid, supplementary_group, path, sha256)")),
    };
    if !ok {
        return Err(bad("not a valid value for its kind"));
    }
    Ok(text.to_string())
}

/// What the operator asks for (`wasm-pki entry create`), before it is checked.
#[derive(Debug, Clone, Default)]
pub struct EntryRequest {
    /// The node's identity.
    pub node: String,
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// Selectors, as typed.
    pub selectors: Vec<String>,
    /// X.509-SVID lifetime (default [`DEFAULT_X509_TTL_SECS`], capped by the profile's maximum).
    pub x509_ttl_secs: Option<i64>,
    /// JWT-SVID lifetime (default [`DEFAULT_JWT_TTL_SECS`]).
    pub jwt_ttl_secs: Option<i64>,
    /// DNS names.
    pub dns: Vec<String>,
    /// Hint.
    pub hint: Option<String>,
}

/// Check `req` against `policy` and make the entry, with `id` and `now`.
pub fn build(
    policy: &Policy,
    req: &EntryRequest,
    id: String,
    now: i64,
) -> Result<Entry, InvalidEntry> {
    let node = wasm_pki::SanName::parse(&req.node)
        .map_err(|e| invalid(format!("--node {:?}: {e}", req.node)))?;
    if req.selectors.is_empty() {
        return Err(invalid(
            "an entry needs at least one selector (it would match every process)",
        ));
    }
    if req.selectors.len() > MAX_SELECTORS {
        return Err(invalid(format!("at most {MAX_SELECTORS} selectors")));
    }
    let mut selectors = req
        .selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<Result<Vec<_>, _>>()?;
    selectors.sort();
    selectors.dedup();
    if req.dns.len() > MAX_DNS {
        return Err(invalid(format!("at most {MAX_DNS} DNS names")));
    }
    let mut dns = Vec::with_capacity(req.dns.len());
    for d in &req.dns {
        match wasm_pki::SanName::dns(d) {
            Ok(wasm_pki::SanName::Dns(n)) => dns.push(n),
            _ => return Err(invalid(format!("--dns {d:?}: not a DNS name"))),
        }
    }
    dns.sort();
    dns.dedup();
    if let Some(h) = &req.hint {
        if h.is_empty() || h.len() > 128 || h.chars().any(char::is_control) {
            return Err(invalid("--hint: 1 to 128 printable characters"));
        }
    }
    // The default X.509 TTL follows the profile's cap rather than failing against it.
    let x509_ttl_secs = req.x509_ttl_secs.unwrap_or_else(|| {
        workload_profile(policy).map_or(DEFAULT_X509_TTL_SECS, |(_, p)| {
            DEFAULT_X509_TTL_SECS.min(i64::try_from(p.max_lifetime_secs).unwrap_or(i64::MAX))
        })
    });
    let entry = Entry {
        id,
        node: node.value(),
        spiffe_id: req.spiffe_id.clone(),
        selectors,
        x509_ttl_secs,
        jwt_ttl_secs: req.jwt_ttl_secs.unwrap_or(DEFAULT_JWT_TTL_SECS),
        dns,
        hint: req.hint.clone(),
        created_at: now,
    };
    check(policy, &entry)?;
    Ok(entry)
}

fn workload_profile(policy: &Policy) -> Result<(&str, &wasm_pki::Profile), InvalidEntry> {
    let agent = policy
        .agent
        .as_ref()
        .ok_or_else(|| invalid("the policy has no [agent] table: no entries are served"))?;
    let p = policy
        .profiles
        .get(&agent.workload_profile)
        .ok_or_else(|| {
            invalid(format!(
                "the workload profile {:?} is gone",
                agent.workload_profile
            ))
        })?;
    Ok((&agent.workload_profile, p))
}

/// Whether `entry` fits `policy` now: its SPIFFE ID in the workload profile's trust domain and
/// path, its lifetimes within the profile's and `[agent]`'s maxima.
pub fn check(policy: &Policy, entry: &Entry) -> Result<(), InvalidEntry> {
    let (name, profile) = workload_profile(policy)?;
    let max_jwt = policy.agent.as_ref().map_or(0, |a| a.max_jwt_ttl_secs) as i64;
    profile.check_workload_id(&entry.spiffe_id).map_err(|e| {
        invalid(format!(
            "{}: outside the workload profile {name:?}: {e}",
            entry.spiffe_id
        ))
    })?;
    if entry.x509_ttl_secs <= 0 || entry.x509_ttl_secs as u64 > profile.max_lifetime_secs {
        return Err(invalid(format!(
            "an X.509 TTL of {} s: the workload profile {name:?} allows 1 to {} s",
            entry.x509_ttl_secs, profile.max_lifetime_secs
        )));
    }
    if entry.jwt_ttl_secs <= 0 || entry.jwt_ttl_secs > max_jwt {
        return Err(invalid(format!(
            "a JWT TTL of {} s: [agent] allows 1 to {max_jwt} s",
            entry.jwt_ttl_secs
        )));
    }
    Ok(())
}

/// Check `req` against `policy`, give it a random id and store it in `ledger`.
pub fn create(
    ledger: &dyn crate::db::Ledger,
    policy: &Policy,
    req: &EntryRequest,
    now: i64,
) -> anyhow::Result<Entry> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    let entry = build(policy, req, wasm_pki::hex(&raw), now)?;
    ledger.create_entry(&entry)?;
    Ok(entry)
}

/// Whether a workload with `selectors` gets `entry`: it has every selector the entry names.
pub fn matches(entry: &Entry, selectors: &[String]) -> bool {
    entry.selectors.iter().all(|s| selectors.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(
            r#"
            [profiles.node]
            [profiles.workload]
            maxLifetimeSecs = 7200
            spiffe = { trustDomain = "example.org", pathPrefix = "/ns" }
            [agent]
            nodeProfile = "node"
            workloadProfile = "workload"
            maxJwtTtlSecs = 600
            "#,
        )
        .unwrap()
    }

    fn req(id: &str, sel: &[&str]) -> EntryRequest {
        EntryRequest {
            node: "node1.example.org".into(),
            spiffe_id: id.into(),
            selectors: sel.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn selectors_are_read_strictly() {
        for good in [
            "unix:uid:0",
            "unix:uid:1000",
            "unix:gid:4294967295",
            "unix:user:www-data",
            "unix:supplementary_group:docker",
            "unix:path:/usr/bin/app",
            &format!("unix:sha256:{}", "ab".repeat(32)),
        ] {
            assert_eq!(parse_selector(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "uid:1000",
            "k8s:ns:default",
            "unix:uid",
            "unix:uid:-1",
            "unix:uid:01",
            "unix:uid:+1",
            "unix:uid:4294967296",
            "unix:user:",
            "unix:user:a b",
            "unix:user:-rf",
            "unix:path:relative",
            "unix:path:/a/../b",
            "unix:path:/a\0b",
            "unix:sha256:AB",
            &format!("unix:sha256:{}", "AB".repeat(32)),
            "unix:pid:1",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entries_fit_the_workload_profile() {
        let p = policy();
        let e = build(
            &p,
            &req(
                "spiffe://example.org/ns/web",
                &["unix:uid:1000", "unix:gid:5", "unix:uid:1000"],
            ),
            "id".into(),
            7,
        )
        .unwrap();
        assert_eq!(e.selectors, ["unix:gid:5", "unix:uid:1000"]);
        assert_eq!((e.x509_ttl_secs, e.jwt_ttl_secs), (3600, 300));
        let mut r = req("spiffe://example.org/ns/web", &["unix:uid:1"]);
        r.x509_ttl_secs = Some(7201);
        assert!(
            build(&p, &r, "i".into(), 0).is_err(),
            "longer than the profile"
        );
        r.x509_ttl_secs = None;
        r.jwt_ttl_secs = Some(601);
        assert!(
            build(&p, &r, "i".into(), 0).is_err(),
            "longer than [agent] allows"
        );
        for id in [
            "spiffe://other.org/ns/web",
            "spiffe://example.org/web",
            "spiffe://example.org",
            "https://example.org/ns/x",
        ] {
            assert!(
                build(&p, &req(id, &["unix:uid:1"]), "i".into(), 0).is_err(),
                "{id}"
            );
        }
        assert!(
            build(&p, &req("spiffe://example.org/ns/web", &[]), "i".into(), 0).is_err(),
            "no selector"
        );
        let mut r = req("spiffe://example.org/ns/web", &["unix:uid:1"]);
        r.node = "not a name".into();
        assert!(build(&p, &r, "i".into(), 0).is_err());
        let mut r = req("spiffe://example.org/ns/web", &["unix:uid:1"]);
        r.dns = vec!["web.example.org".into(), "*".into()];
        assert!(build(&p, &r, "i".into(), 0).is_err());
        // Re-checked against a policy that changed: the path moved.
        let moved = Policy::parse(
            "[profiles.node]\n[profiles.workload]\nspiffe = { trustDomain = \"example.org\", pathPrefix = \"/other\" }\n[agent]\nnodeProfile = \"node\"\nworkloadProfile = \"workload\"\n",
        )
        .unwrap();
        assert!(check(&moved, &e).is_err());
        assert!(
            check(&Policy::builtin(), &e).is_err(),
            "no [agent]: nothing is served"
        );
    }

    #[test]
    fn a_workload_needs_every_selector_of_the_entry() {
        let e = build(
            &policy(),
            &req(
                "spiffe://example.org/ns/web",
                &["unix:uid:1000", "unix:path:/bin/app"],
            ),
            "id".into(),
            0,
        )
        .unwrap();
        let has = |v: &[&str]| matches(&e, &v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(has(&["unix:uid:1000", "unix:path:/bin/app", "unix:gid:5"]));
        assert!(!has(&["unix:uid:1000"]));
        assert!(!has(&["unix:uid:1001", "unix:path:/bin/app"]));
        assert!(!has(&[]));
    }

    #[test]
    fn the_agent_table_is_checked_when_the_policy_loads() {
        for bad in [
            "[agent]\nnodeProfile = \"nope\"\nworkloadProfile = \"w\"\n[profiles.w]\nspiffe = { trustDomain = \"a.org\" }",
            "[profiles.n]\n[profiles.w]\n[agent]\nnodeProfile = \"n\"\nworkloadProfile = \"w\"",
            "[profiles.w]\nspiffe = { trustDomain = \"a.org\" }\n[agent]\nnodeProfile = \"w\"\nworkloadProfile = \"w\"",
            "[profiles.n]\n[profiles.w]\nspiffe = { trustDomain = \"a.org\" }\n[agent]\nnodeProfile = \"n\"\nworkloadProfile = \"w\"\nmaxJwtTtlSecs = 0",
            "[profiles.n]\n[profiles.w]\nspiffe = { trustDomain = \"a.org\" }\n[agent]\nnodeProfile = \"n\"\nworkloadProfile = \"w\"\ntypo = 1",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }
}
