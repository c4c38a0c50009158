//! Signature verification for the algorithms the core accepts from outside: the one path every
//! signature (CSR, certificate, CRL, a raw message) goes through.

use serde::{Deserialize, Serialize};
use signature::Verifier;
use x509_parser::signature_algorithm::SignatureAlgorithm as XAlg;
use x509_parser::x509::AlgorithmIdentifier;

use crate::error::{Error, Result};
use crate::oids::*;
use crate::public_key::{PublicKey, VerifyingKey};

/// A signature scheme the core verifies, with its parameters checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// ECDSA on P-256 with SHA-256; the signature is DER (as X.509 carries it).
    EcdsaP256Sha256,
    /// ECDSA on P-256 with SHA-256; the signature is r‖s, 64 bytes (as JOSE carries it).
    EcdsaP256Sha256Fixed,
    /// Ed25519 (strict verification: no malleable or small-order signatures).
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and this salt length.
    RsaPssSha256 { salt_len: usize },
}

impl Scheme {
    /// The scheme an X.509 AlgorithmIdentifier names, or a refusal that names it.
    pub(crate) fn from_x509(alg: &AlgorithmIdentifier<'_>, what: &'static str) -> Result<Self> {
        let oid = &alg.algorithm;
        if *oid == OID_SIG_ECDSA_WITH_SHA256 {
            if alg.parameters.is_some() {
                return Err(Error::malformed(
                    what,
                    "ecdsa-with-SHA256 must not have parameters",
                ));
            }
            Ok(Scheme::EcdsaP256Sha256)
        } else if *oid == OID_SIG_ED25519 {
            Ok(Scheme::Ed25519)
        } else if *oid == OID_PKCS1_SHA256WITHRSA {
            Ok(Scheme::RsaPkcs1Sha256)
        } else if *oid == OID_PKCS1_RSASSAPSS {
            Ok(Scheme::RsaPssSha256 {
                salt_len: pss_salt_len(alg)?,
            })
        } else {
            Err(Error::UnsupportedAlgorithm(format!(
                "signature algorithm {} (supported: ecdsa-with-SHA256, Ed25519, sha256WithRSAEncryption, RSASSA-PSS with SHA-256)",
                describe(oid)
            )))
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::EcdsaP256Sha256 => "ecdsa-with-SHA256",
            Scheme::EcdsaP256Sha256Fixed => "ES256",
            Scheme::Ed25519 => "Ed25519",
            Scheme::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
            Scheme::RsaPssSha256 { .. } => "RSASSA-PSS",
        }
    }
}

/// The canonical pieces of one ECDSA P-256, Ed25519 or RSA signature, for a verifier outside the core
/// (the wasmtime host's `ring`, Node's `crypto`, WebCrypto). Everything about the encoding has
/// already been checked by the core ([`prepare`]): the verifier only does the arithmetic, so every
/// verifier refuses exactly the same inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureCheck {
    /// Which arithmetic to do.
    pub algorithm: CheckAlgorithm,
    /// P-256: the uncompressed SEC1 point (65 bytes; P-384: 97 bytes); Ed25519: the 32-byte key; RSA: the
    /// RSAPublicKey DER (PKCS#1).
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The key as a SubjectPublicKeyInfo (for verifiers that import only that form).
    #[serde(with = "hex_bytes")]
    pub spki: Vec<u8>,
    /// The signed bytes.
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
    /// P-256: r‖s, 32 bytes each (IEEE P1363, WebCrypto's form; P-384: 48 each); Ed25519: R‖S, 64 bytes; RSA:
    /// exactly as many bytes as the modulus.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// The algorithms a [`SignatureCheck`] may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckAlgorithm {
    /// ECDSA on P-256 with SHA-256 (`ring::signature::ECDSA_P256_SHA256_FIXED`).
    #[serde(rename = "ES256")]
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384, r‖s (`ring::signature::ECDSA_P384_SHA384_FIXED`): ACME
    /// account keys only; the core has no P-384 arithmetic, so only outside verifiers do it.
    #[serde(rename = "ES384")]
    EcdsaP384Sha384,
    /// Ed25519 (`ring::signature::ED25519`).
    #[serde(rename = "Ed25519")]
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (`ring::signature::RSA_PKCS1_2048_8192_SHA256`).
    #[serde(rename = "RS256")]
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
    /// (`ring::signature::RSA_PSS_2048_8192_SHA256`).
    #[serde(rename = "PS256")]
    RsaPssSha256,
}

/// An ECDSA P-256 signature in X.509's DER form from the fixed-size r‖s that WebCrypto, JOSE and
/// PKCS#11 tokens give.
pub fn p256_signature_der(rs: &[u8]) -> crate::Result<Vec<u8>> {
    let s = p256::ecdsa::Signature::from_slice(rs).map_err(|_| {
        crate::Error::InvalidParameter(format!(
            "an ECDSA P-256 signature of {} bytes is not r‖s",
            rs.len()
        ))
    })?;
    Ok(s.to_der().as_bytes().to_vec())
}

pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(d)?;
        crate::unhex("bytes", text, crate::MAX_INPUT_BYTES).map_err(serde::de::Error::custom)
    }
}

/// A signature whose encoding the core has checked, ready for the arithmetic: by the core
/// ([`Prepared::verify`]) or, for P-256 and Ed25519, by another verifier ([`Prepared::check`]).
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    sig: PreparedSig,
    what: &'static str,
}

#[derive(Clone, Debug)]
enum PreparedSig {
    P256(p256::ecdsa::Signature),
    Ed25519(ed25519_dalek::Signature),
    // RSA keeps the bytes as they came: an encoder may trim a leading zero byte.
    RsaPkcs1(rsa::pkcs1v15::Signature, Vec<u8>),
    RsaPss(rsa::pss::Signature, usize, Vec<u8>),
}

/// Check everything about a signature but the arithmetic: the scheme fits the key, the encoding
/// is strict (DER for ECDSA; for Ed25519 a canonical S, a canonical R of large order and a
/// canonical key of large order). `what` names the signed object in errors.
pub(crate) fn prepare(
    scheme: Scheme,
    key: &PublicKey,
    sig: &[u8],
    what: &'static str,
) -> Result<Prepared> {
    let bad = || Error::BadSignature(what);
    let sig = match (scheme, &key.key) {
        (Scheme::EcdsaP256Sha256, VerifyingKey::P256(_)) => {
            PreparedSig::P256(p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?)
        }
        (Scheme::EcdsaP256Sha256Fixed, VerifyingKey::P256(_)) => {
            PreparedSig::P256(p256::ecdsa::Signature::from_slice(sig).map_err(|_| bad())?)
        }
        (Scheme::Ed25519, VerifyingKey::Ed25519(vk)) => {
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| bad())?;
            ed25519_strict_encoding(vk, &s).ok_or_else(bad)?;
            PreparedSig::Ed25519(s)
        }
        (Scheme::RsaPkcs1Sha256, VerifyingKey::Rsa(pk)) => {
            rsa_strict_encoding(pk, sig).ok_or_else(bad)?;
            PreparedSig::RsaPkcs1(
                rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad())?,
                sig.to_vec(),
            )
        }
        (Scheme::RsaPssSha256 { salt_len }, VerifyingKey::Rsa(pk)) => {
            rsa_strict_encoding(pk, sig).ok_or_else(bad)?;
            PreparedSig::RsaPss(
                rsa::pss::Signature::try_from(sig).map_err(|_| bad())?,
                salt_len,
                sig.to_vec(),
            )
        }
        _ => {
            return Err(Error::AlgorithmMismatch(format!(
                "{what} is signed with {} but the key is {}",
                scheme.name(),
                key.name()
            )))
        }
    };
    Ok(Prepared { sig, what })
}

/// What `verify_strict` refuses beyond the verification equation, checked on the encodings so
/// that any Ed25519 verifier (which compares R's encoding, as ring, OpenSSL and BoringSSL do)
/// then agrees with it: S below the group order, R and the key canonical and not of small order.
fn ed25519_strict_encoding(
    vk: &ed25519_dalek::VerifyingKey,
    sig: &ed25519_dalek::Signature,
) -> Option<()> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let canonical_large = |bytes: [u8; 32]| {
        let point = CompressedEdwardsY(bytes).decompress()?;
        (point.compress().to_bytes() == bytes && !point.is_small_order()).then_some(())
    };
    Option::<curve25519_dalek::Scalar>::from(curve25519_dalek::Scalar::from_canonical_bytes(
        *sig.s_bytes(),
    ))?;
    canonical_large(*sig.r_bytes())?;
    canonical_large(vk.to_bytes())
}

/// What ring requires of an RSA key and signature beyond the arithmetic, checked for every
/// verifier: an odd modulus, an odd exponent from 3 to 2^33 - 1, and a signature exactly as long as
/// the modulus (RFC 8017 8.2.2 step 1, which the rsa crate checks too).
fn rsa_strict_encoding(pk: &rsa::PublicKey, sig: &[u8]) -> Option<()> {
    use rsa::traits::PublicKeyParts;
    let n = pk.n().as_ref().to_be_bytes_trimmed_vartime();
    let e = pk.e().to_be_bytes_trimmed_vartime();
    let e_value = e.iter().try_fold(0u64, |acc, b| {
        acc.checked_mul(256).map(|v| v + u64::from(*b))
    })?;
    let odd = |bytes: &[u8]| bytes.last().is_some_and(|b| b & 1 == 1);
    (odd(&n) && odd(&e) && (3..1 << 33).contains(&e_value) && sig.len() == n.len()).then_some(())
}

