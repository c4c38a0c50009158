//! Signature verification for the algorithms the core accepts from outside.

use signature::Verifier;
use x509_parser::signature_algorithm::SignatureAlgorithm as XAlg;
use x509_parser::x509::AlgorithmIdentifier;

use crate::error::{Error, Result};
use crate::public_key::{PublicKey, VerifyingKey};

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";

/// A readable name for an algorithm OID, so errors say what was refused.
pub(crate) fn oid_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "2.16.840.1.101.3.4.3.2" => "dsa-with-SHA256",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.643.7.1.1.1.1" => "GOST R 34.10-2012",
        _ => return format!("OID {oid}"),
    };
    format!("{name} ({oid})")
}

/// Verify `sig` over `msg` with `key` under the signature algorithm `alg`.
/// `what` names the signed object for the error message.
pub(crate) fn verify(
    alg: &AlgorithmIdentifier<'_>,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<()> {
    let oid = alg.algorithm.to_id_string();
    let bad = || Error::BadSignature(what);
    let mismatch = || {
        Error::AlgorithmMismatch(format!(
            "{what} is signed with {} but the key is {}",
            oid_name(&oid),
            key.kind().name()
        ))
    };
    match (oid.as_str(), &key.key) {
        (OID_ECDSA_SHA256, VerifyingKey::P256(vk)) => {
            if alg.parameters.is_some() {
                return Err(Error::malformed(what, "ecdsa-with-SHA256 must not have parameters"));
            }
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (crate::public_key::OID_ED25519, VerifyingKey::Ed25519(vk)) => {
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| bad())?;
            vk.verify_strict(msg, &s).map_err(|_| bad())
        }
        (OID_RSA_SHA256, VerifyingKey::Rsa(pk)) => {
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new((**pk).clone());
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (OID_RSA_PSS, VerifyingKey::Rsa(pk)) => {
            let salt_len = pss_salt_len(alg)?;
            let vk = rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len((**pk).clone(), salt_len);
            let s = rsa::pss::Signature::try_from(sig).map_err(|_| bad())?;
            vk.verify(msg, &s).map_err(|_| bad())
        }
        (OID_ECDSA_SHA256 | crate::public_key::OID_ED25519 | OID_RSA_SHA256 | OID_RSA_PSS, _) => {
            Err(mismatch())
        }
        _ => Err(Error::UnsupportedAlgorithm(format!(
            "signature algorithm {} (supported: ecdsa-with-SHA256, Ed25519, sha256WithRSAEncryption, RSASSA-PSS with SHA-256)",
            oid_name(&oid)
        ))),
    }
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
    let hash = params.hash_algorithm_oid().to_id_string();
    if hash != OID_SHA256 {
        return Err(unsupported(&format!("with hash {}", oid_name(&hash))));
    }
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| Error::malformed("RSASSA-PSS parameters", "mask generation algorithm"))?;
    if mgf.mgf.to_id_string() != OID_MGF1 || mgf.hash.to_id_string() != OID_SHA256 {
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
