//! The payloads of ACME requests (RFC 8555 §7), typed and bounded, the external account binding
//! (§7.3.4), and the challenge values derived from a key authorization (§8.1, dns-01, RFC 8737
//! tls-alpn-01).
//!
//! Unknown members are ignored, as §7.1 asks of servers; the members this codec knows are
//! checked strictly and duplicates refused.

use std::net::IpAddr;

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jws::{
    base64url, clip, flattened_parts, header_text, parse_json, refuse_extensions, AccountKey,
    AcmeJws, MAX_URL_BYTES,
};
use super::problem::{AcmeError, ProblemKind};
use crate::name::SanName;

/// Most contacts an account may list.
pub const MAX_CONTACTS: usize = 8;
/// Longest contact URL.
pub const MAX_CONTACT_BYTES: usize = 256;
/// Most identifiers an order may name.
pub const MAX_IDENTIFIERS: usize = 100;
/// Largest CSR or certificate (DER) a request may carry.
pub const MAX_DER_BYTES: usize = 32 * 1024;
/// Longest EAB key id.
pub const MAX_EAB_KID_BYTES: usize = 256;

/// A request payload this codec decodes: [`AcmeJws::payload_as`] reads one.
pub trait AcmePayload: Sized {
    /// Decode and check the payload bytes (JSON; an empty payload is refused).
    fn decode(payload: &[u8]) -> Result<Self, AcmeError>;
}

impl AcmeJws {
    /// The payload as the request type `T`.
    pub fn payload_as<T: AcmePayload>(&self) -> Result<T, AcmeError> {
        T::decode(self.payload())
    }
}

/// JSON payload into its serde form: not empty, duplicates refused.
fn raw<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, AcmeError> {
    if payload.is_empty() {
        return Err(AcmeError::malformed(format!(
            "{what} needs a payload; an empty one is a POST-as-GET"
        )));
    }
    serde_json::from_value(parse_json(payload, what)?)
        .map_err(|e| AcmeError::malformed(format!("{what}: {e}")))
}

/// Check and normalise contact URLs: `mailto:` only, one address each, no header fields.
fn contacts(list: Vec<String>) -> Result<Vec<String>, AcmeError> {
    if list.len() > MAX_CONTACTS {
        return Err(AcmeError::malformed(format!(
            "{} contacts, more than {MAX_CONTACTS}",
            list.len()
        )));
    }
    list.iter().map(|c| contact(c)).collect()
}

fn contact(c: &str) -> Result<String, AcmeError> {
    let invalid = |why: &str| {
        AcmeError::new(
            ProblemKind::InvalidContact,
            format!("contact {:?}: {why}", clip(c)),
        )
    };
    if c.len() > MAX_CONTACT_BYTES {
        return Err(invalid("too long"));
    }
    let (scheme, addr) = c.split_once(':').ok_or_else(|| invalid("not a URL"))?;
    if !scheme.eq_ignore_ascii_case("mailto") {
        return Err(AcmeError::new(
            ProblemKind::UnsupportedContact,
            format!("contact {:?}: only mailto: is supported", clip(c)),
        ));
    }
    // RFC 8555 §7.3: one address, no hfields; percent-encoding is refused rather than decoded.
    if addr.contains(['?', ',', '%']) {
        return Err(invalid(
            "one address only, without header fields or percent-encoding",
        ));
    }
    match SanName::email(addr) {
        Ok(SanName::Email(a)) => Ok(format!("mailto:{a}")),
        _ => Err(invalid("not a valid e-mail address")),
    }
}

/// `newAccount` (RFC 8555 §7.3).
#[derive(Clone, Debug, PartialEq)]
pub struct NewAccount {
    /// `mailto:` URLs, normalised (domain lower-cased).
    pub contact: Vec<String>,
    /// `termsOfServiceAgreed`.
    pub terms_of_service_agreed: Option<bool>,
    /// `onlyReturnExisting`: look the key up, create nothing.
    pub only_return_existing: Option<bool>,
    /// `externalAccountBinding`, as sent: [`ExternalAccountBinding::decode`] reads it.
    pub external_account_binding: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccountRaw {
    #[serde(default)]
    contact: Vec<String>,
    terms_of_service_agreed: Option<bool>,
    only_return_existing: Option<bool>,
    external_account_binding: Option<Value>,
}

impl AcmePayload for NewAccount {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let r: NewAccountRaw = raw(payload, "the newAccount payload")?;
        Ok(NewAccount {
            contact: contacts(r.contact)?,
            terms_of_service_agreed: r.terms_of_service_agreed,
            only_return_existing: r.only_return_existing,
            external_account_binding: r.external_account_binding,
        })
    }
}

/// An account update (RFC 8555 §7.3.2, §7.3.6): new contacts, or deactivation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUpdate {
    /// New contacts (normalised), when given.
    pub contact: Option<Vec<String>>,
    /// True when the client asks to deactivate the account (`"status": "deactivated"`, the
    /// only status a client may send).
    pub deactivate: bool,
}

