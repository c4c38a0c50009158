//! Renewal proofs: a short-lived JWS (RFC 7515 compact form, JWT claims) signed by a
//! certificate's own key, whose header carries the certificate (`x5c`) and whose audience is the
//! renew URL. It stands in for the TLS client certificate where a client cannot present one (behind
//! a TLS-terminating proxy, in a browser), as step-ca's renew token does.
//!
//! The verifier here checks the form, the signature (with the key of the certificate in `x5c`),
//! the lifetime and the audience. Whether the certificate is one this CA issued, and whether the
//! proof was used before (`jti`), is for the caller: that needs the ledger.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ProofFault, Result};
use crate::public_key::{KeyKind, PublicKey};
use crate::signature::{verify, Scheme};
use crate::{Algorithm, Certificate, KeyPair};

/// Largest proof accepted (the whole `Authorization` value), before any decoding.
pub const MAX_PROOF_BYTES: usize = 16 * 1024;
/// Longest lifetime (`exp` − `iat`) a proof may claim.
pub const MAX_PROOF_LIFETIME_SECS: i64 = 300;
/// Clock skew tolerated between the signer of a proof and the verifier.
pub const PROOF_LEEWAY_SECS: i64 = 60;
/// Lifetime of the proofs [`sign_proof`] makes.
pub const PROOF_LIFETIME_SECS: i64 = 120;
/// Most certificates an `x5c` header may carry (the leaf and its chain).
const MAX_X5C: usize = 4;
/// Longest `jti` accepted.
const MAX_JTI: usize = 128;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    x5c: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    aud: Audience,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
}

/// A proof whose form, signature, lifetime and audience were checked.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// The certificate whose key signed the proof (`x5c[0]`).
    pub certificate: Certificate,
    /// The proof's unique id: the caller refuses a second use of it.
    pub jti: String,
    /// When the proof stops being accepted (its `exp` plus the leeway), Unix seconds: a record
    /// of its use need not be kept longer.
    pub expires_at: i64,
}

fn fault(fault: ProofFault, detail: impl Into<String>) -> Error {
    Error::Proof {
        fault,
        detail: detail.into(),
    }
}

fn malformed(detail: impl Into<String>) -> Error {
    fault(ProofFault::Malformed, detail)
}

fn jose_alg(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::P256 => "ES256",
        KeyKind::Ed25519 => "EdDSA",
        KeyKind::Rsa => "RS256",
    }
}

/// Sign a renewal proof for `certificate` with its `key`, for `audience` (the renew URL), valid
/// from `now` for [`PROOF_LIFETIME_SECS`], with a random `jti` from `rng`.
pub fn sign_proof<R: CryptoRng + ?Sized>(
    key: &KeyPair,
    certificate: &Certificate,
    audience: &str,
    now: i64,
    rng: &mut R,
) -> Result<String> {
    let input = UnsignedProof::new(key.public_key(), certificate, audience, now, rng)?;
    let sig = key.sign_raw(input.signing_input.as_bytes());
    Ok(super::jws::compact(&input.signing_input, &sig))
}

/// A renewal proof for a key held outside the core (a WebCrypto `CryptoKey`): the key signs
/// [`UnsignedProof::signing_input`] and [`UnsignedProof::assemble`] makes the proof.
#[derive(Clone, Debug)]
pub struct UnsignedProof {
    /// `header.claims`, base64url: the bytes the certificate's key signs.
    pub signing_input: String,
    /// The key that must have signed it (the certificate's).
    public: PublicKey,
}

impl UnsignedProof {
    /// The proof [`sign_proof`] would make, for the key `public` of `certificate`.
    pub fn new<R: CryptoRng + ?Sized>(
        public: &PublicKey,
        certificate: &Certificate,
        audience: &str,
        now: i64,
        rng: &mut R,
    ) -> Result<Self> {
        if certificate.public_key()?.spki_der() != public.spki_der() {
            return Err(Error::InvalidParameter(
                "the key is not the certificate's key".into(),
            ));
        }
        let alg = match public.kind() {
            KeyKind::P256 => Algorithm::P256,
            KeyKind::Ed25519 => Algorithm::Ed25519,
            KeyKind::Rsa => {
                return Err(Error::UnsupportedAlgorithm(
                    "a renewal proof is signed with a P-256 or Ed25519 key".into(),
                ))
            }
        };
        if audience.is_empty() {
            return Err(Error::InvalidParameter("the audience is empty".into()));
        }
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let header = Header {
            alg: match alg {
                Algorithm::P256 => "ES256",
                Algorithm::Ed25519 => "EdDSA",
            }
            .into(),
            typ: Some("JWT".into()),
            x5c: vec![Base64::encode_string(certificate.der())],
        };
        let claims = Claims {
            aud: Audience::One(audience.into()),
            iat: now,
            nbf: Some(now),
            exp: now.saturating_add(PROOF_LIFETIME_SECS),
            jti: crate::hex(&id),
            sub: Some(certificate.serial_hex()),
        };
        Ok(UnsignedProof {
            signing_input: super::jws::signing_input(&header, &claims),
            public: public.clone(),
        })
    }

