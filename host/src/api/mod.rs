//! The API (`api/`, as step-ca's): decodes HTTP requests, calls the authority, and answers. The
//! only code that knows status codes ([`status`]); it never touches the ledger or the sandbox.
//! Served by [`server`] (hyper on tokio, rustls); handlers see [`http`]'s whole requests;
//! counters in [`metrics`].

mod acme;
mod agent;
mod guard;
pub mod http;
pub mod kbs;
pub mod metrics;
pub mod server;
mod vault;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use crate::authority::{Authority, AuthorityError, MAX_CSR_BYTES};
use http::{Handler, Request, Response};
use metrics::Metrics;

/// Largest request body read; bigger ones get 413 without being read.
const MAX_BODY: usize = MAX_CSR_BYTES + 1024;

/// A refusal as the API answers it: status, stable code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: String,
    /// Human message.
    pub message: String,
}

impl ApiError {
    /// Build one.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The status code for an authority's refusal: the one place that maps them.
pub fn status(e: &AuthorityError) -> u16 {
    match e {
        AuthorityError::TooLarge { .. } => 413,
        AuthorityError::BadToken(_) | AuthorityError::TokenExpired | AuthorityError::TokenUsed => {
            401
        }
        AuthorityError::UnknownProfile(_) | AuthorityError::Forbidden(_) => 403,
        AuthorityError::InvalidOrder(_) => 400,
        AuthorityError::NotIssuedHere(_)
        | AuthorityError::CertificateExpired
        | AuthorityError::ProofReplayed => 401,
        AuthorityError::Revoked
        | AuthorityError::RenewalDisabled(_)
        | AuthorityError::ProfileRemoved(_) => 403,
        AuthorityError::Refused(g) => match g.code.as_str() {
            c if c.starts_with("proof_") => 401,
            "policy" => 403,
            "too_large" => 413,
            "encoding" | "chain" => 500,
            _ => 400,
        },
        AuthorityError::Busy
        | AuthorityError::LedgerUnavailable(_)
        | AuthorityError::KeyStoreUnavailable(_) => 503,
        AuthorityError::Moved(_) => 409,
        AuthorityError::SandboxTrap(_)
        | AuthorityError::SandboxViolation(_)
        | AuthorityError::SandboxSetup(_)
        | AuthorityError::SandboxReply(_)
        | AuthorityError::Ledger(_)
        | AuthorityError::Internal(_) => 500,
    }
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        ApiError {
            status: status(&e),
            code: e.code().to_string(),
            message: e.message(),
        }
    }
}

/// The running server's state.
pub struct App {
    /// The authority.
    pub authority: Authority,
    /// Counters.
    pub metrics: Metrics,
    /// The page and the npm package it loads.
    pub assets: crate::assets::Assets,
    /// The renew URLs this signer answers at: a renewal proof must name one as its audience.
    /// Set once the listener's names and port are known.
    pub renew_audiences: std::sync::OnceLock<Vec<String>>,
    /// `http` or `https`: how clients reach this listener (ACME URLs are built with it). Set
    /// once the transport is known; https until then.
    pub scheme: std::sync::OnceLock<&'static str>,
    inflight: AtomicUsize,
    max_inflight: usize,
}

