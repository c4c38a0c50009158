//! The ACME server (RFC 8555) at `/acme/NAME/…` for each `[acme.NAME]` of the policy: decodes
//! the JWS envelope (the core's codec), checks that it was sent to the URL it signed, asks the
//! authority (`authority/acme/`), and answers with the objects' URLs, `Replay-Nonce` on every
//! answer, `Link: rel="index"`, and RFC 7807 problem documents with ACME error types.

use serde_json::{json, Value};
use wasm_pki::wire::acme::{AcmeError, AcmeJws, Problem, ProblemKind};

use super::http::{Request, Response};
use super::{App, Outcome};
use crate::authority::acme::objects::{Account, Authz, Order, Status, Stored};
use crate::authority::acme::{AccountCaller, Caller, Refused};

/// Serve `rq` if its path is under `/acme/`; `None` otherwise.
pub(super) fn route(
    app: &App,
    rq: &Request,
    outcome: &mut Outcome,
) -> Option<(&'static str, Response)> {
    let rest = rq.path.strip_prefix("/acme/")?;
    let (dir, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(directory) = app.authority.acme_directory(dir) else {
        return Some((
            "acme",
            problem_response(
                app,
                None,
                &Refused::new(
                    ProblemKind::Malformed,
                    format!("no ACME directory is called {:?}", clip(dir)),
                ),
                404,
            ),
        ));
    };
    let base = format!("{}/acme/{dir}", origin(app, rq));
    let method = rq.method.as_str();
    let (route, resp) = match (method, tail) {
        // Usually answered by `quick` already; the same answer here.
        ("GET" | "HEAD", "directory" | "new-nonce") => {
            read_only(app, directory, &base, method, tail)?
        }
        // §6.2: a JWS is application/jose+json, nothing else (415).
        ("POST", _)
            if rq
                .header("content-type")
                .and_then(|c| c.split(';').next())
                .map(str::trim)
                != Some("application/jose+json") =>
        {
            outcome.code = Some("malformed".into());
            (
                route_name(tail),
                problem_response(
                    app,
                    Some(&base),
                    &Refused::Acme(AcmeError::malformed(
                        "the content type must be application/jose+json",
                    )),
                    415,
                ),
            )
        }
        ("POST", _) => {
            let (route, result) = post(app, rq, dir, &base, tail);
            let resp = match result {
                Ok(resp) => resp
                    .with_header("replay-nonce", &app.authority.acme_nonce())
                    .with_header("link", &format!("<{base}/directory>;rel=\"index\"")),
                Err(e) => {
                    outcome.code = Some(refusal_code(&e));
                    problem_response(app, Some(&base), &e, 0)
                }
            };
            (route, resp)
        }
        _ => (
            "acme:other",
            problem_response(
                app,
                Some(&base),
                &Refused::new(
                    ProblemKind::Malformed,
                    format!(
                        "{method} {} is not served: ACME resources are read with POST-as-GET",
                        clip(&rq.path)
                    ),
                ),
                405,
            ),
        ),
    };
    Some((route, resp))
}

/// The requests that need neither the ledger nor the sandbox (the directory, a new nonce),
/// answered on the connection's own thread; `None` for every other request.
pub(super) fn quick(app: &App, rq: &Request) -> Option<(&'static str, Response)> {
    let method = rq.method.as_str();
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let rest = rq.path.strip_prefix("/acme/")?;
    let (dir, tail) = rest.split_once('/')?;
    let directory = app.authority.acme_directory(dir)?;
    let base = format!("{}/acme/{dir}", origin(app, rq));
    read_only(app, directory, &base, method, tail)
}

/// The directory object or a new nonce (§7.1.1, §7.2), for GET or HEAD.
fn read_only(
    app: &App,
    directory: &crate::authority::acme::config::AcmeDirectory,
    base: &str,
    method: &str,
    tail: &str,
) -> Option<(&'static str, Response)> {
    match tail {
        "directory" => {
            let mut meta = json!({"externalAccountRequired": directory.require_eab});
            if let Some(tos) = &directory.terms_of_service {
                meta["termsOfService"] = json!(tos);
            }
            Some((
                "acme:directory",
                json_answer(
                    200,
                    &json!({
                        "newNonce": format!("{base}/new-nonce"),
                        "newAccount": format!("{base}/new-account"),
                        "newOrder": format!("{base}/new-order"),
                        "revokeCert": format!("{base}/revoke-cert"),
                        "keyChange": format!("{base}/key-change"),
                        "meta": meta,
                    }),
                ),
            ))
        }
        // §7.2: HEAD answers 200, GET 204; never cached.
        "new-nonce" => Some((
            "acme:new-nonce",
            Response::new(if method == "HEAD" { 200 } else { 204 }, "text/plain", "")
                .with_header("cache-control", "no-store")
                .with_header("replay-nonce", &app.authority.acme_nonce())
                .with_header("link", &format!("<{base}/directory>;rel=\"index\"")),
        )),
        _ => None,
    }
}

/// The origin the client addressed (`https://host:port`): its authority (HTTP/2's
/// `:authority`, else `Host`) with this listener's scheme (behind a TLS-terminating proxy,
/// `X-Forwarded-Proto`).
fn origin(app: &App, rq: &Request) -> String {
    let scheme = match app.scheme.get().copied() {
        Some("http") => match rq.header("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        },
        _ => "https",
    };
    let host = rq
        .authority
        .as_deref()
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A POST: the JWS, its URL, who signed it, then the resource.
fn post(
    app: &App,
    rq: &Request,
    dir: &str,
    base: &str,
    tail: &str,
) -> (&'static str, Result<Response, Refused>) {
    let route = route_name(tail);
    (route, post_inner(app, rq, dir, base, tail))
}

fn route_name(tail: &str) -> &'static str {
    let first = tail.split('/').next().unwrap_or("");
    match first {
        "new-account" => "acme:new-account",
        "new-order" => "acme:new-order",
        "revoke-cert" => "acme:revoke-cert",
        "key-change" => "acme:key-change",
        "acct" if tail.ends_with("/orders") => "acme:orders",
        "acct" => "acme:account",
        "order" if tail.ends_with("/finalize") => "acme:finalize",
        "order" => "acme:order",
        "authz" => "acme:authz",
        "chall" => "acme:challenge",
        "cert" => "acme:certificate",
        _ => "acme:other",
    }
}

fn post_inner(
    app: &App,
    rq: &Request,
    dir: &str,
    base: &str,
    tail: &str,
) -> Result<Response, Refused> {
    if rq.body_too_large {
        return Err(Refused::new(
            ProblemKind::Malformed,
            "the request body is too large",
        ));
    }
    let jws = AcmeJws::decode(&rq.body)?;
    let url = format!("{}{}", base.split("/acme/").next().unwrap_or(""), rq.path);
    if jws.url() != url {
        return Err(Refused::Acme(AcmeError::new(
            ProblemKind::Unauthorized,
            format!("the JWS url is not the URL it was sent to ({})", clip(&url)),
        )));
    }
    let a = &app.authority;
    let account_prefix = format!("{base}/acct/");
    let jwk_allowed = matches!(tail, "new-account" | "revoke-cert");
    let caller = a.acme_authenticate(dir, &jws, &account_prefix, jwk_allowed)?;
    let parts: Vec<&str> = tail.split('/').collect();
    match parts.as_slice() {
        ["new-account"] => {
            let answer = a.acme_new_account(dir, &jws, &caller)?;
            let location = format!("{base}/acct/{}", answer.id);
            Ok(json_answer(
                if answer.created { 201 } else { 200 },
                &account_json(base, &answer.id, &answer.account),
            )
            .with_header("location", &location))
        }
        ["revoke-cert"] => {
            a.acme_revoke(dir, &jws, &caller)?;
            Ok(Response::new(200, "text/plain", ""))
        }
        // Every other request was authenticated by kid (a jwk is refused for them).
        _ => match caller {
            Caller::Account(mut c) => account_request(app, &jws, dir, base, &parts, &mut c),
            Caller::Key(_) => Err(Refused::new(
                ProblemKind::Malformed,
                "this request must name its account by kid",
            )),
        },
    }
}

/// The requests of a registered account.
fn account_request(
    app: &App,
    jws: &AcmeJws,
    dir: &str,
    base: &str,
    parts: &[&str],
    caller: &mut AccountCaller,
) -> Result<Response, Refused> {
    let a = &app.authority;
    match parts {
        ["new-order"] => {
            let (id, order) = a.acme_new_order(dir, jws, caller)?;
            Ok(json_answer(201, &order_json(base, &id, &order))
                .with_header("location", &format!("{base}/order/{id}")))
        }
        ["key-change"] => {
            let url = format!("{base}/acct/{}", caller.id);
            let account = a.acme_key_change(jws, caller, &url)?;
            Ok(json_answer(200, &account_json(base, &caller.id, &account)))
        }
        ["acct", id] => {
            let account = a.acme_update_account(jws, caller, id)?;
            Ok(json_answer(200, &account_json(base, id, &account))
                .with_header("location", &format!("{base}/acct/{id}")))
        }
        ["acct", id, "orders"] => {
            if *id != caller.id {
                return Err(Refused::new(
                    ProblemKind::Unauthorized,
                    "an account may only list its own orders",
                ));
            }
            let orders: Vec<String> = a
                .acme_orders(caller)?
                .into_iter()
                .map(|o| format!("{base}/order/{o}"))
                .collect();
            Ok(json_answer(200, &json!({ "orders": orders })))
        }
        ["order", id] => {
            let order = a.acme_order(dir, caller, id)?;
            Ok(order_answer(base, id, &order))
        }
        ["order", id, "finalize"] => {
            let order = a.acme_finalize(dir, jws, caller, id)?;
            app.metrics.issued();
            Ok(order_answer(base, id, &order)
                .with_header("location", &format!("{base}/order/{id}")))
        }
        ["authz", id] => {
            let authz = a.acme_authz(dir, jws, caller, id)?;
            Ok(json_answer(200, &authz_json(base, id, &authz)))
        }
        ["chall", authz_id, kind] => {
            let (authz, index) = a.acme_challenge(dir, jws, caller, authz_id, kind)?;
            let challenge = &authz.doc.challenges[index];
            let mut resp = json_answer(200, &challenge_json(base, authz_id, challenge))
                .with_header("link", &format!("<{base}/authz/{authz_id}>;rel=\"up\""));
            if challenge.status == Status::Processing {
                resp = resp.with_header("retry-after", "1");
            }
            Ok(resp)
        }
        ["cert", id] => {
            let chain = a.acme_certificate(dir, caller, id)?;
            Ok(Response::new(
                200,
                "application/pem-certificate-chain",
                chain,
            ))
        }
        _ => Err(Refused::new(
            ProblemKind::Malformed,
            "no such ACME resource",
        )),
    }
}

fn json_answer(status: u16, body: &Value) -> Response {
    Response::new(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64),
    )
    .to_string()
}

fn status_name(s: Status) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn account_json(base: &str, id: &str, a: &Account) -> Value {
    json!({
        "status": status_name(a.status),
        "contact": a.contact,
        "termsOfServiceAgreed": a.tos_agreed,
        "orders": format!("{base}/acct/{id}/orders"),
    })
}

fn order_json(base: &str, id: &str, o: &Order) -> Value {
    let mut v = json!({
        "status": status_name(o.status),
        "expires": rfc3339(o.expires),
        "identifiers": o.identifiers,
        "authorizations": o.authzs.iter().map(|z| format!("{base}/authz/{z}")).collect::<Vec<_>>(),
        "finalize": format!("{base}/order/{id}/finalize"),
    });
    if o.certificate.is_some() && o.status == Status::Valid {
        v["certificate"] = json!(format!("{base}/cert/{id}"));
    }
    if let Some(e) = &o.error {
        v["error"] = e.clone();
    }
    v
}

/// An order, with `Retry-After` while it is being finalized (§7.4); a pending one waits for
/// its client's challenges, not for the server.
fn order_answer(base: &str, id: &str, order: &Stored<Order>) -> Response {
    let resp = json_answer(200, &order_json(base, id, &order.doc));
    if order.doc.status == Status::Processing {
        resp.with_header("retry-after", "1")
    } else {
        resp
    }
}

fn authz_json(base: &str, id: &str, z: &Stored<Authz>) -> Value {
    let mut v = json!({
        "status": status_name(z.doc.status),
        "expires": rfc3339(z.doc.expires),
        "identifier": z.doc.identifier,
        "challenges": z.doc.challenges.iter().map(|c| challenge_json(base, id, c)).collect::<Vec<_>>(),
    });
    if z.doc.wildcard {
        v["wildcard"] = json!(true);
    }
    v
}

fn challenge_json(
    base: &str,
    authz_id: &str,
    c: &crate::authority::acme::objects::Challenge,
) -> Value {
    let mut v = json!({
        "type": c.kind,
        "url": format!("{base}/chall/{authz_id}/{}", c.kind),
        "status": status_name(c.status),
        "token": c.token,
    });
    if let Some(at) = c.validated {
        v["validated"] = json!(rfc3339(at));
    }
    if let Some(e) = &c.error {
        v["error"] = e.clone();
    }
    v
}

/// The stable code of a refusal for the log line (the ACME error type's name).
fn refusal_code(e: &Refused) -> String {
    match e {
        Refused::Acme(a) => a.kind.name().to_string(),
        Refused::KeyTaken { .. } => "keyTaken".into(),
        Refused::Unavailable(_) => "unavailable".into(),
    }
}

/// An RFC 7807 problem document (`status` 0: the kind's own), with a fresh nonce: a client
/// whose nonce was refused retries with it (§6.5).
fn problem_response(app: &App, base: Option<&str>, e: &Refused, status: u16) -> Response {
    let (problem, extra): (Problem, Option<(&'static str, String)>) = match e {
        Refused::Acme(a) => (Problem::from(a), None),
        Refused::KeyTaken { account } => {
            let mut p = Problem::new(
                ProblemKind::Malformed,
                "the new key already belongs to another account",
            );
            p.status = 409;
            (p, base.map(|b| ("location", format!("{b}/acct/{account}"))))
        }
        Refused::Unavailable(m) => {
            let mut p = Problem::new(ProblemKind::ServerInternal, m.clone());
            p.status = 503;
            (p, Some(("retry-after", "1".into())))
        }
    };
    let mut problem = problem;
    if status != 0 {
        problem.status = status;
    }
    let mut resp = Response::new(
        problem.status,
        "application/problem+json",
        serde_json::to_vec(&problem).unwrap_or_default(),
    )
    .with_header("replay-nonce", &app.authority.acme_nonce());
    if let Some(b) = base {
        resp = resp.with_header("link", &format!("<{b}/directory>;rel=\"index\""));
    }
    if let Some((k, v)) = extra {
        resp = resp.with_header(k, &v);
    }
    resp
}

/// At most 64 characters of client text, for a message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
