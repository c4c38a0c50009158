//! Certificate authorities: a self-signed root, intermediates, loading one, and issuing leaves.

use rand_core::CryptoRng;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, NameConstraints, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::certificate::{parse_x509, unix, Certificate};
use crate::csr::ParsedCsr;
use crate::error::{Error, Result};
use crate::key_pair::{Algorithm, KeyPair};
use crate::name::{SanName, Subject};
use crate::policy::{IntermediateRule, IssueOptions, NameConstraintRules, Profile, Usage};
use crate::public_key::{KeyKind, PublicKey};

/// How a new CA certificate is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaParams {
    /// The CA's subject; needs at least a CN.
    pub subject: Subject,
    /// Its key algorithm.
    pub algorithm: Algorithm,
    /// Lifetime in seconds.
    pub validity_secs: u64,
    /// basicConstraints pathLenConstraint; `None` leaves it unconstrained.
    pub path_len: Option<u8>,
}

impl CaParams {
    /// A CA named `common_name`: P-256, ten years, for roots; path length unconstrained.
    pub fn new(common_name: &str) -> Self {
        CaParams {
            subject: Subject::common_name(common_name),
            algorithm: Algorithm::P256,
            validity_secs: 10 * 365 * 86_400,
            path_len: None,
        }
    }
}

/// A CA: its certificate, its key, and the certificates above it (for the chain it hands out).
/// Loaded with [`CertificateAuthority::load_public`] it holds no key: a key store outside this
/// code signs what [`CertificateAuthority::issue_unsigned`] and [`CertificateAuthority::crl_unsigned`] build.
pub struct CertificateAuthority {
    certificate: Certificate,
    key: Option<KeyPair>,
    public: PublicKey,
    params: CertificateParams,
    chain: Vec<Certificate>,
    urls: crate::PublicUrls,
}

impl core::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("certificate", &self.certificate.fingerprint_sha256())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A freshly issued certificate with the facts a ledger records.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub certificate: Certificate,
    /// Subject it was issued to.
    pub subject: Subject,
    /// SANs it holds.
    pub names: Vec<SanName>,
}

/// Backdating of CA certificates, for clock skew.
const CA_BACKDATE_SECS: i64 = 60;

