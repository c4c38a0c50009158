//! JWT-SVIDs (the SPIFFE JWT-SVID standard): a compact JWS whose `sub` is a SPIFFE ID, with a
//! required audience and expiry, signed by a trust domain's JWT authority and checked against the
//! `jwt-svid` keys of its trust bundle (found by `kid`).
//!
//! This CA signs with ES256 only (a P-256 key, whatever the CA's own algorithm: the standard
//! allows RS, ES and PS algorithms and no EdDSA). The validator takes the standard's allow list
//! and verifies ES256, RS256 and PS256; the other allowed algorithms are refused by name.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, ProofFault, Result};
use crate::public_key::{KeyKind, PublicKey};
use crate::signature::{verify, Scheme};
use crate::spiffe::SpiffeId;
use crate::{Algorithm, KeyPair};

/// Largest JWT-SVID accepted, before any decoding.
pub const MAX_JWT_SVID_BYTES: usize = 8 * 1024;
/// Most audiences a JWT-SVID may name (when made and when validated).
pub const MAX_AUDIENCES: usize = 32;
/// Longest audience value, in bytes.
pub const MAX_AUDIENCE_BYTES: usize = 512;
/// Clock skew tolerated for `nbf` (a token not valid yet); `exp` gets none.
pub const JWT_LEEWAY_SECS: i64 = 30;
/// The signature algorithms the JWT-SVID standard allows (section 3.1); anything else (`none`,
/// MACs, EdDSA) is refused.
pub const ALLOWED_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
];
/// Longest `kid` accepted.
const MAX_KID: usize = 256;

/// A JWT authority of a trust domain: a `jwt-svid` key of its bundle and its key id.
#[derive(Clone, Debug)]
pub struct JwtAuthority {
    /// The key id (`kid`) tokens name it by.
    pub kid: String,
    /// The public key.
    pub key: PublicKey,
}

impl JwtAuthority {
    /// The authority for `key`, its key id the RFC 7638 thumbprint of its JWK.
    pub fn new(key: PublicKey) -> Self {
        JwtAuthority {
            kid: key_id(&key),
            key,
        }
    }

    /// Read a bundle's `jwt-svid` key (a JWK with `kid`; P-256 only). A key of another `use`, or
    /// without a `kid`, is refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self> {
        let bad = |m: &str| Error::malformed("JWT authority", m);
        let field = |k: &str| jwk.get(k).and_then(Value::as_str);
        if field("use").is_some_and(|u| u != "jwt-svid") {
            return Err(bad("a key whose use is not jwt-svid"));
        }
        let kid = field("kid").ok_or_else(|| bad("no kid"))?;
        if kid.is_empty() || kid.len() > MAX_KID {
            return Err(bad("kid is empty or too long"));
        }
        match (field("kty"), field("crv")) {
            (Some("EC"), Some("P-256")) => {}
            (kty, crv) => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "JWT authority of kty {kty:?} crv {crv:?} (only EC P-256)"
                )))
            }
        }
        let coord = |k: &str| -> Result<Vec<u8>> {
            let v = Base64UrlUnpadded::decode_vec(field(k).ok_or_else(|| bad("no x or y"))?)
                .map_err(|_| bad("x or y is not base64url"))?;
            if v.len() != 32 {
                return Err(bad("x or y is not 32 bytes"));
            }
            Ok(v)
        };
        // SubjectPublicKeyInfo of an uncompressed P-256 point; from_spki checks it is on the curve.
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend(coord("x")?);
        spki.extend(coord("y")?);
        Ok(JwtAuthority {
            kid: kid.to_string(),
            key: PublicKey::from_spki(&spki)?,
        })
    }

    /// This authority as a bundle key: its JWK with `use: jwt-svid` and `kid`.
    pub fn to_bundle_jwk(&self) -> Value {
        let mut v = serde_json::to_value(self.key.to_jwk()).unwrap_or_default();
        v["use"] = "jwt-svid".into();
        v["kid"] = self.kid.clone().into();
        v
    }
}

