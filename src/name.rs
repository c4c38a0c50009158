//! Subject names and subject alternative names, validated before they enter or leave a certificate.

use core::fmt;
use std::net::IpAddr;

use rcgen::{DistinguishedName, DnType, DnValue, SanType};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use crate::error::{Error, Result};

/// Upper bound on one subject attribute (RFC 5280 ub-common-name is 64; we allow the same for all).
const MAX_ATTRIBUTE_CHARS: usize = 64;
/// Upper bound on a URI or e-mail SAN.
const MAX_SAN_LEN: usize = 2048;

/// The subject attributes the core understands. Each appears at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    /// CN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// OU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
    /// C: two upper-case letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// L.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
}

impl Subject {
    /// A subject holding only a common name.
    pub fn common_name(cn: impl Into<String>) -> Self {
        Subject {
            common_name: Some(cn.into()),
            ..Default::default()
        }
    }

    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }

    /// Set every attribute `template` has, keeping the others: the issuer's word wins.
    pub fn override_with(&mut self, template: &Subject) {
        for (dst, src) in [
            (&mut self.common_name, &template.common_name),
            (&mut self.organization, &template.organization),
            (&mut self.organizational_unit, &template.organizational_unit),
            (&mut self.country, &template.country),
            (&mut self.state, &template.state),
            (&mut self.locality, &template.locality),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
    }

    fn fields(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("C", &self.country),
            ("ST", &self.state),
            ("L", &self.locality),
            ("O", &self.organization),
            ("OU", &self.organizational_unit),
            ("CN", &self.common_name),
        ]
    }

    /// Checks every attribute: not empty, at most 64 characters, no control characters; C is ISO 3166.
    pub fn validate(&self) -> Result<()> {
        for (label, value) in self.fields() {
            let Some(v) = value else { continue };
            if v.is_empty() {
                return Err(Error::InvalidName(format!("subject {label} is empty")));
            }
            if v.chars().count() > MAX_ATTRIBUTE_CHARS {
                return Err(Error::InvalidName(format!(
                    "subject {label} is longer than {MAX_ATTRIBUTE_CHARS} characters"
                )));
            }
            if v.chars().any(char::is_control) {
                return Err(Error::InvalidName(format!(
                    "subject {label} contains a control character (such as NUL)"
                )));
            }
        }
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::InvalidName(format!(
                    "subject C must be two upper-case letters (ISO 3166), got \"{c}\""
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn to_rcgen(&self) -> Result<DistinguishedName> {
        self.validate()?;
        let mut dn = DistinguishedName::new();
        let types = [
            DnType::CountryName,
            DnType::StateOrProvinceName,
            DnType::LocalityName,
            DnType::OrganizationName,
            DnType::OrganizationalUnitName,
            DnType::CommonName,
        ];
        for (ty, (_, value)) in types.into_iter().zip(self.fields()) {
            let Some(v) = value else { continue };
            let value = if ty == DnType::CountryName {
                // X.520 requires PrintableString for countryName.
                DnValue::PrintableString(
                    v.as_str()
                        .try_into()
                        .map_err(|_| Error::InvalidName("subject C".into()))?,
                )
            } else {
                DnValue::Utf8String(v.clone())
            };
            dn.push(ty, value);
        }
        Ok(dn)
    }

    /// Reads the known attributes of an X.509 name. A repeated attribute, a value that is not
    /// valid text, or one with control characters is an error.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Result<Self> {
        let mut s = Subject::default();
        for attr in name.iter_attributes() {
            use crate::oids::*;
            let t = attr.attr_type();
            let slot = if *t == OID_X509_COMMON_NAME {
                &mut s.common_name
            } else if *t == OID_X509_ORGANIZATION_NAME {
                &mut s.organization
            } else if *t == OID_X509_ORGANIZATIONAL_UNIT {
                &mut s.organizational_unit
            } else if *t == OID_X509_COUNTRY_NAME {
                &mut s.country
            } else if *t == OID_X509_STATE_OR_PROVINCE_NAME {
                &mut s.state
            } else if *t == OID_X509_LOCALITY_NAME {
                &mut s.locality
            } else {
                continue;
            };
            let value = attr.as_str().map_err(|_| {
                Error::InvalidName(format!(
                    "subject attribute {} is not valid text (bad UTF-8 or an unsupported string type)",
                    attr.attr_type()
                ))
            })?;
            if slot.is_some() {
                return Err(Error::InvalidName(format!(
                    "subject attribute {} appears more than once",
                    attr.attr_type()
                )));
            }
            *slot = Some(value.to_string());
        }
        s.validate()?;
        Ok(s)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (label, value) in self.fields().iter().rev() {
            if let Some(v) = value {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{label}={v}")?;
            }
        }
        Ok(())
    }
}

/// One subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum SanName {
    /// A DNS name, lower-case ASCII (A-labels for IDNs); a leading `*.` marks a wildcard.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A URI, e.g. a `spiffe://` ID.
    Uri(String),
    /// An e-mail address (rfc822Name).
    Email(String),
}