fn random_serial<R: CryptoRng>(rng: &mut R) -> SerialNumber {
    // 20 octets, top bit clear: positive, the RFC 5280 maximum, 159 random bits.
    let mut bytes = [0u8; 20];
    rng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

fn ca_params(
    p: &CaParams,
    key: &PublicKey,
    now: OffsetDateTime,
    serial: SerialNumber,
) -> Result<CertificateParams> {
    if p.subject.common_name.is_none() {
        return Err(Error::InvalidParameter("a CA needs a common name".into()));
    }
    if p.validity_secs == 0 || p.validity_secs > 100 * 365 * 86_400 {
        return Err(Error::InvalidParameter(
            "CA validity must be between 1 s and 100 years".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = p.subject.to_rcgen()?;
    params.is_ca = IsCa::Ca(match p.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_identifier());
    params.serial_number = Some(serial);
    params.not_before = now - Duration::seconds(CA_BACKDATE_SECS);
    params.not_after = now + Duration::seconds(p.validity_secs as i64);
    Ok(params)
}

impl CertificateAuthority {
    /// Create a self-signed root CA with a new key.
    pub fn new_root<R: CryptoRng>(p: &CaParams, now: OffsetDateTime, rng: &mut R) -> Result<Self> {
        let key = KeyPair::generate(p.algorithm, rng);
        let params = ca_params(p, key.public_key(), now, random_serial(rng))?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            certificate: Certificate::from_der(cert.der().to_vec())?,
            public: key.public_key().clone(),
            key: Some(key),
            params,
            chain: Vec::new(),
            urls: crate::PublicUrls::default(),
        })
    }

    /// Create an intermediate CA with a new key, signed by this CA. Its lifetime never outlasts this CA.
    pub fn new_intermediate<R: CryptoRng>(
        &self,
        p: &CaParams,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<Self> {
        let key = KeyPair::generate(p.algorithm, rng);
        let params = self.child_ca_params(p, key.public_key(), now, rng)?;
        let issuer = Issuer::from_params(&self.params, self.held()?);
        let cert = params.signed_by(&key, &issuer)?;
        let mut chain = vec![self.certificate.clone()];
        chain.extend(self.chain.iter().cloned());
        Ok(CertificateAuthority {
            certificate: Certificate::from_der(cert.der().to_vec())?,
            public: key.public_key().clone(),
            key: Some(key),
            params,
            chain,
            urls: crate::PublicUrls::default(),
        })
    }

    /// A self-signed root for `public`, a key held outside this code (an HSM): the TBSCertificate
    /// for that key to sign. The assembled certificate then loads with [`Self::load_public`].
    pub fn root_unsigned<R: CryptoRng>(
        p: &CaParams,
        public: &PublicKey,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<Tbs> {
        let params = ca_params(p, public, now, random_serial(rng))?;
        let capture = Capture::new(public);
        let cert = params.self_signed(&capture)?;
        capture.finish(cert.der())
    }

    /// An intermediate CA for `public`, a key held outside this code, issued by this CA: the
    /// TBSCertificate for this CA's key to sign (wherever that key is).
    pub fn intermediate_unsigned<R: CryptoRng>(
        &self,
        p: &CaParams,
        public: &PublicKey,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<Tbs> {
        let params = self.child_ca_params(p, public, now, rng)?;
        let capture = Capture::new(&self.public);
        let issuer = Issuer::from_params(&self.params, &capture);
        let cert = params.signed_by(public, &issuer)?;
        capture.finish(cert.der())
    }

    /// What an intermediate CA for `public` under this CA is: refused when this CA cannot sign
    /// one now; its lifetime inside this CA's; this CA's key identifier as its AKI.
    fn child_ca_params<R: CryptoRng>(
        &self,
        p: &CaParams,
        public: &PublicKey,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<CertificateParams> {
        self.check_usable(now)?;
        if let IsCa::Ca(BasicConstraints::Constrained(0)) = &self.params.is_ca {
            return Err(Error::Policy(
                "this CA has pathLen 0 and cannot sign another CA".into(),
            ));
        }
        let mut params = ca_params(p, public, now, random_serial(rng))?;
        params.not_after = params.not_after.min(self.not_after());
        params.not_before = params.not_before.max(self.not_before());
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    /// Load a CA from its certificate and key. `chain` holds the certificates above it, nearest
    /// first (empty for a root). Refused: a certificate that is not a CA, lacks keyCertSign, does not
    /// match the key, or whose subject cannot be reproduced byte for byte as the issuer of new certs.
    pub fn load(certificate: Certificate, key: KeyPair, chain: Vec<Certificate>) -> Result<Self> {
        Self::load_with(certificate, Some(key), chain)
    }

    /// Load a CA from its certificate alone, for a key held outside this code (a host's key
    /// store, an HSM): it builds what is to be signed and never signs. The same checks as
    /// [`Self::load`]; the key must be P-256 or Ed25519.
    pub fn load_public(certificate: Certificate, chain: Vec<Certificate>) -> Result<Self> {
        Self::load_with(certificate, None, chain)
    }

    fn load_with(
        certificate: Certificate,
        key: Option<KeyPair>,
        chain: Vec<Certificate>,
    ) -> Result<Self> {
        let x = parse_x509(certificate.der())?;
        if !x.is_ca() {
            return Err(Error::InvalidParameter(
                "the certificate is not a CA (basicConstraints CA:true missing)".into(),
            ));
        }
        if let Ok(Some(ku)) = x.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(Error::InvalidParameter(
                    "the CA certificate lacks the keyCertSign key usage".into(),
                ));
            }
        }
        let public = PublicKey::from_spki(x.public_key().raw)?;
        if !matches!(public.kind(), KeyKind::P256 | KeyKind::Ed25519) {
            return Err(Error::UnsupportedAlgorithm(format!(
                "a CA key must be P-256 or Ed25519, not {}",
                public.name()
            )));
        }
        if key
            .as_ref()
            .is_some_and(|k| k.public_key().spki_der() != public.spki_der())
        {
            return Err(Error::InvalidParameter(
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        let subject = Subject::from_x509(x.subject())?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject.to_rcgen()?;
        let ski = x
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_else(|| public.key_identifier());
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.is_ca = match x.basic_constraints() {
            Ok(Some(bc)) => match bc.value.path_len_constraint {
                Some(n) => IsCa::Ca(BasicConstraints::Constrained(n.min(255) as u8)),
                None => IsCa::Ca(BasicConstraints::Unconstrained),
            },
            _ => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        params.not_before = OffsetDateTime::from_unix_timestamp(certificate.not_before())
            .map_err(|e| Error::malformed("certificate", e))?;
        params.not_after = OffsetDateTime::from_unix_timestamp(certificate.not_after())
            .map_err(|e| Error::malformed("certificate", e))?;
        // Issued certificates carry the issuer name as rcgen re-encodes it; it must equal the
        // CA's subject exactly or chains break. Check once here with a throwaway CSR.
        // Signed by a capture: nothing here needs the key, and the name is all that is read.
        let probe = params.serialize_request(&Capture::new(&public))?;
        let probe_subject = subject_raw_of_csr(probe.der())?;
        if probe_subject != x.subject().as_raw() {
            return Err(Error::UnsupportedAlgorithm(
                "the CA subject uses a name encoding this issuer cannot reproduce exactly (repeated or multi-valued attributes, or unusual string types)".into(),
            ));
        }
        drop(x);
        Ok(CertificateAuthority {
            certificate,
            key,
            public,
            params,
            chain,
            urls: crate::PublicUrls::default(),
        })
    }

    /// Load from PEM texts: the certificate (followed by any chain above it) and the key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        let mut certs = Certificate::parse_all(cert_pem)?;
        let key = KeyPair::from_pem(key_pem, passphrase)?;
        let cert = certs.remove(0);
        Self::load(cert, key, certs)
    }

    /// Load from the certificate PEM (followed by any chain above it) alone: see
    /// [`Self::load_public`].
    pub fn from_pem_public(cert_pem: &[u8]) -> Result<Self> {
        let mut certs = Certificate::parse_all(cert_pem)?;
        let cert = certs.remove(0);
        Self::load_public(cert, certs)
    }

    /// Publish `urls` in every certificate issued from now on (CRL DP and AIA caIssuers).
    pub fn set_public_urls(&mut self, urls: crate::PublicUrls) -> Result<()> {
        urls.validate()?;
        self.urls = urls;
        Ok(())
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Certificates above this CA, nearest first (empty for a root).
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// The CA's key; `None` when a key store outside this code holds it.
    pub fn key(&self) -> Option<&KeyPair> {
        self.key.as_ref()
    }

    /// The CA's public key (the certificate's).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key, or why this CA cannot sign by itself.
    pub(crate) fn held(&self) -> Result<&KeyPair> {
        self.key.as_ref().ok_or_else(|| {
            Error::InvalidParameter(
                "this CA's key is held outside (a key store signs): it builds, never signs".into(),
            )
        })
    }

    pub(crate) fn params(&self) -> &CertificateParams {
        &self.params
    }

    /// The CA's key identifier (its SKI), used as the AKI of what it signs.
    pub fn key_identifier(&self) -> Vec<u8> {
        match &self.params.key_identifier_method {
            KeyIdMethod::PreSpecified(v) => v.clone(),
            _ => self.public.key_identifier(),
        }
    }

    fn not_before(&self) -> OffsetDateTime {
        self.params.not_before
    }

    fn not_after(&self) -> OffsetDateTime {
        self.params.not_after
    }

    fn check_usable(&self, now: OffsetDateTime) -> Result<()> {
        if now >= self.not_after() {
            return Err(Error::Policy("the CA certificate has expired".into()));
        }
        if now + Duration::seconds(CA_BACKDATE_SECS) < self.not_before() {
            return Err(Error::Policy("the CA certificate is not valid yet".into()));
        }
        Ok(())
    }

    /// Issue a leaf for a verified CSR under `profile`. The profile decides subject, names,
    /// lifetime and usages ([`Profile::decide`]); the result never outlives this CA.
    pub fn issue<R: CryptoRng>(
        &self,
        csr: &ParsedCsr,
        profile: &Profile,
        opts: &IssueOptions,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<Issued> {
        let (der, subject, names) = self.issue_with(csr, profile, opts, now, rng, self.held()?)?;
        Ok(Issued {
            certificate: Certificate::from_der(der)?,
            subject,
            names,
        })
    }

    /// Build the certificate and sign it with `signer` (the CA key, or a [`Capture`]).
    fn issue_with<R: CryptoRng>(
        &self,
        csr: &ParsedCsr,
        profile: &Profile,
        opts: &IssueOptions,
        now: OffsetDateTime,
        rng: &mut R,
        signer: &impl rcgen::SigningKey,
    ) -> Result<(Vec<u8>, Subject, Vec<SanName>)> {
        self.check_usable(now)?;
        let decision = profile.decide(csr, opts)?;
        let key = csr.public_key();
        let mut params = CertificateParams::default();
        params.distinguished_name = decision.subject.to_rcgen()?;
        params.subject_alt_names = decision
            .names
            .iter()
            .map(SanName::to_rcgen)
            .collect::<Result<_>>()?;
        if let Some(rule) = &profile.intermediate {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(self.child_path_len(rule)?));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.name_constraints = name_constraints(&rule.name_constraints);
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = leaf_key_usages(key, decision.usage);
            params.extended_key_usages = match decision.usage {
                Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
                Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
                Usage::ServerAndClient => vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            };
        }
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key.key_identifier());
        params.serial_number = Some(random_serial(rng));
        params.crl_distribution_points = self.urls.crl_distribution_points();
        params.custom_extensions.extend(self.urls.aia_extension());
        params.not_before =
            (now - Duration::seconds(profile.backdate_secs as i64)).max(self.not_before());
        params.not_after =
            (now + Duration::seconds(decision.lifetime_secs as i64)).min(self.not_after());
        let issuer = Issuer::from_params(&self.params, signer);
        let cert = params.signed_by(key, &issuer)?;
        Ok((cert.der().to_vec(), decision.subject, decision.names))
    }

    /// [`Self::issue`] without signing: the TBSCertificate for a key store outside this code
    /// (the host's), and what [`Unsigned::assemble`] needs to finish it with the signature. The
    /// same inputs give the same TBS (rcgen's encoding takes no clock or randomness).
    pub fn issue_unsigned<R: CryptoRng>(
        &self,
        csr: &ParsedCsr,
        profile: &Profile,
        opts: &IssueOptions,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<Unsigned> {
        let capture = Capture::new(&self.public);
        let dummy = self.issue_with(csr, profile, opts, now, rng, &capture)?;
        Ok(Unsigned {
            tbs: capture.finish(&dummy.0)?,
            subject: dummy.1,
            names: dummy.2,
        })
    }

    /// The path length an intermediate of `rule` gets, if this CA may sign one at all: below a
    /// CA constrained to `n`, at most `n - 1`.
    fn child_path_len(&self, rule: &IntermediateRule) -> Result<u8> {
        match &self.params.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0)) => Err(Error::Policy(
                "this CA has path length 0: it cannot sign an intermediate".into(),
            )),
            IsCa::Ca(BasicConstraints::Constrained(n)) if rule.path_len >= *n => {
                Err(Error::Policy(format!(
                    "the profile asks for intermediates with path length {}, but this CA's own path length {n} allows at most {}",
                    rule.path_len,
                    n - 1
                )))
            }
            _ => Ok(rule.path_len),
        }
    }

    /// Seconds since the epoch when this CA stops being valid.
    pub fn not_after_unix(&self) -> i64 {
        unix(self.not_after())
    }
}

fn name_constraints(rules: &NameConstraintRules) -> Option<NameConstraints> {
    if rules.is_empty() {
        return None;
    }
    fn subtrees(dns: &[String], ip: &[ipnet::IpNet]) -> Vec<GeneralSubtree> {
        let ip = ip.iter().map(|n| {
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(n.addr(), n.prefix_len()))
        });
        dns.iter()
            .map(|d| GeneralSubtree::DnsName(d.clone()))
            .chain(ip)
            .collect()
    }
    Some(NameConstraints {
        permitted_subtrees: subtrees(&rules.permitted_dns, &rules.permitted_ip),
        excluded_subtrees: subtrees(&rules.excluded_dns, &rules.excluded_ip),
    })
}

fn leaf_key_usages(key: &PublicKey, usage: Usage) -> Vec<KeyUsagePurpose> {
    let mut v = vec![KeyUsagePurpose::DigitalSignature];
    // TLS 1.2 RSA key exchange encrypts to the server's key.
    if matches!(key.kind(), KeyKind::Rsa) && usage != Usage::Client {
        v.push(KeyUsagePurpose::KeyEncipherment);
    }
    v
}

fn subject_raw_of_csr(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|e| Error::malformed("CSR", e))?;
    Ok(csr.certification_request_info.subject.as_raw().to_vec())
}

/// What a key store outside this code signs: a TBSCertificate or TBSCertList, and the
/// signatureAlgorithm to put beside it.
#[derive(Clone, Debug)]
pub struct Tbs {
    /// The DER the key store signs.
    pub der: Vec<u8>,
    alg_id: Vec<u8>,
}

impl Tbs {
    /// [`Tbs::assemble`] with the fixed-size signature WebCrypto and PKCS#11 give: ECDSA's r‖s
    /// (64 bytes for P-256) becomes DER here; an Ed25519 signature is the same in both forms.
    pub fn assemble_raw(&self, signature: &[u8], kind: crate::KeyKind) -> Result<Vec<u8>> {
        match kind {
            crate::KeyKind::P256 => Ok(self.assemble(&crate::p256_signature_der(signature)?)),
            crate::KeyKind::Ed25519 if signature.len() == 64 => Ok(self.assemble(signature)),
            other => Err(Error::InvalidParameter(format!(
                "not a {other:?} signature a CA key makes"
            ))),
        }
    }

    /// SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }: the signed object's DER, with
    /// `signature` (DER ECDSA, or raw Ed25519). Whether it verifies is the caller's to check.
    pub fn assemble(&self, signature: &[u8]) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&self.der);
                w.next().write_der(&self.alg_id);
                w.next().write_bitvec_bytes(signature, signature.len() * 8);
            })
        })
    }
}

