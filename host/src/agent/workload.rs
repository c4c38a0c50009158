//! The SPIFFE Workload API on a Unix socket (tonic; `host/proto/workload.proto`, no package):
//! every call needs the metadata `workload.spiffe.io: true` (else InvalidArgument); the caller is
//! attested from the socket's peer credentials and gets the SVIDs of the entries it matches (none:
//! PermissionDenied). Streams send the full state first, as soon as there is one, then again only
//! when what this caller would get changes; each stream holds at most one message the caller has
//! not read.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::attest::{self, Peer};
use super::state::{Snapshot, State};
use crate::db::Entry;

/// The generated messages and service.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("_");
}

use proto::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use proto::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse,
    X509svid, X509svidRequest, X509svidResponse,
};

/// JWT-SVIDs kept per (entry, audience set) until half their life.
const JWT_CACHE: usize = 4096;

type JwtKey = (String, Vec<String>);

/// The service.
pub struct Workload {
    state: Arc<State>,
    proc: PathBuf,
    /// The node certificate's directory, for asking the signer for JWT-SVIDs.
    node_dir: PathBuf,
    /// Cached JWT-SVIDs: (token, expiry, when to fetch a new one).
    jwts: std::sync::Mutex<std::collections::HashMap<JwtKey, (String, i64, i64)>>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// The header check every call starts with (the standard's guard against SSRF through a
/// workload that forwards requests).
fn checked<T>(r: &Request<T>) -> Result<(), Status> {
    match r.metadata().get("workload.spiffe.io") {
        Some(v) if v.as_bytes() == b"true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "security header missing from request (workload.spiffe.io: true)",
        )),
    }
}

impl Workload {
    /// The caller's selectors, from the socket's peer credentials.
    async fn caller<T>(&self, r: &Request<T>) -> Result<Vec<String>, Status> {
        let cred = r
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
            .and_then(|i| i.peer_cred)
            .ok_or_else(|| Status::permission_denied("the caller's credentials are unknown"))?;
        let peer = Peer {
            pid: cred.pid().unwrap_or(0),
            uid: cred.uid(),
            gid: cred.gid(),
        };
        let proc = self.proc.clone();
        tokio::task::spawn_blocking(move || attest::selectors(&proc, peer))
            .await
            .map_err(|_| Status::internal("attestation failed"))?
            .map_err(|e| Status::permission_denied(format!("attestation failed: {e:#}")))
    }

    /// The header checked and the caller attested: its selectors, when some entry names it (or
    /// no entries were read yet: the caller then waits for the first ones).
    async fn admitted<T>(&self, r: &Request<T>) -> Result<Vec<String>, Status> {
        checked(r)?;
        let selectors = self.caller(r).await?;
        if Self::matching(&self.state.snapshot(), &selectors).is_empty() && !self.waiting() {
            return Err(Status::permission_denied(
                "no identity issued to this caller",
            ));
        }
        Ok(selectors)
    }

    /// The entries `selectors` match in `s`, in the signer's order.
    fn matching<'a>(s: &'a Snapshot, selectors: &[String]) -> Vec<&'a Entry> {
        s.entries
            .iter()
            .filter(|e| crate::authority::entries::matches(e, selectors))
            .collect()
    }
}

/// The X.509 answer for `entries` now: only SVIDs that are still valid; None while there are
/// none to give.
fn x509_response(s: &Snapshot, entries: &[&Entry]) -> Option<X509svidResponse> {
    let now = super::now();
    let bundle: Vec<u8> = s.x509_authorities.concat();
    let svids: Vec<X509svid> = entries
        .iter()
        .filter_map(|e| {
            let v = s.svids.get(&e.id).filter(|v| now < v.not_after)?;
            Some(X509svid {
                spiffe_id: e.spiffe_id.clone(),
                x509_svid: v.chain.concat(),
                x509_svid_key: v.key_pkcs8.to_vec(),
                bundle: bundle.clone(),
                hint: e.hint.clone().unwrap_or_default(),
            })
        })
        .collect();
    (!svids.is_empty()).then(|| X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles: Default::default(),
    })
}