/// DER of a P-256 SubjectPublicKeyInfo up to the point (id-ecPublicKey, prime256v1, BIT STRING
/// of 66 bytes, uncompressed form).
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// The RFC 7638 JWK thumbprint of `key` (SHA-256, base64url): a key id that is the same wherever
/// it is computed, so a bundle and the tokens agree without keeping one.
pub fn key_id(key: &PublicKey) -> String {
    let j = key.to_jwk();
    // The required members in lexicographic order, no whitespace (RFC 7638 section 3.2).
    let canonical = match key.kind() {
        KeyKind::P256 => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j.x.unwrap_or_default(),
            j.y.unwrap_or_default()
        ),
        KeyKind::Ed25519 => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            j.x.unwrap_or_default()
        ),
        KeyKind::Rsa => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            j.e.unwrap_or_default(),
            j.n.unwrap_or_default()
        ),
    };
    Base64UrlUnpadded::encode_string(&Sha256::digest(canonical.as_bytes()))
}

/// What a JWT-SVID says: made by [`sign_jwt_svid`], or read by [`validate_jwt_svid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSvidClaims {
    /// The SPIFFE ID (`sub`).
    pub spiffe_id: SpiffeId,
    /// The audiences (`aud`), at least one.
    pub audience: Vec<String>,
    /// Issued at (`iat`), Unix seconds.
    pub issued_at: i64,
    /// Expiry (`exp`), Unix seconds.
    pub expires_at: i64,
    /// The issuer (`iss`), when there is one (the CA's public URL, for OIDC discovery).
    pub issuer: Option<String>,
}

/// The audience rules of a JWT-SVID (1 to [`MAX_AUDIENCES`] values of 1 to
/// [`MAX_AUDIENCE_BYTES`] bytes), shared by signing, validation and every API that asks for one;
/// the reason when they are broken.
pub fn check_audience(audience: &[String]) -> core::result::Result<(), String> {
    if audience.is_empty() {
        return Err("at least one audience is required".into());
    }
    if audience.len() > MAX_AUDIENCES {
        return Err(format!(
            "{} audiences, more than {MAX_AUDIENCES}",
            audience.len()
        ));
    }
    if let Some(a) = audience
        .iter()
        .find(|a| a.is_empty() || a.len() > MAX_AUDIENCE_BYTES)
    {
        return Err(format!(
            "an audience must have 1 to {MAX_AUDIENCE_BYTES} bytes (got {})",
            a.len()
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    aud: &'a [String],
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

/// Sign a JWT-SVID with the P-256 `key` of the JWT authority whose key id is `kid` (ES256).
/// Refused: another key type, no or too many audiences, `exp` not after `iat`.
pub fn sign_jwt_svid(key: &KeyPair, kid: &str, claims: &JwtSvidClaims) -> Result<String> {
    if key.algorithm() != Algorithm::P256 {
        return Err(Error::InvalidParameter(
            "JWT-SVIDs are signed with ES256: the JWT authority's key must be P-256".into(),
        ));
    }
    let input = jwt_svid_signing_input(kid, claims)?;
    Ok(super::jws::compact(&input, &key.sign_raw(input.as_bytes())))
}

/// What [`sign_jwt_svid`] signs (`header.claims`, base64url): for a JWT authority key held
/// outside the core, which signs it with ES256; [`jwt_svid_assemble`] makes the token. The same
/// refusals, but for the key type, which is the signer's to hold to.
pub fn jwt_svid_signing_input(kid: &str, claims: &JwtSvidClaims) -> Result<String> {
    if kid.is_empty() || kid.len() > MAX_KID {
        return Err(Error::InvalidParameter(format!(
            "kid must have 1 to {MAX_KID} bytes"
        )));
    }
    check_audience(&claims.audience).map_err(Error::InvalidParameter)?;
    if claims.expires_at <= claims.issued_at {
        return Err(Error::InvalidParameter("exp must be after iat".into()));
    }
    let header = Header {
        alg: "ES256",
        kid,
        typ: "JWT",
    };
    let body = Claims {
        sub: claims.spiffe_id.to_string(),
        aud: &claims.audience,
        exp: claims.expires_at,
        iat: claims.issued_at,
        iss: claims.issuer.as_deref(),
    };
    Ok(super::jws::signing_input(&header, &body))
}

/// The JWT-SVID: `signing_input` with an outside signer's ES256 signature over it, DER as the
/// host's key stores give it (a JWS carries r‖s: converted here).
pub fn jwt_svid_assemble(signing_input: &str, der_signature: &[u8]) -> Result<String> {
    let sig = p256::ecdsa::Signature::from_der(der_signature)
        .map_err(|_| Error::BadSignature("JWT-SVID"))?;
    Ok(super::jws::compact(signing_input, &sig.to_bytes()))
}

/// A JWT-SVID whose form, signature, lifetime and audience were checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedJwtSvid {
    /// What it says.
    pub claims: JwtSvidClaims,
    /// Every claim, as the token carries them (the Workload API returns them).
    pub all_claims: Map<String, Value>,
    /// The key id of the authority that signed it.
    pub kid: String,
}

fn fault(fault: ProofFault, detail: impl Into<String>) -> Error {
    Error::JwtSvid {
        fault,
        detail: detail.into(),
    }
}

fn malformed(detail: impl Into<String>) -> Error {
    fault(ProofFault::Malformed, detail)
}

fn segment(what: &str, s: &str) -> Result<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(s)
        .map_err(|_| malformed(format!("the {what} is not unpadded base64url")))
}

fn object(what: &str, bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed(format!("the {what} is not a JSON object"))),
        Err(e) => Err(malformed(format!("the {what}: {e}"))),
    }
}

