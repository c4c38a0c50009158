//! The CA's key stores: where the CA key lives and what signs with it. `memory` holds the key in
//! the host and signs with ring; `guard` checks what the guest asks to have signed against what
//! the host knows; `pkcs11_uri` reads the RFC 7512 URIs that name a key in a PKCS#11 token (an
//! HSM, SoftHSM).

pub mod guard;
pub mod memory;
pub mod pkcs11_uri;
