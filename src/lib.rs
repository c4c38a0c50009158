#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod ca;
pub mod certificate;
pub mod chain;
pub mod crl;
pub mod csr;
pub mod error;
pub mod inspect;
pub mod key_pair;
pub mod name;
mod oids;
mod pem;
pub mod policy;
pub mod protocol;
pub mod public_key;
pub mod rng;
mod signature;
pub mod spiffe;
pub mod urls;
pub mod wire;

pub use ca::{CaParams, CertificateAuthority, Issued, Tbs, Unsigned};
pub use certificate::{renew_after, Certificate};
pub use chain::{verify_chain, VerifiedChain};
pub use crl::{crl_pem, Revoked};
pub use csr::{Csr, CsrRequest, ParsedCsr, RequestedExtensions, UncheckedCsr};
pub use error::{Error, ProofFault, Result};
pub use inspect::{inspect, Description};
pub use key_pair::{Algorithm, KeyEncryption, KeyPair};
pub use name::{SanName, Subject};
pub use pem::{hex, unhex, MAX_INPUT_BYTES};
pub use policy::{
    Decision, DnsPattern, IntermediateRule, IssueOptions, NameConstraintRules, NamePattern,
    NameRules, Profile, ProfileSpec, RenewalRule, SpiffeRule, SubjectSource, Usage,
};
pub use public_key::{Jwk, KeyKind, PublicKey};
pub use rng::SeedRng;
pub use signature::{p256_signature_der, CheckAlgorithm, SignatureCheck};
pub use spiffe::SpiffeId;
pub use time::OffsetDateTime;
pub use urls::PublicUrls;
pub use wire::bundle::trust_bundle;
pub use wire::jwt_svid::{
    jwt_svid_assemble, jwt_svid_signing_input, sign_jwt_svid, validate_jwt_svid, JwtAuthority,
    JwtSvidClaims, ValidatedJwtSvid,
};
pub use wire::proof::{sign_proof, verify_proof, UnsignedProof, VerifiedProof};