    /// The key that must sign it (the certificate's).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The proof, with the key's raw signature over the signing input (P-256: r‖s, as WebCrypto
    /// gives it; Ed25519: 64 bytes). A signature that does not verify is refused (`bad_signature`).
    pub fn assemble(&self, signature: &[u8]) -> Result<String> {
        // Raw forms only (64 bytes for both): a DER ECDSA signature is not a JWS signature.
        if signature.len() != 64
            || self
                .public
                .verify(self.signing_input.as_bytes(), signature)
                .is_err()
        {
            return Err(Error::BadSignature("renewal proof"));
        }
        Ok(super::jws::compact(&self.signing_input, signature))
    }
}

fn segment(what: &str, s: &str, limit: usize) -> Result<Vec<u8>> {
    if s.len() > limit {
        return Err(malformed(format!("the {what} is too long")));
    }
    Base64UrlUnpadded::decode_vec(s)
        .map_err(|_| malformed(format!("the {what} is not unpadded base64url")))
}

/// Check a renewal proof: its form, its signature by the key of the certificate in its `x5c`
/// header, its lifetime (at most [`MAX_PROOF_LIFETIME_SECS`], current at `now` within
/// [`PROOF_LEEWAY_SECS`]) and its audience (one of `audiences`). Refusals are
/// [`Error::Proof`], the fault saying which check failed; the signature is checked before any
/// claim is believed.
pub fn verify_proof(token: &str, audiences: &[String], now: i64) -> Result<VerifiedProof> {
    if token.len() > MAX_PROOF_BYTES {
        return Err(Error::TooLarge {
            what: "renewal proof",
            size: token.len(),
            limit: MAX_PROOF_BYTES,
        });
    }
    let Some(super::jws::Parts {
        header: h64,
        claims: c64,
        signature: s64,
        signing_input,
    }) = super::jws::split(token)
    else {
        return Err(malformed(
            "a proof is three base64url parts joined by dots (a compact JWS)",
        ));
    };
    let header: Header = serde_json::from_slice(&segment("header", h64, MAX_PROOF_BYTES)?)
        .map_err(|e| malformed(format!("the header: {e}")))?;
    let claims: Claims = serde_json::from_slice(&segment("claims", c64, MAX_PROOF_BYTES)?)
        .map_err(|e| malformed(format!("the claims: {e}")))?;
    let sig = segment("signature", s64, 1024)?;
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(malformed("the header's typ must be JWT"));
    }
    if header.x5c.is_empty() || header.x5c.len() > MAX_X5C {
        return Err(malformed(format!(
            "x5c must carry the certificate (and at most {} more)",
            MAX_X5C - 1
        )));
    }
    let der =
        Base64::decode_vec(&header.x5c[0]).map_err(|_| malformed("x5c[0] is not base64 DER"))?;
    let certificate = Certificate::from_der(der).map_err(|e| malformed(format!("x5c[0]: {e}")))?;
    let key: PublicKey = certificate
        .public_key()
        .map_err(|e| malformed(format!("x5c[0]: {e}")))?;
    let scheme = match (header.alg.as_str(), key.kind()) {
        ("ES256", KeyKind::P256) => Scheme::EcdsaP256Sha256Fixed,
        ("EdDSA", KeyKind::Ed25519) => Scheme::Ed25519,
        ("RS256", KeyKind::Rsa) => Scheme::RsaPkcs1Sha256,
        (alg, kind) => {
            return Err(fault(
                ProofFault::Signature,
                format!(
                    "alg {alg:?} does not fit the certificate's key (use {})",
                    jose_alg(kind)
                ),
            ))
        }
    };
    verify(
        scheme,
        &key,
        signing_input.as_bytes(),
        &sig,
        "renewal proof",
    )
    .map_err(|_| {
        fault(
            ProofFault::Signature,
            "the proof is not signed by the key of the certificate it carries",
        )
    })?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI {
        return Err(malformed(format!(
            "jti must have 1 to {MAX_JTI} characters"
        )));
    }
    if claims
        .sub
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case(&certificate.serial_hex()))
    {
        return Err(malformed("sub is not the certificate's serial"));
    }
    let not_before = claims.nbf.unwrap_or(claims.iat).max(claims.iat);
    if claims.exp <= claims.iat || claims.exp.saturating_sub(claims.iat) > MAX_PROOF_LIFETIME_SECS {
        return Err(fault(
            ProofFault::Expired,
            format!("a proof lives at most {MAX_PROOF_LIFETIME_SECS} s (exp − iat)"),
        ));
    }
    if now > claims.exp.saturating_add(PROOF_LEEWAY_SECS) {
        return Err(fault(ProofFault::Expired, "the proof has expired"));
    }
    if now < not_before.saturating_sub(PROOF_LEEWAY_SECS) {
        return Err(fault(
            ProofFault::Expired,
            "the proof is not valid yet (check the clock)",
        ));
    }
    let matches = |a: &String| audiences.iter().any(|x| x == a);
    let for_us = match &claims.aud {
        Audience::One(a) => matches(a),
        Audience::Many(v) => v.iter().any(matches),
    };
    if !for_us {
        return Err(fault(
            ProofFault::Audience,
            format!(
                "the proof is for another audience; this signer accepts {}",
                audiences.join(", ")
            ),
        ));
    }
    Ok(VerifiedProof {
        certificate,
        jti: claims.jti,
        expires_at: claims.exp.saturating_add(PROOF_LEEWAY_SECS),
    })
}
