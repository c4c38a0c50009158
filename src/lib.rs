#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod csr;
pub mod error;
pub mod key_pair;
pub mod name;
mod pem;
pub mod public_key;
mod signature;
pub mod spiffe;

pub use csr::{Csr, CsrRequest, ParsedCsr, RequestedExtensions};
pub use error::{Error, Result};
pub use key_pair::{Algorithm, KeyEncryption, KeyPair};
pub use name::{SanName, Subject};
pub use pem::MAX_INPUT_BYTES;
pub use public_key::{Jwk, KeyKind, PublicKey};
pub use spiffe::SpiffeId;