/// A NumericDate (RFC 7519: seconds, possibly with a fraction), whole seconds down.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| malformed(format!("{name} is not a NumericDate"))),
        Some(_) => Err(malformed(format!("{name} is not a number"))),
    }
}

/// Validate a JWT-SVID for `audience` at `now` against a trust domain's JWT `authorities`:
/// the form (three base64url parts, JSON objects, no `crit`, `typ` absent, JWT or JOSE), the
/// algorithm (the standard's allow list; `none`, MACs and EdDSA refused), the signature by the
/// authority its `kid` names, `sub` a SPIFFE ID, `aud` present and containing `audience`, `exp`
/// present and in the future (`nbf` too, within [`JWT_LEEWAY_SECS`]). The signature is checked
/// before any claim is believed. Refusals are [`Error::JwtSvid`], the fault saying which check.
pub fn validate_jwt_svid(
    token: &str,
    authorities: &[JwtAuthority],
    audience: &str,
    now: i64,
) -> Result<ValidatedJwtSvid> {
    if token.len() > MAX_JWT_SVID_BYTES {
        return Err(Error::TooLarge {
            what: "JWT-SVID",
            size: token.len(),
            limit: MAX_JWT_SVID_BYTES,
        });
    }
    if audience.is_empty() {
        return Err(Error::InvalidParameter(
            "the audience to validate for is empty".into(),
        ));
    }
    let Some(super::jws::Parts {
        header: h64,
        claims: c64,
        signature: s64,
        signing_input,
    }) = super::jws::split(token)
    else {
        return Err(malformed(
            "a JWT-SVID is three base64url parts joined by dots (a compact JWS)",
        ));
    };
    let header = object("header", &segment("header", h64)?)?;
    let claims = object("claims", &segment("claims", c64)?)?;
    let sig = segment("signature", s64)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the header has no alg"))?;
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(malformed(format!(
            "alg {:?} is not allowed for JWT-SVIDs (only RS, ES and PS 256/384/512)",
            alg.chars().take(32).collect::<String>()
        )));
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
        Some(_) => return Err(malformed("typ must be absent, JWT or JOSE")),
    }
    if header.contains_key("crit") {
        return Err(malformed(
            "crit names extensions this validator does not know",
        ));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the header has no kid"))?;
    let authority = authorities.iter().find(|a| a.kid == kid).ok_or_else(|| {
        fault(
            ProofFault::Signature,
            format!(
                "no JWT authority with kid {:?} in the bundle",
                kid.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let scheme = match (alg, authority.key.kind()) {
        ("ES256", KeyKind::P256) => Scheme::EcdsaP256Sha256Fixed,
        ("RS256", KeyKind::Rsa) => Scheme::RsaPkcs1Sha256,
        ("PS256", KeyKind::Rsa) => Scheme::RsaPssSha256 { salt_len: 32 },
        ("ES256" | "RS256" | "PS256", kind) => {
            return Err(fault(
                ProofFault::Signature,
                format!("alg {alg} does not fit the authority's {kind:?} key"),
            ))
        }
        _ => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "JWT-SVID alg {alg}: this validator verifies ES256, RS256 and PS256"
            )))
        }
    };
    verify(
        scheme,
        &authority.key,
        signing_input.as_bytes(),
        &sig,
        "JWT-SVID",
    )
    .map_err(|_| {
        fault(
            ProofFault::Signature,
            "the signature does not verify with the authority's key",
        )
    })?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("sub is missing or not a string"))?;
    let spiffe_id = SpiffeId::parse(sub).map_err(|e| malformed(format!("sub: {e}")))?;
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(v)) => v
            .iter()
            .map(|a| a.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| malformed("aud holds something other than strings"))?,
        Some(_) => return Err(malformed("aud is not a string or an array of strings")),
        None => return Err(malformed("aud is missing")),
    };
    check_audience(&aud).map_err(|m| malformed(format!("aud: {m}")))?;
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| malformed("exp is missing"))?;
    let iat = numeric_date(&claims, "iat")?;
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now < nbf.saturating_sub(JWT_LEEWAY_SECS) {
            return Err(fault(ProofFault::Expired, "the token is not valid yet"));
        }
    }
    if now >= exp {
        return Err(fault(ProofFault::Expired, "the token has expired"));
    }
    if !aud.iter().any(|a| a == audience) {
        return Err(fault(
            ProofFault::Audience,
            format!("the token is not for audience {audience:?}"),
        ));
    }
    let issuer = match claims.get("iss") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed("iss is not a string")),
    };
    Ok(ValidatedJwtSvid {
        claims: JwtSvidClaims {
            spiffe_id,
            audience: aud,
            issued_at: iat.unwrap_or(0),
            expires_at: exp,
            issuer,
        },
        all_claims: claims,
        kid: kid.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeedRng;

    fn setup() -> (KeyPair, JwtAuthority, JwtSvidClaims) {
        let mut rng = SeedRng::from_seed([9; 32]);
        let key = KeyPair::generate(Algorithm::P256, &mut rng);
        let auth = JwtAuthority::new(key.public_key().clone());
        let claims = JwtSvidClaims {
            spiffe_id: SpiffeId::parse("spiffe://example.org/web").unwrap(),
            audience: vec!["db".into(), "cache".into()],
            issued_at: 1_000,
            expires_at: 1_300,
            issuer: Some("https://ca.example.org".into()),
        };
        (key, auth, claims)
    }

    fn forge(header: &Value, claims: &Value, key: &KeyPair) -> String {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let sig = key.sign_raw(input.as_bytes());
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
    }

    #[test]
    fn signed_and_validated_round_trip() {
        let (key, auth, claims) = setup();
        let token = sign_jwt_svid(&key, &auth.kid, &claims).unwrap();
        let v = validate_jwt_svid(&token, std::slice::from_ref(&auth), "cache", 1_100).unwrap();
        assert_eq!(v.claims, claims);
        assert_eq!(v.kid, auth.kid);
        assert_eq!(v.all_claims["sub"], "spiffe://example.org/web");
        // The bundle form reads back to the same authority.
        let back = JwtAuthority::from_jwk(&auth.to_bundle_jwk()).unwrap();
        assert_eq!(back.kid, auth.kid);
        assert_eq!(back.key.spki_der(), auth.key.spki_der());
    }

    #[test]
    fn every_check_refuses_with_its_fault() {
        let (key, auth, claims) = setup();
        let auths = std::slice::from_ref(&auth);
        let token = sign_jwt_svid(&key, &auth.kid, &claims).unwrap();
        let code = |t: &str, aud: &str, now: i64| {
            validate_jwt_svid(t, auths, aud, now)
                .map(|_| ())
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&token, "web", 1_100), "jwt_audience");
        assert_eq!(code(&token, "db", 1_300), "jwt_expired");
        let mut other = SeedRng::from_seed([1; 32]);
        let stranger = KeyPair::generate(Algorithm::P256, &mut other);
        let h = serde_json::json!({"alg": "ES256", "kid": auth.kid, "typ": "JWT"});
        let c = serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": 1_300});
        assert_eq!(
            code(&forge(&h, &c, &stranger), "db", 1_100),
            "jwt_signature"
        );
        assert!(validate_jwt_svid(&forge(&h, &c, &key), auths, "db", 1_100).is_ok());
        let rows: Vec<(&str, Value, Value, &str)> = vec![
            (
                "alg none",
                serde_json::json!({"alg": "none", "kid": auth.kid}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "alg HS256",
                serde_json::json!({"alg": "HS256", "kid": auth.kid}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "alg EdDSA",
                serde_json::json!({"alg": "EdDSA", "kid": auth.kid}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "alg ES384",
                serde_json::json!({"alg": "ES384", "kid": auth.kid}),
                c.clone(),
                "unsupported_algorithm",
            ),
            (
                "alg RS256 on an EC key",
                serde_json::json!({"alg": "RS256", "kid": auth.kid}),
                c.clone(),
                "jwt_signature",
            ),
            (
                "no kid",
                serde_json::json!({"alg": "ES256"}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "unknown kid",
                serde_json::json!({"alg": "ES256", "kid": "x"}),
                c.clone(),
                "jwt_signature",
            ),
            (
                "typ JWE",
                serde_json::json!({"alg": "ES256", "kid": auth.kid, "typ": "JWE"}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "crit",
                serde_json::json!({"alg": "ES256", "kid": auth.kid, "crit": ["b64"]}),
                c.clone(),
                "jwt_malformed",
            ),
            (
                "no sub",
                h.clone(),
                serde_json::json!({"aud": "db", "exp": 1_300}),
                "jwt_malformed",
            ),
            (
                "sub not SPIFFE",
                h.clone(),
                serde_json::json!({"sub": "https://x", "aud": "db", "exp": 1_300}),
                "jwt_malformed",
            ),
            (
                "no aud",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "exp": 1_300}),
                "jwt_malformed",
            ),
            (
                "empty aud",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "aud": [], "exp": 1_300}),
                "jwt_malformed",
            ),
            (
                "aud of numbers",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "aud": [1], "exp": 1_300}),
                "jwt_malformed",
            ),
            (
                "no exp",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db"}),
                "jwt_malformed",
            ),
            (
                "exp a string",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": "1300"}),
                "jwt_malformed",
            ),
            (
                "nbf ahead",
                h.clone(),
                serde_json::json!({"sub": "spiffe://example.org/web", "aud": "db", "exp": 1_300, "nbf": 1_200}),
                "jwt_expired",
            ),
            (
                "claims an array",
                h.clone(),
                serde_json::json!(["sub"]),
                "jwt_malformed",
            ),
        ];
        for (what, h, c, want) in rows {
            assert_eq!(code(&forge(&h, &c, &key), "db", 1_100), want, "{what}");
        }
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.AA",
            &format!("{token}x"),
            &"A".repeat(MAX_JWT_SVID_BYTES + 1),
        ] {
            let e = validate_jwt_svid(bad, auths, "db", 1_100).unwrap_err();
            assert!(
                ["jwt_malformed", "jwt_signature", "too_large"].contains(&e.code()),
                "{bad:.40}: {e}"
            );
        }
    }

    #[test]
    fn signing_refuses_what_the_standard_forbids() {
        let (key, auth, mut claims) = setup();
        let mut rng = SeedRng::from_seed([2; 32]);
        let ed = KeyPair::generate(Algorithm::Ed25519, &mut rng);
        assert!(
            sign_jwt_svid(&ed, "k", &claims).is_err(),
            "no EdDSA JWT-SVIDs"
        );
        claims.audience.clear();
        assert!(sign_jwt_svid(&key, &auth.kid, &claims).is_err());
        claims.audience = vec!["a".into(); MAX_AUDIENCES + 1];
        assert!(sign_jwt_svid(&key, &auth.kid, &claims).is_err());
        claims.audience = vec!["a".into()];
        claims.expires_at = claims.issued_at;
        assert!(sign_jwt_svid(&key, &auth.kid, &claims).is_err());
    }

    #[test]
    fn bundle_keys_are_read_strictly() {
        let (_, auth, _) = setup();
        let good = auth.to_bundle_jwk();
        assert!(JwtAuthority::from_jwk(&good).is_ok());
        let mut v = good.clone();
        v["use"] = "x509-svid".into();
        assert!(JwtAuthority::from_jwk(&v).is_err());
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove("kid");
        assert!(JwtAuthority::from_jwk(&v).is_err());
        let mut v = good.clone();
        v["y"] = v["x"].clone(); // not on the curve
        assert!(JwtAuthority::from_jwk(&v).is_err());
        let mut v = good.clone();
        v["crv"] = "P-384".into();
        assert_eq!(
            JwtAuthority::from_jwk(&v).unwrap_err().code(),
            "unsupported_algorithm"
        );
        let mut v = good;
        v["x"] = "AAAA".into();
        assert!(JwtAuthority::from_jwk(&v).is_err());
    }
}
