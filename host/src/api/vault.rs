//! The Vault-compatible PKI API (`[vault]` in the policy): the part of HashiCorp Vault's PKI
//! secrets engine that SPIRE's `vault` UpstreamAuthority and cert-manager's Vault issuer use. A
//! Vault token is an enrolment token (`X-Vault-Token`); a role is a profile; the identity still
//! comes from the token and the profile, and request fields that would widen them are refused.
//! Answers and errors are in Vault's shapes (`{"data": …}`, `{"errors": […]}`) and status codes.

use serde_json::{json, Value};
use wasm_pki::wire::vault::{self, Endpoint};

use super::http::{Request, Response};
use super::{counted, json_response, status, text, ApiError, App, Outcome};
use crate::authority::policy::VaultConfig;
use crate::authority::{tokens, Asked, AuthorityError, Signed};

/// Serve `rq` if it is a Vault path and the policy has `[vault]`; `None` otherwise.
pub(super) fn route(
    app: &App,
    rq: &Request,
    outcome: &mut Outcome,
) -> Option<(&'static str, Response)> {
    let vault = app.authority.policy.vault.as_ref()?;
    let (method, path) = (rq.method.as_str(), rq.path.as_str());
    let write = matches!(method, "POST" | "PUT");
    let read = matches!(method, "GET" | "HEAD");
    match path {
        "/v1/sys/health" if read => return Some(("vault:sys/health", health())),
        "/v1/auth/token/lookup-self" if read || write => {
            return Some(("vault:lookup-self", lookup_self(app, rq, outcome)))
        }
        _ => {}
    }
    let rest = path
        .strip_prefix("/v1/")?
        .strip_prefix(vault.mount.as_str())?
        .strip_prefix('/')?;
    let a = &app.authority;
    let pems = |certs: &[String]| certs.concat();
    let resp = match rest {
        _ if !(read || write) => vault_error(405, &format!("{method} is not served here")),
        "ca/pem" if read => text(200, "application/pem-certificate-chain", a.chain[0].clone()),
        "ca" if read => text(200, "application/pkix-cert", a.issuer_der.clone()),
        "ca_chain" | "cert/ca_chain" if read => text(
            200,
            "application/pem-certificate-chain",
            pems(&ca_chain(app, false)),
        ),
        "cert/ca" if read => data(json!({
            "certificate": a.chain[0],
            "revocation_time": 0,
            "ca_chain": pems(&ca_chain(app, false)),
        })),
        "crl/pem" | "cert/crl" | "crl" if read => match a.crl() {
            Ok(pem) if rest == "crl/pem" => text(200, "application/x-pem-file", pem),
            Ok(pem) if rest == "cert/crl" => {
                data(json!({"certificate": pem, "revocation_time": 0}))
            }
            Ok(_) => match a.crl_der() {
                Ok(der) => text(200, "application/pkix-crl", der),
                Err(e) => from_authority(&e),
            },
            Err(e) => from_authority(&e),
        },
        "root/sign-intermediate" if write => sign_intermediate(app, vault, rq, outcome),
        r if write && r.starts_with("sign/") => sign_role(app, vault, &r[5..], rq, outcome),
        _ => vault_error(
            404,
            &format!("no handler for route \"{}\"", rest.escape_debug()),
        ),
    };
    Some(("vault:pki", resp))
}

/// `GET /v1/sys/health`: initialised, unsealed, active (as Vault answers with 200).
fn health() -> Response {
    let now = crate::authority::now();
    json_response(
        200,
        &json!({
            "initialized": true,
            "sealed": false,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": now,
            "version": concat!("1.17.0+wasm-pki-", env!("CARGO_PKG_VERSION")),
            "cluster_name": "wasm-pki",
            "cluster_id": "wasm-pki",
        }),
    )
}

/// `GET /v1/auth/token/lookup-self`: the token's own state. Nothing is spent. Not renewable: a
/// token's lifetime is the operator's, so a client re-reads `ttl` rather than extending it.
fn lookup_self(app: &App, rq: &Request, outcome: &mut Outcome) -> Response {
    let token = match vault_token(rq) {
        Ok(t) => t,
        Err(r) => return r,
    };
    outcome.token_id = tokens::public_id(&token);
    match app.authority.token_state(&token) {
        Ok(t) => data(json!({
            "accessor": t.id,
            "creation_time": t.created_at,
            "creation_ttl": t.expires_at - t.created_at,
            "display_name": format!("token-{}", t.id),
            "entity_id": "",
            "expire_time": humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.expires_at.max(0) as u64)
            ).to_string(),
            "explicit_max_ttl": t.expires_at - t.created_at,
            "id": token,
            "issue_time": humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.created_at.max(0) as u64)
            ).to_string(),
            "meta": {"profile": t.profile},
            "num_uses": t.uses_left,
            "orphan": true,
            "path": "auth/token/create",
            "policies": ["default"],
            "renewable": false,
            "ttl": t.ttl_secs,
            "type": "service",
        })),
        Err(e) => {
            outcome.code = Some(e.code().to_string());
            from_authority(&e)
        }
    }
}

