//! The JavaScript face of the module: the npm package's API (declared in `pkg/index.d.ts`).
//! Entropy comes from WebCrypto through getrandom and time from `Date`; everything else is the
//! core as it is.

use js_sys::{Array, Date, Error as JsError, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use wasm_pki::{
    Algorithm, CaParams, Certificate, CertificateAuthority, CsrRequest, Error, IssueOptions,
    KeyEncryption, KeyPair, OffsetDateTime, ParsedCsr, Profile, SanName, SignatureCheck, Subject,
    UncheckedCsr,
};

pub(crate) type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

pub(crate) fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub(crate) fn now() -> Res<OffsetDateTime> {
    let secs = (Date::now() / 1000.0).floor() as i64;
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| js_error("invalid_parameter", &e.to_string()))
}

/// What every export throws: a JS `Error` with a stable `code` property (the core's
/// [`Error::code`] set, which `tests/node` checks against `index.d.ts`).
pub struct Failure(JsValue);

/// Results of the exports.
pub(crate) type Res<T> = Result<T, Failure>;

impl From<Failure> for JsValue {
    fn from(f: Failure) -> JsValue {
        f.0
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        js_error(e.code(), &e.to_string())
    }
}

/// A JS `Error` with a stable `code` property.
pub(crate) fn js_error(code: &str, message: &str) -> Failure {
    let err = JsError::new(message);
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    Failure(err.into())
}

/// Requests and profiles go through JSON so that unknown fields (a typo in a policy) are refused:
/// serde-wasm-bindgen would silently skip them.
pub(crate) fn from_js<T: for<'de> Deserialize<'de>>(what: &str, v: JsValue) -> Res<T> {
    let bad = |m: String| js_error("invalid_parameter", &format!("{what}: {m}"));
    if !v.is_object() || Array::is_array(&v) {
        return Err(bad("expected an object".into()));
    }
    let text = js_sys::JSON::stringify(&v)
        .map_err(|_| bad("not serialisable as JSON".into()))?
        .as_string()
        .unwrap_or_default();
    if text.len() > wasm_pki::MAX_INPUT_BYTES {
        return Err(bad("too large".into()));
    }
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

pub(crate) fn to_js<T: Serialize>(v: &T) -> Res<JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error("encoding", &e.to_string()))
}

fn passphrase_bytes(p: Option<String>) -> Option<Vec<u8>> {
    p.filter(|s| !s.is_empty()).map(String::into_bytes)
}

/// PKCS#8 PEM of `key`, encrypted (scrypt, AES-256-CBC) when a non-empty passphrase is given.
fn private_key_pem(key: &KeyPair, passphrase: Option<String>) -> Res<String> {
    match passphrase_bytes(passphrase) {
        Some(p) => Ok(key.to_encrypted_pkcs8_pem(&p, KeyEncryption::Scrypt, &mut rng())?),
        None => Ok(key.to_pkcs8_pem()?.to_string()),
    }
}

/// A key pair held inside WebAssembly memory.
#[wasm_bindgen]
pub struct Key {
    inner: KeyPair,
}

#[wasm_bindgen]
impl Key {
    /// `'p256'` or `'ed25519'`.
    #[wasm_bindgen(getter)]
    pub fn algorithm(&self) -> String {
        self.inner.algorithm().to_string()
    }

    /// SubjectPublicKeyInfo PEM.
    #[wasm_bindgen(js_name = publicKeyPem)]
    pub fn public_key_pem(&self) -> String {
        self.inner.public_key().to_pem()
    }

    /// PKCS#8 PEM; encrypted (PBES2, scrypt, AES-256-CBC) when a passphrase is given.
    #[wasm_bindgen(js_name = privateKeyPem)]
    pub fn private_key_pem(&self, passphrase: Option<String>) -> Res<String> {
        private_key_pem(&self.inner, passphrase)
    }

    /// The public key as a JWK object.
    #[wasm_bindgen(js_name = publicKeyJwk)]
    pub fn public_key_jwk(&self) -> Res<JsValue> {
        to_js(&self.inner.public_key().to_jwk())
    }

    /// Sign bytes: r‖s for P-256 (as WebCrypto's ECDSA with SHA-256), 64 bytes for Ed25519.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.inner.sign_raw(data)
    }

    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    #[wasm_bindgen(js_name = fingerprint)]
    pub fn fingerprint(&self) -> String {
        wasm_pki::hex(&self.inner.public_key().fingerprint_sha256())
    }
}

