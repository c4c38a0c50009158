//! Issuance profiles: which keys, names, lifetimes and usages a certificate may have.
//!
//! [`Profile::decide`] is pure: it turns a verified CSR plus what the caller vouches for (an
//! identity) into a [`Decision`], or refuses with [`Error::Policy`]. Nothing is trimmed silently.

use core::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::csr::ParsedCsr;
use crate::error::{Error, Result};
use crate::name::{normalize_dns, SanName, Subject};
use crate::public_key::{KeyKind, PublicKey, RSA_MIN_BITS};
use crate::spiffe::{validate_trust_domain, SpiffeId};

/// One day in seconds.
const DAY: u64 = 86_400;

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

/// A DNS name pattern, normalised (lower case, validated) once when it is made.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DnsPattern {
    /// `host.example.com`: that name only.
    Exact(String),
    /// `*.example.com`: exactly one label below `example.com`.
    OneLabel(String),
    /// `.example.com`: any depth below `example.com` (not `example.com` itself).
    AnyDepth(String),
}

impl DnsPattern {
    /// Parse `host.example.com`, `*.example.com` or `.example.com`.
    pub fn parse(p: &str) -> Result<Self> {
        let bad = |m: String| Error::InvalidParameter(format!("profile name pattern: {m}"));
        if let Some(suffix) = p.strip_prefix('.') {
            if suffix.starts_with("*.") {
                return Err(bad(format!("\"{p}\": use *.name or .name, not both")));
            }
            return Ok(DnsPattern::AnyDepth(
                normalize_dns(suffix).map_err(|e| bad(e.to_string()))?,
            ));
        }
        let name = normalize_dns(p).map_err(|e| bad(e.to_string()))?;
        Ok(match name.strip_prefix("*.") {
            Some(suffix) => DnsPattern::OneLabel(suffix.to_string()),
            None => DnsPattern::Exact(name),
        })
    }

    /// Whether the (normalised) DNS name `name` is covered; a requested `*.` name only when
    /// `wildcards` is true and the pattern covers every name it stands for.
    pub fn matches(&self, name: &str, wildcards: bool) -> bool {
        let under = |name: &str, suffix: &str| {
            name.len() > suffix.len() + 1
                && name.ends_with(suffix)
                && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        };
        if let Some(base) = name.strip_prefix("*.") {
            return wildcards
                && match self {
                    DnsPattern::OneLabel(s) => base == s,
                    DnsPattern::AnyDepth(s) => base == s || under(base, s),
                    DnsPattern::Exact(_) => false,
                };
        }
        match self {
            DnsPattern::Exact(e) => e == name,
            DnsPattern::OneLabel(s) => {
                under(name, s) && !name[..name.len() - s.len() - 1].contains('.')
            }
            DnsPattern::AnyDepth(s) => under(name, s),
        }
    }
}

impl fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsPattern::Exact(e) => f.write_str(e),
            DnsPattern::OneLabel(s) => write!(f, "*.{s}"),
            DnsPattern::AnyDepth(s) => write!(f, ".{s}"),
        }
    }
}

/// A pattern for names a profile allows (or denies). Every variant is validated when it is made
/// (from JSON/TOML or the constructors), so matching never parses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPattern", into = "RawPattern")]
pub enum NamePattern {
    /// A DNS pattern.
    Dns(DnsPattern),
    /// An address or a CIDR block: `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7` (a /32).
    Ip(IpNet),
    /// URIs starting with this prefix, at a `/` boundary unless the prefix ends in `/`.
    UriPrefix(String),
    /// E-mail addresses at exactly this (normalised) domain.
    EmailDomain(String),
    /// Any name at all: only for callers who accept the CSR's names as they are.
    Any,
}

/// The JSON/TOML form of a [`NamePattern`]: `{ "type": "dns", "value": ".example.com" }`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
enum RawPattern {
    Dns(String),
    Ip(String),
    UriPrefix(String),
    EmailDomain(String),
    Any,
}

