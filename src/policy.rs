//! Issuance profiles: which keys, names, lifetimes and usages a certificate may have.
//!
//! [`Profile::decide`] is pure: it turns a verified CSR plus what the caller vouches for (an
//! identity) into a [`Decision`], or refuses with [`Error::Policy`]. Nothing is trimmed silently.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::csr::ParsedCsr;
use crate::error::{Error, Result};
use crate::name::{normalize_dns, SanName, Subject};
use crate::public_key::{KeyKind, RSA_MIN_BITS};
use crate::spiffe::{validate_trust_domain, SpiffeId};

/// One day in seconds.
const DAY: u64 = 86_400;

/// Key algorithms a profile may accept in a CSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// ECDSA P-256.
    P256,
    /// Ed25519.
    Ed25519,
    /// RSA, 2048 bits or more (see [`Profile::rsa_min_bits`]).
    Rsa,
}

/// What the certificate may be used for: sets keyUsage and extendedKeyUsage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Usage {
    /// TLS server (serverAuth).
    Server,
    /// TLS client (clientAuth).
    Client,
    /// Both (serverAuth + clientAuth), as mTLS peers and SPIFFE SVIDs need.
    #[default]
    ServerAndClient,
}

/// Where the subject DN comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectSource {
    /// The issuer decides: the profile's subject template, with CN set to the caller's identity
    /// when the template has none. The CSR's subject is ignored.
    #[default]
    Identity,
    /// The CSR's subject, with the template's attributes overriding. Only for callers who read
    /// the CSR and accept it as it is (they hold the CA key).
    Csr,
}

/// A pattern for names a profile allows (or denies).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum NamePattern {
    /// `host.example.com`: that name only. `*.example.com`: one label below example.com.
    /// `.example.com`: any depth below example.com (not example.com itself).
    Dns(String),
    /// An address or a CIDR block: `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`.
    Ip(String),
    /// URIs starting with this prefix, at a `/` boundary unless the prefix ends in `/`.
    UriPrefix(String),
    /// E-mail addresses at exactly this domain.
    EmailDomain(String),
    /// Any name at all: only for callers who accept the CSR's names as they are.
    Any,
}

/// The name rules of a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameRules {
    /// Names the CSR may ask for (besides the caller's identity, which is always allowed).
    #[serde(default)]
    pub allow: Vec<NamePattern>,
    /// Names refused even when an allow pattern matches.
    #[serde(default)]
    pub deny: Vec<NamePattern>,
    /// Whether a `*.` wildcard DNS name may be issued at all (a pattern must still cover it).
    #[serde(default)]
    pub allow_wildcards: bool,
    /// Most SANs in one certificate.
    #[serde(default = "default_max_names")]
    pub max_names: usize,
}

fn default_max_names() -> usize {
    20
}

impl Default for NameRules {
    fn default() -> Self {
        NameRules {
            allow: Vec::new(),
            deny: Vec::new(),
            allow_wildcards: false,
            max_names: default_max_names(),
        }
    }
}

/// Makes the profile issue X.509-SVIDs for one trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiffeRule {
    /// The trust domain, e.g. `example.org`.
    pub trust_domain: String,
    /// IDs must lie under this path (at a segment boundary); empty allows any path.
    #[serde(default)]
    pub path_prefix: String,
}

/// An issuance profile. Deserialisable from TOML/JSON; [`Profile::validate`] checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// Accepted key algorithms; empty means P-256, Ed25519 and RSA.
    #[serde(default)]
    pub key_types: Vec<KeyAlgorithm>,
    /// Smallest accepted RSA modulus (never below 2048).
    #[serde(default = "default_rsa_min_bits")]
    pub rsa_min_bits: usize,
    /// Where the subject comes from.
    #[serde(default)]
    pub subject_from: SubjectSource,
    /// Subject attributes set by the issuer (O, OU, C…; a CN here is fixed for every cert).
    #[serde(default)]
    pub subject: Subject,
    /// Rules for SANs the CSR asks for.
    #[serde(default)]
    pub names: NameRules,
    /// Issue SPIFFE X.509-SVIDs.
    #[serde(default)]
    pub spiffe: Option<SpiffeRule>,
    /// Lifetime when the caller asks for none, in seconds.
    #[serde(default = "default_lifetime")]
    pub default_lifetime_secs: u64,
    /// Longest lifetime a caller may ask for, in seconds.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
    /// TLS server, client, or both.
    #[serde(default)]
    pub usage: Usage,
    /// notBefore is set this many seconds in the past, for clock skew between peers.
    #[serde(default = "default_backdate")]
    pub backdate_secs: u64,
}