/// A JSON value as a protobuf `Value` (the Workload API returns claims as a `Struct`).
fn to_proto(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_proto).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, to_proto(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Stream `make(snapshot)` whenever the state moves, skipping repeats; ends when the caller
/// goes away, or with the status `make` answers (an identity that is gone). One message is
/// buffered at most.
fn watch<T, F>(state: Arc<State>, make: F) -> Stream<T>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn(&Snapshot) -> Result<Option<T>, Status> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut versions = state.subscribe();
    tokio::spawn(async move {
        let mut last: Option<T> = None;
        loop {
            versions.borrow_and_update();
            match make(&state.snapshot()) {
                Ok(Some(m)) if last.as_ref() != Some(&m) => {
                    if tx.send(Ok(m.clone())).await.is_err() {
                        return;
                    }
                    last = Some(m);
                }
                Ok(_) => {}
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            // Wake at the next publish, or soon enough to drop an SVID that expired meanwhile.
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Workload {
    type FetchX509SVIDStream = Stream<X509svidResponse>;
    type FetchX509BundlesStream = Stream<X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        r: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let selectors = self.admitted(&r).await?;
        Ok(Response::new(watch(self.state.clone(), move |s| {
            let entries = Self::matching(s, &selectors);
            // Its entries deleted (or moved to another node): the stream ends as a call with
            // no identity would (SPIRE does the same); the client retries with backoff. (A
            // snapshot read from the signer always has the CA among its authorities; the
            // empty one before the first sync has none, and there callers wait.)
            if entries.is_empty() && !s.x509_authorities.is_empty() {
                return Err(Status::permission_denied(
                    "no identity issued to this caller any more",
                ));
            }
            Ok(x509_response(s, &entries))
        })))
    }

    async fn fetch_x509_bundles(
        &self,
        r: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.admitted(&r).await?;
        Ok(Response::new(watch(self.state.clone(), |s| {
            Ok(
                (!s.x509_authorities.is_empty()).then(|| X509BundlesResponse {
                    crl: Vec::new(),
                    bundles: [(s.trust_domain.clone(), s.x509_authorities.concat())].into(),
                }),
            )
        })))
    }

    async fn fetch_jwtsvid(
        &self,
        r: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        checked(&r)?;
        let req = r.get_ref();
        wasm_pki::wire::jwt_svid::check_audience(&req.audience)
            .map_err(Status::invalid_argument)?;
        let selectors = self.admitted(&r).await?;
        let snapshot = self.state.snapshot();
        let entries: Vec<Entry> = Self::matching(&snapshot, &selectors)
            .into_iter()
            .filter(|e| req.spiffe_id.is_empty() || e.spiffe_id == req.spiffe_id)
            .cloned()
            .collect();
        if entries.is_empty() {
            return Err(Status::permission_denied(
                "no identity issued to this caller for that SPIFFE ID",
            ));
        }
        let mut audience = req.audience.clone();
        audience.sort();
        audience.dedup();
        let mut svids = Vec::with_capacity(entries.len());
        for e in entries {
            let key = (e.id.clone(), audience.clone());
            let now = super::now();
            let cached = self
                .jwts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|(_, exp, refresh)| now < *refresh && now < *exp)
                .map(|(t, _, _)| t.clone());
            let token = match cached {
                Some(t) => t,
                None => {
                    let (dir, id, aud) = (self.node_dir.clone(), e.id.clone(), audience.clone());
                    let (token, exp) = tokio::task::spawn_blocking(move || {
                        super::sync::fetch_jwt(&dir, &id, &aud)
                    })
                    .await
                    .map_err(|_| Status::internal("the JWT-SVID request failed"))?
                    .map_err(|e| Status::unavailable(format!("{e:#}")))?;
                    let mut cache = self.jwts.lock().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= JWT_CACHE {
                        cache.clear();
                    }
                    cache.insert(key, (token.clone(), exp, now + (exp - now) / 2));
                    token
                }
            };
            svids.push(Jwtsvid {
                spiffe_id: e.spiffe_id.clone(),
                svid: token,
                hint: e.hint.clone().unwrap_or_default(),
            });
        }
        Ok(Response::new(JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        r: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.admitted(&r).await?;
        Ok(Response::new(watch(self.state.clone(), |s| {
            Ok((!s.jwt_bundle.is_empty()).then(|| JwtBundlesResponse {
                bundles: [(s.trust_domain.clone(), s.jwt_bundle.clone())].into(),
            }))
        })))
    }

    async fn validate_jwtsvid(
        &self,
        r: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        checked(&r)?;
        let req = r.get_ref();
        if req.audience.is_empty() || req.svid.is_empty() {
            return Err(Status::invalid_argument("audience and svid are required"));
        }
        let snapshot = self.state.snapshot();
        let keys: serde_json::Value =
            serde_json::from_slice(&snapshot.jwt_bundle).unwrap_or_default();
        let authorities: Vec<wasm_pki::JwtAuthority> = keys["keys"]
            .as_array()
            .map(|ks| {
                ks.iter()
                    .filter_map(|k| wasm_pki::JwtAuthority::from_jwk(k).ok())
                    .collect()
            })
            .unwrap_or_default();
        let v = wasm_pki::validate_jwt_svid(&req.svid, &authorities, &req.audience, super::now())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: v.claims.spiffe_id.to_string(),
            claims: Some(prost_types::Struct {
                fields: v
                    .all_claims
                    .into_iter()
                    .map(|(k, v)| (k, to_proto(v)))
                    .collect(),
            }),
        }))
    }
}

impl Workload {
    /// Before the first sync there are no entries to match: callers wait for them rather than
    /// being told they have no identity.
    fn waiting(&self) -> bool {
        !self.state.published()
    }
}

/// Bind the Workload API socket (inside a tokio runtime). It is made afresh (a stale one is
/// removed) and writable by every local user: who gets what is decided by attestation, not by
/// who may connect.
pub fn bind(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if socket.exists() {
        std::fs::remove_file(socket)?;
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777))?;
    Ok(listener)
}

/// Serve the Workload API on `listener` until the process ends; JWT-SVIDs are asked of the
/// signer with the node certificate in `node_dir`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: Arc<State>,
    node_dir: PathBuf,
) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let service = SpiffeWorkloadApiServer::new(Workload {
        state,
        proc: PathBuf::from("/proc"),
        node_dir,
        jwts: Default::default(),
    })
    .max_decoding_message_size(64 << 10);
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(64)
        .add_service(service)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
