//! JavaScript bindings (feature `js`): the npm package's API. Entropy comes from WebCrypto through
//! getrandom and time from `Date`; everything else is the core as it is.

use js_sys::{Array, Date, Error as JsError, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::policy::{NameRules, SubjectSource};
use crate::{
    Algorithm, CaParams, Certificate, CertificateAuthority, CsrRequest, Error, IssueOptions,
    KeyEncryption, KeyPair, OffsetDateTime, ParsedCsr, Profile, SanName, Subject,
};

type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn now() -> Result<OffsetDateTime, JsValue> {
    let secs = (Date::now() / 1000.0).floor() as i64;
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| js_error("invalid_parameter", &e.to_string()))
}

/// A JS `Error` with a stable `code` property.
fn js_error(code: &str, message: &str) -> JsValue {
    let err = JsError::new(message);
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

impl From<Error> for JsValue {
    fn from(e: Error) -> Self {
        js_error(e.code(), &e.to_string())
    }
}

/// Requests and profiles go through JSON so that unknown fields (a typo in a policy) are refused:
/// serde-wasm-bindgen would silently skip them.
fn from_js<T: for<'de> Deserialize<'de>>(what: &str, v: JsValue) -> Result<T, JsValue> {
    let bad = |m: String| js_error("invalid_parameter", &format!("{what}: {m}"));
    if !v.is_object() || Array::is_array(&v) {
        return Err(bad("expected an object".into()));
    }
    let text = js_sys::JSON::stringify(&v)
        .map_err(|_| bad("not serialisable as JSON".into()))?
        .as_string()
        .unwrap_or_default();
    if text.len() > crate::MAX_INPUT_BYTES {
        return Err(bad("too large".into()));
    }
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error("encoding", &e.to_string()))
}

fn passphrase_bytes(p: Option<String>) -> Option<Vec<u8>> {
    p.filter(|s| !s.is_empty()).map(String::into_bytes)
}

/// PKCS#8 PEM of `key`, encrypted (scrypt, AES-256-CBC) when a non-empty passphrase is given.
fn private_key_pem(key: &KeyPair, passphrase: Option<String>) -> Result<String, JsValue> {
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
    pub fn private_key_pem(&self, passphrase: Option<String>) -> Result<String, JsValue> {
        private_key_pem(&self.inner, passphrase)
    }

    /// The public key as a JWK object.
    #[wasm_bindgen(js_name = publicKeyJwk)]
    pub fn public_key_jwk(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.public_key().to_jwk())
    }

    /// Sign bytes: r‖s for P-256 (as WebCrypto's ECDSA with SHA-256), 64 bytes for Ed25519.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.inner.sign_raw(data)
    }

    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    #[wasm_bindgen(js_name = fingerprint)]
    pub fn fingerprint(&self) -> String {
        crate::pem::hex(&self.inner.public_key().fingerprint_sha256())
    }
}

/// Generate a key: `'p256'` or `'ed25519'`.
#[wasm_bindgen(js_name = generateKey)]
pub fn generate_key(algorithm: &str) -> Result<Key, JsValue> {
    let alg: Algorithm = algorithm.parse()?;
    Ok(Key {
        inner: KeyPair::generate(alg, &mut rng()),
    })
}

