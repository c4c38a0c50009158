//! The sandboxed signer, in layers as step-ca has them: [`api`] decodes HTTP and answers (the
//! only place with status codes), [`authority`] authorizes and signs (token → profile → sandbox →
//! ledger), [`db`] stores, [`sandbox`] runs the wasm-pki module in wasmtime; [`client`] and
//! [`agent`] are the node's side (a certificate's owner; the SPIFFE Workload API). See
//! ARCHITECTURE.md.
#![deny(unsafe_code)]

pub mod agent;
pub mod api;
pub mod assets;
pub mod authority;
pub mod client;
pub mod db;
pub mod files;
pub mod keys;
pub mod sandbox;
pub mod tls;
