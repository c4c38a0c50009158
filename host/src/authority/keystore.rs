//! The CA key outside the guest (`--key-store memory|pkcs11:…`): before the key store signs
//! what the guest built, the authority checks it against what it knows without the guest (the
//! CA certificate, the CSR key the host verified, the profile's bounds, the ledger's serials),
//! and afterwards that the guest's answer is exactly what was signed. A guest that asks for
//! anything else is a `sandbox_violation`: logged, counted, its instance dropped, nothing signed.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasm_pki::protocol::{SignAsk, SignScheme, Signed};
use wasm_pki::SignatureCheck;
use x509_parser::oid_registry::{Oid, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

use crate::db::Ledger;
use crate::keys::guard::{self, Expected, ExpectedCrl, ExpectedJwt, Violation};
use crate::keys::memory::MemoryKey;
use crate::keys::{CaKey, KeyError, Scheme};
use crate::sandbox::Refusal;

/// The CA key a key store holds, with the CA facts the guard compares against.
pub(super) struct HostKey {
    key: Arc<dyn CaKey>,
    /// The CA certificate's subject, DER.
    issuer: Vec<u8>,
    /// Its subject key identifier.
    key_id: Vec<u8>,
    /// Its notAfter, Unix seconds (no certificate outlives it).
    not_after: i64,
    scheme: SignScheme,
    algorithm: Oid<'static>,
    /// The signatureAlgorithm of what it signs, DER (as the core writes it).
    algorithm_id: &'static [u8],
}

/// Whose public key a certificate may carry.
pub(super) enum SubjectKey<'a> {
    /// The CSR's, as the host verified its signature in this very call.
    Verified,
    /// This SubjectPublicKeyInfo (a renewal without a CSR: the recorded certificate's key).
    Known(&'a [u8]),
}

/// What one issuing request may produce, as the host decided it.
pub(super) struct Bounds<'a> {
    /// Whose key.
    pub subject: SubjectKey<'a>,
    /// The `now` the request carried, Unix seconds.
    pub now: i64,
    /// The profile's backdating.
    pub backdate_secs: u64,
    /// The profile's longest lifetime.
    pub max_lifetime_secs: u64,
    /// An intermediate profile: CA powers allowed.
    pub may_be_ca: bool,
}

/// What the key store signed in one call: the guest's answer must be exactly that certificate.
#[derive(Default)]
pub(super) struct Countersigned {
    tbs: Vec<u8>,
    signature: Vec<u8>,
    serial: String,
    /// The certificate's signatureAlgorithm, DER (empty for a CRL or a JWT).
    algorithm_id: &'static [u8],
}

/// AlgorithmIdentifier { ecdsa-with-SHA256 } (RFC 5758: no parameters).
const ECDSA_WITH_SHA256_ID: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier { id-Ed25519 } (RFC 8410).
const ED25519_ID: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// A DER tag-length-value.
fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

impl HostKey {
    /// The key store's key for the CA certificate `ca_der` (refused if it is another key).
    pub(super) fn new(key: Arc<dyn CaKey>, ca_der: &[u8]) -> Result<Self> {
        let (_, ca) = X509Certificate::from_der(ca_der).context("the CA certificate")?;
        if ca.public_key().raw != key.spki() {
            bail!("the key store's key is not the CA certificate's key");
        }
        // The core's reading of the CA (its SKI, or the key's identifier when it has none).
        let key_id = wasm_pki::CertificateAuthority::load_public(
            wasm_pki::Certificate::from_der(ca_der.to_vec())?,
            Vec::new(),
        )?
        .key_identifier();
        let (scheme, algorithm, algorithm_id) = match key.scheme() {
            Scheme::EcdsaP256Sha256 => (
                SignScheme::EcdsaP256Sha256,
                OID_SIG_ECDSA_WITH_SHA256,
                ECDSA_WITH_SHA256_ID,
            ),
            Scheme::Ed25519 => (SignScheme::Ed25519, OID_SIG_ED25519, ED25519_ID),
        };
        Ok(HostKey {
            issuer: ca.subject().as_raw().to_vec(),
            not_after: ca.validity().not_after.timestamp(),
            key_id,
            scheme,
            algorithm,
            algorithm_id,
            key,
        })
    }

    /// Whether the key store can sign now.
    pub(super) fn ready(&self) -> Result<(), KeyError> {
        self.key.ready()
    }