impl App {
    /// New app state; `max_inflight` signing requests may queue before 429.
    pub fn new(authority: Authority, assets: crate::assets::Assets, max_inflight: usize) -> Self {
        App {
            authority,
            metrics: Metrics::default(),
            assets,
            renew_audiences: std::sync::OnceLock::new(),
            scheme: std::sync::OnceLock::new(),
            inflight: AtomicUsize::new(0),
            max_inflight,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    csr: String,
}

type Resp = Response;

fn json_response(status: u16, body: &serde_json::Value) -> Resp {
    Response::new(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

fn error_response(e: &ApiError) -> Resp {
    retry_later(json_response(
        e.status,
        &json!({"error": {"code": e.code, "message": e.message}}),
    ))
}

/// A 429 or 503 tells the client when to come back (one second); other answers pass unchanged.
fn retry_later(r: Resp) -> Resp {
    if r.status == 429 || r.status == 503 {
        r.with_header("retry-after", "1")
    } else {
        r
    }
}

fn text(status: u16, ctype: &str, body: impl Into<Vec<u8>>) -> Resp {
    Response::new(status, ctype, body)
}

/// Serve on `listener` until SIGTERM or SIGINT, then stop taking requests, answer the ones in
/// flight (each answer already waits for its ledger record) and return. At most
/// `max_connections` are open at once.
/// The KBS plugin's listener, served beside the HTTPS API (`serve --kbs-plugin`).
pub struct PluginListener {
    /// The bound socket.
    pub listener: std::net::TcpListener,
    /// The name KBS knows the plugin by.
    pub backend: String,
    /// TLS (the signer's own certificate), or None: plain, loopback only.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serve the API on `listener` (and the KBS plugin on `plugin`, when given) until SIGTERM or
/// SIGINT, then stop gracefully.
pub fn serve(
    app: Arc<App>,
    listener: std::net::TcpListener,
    transport: server::Transport,
    max_connections: usize,
    plugin: Option<PluginListener>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()?;
    let shutdown = server::Shutdown::default();
    let limits = server::Limits {
        max_connections,
        max_body: MAX_BODY,
        deadline: DEADLINE,
        grace: SHUTDOWN_GRACE,
    };
    runtime.block_on(async {
        let trigger = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
            tracing::info!(signal = name, "stopping: no new requests");
            eprintln!("wasm-pki signer: {name}, finishing the requests in flight");
            trigger.trigger();
        });
        if let Some(p) = plugin {
            p.listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(p.listener)?;
            let stopped = shutdown.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let stop = async move { stopped.stopped().await };
                if let Err(e) = kbs::serve(app, p.backend, listener, p.tls, stop).await {
                    tracing::error!(error = %e, "the KBS plugin listener failed");
                    eprintln!("wasm-pki signer: the KBS plugin listener failed: {e:#}");
                }
            });
        }
        server::run(listener, transport, limits, app, shutdown).await
    })?;
    // Blocking handlers still running past the grace period are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    eprintln!("wasm-pki signer: stopped");
    Ok(())
}

/// How long a stopping signer waits for the requests in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The most a TLS handshake, a request head (or the keep-alive wait for it), a body or a stalled
/// write may take: a slow client is cut after it and holds nobody else up meanwhile.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl Handler for App {
    fn handle(&self, rq: &Request) -> Response {
        handle(self, rq)
    }

    fn quick(&self, rq: &Request) -> Option<Response> {
        let started = Instant::now();
        let (route, resp) = acme::quick(self, rq)?;
        Some(logged(self, rq, started, route, &Outcome::default(), resp))
    }

    fn rejected(&self) {
        self.metrics.request("connection", 503);
    }
}

