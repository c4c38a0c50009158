//! A serialisable description of a certificate or CSR, for CLIs and pages.

use serde::Serialize;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};

use crate::certificate::{parse_x509, rfc3339, Certificate};
use crate::csr::{eku_names, key_usage_names, ParsedCsr};
use crate::error::{Error, Result};
use crate::name::SanName;
use crate::pem;
use crate::public_key::{Jwk, KeyKind, PublicKey};

/// What the input was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An X.509 certificate.
    Certificate,
    /// A PKCS#10 certificate signing request (its signature verified).
    Csr,
}

/// SANs grouped by type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Names {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ip: Vec<String>,
    /// URIs (SPIFFE IDs among them).
    pub uri: Vec<String>,
    /// E-mail addresses.
    pub email: Vec<String>,
    /// Other kinds, described as text.
    pub other: Vec<String>,
}

/// The subject key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// `P-256`, `Ed25519`, `RSA-2048`…
    pub algorithm: String,
    /// The kind, with the modulus size for RSA: `{"type": "rsa", "bits": 2048}`.
    pub kind: KindAndSize,
    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    pub fingerprint_sha256: String,
    /// The key as a JWK.
    pub jwk: Jwk,
}

/// A key's kind and, where it varies (RSA), its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindAndSize {
    /// `p256`, `ed25519` or `rsa`.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The RSA modulus size in bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<usize>,
}

/// One extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Dotted OID.
    pub oid: String,
    /// Readable name, when known.
    pub name: String,
    /// Critical flag.
    pub critical: bool,
}

/// The description of a certificate or CSR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Certificate or CSR.
    pub kind: Kind,
    /// Subject DN as text.
    pub subject: String,
    /// Issuer DN (certificates only).
    pub issuer: Option<String>,
    /// Subject alternative names.
    pub names: Names,
    /// The subject public key.
    pub key: KeyInfo,
    /// Signature algorithm name and OID.
    pub signature_algorithm: String,
    /// Serial number in hex (certificates only).
    pub serial: Option<String>,
    /// notBefore, Unix seconds.
    pub not_before: Option<i64>,
    /// notAfter, Unix seconds.
    pub not_after: Option<i64>,
    /// notBefore, RFC 3339.
    pub not_before_text: Option<String>,
    /// notAfter, RFC 3339.
    pub not_after_text: Option<String>,
    /// Whether basicConstraints says CA (for a CSR: asks for CA).
    pub is_ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u32>,
    /// keyUsage bits.
    pub key_usage: Vec<&'static str>,
    /// extendedKeyUsage purposes.
    pub extended_key_usage: Vec<String>,
    /// All extensions (for a CSR: the requested ones).
    pub extensions: Vec<Extension>,
    /// SHA-256 of the DER, hex.
    pub fingerprint_sha256: String,
    /// Issuer equals subject (certificates only).
    pub self_issued: bool,
}

/// Describe a certificate or a CSR given as PEM or DER. A CSR's signature is verified first.
pub fn inspect(input: &[u8]) -> Result<Description> {
    pem::check_size("input", input)?;
    if pem::is_pem(input) {
        let blocks = pem::decode_all("input", input)?;
        let first = &blocks[0];
        return match first.label.as_str() {
            "CERTIFICATE" => describe_certificate(&Certificate::from_der(first.der.clone())?),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                describe_csr(&ParsedCsr::parse(&first.der)?)
            }
            other => Err(Error::Pem(format!(
                "input: a \"{other}\" block; expected a CERTIFICATE or CERTIFICATE REQUEST"
            ))),
        };
    }
    match Certificate::from_der(input.to_vec()) {
        Ok(c) => describe_certificate(&c),
        Err(cert_err) => ParsedCsr::parse(input)
            .and_then(|c| describe_csr(&c))
            .map_err(|csr_err| {
                Error::malformed(
                    "input",
                    format!("neither a certificate ({cert_err}) nor a CSR ({csr_err})"),
                )
            }),
    }
}

fn key_info(key: &PublicKey) -> KeyInfo {
    KeyInfo {
        algorithm: key.name(),
        kind: KindAndSize {
            kind: key.kind(),
            bits: (key.kind() == KeyKind::Rsa).then_some(key.bits()),
        },
        fingerprint_sha256: pem::hex(&key.fingerprint_sha256()),
        jwk: key.to_jwk(),
    }
}