#[derive(Deserialize)]
struct AccountUpdateRaw {
    contact: Option<Vec<String>>,
    status: Option<String>,
}

impl AcmePayload for AccountUpdate {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let r: AccountUpdateRaw = raw(payload, "the account update")?;
        let deactivate = match r.status.as_deref() {
            None => false,
            Some("deactivated") => true,
            Some(s) => {
                return Err(AcmeError::malformed(format!(
                    "a client may set status to \"deactivated\" only, not {:?}",
                    clip(s)
                )))
            }
        };
        Ok(AccountUpdate {
            contact: r.contact.map(contacts).transpose()?,
            deactivate,
        })
    }
}

/// An identifier (RFC 8555 §9.7.7): a DNS name (lower case, a wildcard only as the whole
/// left-most label) or an IP address (RFC 8738, in canonical text form).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Identifier {
    /// A DNS name, lower-case A-labels, `*.` for a wildcard.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

#[derive(Deserialize)]
struct IdentifierRaw {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

impl Identifier {
    /// Check an identifier of `kind` (`dns` or `ip`): unknown kinds are `unsupportedIdentifier`,
    /// bad values `rejectedIdentifier`. DNS names are lower-cased; an IP must be in canonical
    /// form (`192.0.2.1`, `2001:db8::1`), so each address has one spelling.
    pub fn parse(kind: &str, value: &str) -> Result<Self, AcmeError> {
        let rejected = |why: String| AcmeError::new(ProblemKind::RejectedIdentifier, why);
        match kind {
            "dns" => {
                // The profile's name rules (IDNA look-alikes among them) decide the rest, as for
                // every other way of asking.
                let name =
                    crate::name::normalize_dns(value).map_err(|e| rejected(e.to_string()))?;
                Ok(Identifier::Dns(name))
            }
            "ip" => {
                let ip: IpAddr = value
                    .parse()
                    .map_err(|_| rejected(format!("{:?} is not an IP address", clip(value))))?;
                if ip.to_string() != value {
                    return Err(rejected(format!(
                        "write the IP address {:?} in canonical form, {ip}",
                        clip(value)
                    )));
                }
                Ok(Identifier::Ip(ip))
            }
            other => Err(AcmeError::new(
                ProblemKind::UnsupportedIdentifier,
                format!("identifier type {:?} (supported: dns, ip)", clip(other)),
            )),
        }
    }

    /// The value as text.
    pub fn value(&self) -> String {
        match self {
            Identifier::Dns(d) => d.clone(),
            Identifier::Ip(ip) => ip.to_string(),
        }
    }

    /// Whether this is a wildcard DNS name (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Identifier::Dns(d) if d.starts_with("*."))
    }

    /// The subject alternative name a certificate for it carries.
    pub fn to_san(&self) -> SanName {
        match self {
            Identifier::Dns(d) => SanName::Dns(d.clone()),
            Identifier::Ip(ip) => SanName::Ip(*ip),
        }
    }
}

/// An RFC 3339 date-time as sent, with its instant (read without a clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// The text as sent.
    pub text: String,
    /// Seconds since the Unix epoch (fractions dropped).
    pub unix: i64,
}

impl Timestamp {
    /// Read an RFC 3339 date-time (the `time` crate's parser); refusals are `malformed`.
    pub fn parse(text: &str) -> Result<Self, AcmeError> {
        let bad = || AcmeError::malformed(format!("{:?} is not an RFC 3339 date-time", clip(text)));
        if text.len() > 64 {
            return Err(bad());
        }
        let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad())?;
        Ok(Timestamp {
            text: text.to_string(),
            unix: at.unix_timestamp(),
        })
    }
}

/// `newOrder` (RFC 8555 §7.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// 1 to [`MAX_IDENTIFIERS`] identifiers, normalised, duplicates dropped (first kept).
    pub identifiers: Vec<Identifier>,
    /// `notBefore`, when asked for.
    pub not_before: Option<Timestamp>,
    /// `notAfter`, when asked for.
    pub not_after: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrderRaw {
    identifiers: Vec<IdentifierRaw>,
    not_before: Option<String>,
    not_after: Option<String>,
}

impl AcmePayload for NewOrder {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let r: NewOrderRaw = raw(payload, "the newOrder payload")?;
        if r.identifiers.is_empty() || r.identifiers.len() > MAX_IDENTIFIERS {
            return Err(AcmeError::malformed(format!(
                "an order names 1 to {MAX_IDENTIFIERS} identifiers, not {}",
                r.identifiers.len()
            )));
        }
        let mut identifiers: Vec<Identifier> = Vec::with_capacity(r.identifiers.len());
        for i in &r.identifiers {
            let id = Identifier::parse(&i.kind, &i.value)?;
            if !identifiers.contains(&id) {
                identifiers.push(id);
            }
        }
        let not_before = r.not_before.as_deref().map(Timestamp::parse).transpose()?;
        let not_after = r.not_after.as_deref().map(Timestamp::parse).transpose()?;
        if let (Some(b), Some(a)) = (&not_before, &not_after) {
            if a.unix <= b.unix {
                return Err(AcmeError::malformed("notAfter is not after notBefore"));
            }
        }
        Ok(NewOrder {
            identifiers,
            not_before,
            not_after,
        })
    }
}