/// A listening socket with TCP_NODELAY, which accepted connections inherit: with Nagle's algorithm
/// a keep-alive client whose answer comes in pieces waits for the delayed ACK (40 ms) per request.
pub fn bind(listen: &str) -> Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("listen address {listen}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("listen address {listen} resolves to nothing"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// What one request did, for its log line: never the token, only its public id.
#[derive(Default)]
struct Outcome {
    token_id: Option<String>,
    serial: Option<String>,
    code: Option<String>,
}

fn handle(app: &App, rq: &Request) -> Response {
    let started = Instant::now();
    let (method, path) = (rq.method.as_str(), rq.path.as_str());
    let mut outcome = Outcome::default();
    let routed = acme::route(app, rq, &mut outcome)
        .or_else(|| vault::route(app, rq, &mut outcome))
        .or_else(|| agent::route(app, rq, &mut outcome))
        .or_else(|| bundle(app, method, path));
    let (route, resp) = if let Some(routed) = routed {
        routed
    } else {
        match (method, path) {
            ("POST", "/v1/sign") => ("/v1/sign", sign(app, rq, &mut outcome)),
            ("POST", "/v1/renew") => ("/v1/renew", renew(app, rq, &mut outcome)),
            ("GET", "/healthz") => ("/healthz", text(200, "text/plain", "ok\n")),
            ("GET", "/readyz") => ("/readyz", ready(app)),
            ("GET", "/v1/info") => ("/v1/info", info(app)),
            ("GET", "/v1/token") => ("/v1/token", token_rules(app, rq)),
            ("GET", "/v1/ca") => (
                "/v1/ca",
                text(
                    200,
                    "application/x-pem-file",
                    app.authority.root_pem.clone(),
                ),
            ),
            // DER forms, where certificates' CRL DP and AIA caIssuers point (RFC 5280 4.2.1.13,
            // 4.2.2.1: application/pkix-crl and application/pkix-cert).
            ("GET", "/v1/crl.der") => (
                "/v1/crl.der",
                match app.authority.crl_der() {
                    Ok(der) => text(200, "application/pkix-crl", der),
                    Err(e) => crl_failed(&e),
                },
            ),
            ("GET", "/v1/ca.der") => (
                "/v1/ca.der",
                text(
                    200,
                    "application/pkix-cert",
                    app.authority.issuer_der.clone(),
                ),
            ),
            ("GET", "/v1/crl") => (
                "/v1/crl",
                match app.authority.crl() {
                    Ok(pem) => text(200, "application/x-pem-file", pem),
                    Err(e) => crl_failed(&e),
                },
            ),
            ("GET", "/metrics") => (
                "/metrics",
                text(
                    200,
                    metrics::CONTENT_TYPE,
                    app.metrics.render(
                        app.authority.sandbox.traps.load(Ordering::Relaxed),
                        app.authority.sandbox.violations.load(Ordering::Relaxed),
                    ),
                ),
            ),
            ("GET", p) => ("static", static_file(app, p)),
            _ => (
                "other",
                error_response(&ApiError::new(
                    405,
                    "method_not_allowed",
                    format!("{method} {path} is not served"),
                )),
            ),
        }
    };
    logged(app, rq, started, route, &outcome, resp)
}

/// Count and log an answered request.
fn logged(
    app: &App,
    rq: &Request,
    started: Instant,
    route: &str,
    outcome: &Outcome,
    resp: Response,
) -> Response {
    app.metrics.request(route, resp.status);
    tracing::info!(
        method = rq.method.as_str(),
        route,
        status = resp.status,
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        token_id = outcome.token_id.as_deref(),
        client = rq.client.as_ref().map(|c| c.serial.as_str()),
        serial = outcome.serial.as_deref(),
        code = outcome.code.as_deref(),
        "request"
    );
    resp
}

/// `GET /v1/bundle` (and the policy's `bundle.path`): the SPIFFE trust bundle, for anyone.
fn bundle(app: &App, method: &str, path: &str) -> Option<(&'static str, Resp)> {
    let configured = app.authority.policy.bundle.path.as_deref();
    if method != "GET" || (path != "/v1/bundle" && Some(path) != configured) {
        return None;
    }
    Some((
        "/v1/bundle",
        match app.authority.trust_bundle() {
            Ok(doc) => text(200, "application/json", doc),
            Err(e) => error_response(&ApiError::new(status(&e).max(500), "bundle", e.message())),
        },
    ))
}

/// A CRL could not be made: never the client's fault (503 when the sandbox is busy, else 500).
fn crl_failed(e: &AuthorityError) -> Resp {
    error_response(&ApiError::new(status(e).max(500), "crl", e.message()))
}

/// Ready to sign: the CA is loaded in a sandbox instance that answers, and the ledger takes writes.
fn ready(app: &App) -> Resp {
    match app.authority.ready() {
        Ok(()) => text(200, "text/plain", "ready\n"),
        Err(e) => error_response(&ApiError::new(503, "not_ready", e.to_string()))
            .with_header("retry-after", "1"),
    }
}

fn info(app: &App) -> Resp {
    json_response(
        200,
        &json!({
            "moduleSha256": app.authority.sandbox.module_sha256(),
            "wasmtime": env!("WASMTIME_VERSION"),
            "ca": app.authority.ca_info,
            "keyStore": app.authority.key_store.to_string(),
            "profiles": app.authority.policy.profiles.keys().collect::<Vec<_>>(),
        }),
    )
}

/// `GET /v1/token`: what the bearer token lets its holder ask for (identity, profile rules,
/// lifetime, uses left, expiry), nothing spent; refused exactly as `POST /v1/sign` refuses it.
fn token_rules(app: &App, rq: &Request) -> Resp {
    let answer = bearer_token(rq).and_then(|t| Ok(app.authority.token_rules(&t)?));
    match answer {
        Ok(rules) => json_response(200, &serde_json::to_value(rules).unwrap_or_default()),
        Err(e) => error_response(&e),
    }
}

/// The enrolment token of `Authorization: Bearer TOKEN`.
fn bearer_token(rq: &Request) -> Result<String, ApiError> {
    rq.header("Authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::trim).map(String::from))
        .ok_or_else(|| {
            ApiError::new(
                401,
                "missing_token",
                "send the enrolment token as `Authorization: Bearer TOKEN`",
            )
        })
}

fn sign(app: &App, rq: &Request, outcome: &mut Outcome) -> Resp {
    issuing(app, outcome, false, |outcome| sign_inner(app, rq, outcome))
}

/// Run one issuing request (`work`) under the in-flight limit, count it, and answer it.
fn issuing(
    app: &App,
    outcome: &mut Outcome,
    renewal: bool,
    work: impl FnOnce(&mut Outcome) -> Result<crate::authority::Signed, ApiError>,
) -> Resp {
    match counted(app, outcome, renewal, work) {
        Ok(signed) => json_response(200, &serde_json::to_value(signed).unwrap_or_default()),
        Err(e) => error_response(&e),
    }
}

/// Run one issuing request under the in-flight limit (429 past it) and count its outcome; the
/// caller renders the answer in its protocol's shape.
fn counted(
    app: &App,
    outcome: &mut Outcome,
    renewal: bool,
    work: impl FnOnce(&mut Outcome) -> Result<crate::authority::Signed, ApiError>,
) -> Result<crate::authority::Signed, ApiError> {
    let started = Instant::now();
    // Shed load before doing any work: a bounded queue answers 429 at once.
    if app.inflight.fetch_add(1, Ordering::SeqCst) >= app.max_inflight {
        app.inflight.fetch_sub(1, Ordering::SeqCst);
        app.metrics.refused("overloaded");
        outcome.code = Some("overloaded".into());
        return Err(ApiError::new(
            429,
            "overloaded",
            "too many signing requests in flight; retry shortly",
        ));
    }
    let result = work(outcome);
    app.inflight.fetch_sub(1, Ordering::SeqCst);
    app.metrics.observe(started.elapsed().as_secs_f64());
    if renewal {
        app.metrics
            .renewal(result.as_ref().err().map(|e| e.code.as_str()));
    }
    match &result {
        Ok(signed) => {
            app.metrics.issued();
            outcome.serial = Some(signed.serial.clone());
        }
        Err(e) => {
            app.metrics.refused(&e.code);
            outcome.code = Some(e.code.clone());
        }
    }
    result
}

fn sign_inner(
    app: &App,
    rq: &Request,
    outcome: &mut Outcome,
) -> Result<crate::authority::Signed, ApiError> {
    if rq.body_too_large {
        return Err(too_large());
    }
    let token = bearer_token(rq)?;
    let body: SignBody = serde_json::from_slice(&rq.body)
        .map_err(|e| ApiError::new(400, "bad_request", format!("the body must be JSON {{\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----...\"}}: {e}")))?;
    outcome.token_id = crate::authority::tokens::public_id(&token);
    Ok(app.authority.sign_with_token(&token, &body.csr)?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    /// A re-key's CSR; absent: the same key.
    csr: Option<String>,
}

/// `POST /v1/renew`: the credential is the certificate being renewed, presented as the TLS client
/// certificate or, behind a TLS-terminating proxy or from a browser, as a renewal proof
/// (`Authorization: Bearer PROOF`, which wins when both are there); the body is empty, `{}`, or
/// `{"csr": PEM}` for a re-key. No token is used.
fn renew(app: &App, rq: &Request, outcome: &mut Outcome) -> Resp {
    issuing(app, outcome, true, |_| {
        if rq.body_too_large {
            return Err(too_large());
        }
        let body: RenewBody = if rq.body.iter().all(u8::is_ascii_whitespace) {
            RenewBody::default()
        } else {
            serde_json::from_slice(&rq.body).map_err(|e| {
                ApiError::new(
                    400,
                    "bad_request",
                    format!("the body must be empty, {{}} or {{\"csr\": PEM}} for a re-key: {e}"),
                )
            })?
        };
        if let Some(auth) = rq.header("Authorization") {
            let proof = auth.strip_prefix("Bearer ").map(str::trim).ok_or_else(|| {
                ApiError::new(
                    401,
                    "proof_malformed",
                    "send the renewal proof as `Authorization: Bearer PROOF`",
                )
            })?;
            let audiences = app.renew_audiences.get().map_or(&[][..], Vec::as_slice);
            return Ok(app
                .authority
                .renew_with_proof(proof, audiences, body.csr.as_deref())?);
        }
        let client = rq.client.as_ref().ok_or_else(|| {
            ApiError::new(
                401,
                "missing_certificate",
                "renewal is authenticated by the certificate being renewed: present it as the TLS client certificate, or send a renewal proof signed by its key as `Authorization: Bearer PROOF`",
            )
        })?;
        Ok(app.authority.renew(&client.der, body.csr.as_deref())?)
    })
}

/// The answer to a body over [`MAX_BODY`].
fn too_large() -> ApiError {
    ApiError::new(
        413,
        "too_large",
        format!("the body is larger than {MAX_BODY} bytes"),
    )
}

fn static_file(app: &App, path: &str) -> Resp {
    let not_found = || {
        error_response(&ApiError::new(
            404,
            "not_found",
            format!("{path} is not here"),
        ))
    };
    let (data, rel) = match path {
        "/" | "/index.html" => (app.assets.page("index.html"), "index.html"),
        "/app.js" | "/keep.js" | "/style.css" => (app.assets.page(&path[1..]), &path[1..]),
        p if p == "/pkg/web.js"
            || p == "/pkg/verify.js"
            || (p.starts_with("/pkg/dist/")
                && !p[10..].contains(['/', '\\'])
                && !p[10..].starts_with('.')) =>
        {
            (app.assets.package(&p[5..]), &p[5..])
        }
        _ => return not_found(),
    };
    let ctype = match rel.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    };
    match data {
        Some(data) => text(200, ctype, data.into_owned())
            // The page may talk only to this origin: a CSP that also keeps the key from leaving.
            .with_header("content-security-policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
            .with_header("x-content-type-options", "nosniff"),
        None => not_found(),
    }
}