/// A certificate built by [`CertificateAuthority::issue_unsigned`], waiting for its signature.
pub struct Unsigned {
    /// The TBSCertificate.
    pub tbs: Tbs,
    /// The subject it is for.
    pub subject: Subject,
    /// Its SANs.
    pub names: Vec<SanName>,
}

impl Unsigned {
    /// The certificate with `signature` over [`Unsigned::tbs`].
    pub fn assemble(self, signature: &[u8]) -> Result<Issued> {
        Ok(Issued {
            certificate: Certificate::from_der(self.tbs.assemble(signature))?,
            subject: self.subject,
            names: self.names,
        })
    }
}

/// A signer that keeps what it was asked to sign and signs nothing: rcgen hands it exactly the
/// TBS DER.
pub(crate) struct Capture<'a> {
    public: &'a PublicKey,
    tbs: core::cell::RefCell<Option<Vec<u8>>>,
}

impl<'a> Capture<'a> {
    pub(crate) fn new(public: &'a PublicKey) -> Self {
        Capture {
            public,
            tbs: core::cell::RefCell::new(None),
        }
    }

    /// What was captured, with the signatureAlgorithm of `signed` (what rcgen made with the
    /// empty signature: SEQUENCE { tbs, algorithm, BIT STRING (empty) }).
    pub(crate) fn finish(self, signed: &[u8]) -> Result<Tbs> {
        let der = self
            .tbs
            .into_inner()
            .ok_or_else(|| Error::InvalidParameter("rcgen signed nothing".into()))?;
        let (_, alg_id) = split_certificate(signed)?;
        Ok(Tbs { der, alg_id })
    }
}