/// Decode base64url DER of at most [`MAX_DER_BYTES`] that starts as a SEQUENCE.
fn der_member(text: &str, what: &str, kind: ProblemKind) -> Result<Vec<u8>, AcmeError> {
    if text.len() > MAX_DER_BYTES.div_ceil(3) * 4 {
        return Err(AcmeError::malformed(format!(
            "{what} is larger than {MAX_DER_BYTES} bytes"
        )));
    }
    let der = base64url(text, what)?;
    if der.len() > MAX_DER_BYTES {
        return Err(AcmeError::malformed(format!(
            "{what} is larger than {MAX_DER_BYTES} bytes"
        )));
    }
    if der.first() != Some(&0x30) {
        return Err(AcmeError::new(kind, format!("{what} is not DER")));
    }
    Ok(der)
}

/// `finalize` (RFC 8555 §7.4): the CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalize {
    /// The CSR, DER.
    pub csr: Vec<u8>,
}

#[derive(Deserialize)]
struct FinalizeRaw {
    csr: String,
}

impl AcmePayload for Finalize {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let r: FinalizeRaw = raw(payload, "the finalize payload")?;
        Ok(Finalize {
            csr: der_member(&r.csr, "the CSR", ProblemKind::BadCsr)?,
        })
    }
}

impl Finalize {
    /// Parse the CSR with the core (signature not yet verified); refusals are `badCSR`.
    pub fn parse_csr(&self) -> Result<crate::UncheckedCsr, AcmeError> {
        crate::UncheckedCsr::parse(&self.csr)
            .map_err(|e| AcmeError::from_core(ProblemKind::BadCsr, &e))
    }
}

/// `revokeCert` (RFC 8555 §7.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeCert {
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// The RFC 5280 reason code: 0 to 10 but 7 (unused).
    pub reason: Option<u8>,
}

#[derive(Deserialize)]
struct RevokeCertRaw {
    certificate: String,
    reason: Option<Value>,
}

impl AcmePayload for RevokeCert {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let r: RevokeCertRaw = raw(payload, "the revokeCert payload")?;
        let reason = match r.reason {
            None => None,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                let code = n.as_u64().filter(|c| *c <= 10 && *c != 7).ok_or_else(|| {
                    AcmeError::new(
                        ProblemKind::BadRevocationReason,
                        format!("reason {n}: RFC 5280 codes are 0 to 10, 7 unused"),
                    )
                })?;
                u8::try_from(code).ok()
            }
            Some(_) => return Err(AcmeError::malformed("reason is not an integer")),
        };
        Ok(RevokeCert {
            certificate: der_member(&r.certificate, "the certificate", ProblemKind::Malformed)?,
            reason,
        })
    }
}

/// A challenge response (RFC 8555 §7.5.1): the JSON object `{}`. Members are ignored (§7.1);
/// an empty payload is a POST-as-GET of the challenge, not a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChallengeResponse;

impl AcmePayload for ChallengeResponse {
    fn decode(payload: &[u8]) -> Result<Self, AcmeError> {
        let _: serde_json::Map<String, Value> = raw(payload, "the challenge response")?;
        Ok(ChallengeResponse)
    }
}

/// An external account binding (RFC 8555 §7.3.4): a JWS MACed (HS256) with a key the CA gave
/// out, over the new account's key, naming that MAC key by `kid`.
#[derive(Clone, Debug)]
pub struct ExternalAccountBinding {
    key_id: String,
    signing_input: String,
    mac: Vec<u8>,
}