fn default_rsa_min_bits() -> usize {
    RSA_MIN_BITS
}
fn default_lifetime() -> u64 {
    DAY
}
fn default_max_lifetime() -> u64 {
    90 * DAY
}
fn default_backdate() -> u64 {
    60
}

impl Default for Profile {
    /// A server+client leaf for the caller's identity only: 24 h by default, at most 90 days.
    fn default() -> Self {
        Profile {
            key_types: Vec::new(),
            rsa_min_bits: RSA_MIN_BITS,
            subject_from: SubjectSource::Identity,
            subject: Subject::default(),
            names: NameRules::default(),
            spiffe: None,
            default_lifetime_secs: default_lifetime(),
            max_lifetime_secs: default_max_lifetime(),
            usage: Usage::ServerAndClient,
            backdate_secs: default_backdate(),
        }
    }
}

/// What the caller vouches for when asking for a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssueOptions {
    /// The identity the caller authenticated (from a token or an operator): it becomes a SAN and,
    /// unless the profile fixes one, the CN. A CSR may ask for it without an allow rule.
    pub identity: Option<SanName>,
    /// Requested lifetime in seconds; the profile's default when `None`.
    pub lifetime_secs: Option<u64>,
}

/// What the policy decided to put into the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Subject DN.
    pub subject: Subject,
    /// SANs, identity first.
    pub names: Vec<SanName>,
    /// Lifetime in seconds (before clamping to the issuer's notAfter).
    pub lifetime_secs: u64,
    /// Key and extended key usage.
    pub usage: Usage,
    /// Whether this is an X.509-SVID.
    pub spiffe: bool,
}

impl Profile {
    /// A profile that takes the CSR as it is (subject and any names) with default lifetime and a
    /// server+client leaf: for a caller who holds the CA key and has read the request.
    pub fn accept_csr() -> Self {
        Profile {
            subject_from: SubjectSource::Csr,
            names: NameRules {
                allow: vec![NamePattern::Any],
                ..NameRules::default()
            },
            ..Profile::default()
        }
    }

    /// The default profile, also allowing CSRs to ask for names matching `allow`.
    pub fn allowing(allow: Vec<NamePattern>) -> Self {
        Profile {
            names: NameRules {
                allow,
                ..NameRules::default()
            },
            ..Profile::default()
        }
    }

    /// An X.509-SVID profile for one trust domain and path prefix.
    pub fn spiffe(trust_domain: &str, path_prefix: &str) -> Self {
        Profile {
            spiffe: Some(SpiffeRule {
                trust_domain: trust_domain.into(),
                path_prefix: path_prefix.into(),
            }),
            default_lifetime_secs: 3600,
            max_lifetime_secs: DAY,
            ..Profile::default()
        }
    }

