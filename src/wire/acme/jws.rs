//! The flattened JWS every ACME request is (RFC 8555 §6.2, RFC 7515 §7.2.2), the account keys
//! its `jwk` carries, their RFC 7638 thumbprints, and the inner JWS of a key change (§7.3.5).
//!
//! Decoding checks everything but the signature's arithmetic: [`AcmeJws::signature_check`]
//! hands that to the host's `ring` (or [`AcmeJws::verify_in_core`] does it here, for the keys
//! the core knows). Whether the nonce is fresh, the URL the one requested, and the `kid` an
//! account, is for the host.
//!
//! JSON is read with duplicate members refused at every level (serde_json alone keeps the last
//! one, so two readers could disagree on what was signed).

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::problem::{AcmeError, ProblemKind};
use crate::public_key::{KeyKind, PublicKey, RSA_MAX_BITS};
use crate::signature::{prepare, CheckAlgorithm, Scheme, SignatureCheck};

/// Largest request body accepted, before any decoding.
pub const MAX_JWS_BYTES: usize = 64 * 1024;
/// Longest `protected` member (base64url text): room for an RSA-4096 `jwk`.
pub const MAX_PROTECTED_BYTES: usize = 8 * 1024;
/// Longest `nonce`.
pub const MAX_NONCE_BYTES: usize = 128;
/// Longest `url` or `kid` (an account URL).
pub const MAX_URL_BYTES: usize = 2048;
/// Longest `signature` member (base64url text of an RSA-4096 signature, 683 characters).
const MAX_SIGNATURE_B64: usize = 700;
/// What the core's signature checks call an ACME request in errors.
const WHAT: &str = "ACME request";

/// The JWS algorithms accepted for ACME requests. `none` and MACs are never accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// ECDSA P-256 SHA-256, r‖s.
    Es256,
    /// ECDSA P-384 SHA-384, r‖s (verified by the host only).
    Es384,
    /// RSA PKCS#1 v1.5 SHA-256.
    Rs256,
    /// RSASSA-PSS SHA-256, MGF1-SHA-256, 32-byte salt.
    Ps256,
    /// Ed25519 (not Ed448).
    EdDsa,
}

impl JwsAlgorithm {
    /// The `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Es384 => "ES384",
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Read an `alg`; anything else is `badSignatureAlgorithm`.
    pub fn parse(alg: &str) -> Result<Self, AcmeError> {
        Ok(match alg {
            "ES256" => JwsAlgorithm::Es256,
            "ES384" => JwsAlgorithm::Es384,
            "RS256" => JwsAlgorithm::Rs256,
            "PS256" => JwsAlgorithm::Ps256,
            "EdDSA" => JwsAlgorithm::EdDsa,
            other => {
                let why = if other.eq_ignore_ascii_case("none") {
                    "unsigned requests (alg none) are never accepted"
                } else if other.starts_with("HS") {
                    "MAC algorithms are not accepted for requests"
                } else {
                    "not supported"
                };
                return Err(AcmeError::new(
                    ProblemKind::BadSignatureAlgorithm,
                    format!(
                        "alg {:?}: {why} (supported: ES256, ES384, RS256, PS256, EdDSA)",
                        clip(other)
                    ),
                ));
            }
        })
    }
}

/// A string cut short for an error message.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn bad_key(detail: impl Into<String>) -> AcmeError {
    AcmeError::new(ProblemKind::BadPublicKey, detail)
}

/// DER of a P-384 SubjectPublicKeyInfo up to the uncompressed point (id-ecPublicKey, secp384r1,
/// BIT STRING of 98 bytes).
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// The same for P-256 (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The same for Ed25519 (id-Ed25519, BIT STRING of 33 bytes).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The order of P-384, big-endian: r and s must be below it.
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

#[derive(Clone, Debug)]
enum KeyInner {
    /// P-256, Ed25519 or RSA: validated by the core.
    Core(Box<PublicKey>),
    /// P-384, the uncompressed point (97 bytes). The core has no P-384 arithmetic: the point is
    /// checked to be on the curve by the verifier (`ring` refuses a point that is not).
    P384(Vec<u8>),
}

/// An account key read from a JWK: P-256, P-384, Ed25519 or RSA (2048 to 4096 bits, odd
/// exponent from 3 to 2^33 − 1). Two keys are equal when their RFC 7638 canonical JWKs are, so
/// comparing keys ignores member order, extra members and how the JWK was written.
#[derive(Clone, Debug)]
pub struct AccountKey {
    inner: KeyInner,
    /// The RFC 7638 canonical JSON (required members only, sorted, no whitespace).
    canonical: String,
}

impl PartialEq for AccountKey {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for AccountKey {}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn canonical_ec(crv: &str, x: &[u8], y: &[u8]) -> String {
    format!(
        r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
        b64(x),
        b64(y)
    )
}

fn canonical_rsa(n: &[u8], e: &[u8]) -> String {
    format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
}

fn canonical_okp(x: &[u8]) -> String {
    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
}

/// The PKCS#1 RSAPublicKey and the SubjectPublicKeyInfo DER of (n, e).
fn rsa_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let pkcs1 = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(n, true);
            w.next().write_bigint_bytes(e, true);
        })
    });
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                        1, 2, 840, 113549, 1, 1, 1,
                    ]));
                w.next().write_null();
            });
            w.next().write_bitvec_bytes(&pkcs1, pkcs1.len() * 8);
        })
    })
}