/// Generate a key: `'p256'` or `'ed25519'`.
#[wasm_bindgen(js_name = generateKey)]
pub fn generate_key(algorithm: &str) -> Res<Key> {
    let alg: Algorithm = algorithm.parse()?;
    Ok(Key {
        inner: KeyPair::generate(alg, &mut rng()),
    })
}

/// Read a PKCS#8 PEM key (encrypted ones need the passphrase).
#[wasm_bindgen(js_name = importKey)]
pub fn import_key(pem: &str, passphrase: Option<String>) -> Res<Key> {
    let p = passphrase_bytes(passphrase);
    Ok(Key {
        inner: KeyPair::from_pem(pem.as_bytes(), p.as_deref())?,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsCsrRequest {
    common_name: Option<String>,
    organization: Option<String>,
    organizational_unit: Option<String>,
    country: Option<String>,
    state: Option<String>,
    locality: Option<String>,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    ip_addresses: Vec<String>,
    #[serde(default)]
    uris: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Verify a signature (r‖s or DER for P-256, Ed25519, RSA PKCS#1 v1.5) with a public key PEM.
/// Returns false for a signature that does not verify; throws for a malformed key.
#[wasm_bindgen(js_name = verifySignature)]
pub fn verify_signature(public_key_pem: &str, data: &[u8], signature: &[u8]) -> Res<bool> {
    let key = wasm_pki::PublicKey::from_spki(public_key_pem.as_bytes())?;
    Ok(key.verify(data, signature).is_ok())
}

/// Build a CSR PEM for `key` from `{ commonName, organization?, dnsNames?, ipAddresses?, uris?, emails? }`.
#[wasm_bindgen(js_name = createCsr)]
pub fn create_csr(key: &Key, request: JsValue) -> Res<String> {
    Ok(csr_request(request)?.sign(&key.inner)?.to_pem())
}

/// A CSR for a key outside the module (a WebCrypto `CryptoKey`): `request` as `createCsr`'s,
/// `spki` the public key (`exportKey("spki", publicKey)`). Sign `tbs` with the private key and
/// hand the signature to `assemble`.
#[wasm_bindgen(js_name = csrUnsigned)]
pub fn csr_unsigned(spki: &[u8], request: JsValue) -> Res<UnsignedCsr> {
    let public = outside_key(spki)?;
    Ok(UnsignedCsr {
        tbs: csr_request(request)?.unsigned(&public)?,
        signer: public,
    })
}

/// A P-256 or Ed25519 public key (SPKI DER) for a key the module does not hold.
fn outside_key(spki: &[u8]) -> Res<wasm_pki::PublicKey> {
    let public = wasm_pki::PublicKey::from_spki(spki)?;
    match public.kind() {
        wasm_pki::KeyKind::P256 | wasm_pki::KeyKind::Ed25519 => Ok(public),
        _ => Err(js_error(
            "unsupported_algorithm",
            "an outside key is P-256 or Ed25519",
        )),
    }
}

/// `"ES256"` (WebCrypto `{ name: "ECDSA", hash: "SHA-256" }`) or `"Ed25519"`.
fn webcrypto_algorithm(kind: wasm_pki::KeyKind) -> String {
    match kind {
        wasm_pki::KeyKind::Ed25519 => "Ed25519".into(),
        _ => "ES256".into(),
    }
}

/// A CSR built by the module for a key outside it: sign `tbs`, then `assemble`.
#[wasm_bindgen]
pub struct UnsignedCsr {
    tbs: wasm_pki::Tbs,
    signer: wasm_pki::PublicKey,
}

/// The two getters of an object built for a key outside the module: the bytes it signs and how.
macro_rules! signed_outside {
    ($t:ty, $what:literal) => {
        #[wasm_bindgen]
        impl $t {
            #[doc = concat!("The bytes the key signs (", $what, ").")]
            #[wasm_bindgen(getter)]
            pub fn tbs(&self) -> Vec<u8> {
                self.tbs.der.clone()
            }

            /// `"ES256"` (WebCrypto `{ name: "ECDSA", hash: "SHA-256" }`) or `"Ed25519"`.
            #[wasm_bindgen(getter)]
            pub fn algorithm(&self) -> String {
                webcrypto_algorithm(self.signer.kind())
            }
        }
    };
}
signed_outside!(UnsignedCsr, "the DER CertificationRequestInfo");
signed_outside!(UnsignedCertificate, "the DER TBSCertificate");

#[wasm_bindgen]
impl UnsignedCsr {
    /// The CSR PEM, with the key's signature over `tbs` as WebCrypto gives it (P-256: r‖s).
    /// A signature that does not verify with the CSR's key is refused.
    pub fn assemble(&self, signature: &[u8]) -> Res<String> {
        Ok(wasm_pki::Csr::assemble(&self.tbs, signature, self.signer.kind())?.to_pem())
    }
}

/// A renewal proof for a key outside the module: `signRenewalProof`'s arguments with the key's
/// `spki` in place of the key. Sign `signingInput`, then `assemble`.
#[wasm_bindgen(js_name = renewalProofUnsigned)]
pub fn renewal_proof_unsigned(
    spki: &[u8],
    certificate_pem: &str,
    audience: &str,
) -> Res<UnsignedRenewalProof> {
    let public = outside_key(spki)?;
    let cert = Certificate::parse(certificate_pem.as_bytes())?;
    let now = now()?.unix_timestamp();
    Ok(UnsignedRenewalProof {
        inner: wasm_pki::UnsignedProof::new(&public, &cert, audience, now, &mut rng())?,
    })
}

/// A renewal proof waiting for the signature of the certificate's key.
#[wasm_bindgen]
pub struct UnsignedRenewalProof {
    inner: wasm_pki::UnsignedProof,
}

#[wasm_bindgen]
impl UnsignedRenewalProof {
    /// The bytes the key signs (the JWS signing input, `header.claims`).
    #[wasm_bindgen(getter, js_name = signingInput)]
    pub fn signing_input(&self) -> Vec<u8> {
        self.inner.signing_input.as_bytes().to_vec()
    }

    /// `"ES256"` or `"Ed25519"`: the WebCrypto algorithm to sign with.
    #[wasm_bindgen(getter)]
    pub fn algorithm(&self) -> String {
        webcrypto_algorithm(self.inner.public_key().kind())
    }

    /// The proof (send it as `Authorization: Bearer PROOF`), with the key's raw signature over
    /// `signingInput`; a signature that is not the certificate key's is refused.
    pub fn assemble(&self, signature: &[u8]) -> Res<String> {
        Ok(self.inner.assemble(signature)?)
    }
}

pub(crate) fn csr_request(request: JsValue) -> Res<CsrRequest> {
    let r: JsCsrRequest = from_js("request", request)?;
    let mut names = Vec::new();
    for d in &r.dns_names {
        names.push(SanName::dns(d.trim())?);
    }
    for ip in &r.ip_addresses {
        let ip = ip
            .trim()
            .parse()
            .map_err(|_| Error::InvalidName(format!("\"{ip}\" is not an IP address")))?;
        names.push(SanName::Ip(ip));
    }
    for u in &r.uris {
        names.push(SanName::uri(u.trim())?);
    }
    for e in &r.emails {
        names.push(SanName::email(e.trim())?);
    }
    Ok(CsrRequest {
        subject: Subject {
            common_name: non_empty(r.common_name),
            organization: non_empty(r.organization),
            organizational_unit: non_empty(r.organizational_unit),
            country: non_empty(r.country),
            state: non_empty(r.state),
            locality: non_empty(r.locality),
        },
        names,
    })
}

/// A renewal proof for `POST /v1/renew`: a short-lived JWS signed by `key`, carrying the
/// certificate (PEM, whose key `key` must be) and naming `audience` (the signer's renew URL).
/// Send it as `Authorization: Bearer PROOF`; the key itself never leaves the page.
#[wasm_bindgen(js_name = signRenewalProof)]
pub fn sign_renewal_proof(key: &Key, certificate_pem: &str, audience: &str) -> Res<String> {
    let cert = Certificate::parse(certificate_pem.as_bytes())?;
    let now = now()?.unix_timestamp();
    Ok(wasm_pki::sign_proof(
        &key.inner,
        &cert,
        audience,
        now,
        &mut rng(),
    )?)
}

/// Describe a certificate or CSR (PEM) as a plain object.
#[wasm_bindgen]
pub fn inspect(pem: &str) -> Res<JsValue> {
    to_js(&wasm_pki::inspect(pem.as_bytes())?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsCaOptions {
    common_name: String,
    organization: Option<String>,
    algorithm: Option<String>,
    validity_days: Option<u32>,
    path_len: Option<u8>,
}

/// A certificate authority held inside WebAssembly memory.
#[wasm_bindgen]
pub struct Ca {
    inner: CertificateAuthority,
}

/// The caller's part of an issue call, kept out of the profile as in Rust's [`IssueOptions`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsIssueOptions {
    identity: Option<String>,
    lifetime_secs: Option<u64>,
}

/// A JS profile is the core's profile, the same camelCase fields as JSON and TOML: `{}` is the
/// default (a server+client leaf for `options.identity` only), and taking the CSR's subject and
/// names as they are is the explicit `{ acceptCsr: true }`. Unknown fields are refused.
fn profile_from_js(profile: JsValue, options: JsValue) -> Res<(Profile, IssueOptions)> {
    let profile: Profile = if profile.is_undefined() || profile.is_null() {
        Profile::default()
    } else {
        from_js("profile", profile)?
    };
    let o: JsIssueOptions = if options.is_undefined() || options.is_null() {
        JsIssueOptions {
            identity: None,
            lifetime_secs: None,
        }
    } else {
        from_js("options", options)?
    };
    let identity = o.identity.as_deref().map(SanName::parse).transpose()?;
    Ok((
        profile,
        IssueOptions {
            identity,
            lifetime_secs: o.lifetime_secs,
            ..Default::default()
        },
    ))
}

#[wasm_bindgen]
impl Ca {
    /// The CA certificate, PEM.
    #[wasm_bindgen(js_name = certificatePem)]
    pub fn certificate_pem(&self) -> String {
        self.inner.certificate().to_pem()
    }

    /// The CA key as PKCS#8 PEM, encrypted when a passphrase is given.
    #[wasm_bindgen(js_name = privateKeyPem)]
    pub fn private_key_pem(&self, passphrase: Option<String>) -> Res<String> {
        let key = self.inner.key().ok_or_else(|| {
            js_error(
                "invalid_parameter",
                "this CA's key is held outside the module: there is no key to export",
            )
        })?;
        private_key_pem(key, passphrase)
    }

    /// Issue a leaf for a CSR (PEM) under `profile`, for what `options` vouches for
    /// (`{ identity?, lifetimeSecs? }`); returns the certificate PEM.
    pub fn issue(&self, csr_pem: &str, profile: JsValue, options: JsValue) -> Res<String> {
        let (profile, opts) = profile_from_js(profile, options)?;
        let csr = ParsedCsr::parse(csr_pem.as_bytes())?;
        let issued = self
            .inner
            .issue(&csr, &profile, &opts, now()?, &mut rng())?;
        Ok(issued.certificate.to_pem())
    }

    /// The first half of `issueAsync`: parse the CSR and check everything but its signature's
    /// arithmetic, which the returned object hands to the platform's crypto.
    #[wasm_bindgen(js_name = beginIssue)]
    pub fn begin_issue(
        &self,
        csr_pem: &str,
        profile: JsValue,
        options: JsValue,
    ) -> Res<PendingIssue> {
        let (profile, opts) = profile_from_js(profile, options)?;
        let csr = UncheckedCsr::parse(csr_pem.as_bytes())?;
        // JS verifies P-256 and Ed25519; RSA stays in the module.
        let check = csr.check().filter(|c| {
            matches!(
                c.algorithm,
                wasm_pki::CheckAlgorithm::EcdsaP256Sha256 | wasm_pki::CheckAlgorithm::Ed25519
            )
        });
        Ok(PendingIssue {
            check,
            csr,
            profile,
            opts,
        })
    }

    /// Whether the module holds this CA's key (`false` for a CA whose key is a WebCrypto
    /// `CryptoKey`: `issueAsync` then signs through WebCrypto).
    #[wasm_bindgen(getter, js_name = holdsKey)]
    pub fn holds_key(&self) -> bool {
        self.inner.key().is_some()
    }

    /// `finishIssue` for a CA whose key is outside the module: the certificate to be signed,
    /// as its TBS, which `UnsignedCertificate.assemble` finishes with the outside signature.
    #[wasm_bindgen(js_name = finishIssueUnsigned)]
    pub fn finish_issue_unsigned(
        &self,
        pending: PendingIssue,
        valid: Option<bool>,
    ) -> Res<UnsignedCertificate> {
        let csr = match (valid, &pending.check) {
            (Some(v), Some(_)) => pending.csr.accept_verdict(v)?,
            _ => pending.csr.verify()?,
        };
        let unsigned =
            self.inner
                .issue_unsigned(&csr, &pending.profile, &pending.opts, now()?, &mut rng())?;
        Ok(UnsignedCertificate {
            tbs: unsigned.tbs,
            signer: self.inner.public_key().clone(),
            verify: false,
        })
    }

    /// The second half: `valid` is the platform's verdict on the pending check; `undefined`
    /// (no platform crypto for it) verifies in the module. Returns the certificate PEM.
    #[wasm_bindgen(js_name = finishIssue)]
    pub fn finish_issue(&self, pending: PendingIssue, valid: Option<bool>) -> Res<String> {
        // A verdict counts only for a check this object handed out.
        let csr = match (valid, &pending.check) {
            (Some(v), Some(_)) => pending.csr.accept_verdict(v)?,
            _ => pending.csr.verify()?,
        };
        let issued = self
            .inner
            .issue(&csr, &pending.profile, &pending.opts, now()?, &mut rng())?;
        Ok(issued.certificate.to_pem())
    }
}

/// An issue call between `Ca.beginIssue` and `Ca.finishIssue`: the CSR's signature as the
/// platform's crypto needs it (every getter `undefined` when the module verifies it itself, RSA).
#[wasm_bindgen]
pub struct PendingIssue {
    csr: UncheckedCsr,
    profile: Profile,
    opts: IssueOptions,
    check: Option<SignatureCheck>,
}

#[wasm_bindgen]
impl PendingIssue {
    /// `"ES256"` (ECDSA P-256 SHA-256, r‖s) or `"Ed25519"`.
    #[wasm_bindgen(getter)]
    pub fn algorithm(&self) -> Option<String> {
        self.check.as_ref().map(|c| match c.algorithm {
            wasm_pki::CheckAlgorithm::EcdsaP256Sha256 => "ES256".to_string(),
            wasm_pki::CheckAlgorithm::EcdsaP384Sha384 => "ES384".to_string(),
            wasm_pki::CheckAlgorithm::Ed25519 => "Ed25519".to_string(),
            wasm_pki::CheckAlgorithm::RsaPkcs1Sha256 => "RS256".to_string(),
            wasm_pki::CheckAlgorithm::RsaPssSha256 => "PS256".to_string(),
        })
    }

    /// The raw public key (P-256: uncompressed point; Ed25519: 32 bytes).
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Option<Vec<u8>> {
        self.check.as_ref().map(|c| c.public_key.clone())
    }

    /// The key as SubjectPublicKeyInfo DER.
    #[wasm_bindgen(getter)]
    pub fn spki(&self) -> Option<Vec<u8>> {
        self.check.as_ref().map(|c| c.spki.clone())
    }

    /// The signed bytes.
    #[wasm_bindgen(getter)]
    pub fn message(&self) -> Option<Vec<u8>> {
        self.check.as_ref().map(|c| c.message.clone())
    }

    /// The signature (P-256: r‖s, 64 bytes; Ed25519: 64 bytes).
    #[wasm_bindgen(getter)]
    pub fn signature(&self) -> Option<Vec<u8>> {
        self.check.as_ref().map(|c| c.signature.clone())
    }
}

/// A certificate built by the module for a CA key outside it (a WebCrypto `CryptoKey`): sign
/// `tbs` with that key and hand the signature to `assemble`.
#[wasm_bindgen]
pub struct UnsignedCertificate {
    tbs: wasm_pki::Tbs,
    /// The CA's public key (its kind says which signature form `assemble` takes).
    signer: wasm_pki::PublicKey,
    /// Verify the signature in `assemble` (a root, made once) or only check its form (every
    /// issued certificate: a P-256 verification in wasm would double the cost of each).
    verify: bool,
}

#[wasm_bindgen]
impl UnsignedCertificate {
    /// The certificate PEM, with the CA key's signature over `tbs` as WebCrypto gives it (P-256:
    /// r‖s; Ed25519: 64 bytes). Refused (`bad_signature`): a signature not of that form, and
    /// for a root one that does not verify; an issued certificate's signature is the signer's
    /// (WebCrypto's) and is not verified again here.
    pub fn assemble(&self, signature: &[u8]) -> Res<String> {
        if self.verify && self.signer.verify(&self.tbs.der, signature).is_err() {
            return Err(js_error(
                "bad_signature",
                "the signature is not the key's over this root",
            ));
        }
        let der = self
            .tbs
            .assemble_raw(signature, self.signer.kind())
            .map_err(|_| js_error("bad_signature", "not a signature of the CA key's form"))?;
        Ok(Certificate::from_der(der)?.to_pem())
    }
}

/// A self-signed root's TBS for a key outside the module: `options` as `createCa`'s, `spki` the
/// public key (WebCrypto's `exportKey("spki", publicKey)`). The algorithm is the key's.
#[wasm_bindgen(js_name = rootUnsigned)]
pub fn root_unsigned(options: JsValue, spki: &[u8]) -> Res<UnsignedCertificate> {
    let o: JsCaOptions = from_js("options", options)?;
    let public = outside_key(spki)?;
    let mut p = CaParams::new(&o.common_name);
    p.subject.organization = non_empty(o.organization);
    p.algorithm = match public.kind() {
        wasm_pki::KeyKind::Ed25519 => Algorithm::Ed25519,
        _ => Algorithm::P256,
    };
    if let Some(a) = o.algorithm {
        if a.parse::<Algorithm>()? != p.algorithm {
            return Err(js_error(
                "invalid_parameter",
                "options.algorithm is not the key's algorithm",
            ));
        }
    }
    if let Some(d) = o.validity_days {
        p.validity_secs = u64::from(d) * 86_400;
    }
    p.path_len = o.path_len;
    Ok(UnsignedCertificate {
        tbs: CertificateAuthority::root_unsigned(&p, &public, now()?, &mut rng())?,
        signer: public,
        verify: true,
    })
}

/// A CA from its certificate PEM (and chain) alone, for a key outside the module: it builds
/// certificates (`beginIssue`, `finishIssueUnsigned`) and never signs.
#[wasm_bindgen(js_name = loadCaCertificate)]
pub fn load_ca_certificate(cert_pem: &str) -> Res<Ca> {
    Ok(Ca {
        inner: CertificateAuthority::from_pem_public(cert_pem.as_bytes())?,
    })
}

/// Create a self-signed root CA: `{ commonName, organization?, algorithm?, validityDays?, pathLen? }`.
#[wasm_bindgen(js_name = createCa)]
pub fn create_ca(options: JsValue) -> Res<Ca> {
    let o: JsCaOptions = from_js("options", options)?;
    let mut p = CaParams::new(&o.common_name);
    p.subject.organization = non_empty(o.organization);
    if let Some(a) = o.algorithm {
        p.algorithm = a.parse()?;
    }
    if let Some(d) = o.validity_days {
        p.validity_secs = u64::from(d) * 86_400;
    }
    p.path_len = o.path_len;
    Ok(Ca {
        inner: CertificateAuthority::new_root(&p, now()?, &mut rng())?,
    })
}

/// Load a CA from its certificate PEM (optionally followed by its chain) and key PEM.
#[wasm_bindgen(js_name = loadCa)]
pub fn load_ca(cert_pem: &str, key_pem: &str, passphrase: Option<String>) -> Res<Ca> {
    let p = passphrase_bytes(passphrase);
    Ok(Ca {
        inner: CertificateAuthority::from_pem(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            p.as_deref(),
        )?,
    })
}

/// Verify a chain (leaf first, trusted root last), given as an array of PEMs or one bundle,
/// at `atTimeMs` (default now). Returns `{ subjects, validUntil }` or throws.
#[wasm_bindgen(js_name = verifyChain)]
pub fn verify_chain(pems: JsValue, at_time_ms: Option<f64>) -> Res<JsValue> {
    let mut certs = Vec::new();
    if let Some(s) = pems.as_string() {
        certs = Certificate::parse_all(s.as_bytes())?;
    } else if Array::is_array(&pems) {
        for v in Array::from(&pems).iter() {
            let s = v.as_string().ok_or_else(|| {
                js_error(
                    "invalid_parameter",
                    "verifyChain: every element must be a PEM string",
                )
            })?;
            certs.extend(Certificate::parse_all(s.as_bytes())?);
        }
    } else {
        return Err(js_error(
            "invalid_parameter",
            "verifyChain: expected a PEM string or an array of PEM strings",
        ));
    }
    let at = match at_time_ms {
        Some(ms) if ms.is_finite() => (ms / 1000.0).floor() as i64,
        Some(_) => {
            return Err(js_error(
                "invalid_parameter",
                "verifyChain: atTimeMs must be a finite number",
            ))
        }
        None => now()?.unix_timestamp(),
    };
    to_js(&wasm_pki::verify_chain(&certs, at)?)
}