    /// Check a certificate's TBS the guest asks to have signed, and sign it.
    pub(super) fn sign_certificate(
        &self,
        ledger: &dyn Ledger,
        ask: &SignAsk,
        verified: Option<&SignatureCheck>,
        bounds: &Bounds<'_>,
        done: &mut Countersigned,
    ) -> Result<Vec<u8>, Refusal> {
        self.scheme_of(ask)?;
        let subject_key = match &bounds.subject {
            SubjectKey::Known(spki) => *spki,
            SubjectKey::Verified => {
                let check = verified.ok_or_else(|| {
                    violation("a sign ask without a CSR signature the host verified".into())
                })?;
                verified_spki(check)?
            }
        };
        let lifetime = i64::try_from(bounds.max_lifetime_secs).unwrap_or(i64::MAX);
        let backdate = i64::try_from(bounds.backdate_secs).unwrap_or(i64::MAX);
        let expected = Expected {
            issuer: &self.issuer,
            issuer_key_id: &self.key_id,
            algorithm: self.algorithm.clone(),
            subject_key,
            not_before_min: bounds.now.saturating_sub(backdate),
            not_after_max: bounds.now.saturating_add(lifetime).min(self.not_after),
            may_be_ca: bounds.may_be_ca,
        };
        let serial = guard::check_tbs_certificate(&ask.tbs, &expected)
            .map_err(|v| violation(v.to_string()))?;
        let serial = wasm_pki::hex(&serial);
        match ledger.find(&serial) {
            Ok(None) => {}
            Ok(Some(_)) => return Err(violation(Violation::ReusedSerial.to_string())),
            Err(e) => {
                return Err(Refusal::KeyStore(format!(
                    "the ledger could not be asked whether the serial is new: {e:#}"
                )))
            }
        }
        countersign(&*self.key, ask, serial, self.algorithm_id, done)
    }

    /// Check a CRL's TBS against what the host asked for, and sign it.
    pub(super) fn sign_crl(
        &self,
        ask: &SignAsk,
        wanted: &CrlFacts,
        done: &mut Countersigned,
    ) -> Result<Vec<u8>, Refusal> {
        self.scheme_of(ask)?;
        let expected = ExpectedCrl {
            issuer: &self.issuer,
            issuer_key_id: &self.key_id,
            algorithm: self.algorithm.clone(),
            this_update: wanted.this_update,
            next_update: wanted.next_update,
            number: wanted.number,
            revoked: wanted.revoked.clone(),
        };
        guard::check_tbs_crl(&ask.tbs, &expected).map_err(|v| violation(v.to_string()))?;
        countersign(&*self.key, ask, String::new(), &[], done)
    }

    fn scheme_of(&self, ask: &SignAsk) -> Result<(), Refusal> {
        require_scheme(
            ask,
            self.scheme,
            &format!("the CA key is {:?}", self.scheme),
        )
    }
}

/// The JWT authority's key when a key store in the host holds the CA key: the guest gets only
/// its public key and hands out each JWT-SVID's signing input, which is checked and signed here.
/// It is loaded from `DIR/jwt.key` into the host's memory for every store (a token does not hold
/// it yet).
pub(super) struct HostJwtKey {
    key: MemoryKey,
    /// The key id the core gives this key (the bundle's `kid`).
    pub(super) kid: String,
    /// Its SubjectPublicKeyInfo, PEM, for the guest.
    pub(super) public_pem: String,
}

impl HostJwtKey {
    /// The JWT authority's key file (P-256, PKCS#8 PEM, encrypted with `passphrase` or not).
    pub(super) fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self> {
        let key = MemoryKey::from_pem(pem.as_bytes(), passphrase.map(str::as_bytes))
            .map_err(|e| anyhow::anyhow!("the JWT authority's key: {e}"))?;
        if key.scheme() != Scheme::EcdsaP256Sha256 {
            bail!("the JWT authority's key must be P-256 (JWT-SVIDs are ES256)");
        }
        let public = wasm_pki::PublicKey::from_spki(key.spki())?;
        Ok(HostJwtKey {
            kid: wasm_pki::JwtAuthority::new(public.clone()).kid,
            public_pem: public.to_pem(),
            key,
        })
    }

    /// Check the JWT-SVID signing input the guest asks for against `wanted`, and sign it.
    pub(super) fn sign(
        &self,
        ask: &SignAsk,
        wanted: &ExpectedJwt<'_>,
        done: &mut Countersigned,
    ) -> Result<Vec<u8>, Refusal> {
        require_scheme(
            ask,
            SignScheme::EcdsaP256Sha256,
            "the JWT authority's key is ES256",
        )?;
        guard::check_jwt_svid_input(&ask.tbs, wanted).map_err(|v| violation(v.to_string()))?;
        countersign(&self.key, ask, String::new(), &[], done)
    }
}

