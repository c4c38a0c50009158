//! The crate that builds the one wasm-pki `.wasm`: the npm package's JavaScript API
//! ([`js`], wasm-bindgen) and the sandbox's guest face ([`guest`], three plain exports the
//! wasmtime host drives, needing no import). Both are thin faces over the core crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
pub mod guest;
pub mod js;
