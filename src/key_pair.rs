//! Signing key pairs (P-256, Ed25519): generation, PKCS#8 (plain and encrypted) and signing.

use core::fmt;
use core::str::FromStr;

use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::pem;
use crate::public_key::PublicKey;

/// The algorithms the core generates keys for and signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// ECDSA on NIST P-256 with SHA-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa" | "ecdsa-p256" | "prime256v1" | "secp256r1" => {
                Ok(Algorithm::P256)
            }
            "ed25519" => Ok(Algorithm::Ed25519),
            _ => Err(Error::InvalidParameter(format!(
                "unknown key algorithm \"{s}\" (use p256 or ed25519)"
            ))),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::P256 => "p256",
            Algorithm::Ed25519 => "ed25519",
        })
    }
}

/// How an exported private key is protected with a passphrase (PBES2 with AES-256-CBC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyEncryption {
    /// scrypt with N=2^14, r=8, p=1: OpenSSL 3's default limits accept it.
    #[default]
    Scrypt,
    /// PBKDF2-HMAC-SHA256 with 600,000 iterations (OWASP), for tools without scrypt.
    Pbkdf2Sha256,
}

/// Bounds on the work an encrypted key may ask for, so a hostile file cannot hang or exhaust memory.
const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
const MAX_SCRYPT_MEMORY: u64 = 64 * 1024 * 1024;
const MAX_SCRYPT_WORK: u64 = 1 << 22;

enum Secret {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key with its public key. Secret material is zeroized when the value is dropped
/// (both underlying key types zeroize on drop; exports are returned in [`Zeroizing`] buffers).
pub struct KeyPair {
    secret: Secret,
    public: PublicKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("algorithm", &self.algorithm())
            .field("public", &pem::hex(&self.public.fingerprint_sha256()))
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generate a new key with entropy from `rng` (the caller picks the source: OS, WebCrypto, a seed).
    pub fn generate<R: CryptoRng + ?Sized>(algorithm: Algorithm, rng: &mut R) -> Self {
        let secret = match algorithm {
            Algorithm::P256 => Secret::P256(loop {
                // Rejection sampling: a scalar outside [1, n) is vanishingly rare (< 2^-32).
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut());
                if let Ok(k) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                    break k;
                }
            }),
            Algorithm::Ed25519 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut());
                Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&bytes))
            }
        };
        Self::from_secret(secret).expect("a freshly generated key has a valid public key")
    }

    fn from_secret(secret: Secret) -> Result<Self> {
        let spki = match &secret {
            Secret::P256(k) => {
                use pkcs8::EncodePublicKey;
                k.verifying_key().to_public_key_der()
            }
            Secret::Ed25519(k) => {
                use pkcs8::EncodePublicKey;
                k.verifying_key().to_public_key_der()
            }
        }
        .map_err(|e| Error::Encoding(e.to_string()))?;
        let public = PublicKey::from_spki(spki.as_bytes())?;
        Ok(KeyPair { secret, public })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.secret {
            Secret::P256(_) => Algorithm::P256,
            Secret::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Read an unencrypted PKCS#8 key (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        pem::check_size("private key", der)?;
        let info = pkcs8::PrivateKeyInfoRef::try_from(der)
            .map_err(|e| Error::malformed("PKCS#8 private key", e))?;
        use crate::oids::{
            describe, from_der_bytes, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519,
        };
        let oid = from_der_bytes(info.algorithm.oid.as_bytes());
        let secret = if oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = info.algorithm.parameters_oid().ok();
            if !curve.is_some_and(|c| from_der_bytes(c.as_bytes()) == OID_EC_P256) {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "EC private key on curve {} (only P-256 is supported)",
                    curve.map(|c| c.to_string()).unwrap_or_default()
                )));
            }
            Secret::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| Error::InvalidKey(format!("P-256 PKCS#8: {e}")))?,
            )
        } else if oid == OID_SIG_ED25519 {
            Secret::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| Error::InvalidKey(format!("Ed25519 PKCS#8: {e}")))?,
            )
        } else {
            return Err(Error::UnsupportedAlgorithm(format!(
                "private key algorithm {} (signing keys must be P-256 or Ed25519)",
                describe(&oid)
            )));
        };
        Self::from_secret(secret)
    }

    /// Read a passphrase-encrypted PKCS#8 key (DER `EncryptedPrivateKeyInfo`, PBES2).
    pub fn from_encrypted_pkcs8_der(der: &[u8], passphrase: &[u8]) -> Result<Self> {
        pem::check_size("private key", der)?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
            .map_err(|e| Error::malformed("encrypted PKCS#8 private key", e))?;
        check_kdf_cost(&info.encryption_algorithm)?;
        let plain = info.decrypt(passphrase).map_err(|_| {
            Error::Passphrase("wrong passphrase, or the encrypted key is damaged".into())
        })?;
        Self::from_pkcs8_der(plain.as_bytes())
    }

    /// Read a key from PEM: `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` when a passphrase is given.
    pub fn from_pem(input: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        let block = pem::decode_one(
            "private key",
            input,
            &["PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"],
        )?;
        let der = Zeroizing::new(block.der);
        match (block.label.as_str(), passphrase) {
            ("PRIVATE KEY", _) => Self::from_pkcs8_der(&der),
            ("ENCRYPTED PRIVATE KEY", Some(p)) => Self::from_encrypted_pkcs8_der(&der, p),
            ("ENCRYPTED PRIVATE KEY", None) => Err(Error::Passphrase(
                "the key is encrypted; a passphrase is required".into(),
            )),
            _ => Err(Error::Pem(
                "private key: SEC1 \"EC PRIVATE KEY\" is not read; convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
            )),
        }
    }

    /// Unencrypted PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        match &self.secret {
            Secret::P256(k) => {
                let doc = k
                    .to_pkcs8_der()
                    .map_err(|e| Error::Encoding(e.to_string()))?;
                Ok(Zeroizing::new(doc.as_bytes().to_vec()))
            }
            Secret::Ed25519(k) => {
                // RFC 8410 v1 (no embedded public key), as openssl writes it: OpenSSL 3.0 cannot
                // read the v2 form ed25519-dalek would produce.
                const PREFIX: [u8; 16] = [
                    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04,
                    0x22, 0x04, 0x20,
                ];
                let mut der = Zeroizing::new(Vec::with_capacity(48));
                der.extend_from_slice(&PREFIX);
                der.extend_from_slice(k.as_bytes());
                Ok(der)
            }
        }
    }

    /// Unencrypted PKCS#8 PEM (`PRIVATE KEY`).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        Ok(Zeroizing::new(pem::encode("PRIVATE KEY", &der)))
    }

    /// Passphrase-encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`, PBES2 + AES-256-CBC),
    /// openable with `openssl pkey -passin`. Salt and IV come from `rng`.
    pub fn to_encrypted_pkcs8_pem<R: CryptoRng>(
        &self,
        passphrase: &[u8],
        encryption: KeyEncryption,
        rng: &mut R,
    ) -> Result<String> {
        if passphrase.is_empty() {
            return Err(Error::Passphrase(
                "an empty passphrase protects nothing".into(),
            ));
        }
        let der = self.to_pkcs8_der()?;
        let params = match encryption {
            KeyEncryption::Scrypt => pkcs5::pbes2::Parameters::generate_scrypt(rng),
            KeyEncryption::Pbkdf2Sha256 => pkcs5::pbes2::Parameters::generate_pbkdf2(rng),
        }
        .map_err(|e| Error::Encoding(e.to_string()))?;
        let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| Error::Encoding(e.to_string()))?;
        let doc = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| Error::Encoding(e.to_string()))?;
        Ok(pem::encode("ENCRYPTED PRIVATE KEY", doc.as_bytes()))
    }

    /// Sign `msg`: a DER ECDSA-SHA256 signature for P-256 (deterministic, RFC 6979), 64 bytes for Ed25519.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer;
        match &self.secret {
            Secret::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            Secret::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}