impl TryFrom<RawPattern> for NamePattern {
    type Error = Error;
    fn try_from(raw: RawPattern) -> Result<Self> {
        match raw {
            RawPattern::Dns(p) => NamePattern::dns(&p),
            RawPattern::Ip(p) => NamePattern::ip(&p),
            RawPattern::UriPrefix(p) => NamePattern::uri_prefix(&p),
            RawPattern::EmailDomain(p) => NamePattern::email_domain(&p),
            RawPattern::Any => Ok(NamePattern::Any),
        }
    }
}

impl From<NamePattern> for RawPattern {
    fn from(p: NamePattern) -> Self {
        match p {
            NamePattern::Dns(d) => RawPattern::Dns(d.to_string()),
            NamePattern::Ip(n) => RawPattern::Ip(n.to_string()),
            NamePattern::UriPrefix(u) => RawPattern::UriPrefix(u),
            NamePattern::EmailDomain(d) => RawPattern::EmailDomain(d),
            NamePattern::Any => RawPattern::Any,
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Dns(d) => write!(f, "dns {d}"),
            NamePattern::Ip(n) => write!(f, "ip {n}"),
            NamePattern::UriPrefix(u) => write!(f, "uriPrefix {u}"),
            NamePattern::EmailDomain(d) => write!(f, "emailDomain {d}"),
            NamePattern::Any => f.write_str("any"),
        }
    }
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

/// Makes the profile issue intermediate CA certificates (e.g. for a SPIRE server that signs its
/// own SVIDs under this CA). Such a profile carries no host names: at most the trust domain's own
/// SPIFFE ID (`spiffe://<trust domain>`, when `spiffe` is set), and its subject comes from the
/// profile's template (or the CSR's, with `subjectFrom = "csr"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntermediateRule {
    /// basicConstraints pathLenConstraint of the intermediates: 0 (the default) lets them sign
    /// leaves only.
    #[serde(default)]
    pub path_len: u8,
    /// Name constraints written into the intermediates (RFC 5280 4.2.1.10).
    #[serde(default)]
    pub name_constraints: NameConstraintRules,
}

/// Permitted and excluded subtrees for an intermediate: DNS suffixes (`example.com` covers it and
/// every name below) and IP blocks (CIDR).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameConstraintRules {
    /// DNS subtrees the intermediate may certify.
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    /// DNS subtrees it may not.
    #[serde(default)]
    pub excluded_dns: Vec<String>,
    /// IP blocks it may certify.
    #[serde(default)]
    pub permitted_ip: Vec<IpNet>,
    /// IP blocks it may not.
    #[serde(default)]
    pub excluded_ip: Vec<IpNet>,
}

impl NameConstraintRules {
    /// Whether any subtree is set.
    pub fn is_empty(&self) -> bool {
        self.permitted_dns.is_empty()
            && self.excluded_dns.is_empty()
            && self.permitted_ip.is_empty()
            && self.excluded_ip.is_empty()
    }
}

/// The fields of a profile as written in JSON/TOML (camelCase) or built in code. Not checked:
/// [`ProfileSpec::build`] turns it into a [`Profile`], which is always valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    /// The explicit "accept the CSR as it is" choice: its subject and any names it asks for
    /// (for a caller who holds the CA key and has read the request). Cannot be combined with
    /// `subjectFrom`, `names.allow` or `spiffe`.
    #[serde(default)]
    pub accept_csr: bool,
    /// Accepted key kinds; empty means P-256, Ed25519 and RSA.
    #[serde(default)]
    pub key_types: Vec<KeyKind>,
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
    /// Lifetime when the caller asks for none, in seconds; absent: a day, or the maximum when
    /// that is shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lifetime_secs: Option<u64>,
    /// Longest lifetime a caller may ask for, in seconds.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
    /// TLS server, client, or both.
    #[serde(default)]
    pub usage: Usage,
    /// notBefore is set this many seconds in the past, for clock skew between peers.
    #[serde(default = "default_backdate")]
    pub backdate_secs: u64,
    /// Whether holders may renew certificates of this profile themselves, and for how long after
    /// they expire.
    #[serde(default)]
    pub renewal: RenewalRule,
    /// Issue intermediate CA certificates instead of leaves (absent: leaves only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate: Option<IntermediateRule>,
}