impl Prepared {
    /// The pieces for a verifier outside the core; `None` for RSA-PSS with a salt other than 32
    /// bytes, which the core verifies itself.
    pub(crate) fn check(&self, key: &PublicKey, msg: &[u8]) -> Option<SignatureCheck> {
        let (algorithm, public_key, signature) = match (&self.sig, &key.key) {
            (PreparedSig::P256(s), VerifyingKey::P256(vk)) => (
                CheckAlgorithm::EcdsaP256Sha256,
                vk.to_sec1_point(false).as_bytes().to_vec(),
                s.to_bytes().to_vec(),
            ),
            (PreparedSig::Ed25519(s), VerifyingKey::Ed25519(vk)) => (
                CheckAlgorithm::Ed25519,
                vk.to_bytes().to_vec(),
                s.to_bytes().to_vec(),
            ),
            (PreparedSig::RsaPkcs1(_, raw), VerifyingKey::Rsa(_)) => (
                CheckAlgorithm::RsaPkcs1Sha256,
                key.raw_bytes().to_vec(),
                raw.clone(),
            ),
            (PreparedSig::RsaPss(_, 32, raw), VerifyingKey::Rsa(_)) => (
                CheckAlgorithm::RsaPssSha256,
                key.raw_bytes().to_vec(),
                raw.clone(),
            ),
            _ => return None,
        };
        Some(SignatureCheck {
            algorithm,
            public_key,
            spki: key.spki_der().to_vec(),
            message: msg.to_vec(),
            signature,
        })
    }

    /// Whether [`Prepared::check`] hands this signature out (all but RSA-PSS with a salt other
    /// than 32 bytes, which ring does not verify).
    pub(crate) fn checked_outside(&self) -> bool {
        !matches!(self.sig, PreparedSig::RsaPss(_, salt, _) if salt != 32)
    }

    /// Verify `msg` with `key` (the key [`prepare`] was given) in the core.
    pub(crate) fn verify(&self, key: &PublicKey, msg: &[u8]) -> Result<()> {
        let ok = match (&self.sig, &key.key) {
            (PreparedSig::P256(s), VerifyingKey::P256(vk)) => vk.verify(msg, s).is_ok(),
            (PreparedSig::Ed25519(s), VerifyingKey::Ed25519(vk)) => {
                vk.verify_strict(msg, s).is_ok()
            }
            (PreparedSig::RsaPkcs1(s, _), VerifyingKey::Rsa(pk)) => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new((**pk).clone())
                    .verify(msg, s)
                    .is_ok()
            }
            (PreparedSig::RsaPss(s, salt_len, _), VerifyingKey::Rsa(pk)) => {
                rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len((**pk).clone(), *salt_len)
                    .verify(msg, s)
                    .is_ok()
            }
            _ => false,
        };
        ok.then_some(()).ok_or(Error::BadSignature(self.what))
    }

    /// Take another verifier's verdict on [`Prepared::check`]'s pieces.
    pub(crate) fn verdict(&self, valid: bool) -> Result<()> {
        valid.then_some(()).ok_or(Error::BadSignature(self.what))
    }
}

/// Verify `sig` over `msg` with `key` under `scheme`. `what` names the signed object.
pub(crate) fn verify(
    scheme: Scheme,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<()> {
    prepare(scheme, key, sig, what)?.verify(key, msg)
}

/// Verify an X.509 signature (CSR, certificate, CRL): the algorithm identifier picks the scheme.
pub(crate) fn verify_x509(
    alg: &AlgorithmIdentifier<'_>,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<()> {
    verify(Scheme::from_x509(alg, what)?, key, msg, sig, what)
}

/// Checks that RSASSA-PSS parameters name SHA-256 and MGF1-SHA-256, and returns the salt length.
fn pss_salt_len(alg: &AlgorithmIdentifier<'_>) -> Result<usize> {
    let unsupported = |m: &str| {
        Error::UnsupportedAlgorithm(format!(
            "RSASSA-PSS {m} (only SHA-256 with MGF1-SHA-256 is supported)"
        ))
    };
    let params = match XAlg::try_from(alg) {
        Ok(XAlg::RSASSA_PSS(p)) => p,
        _ => {
            return Err(Error::malformed(
                "RSASSA-PSS parameters",
                "missing or invalid",
            ))
        }
    };
    let hash = params.hash_algorithm_oid();
    if *hash != OID_NIST_HASH_SHA256 {
        return Err(unsupported(&format!("with hash {}", describe(hash))));
    }
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| Error::malformed("RSASSA-PSS parameters", "mask generation algorithm"))?;
    if mgf.mgf != OID_PKCS1_MGF1 || mgf.hash != OID_NIST_HASH_SHA256 {
        return Err(unsupported(
            "with a mask generation function other than MGF1-SHA-256",
        ));
    }
    if params.trailer_field() != 1 {
        return Err(Error::malformed(
            "RSASSA-PSS parameters",
            "trailer field must be 1",
        ));
    }
    let salt = params.salt_length() as usize;
    if salt > 512 {
        return Err(Error::malformed(
            "RSASSA-PSS parameters",
            "salt length too large",
        ));
    }
    Ok(salt)
}
