//! The Trustee KBS external plugin (`serve --kbs-plugin ADDR`): the gRPC service KBS forwards
//! `/kbs/v0/external/<backend>/…` to, after it checked the caller's attestation (or its admin
//! credential) and its resource policy. Wire-compatible with Trustee's `kbs.plugin.v1`
//! (`host/proto/kbs_plugin.proto`, compiled by build.rs), plus `grpc.health.v1`. Decoding is the
//! core's (`wasm_pki::wire::kbs`); issuance is the authority's; this file maps outcomes to the status
//! codes KBS sees in `PluginResponse` (KBS turns every non-2xx into a bare 401 for the guest).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::json;
use tonic::{Request, Response, Status};
use wasm_pki::wire::kbs::{self, KbsError, KbsRequest};

use super::{status, App};
use crate::authority::AuthorityError;

/// The generated messages and service of `kbs.plugin.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("kbs.plugin.v1");
}

use proto::kbs_plugin_server::{KbsPlugin, KbsPluginServer};
use proto::{
    NeedsEncryptionRequest, NeedsEncryptionResponse, PluginRequest, PluginResponse,
    ValidateAuthRequest, ValidateAuthResponse,
};

/// Largest gRPC message accepted (a CSR query or a small JSON body fit well within).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The plugin service over the signer's authority.
pub struct Plugin {
    app: Arc<App>,
    backend: String,
}

impl Plugin {
    /// The service for `app`; `backend` is the name KBS knows this plugin by (recorded with
    /// every certificate it issues, as KBS strips it from the path).
    pub fn service(app: Arc<App>, backend: String) -> KbsPluginServer<Plugin> {
        KbsPluginServer::new(Plugin { app, backend })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(1 << 20)
    }
}

fn answer(status: u16, body: &serde_json::Value) -> PluginResponse {
    PluginResponse {
        body: serde_json::to_vec(body).unwrap_or_default(),
        status_code: i32::from(status),
        content_type: "application/json".into(),
    }
}

fn refusal(status: u16, code: &str, message: impl Into<String>) -> PluginResponse {
    answer(
        status,
        &json!({"error": {"code": code, "message": message.into()}}),
    )
}

fn refused(e: AuthorityError) -> PluginResponse {
    refusal(status(&e), e.code(), e.message())
}

/// Answer one forwarded request (blocking: it may sign in the sandbox and write the ledger).
pub fn handle(
    app: &App,
    backend: &str,
    method: &str,
    path: &[String],
    query: &HashMap<String, String>,
    body: &[u8],
) -> PluginResponse {
    let query: BTreeMap<String, String> = query.clone().into_iter().collect();
    let request = match kbs::decode(method, path, &query, body) {
        Ok(r) => r,
        Err(KbsError::NotFound(p)) => return refusal(404, "not_found", format!("no route {p}")),
        Err(KbsError::MethodNotAllowed { allowed }) => {
            return refusal(
                405,
                "method_not_allowed",
                format!("this route takes {allowed}"),
            )
        }
        Err(KbsError::Bad(e)) => {
            let status = if e.code() == "too_large" { 413 } else { 400 };
            return refusal(status, e.code(), e.to_string());
        }
    };
    let authority = &app.authority;
    match request {
        KbsRequest::Sign {
            profile,
            identity,
            csr_der,
        } => {
            let csr_pem = pem_rfc7468::encode_string(
                "CERTIFICATE REQUEST",
                pem_rfc7468::LineEnding::LF,
                &csr_der,
            )
            .unwrap_or_default();
            let origin = format!("kbs:{backend}/sign");
            let result = authority.sign_attested(&csr_pem, &profile, &identity.value(), &origin);
            match result {
                Ok(signed) => {
                    app.metrics.issued();
                    answer(200, &serde_json::to_value(signed).unwrap_or_default())
                }
                Err(e) => {
                    app.metrics.refused(e.code());
                    refused(e)
                }
            }
        }
        KbsRequest::Ca => PluginResponse {
            body: authority.root_pem.clone().into_bytes(),
            status_code: 200,
            content_type: "application/x-pem-file".into(),
        },
        KbsRequest::Bundle => match authority.trust_bundle() {
            Ok(doc) => PluginResponse {
                body: doc.into_bytes(),
                status_code: 200,
                content_type: "application/json".into(),
            },
            Err(e) => refused(e),
        },
        KbsRequest::CreateToken(order) => {
            let ttl = match order.ttl.as_deref() {
                None => 3600,
                Some(t) => match crate::authority::tokens::parse_ttl(t) {
                    Ok(s) => s,
                    Err(e) => return refusal(400, "invalid_order", format!("{e:#}")),
                },
            };
            match authority.create_token(&order.profile, order.identity.as_deref(), order.uses, ttl)
            {
                Ok(t) => answer(
                    200,
                    &json!({"token": t.secret.as_str(), "id": t.id, "expiresAt": t.expires_at}),
                ),
                Err(e) => refused(e),
            }
        }
        KbsRequest::Revoke(order) => match authority.revoke(&order.serial, order.lineage, None) {
            Ok(done) => answer(200, &json!({ "revoked": done })),
            Err(AuthorityError::NotIssuedHere(m)) => refusal(404, "unknown_serial", m),
            Err(e) => refused(e),
        },
        KbsRequest::Certificates => match authority.certificates() {
            Ok(list) => answer(200, &json!({ "certificates": list })),
            Err(e) => refused(e),
        },
    }
}