/// Refuse a sign ask for another scheme than `scheme` (the key's, as `whose` says it).
fn require_scheme(ask: &SignAsk, scheme: SignScheme, whose: &str) -> Result<(), Refusal> {
    if ask.scheme != scheme {
        return Err(violation(format!(
            "a sign ask for {:?}, but {whose}",
            ask.scheme
        )));
    }
    Ok(())
}

/// Sign what the guard passed with `key`, and keep what was signed for the check of the answer.
fn countersign(
    key: &dyn CaKey,
    ask: &SignAsk,
    serial: String,
    algorithm_id: &'static [u8],
    done: &mut Countersigned,
) -> Result<Vec<u8>, Refusal> {
    let signature = key.sign(&ask.tbs).map_err(refusal)?;
    *done = Countersigned {
        tbs: ask.tbs.clone(),
        signature: signature.clone(),
        serial,
        algorithm_id,
    };
    Ok(signature)
}

/// The CRL the host asked for, as the guard compares it.
pub(super) struct CrlFacts {
    this_update: i64,
    next_update: i64,
    number: u64,
    revoked: Vec<(Vec<u8>, i64)>,
}

impl CrlFacts {
    /// What `c` asks the guest to build.
    pub(super) fn of(c: &wasm_pki::protocol::CrlRequest) -> Result<Self, String> {
        Ok(CrlFacts {
            this_update: c.now,
            next_update: c.now.saturating_add(c.next_update_secs as i64),
            number: c.number,
            revoked: c
                .revoked
                .iter()
                .map(|e| {
                    wasm_pki::unhex("serial", &e.serial, 32)
                        .map(|s| (s, e.revoked_at))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Countersigned {
    /// Whether the guest's final reply is the certificate the key store signed, with its serial
    /// and fingerprint (what the ledger records). A refusal passes: nothing is recorded for it.
    pub(super) fn check_certificate(&self, reply: &[u8]) -> Result<(), String> {
        let signed = match wasm_pki::protocol::decode_reply::<Signed>(reply) {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Ok(()),
            Err(e) => return Err(violation(e.to_string()).reason()),
        };
        self.certificate_is_signed(&signed)
            .map_err(|m| violation(m).reason())
    }

    fn certificate_is_signed(&self, signed: &Signed) -> Result<(), String> {
        if self.tbs.is_empty() {
            return Err("an answer with a certificate the key store never signed".into());
        }
        let der = pem_rfc7468::decode_vec(signed.certificate.as_bytes())
            .map(|(_, der)| der)
            .map_err(|e| format!("the certificate is not PEM: {e}"))?;
        // Byte for byte what was signed: SEQUENCE { tbs, algorithm, BIT STRING signature }.
        let expected = tlv(
            0x30,
            &[
                &self.tbs,
                self.algorithm_id,
                &tlv(0x03, &[&[0], &self.signature]),
            ],
        );
        if der != expected {
            return Err("the certificate is not the one the key store signed".into());
        }
        use sha2::Digest;
        if signed.serial != self.serial
            || signed.fingerprint != wasm_pki::hex(&sha2::Sha256::digest(&der))
        {
            return Err("the answer's serial or fingerprint is not the certificate's".into());
        }
        Ok(())
    }

    /// Whether the guest's final reply is the CRL the key store signed.
    pub(super) fn check_crl(&self, reply: &[u8]) -> Result<(), String> {
        use x509_parser::revocation_list::CertificateRevocationList;
        let pem = match wasm_pki::protocol::decode_reply::<String>(reply) {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Ok(()),
            Err(e) => return Err(violation(e.to_string()).reason()),
        };
        let same = pem_rfc7468::decode_vec(pem.as_bytes())
            .ok()
            .and_then(|(_, der)| {
                let (rest, crl) = CertificateRevocationList::from_der(&der).ok()?;
                Some(
                    rest.is_empty()
                        && !self.tbs.is_empty()
                        && crl.tbs_cert_list.as_ref() == self.tbs.as_slice()
                        && crl.signature_value.data.as_ref() == self.signature.as_slice(),
                )
            });
        match same {
            Some(true) => Ok(()),
            _ => Err(violation("the CRL is not the one the key store signed".into()).reason()),
        }
    }
}

impl Countersigned {
    /// Whether the guest's final reply is the JWT-SVID the key store signed, with the `exp` the
    /// host asked for.
    pub(super) fn check_jwt(&self, reply: &[u8], expires_at: i64) -> Result<(), String> {
        let signed = match wasm_pki::protocol::decode_reply::<wasm_pki::protocol::JwtSigned>(reply)
        {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Ok(()),
            Err(e) => return Err(violation(e.to_string()).reason()),
        };
        let expected = std::str::from_utf8(&self.tbs)
            .ok()
            .filter(|_| !self.tbs.is_empty())
            .and_then(|input| wasm_pki::jwt_svid_assemble(input, &self.signature).ok());
        if expected.as_deref() != Some(signed.token.as_str()) || signed.expires_at != expires_at {
            return Err(
                violation("the JWT-SVID is not the one the key store signed".into()).reason(),
            );
        }
        Ok(())
    }
}

/// The SubjectPublicKeyInfo of the key whose signature the host verified: the check's SPKI,
/// refused unless its algorithm is the check's and its key is the one the signature was
/// verified with (a P-256 point may be written compressed: same X, Y of the same parity).
fn verified_spki(check: &SignatureCheck) -> Result<&[u8], Refusal> {
    use wasm_pki::CheckAlgorithm as A;
    use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
    let (rest, spki) = SubjectPublicKeyInfo::from_der(&check.spki)
        .map_err(|e| violation(format!("the verified key's SPKI: {e}")))?;
    let family = match check.algorithm {
        A::EcdsaP256Sha256 | A::EcdsaP384Sha384 => OID_KEY_TYPE_EC_PUBLIC_KEY,
        A::Ed25519 => OID_SIG_ED25519,
        A::RsaPkcs1Sha256 | A::RsaPssSha256 => OID_PKCS1_RSAENCRYPTION,
    };
    let bits = spki.subject_public_key.data.as_ref();
    let same = match (bits.first(), check.public_key.first()) {
        (Some(2 | 3), Some(4)) if family == OID_KEY_TYPE_EC_PUBLIC_KEY => {
            let half = (check.public_key.len() - 1) / 2;
            bits.len() == half + 1
                && bits[1..] == check.public_key[1..=half]
                && (bits[0] & 1) == (check.public_key[check.public_key.len() - 1] & 1)
        }
        _ => bits == check.public_key.as_slice(),
    };
    if !rest.is_empty() || spki.algorithm.algorithm != family || !same {
        return Err(violation(
            "the SPKI handed out is not the key the CSR's signature was verified with".into(),
        ));
    }
    Ok(&check.spki)
}

fn violation(reason: String) -> Refusal {
    // One line an operator can alert on; the client sees only sandbox_violation.
    eprintln!("sandbox_violation: {reason}");
    Refusal::Violation(reason)
}

impl Refusal {
    fn reason(self) -> String {
        match self {
            Refusal::Violation(m) | Refusal::KeyStore(m) => m,
        }
    }
}

fn refusal(e: KeyError) -> Refusal {
    match e {
        KeyError::Unavailable(m) => Refusal::KeyStore(m),
        KeyError::Invalid(m) => Refusal::KeyStore(format!("the key store could not sign: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_pki::{Algorithm, CaParams, CertificateAuthority, OffsetDateTime, SeedRng};

    /// The certificate the answer is compared with, byte for byte, is the one the core
    /// assembles from the same TBS and signature, for both CA algorithms (and a TBS long enough
    /// for a two-byte length).
    #[test]
    fn the_expected_certificate_is_the_cores_assembly() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for (alg, id) in [
            (Algorithm::P256, ECDSA_WITH_SHA256_ID),
            (Algorithm::Ed25519, ED25519_ID),
        ] {
            let mut rng = SeedRng::from_seed([9; 32]);
            let mut p = CaParams::new("Assembly CA with a name long enough to matter");
            p.algorithm = alg;
            let ca = CertificateAuthority::new_root(&p, now, &mut rng).unwrap();
            let tbs = ca.crl_unsigned(&[], now, 86_400, 1).unwrap();
            let sig = ca.key().unwrap().sign(&tbs.der);
            let expected = tlv(0x30, &[&tbs.der, id, &tlv(0x03, &[&[0], &sig])]);
            assert_eq!(expected, tbs.assemble(&sig), "{alg}");
            // The root itself: its TBS is over 255 bytes.
            let der = ca.certificate().der();
            let (_, cert) = X509Certificate::from_der(der).unwrap();
            let raw_tbs = cert.tbs_certificate.as_ref();
            assert!(raw_tbs.len() > 255);
            let rebuilt = tlv(
                0x30,
                &[
                    raw_tbs,
                    id,
                    &tlv(0x03, &[&[0], cert.signature_value.data.as_ref()]),
                ],
            );
            assert_eq!(rebuilt, der, "{alg}");
        }
    }
}