/// Read a PKCS#8 PEM key (encrypted ones need the passphrase).
#[wasm_bindgen(js_name = importKey)]
pub fn import_key(pem: &str, passphrase: Option<String>) -> Result<Key, JsValue> {
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
pub fn verify_signature(
    public_key_pem: &str,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, JsValue> {
    let key = crate::PublicKey::from_spki(public_key_pem.as_bytes())?;
    Ok(key.verify(data, signature).is_ok())
}

/// Build a CSR PEM for `key` from `{ commonName, organization?, dnsNames?, ipAddresses?, uris?, emails? }`.
#[wasm_bindgen(js_name = createCsr)]
pub fn create_csr(key: &Key, request: JsValue) -> Result<String, JsValue> {
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
    let req = CsrRequest {
        subject: Subject {
            common_name: non_empty(r.common_name),
            organization: non_empty(r.organization),
            organizational_unit: non_empty(r.organizational_unit),
            country: non_empty(r.country),
            state: non_empty(r.state),
            locality: non_empty(r.locality),
        },
        names,
    };
    Ok(req.sign(&key.inner)?.to_pem())
}

/// Describe a certificate or CSR (PEM) as a plain object.
#[wasm_bindgen]
pub fn inspect(pem: &str) -> Result<JsValue, JsValue> {
    to_js(&crate::inspect(pem.as_bytes())?)
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

/// A JS profile is the core's profile (same camelCase fields) with `{}` meaning: accept the
/// CSR's subject and names as they are (the caller holds the CA key), default lifetime, a
/// server+client leaf. Two extra fields say what the caller vouches for: `identity`, `lifetimeSecs`.
/// Fields given replace those of [`Profile::accept_csr`]; unknown fields are refused.
fn profile_from_js(value: JsValue) -> Result<(Profile, IssueOptions), JsValue> {
    use serde_json::{Map, Value};
    let bad = |m: String| js_error("invalid_parameter", &format!("profile: {m}"));
    let mut given: Map<String, Value> = if value.is_undefined() || value.is_null() {
        Map::new()
    } else {
        from_js("profile", value)?
    };
    let identity = match given.remove("identity") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SanName::parse(&s)?),
        Some(_) => return Err(bad("identity must be a string".into())),
    };
    let lifetime_secs = match given.remove("lifetimeSecs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("lifetimeSecs must be a positive whole number".into()))?,
        ),
    };
    let base = Profile::accept_csr();
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&base) else {
        return Err(bad("internal: the base profile is not an object".into()));
    };
    if given.contains_key("spiffe") {
        // An SVID profile takes names from the SPIFFE rule, and the issuer sets the subject.
        merged.insert(
            "names".into(),
            serde_json::to_value(NameRules::default()).unwrap_or_default(),
        );
        merged.insert(
            "subjectFrom".into(),
            serde_json::to_value(SubjectSource::Identity).unwrap_or_default(),
        );
    }
    if let (Some(max), false) = (
        given.get("maxLifetimeSecs").and_then(Value::as_u64),
        given.contains_key("defaultLifetimeSecs"),
    ) {
        merged.insert(
            "defaultLifetimeSecs".into(),
            base.default_lifetime_secs.min(max).into(),
        );
    }
    merged.extend(given);
    let profile: Profile =
        serde_json::from_value(Value::Object(merged)).map_err(|e| bad(e.to_string()))?;
    Ok((
        profile,
        IssueOptions {
            identity,
            lifetime_secs,
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
    pub fn private_key_pem(&self, passphrase: Option<String>) -> Result<String, JsValue> {
        private_key_pem(self.inner.key(), passphrase)
    }

    /// Issue a leaf for a CSR (PEM) under `profile`; returns the certificate PEM.
    pub fn issue(&self, csr_pem: &str, profile: JsValue) -> Result<String, JsValue> {
        let (profile, opts) = profile_from_js(profile)?;
        let csr = ParsedCsr::parse(csr_pem.as_bytes())?;
        let issued = self
            .inner
            .issue(&csr, &profile, &opts, now()?, &mut rng())?;
        Ok(issued.certificate.to_pem())
    }
}

/// Create a self-signed root CA: `{ commonName, organization?, algorithm?, validityDays?, pathLen? }`.
#[wasm_bindgen(js_name = createCa)]
pub fn create_ca(options: JsValue) -> Result<Ca, JsValue> {
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
pub fn load_ca(cert_pem: &str, key_pem: &str, passphrase: Option<String>) -> Result<Ca, JsValue> {
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
pub fn verify_chain(pems: JsValue, at_time_ms: Option<f64>) -> Result<JsValue, JsValue> {
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
    to_js(&crate::verify_chain(&certs, at)?)
}
