//! The CA's key stores: where the CA key lives and what signs with it (`--key-store`).
//! `sandbox` leaves it in the guest, as before; `memory` holds it in the host and signs with
//! ring; `pkcs11_uri` reads the RFC 7512 URIs that name a key in a PKCS#11 token (an HSM,
//! SoftHSM). Whatever holds the key outside the guest signs only what `guard` has passed.

pub mod guard;
pub mod memory;
pub mod pkcs11;
pub mod pkcs11_uri;

use std::path::Path;

pub use memory::{KeyError, MemoryKey, Scheme};
pub use pkcs11_uri::Pkcs11Uri;

/// Where the CA key is kept, as `--key-store` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyStoreSpec {
    /// In the sandbox's linear memory, beside the CSR parser (the default, as before).
    #[default]
    Sandbox,
    /// In the host process: the key file decrypted once, signing with ring.
    Memory,
    /// In a PKCS#11 token, named by an RFC 7512 URI.
    Pkcs11(Pkcs11Uri),
}

impl std::str::FromStr for KeyStoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sandbox" => Ok(KeyStoreSpec::Sandbox),
            "memory" => Ok(KeyStoreSpec::Memory),
            uri if uri.starts_with("pkcs11:") => {
                let uri: Pkcs11Uri = uri.parse().map_err(|e| format!("{e}"))?;
                if matches!(uri.pin, pkcs11_uri::PinSource::Value(_)) {
                    return Err(format!(
                        "a pin-value on the command line shows in the process list: use pin-source=file:PATH or {}",
                        pkcs11::PIN_ENV
                    ));
                }
                Ok(KeyStoreSpec::Pkcs11(uri))
            }
            _ => Err("one of `sandbox`, `memory` or a `pkcs11:` URI (RFC 7512)".into()),
        }
    }
}

impl std::fmt::Display for KeyStoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStoreSpec::Sandbox => f.write_str("sandbox"),
            KeyStoreSpec::Memory => f.write_str("memory"),
            KeyStoreSpec::Pkcs11(uri) => write!(f, "{uri}"),
        }
    }
}

/// A CA key held outside the guest: it signs TBS bytes the guard has passed.
pub trait CaKey: Send + Sync {
    /// The scheme it signs with.
    fn scheme(&self) -> Scheme;
    /// Its public key, SubjectPublicKeyInfo DER.
    fn spki(&self) -> &[u8];
    /// Sign `tbs`: DER ECDSA or Ed25519's 64 bytes, as X.509 wants them.
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Whether it can sign now (a token that answers), for /readyz.
    fn ready(&self) -> Result<(), KeyError> {
        Ok(())
    }
}

impl CaKey for MemoryKey {
    fn scheme(&self) -> Scheme {
        MemoryKey::scheme(self)
    }

    fn spki(&self) -> &[u8] {
        MemoryKey::spki(self)
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, KeyError> {
        MemoryKey::sign(self, tbs)
    }
}

impl KeyStoreSpec {
    /// Open the store for the CA key file `key_file` (used by `memory`): `None` for `sandbox`,
    /// where the guest holds the key.
    pub fn open(
        &self,
        key_file: &Path,
        passphrase: Option<&str>,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn CaKey>>> {
        match self {
            KeyStoreSpec::Sandbox => Ok(None),
            KeyStoreSpec::Memory => {
                let pem = zeroize::Zeroizing::new(crate::files::read_secret(key_file)?);
                let key = MemoryKey::from_pem(pem.as_bytes(), passphrase.map(str::as_bytes))?;
                Ok(Some(std::sync::Arc::new(key)))
            }
            KeyStoreSpec::Pkcs11(uri) => {
                Ok(Some(std::sync::Arc::new(pkcs11::Pkcs11Key::open(uri)?)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_store_names_parse_strictly_and_a_pin_never_comes_from_the_command_line() {
        assert_eq!("sandbox".parse(), Ok(KeyStoreSpec::Sandbox));
        assert_eq!("memory".parse(), Ok(KeyStoreSpec::Memory));
        let uri = "pkcs11:token=t;object=ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin";
        let spec: KeyStoreSpec = uri.parse().unwrap();
        assert!(matches!(&spec, KeyStoreSpec::Pkcs11(u) if u.object.as_deref() == Some("ca")));
        assert_eq!(spec.to_string().parse::<KeyStoreSpec>(), Ok(spec));
        for bad in ["", "Memory", "hsm", "pkcs11:", "memory ", "file:/ca.key"] {
            assert!(bad.parse::<KeyStoreSpec>().is_err(), "{bad:?}");
        }
        let err = "pkcs11:token=t;object=ca?module-path=/m.so&pin-value=1234"
            .parse::<KeyStoreSpec>()
            .unwrap_err();
        assert!(err.contains("pin-source") && !err.contains("1234"), "{err}");
    }
}