impl rcgen::PublicKeyData for Capture<'_> {
    fn der_bytes(&self) -> &[u8] {
        rcgen::PublicKeyData::der_bytes(self.public)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen::PublicKeyData::algorithm(self.public)
    }
}

impl rcgen::SigningKey for Capture<'_> {
    fn sign(&self, msg: &[u8]) -> core::result::Result<Vec<u8>, rcgen::Error> {
        *self.tbs.borrow_mut() = Some(msg.to_vec());
        Ok(Vec::new())
    }
}

/// The TBS and signatureAlgorithm of a signed object's DER (certificate or CRL), each whole.
fn split_certificate(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let alg = r.next().read_der()?;
            r.next().read_bitvec_bytes()?;
            Ok((tbs, alg))
        })
    })
    .map_err(|e| Error::InvalidParameter(format!("splitting a certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CsrRequest, SeedRng};

    /// Signed outside (here by the same key, ECDSA per RFC 6979) and assembled, the certificate
    /// is byte for byte the one `issue` makes.
    #[test]
    fn an_unsigned_certificate_signed_outside_is_the_same_certificate() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for alg in [Algorithm::P256, Algorithm::Ed25519] {
            let ca = CertificateAuthority::new_root(
                &CaParams {
                    algorithm: alg,
                    ..CaParams::new("Outside CA")
                },
                now,
                &mut SeedRng::from_seed([1; 32]),
            )
            .unwrap();
            let key = KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([2; 32]));
            let csr = CsrRequest {
                subject: Subject::default(),
                names: vec![SanName::dns("w.example.com").unwrap()],
            }
            .sign(&key)
            .unwrap();
            let csr = ParsedCsr::parse(csr.to_pem().as_bytes()).unwrap();
            let opts = IssueOptions {
                identity: Some(SanName::dns("w.example.com").unwrap()),
                ..Default::default()
            };
            let rng = || SeedRng::from_seed([3; 32]);
            let inside = ca
                .issue(&csr, &Profile::default(), &opts, now, &mut rng())
                .unwrap();
            let unsigned = ca
                .issue_unsigned(&csr, &Profile::default(), &opts, now, &mut rng())
                .unwrap();
            let signature = ca.held().unwrap().sign(&unsigned.tbs.der);
            let outside = unsigned.assemble(&signature).unwrap();
            assert_eq!(
                outside.certificate.der(),
                inside.certificate.der(),
                "{alg:?}"
            );
            assert_eq!(outside.names, inside.names);
        }
    }

    /// A root and an intermediate for keys held outside: built here, signed outside, loaded
    /// without their keys; the chain verifies and the intermediate issues through a capture.
    #[test]
    fn roots_and_intermediates_for_outside_keys_chain() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut rng = SeedRng::from_seed([8; 32]);
        let root_key = KeyPair::generate(Algorithm::P256, &mut rng);
        let tbs = CertificateAuthority::root_unsigned(
            &CaParams::new("HSM Root"),
            root_key.public_key(),
            now,
            &mut rng,
        )
        .unwrap();
        let root_cert = Certificate::from_der(tbs.assemble(&root_key.sign(&tbs.der))).unwrap();
        crate::chain::check_issued_by(&root_cert, &root_cert).unwrap();
        let root = CertificateAuthority::load_public(root_cert.clone(), Vec::new()).unwrap();
        assert!(root.key().is_none());
        assert!(root
            .new_intermediate(&CaParams::new("x"), now, &mut rng)
            .is_err());

        let sub_key = KeyPair::generate(Algorithm::P256, &mut rng);
        let mut p = CaParams::new("HSM Issuing");
        p.path_len = Some(0);
        let tbs = root
            .intermediate_unsigned(&p, sub_key.public_key(), now, &mut rng)
            .unwrap();
        let sub_cert = Certificate::from_der(tbs.assemble(&root_key.sign(&tbs.der))).unwrap();
        crate::chain::check_issued_by(&sub_cert, &root_cert).unwrap();
        let sub = CertificateAuthority::load_public(sub_cert, vec![root_cert]).unwrap();
        assert_eq!(sub.public_key().spki_der(), sub_key.public_key().spki_der());
    }
}
