//! The wire codecs of the protocols the CA speaks, apart from the X.509 objects: each decodes
//! outside input into typed requests (refusing what it does not know) or encodes an answer, and
//! decides nothing about policy.
//!
//! - [`acme`]: ACME (RFC 8555) requests: the flattened JWS, account keys, payloads, problems.
//! - [`agent`]: the node-agent API's bodies (a batch of CSRs for entries, a JWT-SVID ask).
//! - [`bundle`]: the SPIFFE trust bundle (a JWK Set of X.509 and JWT authorities).
//! - [`jwt_svid`]: JWT-SVIDs, signed with a JWT authority's key and validated against a bundle.
//! - [`kbs`]: requests the Trustee KBS forwards to the external plugin.
//! - [`proof`]: renewal proofs (a JWS signed by a certificate's own key).
//! - [`vault`]: the body of Vault's PKI `sign` and `sign-intermediate` calls.

pub mod acme;
pub mod agent;
pub mod bundle;
mod jws;
pub mod jwt_svid;
pub mod kbs;
pub mod proof;
pub mod vault;
