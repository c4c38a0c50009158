//! The sandbox entry points (feature `sandbox`): a JSON request/response protocol that the wasmtime
//! host drives through three plain exports. It needs no import: the host passes the time and a
//! fresh random seed inside every request, and the CA stays loaded in the instance between calls.
//!
//! Exports (wasm32): `wpki_buffer(len) -> ptr` sizes the request buffer and returns where the host
//! writes the request; `wpki_call(len) -> len` handles it and returns the response length;
//! `wpki_response() -> ptr` says where the response is. No `unsafe`: the guest only hands out
//! addresses of its own `Vec`s, and the host copies bytes while the guest is not running.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::crl::Revoked;
use crate::{
    crl_pem, CertificateAuthority, Error, IssueOptions, OffsetDateTime, ParsedCsr, Profile,
    SanName, SeedRng,
};

/// Largest request the guest accepts; the host caps inputs before they get here.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

thread_local! {
    static CA: RefCell<Option<CertificateAuthority>> = const { RefCell::new(None) };
    static REQUEST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RESPONSE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A request from the host.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
enum Request {
    /// Load the CA (certificate PEM, possibly followed by its chain) and its key into this instance.
    #[serde(rename_all = "camelCase")]
    LoadCa {
        cert_pem: String,
        key_pem: String,
        passphrase: Option<String>,
    },
    /// Issue a certificate for an untrusted CSR under a profile.
    #[serde(rename_all = "camelCase")]
    Sign {
        csr_pem: String,
        profile: Box<Profile>,
        identity: Option<String>,
        lifetime_secs: Option<u64>,
        now: i64,
        seed: String,
        renew_fraction: Option<f64>,
    },
    /// Sign a CRL.
    #[serde(rename_all = "camelCase")]
    Crl {
        revoked: Vec<RevokedEntry>,
        now: i64,
        next_update_secs: u64,
        number: u64,
    },
    /// Describe a certificate or CSR.
    Inspect { pem: String },
    /// Test builds only: never returns, to prove the host's deadline.
    #[cfg(feature = "sandbox-test-hooks")]
    Spin,
    /// Test builds only: allocates `bytes`, to prove the host's memory cap.
    #[cfg(feature = "sandbox-test-hooks")]
    Grow { bytes: usize },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokedEntry {
    serial: String,
    revoked_at: i64,
}

/// What `sign` returns.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Signed {
    certificate: String,
    chain: Vec<String>,
    serial: String,
    subject: String,
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
    renew_after: i64,
    fingerprint: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Loaded {
    subject: String,
    not_after: i64,
    fingerprint: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Response<T: Serialize> {
    Ok(T),
    Error(ErrorBody<'static>),
}

fn time(now: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(now)
        .map_err(|e| Error::InvalidParameter(format!("now: {e}")))
}

/// Hex digits to bytes, for `what` (at most `max` bytes). Works on bytes, so non-ASCII input
/// is an error rather than a slicing panic.
fn unhex(what: &str, hex: &str, max: usize) -> Result<Vec<u8>, Error> {
    let bad = || Error::InvalidParameter(format!("{what} must be hex digits, at most {max} bytes"));
    let digits = hex.as_bytes();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || digits.len() > 2 * max {
        return Err(bad());
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8).ok_or_else(bad);
    digits
        .chunks(2)
        .map(|p| Ok(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

fn seed(hex: &str) -> Result<SeedRng, Error> {
    let bytes = zeroize::Zeroizing::new(unhex("seed", hex, 32)?);
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::InvalidParameter("seed must be 64 hex digits".into()))?;
    Ok(SeedRng::from_seed(seed))
}

fn with_ca<T>(f: impl FnOnce(&CertificateAuthority) -> Result<T, Error>) -> Result<T, Error> {
    CA.with(|ca| match ca.borrow().as_ref() {
        Some(ca) => f(ca),
        None => Err(Error::InvalidParameter(
            "no CA is loaded in this sandbox instance".into(),
        )),
    })
}

fn encode<T: Serialize>(r: Result<T, Error>) -> Vec<u8> {
    let body = match r {
        Ok(v) => serde_json::to_vec(&Response::Ok(v)),
        Err(e) => serde_json::to_vec(&Response::<()>::Error(ErrorBody {
            code: e.code(),
            message: e.to_string(),
        })),
    };
    body.unwrap_or_else(|_| {
        br#"{"error":{"code":"encoding","message":"response encoding failed"}}"#.to_vec()
    })
}

/// Handle one request (JSON) and return the response (JSON `{"ok": …}` or `{"error": {code, message}}`).
pub fn handle(request: &[u8]) -> Vec<u8> {
    if request.len() > MAX_REQUEST_BYTES {
        return encode::<()>(Err(Error::TooLarge {
            what: "sandbox request",
            size: request.len(),
            limit: MAX_REQUEST_BYTES,
        }));
    }
    let req: Request = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => {
            return encode::<()>(Err(Error::InvalidParameter(format!(
                "sandbox request: {e}"
            ))))
        }
    };
    match req {
        Request::LoadCa {
            cert_pem,
            key_pem,
            passphrase,
        } => encode((|| {
            let ca = CertificateAuthority::from_pem(
                cert_pem.as_bytes(),
                key_pem.as_bytes(),
                passphrase.as_deref().map(str::as_bytes),
            )?;
            let loaded = Loaded {
                subject: crate::inspect::describe_certificate(ca.certificate())?.subject,
                not_after: ca.certificate().not_after(),
                fingerprint: ca.certificate().fingerprint_sha256(),
            };
            CA.with(|slot| *slot.borrow_mut() = Some(ca));
            Ok(loaded)
        })()),
        Request::Sign {
            csr_pem,
            profile,
            identity,
            lifetime_secs,
            now,
            seed: s,
            renew_fraction,
        } => encode((|| {
            let now = time(now)?;
            let mut rng = seed(&s)?;
            let csr = ParsedCsr::parse(csr_pem.as_bytes())?;
            let identity = identity.as_deref().map(SanName::parse).transpose()?;
            with_ca(|ca| {
                let issued = ca.issue(
                    &csr,
                    &profile,
                    &IssueOptions {
                        identity,
                        lifetime_secs,
                    },
                    now,
                    &mut rng,
                )?;
                let c = &issued.certificate;
                let mut chain = vec![ca.certificate().to_pem()];
                chain.extend(ca.chain().iter().map(|c| c.to_pem()));
                Ok(Signed {
                    certificate: c.to_pem(),
                    chain,
                    serial: c.serial_hex(),
                    subject: issued.subject.to_string(),
                    names: issued.names.iter().map(ToString::to_string).collect(),
                    not_before: c.not_before(),
                    not_after: c.not_after(),
                    renew_after: c.renew_after(renew_fraction.unwrap_or(0.5))?,
                    fingerprint: c.fingerprint_sha256(),
                })
            })
        })()),
        Request::Crl {
            revoked,
            now,
            next_update_secs,
            number,
        } => encode((|| {
            let revoked = revoked
                .iter()
                .map(|r| {
                    Ok(Revoked {
                        serial: unhex("serial", &r.serial, 32)?,
                        revoked_at: r.revoked_at,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let now = time(now)?;
            with_ca(|ca| Ok(crl_pem(&ca.crl(&revoked, now, next_update_secs, number)?)))
        })()),
        Request::Inspect { pem } => encode(crate::inspect(pem.as_bytes())),
        #[cfg(feature = "sandbox-test-hooks")]
        Request::Spin => {
            let mut x: u64 = 1;
            loop {
                x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        #[cfg(feature = "sandbox-test-hooks")]
        Request::Grow { bytes } => {
            let v = vec![1u8; bytes];
            encode(Ok(core::hint::black_box(v).len()))
        }
    }
}

/// Size the request buffer to `len` bytes and return its address (0 when too large).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_buffer(len: u32) -> u32 {
    let len = len as usize;
    if len > MAX_REQUEST_BYTES {
        return 0;
    }
    REQUEST.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.resize(len, 0);
        b.as_mut_ptr() as usize as u32
    })
}

/// Handle the `len` request bytes in the buffer; returns the response length.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_call(len: u32) -> u32 {
    let response = REQUEST.with(|b| {
        let b = b.borrow();
        handle(&b[..(len as usize).min(b.len())])
    });
    RESPONSE.with(|r| {
        let mut r = r.borrow_mut();
        *r = response;
        r.len() as u32
    })
}

/// Address of the last response.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn wpki_response() -> u32 {
    RESPONSE.with(|r| r.borrow().as_ptr() as usize as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(json: serde_json::Value) -> serde_json::Value {
        serde_json::from_slice(&handle(json.to_string().as_bytes())).unwrap()
    }

    #[test]
    fn protocol_round_trip_and_errors() {
        let mut rng = SeedRng::from_seed([9; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ca = CertificateAuthority::new_root(&crate::CaParams::new("Sandbox CA"), now, &mut rng)
            .unwrap();

        let r = call(
            serde_json::json!({"op": "loadCa", "certPem": ca.certificate().to_pem(), "keyPem": ca.key().to_pkcs8_pem().unwrap().as_str()}),
        );
        assert_eq!(r["ok"]["subject"], "CN=Sandbox CA", "{r}");
        let key = crate::KeyPair::generate(crate::Algorithm::P256, &mut rng);
        let csr = crate::CsrRequest {
            subject: crate::Subject::default(),
            names: vec![SanName::dns("s.example.com").unwrap()],
        }
        .sign(&key)
        .unwrap();
        let req = |seed: &str| serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "identity": "s.example.com", "now": 1_800_000_000, "seed": seed});
        let a = call(req(&"11".repeat(32)));
        assert_eq!(a["ok"]["serial"].as_str().unwrap().len(), 40, "{a}");
        let b = call(req(&"22".repeat(32)));
        assert_eq!(a["ok"]["names"][0], "DNS:s.example.com", "{a}");
        assert_ne!(a["ok"]["serial"], b["ok"]["serial"]);
        assert_eq!(
            a["ok"]["renewAfter"],
            a["ok"]["notBefore"].as_i64().unwrap() + 43_230
        );
        let crl = call(
            serde_json::json!({"op": "crl", "revoked": [{"serial": a["ok"]["serial"], "revokedAt": 1_800_000_100}], "now": 1_800_000_200, "nextUpdateSecs": 3600, "number": 1}),
        );
        assert!(
            crl["ok"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN X509 CRL-----"),
            "{crl}"
        );
        for bad in [
            serde_json::json!({"op": "nope"}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {"bogus": 1}, "now": 0, "seed": "00".repeat(32)}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "now": 0, "seed": "zz"}),
            serde_json::json!({"op": "sign", "csrPem": csr.to_pem(), "profile": {}, "now": 0, "seed": "é".repeat(32)}),
            serde_json::json!({"op": "crl", "revoked": [{"serial": "aéb", "revokedAt": 0}], "now": 0, "nextUpdateSecs": 1, "number": 1}),
        ] {
            assert_eq!(call(bad)["error"]["code"], "invalid_parameter");
        }
        let v: serde_json::Value = serde_json::from_slice(&handle(b"{not json")).unwrap();
        assert_eq!(v["error"]["code"], "invalid_parameter");
        let v: serde_json::Value =
            serde_json::from_slice(&handle(&vec![b' '; MAX_REQUEST_BYTES + 1])).unwrap();
        assert_eq!(v["error"]["code"], "too_large");
    }
}
