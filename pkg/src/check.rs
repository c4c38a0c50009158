//! `checkRequest`: the CA's own policy decision on a request, without a CA, so that a page or an
//! npm user learns before sending (or before making a key) whether a profile would issue it,
//! and for each name the exact refusal the CA would give.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_pki::{Algorithm, CsrRequest, Error, IssueOptions, KeyPair, ParsedCsr, Profile, SanName};

use crate::js::{csr_request, from_js, rng, to_js, Res};

/// `checkRequest`'s options: the issue options, and the key type a request object stands for.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckOptions {
    identity: Option<String>,
    lifetime_secs: Option<u64>,
    /// `"p256"` (default) or `"ed25519"`: the key a request object will be made with.
    key_type: Option<String>,
}

/// A refusal, as the CA throws it.
#[derive(Serialize)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// One name of the request and the profile's verdict on it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NameVerdict {
    /// `DNS:…`, `IP:…`, `URI:…`, `email:…`.
    name: String,
    allowed: bool,
    /// The caller's identity: vouched for by the credential, not by the allow list.
    identity: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Refusal>,
}

/// The decision on the whole request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Refusal>,
    names: Vec<NameVerdict>,
    /// The subject the certificate would get (when allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// The lifetime it would get, seconds (when allowed; a CA near its own end shortens it).
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_secs: Option<u64>,
}

/// The policy decision `ca.issue(request, profile, options)` would make, without a CA.
/// `request` is a CSR PEM (parsed and verified as `issue` does: a bad one throws the same error)
/// or `createCsr`'s request object (judged as the CSR a `options.keyType` key, default P-256,
/// would make for it). Returns `{ allowed, error?, names, subject?, lifetimeSecs? }`: `error` is
/// the refusal `issue` would throw, and each name says whether the profile permits it and, if
/// not, why. Only what needs the CA itself (its expiry, an intermediate's path length) is left
/// to `issue`.
#[wasm_bindgen(js_name = checkRequest)]
pub fn check_request(request: JsValue, profile: JsValue, options: JsValue) -> Res<JsValue> {
    let profile: Profile = if profile.is_undefined() || profile.is_null() {
        Profile::default()
    } else {
        from_js("profile", profile)?
    };
    let o: CheckOptions = if options.is_undefined() || options.is_null() {
        CheckOptions::default()
    } else {
        from_js("options", options)?
    };
    let csr = match request.as_string() {
        Some(pem) => ParsedCsr::parse(pem.as_bytes())?,
        None => stand_in_csr(csr_request(request)?, o.key_type.as_deref())?,
    };
    let identity = o.identity.as_deref().map(SanName::parse).transpose()?;
    let opts = IssueOptions {
        identity: identity.clone(),
        lifetime_secs: o.lifetime_secs,
        ..Default::default()
    };
    let mut names: Vec<NameVerdict> = identity
        .iter()
        .map(|n| NameVerdict {
            name: n.to_string(),
            allowed: true,
            identity: true,
            error: None,
        })
        .collect();
    for n in csr.names() {
        if Some(n) == identity.as_ref() || names.iter().any(|v| v.name == n.to_string()) {
            continue;
        }
        let error = profile.permits(n).err().map(Refusal::from);
        names.push(NameVerdict {
            name: n.to_string(),
            allowed: error.is_none(),
            identity: false,
            error,
        });
    }
    let verdict = match profile.decide(&csr, &opts).and_then(|d| {
        // What issue checks next of the decision: a subject it can encode.
        d.subject.validate()?;
        Ok(d)
    }) {
        Ok(d) => Verdict {
            allowed: true,
            error: None,
            names,
            subject: Some(d.subject.to_string()),
            lifetime_secs: Some(d.lifetime_secs),
        },
        Err(e) => Verdict {
            allowed: false,
            error: Some(e.into()),
            names,
            subject: None,
            lifetime_secs: None,
        },
    };
    to_js(&verdict)
}

/// The CSR a fresh key of `key_type` would make for `request` (a name-less request is the
/// name-less CSR a token-bound enrolment sends).
fn stand_in_csr(request: CsrRequest, key_type: Option<&str>) -> Res<ParsedCsr> {
    let alg: Algorithm = key_type.unwrap_or("p256").parse()?;
    let key = KeyPair::generate(alg, &mut rng());
    let csr = if request.subject.is_empty() && request.names.is_empty() {
        CsrRequest::sign_nameless(&key)?
    } else {
        request.sign(&key)?
    };
    Ok(ParsedCsr::parse(csr.der())?)
}
