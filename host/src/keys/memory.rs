//! The `memory` key store: the host decrypts the CA key once and signs with ring (P-256,
//! Ed25519), outside the guest's linear memory. The fast path: ring's P-256 signs natively in
//! about 20 us where the guest's pure-Rust wasm takes about 200 us.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// What a key store signs with, as the TBS's signature algorithm names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// ecdsa-with-SHA256 over P-256; the signature is DER (X.509) unless asked raw (JOSE).
    EcdsaP256Sha256,
    /// Ed25519.
    Ed25519,
}

/// Why a key could not be loaded or used.
#[derive(Debug)]
pub enum KeyError {
    /// The key is not usable as a CA key (wrong type, wrong passphrase, refused by the crypto).
    Invalid(String),
    /// The store cannot be reached now (an HSM or its session gone): worth a retry.
    Unavailable(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Invalid(m) => write!(f, "the CA key: {m}"),
            KeyError::Unavailable(m) => write!(f, "the CA key store is unavailable: {m}"),
        }
    }
}

impl std::error::Error for KeyError {}

enum Held {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The CA key in the host's memory (ring keeps it; dropped, ring zeroizes nothing, so the process
/// is the boundary).
pub struct MemoryKey {
    held: Held,
    spki: Vec<u8>,
    rng: SystemRandom,
}

impl MemoryKey {
    /// Load a PKCS#8 PEM (encrypted with `passphrase`, or not), as the CA key file holds it.
    pub fn from_pem(pem: &[u8], passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let key = wasm_pki::KeyPair::from_pem(pem, passphrase)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let rng = SystemRandom::new();
        let held = match key.algorithm() {
            wasm_pki::Algorithm::P256 => Held::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
                    .map_err(|e| KeyError::Invalid(format!("ring refused the P-256 key: {e}")))?,
            ),
            wasm_pki::Algorithm::Ed25519 => Held::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|e| KeyError::Invalid(format!("ring refused the Ed25519 key: {e}")))?,
            ),
        };
        Ok(MemoryKey {
            held,
            spki: key.public_key().spki_der().to_vec(),
            rng,
        })
    }

    /// The scheme this key signs with.
    pub fn scheme(&self) -> Scheme {
        match self.held {
            Held::P256(_) => Scheme::EcdsaP256Sha256,
            Held::Ed25519(_) => Scheme::Ed25519,
        }
    }

    /// The public key, SubjectPublicKeyInfo DER (to check it is the CA certificate's).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Sign `msg` (a TBS): DER ECDSA or Ed25519's 64 bytes, as X.509 wants them.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.held {
            Held::P256(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Invalid("ring could not sign".into())),
            Held::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_pki::{
        Algorithm, CaParams, CertificateAuthority, CsrRequest, IssueOptions, KeyEncryption,
        KeyPair, OffsetDateTime, ParsedCsr, Profile, SanName, SeedRng, Subject,
    };

    /// A certificate built by the core without its key and signed by the memory store verifies
    /// against the CA (the core's chain check), for both key types and an encrypted key file.
    #[test]
    fn the_memory_store_signs_what_the_core_builds() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for (alg, pass) in [
            (Algorithm::P256, None),
            (Algorithm::Ed25519, None),
            (Algorithm::P256, Some(b"correct horse".as_slice())),
        ] {
            let mut rng = SeedRng::from_seed([5; 32]);
            let ca = CertificateAuthority::new_root(
                &CaParams {
                    algorithm: alg,
                    ..CaParams::new("Memory CA")
                },
                now,
                &mut rng,
            )
            .unwrap();
            let pem = match pass {
                None => ca.key().unwrap().to_pkcs8_pem().unwrap().to_string(),
                Some(p) => ca
                    .key()
                    .unwrap()
                    .to_encrypted_pkcs8_pem(p, KeyEncryption::Scrypt, &mut rng)
                    .unwrap()
                    .to_string(),
            };
            let store = MemoryKey::from_pem(pem.as_bytes(), pass).unwrap();
            assert_eq!(store.spki(), ca.key().unwrap().public_key().spki_der());
            let key = KeyPair::generate(Algorithm::P256, &mut rng);
            let csr = CsrRequest {
                subject: Subject::default(),
                names: vec![SanName::dns("m.example.com").unwrap()],
            }
            .sign(&key)
            .unwrap();
            let csr = ParsedCsr::parse(csr.to_pem().as_bytes()).unwrap();
            let opts = IssueOptions {
                identity: Some(SanName::dns("m.example.com").unwrap()),
                ..Default::default()
            };
            let unsigned = ca
                .issue_unsigned(&csr, &Profile::default(), &opts, now, &mut rng)
                .unwrap();
            let signature = store.sign(&unsigned.tbs.der).unwrap();
            let issued = unsigned.assemble(&signature).unwrap();
            wasm_pki::verify_chain(
                &[issued.certificate.clone(), ca.certificate().clone()],
                now.unix_timestamp(),
            )
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        }
    }
}