impl AccountKey {
    /// Read a JWK (RFC 7517) as an account key. Members other than the required ones are
    /// ignored, except private-key members, which are refused. Coordinates must have their full
    /// length and RSA integers no leading zero (RFC 7518 §6), so each key has one JWK form.
    /// Refusals are `badPublicKey`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, AcmeError> {
        let obj = jwk
            .as_object()
            .ok_or_else(|| bad_key("the jwk is not a JSON object"))?;
        if let Some(private) = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .find(|m| obj.contains_key(**m))
        {
            return Err(bad_key(format!(
                "the jwk carries private key material ({private}); send the public key only"
            )));
        }
        let text = |name: &str| -> Result<&str, AcmeError> {
            match obj.get(name) {
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(bad_key(format!("jwk member {name} is not a string"))),
                None => Err(bad_key(format!("the jwk has no {name}"))),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, AcmeError> {
            let s = text(name)?;
            // RSA-4096's n is 683 characters; nothing longer is a key we take.
            if s.len() > 1024 {
                return Err(bad_key(format!("jwk member {name} is too long")));
            }
            Base64UrlUnpadded::decode_vec(s)
                .map_err(|_| bad_key(format!("jwk member {name} is not unpadded base64url")))
        };
        let sized = |name: &str, len: usize| -> Result<Vec<u8>, AcmeError> {
            let v = bytes(name)?;
            if v.len() != len {
                return Err(bad_key(format!(
                    "jwk member {name} is {} bytes, not {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let core = |spki: Vec<u8>, canonical: String| -> Result<Self, AcmeError> {
            let key = PublicKey::from_spki(&spki)
                .map_err(|e| AcmeError::from_core(ProblemKind::BadPublicKey, &e))?;
            Ok(AccountKey {
                inner: KeyInner::Core(Box::new(key)),
                canonical,
            })
        };
        match text("kty")? {
            "EC" => match text("crv")? {
                "P-256" => {
                    let (x, y) = (sized("x", 32)?, sized("y", 32)?);
                    let mut spki = P256_SPKI_PREFIX.to_vec();
                    spki.push(4);
                    spki.extend_from_slice(&x);
                    spki.extend_from_slice(&y);
                    core(spki, canonical_ec("P-256", &x, &y))
                }
                "P-384" => {
                    let (x, y) = (sized("x", 48)?, sized("y", 48)?);
                    let mut point = vec![4u8];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Ok(AccountKey {
                        inner: KeyInner::P384(point),
                        canonical: canonical_ec("P-384", &x, &y),
                    })
                }
                crv => Err(bad_key(format!(
                    "EC keys on curve {:?} are not supported (P-256, P-384)",
                    clip(crv)
                ))),
            },
            "OKP" => match text("crv")? {
                "Ed25519" => {
                    let x = sized("x", 32)?;
                    let mut spki = ED25519_SPKI_PREFIX.to_vec();
                    spki.extend_from_slice(&x);
                    core(spki, canonical_okp(&x))
                }
                crv => Err(bad_key(format!(
                    "OKP keys on curve {:?} are not supported (Ed25519)",
                    clip(crv)
                ))),
            },
            "RSA" => {
                let (n, e) = (bytes("n")?, bytes("e")?);
                if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
                    return Err(bad_key(
                        "RSA n and e must be non-empty with no leading zero byte",
                    ));
                }
                if n.len() > RSA_MAX_BITS / 8 {
                    return Err(bad_key(format!(
                        "RSA keys above {RSA_MAX_BITS} bits are not accepted"
                    )));
                }
                // What ring requires: an odd modulus, an odd exponent from 3 to 2^33 − 1.
                let e_value = (e.len() <= 5)
                    .then(|| e.iter().fold(0u64, |acc, b| acc * 256 + u64::from(*b)))
                    .filter(|v| (3..1 << 33).contains(v) && v % 2 == 1);
                if e_value.is_none() {
                    return Err(bad_key(
                        "the RSA exponent must be odd, from 3 to 2^33 - 1 (usually 65537)",
                    ));
                }
                if n.last().is_some_and(|b| b % 2 == 0) {
                    return Err(bad_key("the RSA modulus is even"));
                }
                core(rsa_der(&n, &e), canonical_rsa(&n, &e))
            }
            kty => Err(bad_key(format!(
                "key type {:?} is not supported (EC, OKP, RSA)",
                clip(kty)
            ))),
        }
    }

    /// The account key for a key the core already holds (e.g. one the host stored as SPKI).
    pub fn from_public_key(key: &PublicKey) -> Self {
        let j = key.to_jwk();
        let dec = |v: Option<String>| {
            v.and_then(|s| Base64UrlUnpadded::decode_vec(&s).ok())
                .unwrap_or_default()
        };
        let canonical = match key.kind() {
            KeyKind::P256 => canonical_ec("P-256", &dec(j.x), &dec(j.y)),
            KeyKind::Ed25519 => canonical_okp(&dec(j.x)),
            KeyKind::Rsa => canonical_rsa(&dec(j.n), &dec(j.e)),
        };
        AccountKey {
            inner: KeyInner::Core(Box::new(key.clone())),
            canonical,
        }
    }

    /// The RFC 7638 canonical JWK: the required members in lexicographic order, no whitespace.
    /// Also a storage form: [`AccountKey::from_jwk`] reads it back to an equal key.
    pub fn canonical_jwk(&self) -> &str {
        &self.canonical
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url), as key authorizations use it.
    pub fn thumbprint(&self) -> String {
        b64(&Sha256::digest(self.canonical.as_bytes()))
    }

    /// A short name: `P-256`, `P-384`, `Ed25519`, `RSA-2048`.
    pub fn name(&self) -> String {
        match &self.inner {
            KeyInner::Core(k) => k.name(),
            KeyInner::P384(_) => "P-384".into(),
        }
    }

    /// The key as the core's [`PublicKey`]; `None` for P-384, which the core does not support.
    pub fn public_key(&self) -> Option<&PublicKey> {
        match &self.inner {
            KeyInner::Core(k) => Some(k.as_ref()),
            KeyInner::P384(_) => None,
        }
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        match &self.inner {
            KeyInner::Core(k) => k.spki_der().to_vec(),
            KeyInner::P384(point) => [&P384_SPKI_PREFIX[..], point].concat(),
        }
    }

    /// Whether `alg` signs with a key of this type.
    pub fn fits(&self, alg: JwsAlgorithm) -> bool {
        match (&self.inner, alg) {
            (KeyInner::P384(_), JwsAlgorithm::Es384) => true,
            (KeyInner::Core(k), alg) => matches!(
                (k.kind(), alg),
                (KeyKind::P256, JwsAlgorithm::Es256)
                    | (KeyKind::Ed25519, JwsAlgorithm::EdDsa)
                    | (KeyKind::Rsa, JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256)
            ),
            _ => false,
        }
    }

    /// The signature length `alg` gives with this key (RSA: the modulus length).
    fn signature_len(&self, alg: JwsAlgorithm) -> usize {
        match (&self.inner, alg) {
            (KeyInner::Core(k), JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256) => k.bits().div_ceil(8),
            _ => fixed_signature_len(alg).unwrap_or(0),
        }
    }
}

/// The signature length of the fixed-size algorithms; `None` for RSA.
fn fixed_signature_len(alg: JwsAlgorithm) -> Option<usize> {
    match alg {
        JwsAlgorithm::Es256 | JwsAlgorithm::EdDsa => Some(64),
        JwsAlgorithm::Es384 => Some(96),
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => None,
    }
}

/// Who signed a request: a new key (`jwk`: newAccount, revokeCert by certificate key) or an
/// account (`kid`: its URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwsSigner {
    /// The key itself.
    Jwk(AccountKey),
    /// The account URL; the host looks up its key.
    Kid(String),
}

/// Which JWS is being read: a request (nonce required) or the inner JWS of a key change (no
/// nonce, `jwk` required).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Request,
    KeyChangeInner,
}

/// A decoded ACME request: the protected header checked, the payload and signature decoded,
/// the signature's length right for the algorithm. The signature itself is not verified yet.
#[derive(Clone, Debug)]
pub struct AcmeJws {
    alg: JwsAlgorithm,
    nonce: Option<String>,
    url: String,
    signer: JwsSigner,
    payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Reads JSON into a [`Value`], refusing a member name that appears twice in an object.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(Strict(e)) = seq.next_element()? {
            v.push(e);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "member {:?} appears twice",
                    clip(&k)
                )));
            }
            let Strict(v) = map.next_value()?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// Parse JSON text, refusing duplicate members; `what` names it in errors.
pub(super) fn parse_json(bytes: &[u8], what: &str) -> Result<Value, AcmeError> {
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| AcmeError::malformed(format!("{what} is not valid JSON: {e}")))
}

/// Decode unpadded base64url; `what` names it in errors.
pub(super) fn base64url(s: &str, what: &str) -> Result<Vec<u8>, AcmeError> {
    Base64UrlUnpadded::decode_vec(s)
        .map_err(|_| AcmeError::malformed(format!("{what} is not unpadded base64url")))
}

