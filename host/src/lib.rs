//! The sandboxed signer: the wasm-pki module in wasmtime, a ledger, tokens, a policy and an HTTP API.
#![deny(unsafe_code)]

mod cache;
pub mod files;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod sandbox;
pub mod server;
pub mod signer;
pub mod tokens;
