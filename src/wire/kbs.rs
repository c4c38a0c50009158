//! Requests a Trustee KBS external plugin receives, decoded. KBS strips its own prefix and the
//! backend name from `/kbs/v0/external/<backend>/<segments>?<query>` and forwards the method, the
//! remaining segments, the query as a map and the body; no headers, no attestation claims.
//! [`decode`] turns that into a typed [`KbsRequest`], strictly (unknown routes, parameters and
//! fields are refused). Which routes need KBS's admin credential, and which answers KBS must
//! encrypt to the TEE, depend on the method and path only ([`requires_admin`],
//! [`needs_encryption`]).

use std::collections::BTreeMap;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;

use crate::{Error, SanName};

/// Largest query value or body accepted (a CSR in base64url fits with room to spare).
pub const MAX_FIELD_BYTES: usize = 16 * 1024;
/// Most path segments or query parameters accepted.
const MAX_PARTS: usize = 8;

/// A route of the plugin (the first path segment after the backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KbsRoute {
    /// `GET sign?profile=&identity=&csr=`: attested issuance.
    Sign,
    /// `GET ca`: the CA bundle.
    Ca,
    /// `GET bundle`: the SPIFFE trust bundle.
    Bundle,
    /// `POST tokens`: create an enrolment token (admin).
    Tokens,
    /// `POST revoke`: revoke a certificate (admin).
    Revoke,
    /// `GET certificates`: list issued certificates (admin).
    Certificates,
}

impl KbsRoute {
    fn of(path: &[String]) -> Option<Self> {
        match path {
            [one] => match one.as_str() {
                "sign" => Some(KbsRoute::Sign),
                "ca" => Some(KbsRoute::Ca),
                "bundle" => Some(KbsRoute::Bundle),
                "tokens" => Some(KbsRoute::Tokens),
                "revoke" => Some(KbsRoute::Revoke),
                "certificates" => Some(KbsRoute::Certificates),
                _ => None,
            },
            _ => None,
        }
    }

    fn method(self) -> &'static str {
        match self {
            KbsRoute::Sign | KbsRoute::Ca | KbsRoute::Bundle | KbsRoute::Certificates => "GET",
            KbsRoute::Tokens | KbsRoute::Revoke => "POST",
        }
    }

    fn attested(self) -> bool {
        matches!(self, KbsRoute::Sign | KbsRoute::Ca | KbsRoute::Bundle)
    }
}

/// Whether KBS must check its admin credential before forwarding: everything but the attested
/// GET routes, unknown paths included (closed by default).
pub fn requires_admin(method: &str, path: &[String]) -> bool {
    !matches!(KbsRoute::of(path), Some(r) if r.attested() && method == r.method())
}

/// Whether KBS must encrypt the answer to the TEE's key: every attested route (the in-guest
/// client expects a JWE on every answer); admin answers go to the operator in clear.
pub fn needs_encryption(method: &str, path: &[String]) -> bool {
    !requires_admin(method, path)
}

/// A decoded plugin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KbsRequest {
    /// Sign `csr_der` for `identity` under `profile` (attested; the KBS policy bound the
    /// identity to the TEE's claims).
    Sign {
        /// The profile's name.
        profile: String,
        /// The identity the query names.
        identity: SanName,
        /// The CSR, DER.
        csr_der: Vec<u8>,
    },
    /// The CA bundle.
    Ca,
    /// The SPIFFE trust bundle.
    Bundle,
    /// Create an enrolment token.
    CreateToken(TokenOrder),
    /// Revoke a certificate (and its lineage).
    Revoke(RevokeOrder),
    /// List issued certificates.
    Certificates,
}

/// The body of `POST tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenOrder {
    /// The profile's name.
    pub profile: String,
    /// The identity bound to the token.
    #[serde(default)]
    pub identity: Option<String>,
    /// How many certificates it may obtain (default 1).
    #[serde(default = "one")]
    pub uses: u32,
    /// Lifetime, e.g. "1h" (default one hour).
    #[serde(default)]
    pub ttl: Option<String>,
}

