//! ACME (RFC 8555) requests: the flattened JWS every request is, the account keys and their
//! thumbprints, the typed payloads, the challenge values, and the problem documents refusals
//! become. Decoding only: no nonce store, no clock, no accounts; the host checks those and
//! verifies the signatures this codec prepares ([`AcmeJws::signature_check`]).
//!
//! - [`jws`]: the request envelope, account keys (RFC 7638 thumbprints), key changes.
//! - [`messages`]: newAccount, account updates, newOrder, finalize, revokeCert, challenge
//!   responses, external account binding; key authorizations, dns-01 and tls-alpn-01 values.
//! - [`problem`]: the ACME error kinds and problem documents.

pub mod jws;
pub mod messages;
pub mod problem;

pub use jws::{AccountKey, AcmeJws, JwsAlgorithm, JwsSigner, KeyChange};
pub use messages::{
    check_tls_alpn01, dns01_txt_value, is_valid_tls_alpn01, key_authorization,
    tls_alpn01_extension_value, AccountUpdate, AcmePayload, ChallengeResponse,
    ExternalAccountBinding, Finalize, Identifier, NewAccount, NewOrder, RevokeCert, Timestamp,
};
pub use problem::{problem_kind, AcmeError, Problem, ProblemKind, Subproblem};
