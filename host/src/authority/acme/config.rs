//! `[acme.NAME]`: one ACME directory (served at `/acme/NAME/directory`), checked when the policy
//! loads: its profile exists and is a leaf profile for DNS names and addresses, its challenge
//! types are known, dns-01 has resolvers to ask, and validation may only connect where the
//! operator allows (loopback, link-local and private ranges are refused unless listed, so an
//! ACME client cannot aim the CA at internal services).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Result};
use ipnet::IpNet;
use serde::Deserialize;

/// A challenge type a directory offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum ChallengeType {
    /// RFC 8555 §8.3: a file under `/.well-known/acme-challenge/` over HTTP.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737: a self-signed certificate over TLS with ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.4: a TXT record at `_acme-challenge.NAME`.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl ChallengeType {
    /// The name ACME uses.
    pub fn name(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::Dns01 => "dns-01",
        }
    }
}

/// The ports validation connects to (RFC 8555 and RFC 8737 fix 80 and 443; tests and private
/// deployments move them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationPorts {
    /// http-01.
    #[serde(default = "default_http_port")]
    pub http: u16,
    /// tls-alpn-01.
    #[serde(default = "default_tls_port")]
    pub tls: u16,
}

fn default_http_port() -> u16 {
    80
}

fn default_tls_port() -> u16 {
    443
}

impl Default for ValidationPorts {
    fn default() -> Self {
        ValidationPorts {
            http: default_http_port(),
            tls: default_tls_port(),
        }
    }
}

/// One ACME directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeDirectory {
    /// The leaf profile every certificate of this directory is decided by.
    pub profile: String,
    /// The challenge types offered for each authorization (default: http-01 and tls-alpn-01).
    #[serde(default = "default_challenges")]
    pub challenges: Vec<ChallengeType>,
    /// Accounts must be bound to an enrolment token (External Account Binding) when made.
    #[serde(default)]
    pub require_eab: bool,
    /// The ports validation connects to.
    #[serde(default)]
    pub validation_ports: ValidationPorts,
    /// The DNS servers dns-01 asks (`IP:PORT`); required when dns-01 is offered.
    #[serde(default)]
    pub resolvers: Vec<SocketAddr>,
    /// Networks validation may connect to although they are loopback, link-local or private.
    #[serde(default)]
    pub allowed_networks: Vec<IpNet>,
    /// The terms of service URL announced in the directory's `meta`.
    #[serde(default)]
    pub terms_of_service: Option<String>,
}

fn default_challenges() -> Vec<ChallengeType> {
    vec![ChallengeType::Http01, ChallengeType::TlsAlpn01]
}

/// Whether `ip` is in a range validation never reaches unless allowed: unspecified, loopback,
/// private (RFC 1918, RFC 4193), shared (RFC 6598), link-local, multicast, broadcast and the
/// IPv4 addresses IPv6 maps or translates.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64: reaches IPv4 space
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_unspecified()
        || o[0] == 0
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space
        || o[0] >= 240
}

impl AcmeDirectory {
    /// Whether challenge validation may connect to `ip`.
    pub fn may_connect(&self, ip: IpAddr) -> bool {
        let listed = |ip: IpAddr| self.allowed_networks.iter().any(|n| n.contains(&ip));
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        !internal(ip) || listed(ip) || v4.is_some_and(listed)
    }

    /// Whether this directory offers `challenge`.
    pub fn offers(&self, challenge: ChallengeType) -> bool {
        self.challenges.contains(&challenge)
    }
}