fn one() -> u32 {
    1
}

/// The body of `POST revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeOrder {
    /// The serial, hex.
    pub serial: String,
    /// Also revoke its lineage.
    #[serde(default)]
    pub lineage: bool,
}

/// Why a request was refused, in the plugin's terms (the host picks the status code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KbsError {
    /// No such route.
    NotFound(String),
    /// The route exists for another method.
    MethodNotAllowed {
        /// The method the route takes.
        allowed: &'static str,
    },
    /// The route is right but a parameter or the body is not.
    Bad(Error),
}

impl core::fmt::Display for KbsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KbsError::NotFound(p) => write!(f, "no route {p}"),
            KbsError::MethodNotAllowed { allowed } => write!(f, "this route takes {allowed}"),
            KbsError::Bad(e) => write!(f, "{e}"),
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KbsError> {
    serde_json::from_slice(body).map_err(|e| KbsError::Bad(Error::malformed("request body", e)))
}

fn bad(m: impl Into<String>) -> KbsError {
    KbsError::Bad(Error::InvalidParameter(m.into()))
}

fn check_size(what: &'static str, len: usize) -> Result<(), KbsError> {
    if len > MAX_FIELD_BYTES {
        return Err(KbsError::Bad(Error::TooLarge {
            what,
            size: len,
            limit: MAX_FIELD_BYTES,
        }));
    }
    Ok(())
}

/// Decode what KBS forwarded.
pub fn decode(
    method: &str,
    path: &[String],
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<KbsRequest, KbsError> {
    if path.len() > MAX_PARTS || query.len() > MAX_PARTS {
        return Err(bad("too many path segments or query parameters"));
    }
    for (k, v) in query {
        check_size("a query parameter", k.len() + v.len())?;
    }
    check_size("the body", body.len())?;
    let route = KbsRoute::of(path).ok_or_else(|| {
        let shown: String = path.join("/").chars().take(64).collect();
        KbsError::NotFound(shown)
    })?;
    if method != route.method() {
        return Err(KbsError::MethodNotAllowed {
            allowed: route.method(),
        });
    }
    let allowed: &[&str] = if route == KbsRoute::Sign {
        &["profile", "identity", "csr"]
    } else {
        &[]
    };
    if let Some(k) = query.keys().find(|k| !allowed.contains(&k.as_str())) {
        let k: String = k.chars().take(32).collect();
        return Err(bad(format!("unknown query parameter {k:?}")));
    }
    if route.method() == "GET" && !body.is_empty() {
        return Err(bad("a GET carries no body"));
    }
    Ok(match route {
        KbsRoute::Sign => {
            let get = |k: &str| {
                query
                    .get(k)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad(format!("sign needs the query parameter {k}")))
            };
            let profile = get("profile")?;
            if profile.len() > 64
                || !profile
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("profile: letters, digits, - and _ only, at most 64"));
            }
            let identity = SanName::parse(get("identity")?).map_err(KbsError::Bad)?;
            // An attested identity names one workload: never a wildcard.
            if matches!(&identity, SanName::Dns(d) if d.contains('*')) {
                return Err(bad("identity: a wildcard names no single workload"));
            }
            let csr = get("csr")?;
            let csr_der = Base64UrlUnpadded::decode_vec(csr.trim_end_matches('='))
                .map_err(|_| bad("csr: not base64url (the CSR's DER)"))?;
            KbsRequest::Sign {
                profile: profile.clone(),
                identity,
                csr_der,
            }
        }
        KbsRoute::Ca => KbsRequest::Ca,
        KbsRoute::Bundle => KbsRequest::Bundle,
        KbsRoute::Certificates => KbsRequest::Certificates,
        KbsRoute::Tokens => KbsRequest::CreateToken(json(body)?),
        KbsRoute::Revoke => KbsRequest::Revoke(json(body)?),
    })
}