/// The three members of a flattened JWS object, refusing the general form, an unprotected
/// header and any other member.
pub(super) fn flattened_parts<'a>(
    v: &'a Value,
    what: &str,
) -> Result<(&'a str, &'a str, &'a str), AcmeError> {
    let obj = v
        .as_object()
        .ok_or_else(|| AcmeError::malformed(format!("{what} is not a JSON object")))?;
    if obj.contains_key("signatures") {
        return Err(AcmeError::malformed(format!(
            "{what} uses the general JWS serialization; ACME takes the flattened form only"
        )));
    }
    if obj.contains_key("header") {
        return Err(AcmeError::malformed(format!(
            "{what} has an unprotected header; ACME allows only the protected one"
        )));
    }
    if let Some(k) = obj
        .keys()
        .find(|k| !["protected", "payload", "signature"].contains(&k.as_str()))
    {
        return Err(AcmeError::malformed(format!(
            "{what} has an unknown member {:?}",
            clip(k)
        )));
    }
    let member = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(AcmeError::malformed(format!(
            "{what}: {name} is not a string"
        ))),
        None => Err(AcmeError::malformed(format!("{what} has no {name}"))),
    };
    Ok((
        member("protected")?,
        member("payload")?,
        member("signature")?,
    ))
}

/// The protected header's members that change how a JWS is read, refused (RFC 8555 §6.2
/// forbids the unencoded payload; `crit` would name extensions this codec does not know).
pub(super) fn refuse_extensions(header: &Map<String, Value>) -> Result<(), AcmeError> {
    if header.contains_key("crit") {
        return Err(AcmeError::malformed(
            "crit names JWS extensions this server does not support",
        ));
    }
    match header.get("b64") {
        None | Some(Value::Bool(true)) => Ok(()),
        Some(_) => Err(AcmeError::malformed(
            "the unencoded payload option (b64) is not allowed",
        )),
    }
}

/// A string member of the protected header, 1 to `max` printable ASCII characters.
pub(super) fn header_text<'a>(
    header: &'a Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<&'a str>, AcmeError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => {
            if s.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(Some(s))
            } else {
                Err(AcmeError::malformed(format!(
                    "{name} holds spaces, control or non-ASCII characters"
                )))
            }
        }
        Some(Value::String(_)) => Err(AcmeError::malformed(format!(
            "{name} must have 1 to {max} characters"
        ))),
        Some(_) => Err(AcmeError::malformed(format!("{name} is not a string"))),
    }
}

impl AcmeJws {
    /// Decode a request body (`application/jose+json`): a flattened JWS whose protected header
    /// has `alg`, `nonce`, `url` and exactly one of `jwk` and `kid`.
    pub fn decode(body: &[u8]) -> Result<Self, AcmeError> {
        if body.len() > MAX_JWS_BYTES {
            return Err(AcmeError::malformed(format!(
                "the request body is {} bytes, more than {MAX_JWS_BYTES}",
                body.len()
            )));
        }
        Self::from_value(&parse_json(body, "the request body")?, Role::Request)
    }

