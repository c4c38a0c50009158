//! PKCS#10 certificate signing requests: building them from a key, and parsing and verifying any CSR.

use rcgen::CertificateParams;
use serde::{Deserialize, Serialize};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};
use crate::key_pair::KeyPair;
use crate::name::{SanName, Subject};
use crate::pem;
use crate::public_key::PublicKey;
use crate::signature::{Prepared, Scheme, SignatureCheck};

/// What a CSR asks for: a subject and subject alternative names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrRequest {
    /// The subject DN.
    #[serde(default)]
    pub subject: Subject,
    /// The SANs, written into an extensionRequest attribute.
    #[serde(default)]
    pub names: Vec<SanName>,
}

impl CsrRequest {
    /// Build and sign the CSR with `key`.
    pub fn sign(&self, key: &KeyPair) -> Result<Csr> {
        if self.subject.is_empty() && self.names.is_empty() {
            return Err(Error::InvalidParameter(
                "a CSR needs a subject or at least one subject alternative name".into(),
            ));
        }
        self.sign_unchecked(key)
    }

    /// A CSR that asks for no name at all, only proving the key: for an issuer that decides
    /// every name itself (an enrolment token bound to an identity).
    pub fn sign_nameless(key: &KeyPair) -> Result<Csr> {
        CsrRequest::default().sign_unchecked(key)
    }

    /// The CSR's CertificationRequestInfo for a key held outside the core (a WebCrypto
    /// `CryptoKey`, a token): sign [`Tbs::der`](crate::Tbs) with that key and finish it with
    /// [`Tbs::assemble_raw`](crate::Tbs::assemble_raw). The same checks as [`CsrRequest::sign`].
    pub fn unsigned(&self, public: &PublicKey) -> Result<crate::Tbs> {
        if self.subject.is_empty() && self.names.is_empty() {
            return Err(Error::InvalidParameter(
                "a CSR needs a subject or at least one subject alternative name".into(),
            ));
        }
        let capture = crate::ca::Capture::new(public);
        let signed = self.params()?.serialize_request(&capture)?;
        capture.finish(signed.der())
    }

    fn params(&self) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.to_rcgen()?;
        params.subject_alt_names = self
            .names
            .iter()
            .map(SanName::to_rcgen)
            .collect::<Result<_>>()?;
        Ok(params)
    }

    fn sign_unchecked(&self, key: &KeyPair) -> Result<Csr> {
        let csr = self.params()?.serialize_request(key)?;
        Ok(Csr {
            der: csr.der().to_vec(),
        })
    }
}

/// An encoded CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    der: Vec<u8>,
}

impl Csr {
    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text (`CERTIFICATE REQUEST`).
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE REQUEST", &self.der)
    }

    /// The CSR from [`CsrRequest::unsigned`]'s `tbs` and the outside key's raw signature (P-256:
    /// r‖s as WebCrypto gives it; Ed25519: 64 bytes). A signature that does not verify is refused
    /// (`bad_signature`).
    pub fn assemble(tbs: &crate::Tbs, signature: &[u8], kind: crate::KeyKind) -> Result<Csr> {
        // Not even of the key's form (r or s out of range, a wrong length): it does not verify.
        let der = tbs
            .assemble_raw(signature, kind)
            .map_err(|_| Error::BadSignature("CSR"))?;
        ParsedCsr::parse(&der)?;
        Ok(Csr { der })
    }
}

/// Extensions a CSR asks for, as read from its extensionRequest attribute. The issuer decides
/// what goes into a certificate; these are kept to refuse requests that ask for too much.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedExtensions {
    /// basicConstraints cA, if requested.
    pub ca: Option<bool>,
    /// basicConstraints pathLenConstraint, if requested.
    pub path_len: Option<u32>,
    /// keyUsage bits by name, if requested.
    pub key_usage: Vec<&'static str>,
    /// extendedKeyUsage purposes by name or OID.
    pub extended_key_usage: Vec<String>,
    /// OIDs of any other requested extension.
    pub other: Vec<String>,
}

/// A CSR that parsed and whose signature verified.
#[derive(Clone, Debug)]
pub struct ParsedCsr {
    der: Vec<u8>,
    subject: Subject,
    subject_dn: String,
    public_key: PublicKey,
    names: Vec<SanName>,
    requested: RequestedExtensions,
    signature_algorithm: String,
}

/// A CSR that parsed, with its signature's encoding checked but the signature itself not yet
/// verified. [`UncheckedCsr::verify`] verifies it in the core; or [`UncheckedCsr::check`] hands
/// the arithmetic to a verifier of the host's (ring in wasmtime's host, Node's crypto, WebCrypto)
/// and [`UncheckedCsr::accept_verdict`] takes its answer. Either way the same inputs are refused.
#[derive(Clone, Debug)]
pub struct UncheckedCsr {
    csr: ParsedCsr,
    /// The signature, its encoding checked once at parse.
    prepared: Prepared,
    message: Vec<u8>,
}

impl UncheckedCsr {
    /// Parse a CSR as [`ParsedCsr::parse`] does, except for the signature arithmetic.
    pub fn parse(input: &[u8]) -> Result<Self> {
        let der = pem::der_from_pem_or_der(
            "CSR",
            input,
            &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
        )?;
        ParsedCsr::parse_unchecked(der)
    }

    /// The signature's pieces for an outside verifier; `None` for RSA-PSS with a salt other than
    /// 32 bytes, which the core verifies.
    pub fn check(&self) -> Option<SignatureCheck> {
        self.prepared.check(&self.csr.public_key, &self.message)
    }

