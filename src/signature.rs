//! Signature verification for the algorithms the core accepts from outside: the one path every
//! signature (CSR, certificate, CRL, a raw message) goes through.

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

/// Verify `sig` over `msg` with `key` under `scheme`. `what` names the signed object.
pub(crate) fn verify(
    scheme: Scheme,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<()> {
    let bad = || Error::BadSignature(what);
    match (scheme, &key.key) {
        (Scheme::EcdsaP256Sha256, VerifyingKey::P256(vk)) => {
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (Scheme::EcdsaP256Sha256Fixed, VerifyingKey::P256(vk)) => {
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (Scheme::Ed25519, VerifyingKey::Ed25519(vk)) => {
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| bad())?;
            vk.verify_strict(msg, &s).map_err(|_| bad())
        }
        (Scheme::RsaPkcs1Sha256, VerifyingKey::Rsa(pk)) => {
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new((**pk).clone());
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (Scheme::RsaPssSha256 { salt_len }, VerifyingKey::Rsa(pk)) => {
            let vk =
                rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len((**pk).clone(), salt_len);
            let s = rsa::pss::Signature::try_from(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        _ => Err(Error::AlgorithmMismatch(format!(
            "{what} is signed with {} but the key is {}",
            scheme.name(),
            key.name()
        ))),
    }
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