/// Check `[acme.NAME]` against the policy's profiles.
pub fn check(
    name: &str,
    dir: &AcmeDirectory,
    profiles: &std::collections::BTreeMap<String, wasm_pki::Profile>,
) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
    {
        bail!("acme.{name}: a directory name is 1 to 64 characters of [a-z0-9_-]");
    }
    match profiles.get(&dir.profile) {
        None => bail!("acme.{name}.profile: no profile named {:?}", dir.profile),
        Some(p) if p.intermediate.is_some() => {
            bail!(
                "acme.{name}.profile: {:?} issues intermediates",
                dir.profile
            )
        }
        Some(p) if p.spiffe.is_some() => bail!(
            "acme.{name}.profile: {:?} issues SPIFFE IDs; ACME orders name DNS names and addresses",
            dir.profile
        ),
        Some(_) => {}
    }
    if dir.challenges.is_empty() {
        bail!("acme.{name}.challenges: offer at least one of http-01, tls-alpn-01, dns-01");
    }
    let mut seen = dir.challenges.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != dir.challenges.len() {
        bail!("acme.{name}.challenges: a challenge type is listed twice");
    }
    if dir.offers(ChallengeType::Dns01) && dir.resolvers.is_empty() {
        bail!("acme.{name}.resolvers: dns-01 needs at least one resolver (IP:PORT)");
    }
    if dir.resolvers.len() > 8 {
        bail!("acme.{name}.resolvers: at most 8");
    }
    if dir.validation_ports.http == 0 || dir.validation_ports.tls == 0 {
        bail!("acme.{name}.validationPorts: ports are 1 to 65535");
    }
    if dir.allowed_networks.len() > 64 {
        bail!("acme.{name}.allowedNetworks: at most 64 networks");
    }
    for n in &dir.allowed_networks {
        if n.prefix_len() == 0 {
            bail!("acme.{name}.allowedNetworks: {n} allows everything; list the networks validation may reach");
        }
    }
    if let Some(t) = &dir.terms_of_service {
        if !(t.starts_with("https://") || t.starts_with("http://")) || t.len() > 2048 {
            bail!("acme.{name}.termsOfService: an http(s) URL");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::policy::Policy;

    const PROFILES: &str = r#"
[profiles.web]
usage = "server"
names = { allow = [{ type = "dns", value = ".example.com" }] }

[profiles.svid]
spiffe = { trustDomain = "example.org" }
"#;

    fn parse(acme: &str) -> Result<Policy> {
        Policy::parse(&format!("{PROFILES}\n{acme}"))
    }

    #[test]
    fn directories_are_checked_when_the_policy_loads() {
        let p = parse(
            r#"
[acme.web]
profile = "web"
challenges = ["http-01", "tls-alpn-01", "dns-01"]
requireEab = true
validationPorts = { http = 5002, tls = 5001 }
resolvers = ["127.0.0.1:5353"]
allowedNetworks = ["127.0.0.0/8"]
termsOfService = "https://ca.example.com/tos"
"#,
        )
        .unwrap();
        let d = &p.acme["web"];
        assert!(d.require_eab && d.offers(ChallengeType::Dns01));
        assert_eq!(
            d.validation_ports,
            ValidationPorts {
                http: 5002,
                tls: 5001
            }
        );
        let d = &parse("[acme.plain]\nprofile = \"web\"").unwrap().acme["plain"];
        assert_eq!(
            d.challenges,
            [ChallengeType::Http01, ChallengeType::TlsAlpn01]
        );
        assert_eq!(d.validation_ports, ValidationPorts::default());
        for (bad, why) in [
            ("[acme.web]\nprofile = \"nope\"", "no profile"),
            ("[acme.web]\nprofile = \"svid\"", "SPIFFE"),
            ("[acme.Web]\nprofile = \"web\"", "[a-z0-9_-]"),
            (
                "[acme.web]\nprofile = \"web\"\nchallenges = []",
                "at least one",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nchallenges = [\"http-02\"]",
                "unknown variant",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nchallenges = [\"http-01\", \"http-01\"]",
                "twice",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nchallenges = [\"dns-01\"]",
                "resolver",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nresolvers = [\"localhost:53\"]",
                "invalid socket address",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nvalidationPorts = { http = 0 }",
                "1 to 65535",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nvalidationPorts = { http = 70000 }",
                "invalid value",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nallowedNetworks = [\"0.0.0.0/0\"]",
                "everything",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nallowedNetworks = [\"10.0.0.300/8\"]",
                "invalid",
            ),
            (
                "[acme.web]\nprofile = \"web\"\ntermsOfService = \"ftp://x\"",
                "http(s)",
            ),
            (
                "[acme.web]\nprofile = \"web\"\nrequireEAB = true",
                "unknown field",
            ),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_reaches_public_addresses_and_only_listed_internal_ones() {
        let open = parse("[acme.web]\nprofile = \"web\"").unwrap().acme["web"].clone();
        let lab = parse(
            "[acme.web]\nprofile = \"web\"\nallowedNetworks = [\"127.0.0.0/8\", \"fd00::/8\"]",
        )
        .unwrap()
        .acme["web"]
            .clone();
        for (ip, by_default, listed) in [
            ("93.184.215.14", true, true),
            ("2606:2800:21f:cb07::1", true, true),
            ("127.0.0.1", false, true),
            ("::ffff:127.0.0.1", false, true),
            ("::1", false, false),
            ("10.1.2.3", false, false),
            ("172.16.0.1", false, false),
            ("192.168.1.1", false, false),
            ("169.254.169.254", false, false),
            ("100.64.0.1", false, false),
            ("0.0.0.0", false, false),
            ("255.255.255.255", false, false),
            ("224.0.0.1", false, false),
            ("fe80::1", false, false),
            ("fd12::1", false, true),
            ("fc00::1", false, false),
            ("64:ff9b::a00:1", false, false),
            ("::ffff:10.0.0.1", false, false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(open.may_connect(ip), by_default, "{ip} by default");
            assert_eq!(
                lab.may_connect(ip),
                listed,
                "{ip} with 127.0.0.0/8 and fd00::/8 listed"
            );
        }
    }
}
