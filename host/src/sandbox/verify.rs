//! The host's side of a CSR signature check: the guest parsed the CSR and checked every encoding
//! ([`wasm_pki::SignatureCheck`]); the arithmetic is done here by `ring`, natively, instead of in
//! wasm where P-256 has no 64×64→128-bit multiply. The CA key never leaves the guest.

use ring::signature::{
    UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};
use wasm_pki::{CheckAlgorithm, SignatureCheck};

/// Who does the arithmetic of CSR signature verification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Verifier {
    /// The host, with `ring` (P-256, Ed25519, RSA PKCS#1 and PSS with a 32-byte salt). The default.
    #[default]
    Host,
    /// The guest, in pure wasm: every step inside the sandbox (kept for comparison).
    Sandbox,
}

/// Whether `check`'s signature verifies.
pub fn verify(check: &SignatureCheck) -> bool {
    let alg: &'static dyn ring::signature::VerificationAlgorithm = match check.algorithm {
        CheckAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_FIXED,
        CheckAlgorithm::EcdsaP384Sha384 => &ECDSA_P384_SHA384_FIXED,
        CheckAlgorithm::Ed25519 => &ED25519,
        CheckAlgorithm::RsaPkcs1Sha256 => &RSA_PKCS1_2048_8192_SHA256,
        CheckAlgorithm::RsaPssSha256 => &RSA_PSS_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(alg, &check.public_key)
        .verify(&check.message, &check.signature)
        .is_ok()
}