    fn from_value(v: &Value, role: Role) -> Result<Self, AcmeError> {
        let what = match role {
            Role::Request => "the request",
            Role::KeyChangeInner => "the inner JWS",
        };
        let (p64, payload64, s64) = flattened_parts(v, what)?;
        if p64.len() > MAX_PROTECTED_BYTES {
            return Err(AcmeError::malformed(format!(
                "the protected header is longer than {MAX_PROTECTED_BYTES} characters"
            )));
        }
        if s64.len() > MAX_SIGNATURE_B64 {
            return Err(AcmeError::malformed("the signature is too long"));
        }
        let protected = base64url(p64, "the protected header")?;
        let payload = base64url(payload64, "the payload")?;
        let signature = base64url(s64, "the signature")?;
        let header = match parse_json(&protected, "the protected header")? {
            Value::Object(m) => m,
            _ => {
                return Err(AcmeError::malformed(
                    "the protected header is not a JSON object",
                ))
            }
        };
        let alg = match header.get("alg") {
            Some(Value::String(a)) => JwsAlgorithm::parse(a)?,
            Some(_) => return Err(AcmeError::malformed("alg is not a string")),
            None => return Err(AcmeError::malformed("the protected header has no alg")),
        };
        refuse_extensions(&header)?;
        let nonce = header_text(&header, "nonce", MAX_NONCE_BYTES)?;
        let nonce = match (role, nonce) {
            (Role::Request, None) => {
                return Err(AcmeError::new(
                    ProblemKind::BadNonce,
                    "the protected header has no nonce",
                ))
            }
            (Role::Request, Some(n)) => {
                // A nonce is base64url (RFC 8555 §6.5.1); its freshness is the host's to check.
                base64url(n, "the nonce")?;
                Some(n.to_string())
            }
            (Role::KeyChangeInner, None) => None,
            (Role::KeyChangeInner, Some(_)) => {
                return Err(AcmeError::malformed(
                    "the inner JWS of a key change must not have a nonce",
                ))
            }
        };
        let url = header_text(&header, "url", MAX_URL_BYTES)?
            .ok_or_else(|| AcmeError::malformed("the protected header has no url"))?
            .to_string();
        let signer = match (header.get("jwk"), header.get("kid")) {
            (Some(_), Some(_)) => {
                return Err(AcmeError::malformed(
                    "the protected header has both jwk and kid; exactly one is allowed",
                ))
            }
            (None, None) => {
                return Err(AcmeError::malformed(
                    "the protected header has neither jwk nor kid",
                ))
            }
            (Some(jwk), None) => JwsSigner::Jwk(AccountKey::from_jwk(jwk)?),
            (None, Some(_)) => JwsSigner::Kid(
                header_text(&header, "kid", MAX_URL_BYTES)?
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        if role == Role::KeyChangeInner && matches!(signer, JwsSigner::Kid(_)) {
            return Err(AcmeError::malformed(
                "the inner JWS of a key change must carry the new key as jwk, not a kid",
            ));
        }
        let jws = AcmeJws {
            alg,
            nonce,
            url,
            signer,
            payload,
            signing_input: format!("{p64}.{payload64}"),
            signature,
        };
        match &jws.signer {
            JwsSigner::Jwk(key) => jws.check_key(key)?,
            JwsSigner::Kid(_) => {
                let ok = match fixed_signature_len(alg) {
                    Some(len) => jws.signature.len() == len,
                    None => (256..=RSA_MAX_BITS / 8).contains(&jws.signature.len()),
                };
                if !ok {
                    return Err(jws.wrong_length());
                }
            }
        }
        Ok(jws)
    }

    fn wrong_length(&self) -> AcmeError {
        AcmeError::malformed(format!(
            "a {} signature of {} bytes has the wrong length",
            self.alg.name(),
            self.signature.len()
        ))
    }

    /// The algorithm fits `key` and the signature has the length it gives.
    fn check_key(&self, key: &AccountKey) -> Result<(), AcmeError> {
        if !key.fits(self.alg) {
            return Err(AcmeError::new(
                ProblemKind::BadSignatureAlgorithm,
                format!(
                    "alg {} does not fit the account key ({})",
                    self.alg.name(),
                    key.name()
                ),
            ));
        }
        if self.signature.len() != key.signature_len(self.alg) {
            return Err(self.wrong_length());
        }
        Ok(())
    }

    /// The `alg`.
    pub fn alg(&self) -> JwsAlgorithm {
        self.alg
    }

    /// The `nonce` (always present in a request; absent in a key change's inner JWS).
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The `url`: the host checks it is the URL the request was sent to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Who signed: a `jwk` or an account's `kid`.
    pub fn signer(&self) -> &JwsSigner {
        &self.signer
    }

    /// The `jwk`, when the request carries one.
    pub fn jwk(&self) -> Option<&AccountKey> {
        match &self.signer {
            JwsSigner::Jwk(k) => Some(k),
            JwsSigner::Kid(_) => None,
        }
    }

    /// The `kid` (account URL), when the request names one.
    pub fn kid(&self) -> Option<&str> {
        match &self.signer {
            JwsSigner::Kid(k) => Some(k),
            JwsSigner::Jwk(_) => None,
        }
    }

    /// The payload bytes (empty for POST-as-GET).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether this is a POST-as-GET: the payload is the empty string (not `{}`, which is `e30`).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    /// The payload as JSON (duplicate members refused); a POST-as-GET is refused.
    pub fn payload_json(&self) -> Result<Value, AcmeError> {
        if self.is_post_as_get() {
            return Err(AcmeError::malformed(
                "this request needs a payload; an empty one is a POST-as-GET",
            ));
        }
        parse_json(&self.payload, "the payload")
    }

    /// What the signature covers: `protected.payload`, as sent (ASCII).
    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }

    /// The signature bytes (length already checked for the algorithm).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The pieces the host verifies with `ring`, for a request carrying its `jwk`. A `kid`
    /// request needs the account's key: [`AcmeJws::signature_check_with`].
    pub fn signature_check(&self) -> Result<SignatureCheck, AcmeError> {
        match &self.signer {
            JwsSigner::Jwk(key) => self.signature_check_with(key),
            JwsSigner::Kid(_) => Err(AcmeError::malformed(
                "a kid request is checked with the account's stored key",
            )),
        }
    }

    /// The pieces the host verifies with `ring`, with `key` (the account's stored key for a
    /// `kid` request). Refused: an algorithm that does not fit the key (`badSignatureAlgorithm`),
    /// a signature whose encoding is not strict (r or s out of range, a non-canonical Ed25519
    /// signature, an RSA signature not as long as the modulus).
    pub fn signature_check_with(&self, key: &AccountKey) -> Result<SignatureCheck, AcmeError> {
        self.check_key(key)?;
        let msg = self.signing_input.as_bytes();
        match &key.inner {
            KeyInner::Core(pk) => {
                let prepared = prepare(scheme(self.alg)?, pk, &self.signature, WHAT)
                    .map_err(|e| AcmeError::from_core(ProblemKind::Malformed, &e))?;
                prepared.check(pk, msg).ok_or_else(|| {
                    AcmeError::new(ProblemKind::ServerInternal, "no outside check for this key")
                })
            }
            KeyInner::P384(point) => {
                let in_range =
                    |half: &[u8]| half.iter().any(|b| *b != 0) && half < P384_ORDER.as_slice();
                let (r, s) = self.signature.split_at(48);
                if !in_range(r) || !in_range(s) {
                    return Err(AcmeError::from_core(
                        ProblemKind::Malformed,
                        &crate::Error::BadSignature(WHAT),
                    ));
                }
                Ok(SignatureCheck {
                    algorithm: CheckAlgorithm::EcdsaP384Sha384,
                    public_key: point.clone(),
                    spki: key.spki_der(),
                    message: msg.to_vec(),
                    signature: self.signature.clone(),
                })
            }
        }
    }

    /// Verify the signature in the core, with `key` (the `jwk`, or the account's key for a
    /// `kid` request): for a host without `ring`. P-384 keys are verified by the host only
    /// (`badSignatureAlgorithm` here). A signature that does not verify is `malformed`.
    pub fn verify_in_core(&self, key: &AccountKey) -> Result<(), AcmeError> {
        self.check_key(key)?;
        let pk = key.public_key().ok_or_else(|| {
            AcmeError::new(
                ProblemKind::BadSignatureAlgorithm,
                "ES384 is verified by the host only",
            )
        })?;
        prepare(scheme(self.alg)?, pk, &self.signature, WHAT)
            .and_then(|p| p.verify(pk, self.signing_input.as_bytes()))
            .map_err(|e| AcmeError::from_core(ProblemKind::Malformed, &e))
    }
}

fn scheme(alg: JwsAlgorithm) -> Result<Scheme, AcmeError> {
    Ok(match alg {
        JwsAlgorithm::Es256 => Scheme::EcdsaP256Sha256Fixed,
        JwsAlgorithm::EdDsa => Scheme::Ed25519,
        JwsAlgorithm::Rs256 => Scheme::RsaPkcs1Sha256,
        JwsAlgorithm::Ps256 => Scheme::RsaPssSha256 { salt_len: 32 },
        JwsAlgorithm::Es384 => {
            return Err(AcmeError::new(
                ProblemKind::BadSignatureAlgorithm,
                "ES384 needs a P-384 key",
            ))
        }
    })
}

/// A decoded key change (RFC 8555 §7.3.5): the outer request is signed by the account's current
/// key (`kid`), its payload a JWS signed by the new key (`jwk`, no nonce, the same `url`) whose
/// payload names the account and its current key.
#[derive(Clone, Debug)]
pub struct KeyChange {
    inner: AcmeJws,
    account: String,
    old_key: AccountKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChangePayload {
    account: String,
    old_key: Value,
}

impl KeyChange {
    /// Decode the key change carried by `outer` and check what needs no stored state: the inner
    /// JWS's form, its `url` equal to the outer one, its `account` equal to the outer `kid`,
    /// `oldKey` a valid key other than the new one. Left to the host: the outer signature with
    /// the stored key, [`KeyChange::old_key_matches`] against it, the inner signature
    /// ([`KeyChange::signature_check`]), and that no other account has the new key.
    pub fn decode(outer: &AcmeJws) -> Result<Self, AcmeError> {
        let kid = outer.kid().ok_or_else(|| {
            AcmeError::malformed("a key change is signed by the account's current key, with kid")
        })?;
        let inner = AcmeJws::from_value(&outer.payload_json()?, Role::KeyChangeInner)?;
        if inner.url != outer.url {
            return Err(AcmeError::malformed(
                "the inner JWS's url is not the outer request's url",
            ));
        }
        let payload: KeyChangePayload = serde_json::from_value(inner.payload_json()?)
            .map_err(|e| AcmeError::malformed(format!("the key change payload: {e}")))?;
        if payload.account != kid {
            return Err(AcmeError::malformed(
                "the key change names another account than the one that signed it",
            ));
        }
        let old_key = AccountKey::from_jwk(&payload.old_key)?;
        if inner.jwk() == Some(&old_key) {
            return Err(AcmeError::malformed("the new key is the old key"));
        }
        Ok(KeyChange {
            inner,
            account: payload.account,
            old_key,
        })
    }

    /// The new key (the inner JWS's `jwk`).
    pub fn new_key(&self) -> &AccountKey {
        match &self.inner.signer {
            JwsSigner::Jwk(k) => k,
            // decode() refuses an inner JWS with a kid.
            JwsSigner::Kid(_) => &self.old_key,
        }
    }

    /// The `oldKey` the payload names.
    pub fn old_key(&self) -> &AccountKey {
        &self.old_key
    }

    /// The account URL the payload names (equal to the outer `kid`).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The inner JWS.
    pub fn inner(&self) -> &AcmeJws {
        &self.inner
    }

    /// Whether `oldKey` is the account's stored key (compared as normalised JWKs).
    pub fn old_key_matches(&self, stored: &AccountKey) -> bool {
        self.old_key == *stored
    }