/// Renewal by the holder of a certificate (with the certificate's own key, no new token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewalRule {
    /// Renewal is allowed (the default).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// An expired certificate may still be renewed this long after its notAfter (at most 30
    /// days); 0, the default, refuses expired certificates.
    #[serde(default)]
    pub expired_grace_secs: u64,
}

fn yes() -> bool {
    true
}

impl Default for RenewalRule {
    fn default() -> Self {
        RenewalRule {
            enabled: true,
            expired_grace_secs: 0,
        }
    }
}

fn default_rsa_min_bits() -> usize {
    RSA_MIN_BITS
}
fn default_max_lifetime() -> u64 {
    90 * DAY
}
fn default_backdate() -> u64 {
    60
}

impl Default for ProfileSpec {
    /// A server+client leaf for the caller's identity only: 24 h by default, at most 90 days.
    fn default() -> Self {
        ProfileSpec {
            accept_csr: false,
            key_types: Vec::new(),
            rsa_min_bits: RSA_MIN_BITS,
            subject_from: SubjectSource::Identity,
            subject: Subject::default(),
            names: NameRules::default(),
            spiffe: None,
            default_lifetime_secs: None,
            max_lifetime_secs: default_max_lifetime(),
            usage: Usage::ServerAndClient,
            backdate_secs: default_backdate(),
            renewal: RenewalRule::default(),
            intermediate: None,
        }
    }
}

impl ProfileSpec {
    /// Check the fields and make the profile. The only way to a [`Profile`].
    pub fn build(mut self) -> Result<Profile> {
        let bad = |m: String| Err(Error::InvalidParameter(format!("profile: {m}")));
        if self.accept_csr {
            if self.spiffe.is_some() || self.names.allow.iter().any(|p| *p != NamePattern::Any) {
                return bad(
                    "acceptCsr takes the CSR's subject and any names; it cannot be combined with names.allow or spiffe".into(),
                );
            }
            self.subject_from = SubjectSource::Csr;
            self.names.allow = vec![NamePattern::Any];
        }
        let default = self
            .default_lifetime_secs
            .unwrap_or(DAY.min(self.max_lifetime_secs));
        if default == 0 || self.max_lifetime_secs == 0 {
            return bad("lifetimes must be positive".into());
        }
        if default > self.max_lifetime_secs {
            return bad("defaultLifetimeSecs is longer than maxLifetimeSecs".into());
        }
        if self.max_lifetime_secs > 100 * 365 * DAY {
            return bad("maxLifetimeSecs is longer than 100 years".into());
        }
        if self.backdate_secs > DAY {
            return bad("backdateSecs is longer than a day".into());
        }
        if self.renewal.expired_grace_secs > 30 * DAY {
            return bad("renewal.expiredGraceSecs is longer than 30 days".into());
        }
        if self.names.max_names == 0 {
            return bad("names.maxNames must be at least 1".into());
        }
        self.subject.validate()?;
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
        if let Some(rule) = &mut self.intermediate {
            if self.accept_csr || !self.names.allow.is_empty() {
                return bad("an intermediate profile issues no host names: acceptCsr and names.allow cannot be set".into());
            }
            if let Some(s) = &self.spiffe {
                if !s.path_prefix.is_empty() {
                    return bad("an intermediate's SPIFFE ID is its trust domain: spiffe.pathPrefix cannot be set".into());
                }
            }
            if self.subject_from == SubjectSource::Identity && self.subject.is_empty() {
                return bad("an intermediate needs a subject: set subject (at least commonName or organization) or subjectFrom = \"csr\"".into());
            }
            let nc = &mut rule.name_constraints;
            for list in [&mut nc.permitted_dns, &mut nc.excluded_dns] {
                for d in list.iter_mut() {
                    *d = normalize_dns(d.trim_start_matches('.')).map_err(|e| {
                        Error::InvalidParameter(format!(
                            "profile: intermediate.nameConstraints: {e}"
                        ))
                    })?;
                    if d.starts_with("*.") {
                        return bad(format!("intermediate.nameConstraints: {d}: a subtree is a domain, not a wildcard"));
                    }
                }
            }
        }
        self.default_lifetime_secs = Some(default);
        Ok(Profile(self))
    }
}