/// Describe a parsed certificate.
pub fn describe_certificate(cert: &Certificate) -> Result<Description> {
    let x = parse_x509(cert.der())?;
    let key = PublicKey::from_parsed(x.public_key())?;
    let mut d = Description {
        kind: Kind::Certificate,
        subject: x.subject().to_string(),
        issuer: Some(x.issuer().to_string()),
        names: Names::default(),
        key: key_info(&key),
        signature_algorithm: crate::oids::describe(&x.signature_algorithm.algorithm),
        serial: Some(cert.serial_hex()),
        not_before: Some(cert.not_before()),
        not_after: Some(cert.not_after()),
        not_before_text: Some(rfc3339(cert.not_before())),
        not_after_text: Some(rfc3339(cert.not_after())),
        is_ca: false,
        path_len: None,
        key_usage: Vec::new(),
        extended_key_usage: Vec::new(),
        extensions: Vec::new(),
        fingerprint_sha256: cert.fingerprint_sha256(),
        self_issued: x.subject().as_raw() == x.issuer().as_raw(),
    };
    describe_extensions(x.extensions(), &mut d);
    Ok(d)
}

/// Describe a verified CSR.
pub fn describe_csr(csr: &ParsedCsr) -> Result<Description> {
    let req = csr.requested_extensions();
    let mut names = Names::default();
    for n in csr.names() {
        push_name(&mut names, n);
    }
    let mut extensions = Vec::new();
    {
        use x509_parser::prelude::FromDer;
        let (_, x) =
            x509_parser::certification_request::X509CertificationRequest::from_der(csr.der())
                .map_err(|e| Error::malformed("CSR", e))?;
        for attr in x.certification_request_info.iter_attributes() {
            if let x509_parser::cri_attributes::ParsedCriAttribute::ExtensionRequest(req) =
                attr.parsed_attribute()
            {
                extensions.extend(describe_extension_list(&req.extensions));
            }
        }
    }
    Ok(Description {
        kind: Kind::Csr,
        subject: csr.subject_dn().to_string(),
        issuer: None,
        names,
        key: key_info(csr.public_key()),
        signature_algorithm: csr.signature_algorithm().to_string(),
        serial: None,
        not_before: None,
        not_after: None,
        not_before_text: None,
        not_after_text: None,
        is_ca: req.ca == Some(true),
        path_len: req.path_len,
        key_usage: req.key_usage.clone(),
        extended_key_usage: req.extended_key_usage.clone(),
        extensions,
        fingerprint_sha256: pem::hex(&<sha2::Sha256 as sha2::Digest>::digest(csr.der())),
        self_issued: false,
    })
}

fn push_name(names: &mut Names, n: &SanName) {
    match n {
        SanName::Dns(d) => names.dns.push(d.clone()),
        SanName::Ip(ip) => names.ip.push(ip.to_string()),
        SanName::Uri(u) => names.uri.push(u.clone()),
        SanName::Email(e) => names.email.push(e.clone()),
    }
}

pub(crate) fn describe_extension_list(exts: &[X509Extension<'_>]) -> Vec<Extension> {
    exts.iter()
        .map(|e| Extension {
            name: crate::oids::short_name(&e.oid).unwrap_or("").to_string(),
            oid: e.oid.to_id_string(),
            critical: e.critical,
        })
        .collect()
}

fn describe_extensions(exts: &[X509Extension<'_>], d: &mut Description) {
    d.extensions = describe_extension_list(exts);
    for e in exts {
        match e.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                d.is_ca = bc.ca;
                d.path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => d.key_usage = key_usage_names(ku.flags),
            ParsedExtension::ExtendedKeyUsage(eku) => d.extended_key_usage = eku_names(eku),
            ParsedExtension::SubjectAlternativeName(san) => {
                for gn in &san.general_names {
                    match SanName::from_general_name(gn) {
                        Ok(n) => push_name(&mut d.names, &n),
                        Err(_) => d.names.other.push(describe_general_name(gn)),
                    }
                }
            }
            _ => {}
        }
    }
}

fn describe_general_name(gn: &GeneralName<'_>) -> String {
    match gn {
        GeneralName::DNSName(s) => format!("DNS:{}", s.escape_debug()),
        GeneralName::URI(s) => format!("URI:{}", s.escape_debug()),
        GeneralName::RFC822Name(s) => format!("email:{}", s.escape_debug()),
        GeneralName::OtherName(oid, _) => format!("otherName:{oid}"),
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        GeneralName::RegisteredID(oid) => format!("RID:{oid}"),
        GeneralName::IPAddress(b) => format!("IP:{}", pem::hex(b)),
        _ => "unsupported name".into(),
    }
}