    /// Checks the profile itself (patterns parse, lifetimes make sense).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidParameter(format!("profile: {m}")));
        if self.default_lifetime_secs == 0 || self.max_lifetime_secs == 0 {
            return bad("lifetimes must be positive".into());
        }
        if self.default_lifetime_secs > self.max_lifetime_secs {
            return bad("defaultLifetimeSecs is longer than maxLifetimeSecs".into());
        }
        if self.max_lifetime_secs > 100 * 365 * DAY {
            return bad("maxLifetimeSecs is longer than 100 years".into());
        }
        if self.backdate_secs > DAY {
            return bad("backdateSecs is longer than a day".into());
        }
        if self.names.max_names == 0 {
            return bad("names.maxNames must be at least 1".into());
        }
        self.subject.validate()?;
        for p in self.names.allow.iter().chain(&self.names.deny) {
            p.validate()?;
        }
        if let Some(s) = &self.spiffe {
            validate_trust_domain(&s.trust_domain)?;
            if !s.path_prefix.is_empty() {
                SpiffeId::parse(&format!(
                    "spiffe://{}{}",
                    s.trust_domain,
                    s.path_prefix.trim_end_matches('/')
                ))
                .map_err(|e| Error::InvalidParameter(format!("profile: spiffe.pathPrefix: {e}")))?;
            }
        }
        Ok(())
    }

    /// Decide what to issue for `csr`, or refuse.
    pub fn decide(&self, csr: &ParsedCsr, opts: &IssueOptions) -> Result<Decision> {
        self.validate()?;
        self.check_key(csr.public_key().kind())?;
        self.check_requested_extensions(csr)?;

        let lifetime_secs = opts.lifetime_secs.unwrap_or(self.default_lifetime_secs);
        if lifetime_secs == 0 {
            return Err(Error::Policy(
                "a lifetime of zero seconds was requested".into(),
            ));
        }
        if lifetime_secs > self.max_lifetime_secs {
            return Err(Error::Policy(format!(
                "a lifetime of {lifetime_secs} s was requested; this profile allows at most {} s",
                self.max_lifetime_secs
            )));
        }

        let identity = opts.identity.as_ref();
        let mut names: Vec<SanName> = identity.into_iter().cloned().collect();
        for name in csr.names() {
            if Some(name) == identity || names.contains(name) {
                continue;
            }
            self.check_name(name)?;
            names.push(name.clone());
        }
        if names.len() > self.names.max_names {
            return Err(Error::Policy(format!(
                "{} subject alternative names requested; this profile allows at most {}",
                names.len(),
                self.names.max_names
            )));
        }
        if let Some(rule) = &self.spiffe {
            self.check_svid(rule, &names)?;
        }

        let mut subject = match self.subject_from {
            SubjectSource::Identity => Subject::default(),
            SubjectSource::Csr => csr.subject().clone(),
        };
        if self.subject_from == SubjectSource::Csr && self.subject.common_name.is_none() {
            if let Some(cn) = &subject.common_name {
                self.check_csr_common_name(cn, &names)?;
            }
        }
        for (dst, src) in [
            (&mut subject.common_name, &self.subject.common_name),
            (&mut subject.organization, &self.subject.organization),
            (
                &mut subject.organizational_unit,
                &self.subject.organizational_unit,
            ),
            (&mut subject.country, &self.subject.country),
            (&mut subject.state, &self.subject.state),
            (&mut subject.locality, &self.subject.locality),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        if subject.common_name.is_none() && self.subject_from == SubjectSource::Identity {
            subject.common_name = identity.and_then(common_name_for);
        }
        if names.is_empty() && subject.common_name.is_none() {
            return Err(Error::Policy(
                "nothing to certify: no identity was given and the CSR asks for no allowed name"
                    .into(),
            ));
        }
        Ok(Decision {
            subject,
            names,
            lifetime_secs,
            usage: self.usage,
            spiffe: self.spiffe.is_some(),
        })
    }

    fn check_key(&self, kind: KeyKind) -> Result<()> {
        let alg = match kind {
            KeyKind::P256 => KeyAlgorithm::P256,
            KeyKind::Ed25519 => KeyAlgorithm::Ed25519,
            KeyKind::Rsa { bits } => {
                let min = self.rsa_min_bits.max(RSA_MIN_BITS);
                if bits < min {
                    return Err(Error::Policy(format!(
                        "RSA-{bits} key; this profile requires at least {min} bits"
                    )));
                }
                KeyAlgorithm::Rsa
            }
        };
        if !self.key_types.is_empty() && !self.key_types.contains(&alg) {
            return Err(Error::Policy(format!(
                "{} keys are not accepted by this profile",
                kind.name()
            )));
        }
        Ok(())
    }

    fn check_requested_extensions(&self, csr: &ParsedCsr) -> Result<()> {
        let req = csr.requested_extensions();
        if req.ca == Some(true) {
            return Err(Error::Policy(
                "the CSR asks for a CA certificate (basicConstraints CA:true)".into(),
            ));
        }
        if req.path_len.is_some() {
            return Err(Error::Policy(
                "the CSR asks for a path length constraint, which only CAs have".into(),
            ));
        }
        for ku in &req.key_usage {
            if matches!(*ku, "keyCertSign" | "cRLSign") {
                return Err(Error::Policy(format!(
                    "the CSR asks for key usage {ku}, which only CAs have"
                )));
            }
        }
        Ok(())
    }

    fn check_name(&self, name: &SanName) -> Result<()> {
        // Deny rules win over everything, the SPIFFE rule included.
        if let Some(p) = self.names.deny.iter().find(|p| p.matches(name, true)) {
            return Err(Error::Policy(format!(
                "{name} is denied by the profile rule {p:?}"
            )));
        }
        if let (Some(rule), SanName::Uri(uri)) = (&self.spiffe, name) {
            // In an SVID profile, URIs are SPIFFE IDs judged by the SPIFFE rule (and deny rules).
            return check_spiffe_id(rule, uri);
        }
        if let SanName::Dns(d) = name {
            if d.starts_with("*.") && !self.names.allow_wildcards {
                return Err(Error::Policy(format!(
                    "{name}: wildcard names are not allowed by this profile"
                )));
            }
        }
        if self
            .names
            .allow
            .iter()
            .any(|p| p.matches(name, self.names.allow_wildcards))
        {
            return Ok(());
        }
        Err(Error::Policy(format!(
            "{name} is not allowed by this profile (not the caller's identity and no allow rule covers it)"
        )))
    }

    /// A CSR's CN is a name too (legacy verifiers still match host names against it): it must be
    /// one of the certificate's names or pass the name rules; free text needs an `Any` rule.
    fn check_csr_common_name(&self, cn: &str, names: &[SanName]) -> Result<()> {
        let as_name = cn
            .parse::<std::net::IpAddr>()
            .map(SanName::Ip)
            .or_else(|_| SanName::dns(cn))
            .or_else(|_| SanName::email(cn));
        if let Ok(name) = &as_name {
            if names.contains(name) {
                return Ok(());
            }
        }
        let refuse = |why: String| {
            Err(Error::Policy(format!(
                "the CSR's subject CN \"{cn}\" is not one of the certificate's names and {why}"
            )))
        };
        match as_name {
            Ok(name) => self.check_name(&name).or_else(|e| refuse(e.to_string())),
            Err(_) if self.names.allow.contains(&NamePattern::Any) => Ok(()),
            Err(_) => refuse("this profile allows no free-text names".into()),
        }
    }

    fn check_svid(&self, rule: &SpiffeRule, names: &[SanName]) -> Result<()> {
        let uris: Vec<&String> = names
            .iter()
            .filter_map(|n| match n {
                SanName::Uri(u) => Some(u),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [one] => check_spiffe_id(rule, one),
            [] => Err(Error::Policy(
                "an X.509-SVID needs exactly one SPIFFE ID URI SAN; none was given".into(),
            )),
            more => Err(Error::Policy(format!(
                "an X.509-SVID has exactly one URI SAN; {} were requested",
                more.len()
            ))),
        }
    }
}

fn check_spiffe_id(rule: &SpiffeRule, uri: &str) -> Result<()> {
    let id = SpiffeId::parse(uri).map_err(|e| Error::Policy(e.to_string()))?;
    if id.trust_domain() != rule.trust_domain {
        return Err(Error::Policy(format!(
            "{uri} is in trust domain {}, not {}",
            id.trust_domain(),
            rule.trust_domain
        )));
    }
    if id.path().is_empty() {
        return Err(Error::Policy(format!(
            "{uri} names the trust domain, not a workload"
        )));
    }
    if !id.path_is_under(&rule.path_prefix) {
        return Err(Error::Policy(format!(
            "{uri} is not under the path {}",
            rule.path_prefix
        )));
    }
    Ok(())
}

/// CN for an identity: DNS names, IPs and e-mails fit; SPIFFE IDs go in the URI SAN only.
fn common_name_for(identity: &SanName) -> Option<String> {
    let cn = match identity {
        SanName::Dns(d) => d.clone(),
        SanName::Ip(ip) => ip.to_string(),
        SanName::Email(e) => e.clone(),
        SanName::Uri(_) => return None,
    };
    (cn.chars().count() <= 64).then_some(cn)
}

impl NamePattern {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::InvalidParameter(format!(
                "profile name pattern: {m}"
            )))
        };
        match self {
            NamePattern::Dns(p) => {
                let body = p.strip_prefix('.').unwrap_or(p);
                if let Err(e) = normalize_dns(body) {
                    return bad(e.to_string());
                }
            }
            NamePattern::Ip(p) => {
                if parse_cidr(p).is_none() {
                    return bad(format!("\"{p}\" is not an IP address or CIDR block"));
                }
            }
            NamePattern::UriPrefix(p) => {
                if !p.contains(':') {
                    return bad(format!("URI prefix \"{p}\" has no scheme"));
                }
            }
            NamePattern::EmailDomain(d) => {
                if let Err(e) = normalize_dns(d) {
                    return bad(e.to_string());
                }
            }
            NamePattern::Any => {}
        }
        Ok(())
    }

    /// Whether `name` is covered. `wildcards` says whether a requested `*.` name may match.
    pub fn matches(&self, name: &SanName, wildcards: bool) -> bool {
        match (self, name) {
            (NamePattern::Any, _) => true,
            (NamePattern::Dns(p), SanName::Dns(d)) => {
                dns_matches(&p.to_ascii_lowercase(), d, wildcards)
            }
            (NamePattern::Ip(p), SanName::Ip(ip)) => {
                parse_cidr(p).is_some_and(|(net, len)| ip_in(ip, &net, len))
            }
            (NamePattern::UriPrefix(p), SanName::Uri(u)) => {
                u == p
                    || (u.starts_with(p.as_str())
                        && (p.ends_with('/') || u.as_bytes().get(p.len()) == Some(&b'/')))
            }
            (NamePattern::EmailDomain(dom), SanName::Email(e)) => e
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == dom.to_ascii_lowercase()),
            _ => false,
        }
    }
}