impl ExternalAccountBinding {
    /// Decode the `externalAccountBinding` of the newAccount request `outer`: a flattened JWS
    /// with `alg` HS256, `kid` the EAB key id, `url` the outer `url`, no nonce, and as payload
    /// the outer request's `jwk`. The MAC is checked by [`ExternalAccountBinding::verify`] with
    /// the key the host finds for [`ExternalAccountBinding::key_id`].
    pub fn decode(eab: &Value, outer: &AcmeJws) -> Result<Self, AcmeError> {
        let account_key = outer
            .jwk()
            .ok_or_else(|| AcmeError::malformed("a newAccount request carries its key as jwk"))?;
        let (p64, payload64, s64) = flattened_parts(eab, "the external account binding")?;
        if p64.len() > 4096 || s64.len() > 128 {
            return Err(AcmeError::malformed(
                "the external account binding is too large",
            ));
        }
        let header = match parse_json(&base64url(p64, "the EAB header")?, "the EAB header")? {
            Value::Object(m) => m,
            _ => return Err(AcmeError::malformed("the EAB header is not a JSON object")),
        };
        match header.get("alg").and_then(Value::as_str) {
            Some("HS256") => {}
            Some(alg) if alg.starts_with("HS") => {
                return Err(AcmeError::new(
                    ProblemKind::BadSignatureAlgorithm,
                    format!("EAB alg {:?}: only HS256 is supported", clip(alg)),
                ))
            }
            _ => return Err(AcmeError::malformed("the EAB must be MACed with HS256")),
        }
        refuse_extensions(&header)?;
        if header.contains_key("nonce") || header.contains_key("jwk") {
            return Err(AcmeError::malformed(
                "the EAB header must not have a nonce or a jwk",
            ));
        }
        let key_id = header_text(&header, "kid", MAX_EAB_KID_BYTES)?
            .ok_or_else(|| AcmeError::malformed("the EAB header has no kid"))?;
        let url = header_text(&header, "url", MAX_URL_BYTES)?;
        if url != Some(outer.url()) {
            return Err(AcmeError::malformed(
                "the EAB url is not the newAccount request's url",
            ));
        }
        let payload = parse_json(&base64url(payload64, "the EAB payload")?, "the EAB payload")?;
        if AccountKey::from_jwk(&payload)? != *account_key {
            return Err(AcmeError::new(
                ProblemKind::Unauthorized,
                "the EAB binds another key than the account's",
            ));
        }
        let mac = base64url(s64, "the EAB signature")?;
        if mac.len() != 32 {
            return Err(AcmeError::malformed("an HS256 MAC is 32 bytes"));
        }
        Ok(ExternalAccountBinding {
            key_id: key_id.to_string(),
            signing_input: format!("{p64}.{payload64}"),
            mac,
        })
    }

    /// The EAB key id: the host looks up the MAC key with it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Check the MAC with `hmac_key` (compared in constant time); a wrong MAC or an empty key
    /// is `unauthorized`.
    pub fn verify(&self, hmac_key: &[u8]) -> Result<(), AcmeError> {
        let unauthorized = || {
            AcmeError::new(
                ProblemKind::Unauthorized,
                "the external account binding's MAC does not verify",
            )
        };
        if hmac_key.is_empty() {
            return Err(unauthorized());
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(hmac_key).map_err(|_| unauthorized())?;
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.mac).map_err(|_| unauthorized())
    }
}

/// The key authorization for a challenge `token` (RFC 8555 §8.1): `token.thumbprint`.
pub fn key_authorization(token: &str, account_key: &AccountKey) -> String {
    format!("{token}.{}", account_key.thumbprint())
}

/// The TXT record value of a dns-01 challenge (RFC 8555 §8.4): base64url(SHA-256(key
/// authorization)).
pub fn dns01_txt_value(key_authorization: &str) -> String {
    Base64UrlUnpadded::encode_string(&Sha256::digest(key_authorization.as_bytes()))
}

/// The acmeIdentifier extension (RFC 8737 §3).
pub const ACME_IDENTIFIER_OID: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 31];

/// The acmeIdentifier extension's value for a key authorization: the DER OCTET STRING of its
/// SHA-256 digest.
pub fn tls_alpn01_extension_value(key_authorization: &str) -> Vec<u8> {
    let mut v = vec![0x04, 0x20];
    v.extend_from_slice(&Sha256::digest(key_authorization.as_bytes()));
    v
}

/// Check the certificate a tls-alpn-01 validation got (RFC 8737 §3): exactly one subject
/// alternative name, the `identifier` (a dNSName, or an iPAddress for an IP identifier), and
/// the acmeIdentifier extension, once, critical, holding the key authorization's digest. A
/// wildcard identifier is refused (tls-alpn-01 cannot validate one). Refusals are
/// `incorrectResponse`.
pub fn check_tls_alpn01(
    cert_der: &[u8],
    identifier: &Identifier,
    key_authorization: &str,
) -> Result<(), AcmeError> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let wrong = |why: &str| {
        AcmeError::new(
            ProblemKind::IncorrectResponse,
            format!("tls-alpn-01: {why}"),
        )
    };
    if identifier.is_wildcard() {
        return Err(wrong("a wildcard identifier cannot be validated this way"));
    }
    if cert_der.len() > MAX_DER_BYTES {
        return Err(wrong("the certificate is too large"));
    }
    let cert = match x509_parser::certificate::X509Certificate::from_der(cert_der) {
        Ok(([], c)) => c,
        _ => return Err(wrong("the certificate is not DER X.509")),
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|_| wrong("the subjectAltName extension is invalid or repeated"))?
        .ok_or_else(|| wrong("the certificate has no subjectAltName"))?;
    let [name] = san.value.general_names.as_slice() else {
        return Err(wrong("the certificate must name exactly one identifier"));
    };
    let named = match (name, identifier) {
        (GeneralName::DNSName(d), Identifier::Dns(want)) => d.eq_ignore_ascii_case(want),
        (GeneralName::IPAddress(bytes), Identifier::Ip(IpAddr::V4(ip))) => {
            *bytes == ip.octets().as_slice()
        }
        (GeneralName::IPAddress(bytes), Identifier::Ip(IpAddr::V6(ip))) => {
            *bytes == ip.octets().as_slice()
        }
        _ => false,
    };
    if !named {
        return Err(wrong("the certificate names another identifier"));
    }
    let oid = x509_parser::der_parser::oid::Oid::from(&ACME_IDENTIFIER_OID[..])
        .map_err(|_| wrong("internal: OID"))?;
    let mut found = cert.extensions().iter().filter(|e| e.oid == oid);
    let (Some(ext), None) = (found.next(), found.next()) else {
        return Err(wrong(
            "the acmeIdentifier extension must appear exactly once",
        ));
    };
    if !ext.critical {
        return Err(wrong("the acmeIdentifier extension is not critical"));
    }
    let want = tls_alpn01_extension_value(key_authorization);
    // Not secret (the digest is in the response): an ordinary comparison is enough.
    if ext.value != want.as_slice() {
        return Err(wrong(
            "the acmeIdentifier digest does not match the key authorization",
        ));
    }
    Ok(())
}