#[tonic::async_trait]
impl KbsPlugin for Plugin {
    async fn handle(
        &self,
        request: Request<PluginRequest>,
    ) -> Result<Response<PluginResponse>, Status> {
        let r = request.into_inner();
        let (app, backend) = (self.app.clone(), self.backend.clone());
        let started = std::time::Instant::now();
        let answer = tokio::task::spawn_blocking(move || {
            let a = handle(&app, &backend, &r.method, &r.path, &r.query, &r.body);
            (a, r.method, r.path)
        })
        .await
        .map_err(|_| Status::internal("the request handler failed"))?;
        let (answer, method, path) = answer;
        // Our own JSON: the refusal's code, or the serial issued, for the log line.
        let said: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        tracing::info!(
            target: "wasm_pki::kbs",
            method = %method.chars().take(8).collect::<String>(),
            route = %path.first().map(|p| p.chars().take(32).collect::<String>()).unwrap_or_default(),
            status = answer.status_code,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            serial = said["serial"].as_str(),
            code = said["error"]["code"].as_str(),
            "plugin request"
        );
        Ok(Response::new(answer))
    }

    async fn validate_auth(
        &self,
        request: Request<ValidateAuthRequest>,
    ) -> Result<Response<ValidateAuthResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(ValidateAuthResponse {
            requires_admin_auth: kbs::requires_admin(&r.method, &r.path),
        }))
    }

    async fn needs_encryption(
        &self,
        request: Request<NeedsEncryptionRequest>,
    ) -> Result<Response<NeedsEncryptionResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(NeedsEncryptionResponse {
            requires_payload_encryption: kbs::needs_encryption(&r.method, &r.path),
        }))
    }
}

/// Serve the plugin (and `grpc.health.v1`) on `listener` until `shutdown` resolves: over TLS
/// with `tls` (the signer's own certificate, ALPN h2), or plain when `tls` is None.
pub async fn serve(
    app: Arc<App>,
    backend: String,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<KbsPluginServer<Plugin>>().await;
    let router = tonic::transport::Server::builder()
        .timeout(std::time::Duration::from_secs(30))
        .concurrency_limit_per_connection(64)
        .add_service(health)
        .add_service(Plugin::service(app, backend));
    match tls {
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        Some(acceptor) => {
            // Handshakes run off the accept loop, each with a deadline; failures are dropped.
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        let hs = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(tcp),
                        );
                        if let Ok(Ok(tls)) = hs.await {
                            let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
                        }
                    });
                }
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}