/// `POST /v1/<mount>/sign/<role>`: a leaf under the role's profile, for a token of that profile.
fn sign_role(
    app: &App,
    vault: &VaultConfig,
    role: &str,
    rq: &Request,
    outcome: &mut Outcome,
) -> Response {
    let Some(profile) = vault.roles.get(role) else {
        return vault_error(400, &format!("unknown role: {}", role.escape_debug()));
    };
    signing(app, rq, outcome, profile, Endpoint::Sign)
}

/// `POST /v1/<mount>/root/sign-intermediate`: an intermediate CA under the intermediate profile,
/// for a token of that profile only.
fn sign_intermediate(
    app: &App,
    vault: &VaultConfig,
    rq: &Request,
    outcome: &mut Outcome,
) -> Response {
    let Some(profile) = &vault.intermediate_profile else {
        return vault_error(
            403,
            "permission denied: this CA signs no intermediates (vault.intermediateProfile is not set)",
        );
    };
    let path_len = app
        .authority
        .policy
        .profiles
        .get(profile)
        .and_then(|p| p.intermediate.as_ref())
        .map_or(0, |r| r.path_len);
    signing(
        app,
        rq,
        outcome,
        profile,
        Endpoint::SignIntermediate { path_len },
    )
}

fn signing(
    app: &App,
    rq: &Request,
    outcome: &mut Outcome,
    profile: &str,
    endpoint: Endpoint,
) -> Response {
    if rq.body_too_large {
        return vault_error(
            413,
            &format!("the body is larger than {} bytes", super::MAX_BODY),
        );
    }
    let token = match vault_token(rq) {
        Ok(t) => t,
        Err(r) => return r,
    };
    outcome.token_id = tokens::public_id(&token);
    let d = match vault::decode(&rq.body, endpoint) {
        Ok(d) => d,
        Err(e) => {
            outcome.code = Some("bad_request".into());
            return vault_error(400, &e.to_string());
        }
    };
    let asked = Asked {
        lifetime_secs: d.lifetime_secs,
        extra_names: d.extra_names,
        ..Asked::default()
    };
    let result = counted(app, outcome, false, |_| {
        app.authority
            .sign_with_token_for(&token, profile, &d.csr, &asked)
            .map_err(ApiError::from)
    });
    match result {
        Ok(s) => signed(app, &s, d.remove_roots, &d.warnings),
        Err(e) => vault_error(vault_status(&e), &format!("{}: {}", e.code, e.message)),
    }
}

/// The chain a Vault client expects in `ca_chain`: the issuing CA, the ones above it, and the
/// root last (unless `remove_roots`).
fn ca_chain(app: &App, remove_roots: bool) -> Vec<String> {
    let a = &app.authority;
    let root = a.authorities.last().filter(|_| remove_roots);
    a.authorities
        .iter()
        .filter(|c| Some(*c) != root)
        .map(wasm_pki::Certificate::to_pem)
        .collect()
}

fn signed(app: &App, s: &Signed, remove_roots: bool, warnings: &[String]) -> Response {
    let serial = s
        .serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_lowercase())
        .collect::<Vec<_>>()
        .join(":");
    let mut body = envelope(json!({
        "certificate": s.certificate.trim_end(),
        "issuing_ca": s.chain.first().map(|c| c.trim_end()).unwrap_or_default(),
        "ca_chain": ca_chain(app, remove_roots).iter().map(|c| c.trim_end()).collect::<Vec<_>>(),
        "serial_number": serial,
        "expiration": s.not_after,
    }));
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    json_response(200, &body)
}

/// The token from `X-Vault-Token` (or `Authorization: Bearer`), or Vault's 403 without one.
fn vault_token(rq: &Request) -> Result<String, Response> {
    rq.header("X-Vault-Token")
        .or_else(|| {
            rq.header("Authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| vault_error(403, "permission denied: send the token as X-Vault-Token"))
}

/// Vault's status for a refusal: a bad, spent or foreign token is 403 ("permission denied"), a
/// policy refusal 400, as Vault answers them.
fn vault_status(e: &ApiError) -> u16 {
    match e.status {
        401 | 403 if e.code != "policy" => 403,
        403 => 400,
        s => s,
    }
}

fn from_authority(e: &AuthorityError) -> Response {
    let api = ApiError::new(status(e), e.code(), e.message());
    vault_error(
        vault_status(&api),
        &format!("{}: {}", api.code, api.message),
    )
}

/// Vault's response envelope around `data`.
fn envelope(data: Value) -> Value {
    json!({
        "request_id": "",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    })
}

fn data(d: Value) -> Response {
    json_response(200, &envelope(d))
}

/// An error in Vault's shape: `{"errors": ["…"]}`.
fn vault_error(status: u16, message: &str) -> Response {
    super::retry_later(json_response(status, &json!({ "errors": [message] })))
}
