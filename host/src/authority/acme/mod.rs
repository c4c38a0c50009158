//! ACME (RFC 8555) on the authority's side: the `[acme.NAME]` directories of the policy, each
//! bound to a leaf profile that decides names, key types and lifetimes exactly as for
//! `/v1/sign`, and where challenge validation may connect. The request codec is the core's
//! (`wasm_pki::wire::acme`).

pub mod config;
pub mod nonce;
pub mod validate;