    /// The pieces the host verifies: the inner JWS's signature by the new key.
    pub fn signature_check(&self) -> Result<SignatureCheck, AcmeError> {
        self.inner.signature_check()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::{Algorithm, KeyPair, SeedRng};
    use serde_json::json;

    /// A P-384 key (PKCS#8) and an RSA-2048 key, made with openssl, signed with by ring (through
    /// rustls) since the core signs with neither.
    const P384_PKCS8: &str = "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBlJfkMjB6Fi22eQ/+d/0Di3ESN6QmebaKID3guuvEy9uHtLdpMQ03x8JNifPYATzChZANiAASjH2Z55FyCJ6s/fhXn7uqMeQYLbXq2cpq8HvO8jPG1Y98UlRPhkGC1E0fwOFsnEGyDO/IJr0XsETAESpFIeAdkCwyQvG+OuzhVOYjOGR67PgSyh4phtE28t58jrq4kVAM=";
    const RSA_PKCS8: &str = "
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqmpRSgaNOgKEV
        HWJDxc2r3oIL6E7Kn4O3mHfu3Yh2bxhObYjyp24MeDhVECbsIQQM9cOsP1mp23bn
        Z/30nbnRAJ82bRj8NIw1zq34nwFqGYfNt8rBA+6EBRm0hidDFnrwsTrnFU8af6UG
        LkIcv2HVoblpHHzGEJnKvridH4E1f1yZUAqMZ4yPN76RJB21VrfCoDiKzFXPm3WP
        KJKp4zWym6uWDvk09hwWr0K1v+iryG6Iukt0hV4OBnNiOkDbzKp8oxFG4ak0tca5
        R9qu2tmrt7/RngIo4TRm3Q5QXRNVFgve1pntjOWzEPf51pycUn5mUBudF7vqlvBo
        ZE9z5EoBAgMBAAECggEABfQxbfRemHxDuDgXeFRcZP2gcz2ZwQIyd2387YX8tQlp
        LeouXS2RA81kReUI6V+47kzbaypQ0kKO/UId/532NgA8DjWzfrBvc5HxdLDz5y8v
        Pp4wl24wMkT39zAMCbrXR97KNqCsleOo2jTeE3ZtudC+5uywFrzN6TX2Z8Fe4dja
        mdPDcTF9CTly/VsUIjFZYDBnGWyEf/kXKYqYpljSPQz389RGu+51wnszlrmfq3yJ
        KKRWaFAxK5uOx1SLha8GuIu1hibSpU6KXCyCLEV7j8y21WXaCgveJt3tPSHYBWuO
        PkGNz/wHsfjPwmXxI/2XDoqByETqUqzAu2ccoJi32QKBgQDZ1hDC6RHq0xtQgucp
        ZmFGRM7pS7Q0sq2r5BsEkYQTTTU6YRlqqjExWOf/zenXZbPs0ImP0ExwFk2JTqwb
        uDCxyQzD5xacN97S/KIUrk30jxVg6j/UyrrugY1Qp304nUEdUa+kEPkFhp1e6v4Y
        c2mhda5y+p6iq9/zDbS/JPvBbQKBgQDIfiVzOHM/pIOt0il2FAe3peAp8AWmpSxq
        XVhqASZNX1n6/sweDIdtjjG8NRlsUMiaSWGVmynlRz2su7X4kNivV70YsJ96JB/f
        rXos9suOd0jQDSRMYiuys5/7ZodWuXI2AHFnckzWMW5/dXGAAeBoOIUeNCUfe/f+
        U1WprJKiZQKBgBNTME16S8KfU88Cres4T+zh8dE0jBoYt9uF8vemySbFNLGnJ5AU
        5SRRlNNWuyYGub2KiomdmwpekCZcOlyDLJ65DU7b01+sfTIOg3p+NCA8CVN9tIf2
        LDs4dwbutOcu3DXzpzdQ4iahWJixFDWrF3XhcMZ2gVhBEy8GykAi0crJAoGBAJgj
        eUGkrXe23CFToBi0/GI0YhUQyQj6v+h6qvPNqYX+/CXFoZiPw1i0FTOPS5pw9rh1
        RLKlCrasR7XCv0Q+jd8IgjqxFGM39GPknRhvsmmKRNtzjX7U4/n36kd4NuztTiiC
        T4vDJWFII2Re92C+i84qTYFs6lqo1LfN/uwBQ0gtAoGAHvqiKcMs+k8XsS+r3q45
        En6xE47W2OjdGEzM3jymMF0nuD4ICu8G6wXbA3b7K8+paPt2fjAQVsHgnK+gL6QJ
        iG4UfI5oe8XrEIyKVprU1b+kjiWj0wa68xcxlTj4fCbRK6MbgXr140xFi3cA0jtZ
        mAyQRhldpHWaxwqvgqInASE=
    ";

    pub(in super::super) fn der(b64: &str) -> Vec<u8> {
        base64ct::Base64::decode_vec(&b64.split_whitespace().collect::<String>()).unwrap()
    }

    /// Something that signs JWS signing inputs: a core key, or a ring key with its JWK.
    pub(in super::super) enum Signer {
        Core(Box<KeyPair>),
        Ring(
            std::sync::Arc<dyn rustls::sign::SigningKey>,
            rustls::SignatureScheme,
            Value,
        ),
    }

    impl Signer {
        pub(in super::super) fn p256(seed: u8) -> Self {
            Signer::Core(Box::new(KeyPair::generate(
                Algorithm::P256,
                &mut SeedRng::from_seed([seed; 32]),
            )))
        }
        pub(in super::super) fn ed25519(seed: u8) -> Self {
            Signer::Core(Box::new(KeyPair::generate(
                Algorithm::Ed25519,
                &mut SeedRng::from_seed([seed; 32]),
            )))
        }
        fn ring(pkcs8: &str, scheme: rustls::SignatureScheme) -> Self {
            let der = der(pkcs8);
            let key = rustls::crypto::ring::sign::any_supported_type(
                &rustls::pki_types::PrivateKeyDer::Pkcs8(der.into()),
            )
            .unwrap();
            let spki = key.public_key().unwrap();
            let jwk = jwk_of_spki(spki.as_ref());
            Signer::Ring(key, scheme, jwk)
        }
        pub(in super::super) fn p384() -> Self {
            Self::ring(P384_PKCS8, rustls::SignatureScheme::ECDSA_NISTP384_SHA384)
        }
        pub(in super::super) fn rs256() -> Self {
            Self::ring(RSA_PKCS8, rustls::SignatureScheme::RSA_PKCS1_SHA256)
        }
        pub(in super::super) fn ps256() -> Self {
            Self::ring(RSA_PKCS8, rustls::SignatureScheme::RSA_PSS_SHA256)
        }
        pub(in super::super) fn alg(&self) -> &'static str {
            match self {
                Signer::Core(k) => match k.algorithm() {
                    Algorithm::P256 => "ES256",
                    Algorithm::Ed25519 => "EdDSA",
                },
                Signer::Ring(_, s, _) => match *s {
                    rustls::SignatureScheme::ECDSA_NISTP384_SHA384 => "ES384",
                    rustls::SignatureScheme::RSA_PSS_SHA256 => "PS256",
                    _ => "RS256",
                },
            }
        }
        pub(in super::super) fn jwk(&self) -> Value {
            match self {
                Signer::Core(k) => serde_json::to_value(k.public_key().to_jwk()).unwrap(),
                Signer::Ring(_, _, jwk) => jwk.clone(),
            }
        }
        pub(in super::super) fn sign(&self, msg: &[u8]) -> Vec<u8> {
            match self {
                Signer::Core(k) => k.sign_raw(msg),
                Signer::Ring(key, scheme, _) => {
                    let sig = key.choose_scheme(&[*scheme]).unwrap().sign(msg).unwrap();
                    if *scheme == rustls::SignatureScheme::ECDSA_NISTP384_SHA384 {
                        ecdsa_der_to_fixed(&sig, 48)
                    } else {
                        sig
                    }
                }
            }
        }
    }

