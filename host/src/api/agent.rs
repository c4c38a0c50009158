//! The node agents' API, authenticated by the node certificate over mTLS (never a request
//! field): `GET /v1/agent/entries` (the node's registration entries) and `POST /v1/agent/sign`
//! (a batch of CSRs, one per entry, each answered on its own) and `POST /v1/agent/jwt` (a
//! JWT-SVID for one entry and audience). Served when the policy has `[agent]`.

use serde_json::json;

use super::http::{Request, Response};
use super::{error_response, json_response, too_large, ApiError, App, Outcome};
use wasm_pki::wire::agent::{JwtAsk, SignBatch};

use crate::authority::agent::Node;

/// Serve `rq` if it is an agent path and the policy has `[agent]`; `None` otherwise.
pub(super) fn route(
    app: &App,
    rq: &Request,
    outcome: &mut Outcome,
) -> Option<(&'static str, Response)> {
    app.authority.policy.agent.as_ref()?;
    if let Some(answer) = oidc(app, rq) {
        return Some(answer);
    }
    let route = match rq.path.as_str() {
        "/v1/agent/entries" => "/v1/agent/entries",
        "/v1/agent/sign" => "/v1/agent/sign",
        "/v1/agent/jwt" => "/v1/agent/jwt",
        _ => return None,
    };
    let resp = match (rq.method.as_str(), route) {
        ("GET", "/v1/agent/entries") => node(app, rq, outcome).and_then(|n| entries(app, &n)),
        ("POST", "/v1/agent/sign") => node(app, rq, outcome).and_then(|n| sign(app, rq, &n)),
        ("POST", "/v1/agent/jwt") => node(app, rq, outcome).and_then(|n| jwt(app, rq, &n)),
        (m, r) => Err(ApiError::new(
            405,
            "method_not_allowed",
            format!("{m} {r} is not served"),
        )),
    };
    if let Err(e) = &resp {
        outcome.code = Some(e.code.clone());
    }
    Some((route, resp.unwrap_or_else(|e| error_response(&e))))
}

/// OIDC discovery for JWT-SVIDs (what SPIRE's oidc-discovery-provider serves), so cloud IAM,
/// Vault's JWT auth and meshes verify them without a SPIFFE library: the issuer is the first
/// `--public-url` (the `iss` of every JWT-SVID), the keys are the bundle's JWT authorities.
/// Without a public URL there is no issuer to announce: 404.
fn oidc(app: &App, rq: &Request) -> Option<(&'static str, Response)> {
    let route = match rq.path.as_str() {
        "/.well-known/openid-configuration" => "/.well-known/openid-configuration",
        "/v1/jwks" => "/v1/jwks",
        _ => return None,
    };
    if !matches!(rq.method.as_str(), "GET" | "HEAD") {
        return Some((
            route,
            error_response(&ApiError::new(405, "method_not_allowed", "GET only")),
        ));
    }
    let Some(issuer) = app.authority.public_urls.first() else {
        return Some((
            route,
            error_response(&ApiError::new(
                404,
                "not_found",
                "OIDC discovery needs the signer's public URL: start it with --public-url",
            )),
        ));
    };
    let issuer = issuer.trim_end_matches('/');
    let keys: Vec<serde_json::Value> = app
        .authority
        .jwt_authority
        .iter()
        .map(|a| {
            let mut k = a.to_bundle_jwk();
            k["use"] = "sig".into();
            k["alg"] = "ES256".into();
            k
        })
        .collect();
    let body = match route {
        "/v1/jwks" => json!({ "keys": keys }),
        _ => json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/v1/jwks"),
            "authorization_endpoint": "",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }),
    };
    Some((route, json_response(200, &body)))
}

/// The node the TLS client certificate authenticates.
fn node(app: &App, rq: &Request, outcome: &mut Outcome) -> Result<Node, ApiError> {
    let client = rq.client.as_ref().ok_or_else(|| {
        ApiError::new(
            401,
            "missing_certificate",
            "the agent API is authenticated by the node certificate: present it as the TLS client certificate",
        )
    })?;
    let node = app.authority.node_of(&client.der)?;
    outcome.token_id = Some(format!("node:{}", node.identity));
    Ok(node)
}

fn entries(app: &App, node: &Node) -> Result<Response, ApiError> {
    let list = app.authority.node_entries(node)?;
    Ok(json_response(
        200,
        &json!({"node": node.identity, "entries": list}),
    ))
}

/// The body through the core's `decoder`, or 413 / 400 with the decoder's reason.
fn decode<T>(rq: &Request, decoder: fn(&[u8]) -> wasm_pki::Result<T>) -> Result<T, ApiError> {
    if rq.body_too_large {
        return Err(too_large());
    }
    decoder(&rq.body).map_err(|e| ApiError::new(400, "bad_request", e.to_string()))
}

fn jwt(app: &App, rq: &Request, node: &Node) -> Result<Response, ApiError> {
    let body = decode(rq, JwtAsk::decode)?;
    match app
        .authority
        .sign_jwt_for_entry(node, &body.entry_id, &body.audience)
    {
        Ok(svid) => {
            app.metrics.jwt_issued();
            Ok(json_response(
                200,
                &serde_json::to_value(svid).unwrap_or_default(),
            ))
        }
        Err(e) => {
            app.metrics.refused(e.code());
            Err(e.into())
        }
    }
}

fn sign(app: &App, rq: &Request, node: &Node) -> Result<Response, ApiError> {
    let body = decode(rq, SignBatch::decode)?;
    let results = app.authority.sign_for_entries(node, &body.csrs)?;
    let mut svids = Vec::with_capacity(results.len());
    for (item, r) in body.csrs.iter().zip(results) {
        svids.push(match r {
            Ok(signed) => {
                app.metrics.issued();
                let mut v = serde_json::to_value(signed).unwrap_or_default();
                v["entryId"] = item.entry_id.clone().into();
                v
            }
            Err(e) => {
                app.metrics.refused(e.code());
                json!({"entryId": item.entry_id, "error": {"code": e.code(), "message": e.message()}})
            }
        });
    }
    Ok(json_response(200, &json!({ "svids": svids })))
}