    /// Verify the signature in the core.
    pub fn verify(self) -> Result<ParsedCsr> {
        self.prepared.verify(&self.csr.public_key, &self.message)?;
        Ok(self.csr)
    }

    /// Take an outside verifier's answer on [`UncheckedCsr::check`]'s pieces; a signature the
    /// core keeps for itself (no check) is verified here whatever `valid` says.
    pub fn accept_verdict(self, valid: bool) -> Result<ParsedCsr> {
        if self.prepared.checked_outside() {
            self.prepared.verdict(valid)?;
        } else {
            self.prepared.verify(&self.csr.public_key, &self.message)?;
        }
        Ok(self.csr)
    }
}

impl ParsedCsr {
    /// Parse a CSR (PEM `CERTIFICATE REQUEST`/`NEW CERTIFICATE REQUEST`, or DER) and verify its
    /// self-signature. Input larger than [`crate::MAX_INPUT_BYTES`] is refused before parsing.
    pub fn parse(input: &[u8]) -> Result<Self> {
        UncheckedCsr::parse(input)?.verify()
    }

    fn parse_unchecked(der: Vec<u8>) -> Result<UncheckedCsr> {
        let (rest, csr) =
            X509CertificationRequest::from_der(&der).map_err(|e| Error::malformed("CSR", e))?;
        if !rest.is_empty() {
            return Err(Error::malformed("CSR", "trailing data after the request"));
        }
        let info = &csr.certification_request_info;
        if info.version.0 != 0 {
            return Err(Error::malformed(
                "CSR",
                format!("version {} (only v1 exists)", info.version.0 + 1),
            ));
        }
        let public_key = PublicKey::from_parsed(&info.subject_pki)?;
        let scheme = Scheme::from_x509(&csr.signature_algorithm, "CSR")?;
        let prepared =
            crate::signature::prepare(scheme, &public_key, &csr.signature_value.data, "CSR")?;
        let message = info.raw.to_vec();
        let subject = Subject::from_x509(&info.subject)?;
        let subject_dn = info.subject.to_string();
        let mut names = Vec::new();
        let mut requested = RequestedExtensions::default();
        let mut seen_ext_request = false;
        for attr in info.iter_attributes() {
            if let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() {
                if seen_ext_request {
                    return Err(Error::malformed(
                        "CSR",
                        "more than one extensionRequest attribute",
                    ));
                }
                seen_ext_request = true;
                read_extensions(&req.extensions, &mut names, &mut requested)?;
            }
        }
        let signature_algorithm = crate::oids::describe(&csr.signature_algorithm.algorithm);
        Ok(UncheckedCsr {
            csr: ParsedCsr {
                der,
                subject,
                subject_dn,
                public_key,
                names,
                requested,
                signature_algorithm,
            },
            prepared,
            message,
        })
    }

    /// What an issued certificate stands for, as a request: its subject, its key and its SANs
    /// (nothing else: a renewal takes its extensions from the profile again). For a renewal that
    /// keeps the key; possession of that key is proven by whoever presents the certificate (a TLS
    /// handshake, a signed proof), not here.
    pub fn from_certificate(cert: &crate::Certificate) -> Result<Self> {
        let parsed = crate::certificate::parse_x509(cert.der())?;
        let public_key = PublicKey::from_parsed(parsed.public_key())?;
        let subject = Subject::from_x509(parsed.subject())?;
        let mut names = Vec::new();
        for ext in parsed.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for gn in &san.general_names {
                    let n = SanName::from_general_name(gn)?;
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        Ok(ParsedCsr {
            der: cert.der().to_vec(),
            subject_dn: parsed.subject().to_string(),
            subject,
            public_key,
            names,
            requested: RequestedExtensions::default(),
            signature_algorithm: "(renewal of a certificate)".into(),
        })
    }

    /// DER bytes of the request.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's known attributes.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The whole subject DN as text (all attributes, including ones the core ignores).
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// The requester's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The SANs requested.
    pub fn names(&self) -> &[SanName] {
        &self.names
    }

    /// Other requested extensions.
    pub fn requested_extensions(&self) -> &RequestedExtensions {
        &self.requested
    }

    /// Name of the signature algorithm, with its OID.
    pub fn signature_algorithm(&self) -> &str {
        &self.signature_algorithm
    }
}

pub(crate) const KEY_USAGE_NAMES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

pub(crate) fn key_usage_names(flags: u16) -> Vec<&'static str> {
    KEY_USAGE_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

pub(crate) fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut v = Vec::new();
    for (set, name) in [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ] {
        if set {
            v.push(name.to_string());
        }
    }
    v.extend(eku.other.iter().map(|o| o.to_id_string()));
    v
}

fn read_extensions(
    exts: &[X509Extension<'_>],
    names: &mut Vec<SanName>,
    requested: &mut RequestedExtensions,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for ext in exts {
        let oid = ext.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            return Err(Error::malformed(
                "CSR",
                format!("extension {oid} requested twice"),
            ));
        }
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for gn in &san.general_names {
                    let n = SanName::from_general_name(gn)?;
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => {
                requested.ca = Some(bc.ca);
                requested.path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => requested.key_usage = key_usage_names(ku.flags),
            ParsedExtension::ExtendedKeyUsage(eku) => requested.extended_key_usage = eku_names(eku),
            ParsedExtension::ParseError { error } => {
                return Err(Error::malformed(
                    "CSR",
                    format!("requested extension {oid}: {error}"),
                ))
            }
            _ => requested.other.push(oid),
        }
    }
    Ok(())
}