impl KeyPair {
    /// Sign `msg` in the fixed-size form WebCrypto and JOSE use: r‖s (64 bytes) for P-256,
    /// the 64-byte signature for Ed25519.
    pub fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer;
        match &self.secret {
            Secret::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            Secret::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}

fn check_kdf_cost(scheme: &pkcs5::EncryptionScheme) -> Result<()> {
    let pkcs5::EncryptionScheme::Pbes2(params) = scheme else {
        return Err(Error::UnsupportedAlgorithm(
            "PBES1 key encryption (use PBES2, e.g. `openssl pkcs8 -topk8 -v2 aes-256-cbc`)".into(),
        ));
    };
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(p) => {
            if p.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(Error::Passphrase(format!(
                    "PBKDF2 asks for {} iterations, more than the limit of {MAX_PBKDF2_ITERATIONS}",
                    p.iteration_count
                )));
            }
        }
        pkcs5::pbes2::Kdf::Scrypt(p) => {
            let n = p.cost_parameter;
            let r = u64::from(p.block_size);
            let par = u64::from(p.parallelization);
            let memory = 128u64.saturating_mul(r).saturating_mul(n);
            let work = n.saturating_mul(r).saturating_mul(par);
            if memory > MAX_SCRYPT_MEMORY || work > MAX_SCRYPT_WORK {
                return Err(Error::Passphrase(format!(
                    "scrypt parameters N={n} r={r} p={par} exceed the limits of this reader"
                )));
            }
        }
        _ => {
            return Err(Error::UnsupportedAlgorithm(
                "PBES2 key derivation function".into(),
            ))
        }
    }
    Ok(())
}

impl rcgen::PublicKeyData for KeyPair {
    fn der_bytes(&self) -> &[u8] {
        self.public.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.public.algorithm()
    }
}

impl rcgen::SigningKey for KeyPair {
    fn sign(&self, msg: &[u8]) -> core::result::Result<Vec<u8>, rcgen::Error> {
        Ok(KeyPair::sign(self, msg))
    }
}