impl fmt::Display for SanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SanName::Dns(d) => write!(f, "DNS:{d}"),
            SanName::Ip(ip) => write!(f, "IP:{ip}"),
            SanName::Uri(u) => write!(f, "URI:{u}"),
            SanName::Email(e) => write!(f, "email:{e}"),
        }
    }
}

impl SanName {
    /// The name without its type prefix, as [`SanName::parse`] reads it back (`a.example.com`,
    /// `192.0.2.1`, `spiffe://…`, `user@example.com`).
    pub fn value(&self) -> String {
        match self {
            SanName::Dns(d) => d.clone(),
            SanName::Ip(ip) => ip.to_string(),
            SanName::Uri(u) => u.clone(),
            SanName::Email(e) => e.clone(),
        }
    }

    /// A validated DNS name (normalised to lower case).
    pub fn dns(name: &str) -> Result<Self> {
        Ok(SanName::Dns(normalize_dns(name)?))
    }

    /// A validated URI.
    pub fn uri(uri: &str) -> Result<Self> {
        validate_uri(uri)?;
        Ok(SanName::Uri(uri.to_string()))
    }

    /// A validated e-mail address (the domain is normalised to lower case).
    pub fn email(addr: &str) -> Result<Self> {
        Ok(SanName::Email(normalize_email(addr)?))
    }

    /// Guess the kind from text: an IP address, a URI (has `scheme:`), an e-mail (has `@`),
    /// otherwise a DNS name. For CLIs and forms.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(SanName::Ip(ip));
        }
        if text.contains("://") {
            return Self::uri(text);
        }
        if text.contains('@') {
            return Self::email(text);
        }
        Self::dns(text)
    }

    pub(crate) fn to_rcgen(&self) -> Result<SanType> {
        let ia5 = |s: &str| {
            s.try_into()
                .map_err(|_| Error::InvalidName(format!("{self} is not ASCII")))
        };
        Ok(match self {
            SanName::Dns(d) => SanType::DnsName(ia5(d)?),
            SanName::Ip(ip) => SanType::IpAddress(*ip),
            SanName::Uri(u) => SanType::URI(ia5(u)?),
            SanName::Email(e) => SanType::Rfc822Name(ia5(e)?),
        })
    }

    /// Converts a parsed GeneralName; kinds the core does not issue are refused by name.
    pub(crate) fn from_general_name(gn: &GeneralName<'_>) -> Result<Self> {
        match gn {
            GeneralName::DNSName(d) => Self::dns(d),
            GeneralName::URI(u) => Self::uri(u),
            GeneralName::RFC822Name(e) => Self::email(e),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Ok(SanName::Ip(IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                ))),
                16 => Ok(SanName::Ip(IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                ))),
                n => Err(Error::InvalidName(format!(
                    "an IP address SAN of {n} bytes"
                ))),
            },
            GeneralName::Invalid(_, _) => Err(Error::InvalidName(
                "a subject alternative name is not valid text (bad UTF-8 or wrong string type)"
                    .into(),
            )),
            other => Err(Error::InvalidName(format!(
                "subject alternative names of this kind are not supported: {}",
                general_name_kind(other)
            ))),
        }
    }
}