fn dns_matches(pattern: &str, name: &str, wildcards: bool) -> bool {
    if let Some(base) = name.strip_prefix("*.") {
        // A wildcard request is covered only by a pattern that covers every name it stands for.
        return wildcards
            && (pattern == name
                || pattern.strip_prefix('.').is_some_and(|suffix| {
                    base == suffix || base.ends_with(&format!(".{suffix}"))
                }));
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return name
            .strip_suffix(suffix)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.'));
    }
    if let Some(suffix) = pattern.strip_prefix('.') {
        return name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}"));
    }
    pattern == name
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn ip_in(ip: &IpAddr, net: &IpAddr, len: u8) -> bool {
    fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
        let full = (len / 8) as usize;
        let rest = len % 8;
        if a[..full] != b[..full] {
            return false;
        }
        rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            a[full] & mask == b[full] & mask
        }
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), len),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), len),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(s: &str) -> SanName {
        SanName::dns(s).unwrap()
    }

    #[test]
    fn dns_patterns() {
        let one = NamePattern::Dns("*.example.com".into());
        let deep = NamePattern::Dns(".example.com".into());
        let exact = NamePattern::Dns("Example.com".into());
        assert!(one.matches(&dns("a.example.com"), false));
        assert!(!one.matches(&dns("a.b.example.com"), false));
        assert!(!one.matches(&dns("example.com"), false));
        assert!(!one.matches(&dns("aexample.com"), false));
        assert!(deep.matches(&dns("a.b.example.com"), false));
        assert!(!deep.matches(&dns("example.com"), false));
        assert!(!deep.matches(&dns("badexample.com"), false));
        assert!(exact.matches(&dns("example.com"), false));
        assert!(!one.matches(&dns("*.example.com"), false));
        assert!(one.matches(&dns("*.example.com"), true));
        assert!(deep.matches(&dns("*.a.example.com"), true));
        assert!(!exact.matches(&dns("*.example.com"), true));
    }

    #[test]
    fn ip_and_uri_patterns() {
        let net = NamePattern::Ip("10.0.0.0/8".into());
        assert!(net.matches(&SanName::Ip("10.2.3.4".parse().unwrap()), false));
        assert!(!net.matches(&SanName::Ip("11.2.3.4".parse().unwrap()), false));
        assert!(!net.matches(&SanName::Ip("::ffff:10.2.3.4".parse().unwrap()), false));
        let v6 = NamePattern::Ip("2001:db8::/33".into());
        assert!(v6.matches(&SanName::Ip("2001:db8::1".parse().unwrap()), false));
        assert!(!v6.matches(&SanName::Ip("2001:db8:8000::1".parse().unwrap()), false));
        let uri = NamePattern::UriPrefix("https://example.com/app".into());
        assert!(uri.matches(&SanName::uri("https://example.com/app/x").unwrap(), false));
        assert!(!uri.matches(
            &SanName::uri("https://example.com/application").unwrap(),
            false
        ));
        assert!(NamePattern::Ip("300.0.0.0/8".into()).validate().is_err());
        assert!(NamePattern::Ip("10.0.0.0/33".into()).validate().is_err());
    }

    #[test]
    fn profile_validation() {
        assert!(Profile::default().validate().is_ok());
        let p = Profile {
            default_lifetime_secs: 10,
            max_lifetime_secs: 5,
            ..Profile::default()
        };
        assert!(p.validate().is_err());
        assert!(Profile::spiffe("Bad.Domain", "").validate().is_err());
        assert!(Profile::spiffe("example.org", "/ns/../x")
            .validate()
            .is_err());
    }
}
