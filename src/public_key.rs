//! Public keys as they arrive from outside (CSRs, certificates): P-256, Ed25519 and RSA.

use rcgen::{PublicKeyData, SignatureAlgorithm as RcgenAlg};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{Error, Result};
use crate::oids::{
    describe, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use crate::pem;

/// Smallest RSA modulus accepted in a CSR; smaller keys are refused as weak.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted; larger keys cost too much to verify for untrusted input.
pub const RSA_MAX_BITS: usize = 4096;

/// The kind of a public key the core accepts from outside (in a CSR or a certificate), and the
/// vocabulary of a profile's `keyTypes`. Not the same set as [`crate::Algorithm`], which names the
/// keys this library generates and signs with (no RSA): a CSR may carry RSA, our keys never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    P256,
    /// Ed25519.
    Ed25519,
    /// RSA, 2048 to 4096 bits (the size is [`PublicKey::bits`]).
    Rsa,
}

impl From<crate::Algorithm> for KeyKind {
    fn from(a: crate::Algorithm) -> Self {
        match a {
            crate::Algorithm::P256 => KeyKind::P256,
            crate::Algorithm::Ed25519 => KeyKind::Ed25519,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum VerifyingKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(Box<rsa::PublicKey>),
}

/// A validated public key: its SubjectPublicKeyInfo DER and a ready-to-use verifier.
#[derive(Clone, Debug)]
pub struct PublicKey {
    spki: Vec<u8>,
    raw: Vec<u8>,
    kind: KeyKind,
    bits: usize,
    pub(crate) key: VerifyingKey,
}

/// A public key as a JSON Web Key (RFC 7517), importable by WebCrypto.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: &'static str,
    /// Curve for EC/OKP keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    /// X coordinate (EC) or the public key (OKP), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Y coordinate (EC), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

fn b64url(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

impl PublicKey {
    /// Parse and validate a SubjectPublicKeyInfo (DER, or PEM labelled `PUBLIC KEY`).
    pub fn from_spki(input: &[u8]) -> Result<Self> {
        let der = pem::der_from_pem_or_der("public key", input, &["PUBLIC KEY"])?;
        let (rest, spki) = SubjectPublicKeyInfo::from_der(&der)
            .map_err(|e| Error::malformed("SubjectPublicKeyInfo", e))?;
        if !rest.is_empty() {
            return Err(Error::malformed("SubjectPublicKeyInfo", "trailing data"));
        }
        Self::from_parsed(&spki)
    }

    pub(crate) fn from_parsed(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self> {
        let alg = &spki.algorithm.algorithm;
        let raw = spki.subject_public_key.data.to_vec();
        let (kind, bits, key) = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve.as_ref() != Some(&OID_EC_P256) {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "EC key on curve {} (only P-256 is supported)",
                    curve
                        .as_ref()
                        .map(|c| describe(c))
                        .unwrap_or_else(|| "(none given)".into())
                )));
            }
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw)
                .map_err(|_| Error::InvalidKey("P-256 point is not on the curve".into()))?;
            (KeyKind::P256, 256, VerifyingKey::P256(vk))
        } else if *alg == OID_SIG_ED25519 {
            if spki.algorithm.parameters.is_some() {
                return Err(Error::InvalidKey(
                    "Ed25519 key must not have parameters".into(),
                ));
            }
            let bytes: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| Error::InvalidKey("Ed25519 key is not 32 bytes".into()))?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| Error::InvalidKey("Ed25519 point is invalid".into()))?;
            if vk.is_weak() {
                return Err(Error::InvalidKey(
                    "Ed25519 key is a weak (small-order) point".into(),
                ));
            }
            (KeyKind::Ed25519, 256, VerifyingKey::Ed25519(vk))
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::traits::PublicKeyParts;
            let modulus_guess = raw.len().saturating_mul(8);
            if modulus_guess > RSA_MAX_BITS + 512 {
                return Err(Error::InvalidKey(format!(
                    "RSA key is larger than {RSA_MAX_BITS} bits"
                )));
            }
            let pk = rsa::PublicKey::from_pkcs1_der(&raw)
                .map_err(|e| Error::InvalidKey(format!("RSA public key: {e}")))?;
            let bits = pk.n().bit_width() as usize;
            if bits < RSA_MIN_BITS {
                return Err(Error::InvalidKey(format!(
                    "RSA-{bits} is too weak; at least {RSA_MIN_BITS} bits are required"
                )));
            }
            if bits > RSA_MAX_BITS {
                return Err(Error::InvalidKey(format!(
                    "RSA-{bits} is larger than the {RSA_MAX_BITS}-bit maximum"
                )));
            }
            (KeyKind::Rsa, bits, VerifyingKey::Rsa(Box::new(pk)))
        } else {
            return Err(Error::UnsupportedAlgorithm(format!(
                "public key algorithm {} (supported: P-256, Ed25519, RSA)",
                describe(alg)
            )));
        };
        Ok(PublicKey {
            spki: spki.raw.to_vec(),
            raw,
            kind,
            bits,
            key,
        })
    }

    /// The subjectPublicKey bits: the SEC1 point, the Ed25519 key or the RSAPublicKey DER.
    pub(crate) fn raw_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The key type.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key size in bits: 256 for P-256 and Ed25519, the modulus size for RSA.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// A short human name: `P-256`, `Ed25519`, `RSA-2048`.
    pub fn name(&self) -> String {
        match self.kind {
            KeyKind::P256 => "P-256".into(),
            KeyKind::Ed25519 => "Ed25519".into(),
            KeyKind::Rsa => format!("RSA-{}", self.bits),
        }
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki)
    }

    /// SHA-256 over the SubjectPublicKeyInfo DER (as `openssl pkey -pubin -outform DER | sha256sum`).
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    /// Key identifier for SKI/AKI: RFC 7093 method 1 (SHA-256 of the key bits, first 160 bits).
    pub fn key_identifier(&self) -> Vec<u8> {
        Sha256::digest(&self.raw)[..20].to_vec()
    }

    /// The key as a JWK (public part only).
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = Jwk {
            kty: "EC",
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match &self.key {
            VerifyingKey::P256(vk) => {
                let point = vk.to_sec1_point(false);
                let bytes = point.as_bytes();
                jwk.crv = Some("P-256");
                jwk.x = Some(b64url(&bytes[1..33]));
                jwk.y = Some(b64url(&bytes[33..65]));
            }
            VerifyingKey::Ed25519(vk) => {
                jwk.kty = "OKP";
                jwk.crv = Some("Ed25519");
                jwk.x = Some(b64url(vk.as_bytes()));
            }
            VerifyingKey::Rsa(pk) => {
                use rsa::traits::PublicKeyParts;
                jwk.kty = "RSA";
                jwk.n = Some(b64url(&pk.n().to_be_bytes_trimmed_vartime()));
                jwk.e = Some(b64url(&pk.e().to_be_bytes_trimmed_vartime()));
            }
        }
        jwk
    }
}