/// Whether `cert_der` is a valid tls-alpn-01 response ([`check_tls_alpn01`]).
pub fn is_valid_tls_alpn01(
    cert_der: &[u8],
    identifier: &Identifier,
    key_authorization: &str,
) -> bool {
    check_tls_alpn01(cert_der, identifier, key_authorization).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::jws::tests::{flat, header, ring_verifies, Signer};
    use super::super::jws::KeyChange;
    use super::*;
    use crate::{Algorithm, KeyPair, SeedRng};
    use serde_json::json;

    fn decode<T: AcmePayload>(v: Value) -> Result<T, AcmeError> {
        T::decode(v.to_string().as_bytes())
    }

    fn kind<T: AcmePayload + core::fmt::Debug>(v: Value) -> ProblemKind {
        decode::<T>(v).unwrap_err().kind
    }

    #[test]
    fn new_account_contacts() {
        let a: NewAccount = decode(json!({
            "contact": ["mailto:Admin@Example.COM"],
            "termsOfServiceAgreed": true,
            "somethingNew": {"ignored": true}
        }))
        .unwrap();
        assert_eq!(a.contact, ["mailto:Admin@example.com"]);
        assert_eq!(a.terms_of_service_agreed, Some(true));
        assert_eq!(a.only_return_existing, None);
        let a: NewAccount = decode(json!({"onlyReturnExisting": true})).unwrap();
        assert!(a.contact.is_empty());
        use ProblemKind::*;
        for (what, v, want) in [
            (
                "tel:",
                json!({"contact": ["tel:+15551234"]}),
                UnsupportedContact,
            ),
            (
                "https:",
                json!({"contact": ["https://example.com"]}),
                UnsupportedContact,
            ),
            (
                "hfields",
                json!({"contact": ["mailto:a@example.com?subject=x"]}),
                InvalidContact,
            ),
            (
                "two addresses",
                json!({"contact": ["mailto:a@example.com,b@example.com"]}),
                InvalidContact,
            ),
            (
                "percent",
                json!({"contact": ["mailto:a%40b@example.com"]}),
                InvalidContact,
            ),
            (
                "no domain",
                json!({"contact": ["mailto:admin"]}),
                InvalidContact,
            ),
            (
                "no scheme",
                json!({"contact": ["admin@example.com"]}),
                InvalidContact,
            ),
            (
                "too long",
                json!({"contact": [format!("mailto:a@{}.com", "b".repeat(300))]}),
                InvalidContact,
            ),
            (
                "too many",
                json!({"contact": vec!["mailto:a@example.com"; MAX_CONTACTS + 1]}),
                Malformed,
            ),
            (
                "contact a string",
                json!({"contact": "mailto:a@example.com"}),
                Malformed,
            ),
            (
                "tos a string",
                json!({"termsOfServiceAgreed": "yes"}),
                Malformed,
            ),
            ("payload an array", json!(["x"]), Malformed),
        ] {
            assert_eq!(kind::<NewAccount>(v), want, "{what}");
        }
        assert_eq!(NewAccount::decode(b"").unwrap_err().kind, Malformed);
        assert_eq!(NewAccount::decode(b"not json").unwrap_err().kind, Malformed);
        assert_eq!(
            NewAccount::decode(br#"{"contact":[],"contact":["mailto:a@b.example"]}"#)
                .unwrap_err()
                .kind,
            Malformed
        );
    }

    #[test]
    fn account_update_only_deactivates() {
        let u: AccountUpdate = decode(json!({"status": "deactivated"})).unwrap();
        assert!(u.deactivate && u.contact.is_none());
        let u: AccountUpdate = decode(json!({"contact": ["mailto:x@example.org"]})).unwrap();
        assert!(!u.deactivate);
        assert_eq!(
            kind::<AccountUpdate>(json!({"status": "valid"})),
            ProblemKind::Malformed
        );
        assert_eq!(
            kind::<AccountUpdate>(json!({"contact": ["tel:1"]})),
            ProblemKind::UnsupportedContact
        );
    }

    #[test]
    fn orders_check_identifiers() {
        let o: NewOrder = decode(json!({
            "identifiers": [
                {"type": "dns", "value": "WWW.Example.com"},
                {"type": "dns", "value": "*.example.com"},
                {"type": "dns", "value": "www.example.com"},
                {"type": "dns", "value": "xn--bcher-kva.example"},
                {"type": "ip", "value": "192.0.2.1"},
                {"type": "ip", "value": "2001:db8::1"}
            ],
            "notBefore": "2025-01-01T00:00:00Z",
            "notAfter": "2025-01-02T01:00:00.5+01:00"
        }))
        .unwrap();
        assert_eq!(o.identifiers.len(), 5, "the duplicate is dropped");
        assert_eq!(o.identifiers[0], Identifier::Dns("www.example.com".into()));
        assert!(o.identifiers[1].is_wildcard());
        assert_eq!(o.not_before.as_ref().unwrap().unix, 1_735_689_600);
        assert_eq!(o.not_after.as_ref().unwrap().unix, 1_735_689_600 + 86_400);
        use ProblemKind::*;
        let one =
            |t: &str, v: &str| kind::<NewOrder>(json!({"identifiers": [{"type": t, "value": v}]}));
        for (t, v, want) in [
            ("dns", "a.*.example.com", RejectedIdentifier),
            ("dns", "*example.com", RejectedIdentifier),
            ("dns", "*.*.example.com", RejectedIdentifier),
            ("dns", "example.com.", RejectedIdentifier),
            ("dns", "exämple.com", RejectedIdentifier),
            ("dns", "a_b.example", RejectedIdentifier),
            ("dns", "192.0.2.1", RejectedIdentifier),
            ("dns", "", RejectedIdentifier),
            ("ip", "192.0.2.256", RejectedIdentifier),
            ("ip", "192.0.2", RejectedIdentifier),
            ("ip", "2001:DB8::1", RejectedIdentifier),
            ("ip", "2001:db8:0:0:0:0:0:1", RejectedIdentifier),
            ("ip", " 192.0.2.1", RejectedIdentifier),
            ("ip", "example.com", RejectedIdentifier),
            ("email", "a@example.com", UnsupportedIdentifier),
            ("DNS", "example.com", UnsupportedIdentifier),
        ] {
            assert_eq!(one(t, v), want, "{t} {v:?}");
        }
        let many: Vec<Value> = (0..=MAX_IDENTIFIERS)
            .map(|i| json!({"type": "dns", "value": format!("h{i}.example.com")}))
            .collect();
        assert_eq!(kind::<NewOrder>(json!({"identifiers": many})), Malformed);
        assert_eq!(kind::<NewOrder>(json!({"identifiers": []})), Malformed);
        assert_eq!(kind::<NewOrder>(json!({})), Malformed);
        let id = json!([{"type": "dns", "value": "a.example"}]);
        for (nb, na) in [
            (json!("2025-01-01"), json!(null)),
            (json!("2025-02-30T00:00:00Z"), json!(null)),
            (json!("2025-01-01T24:00:00Z"), json!(null)),
            (json!("2025-01-01T00:00:00"), json!(null)),
            (json!("2025-01-01T00:00:00+0100"), json!(null)),
            (json!(1_735_689_600), json!(null)),
            (json!("2025-01-02T00:00:00Z"), json!("2025-01-01T00:00:00Z")),
        ] {
            let mut v = json!({"identifiers": id, "notBefore": nb});
            if !na.is_null() {
                v["notAfter"] = na;
            }
            assert_eq!(kind::<NewOrder>(v.clone()), Malformed, "{v}");
        }
        assert_eq!(
            Timestamp::parse("2024-02-29T12:00:00-00:30").unwrap().unix,
            1_709_209_800
        );
        assert_eq!(Timestamp::parse("1969-12-31T23:59:59Z").unwrap().unix, -1);
    }

    #[test]
    fn finalize_and_revoke() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let f: Finalize = decode(json!({"csr": Base64UrlUnpadded::encode_string(&der)})).unwrap();
        assert_eq!(f.csr, der);
        assert_eq!(f.parse_csr().unwrap_err().kind, ProblemKind::BadCsr);
        assert_eq!(
            kind::<Finalize>(json!({"csr": "MAMCAQE="})),
            ProblemKind::Malformed
        );
        assert_eq!(
            kind::<Finalize>(json!({"csr": "BAMCAQE"})),
            ProblemKind::BadCsr
        );
        let big = Base64UrlUnpadded::encode_string(&vec![0x30; MAX_DER_BYTES + 1]);
        assert_eq!(
            kind::<Finalize>(json!({"csr": big})),
            ProblemKind::Malformed
        );
        // A real CSR parses.
        let key = KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([3; 32]));
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        let csr = params.serialize_request(&key).unwrap();
        let f: Finalize =
            decode(json!({"csr": Base64UrlUnpadded::encode_string(csr.der())})).unwrap();
        assert!(f.parse_csr().is_ok());

        let cert = Base64UrlUnpadded::encode_string(&der);
        let r: RevokeCert = decode(json!({"certificate": cert, "reason": 4})).unwrap();
        assert_eq!(r.reason, Some(4));
        let r: RevokeCert = decode(json!({"certificate": cert})).unwrap();
        assert_eq!(r.reason, None);
        for (reason, want) in [
            (json!(7), ProblemKind::BadRevocationReason),
            (json!(11), ProblemKind::BadRevocationReason),
            (json!(-1), ProblemKind::BadRevocationReason),
            (json!(1.5), ProblemKind::Malformed),
            (json!("1"), ProblemKind::Malformed),
        ] {
            assert_eq!(
                kind::<RevokeCert>(json!({"certificate": cert, "reason": reason})),
                want,
                "{reason}"
            );
        }
        assert_eq!(
            kind::<RevokeCert>(json!({"reason": 1})),
            ProblemKind::Malformed
        );
    }

    #[test]
    fn challenge_responses_are_objects() {
        assert!(ChallengeResponse::decode(b"{}").is_ok());
        assert!(decode::<ChallengeResponse>(json!({"keyAuthorization": "x"})).is_ok());
        for bad in [&b""[..], b"[]", b"null", b"{", b"\"{}\""] {
            assert!(ChallengeResponse::decode(bad).is_err(), "{bad:?}");
        }
    }

    /// A newAccount request by `signer` carrying an EAB by `eab_key` over `bound`'s key.
    fn eab_request(signer: &Signer, bound: &Signer, eab_key: &[u8], eab_url: &str) -> AcmeJws {
        let p64 = Base64UrlUnpadded::encode_string(
            json!({"alg": "HS256", "kid": "eab-1", "url": eab_url})
                .to_string()
                .as_bytes(),
        );
        let pl64 = Base64UrlUnpadded::encode_string(bound.jwk().to_string().as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(eab_key).unwrap();
        mac.update(format!("{p64}.{pl64}").as_bytes());
        let tag = mac.finalize().into_bytes();
        let eab = json!({"protected": p64, "payload": pl64, "signature": Base64UrlUnpadded::encode_string(&tag)});
        let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab});
        let v = flat(
            signer,
            &header(signer, "https://ca/new-acct"),
            Some(&payload),
        );
        AcmeJws::decode(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn external_account_binding() {
        let signer = Signer::p256(20);
        let key = b"a secret the CA handed out......";
        let jws = eab_request(&signer, &signer, key, "https://ca/new-acct");
        assert!(ring_verifies(&jws.signature_check().unwrap()));
        let acct: NewAccount = jws.payload_as().unwrap();
        let eab =
            ExternalAccountBinding::decode(acct.external_account_binding.as_ref().unwrap(), &jws)
                .unwrap();
        assert_eq!(eab.key_id(), "eab-1");
        eab.verify(key).unwrap();
        assert_eq!(
            eab.verify(b"another key").unwrap_err().kind,
            ProblemKind::Unauthorized
        );
        assert_eq!(eab.verify(b"").unwrap_err().kind, ProblemKind::Unauthorized);

        let refused = |jws: &AcmeJws| {
            let acct: NewAccount = jws.payload_as().unwrap();
            ExternalAccountBinding::decode(acct.external_account_binding.as_ref().unwrap(), jws)
                .unwrap_err()
                .kind
        };
        // Bound to another key, or made for another URL.
        let other = Signer::ed25519(21);
        assert_eq!(
            refused(&eab_request(&signer, &other, key, "https://ca/new-acct")),
            ProblemKind::Unauthorized
        );
        assert_eq!(
            refused(&eab_request(&signer, &signer, key, "https://ca/elsewhere")),
            ProblemKind::Malformed
        );
        // Not a MAC, or an unprotected header.
        let mut v = acct.external_account_binding.clone().unwrap();
        v["header"] = json!({});
        assert!(ExternalAccountBinding::decode(&v, &jws).is_err());
        let mut v = acct.external_account_binding.unwrap();
        v["protected"] = Base64UrlUnpadded::encode_string(
            json!({"alg": "ES256", "kid": "eab-1", "url": "https://ca/new-acct"})
                .to_string()
                .as_bytes(),
        )
        .into();
        assert_eq!(
            ExternalAccountBinding::decode(&v, &jws).unwrap_err().kind,
            ProblemKind::Malformed
        );
    }

    #[test]
    fn challenge_values() {
        let signer = Signer::p256(30);
        let key = AccountKey::from_jwk(&signer.jwk()).unwrap();
        let ka = key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &key);
        assert_eq!(
            ka,
            format!(
                "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.{}",
                key.thumbprint()
            )
        );
        // RFC 8555 §8.4's example shape: 43 characters of base64url.
        let txt = dns01_txt_value(&ka);
        assert_eq!(txt.len(), 43);
        assert_eq!(
            Base64UrlUnpadded::decode_vec(&txt).unwrap(),
            Sha256::digest(ka.as_bytes()).to_vec()
        );

        let cert_key = KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([31; 32]));
        let make = |sans: Vec<rcgen::SanType>, ext: Option<rcgen::CustomExtension>| {
            let mut p = rcgen::CertificateParams::default();
            p.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
            p.subject_alt_names = sans;
            p.custom_extensions.extend(ext);
            p.self_signed(&cert_key).unwrap().der().to_vec()
        };
        let dns = |d: &str| rcgen::SanType::DnsName(d.try_into().unwrap());
        let digest = Sha256::digest(ka.as_bytes());
        let acme_ext = || Some(rcgen::CustomExtension::new_acme_identifier(&digest));
        let id = Identifier::Dns("a.example.com".into());
        let good = make(vec![dns("a.example.com")], acme_ext());
        check_tls_alpn01(&good, &id, &ka).unwrap();
        assert!(is_valid_tls_alpn01(&good, &id, &ka));
        assert!(!is_valid_tls_alpn01(&good, &id, "other.key-auth"));
        let wildcard = Identifier::Dns("*.example.com".into());
        let for_wildcard = make(vec![dns("*.example.com")], acme_ext());
        assert!(!is_valid_tls_alpn01(&for_wildcard, &wildcard, &ka));
        assert!(!is_valid_tls_alpn01(
            &good,
            &Identifier::Dns("b.example.com".into()),
            &ka
        ));
        let ip = Identifier::Ip("192.0.2.7".parse().unwrap());
        let for_ip = make(vec![rcgen::SanType::IpAddress(ip_addr(&ip))], acme_ext());
        assert!(is_valid_tls_alpn01(&for_ip, &ip, &ka));
        assert!(!is_valid_tls_alpn01(&for_ip, &id, &ka));
        let mut non_critical = rcgen::CustomExtension::new_acme_identifier(&digest);
        non_critical.set_criticality(false);
        for (what, der) in [
            ("no extension", make(vec![dns("a.example.com")], None)),
            (
                "not critical",
                make(vec![dns("a.example.com")], Some(non_critical)),
            ),
            (
                "two names",
                make(vec![dns("a.example.com"), dns("b.example.com")], acme_ext()),
            ),
            ("no SAN", make(vec![], acme_ext())),
            (
                "raw digest, not an OCTET STRING",
                make(
                    vec![dns("a.example.com")],
                    Some(rcgen::CustomExtension::from_oid_content(
                        &ACME_IDENTIFIER_OID,
                        digest.to_vec(),
                    )),
                ),
            ),
            ("not DER", b"\x30\x00".to_vec()),
            ("trailing data", [good.clone(), vec![0]].concat()),
        ] {
            assert_eq!(
                check_tls_alpn01(&der, &id, &ka).unwrap_err().kind,
                ProblemKind::IncorrectResponse,
                "{what}"
            );
        }
    }

    fn ip_addr(id: &Identifier) -> IpAddr {
        match id {
            Identifier::Ip(ip) => *ip,
            Identifier::Dns(_) => IpAddr::from([0, 0, 0, 0]),
        }
    }

    /// The body a fuzz target would run: every decoder on the same bytes, none may panic.
    fn fuzz_body(data: &[u8]) {
        if let Ok(jws) = AcmeJws::decode(data) {
            let _ = jws.signature_check();
            let _ = KeyChange::decode(&jws);
            let _ = jws.payload_as::<NewAccount>();
        }
        let _ = NewAccount::decode(data);
        let _ = AccountUpdate::decode(data);
        let _ = NewOrder::decode(data);
        let _ = Finalize::decode(data);
        let _ = RevokeCert::decode(data);
        let _ = ChallengeResponse::decode(data);
    }

    #[test]
    fn decoders_survive_mangled_input() {
        let signer = Signer::p256(40);
        let v = flat(
            &signer,
            &header(&signer, "https://ca/x"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "a.example"}]})),
        );
        let good = v.to_string().into_bytes();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..2000 {
            let mut b = good.clone();
            // xorshift: reproducible mutations without a random source.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = state.to_le_bytes();
            let at = usize::from(u16::from_le_bytes([r[0], r[1]])) % b.len();
            match i % 3 {
                0 => b[at] = r[2],
                1 => b.truncate(at),
                _ => b.insert(at, r[3]),
            }
            fuzz_body(&b);
        }
        for s in [
            "{}",
            "[]",
            "\"\"",
            "{\"identifiers\":[{}]}",
            "{\"reason\":1e400}",
            "{\"csr\":null}",
        ] {
            fuzz_body(s.as_bytes());
        }
    }
}