/// An issuance profile, valid by construction: made by [`ProfileSpec::build`], the named
/// constructors, or deserialisation (which runs `build`). It reads as its [`ProfileSpec`]
/// (`profile.max_lifetime_secs`) but cannot be changed; change a copy of the spec and build again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProfileSpec", into = "ProfileSpec")]
pub struct Profile(ProfileSpec);

impl TryFrom<ProfileSpec> for Profile {
    type Error = Error;
    fn try_from(spec: ProfileSpec) -> Result<Self> {
        spec.build()
    }
}

impl From<Profile> for ProfileSpec {
    fn from(p: Profile) -> Self {
        p.0
    }
}

impl core::ops::Deref for Profile {
    type Target = ProfileSpec;
    fn deref(&self) -> &ProfileSpec {
        &self.0
    }
}

impl Default for Profile {
    /// A server+client leaf for the caller's identity only: 24 h by default, at most 90 days.
    fn default() -> Self {
        Profile(ProfileSpec {
            default_lifetime_secs: Some(DAY),
            ..ProfileSpec::default()
        })
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
    /// Names asked for outside the CSR (a Vault client's `alt_names`, `ip_sans`, `uri_sans`):
    /// checked by the same rules as the CSR's own.
    pub extra_names: Vec<SanName>,
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
    /// The explicit "accept the CSR as it is" profile (`acceptCsr: true`): its subject and any
    /// names, default lifetime, a server+client leaf. For a caller who holds the CA key and has
    /// read the request.
    pub fn accept_csr() -> Self {
        Profile(ProfileSpec {
            accept_csr: true,
            subject_from: SubjectSource::Csr,
            names: NameRules {
                allow: vec![NamePattern::Any],
                ..NameRules::default()
            },
            default_lifetime_secs: Some(DAY),
            ..ProfileSpec::default()
        })
    }

    /// The default profile, also allowing CSRs to ask for names matching `allow`.
    pub fn allowing(allow: Vec<NamePattern>) -> Self {
        Profile(ProfileSpec {
            names: NameRules {
                allow,
                ..NameRules::default()
            },
            default_lifetime_secs: Some(DAY),
            ..ProfileSpec::default()
        })
    }

    /// An X.509-SVID profile for one trust domain and path prefix (1 h by default, at most a day).
    pub fn spiffe(trust_domain: &str, path_prefix: &str) -> Result<Self> {
        ProfileSpec {
            spiffe: Some(SpiffeRule {
                trust_domain: trust_domain.into(),
                path_prefix: path_prefix.into(),
            }),
            default_lifetime_secs: Some(3600),
            max_lifetime_secs: DAY,
            ..ProfileSpec::default()
        }
        .build()
    }

    /// The fields, to change a copy and build a new profile.
    pub fn to_spec(&self) -> ProfileSpec {
        self.0.clone()
    }

    /// Lifetime when the caller asks for none, in seconds.
    pub fn default_lifetime(&self) -> u64 {
        self.0.default_lifetime_secs.unwrap_or(DAY)
    }

    /// Decide what to issue for `csr`, or refuse.
    pub fn decide(&self, csr: &ParsedCsr, opts: &IssueOptions) -> Result<Decision> {
        self.check_key(csr.public_key())?;
        if let Some(rule) = &self.intermediate {
            return self.decide_intermediate(rule, csr, opts);
        }
        self.check_requested_extensions(csr)?;

        let lifetime_secs = self.lifetime(opts)?;

        let identity = opts.identity.as_ref();
        let mut names: Vec<SanName> = identity.into_iter().cloned().collect();
        for name in csr.names().iter().chain(&opts.extra_names) {
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
        subject.override_with(&self.subject);
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

    fn lifetime(&self, opts: &IssueOptions) -> Result<u64> {
        let lifetime_secs = opts.lifetime_secs.unwrap_or(self.default_lifetime());
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
        Ok(lifetime_secs)
    }

    /// An intermediate CA: no host names, at most the trust domain's own SPIFFE ID; the subject
    /// from the template (or the CSR's, when the profile says so); a requested path length only
    /// if it is no longer than the profile's.
    fn decide_intermediate(
        &self,
        rule: &IntermediateRule,
        csr: &ParsedCsr,
        opts: &IssueOptions,
    ) -> Result<Decision> {
        let req = csr.requested_extensions();
        if let Some(n) = req.path_len {
            if n > u32::from(rule.path_len) {
                return Err(Error::Policy(format!(
                    "the CSR asks for path length {n}; this profile allows at most {}",
                    rule.path_len
                )));
            }
        }
        let lifetime_secs = self.lifetime(opts)?;
        let own_id = self
            .spiffe
            .as_ref()
            .map(|s| SanName::Uri(format!("spiffe://{}", s.trust_domain)));
        let mut names: Vec<SanName> = Vec::new();
        for name in opts
            .identity
            .iter()
            .chain(csr.names())
            .chain(&opts.extra_names)
        {
            if names.contains(name) {
                continue;
            }
            if Some(name) != own_id.as_ref() {
                return Err(Error::Policy(match &own_id {
                    Some(id) => {
                        format!("{name}: an intermediate of this profile carries no name but {id}")
                    }
                    None => format!("{name}: an intermediate of this profile carries no names"),
                }));
            }
            names.push(name.clone());
        }
        let mut subject = match self.subject_from {
            SubjectSource::Identity => Subject::default(),
            SubjectSource::Csr => csr.subject().clone(),
        };
        subject.override_with(&self.subject);
        if subject.is_empty() {
            return Err(Error::Policy(
                "the intermediate would have an empty subject: the CSR names none and the profile sets none".into(),
            ));
        }
        Ok(Decision {
            subject,
            names,
            lifetime_secs,
            usage: self.usage,
            spiffe: false,
        })
    }

    fn check_key(&self, key: &PublicKey) -> Result<()> {
        let min = self.rsa_min_bits.max(RSA_MIN_BITS);
        if key.kind() == KeyKind::Rsa && key.bits() < min {
            return Err(Error::Policy(format!(
                "RSA-{} key; this profile requires at least {min} bits",
                key.bits()
            )));
        }
        if !self.key_types.is_empty() && !self.key_types.contains(&key.kind()) {
            return Err(Error::Policy(format!(
                "{} keys are not accepted by this profile",
                key.name()
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
                "{name} is denied by the profile rule {p}"
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

    /// Whether `name` may appear in a certificate of this profile (deny rules, wildcards, the
    /// allow list, the SPIFFE rule), as the CA decides it for a name a CSR asks for.
    pub fn permits(&self, name: &SanName) -> Result<()> {
        if self.intermediate.is_some() {
            return Err(Error::Policy(format!(
                "{name}: this profile issues intermediate CAs, which carry no host names"
            )));
        }
        self.check_name(name)
    }

    /// For an ACME order: `csr` must ask for exactly `names` (as a set; its CN, if any, one of
    /// them), and each must pass [`Self::permits`]. Returns the name for the CN: the CSR's CN
    /// when it is one of them, else the first.
    pub fn check_exact_names<'a>(
        &self,
        csr: &ParsedCsr,
        names: &'a [SanName],
    ) -> Result<&'a SanName> {
        let first = names
            .first()
            .ok_or_else(|| Error::Policy("an order without names".into()))?;
        for n in names {
            self.permits(n)?;
        }
        if let Some(extra) = csr.names().iter().find(|n| !names.contains(n)) {
            return Err(Error::Policy(format!(
                "the CSR asks for {extra}, which is not one of the order's identifiers"
            )));
        }
        if let Some(missing) = names.iter().find(|n| !csr.names().contains(n)) {
            return Err(Error::Policy(format!(
                "the CSR does not ask for {missing}, one of the order's identifiers"
            )));
        }
        match &csr.subject().common_name {
            None => Ok(first),
            Some(cn) => names
                .iter()
                .find(|n| common_name_for(n).as_deref() == Some(cn.as_str()))
                .ok_or_else(|| {
                    Error::Policy(format!(
                        "the CSR's CN \"{cn}\" is not one of the order's identifiers"
                    ))
                }),
        }
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

    /// Whether `uri` is a SPIFFE ID this profile may issue an X.509-SVID for (its trust domain,
    /// under its path prefix, a workload rather than the trust domain itself); a profile without
    /// `spiffe` issues none. Registration entries are checked with it when they are made.
    pub fn check_workload_id(&self, uri: &str) -> Result<()> {
        match &self.spiffe {
            Some(rule) => check_spiffe_id(rule, uri),
            None => Err(Error::Policy(
                "this profile issues no SPIFFE IDs (it has no spiffe rule)".into(),
            )),
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
    /// A DNS pattern: `host.example.com`, `*.example.com` or `.example.com`.
    pub fn dns(p: &str) -> Result<Self> {
        DnsPattern::parse(p).map(NamePattern::Dns)
    }

    /// An IP address or CIDR block.
    pub fn ip(p: &str) -> Result<Self> {
        // std's address parser (already in the module) and ipnet's checked constructor.
        let bad = || {
            Error::InvalidParameter(format!(
                "profile name pattern: \"{p}\" is not an IP address or CIDR block"
            ))
        };
        let net = match p.split_once('/') {
            Some((addr, len)) => {
                let addr: IpAddr = addr.parse().map_err(|_| bad())?;
                let len: u8 = len.parse().map_err(|_| bad())?;
                IpNet::new(addr, len).map_err(|_| bad())?
            }
            None => IpNet::from(p.parse::<IpAddr>().map_err(|_| bad())?),
        };
        Ok(NamePattern::Ip(net))
    }

    /// A URI prefix; it must have a scheme.
    pub fn uri_prefix(p: &str) -> Result<Self> {
        if !p.contains(':') {
            return Err(Error::InvalidParameter(format!(
                "profile name pattern: URI prefix \"{p}\" has no scheme"
            )));
        }
        Ok(NamePattern::UriPrefix(p.to_string()))
    }

    /// An e-mail domain.
    pub fn email_domain(d: &str) -> Result<Self> {
        normalize_dns(d)
            .map(NamePattern::EmailDomain)
            .map_err(|e| Error::InvalidParameter(format!("profile name pattern: {e}")))
    }

    /// Whether `name` is covered. `wildcards` says whether a requested `*.` name may match.
    pub fn matches(&self, name: &SanName, wildcards: bool) -> bool {
        match (self, name) {
            (NamePattern::Any, _) => true,
            (NamePattern::Dns(p), SanName::Dns(d)) => p.matches(d, wildcards),
            (NamePattern::Ip(net), SanName::Ip(ip)) => net.contains(ip),
            (NamePattern::UriPrefix(p), SanName::Uri(u)) => {
                u == p
                    || (u.starts_with(p.as_str())
                        && (p.ends_with('/') || u.as_bytes().get(p.len()) == Some(&b'/')))
            }
            (NamePattern::EmailDomain(dom), SanName::Email(e)) => {
                e.rsplit_once('@').is_some_and(|(_, d)| d == dom)
            }
            _ => false,
        }
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
        let one = NamePattern::dns("*.example.com").unwrap();
        let deep = NamePattern::dns(".example.com").unwrap();
        let exact = NamePattern::dns("Example.com").unwrap();
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
        let net = NamePattern::ip("10.0.0.0/8").unwrap();
        assert!(net.matches(&SanName::Ip("10.2.3.4".parse().unwrap()), false));
        assert!(!net.matches(&SanName::Ip("11.2.3.4".parse().unwrap()), false));
        assert!(!net.matches(&SanName::Ip("::ffff:10.2.3.4".parse().unwrap()), false));
        let v6 = NamePattern::ip("2001:db8::/33").unwrap();
        assert!(v6.matches(&SanName::Ip("2001:db8::1".parse().unwrap()), false));
        assert!(!v6.matches(&SanName::Ip("2001:db8:8000::1".parse().unwrap()), false));
        let uri = NamePattern::uri_prefix("https://example.com/app").unwrap();
        assert!(uri.matches(&SanName::uri("https://example.com/app/x").unwrap(), false));
        assert!(!uri.matches(
            &SanName::uri("https://example.com/application").unwrap(),
            false
        ));
        assert!(NamePattern::ip("300.0.0.0/8").is_err());
        assert!(NamePattern::ip("10.0.0.0/33").is_err());
    }

    #[test]
    fn profile_validation() {
        assert!(ProfileSpec::default().build().is_ok());
        assert_eq!(ProfileSpec::default().build().unwrap(), Profile::default());
        let p = ProfileSpec {
            default_lifetime_secs: Some(10),
            max_lifetime_secs: 5,
            ..ProfileSpec::default()
        };
        assert!(p.build().is_err());
        assert!(Profile::spiffe("Bad.Domain", "").is_err());
        assert!(Profile::spiffe("example.org", "/ns/../x").is_err());
        // A maximum below a day, with no default given, lowers the default.
        let short: Profile = serde_json::from_str(r#"{"maxLifetimeSecs": 600}"#).unwrap();
        assert_eq!(short.default_lifetime(), 600);
        for bad in [
            r#"{"names": {"allow": [{"type": "dns", "value": "a..b"}]}}"#,
            r#"{"names": {"allow": [{"type": "dns", "value": ".*.example.com"}]}}"#,
            r#"{"names": {"allow": [{"type": "ip", "value": "10.0.0.0/33"}]}}"#,
            r#"{"names": {"deny": [{"type": "uriPrefix", "value": "no-scheme"}]}}"#,
            r#"{"acceptCsr": true, "spiffe": {"trustDomain": "example.org"}}"#,
            r#"{"keyTypes": ["p384"]}"#,
        ] {
            assert!(serde_json::from_str::<Profile>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_are_normalised_once_and_round_trip() {
        let json = r#"{"names": {"allow": [{"type": "dns", "value": "*.Example.COM"}, {"type": "ip", "value": "192.0.2.7"}, {"type": "emailDomain", "value": "Example.org"}]}}"#;
        let p: Profile = serde_json::from_str(json).unwrap();
        assert_eq!(
            p.names.allow[0],
            NamePattern::Dns(DnsPattern::OneLabel("example.com".into()))
        );
        let again: Profile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(p, again);
        let accept: Profile =
            serde_json::from_str(&serde_json::to_string(&Profile::accept_csr()).unwrap()).unwrap();
        assert_eq!(accept, Profile::accept_csr());
        assert_eq!(
            serde_json::from_str::<Profile>(r#"{"acceptCsr": true}"#).unwrap(),
            Profile::accept_csr()
        );
    }
}