impl PublicKey {
    /// Verify a signature over `msg`: P-256 ECDSA-SHA256 as r‖s (WebCrypto) or DER, Ed25519,
    /// or RSA PKCS#1 v1.5 with SHA-256.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        use crate::signature::{verify, Scheme};
        match self.kind {
            KeyKind::P256 if sig.len() == 64 => {
                // WebCrypto's r‖s: re-encode as DER and take the one verification path.
                let s = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| Error::BadSignature("message"))?;
                verify(
                    Scheme::EcdsaP256Sha256,
                    self,
                    msg,
                    s.to_der().as_bytes(),
                    "message",
                )
            }
            KeyKind::P256 => verify(Scheme::EcdsaP256Sha256, self, msg, sig, "message"),
            KeyKind::Ed25519 => verify(Scheme::Ed25519, self, msg, sig, "message"),
            KeyKind::Rsa => verify(Scheme::RsaPkcs1Sha256, self, msg, sig, "message"),
        }
    }
}

impl PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static RcgenAlg {
        match self.kind {
            KeyKind::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
            KeyKind::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};

    #[test]
    fn jwk_holds_the_same_point_as_the_spki() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let key = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        let jwk = key.public_key().to_jwk();
        assert_eq!((jwk.kty, jwk.crv), ("EC", Some("P-256")));
        let mut point = vec![4u8];
        point.extend(Base64UrlUnpadded::decode_vec(jwk.x.as_ref().unwrap()).unwrap());
        point.extend(Base64UrlUnpadded::decode_vec(jwk.y.as_ref().unwrap()).unwrap());
        assert_eq!(point, key.public_key().der_bytes());

        let key = crate::KeyPair::generate(crate::Algorithm::Ed25519, &mut rng);
        let jwk = key.public_key().to_jwk();
        assert_eq!((jwk.kty, jwk.crv), ("OKP", Some("Ed25519")));
        assert_eq!(
            Base64UrlUnpadded::decode_vec(jwk.x.as_ref().unwrap()).unwrap(),
            key.public_key().der_bytes()
        );
        assert_eq!(key.public_key().fingerprint_sha256().len(), 32);
        let sig = key.sign_raw(b"msg");
        key.public_key().verify(b"msg", &sig).unwrap();
        assert!(key.public_key().verify(b"other", &sig).is_err());
        let p = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        p.public_key().verify(b"m", &p.sign_raw(b"m")).unwrap();
        p.public_key().verify(b"m", &p.sign(b"m")).unwrap();
        assert!(p.public_key().verify(b"m", &[0u8; 64]).is_err());
    }

    #[test]
    fn spki_parsing_refuses_bad_keys() {
        assert!(PublicKey::from_spki(b"").is_err());
        assert!(PublicKey::from_spki(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        // An Ed25519 SPKI with 31 key bytes.
        let mut bad = vec![
            0x30, 0x29, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x20, 0x00,
        ];
        bad.extend([1u8; 31]);
        assert_eq!(
            PublicKey::from_spki(&bad).unwrap_err().code(),
            "invalid_key"
        );
    }
}