fn general_name_kind(gn: &GeneralName<'_>) -> &'static str {
    match gn {
        GeneralName::OtherName(..) => "otherName",
        GeneralName::X400Address(_) => "x400Address",
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::EDIPartyName(_) => "ediPartyName",
        GeneralName::RegisteredID(_) => "registeredID",
        _ => "unknown",
    }
}

/// Lower-cases and checks a DNS name: LDH labels of 1-63 characters, at most 253 in all, no
/// trailing dot, an optional leading `*.` wildcard label, and not an IP address in disguise.
pub(crate) fn normalize_dns(name: &str) -> Result<String> {
    let bad =
        |why: &str| Error::InvalidName(format!("DNS name \"{}\": {why}", name.escape_debug()));
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if !name.is_ascii() {
        return Err(bad(
            "not ASCII; write internationalised names in their xn-- (punycode) form",
        ));
    }
    if name.ends_with('.') {
        return Err(bad("trailing dot"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if name.parse::<IpAddr>().is_ok() || looks_like_ipv4(name) {
        return Err(bad("an IP address must be an IP SAN, not a DNS name"));
    }
    let lower = name.to_ascii_lowercase();
    let (wildcard, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if rest.is_empty() {
        return Err(bad("nothing after the wildcard"));
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(if label.contains('*') {
                "a wildcard is allowed only as the whole left-most label"
            } else {
                "only letters, digits and '-' are allowed"
            }));
        }
    }
    if wildcard && !rest.contains('.') {
        return Err(bad("a wildcard needs at least two labels after it"));
    }
    Ok(lower)
}

fn looks_like_ipv4(name: &str) -> bool {
    // "10.1", "1.2.3" and friends are accepted as IPv4 by some resolvers.
    !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
}

fn validate_uri(uri: &str) -> Result<()> {
    let bad = |why: &str| Error::InvalidName(format!("URI \"{}\": {why}", uri.escape_debug()));
    if uri.len() > MAX_SAN_LEN {
        return Err(bad("too long"));
    }
    if !uri.is_ascii() || uri.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad(
            "must be printable ASCII without spaces (percent-encode the rest)",
        ));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(bad("no scheme"));
    };
    if scheme.is_empty()
        || !scheme.as_bytes()[0].is_ascii_alphabetic()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(bad("invalid scheme"));
    }
    if rest.is_empty() {
        return Err(bad("nothing after the scheme"));
    }
    if scheme.eq_ignore_ascii_case("spiffe") {
        crate::spiffe::SpiffeId::parse(uri)?;
    }
    Ok(())
}

fn normalize_email(addr: &str) -> Result<String> {
    let bad = |why: &str| Error::InvalidName(format!("e-mail \"{}\": {why}", addr.escape_debug()));
    if addr.len() > MAX_SAN_LEN {
        return Err(bad("too long"));
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(bad("no '@'"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the local part must have 1 to 64 characters"));
    }
    if !local.is_ascii()
        || local
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'@')
    {
        return Err(bad("the local part must be printable ASCII"));
    }
    let domain = normalize_dns(domain).map_err(|_| bad("invalid domain"))?;
    if domain.starts_with("*.") {
        return Err(bad("wildcard domain"));
    }
    Ok(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_normalised_and_checked() {
        assert_eq!(normalize_dns("WWW.Example.COM").unwrap(), "www.example.com");
        assert_eq!(normalize_dns("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "",
            "example.com.",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "*.com",
            "a.*.com",
            "*",
            "10.0.0.1",
            "1.2.3",
            "exämple.com",
            "a\0.com",
            "foo*.example.com",
            "::1",
        ] {
            assert!(normalize_dns(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_dns(&"a".repeat(64)).is_err());
        assert!(normalize_dns(&format!("{}.com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn subject_rejects_control_and_bad_country() {
        let mut s = Subject::common_name("ok");
        assert!(s.validate().is_ok());
        s.common_name = Some("evil\0.example.com".into());
        assert!(s.validate().is_err());
        s.common_name = Some("x".repeat(65));
        assert!(s.validate().is_err());
        let s = Subject {
            country: Some("usa".into()),
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn san_parse_guesses_kind() {
        assert_eq!(
            SanName::parse("10.0.0.1").unwrap(),
            SanName::Ip("10.0.0.1".parse().unwrap())
        );
        assert!(matches!(
            SanName::parse("spiffe://td/ns/a").unwrap(),
            SanName::Uri(_)
        ));
        assert!(
            matches!(SanName::parse("a@Example.com").unwrap(), SanName::Email(e) if e == "a@example.com")
        );
        assert!(SanName::parse("spiffe://td/../a").is_err());
        assert!(SanName::uri("no scheme").is_err());
        assert!(SanName::email("@x.com").is_err());
    }
}