    /// r‖s from an ECDSA-Sig-Value DER.
    fn ecdsa_der_to_fixed(der: &[u8], half: usize) -> Vec<u8> {
        let seq: Vec<Vec<u8>> = yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                Ok(vec![
                    r.next().read_bigint_bytes()?.0,
                    r.next().read_bigint_bytes()?.0,
                ])
            })
        })
        .unwrap_or_default();
        let mut out = Vec::new();
        for n in seq {
            let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
            out.extend(std::iter::repeat_n(0u8, half - n.len()));
            out.extend(n);
        }
        out
    }

    /// ECDSA-Sig-Value DER from r‖s, for ring's ASN.1 verifiers.
    fn fixed_to_der(sig: &[u8]) -> Vec<u8> {
        let (r, s) = sig.split_at(sig.len() / 2);
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_bigint_bytes(r, true);
                w.next().write_bigint_bytes(s, true);
            })
        })
    }

    /// The JWK of a P-384 or RSA SubjectPublicKeyInfo.
    fn jwk_of_spki(spki: &[u8]) -> Value {
        use x509_parser::prelude::FromDer;
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).unwrap();
        let raw = parsed.subject_public_key.data.to_vec();
        if raw.len() == 97 {
            return json!({"kty": "EC", "crv": "P-384", "x": b64(&raw[1..49]), "y": b64(&raw[49..])});
        }
        let (n, e) = yasna::parse_der(&raw, |r| {
            r.read_sequence(|r| {
                Ok((
                    r.next().read_bigint_bytes()?.0,
                    r.next().read_bigint_bytes()?.0,
                ))
            })
        })
        .unwrap();
        let trim = |v: Vec<u8>| v.into_iter().skip_while(|b| *b == 0).collect::<Vec<_>>();
        json!({"kty": "RSA", "n": b64(&trim(n)), "e": b64(&trim(e))})
    }

    /// A flattened JWS over `payload` (None = POST-as-GET) with `header`, signed by `signer`.
    pub(in super::super) fn flat(
        signer: &Signer,
        header: &Value,
        payload: Option<&Value>,
    ) -> Value {
        let p64 = b64(header.to_string().as_bytes());
        let pl64 = payload.map_or(String::new(), |p| b64(p.to_string().as_bytes()));
        let sig = signer.sign(format!("{p64}.{pl64}").as_bytes());
        json!({"protected": p64, "payload": pl64, "signature": b64(&sig)})
    }

    pub(in super::super) fn header(signer: &Signer, url: &str) -> Value {
        json!({"alg": signer.alg(), "nonce": "bm9uY2U", "url": url, "jwk": signer.jwk()})
    }

    fn body(v: &Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    /// Verify a check as the host does: with ring (via the webpki algorithms rustls carries).
    pub(in super::super) fn ring_verifies(check: &SignatureCheck) -> bool {
        use rustls::crypto::ring::default_provider;
        use rustls::SignatureScheme as S;
        let (scheme, sig) = match check.algorithm {
            CheckAlgorithm::EcdsaP256Sha256 => {
                (S::ECDSA_NISTP256_SHA256, fixed_to_der(&check.signature))
            }
            CheckAlgorithm::EcdsaP384Sha384 => {
                (S::ECDSA_NISTP384_SHA384, fixed_to_der(&check.signature))
            }
            CheckAlgorithm::Ed25519 => (S::ED25519, check.signature.clone()),
            CheckAlgorithm::RsaPkcs1Sha256 => (S::RSA_PKCS1_SHA256, check.signature.clone()),
            CheckAlgorithm::RsaPssSha256 => (S::RSA_PSS_SHA256, check.signature.clone()),
        };
        let provider = default_provider();
        let algs = provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == scheme)
            .unwrap()
            .1;
        algs.iter().any(|a| {
            a.verify_signature(&check.public_key, &check.message, &sig)
                .is_ok()
        })
    }

    fn kind(body: &[u8]) -> ProblemKind {
        AcmeJws::decode(body).unwrap_err().kind
    }

    #[test]
    fn every_algorithm_signs_decodes_and_verifies() {
        for signer in [
            Signer::p256(1),
            Signer::ed25519(2),
            Signer::p384(),
            Signer::rs256(),
            Signer::ps256(),
        ] {
            let alg = signer.alg();
            let payload = json!({"termsOfServiceAgreed": true});
            let v = flat(
                &signer,
                &header(&signer, "https://ca/new-acct"),
                Some(&payload),
            );
            let jws = AcmeJws::decode(&body(&v)).unwrap();
            assert_eq!(jws.alg().name(), alg);
            assert_eq!(jws.url(), "https://ca/new-acct");
            assert_eq!(jws.nonce(), Some("bm9uY2U"));
            assert_eq!(jws.payload_json().unwrap(), payload);
            let key = jws.jwk().unwrap().clone();
            assert_eq!(key, AccountKey::from_jwk(&signer.jwk()).unwrap());
            let check = jws.signature_check().unwrap();
            assert_eq!(check.spki, key.spki_der());
            assert!(
                ring_verifies(&check),
                "{alg}: ring refuses a good signature"
            );
            if alg != "ES384" {
                jws.verify_in_core(&key).unwrap();
            } else {
                assert_eq!(check.algorithm, CheckAlgorithm::EcdsaP384Sha384);
            }
            // The same signature over another payload verifies nowhere.
            let mut forged = v.clone();
            forged["payload"] = b64(b"{}").into();
            let forged = AcmeJws::decode(&body(&forged)).unwrap();
            assert!(!ring_verifies(&forged.signature_check().unwrap()), "{alg}");
            if alg != "ES384" {
                assert_eq!(
                    forged.verify_in_core(&key).unwrap_err().kind,
                    ProblemKind::Malformed
                );
            }
        }
    }

    #[test]
    fn kid_requests_are_checked_with_the_stored_key() {
        let signer = Signer::p256(3);
        let h = json!({"alg": "ES256", "nonce": "bm9uY2U", "url": "https://ca/order/1", "kid": "https://ca/acct/7"});
        let jws = AcmeJws::decode(&body(&flat(&signer, &h, None))).unwrap();
        assert!(jws.is_post_as_get());
        assert_eq!(jws.kid(), Some("https://ca/acct/7"));
        assert_eq!(jws.payload_json().unwrap_err().kind, ProblemKind::Malformed);
        assert!(jws.signature_check().is_err());
        let stored = AccountKey::from_jwk(&signer.jwk()).unwrap();
        assert!(ring_verifies(&jws.signature_check_with(&stored).unwrap()));
        jws.verify_in_core(&stored).unwrap();
        let other = AccountKey::from_jwk(&Signer::p256(4).jwk()).unwrap();
        assert!(!ring_verifies(&jws.signature_check_with(&other).unwrap()));
        let ed = AccountKey::from_jwk(&Signer::ed25519(4).jwk()).unwrap();
        assert_eq!(
            jws.signature_check_with(&ed).unwrap_err().kind,
            ProblemKind::BadSignatureAlgorithm
        );
        // "" is POST-as-GET, "e30" is the empty object: not the same request.
        let mut v = flat(&signer, &h, Some(&json!({})));
        let jws = AcmeJws::decode(&body(&v)).unwrap();
        assert!(!jws.is_post_as_get());
        assert_eq!(jws.payload(), b"{}");
        v["payload"] = "".into();
        assert!(AcmeJws::decode(&body(&v)).unwrap().is_post_as_get());
    }

    #[test]
    fn hostile_headers_are_refused_with_their_kind() {
        let signer = Signer::p256(5);
        let jwk = signer.jwk();
        let ed_jwk = Signer::ed25519(6).jwk();
        let url = "https://ca/x";
        use ProblemKind::*;
        let rows: Vec<(&str, Value, ProblemKind)> = vec![
            (
                "alg none",
                json!({"alg": "none", "nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                BadSignatureAlgorithm,
            ),
            (
                "alg HS256",
                json!({"alg": "HS256", "nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                BadSignatureAlgorithm,
            ),
            (
                "alg ES512",
                json!({"alg": "ES512", "nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                BadSignatureAlgorithm,
            ),
            (
                "alg a number",
                json!({"alg": 1, "nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                Malformed,
            ),
            (
                "no alg",
                json!({"nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                Malformed,
            ),
            (
                "both jwk and kid",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": jwk, "kid": "https://ca/acct/1"}),
                Malformed,
            ),
            (
                "neither jwk nor kid",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url}),
                Malformed,
            ),
            (
                "jwk not fitting alg",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": ed_jwk}),
                BadSignatureAlgorithm,
            ),
            (
                "RS256 with an EC key",
                json!({"alg": "RS256", "nonce": "bm9uY2U", "url": url, "jwk": jwk}),
                BadSignatureAlgorithm,
            ),
            (
                "no nonce",
                json!({"alg": "ES256", "url": url, "jwk": jwk}),
                BadNonce,
            ),
            (
                "nonce not base64url",
                json!({"alg": "ES256", "nonce": "a+b/", "url": url, "jwk": jwk}),
                Malformed,
            ),
            (
                "nonce too long",
                json!({"alg": "ES256", "nonce": "A".repeat(MAX_NONCE_BYTES + 1), "url": url, "jwk": jwk}),
                Malformed,
            ),
            (
                "no url",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "jwk": jwk}),
                Malformed,
            ),
            (
                "url with a space",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": "https://ca/ x", "jwk": jwk}),
                Malformed,
            ),
            (
                "url too long",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": "h".repeat(MAX_URL_BYTES + 1), "jwk": jwk}),
                Malformed,
            ),
            (
                "crit",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": jwk, "crit": ["b64"]}),
                Malformed,
            ),
            (
                "b64 false",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": jwk, "b64": false}),
                Malformed,
            ),
            (
                "kid not a string",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "kid": 7}),
                Malformed,
            ),
            (
                "jwk with a private key",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"], "d": jwk["x"]}}),
                BadPublicKey,
            ),
            (
                "jwk off the curve",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["x"]}}),
                BadPublicKey,
            ),
            (
                "jwk short x",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": jwk["y"]}}),
                BadPublicKey,
            ),
            (
                "jwk P-521",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "EC", "crv": "P-521", "x": jwk["x"], "y": jwk["y"]}}),
                BadPublicKey,
            ),
            (
                "jwk Ed448",
                json!({"alg": "EdDSA", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "OKP", "crv": "Ed448", "x": "AA"}}),
                BadPublicKey,
            ),
            (
                "jwk oct",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": {"kty": "oct", "k": "AA"}}),
                BadPublicKey,
            ),
            (
                "jwk a string",
                json!({"alg": "ES256", "nonce": "bm9uY2U", "url": url, "jwk": "k"}),
                BadPublicKey,
            ),
        ];
        for (what, h, want) in rows {
            let v = flat(&signer, &h, Some(&json!({})));
            assert_eq!(kind(&body(&v)), want, "{what}");
        }
    }

    #[test]
    fn hostile_envelopes_are_refused() {
        let signer = Signer::p256(7);
        let good = flat(&signer, &header(&signer, "https://ca/x"), Some(&json!({})));
        assert!(AcmeJws::decode(&body(&good)).is_ok());
        let edit = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut v = good.clone();
            f(v.as_object_mut().unwrap());
            body(&v)
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "unknown member",
                edit(&|m| {
                    m.insert("extra".into(), 1.into());
                }),
            ),
            (
                "unprotected header",
                edit(&|m| {
                    m.insert("header".into(), json!({"kid": "x"}));
                }),
            ),
            (
                "general serialization",
                body(
                    &json!({"payload": good["payload"], "signatures": [{"protected": good["protected"], "signature": good["signature"]}]}),
                ),
            ),
            (
                "no payload (detached)",
                edit(&|m| {
                    m.remove("payload");
                }),
            ),
            (
                "payload padded",
                edit(&|m| {
                    m.insert("payload".into(), "e30=".into());
                }),
            ),
            (
                "payload standard base64",
                edit(&|m| {
                    m.insert("payload".into(), "e3+/".into());
                }),
            ),
            (
                "signature bad base64",
                edit(&|m| {
                    m.insert("signature".into(), "!!".into());
                }),
            ),
            (
                "signature one byte short",
                edit(&|m| {
                    let s = base64url(m["signature"].as_str().unwrap(), "").unwrap();
                    m.insert("signature".into(), b64(&s[1..]).into());
                }),
            ),
            (
                "signature of RSA length",
                edit(&|m| {
                    m.insert("signature".into(), b64(&[1u8; 256]).into());
                }),
            ),
            (
                "protected not JSON",
                edit(&|m| {
                    m.insert("protected".into(), b64(b"alg").into());
                }),
            ),
            (
                "protected an array",
                edit(&|m| {
                    m.insert("protected".into(), b64(b"[1]").into());
                }),
            ),
            (
                "protected too long",
                edit(&|m| {
                    m.insert(
                        "protected".into(),
                        "A".repeat(MAX_PROTECTED_BYTES + 1).into(),
                    );
                }),
            ),
            ("body an array", b"[]".to_vec()),
            ("body not JSON", b"protected=x".to_vec()),
            (
                "body trailing garbage",
                [body(&good), b"x".to_vec()].concat(),
            ),
            (
                "duplicate top-level member",
                format!(
                    r#"{{"protected":{},"payload":"","payload":{},"signature":{}}}"#,
                    good["protected"], good["payload"], good["signature"]
                )
                .into_bytes(),
            ),
            ("oversized body", {
                let mut b = body(&good);
                b.extend(std::iter::repeat_n(b' ', MAX_JWS_BYTES));
                b
            }),
        ];
        for (what, b) in cases {
            assert_eq!(kind(&b), ProblemKind::Malformed, "{what}");
        }
        // A protected header naming alg twice: serde_json alone would keep the second.
        let jwk = signer.jwk().to_string();
        let text = format!(
            r#"{{"alg":"none","alg":"ES256","nonce":"bm9uY2U","url":"https://ca/x","jwk":{jwk}}}"#
        );
        let p64 = b64(text.as_bytes());
        let sig = signer.sign(format!("{p64}.e30").as_bytes());
        let v = json!({"protected": p64, "payload": "e30", "signature": b64(&sig)});
        let e = AcmeJws::decode(&body(&v)).unwrap_err();
        assert!(e.detail.contains("twice"), "{e}");
        // Also inside the jwk.
        let text = r#"{"alg":"ES256","nonce":"bm9uY2U","url":"https://ca/x","jwk":{"kty":"EC","kty":"RSA"}}"#;
        let v =
            json!({"protected": b64(text.as_bytes()), "payload": "e30", "signature": b64(&sig)});
        assert_eq!(kind(&body(&v)), ProblemKind::Malformed);
    }

    #[test]
    fn strict_signature_encodings_are_refused() {
        // An ES256 signature with s = 0, and an ES384 one with r = n: the right length, but no
        // verifier may be handed them.
        let signer = Signer::p256(8);
        let mut v = flat(&signer, &header(&signer, "https://ca/x"), Some(&json!({})));
        let mut sig = base64url(v["signature"].as_str().unwrap(), "").unwrap();
        sig[32..].fill(0);
        v["signature"] = b64(&sig).into();
        let jws = AcmeJws::decode(&body(&v)).unwrap();
        assert_eq!(
            jws.signature_check().unwrap_err().kind,
            ProblemKind::Malformed
        );
        let p384 = Signer::p384();
        let mut v = flat(&p384, &header(&p384, "https://ca/x"), Some(&json!({})));
        let mut sig = base64url(v["signature"].as_str().unwrap(), "").unwrap();
        sig[..48].copy_from_slice(&P384_ORDER);
        v["signature"] = b64(&sig).into();
        let jws = AcmeJws::decode(&body(&v)).unwrap();
        assert_eq!(
            jws.signature_check().unwrap_err().kind,
            ProblemKind::Malformed
        );
    }

    #[test]
    fn rsa_keys_are_bounded() {
        let jwk = Signer::rs256().jwk();
        let n = base64url(jwk["n"].as_str().unwrap(), "").unwrap();
        let key = AccountKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.name(), "RSA-2048");
        let with = |n: &[u8], e: &[u8]| {
            AccountKey::from_jwk(&json!({"kty": "RSA", "n": b64(n), "e": b64(e)}))
                .map(|_| ())
                .map_err(|e| e.kind)
        };
        assert_eq!(with(&n, &[1, 0, 1]), Ok(()));
        assert_eq!(with(&n, &[3]), Ok(()));
        for (what, n2, e) in [
            ("e = 1", n.clone(), vec![1]),
            ("e even", n.clone(), vec![1, 0, 0]),
            ("e too large", n.clone(), vec![2, 0, 0, 0, 1]),
            ("e leading zero", n.clone(), vec![0, 1, 0, 1]),
            ("n leading zero", [&[0u8][..], &n].concat(), vec![1, 0, 1]),
            ("n 1024 bits", n[..128].to_vec(), vec![1, 0, 1]),
            (
                "n 8192 bits",
                [n.clone(), n.clone(), n.clone(), n.clone()].concat(),
                vec![1, 0, 1],
            ),
            ("n even", [&n[..255], &[2u8][..]].concat(), vec![1, 0, 1]),
        ] {
            assert_eq!(with(&n2, &e), Err(ProblemKind::BadPublicKey), "{what}");
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1, with extra members that do not enter the thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = AccountKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // The canonical form reads back to the same key; member order does not matter.
        let back: Value = serde_json::from_str(key.canonical_jwk()).unwrap();
        assert_eq!(AccountKey::from_jwk(&back).unwrap(), key);
        // The same thumbprint as jwt_svid::key_id, for the keys both know.
        let p = KeyPair::generate(Algorithm::P256, &mut SeedRng::from_seed([1; 32]));
        let ak = AccountKey::from_public_key(p.public_key());
        assert_eq!(
            ak.thumbprint(),
            crate::wire::jwt_svid::key_id(p.public_key())
        );
        assert_eq!(ak, AccountKey::from_jwk(&Signer::p256(1).jwk()).unwrap());
    }

    fn key_change(
        old: &Signer,
        new: &Signer,
        inner_header: Value,
        payload: Value,
        outer_url: &str,
    ) -> Result<KeyChange, AcmeError> {
        let inner = flat(new, &inner_header, Some(&payload));
        let outer_h = json!({"alg": old.alg(), "nonce": "bm9uY2U", "url": outer_url, "kid": "https://ca/acct/1"});
        let outer = AcmeJws::decode(&body(&flat(old, &outer_h, Some(&inner)))).unwrap();
        KeyChange::decode(&outer)
    }

    #[test]
    fn key_change_checks_its_inner_jws() {
        let (old, new) = (Signer::p256(10), Signer::ed25519(11));
        let url = "https://ca/key-change";
        let inner_h = json!({"alg": "EdDSA", "url": url, "jwk": new.jwk()});
        let payload = json!({"account": "https://ca/acct/1", "oldKey": old.jwk()});
        let kc = key_change(&old, &new, inner_h.clone(), payload.clone(), url).unwrap();
        assert_eq!(kc.account(), "https://ca/acct/1");
        assert_eq!(kc.new_key(), &AccountKey::from_jwk(&new.jwk()).unwrap());
        assert!(kc.old_key_matches(&AccountKey::from_jwk(&old.jwk()).unwrap()));
        assert!(!kc.old_key_matches(&AccountKey::from_jwk(&Signer::p256(12).jwk()).unwrap()));
        assert!(ring_verifies(&kc.signature_check().unwrap()));

        let refused = |h: Value, p: Value, outer_url: &str| {
            key_change(&old, &new, h, p, outer_url).unwrap_err().kind
        };
        let mut other_url = inner_h.clone();
        other_url["url"] = "https://ca/elsewhere".into();
        assert_eq!(
            refused(other_url, payload.clone(), url),
            ProblemKind::Malformed
        );
        let mut with_nonce = inner_h.clone();
        with_nonce["nonce"] = "bm9uY2U".into();
        assert_eq!(
            refused(with_nonce, payload.clone(), url),
            ProblemKind::Malformed
        );
        let with_kid = json!({"alg": "EdDSA", "url": url, "kid": "https://ca/acct/1"});
        assert_eq!(
            refused(with_kid, payload.clone(), url),
            ProblemKind::Malformed
        );
        let other_account = json!({"account": "https://ca/acct/2", "oldKey": old.jwk()});
        assert_eq!(
            refused(inner_h.clone(), other_account, url),
            ProblemKind::Malformed
        );
        let same_key = json!({"account": "https://ca/acct/1", "oldKey": new.jwk()});
        assert_eq!(
            refused(inner_h.clone(), same_key, url),
            ProblemKind::Malformed
        );
        let bad_old = json!({"account": "https://ca/acct/1", "oldKey": {"kty": "EC"}});
        assert_eq!(
            refused(inner_h.clone(), bad_old, url),
            ProblemKind::BadPublicKey
        );
        assert_eq!(
            refused(inner_h, json!({"account": "https://ca/acct/1"}), url),
            ProblemKind::Malformed
        );
        // A key change signed with a jwk instead of the account's kid.
        let inner = flat(
            &new,
            &json!({"alg": "EdDSA", "url": url, "jwk": new.jwk()}),
            Some(&payload),
        );
        let outer = AcmeJws::decode(&body(&flat(&old, &header(&old, url), Some(&inner)))).unwrap();
        assert!(KeyChange::decode(&outer).is_err());
    }
}
