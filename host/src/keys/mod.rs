//! The CA's key stores: where the CA key lives and what signs with it. `pkcs11_uri` reads the
//! RFC 7512 URIs that name a key in a PKCS#11 token (an HSM, SoftHSM).

pub mod pkcs11_uri;
