//! ACME challenge validation: http-01 (RFC 8555 §8.3), dns-01 (RFC 8555 §8.4) and tls-alpn-01
//! (RFC 8737, with RFC 8738's reverse names for IP identifiers), run by a [`Validator`] that owns
//! a small tokio runtime, a fixed number of workers and a bounded queue, so a flood of challenge
//! responses cannot make the CA open unbounded connections.
//!
//! Every address validation would connect to (the identifier's, and each redirect target's) is
//! first checked with [`AcmeDirectory::may_connect`], and connections are made to that very
//! address: names are resolved here (hickory-resolver, through the directory's resolvers or
//! `/etc/resolv.conf`) and never again by a library behind our back. Error kinds follow
//! Let's Encrypt's Boulder: `connection` when the target cannot be reached (or may not be),
//! `dns` when a lookup fails, `tls` when a handshake fails, `unauthorized` when the answer is
//! wrong.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Empty};
use hyper::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use wasm_pki::wire::acme::{check_tls_alpn01, dns01_txt_value, AcmeError, Identifier, ProblemKind};

use super::config::{AcmeDirectory, ChallengeType};

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The User-Agent of http-01 requests.
const USER_AGENT_VALUE: &str = concat!("wasm-pki-acme-validation/", env!("CARGO_PKG_VERSION"));

/// hyper's smallest allowed read buffer is 8 KiB; response heads beyond this are refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// One challenge to validate.
pub struct Job {
    /// The challenge type.
    pub challenge: ChallengeType,
    /// The identifier validated; for a wildcard order the base domain, without `*.` (RFC 8555
    /// §7.1.3).
    pub identifier: Identifier,
    /// The challenge's token (base64url).
    pub token: String,
    /// `token.thumbprint` (RFC 8555 §8.1).
    pub key_authorization: String,
    /// The directory the challenge belongs to: its ports, resolvers and allowed networks.
    pub directory: Arc<AcmeDirectory>,
}

/// The bounds of validation work.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Validations run at once.
    pub workers: usize,
    /// Jobs waiting for a worker; [`Validator::submit`] refuses more.
    pub queue: usize,
    /// The whole validation of one job (lookups, connections, redirects, reading).
    pub timeout: Duration,
    /// The largest http-01 response body read.
    pub max_body: usize,
    /// The most redirects an http-01 validation follows.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workers: 8,
            queue: 256,
            timeout: Duration::from_secs(10),
            max_body: 8 * 1024,
            max_redirects: 10,
        }
    }
}

/// [`Validator::submit`]'s refusal: the queue is full (the caller should answer the ACME
/// client with a retry, not wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the challenge validation queue is full")
    }
}

impl std::error::Error for QueueFull {}

/// What a worker calls with a job's outcome.
type Done = Box<dyn FnOnce(Result<(), AcmeError>) + Send>;

/// A queued job and its callback. Dropped without having been answered (the validator
/// stopped), it answers `serverInternal`, so every accepted job's `done` runs exactly once.
struct Work {
    job: Option<Job>,
    done: Option<Done>,
}

impl Work {
    fn answer(&mut self, outcome: Result<(), AcmeError>) {
        if let Some(done) = self.done.take() {
            done(outcome);
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.answer(Err(AcmeError::new(
            ProblemKind::ServerInternal,
            "validation was abandoned: the validator stopped",
        )));
    }
}

/// The challenge validation service: its own tokio runtime (2 threads named `acme-validate`),
/// [`Limits::workers`] tasks, and a queue of [`Limits::queue`] jobs.
pub struct Validator {
    tx: mpsc::Sender<Work>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("free_queue_slots", &self.tx.capacity())
            .finish()
    }
}

impl Validator {
    /// Start the runtime and the workers.
    pub fn start(limits: Limits) -> anyhow::Result<Self> {
        if limits.workers == 0 || limits.queue == 0 {
            anyhow::bail!("ACME validation needs at least one worker and one queue slot");
        }
        if limits.timeout.is_zero() {
            anyhow::bail!("ACME validation needs a timeout above zero");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("acme-validate")
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel::<Work>(limits.queue);
        let rx = Arc::new(Mutex::new(rx));
        let limits = Arc::new(limits);
        for _ in 0..limits.workers {
            runtime.spawn(worker(rx.clone(), limits.clone()));
        }
        Ok(Validator {
            tx,
            runtime: Some(runtime),
        })
    }

    /// Queue a job; `done` is called exactly once with the outcome, on a blocking thread
    /// (it may write to a database). `Err(QueueFull)` at once when the queue is full (the call
    /// never blocks); `done` is then dropped without being called. A job still queued or
    /// running when the validator is dropped is answered `serverInternal`.
    pub fn submit(
        &self,
        job: Job,
        done: Box<dyn FnOnce(Result<(), AcmeError>) + Send>,
    ) -> Result<(), QueueFull> {
        let work = Work {
            job: Some(job),
            done: Some(done),
        };
        match self.tx.try_send(work) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Refused: the caller learns it from the Err, so the callback must not run.
                let mut work = e.into_inner();
                work.done = None;
                Err(QueueFull)
            }
        }
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        // May be dropped inside another runtime, where a blocking shutdown would panic.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn worker(rx: Arc<Mutex<mpsc::Receiver<Work>>>, limits: Arc<Limits>) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some(mut work) = next else { return };
        let Some(job) = work.job.take() else { continue };
        let l = limits.clone();
        // A task of its own, so even a panic in validation still answers the job.
        let outcome = match tokio::spawn(async move { validate(&job, &l).await }).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "ACME validation task failed");
                Err(AcmeError::new(
                    ProblemKind::ServerInternal,
                    "validation failed inside the server",
                ))
            }
        };
        if let Some(done) = work.done.take() {
            if let Err(e) = tokio::task::spawn_blocking(move || done(outcome)).await {
                tracing::error!(error = %e, "ACME validation callback failed");
            }
        }
    }
}

/// Validate one challenge, the whole of it under `limits.timeout`.
pub async fn validate(job: &Job, limits: &Limits) -> Result<(), AcmeError> {
    let outcome = match tokio::time::timeout(limits.timeout, check(job, limits)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(AcmeError::new(
            ProblemKind::Connection,
            format!(
                "{} validation of {} timed out after {}",
                job.challenge.name(),
                job.identifier.value(),
                seconds(limits.timeout)
            ),
        )),
    };
    tracing::debug!(
        challenge = job.challenge.name(),
        identifier = %job.identifier.value(),
        outcome = ?outcome,
        "ACME challenge validated"
    );
    outcome
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

async fn check(job: &Job, limits: &Limits) -> Result<(), AcmeError> {
    if !job.directory.offers(job.challenge) {
        return Err(AcmeError::malformed(format!(
            "this directory does not offer {}",
            job.challenge.name()
        )));
    }
    if job.token.is_empty()
        || job.token.len() > 256
        || !job
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AcmeError::malformed("the challenge token is not base64url"));
    }
    let mut dns = Dns::new(&job.directory);
    match job.challenge {
        ChallengeType::Http01 => http01(job, limits, &mut dns).await,
        ChallengeType::TlsAlpn01 => tls_alpn01(job, limits, &mut dns).await,
        ChallengeType::Dns01 => dns01(job, &mut dns).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Names and addresses

/// Where a request goes: an address as it is, or a name resolved here.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn of(id: &Identifier) -> Result<Host, AcmeError> {
        match id {
            Identifier::Ip(ip) => Ok(Host::Ip(*ip)),
            Identifier::Dns(_) if id.is_wildcard() => Err(AcmeError::new(
                ProblemKind::RejectedIdentifier,
                "a wildcard name can only be validated by dns-01",
            )),
            Identifier::Dns(name) => Ok(Host::Name(name.clone())),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// What kind of address `ip` is, for a refusal's detail (the ranges `may_connect` refuses).
fn address_class(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_unspecified() || o[0] == 0 {
                "an unspecified (this-network)"
            } else if v4.is_loopback() {
                "a loopback"
            } else if v4.is_private() {
                "a private"
            } else if v4.is_link_local() {
                "a link-local"
            } else if v4.is_multicast() {
                "a multicast"
            } else if v4.is_broadcast() {
                "a broadcast"
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                "a shared (carrier-grade NAT)"
            } else if o[0] >= 240 {
                "a reserved"
            } else {
                "an internal"
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_class(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                "an unspecified"
            } else if v6.is_loopback() {
                "a loopback"
            } else if v6.is_multicast() {
                "a multicast"
            } else if (s[0] & 0xfe00) == 0xfc00 {
                "a unique local"
            } else if (s[0] & 0xffc0) == 0xfe80 {
                "a link-local"
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                "a NAT64"
            } else {
                "an internal"
            }
        }
    }
}

fn refused(ip: IpAddr) -> String {
    format!(
        "validation may not connect to {ip} ({} address; the directory's allowedNetworks does not list it)",
        address_class(ip)
    )
}

/// The resolver of one validation, made when first needed: the directory's servers, or the
/// system's. No cache outlives the validation (each validation makes its own).
struct Dns<'a> {
    directory: &'a AcmeDirectory,
    resolver: Option<TokioResolver>,
}

impl<'a> Dns<'a> {
    fn new(directory: &'a AcmeDirectory) -> Self {
        Dns {
            directory,
            resolver: None,
        }
    }

    fn resolver(&mut self) -> Result<&TokioResolver, AcmeError> {
        if self.resolver.is_none() {
            self.resolver = Some(build_resolver(self.directory)?);
        }
        self.resolver.as_ref().ok_or_else(|| {
            AcmeError::new(ProblemKind::ServerInternal, "the resolver was not built")
        })
    }

    /// `name`'s AAAA then A addresses.
    async fn addresses(&mut self, name: &str) -> Result<Vec<IpAddr>, AcmeError> {
        let fqdn = fqdn(name)?;
        let resolver = self.resolver()?;
        let (v6, v4) = tokio::join!(
            resolver.lookup(fqdn.clone(), RecordType::AAAA),
            resolver.lookup(fqdn, RecordType::A)
        );
        let mut ips = Vec::new();
        let mut errors = Vec::new();
        for result in [v6, v4] {
            match result {
                Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })),
                Err(e) => errors.push(e),
            }
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
        if errors.iter().any(NetError::is_nx_domain) {
            return Err(AcmeError::new(
                ProblemKind::Dns,
                format!("NXDOMAIN looking up A and AAAA for {name}: the name does not exist"),
            ));
        }
        match errors.into_iter().find(|e| !e.is_no_records_found()) {
            Some(e) => Err(AcmeError::new(
                ProblemKind::Dns,
                format!("looking up A and AAAA for {name} failed: {e}"),
            )),
            None => Err(AcmeError::new(
                ProblemKind::Dns,
                format!("no valid A or AAAA records for {name}"),
            )),
        }
    }

    /// The TXT strings at `name` (each record's character-strings concatenated).
    async fn txt(&mut self, name: &str) -> Result<Vec<Vec<u8>>, AcmeError> {
        let fqdn = fqdn(name)?;
        let lookup = match self.resolver()?.lookup(fqdn, RecordType::TXT).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => {
                return Err(AcmeError::new(
                    ProblemKind::Dns,
                    format!("NXDOMAIN looking up TXT for {name}"),
                ))
            }
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => {
                return Err(AcmeError::new(
                    ProblemKind::Dns,
                    format!("looking up TXT for {name} failed: {e}"),
                ))
            }
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.concat()),
                _ => None,
            })
            .collect())
    }
}

/// `name` as a fully qualified name, so no search domain of resolv.conf is tried.
fn fqdn(name: &str) -> Result<Name, AcmeError> {
    let mut n = Name::from_ascii(name).map_err(|e| {
        AcmeError::new(
            ProblemKind::RejectedIdentifier,
            format!("{name:?} is not a DNS name: {e}"),
        )
    })?;
    n.set_fqdn(true);
    Ok(n)
}

fn build_resolver(dir: &AcmeDirectory) -> Result<TokioResolver, AcmeError> {
    let internal = |why: String| AcmeError::new(ProblemKind::ServerInternal, why);
    let (config, mut opts) = if dir.resolvers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| internal(format!("reading the system resolver configuration: {e}")))?
    } else {
        let servers = dir
            .resolvers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        // Exactly the configured servers: no hosts file.
        opts.use_hosts_file = ResolveHosts::Never;
        (ResolverConfig::from_name_servers(servers), opts)
    };
    opts.cache_size = 0;
    opts.recursion_desired = true;
    // Names are fully qualified; search lists never apply.
    opts.ndots = 0;
    opts.try_tcp_on_error = true;
    let mut builder =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    *builder.options_mut() = opts;
    builder
        .build()
        .map_err(|e| internal(format!("building the resolver: {e}")))
}

/// Connect to `host:port`: its addresses in order (IPv6 first), each checked with
/// `may_connect` before any connection.
async fn connect(
    dns: &mut Dns<'_>,
    host: &Host,
    port: u16,
    limits: &Limits,
) -> Result<(TcpStream, SocketAddr), AcmeError> {
    let ips = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => dns.addresses(name).await?,
    };
    let (allowed, denied): (Vec<IpAddr>, Vec<IpAddr>) = ips
        .into_iter()
        .partition(|ip| dns.directory.may_connect(*ip));
    if allowed.is_empty() {
        let first = denied
            .first()
            .copied()
            .ok_or_else(|| AcmeError::new(ProblemKind::Dns, format!("no addresses for {host}")))?;
        let mut detail = refused(first);
        if let Host::Name(name) = host {
            detail =
                format!("{name} resolves only to addresses validation may not reach: {detail}");
        }
        return Err(AcmeError::new(ProblemKind::Connection, detail));
    }
    // Leave time for a fallback when the first address does not answer.
    let per_try = if allowed.len() > 1 {
        limits.timeout / 2
    } else {
        limits.timeout
    };
    let mut failures = Vec::new();
    for ip in allowed {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(per_try, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
            Err(_) => failures.push(format!("{addr}: timed out")),
        }
    }
    Err(AcmeError::new(
        ProblemKind::Connection,
        format!("could not connect to {host}: {}", failures.join("; ")),
    ))
}

// ---------------------------------------------------------------------------------------------
// TLS

/// Accepts any certificate chain (tls-alpn-01 certificates are self-signed, and Let's Encrypt
/// ignores certificate validity on https redirects), but still checks that the server holds the
/// key of the certificate it presented. The signature is checked against the certificate's
/// public key alone: webpki refuses to parse a certificate with a critical extension it does not
/// know, and acmeIdentifier is exactly that (RFC 8737 §3).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

/// The subjectPublicKeyInfo of a certificate, as DER.
fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, rustls::Error> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    Ok(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let spki = SubjectPublicKeyInfoDer::from(spki_of(cert)?);
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| bad())?;
        // TLS 1.2: every algorithm of the scheme is tried (as rustls does).
        let (_, algs) = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .ok_or(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        if algs
            .iter()
            .any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok())
        {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(bad())
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = SubjectPublicKeyInfoDer::from(spki_of(cert)?);
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &spki,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_client(alpn: &[u8]) -> Result<Arc<ClientConfig>, AcmeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::new(ProblemKind::ServerInternal, format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

fn server_name(host: &Host) -> Result<ServerName<'static>, AcmeError> {
    match host {
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Name(name) => ServerName::try_from(name.clone()).map_err(|_| {
            AcmeError::new(
                ProblemKind::RejectedIdentifier,
                format!("{name:?} is not a DNS name"),
            )
        }),
    }
}

/// RFC 8738 §6: the reverse-mapping name of an address, the SNI of a tls-alpn-01 validation of
/// an IP identifier.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tls-alpn-01

async fn tls_alpn01(job: &Job, limits: &Limits, dns: &mut Dns<'_>) -> Result<(), AcmeError> {
    let host = Host::of(&job.identifier)?;
    let sni = match &host {
        Host::Ip(ip) => ServerName::try_from(reverse_name(*ip)).map_err(|_| {
            AcmeError::new(
                ProblemKind::ServerInternal,
                "the reverse name is not a DNS name",
            )
        })?,
        Host::Name(_) => server_name(&host)?,
    };
    let port = job.directory.validation_ports.tls;
    let (stream, addr) = connect(dns, &host, port, limits).await?;
    let connector = tokio_rustls::TlsConnector::from(tls_client(ACME_TLS_ALPN)?);
    let tls = connector.connect(sni, stream).await.map_err(|e| {
        AcmeError::new(
            ProblemKind::Tls,
            format!("tls-alpn-01: the TLS handshake with {addr} failed: {e}"),
        )
    })?;
    let (_, session) = tls.get_ref();
    if session.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(AcmeError::new(
            ProblemKind::Tls,
            format!("tls-alpn-01: the server at {addr} did not negotiate acme-tls/1"),
        ));
    }
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| {
            AcmeError::new(
                ProblemKind::Tls,
                format!("tls-alpn-01: the server at {addr} presented no certificate"),
            )
        })?;
    // The core says incorrectResponse; Boulder answers unauthorized for a wrong certificate.
    check_tls_alpn01(leaf.as_ref(), &job.identifier, &job.key_authorization).map_err(|e| {
        AcmeError::new(
            ProblemKind::Unauthorized,
            format!("{} (certificate served at {addr})", e.detail),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// dns-01

async fn dns01(job: &Job, dns: &mut Dns<'_>) -> Result<(), AcmeError> {
    let name = match &job.identifier {
        Identifier::Dns(name) => name.strip_prefix("*.").unwrap_or(name),
        Identifier::Ip(_) => {
            return Err(AcmeError::malformed(
                "dns-01 cannot validate an IP address identifier (RFC 8738 §7)",
            ))
        }
    };
    let at = format!("_acme-challenge.{name}");
    let want = dns01_txt_value(&job.key_authorization);
    let found = dns.txt(&at).await?;
    if found.iter().any(|t| t.as_slice() == want.as_bytes()) {
        return Ok(());
    }
    match found.first() {
        None => Err(AcmeError::new(
            ProblemKind::Unauthorized,
            format!("no TXT record found at {at}"),
        )),
        Some(first) => Err(AcmeError::new(
            ProblemKind::Unauthorized,
            format!(
                "incorrect TXT record {:?} found at {at}{}",
                sample(first),
                if found.len() > 1 {
                    format!(" (and {} more)", found.len() - 1)
                } else {
                    String::new()
                }
            ),
        )),
    }
}

/// A short printable excerpt of what a server answered, for a problem's detail.
fn sample(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
    if bytes.len() > 64 {
        format!("{text}…")
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// http-01

/// An http(s) URL validation fetches.
#[derive(Clone, Debug)]
struct Target {
    https: bool,
    host: Host,
    port: u16,
    /// Path and query.
    path: String,
}

impl Target {
    fn default_port(&self) -> u16 {
        if self.https {
            443
        } else {
            80
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.port == self.default_port() {
            write!(f, "{scheme}://{}{}", self.host, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// What one request got.
enum Fetched {
    Redirect(String),
    Body(Vec<u8>),
}

async fn http01(job: &Job, limits: &Limits, dns: &mut Dns<'_>) -> Result<(), AcmeError> {
    let dir = &job.directory;
    let host = Host::of(&job.identifier)?;
    let first = Target {
        https: false,
        host: host.clone(),
        port: dir.validation_ports.http,
        path: format!("/.well-known/acme-challenge/{}", job.token),
    };
    // RFC 8555 §8.3: the Host header is the identifier (the port is the validation port).
    let mut host_header = host.to_string();
    let mut target = first;
    let mut redirects = 0usize;
    loop {
        let (stream, addr) = connect(dns, &target.host, target.port, limits).await?;
        let fetched = if target.https {
            let connector = tokio_rustls::TlsConnector::from(tls_client(b"http/1.1")?);
            let tls = connector
                .connect(server_name(&target.host)?, stream)
                .await
                .map_err(|e| {
                    AcmeError::new(
                        ProblemKind::Tls,
                        format!("the TLS handshake with {addr} for {target} failed: {e}"),
                    )
                })?;
            fetch(tls, &host_header, &target, limits).await?
        } else {
            fetch(stream, &host_header, &target, limits).await?
        };
        match fetched {
            Fetched::Body(body) => {
                let trimmed = trim_trailing_whitespace(&body);
                if trimmed == job.key_authorization.as_bytes() {
                    return Ok(());
                }
                return Err(AcmeError::new(
                    ProblemKind::Unauthorized,
                    format!(
                        "the key authorization served at {target} does not match this challenge: expected {:?}, got {:?}",
                        job.key_authorization,
                        sample(trimmed)
                    ),
                ));
            }
            Fetched::Redirect(location) => {
                redirects += 1;
                if redirects > limits.max_redirects {
                    return Err(AcmeError::new(
                        ProblemKind::Connection,
                        format!(
                            "too many redirects (more than {}), the last from {target}",
                            limits.max_redirects
                        ),
                    ));
                }
                let next = redirect_target(&target, &location, dir)?;
                host_header = if next.port == next.default_port() {
                    next.host.to_string()
                } else {
                    format!("{}:{}", next.host, next.port)
                };
                target = next;
            }
        }
    }
}

/// Boulder's trim: the client SHOULD NOT add whitespace, many do.
fn trim_trailing_whitespace(body: &[u8]) -> &[u8] {
    let end = body
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &body[..end]
}

/// One GET over a connection already made (and checked): the redirect's Location, or the body
/// of a 200, read incrementally up to `limits.max_body`.
async fn fetch<IO>(
    io: IO,
    host_header: &str,
    target: &Target,
    limits: &Limits,
) -> Result<Fetched, AcmeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_err = |what: &str, e: &dyn fmt::Display| {
        AcmeError::new(ProblemKind::Connection, format!("{what} {target}: {e}"))
    };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| conn_err("fetching", &e))?;
    let request = Request::get(&target.path)
        .header(HOST, host_header)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| conn_err("building the request for", &e))?;
    let max_body = limits.max_body;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| conn_err("fetching", &e))?;
        let status = response.status();
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            let location = response
                .headers()
                .get(LOCATION)
                .ok_or_else(|| {
                    AcmeError::new(
                        ProblemKind::Connection,
                        format!("{target} redirected ({status}) without a Location"),
                    )
                })?
                .to_str()
                .map_err(|_| {
                    AcmeError::new(
                        ProblemKind::Connection,
                        format!("{target} redirected to a Location that is not ASCII"),
                    )
                })?
                .to_owned();
            return Ok(Fetched::Redirect(location));
        }
        if status != StatusCode::OK {
            return Err(AcmeError::new(
                ProblemKind::Unauthorized,
                format!("invalid response from {target}: HTTP {status} (200 expected)"),
            ));
        }
        let too_large = || {
            AcmeError::new(
                ProblemKind::Unauthorized,
                format!("the response from {target} is larger than {max_body} bytes"),
            )
        };
        // Refuse at once what says it is too long.
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| conn_err("reading the response of", &e))?;
            if let Ok(data) = frame.into_data() {
                if got.len() + data.len() > max_body {
                    return Err(too_large());
                }
                got.extend_from_slice(&data);
            }
        }
        Ok(Fetched::Body(got))
    };
    // Drive the connection alongside the exchange; returning drops (closes) it.
    tokio::pin!(conn);
    tokio::pin!(exchange);
    let mut conn_running = true;
    loop {
        tokio::select! {
            outcome = &mut exchange => return outcome,
            result = &mut conn, if conn_running => {
                conn_running = false;
                if let Err(e) = result {
                    return Err(conn_err("fetching", &e));
                }
            }
        }
    }
}

/// Where a redirect leads, if validation may follow it: http or https, ports 80, 443 or the
/// directory's validation ports (as Let's Encrypt: other ports are refused).
fn redirect_target(
    base: &Target,
    location: &str,
    dir: &AcmeDirectory,
) -> Result<Target, AcmeError> {
    let refuse = |why: String| {
        AcmeError::new(
            ProblemKind::Connection,
            format!(
                "{base} redirected to {:?}: {why}",
                sample(location.as_bytes())
            ),
        )
    };
    let location = location.split('#').next().unwrap_or_default();
    let lower = location.to_ascii_lowercase();
    let absolute = if lower.starts_with("http://") || lower.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with("//") {
        format!("{}:{location}", if base.https { "https" } else { "http" })
    } else if lower.contains("://") || lower.split('/').next().is_some_and(|s| s.contains(':')) {
        return Err(refuse("only http and https URLs are followed".into()));
    } else {
        // A path: absolute, or relative to the current one.
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let current = base.path.split('?').next().unwrap_or_default();
            let dir_end = current.rfind('/').map_or(0, |i| i + 1);
            if location.starts_with('?') {
                format!("{current}{location}")
            } else {
                format!("{}{location}", &current[..dir_end])
            }
        };
        let next = Target {
            path,
            ..base.clone()
        };
        // Checked as a request target now, so a bad one is a clear refusal.
        next.path
            .parse::<Uri>()
            .map_err(|_| refuse("not a valid path".into()))?;
        return Ok(next);
    };
    let uri: Uri = absolute
        .parse()
        .map_err(|_| refuse("not a valid URL".into()))?;
    let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(refuse("only http and https URLs are followed".into())),
    };
    let raw_host = uri
        .host()
        .ok_or_else(|| refuse("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let host = match raw_host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => {
            let name = raw_host.trim_end_matches('.').to_ascii_lowercase();
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !ok {
                return Err(refuse("the host is not a DNS name or an IP address".into()));
            }
            Host::Name(name)
        }
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let ports = [80, 443, dir.validation_ports.http, dir.validation_ports.tls];
    if !ports.contains(&port) {
        return Err(refuse(format!(
            "port {port} is not followed (only 80, 443 and the validation ports)"
        )));
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use rustls::pki_types::PrivateKeyDer;
    use sha2::Digest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::authority::acme::config::ValidationPorts;

    const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    const KEY_AUTH: &str =
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

    fn localhost() -> Identifier {
        Identifier::Ip("127.0.0.1".parse().unwrap())
    }

    fn directory(http: u16, tls: u16, allowed: &[&str]) -> Arc<AcmeDirectory> {
        Arc::new(AcmeDirectory {
            profile: "web".into(),
            challenges: vec![
                ChallengeType::Http01,
                ChallengeType::TlsAlpn01,
                ChallengeType::Dns01,
            ],
            require_eab: false,
            validation_ports: ValidationPorts { http, tls },
            resolvers: Vec::new(),
            allowed_networks: allowed.iter().map(|n| n.parse().unwrap()).collect(),
            terms_of_service: None,
        })
    }

    fn lab(http: u16, tls: u16) -> Arc<AcmeDirectory> {
        directory(http, tls, &["127.0.0.0/8", "::1/128"])
    }

    fn job(challenge: ChallengeType, identifier: Identifier, dir: Arc<AcmeDirectory>) -> Job {
        Job {
            challenge,
            identifier,
            token: TOKEN.into(),
            key_authorization: KEY_AUTH.into(),
            directory: dir,
        }
    }

    fn quick() -> Limits {
        Limits {
            timeout: Duration::from_secs(1),
            ..Limits::default()
        }
    }

    /// What a test server saw.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        /// Request paths and Host headers.
        requests: std::sync::Mutex<Vec<(String, String)>>,
        /// TLS server names asked for.
        sni: std::sync::Mutex<Vec<String>>,
        /// A write failed: the client cut the connection.
        cut: AtomicBool,
    }

    impl Seen {
        fn requests(&self) -> Vec<(String, String)> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// How a test server answers a request.
    enum Reply {
        /// These bytes, then close.
        Full(Vec<u8>),
        /// These bytes, then nothing (the connection stays open).
        Stall(Vec<u8>),
        /// A chunked 200 whose body never ends (up to 64 MiB).
        Endless,
    }

    fn ok(body: &str) -> Reply {
        Reply::Full(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    fn status(code: &str) -> Reply {
        Reply::Full(
            format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        )
    }

    fn redirect(location: &str) -> Reply {
        Reply::Full(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
    }

    /// Read a request head; record its path and Host.
    async fn read_head<S: AsyncRead + Unpin>(s: &mut S, seen: &Seen) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if s.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
        let host = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("host: ")
                    .or_else(|| l.strip_prefix("Host: "))
            })
            .unwrap_or_default()
            .to_owned();
        seen.requests.lock().unwrap().push((path.clone(), host));
        Some(path)
    }

    async fn answer<S: AsyncWrite + Unpin>(s: &mut S, reply: Reply, seen: &Seen) {
        match reply {
            Reply::Full(bytes) => {
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
            }
            Reply::Stall(bytes) => {
                let _ = s.write_all(&bytes).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Reply::Endless => {
                let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if s.write_all(head).await.is_err() {
                    seen.cut.store(true, Ordering::SeqCst);
                    return;
                }
                let mut chunk = b"10000\r\n".to_vec();
                chunk.extend(std::iter::repeat_n(b'x', 0x10000));
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..1024 {
                    if s.write_all(&chunk).await.is_err() {
                        seen.cut.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    }

    /// A plain HTTP server on an ephemeral loopback port.
    async fn http_server(
        respond: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let respond = Arc::new(respond);
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, respond) = (s.clone(), respond.clone());
                tokio::spawn(async move {
                    if let Some(path) = read_head(&mut stream, &s).await {
                        answer(&mut stream, respond(&path), &s).await;
                    }
                });
            }
        });
        (port, seen)
    }

    /// A self-signed certificate naming `sans`, with the acmeIdentifier extension for
    /// `key_auth` when given; made by rcgen with the core's key.
    fn certificate(
        sans: Vec<rcgen::SanType>,
        key_auth: Option<&str>,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = wasm_pki::KeyPair::generate(
            wasm_pki::Algorithm::P256,
            &mut wasm_pki::SeedRng::from_seed([9; 32]),
        );
        let mut p = rcgen::CertificateParams::default();
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        p.subject_alt_names = sans;
        if let Some(ka) = key_auth {
            let digest = sha2::Sha256::digest(ka.as_bytes());
            p.custom_extensions
                .push(rcgen::CustomExtension::new_acme_identifier(&digest));
        }
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let pkcs8 = key.to_pkcs8_der().unwrap().to_vec();
        (
            CertificateDer::from(der),
            PrivateKeyDer::Pkcs8(pkcs8.into()),
        )
    }

    fn ip_san() -> Vec<rcgen::SanType> {
        vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())]
    }

    /// Serves one certificate. (`with_single_cert` would parse it with webpki, which refuses
    /// the critical acmeIdentifier extension.)
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// A TLS server offering `alpn`; with `reply`, it answers one HTTP request after the
    /// handshake.
    async fn tls_server(
        (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
        alpn: &[&[u8]],
        reply: Option<fn() -> Reply>,
    ) -> (u16, Arc<Seen>) {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(rustls::sign::CertifiedKey::new(
            vec![cert],
            rustls::crypto::ring::default_provider()
                .key_provider
                .load_private_key(key)
                .unwrap(),
        )))));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().unwrap_or_default().to_owned();
                    s.sni.lock().unwrap().push(sni);
                    match reply {
                        Some(reply) => {
                            if read_head(&mut tls, &s).await.is_some() {
                                answer(&mut tls, reply(), &s).await;
                            }
                        }
                        None => {
                            let _ = tls.read(&mut [0u8; 1]).await;
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    fn assert_refused(r: Result<(), AcmeError>, kind: ProblemKind, detail: &str) {
        let e = r.expect_err("validation should fail");
        assert_eq!(e.kind, kind, "{}", e.detail);
        assert!(e.detail.contains(detail), "{:?} lacks {detail:?}", e.detail);
    }

    #[tokio::test]
    async fn http01_accepts_the_key_authorization_with_trailing_whitespace() {
        let (port, seen) = http_server(|_| ok(&format!("{KEY_AUTH}\r\n"))).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        validate(&j, &quick()).await.unwrap();
        assert_eq!(
            seen.requests(),
            [(
                format!("/.well-known/acme-challenge/{TOKEN}"),
                "127.0.0.1".to_owned()
            )]
        );
    }

    #[tokio::test]
    async fn http01_refuses_a_wrong_body_and_an_error_status() {
        let (port, _) = http_server(|_| ok("someone.else")).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "does not match",
        );
        let (port, _) = http_server(|_| status("404 Not Found")).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "404",
        );
    }

    #[tokio::test]
    async fn http01_stops_reading_a_body_past_the_limit() {
        let (port, seen) = http_server(|_| Reply::Endless).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        let started = Instant::now();
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "larger than 8192 bytes",
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // The server's writes fail soon: the connection was cut, not drained.
        for _ in 0..100 {
            if seen.cut.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen.cut.load(Ordering::SeqCst), "the server kept writing");
        // A declared length past the limit is refused without reading.
        let (port, _) = http_server(|_| {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec())
        })
        .await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "larger than",
        );
    }

    #[tokio::test]
    async fn http01_gives_up_on_a_stalled_server_at_the_timeout() {
        let (port, _) = http_server(|_| {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec())
        })
        .await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        let started = Instant::now();
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Connection,
            "timed out after 1 s",
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn http01_follows_at_most_max_redirects() {
        // /r/N redirects to /r/N+1 (relative), forever; /ok/N after N redirects serves.
        let hop = |path: &str| -> Reply {
            let n: usize = path
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if path.starts_with("/ok/") && n >= 10 {
                ok(KEY_AUTH)
            } else if path.starts_with("/ok/") {
                redirect(&format!("{}", n + 1))
            } else if path.starts_with("/.well-known/") && path.ends_with("ok") {
                redirect("/ok/1")
            } else {
                redirect(&format!("/r/{}", n + 1))
            }
        };
        let (port, seen) = http_server(hop).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Connection,
            "too many redirects",
        );
        // The first request and 10 redirects followed; the 11th not.
        assert_eq!(seen.requests().len(), 11);
        // Exactly 10 redirects pass.
        let mut j = job(ChallengeType::Http01, localhost(), lab(port, 1));
        j.token = "ok".into();
        validate(&j, &quick()).await.unwrap();
        let r = seen.requests();
        assert_eq!(r.last().unwrap().0, "/ok/10");
        assert_eq!(r.last().unwrap().1, format!("127.0.0.1:{port}"));
    }

    #[tokio::test]
    async fn http01_redirects_are_checked_before_connecting() {
        // A private address not listed, a port not followed, another scheme.
        for (location, detail) in [
            (
                "http://10.1.2.3/x",
                "validation may not connect to 10.1.2.3 (a private address",
            ),
            (
                "http://[fe80::1]/x",
                "may not connect to fe80::1 (a link-local",
            ),
            ("http://127.0.0.1:8080/x", "port 8080 is not followed"),
            ("ftp://127.0.0.1/x", "only http and https"),
            ("http://exa mple/x", "not a valid URL"),
        ] {
            let (port, seen) = http_server(move |_| redirect(location)).await;
            let j = job(ChallengeType::Http01, localhost(), lab(port, 1));
            let started = Instant::now();
            assert_refused(
                validate(&j, &quick()).await,
                ProblemKind::Connection,
                detail,
            );
            assert!(started.elapsed() < Duration::from_millis(500), "{location}");
            assert_eq!(seen.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn http01_follows_a_redirect_to_https_without_checking_the_certificate() {
        // A certificate for another name entirely: ignored, as Let's Encrypt does.
        let cert = certificate(
            vec![rcgen::SanType::DnsName(
                "elsewhere.test".try_into().unwrap(),
            )],
            None,
        );
        let (tls_port, tls_seen) = tls_server(cert, &[b"http/1.1"], Some(|| ok(KEY_AUTH))).await;
        let (port, _) =
            http_server(move |_| redirect(&format!("https://127.0.0.1:{tls_port}/served"))).await;
        let j = job(ChallengeType::Http01, localhost(), lab(port, tls_port));
        validate(&j, &quick()).await.unwrap();
        assert_eq!(
            tls_seen.requests(),
            [("/served".to_owned(), format!("127.0.0.1:{tls_port}"))]
        );
    }

    #[tokio::test]
    async fn nothing_connects_where_the_directory_does_not_allow() {
        let (port, seen) = http_server(|_| ok(KEY_AUTH)).await;
        let cert = certificate(ip_san(), Some(KEY_AUTH));
        let (tls_port, tls_seen) = tls_server(cert, &[ACME_TLS_ALPN], None).await;
        let closed = directory(port, tls_port, &["10.0.0.0/8"]);
        for challenge in [ChallengeType::Http01, ChallengeType::TlsAlpn01] {
            let j = job(challenge, localhost(), closed.clone());
            assert_refused(
                validate(&j, &quick()).await,
                ProblemKind::Connection,
                "validation may not connect to 127.0.0.1 (a loopback address; the directory's allowedNetworks does not list it)",
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.connections.load(Ordering::SeqCst), 0);
        assert_eq!(tls_seen.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn tls_alpn01_checks_the_certificate_and_the_protocol() {
        let good = certificate(ip_san(), Some(KEY_AUTH));
        let (port, seen) = tls_server(good, &[ACME_TLS_ALPN], None).await;
        let j = job(ChallengeType::TlsAlpn01, localhost(), lab(1, port));
        validate(&j, &quick()).await.unwrap();
        // RFC 8738 §6: an address is named by its reverse name. (The server may finish its side
        // of the handshake after the client is done.)
        for _ in 0..50 {
            if !seen.sni.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*seen.sni.lock().unwrap(), ["1.0.0.127.in-addr.arpa"]);

        let no_extension = certificate(ip_san(), None);
        let (port, _) = tls_server(no_extension, &[ACME_TLS_ALPN], None).await;
        let j = job(ChallengeType::TlsAlpn01, localhost(), lab(1, port));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "acmeIdentifier",
        );

        let other_key_auth = certificate(ip_san(), Some("other.key-auth"));
        let (port, _) = tls_server(other_key_auth, &[ACME_TLS_ALPN], None).await;
        let j = job(ChallengeType::TlsAlpn01, localhost(), lab(1, port));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Unauthorized,
            "does not match",
        );

        let good = certificate(ip_san(), Some(KEY_AUTH));
        let (port, _) = tls_server(good, &[], None).await;
        let j = job(ChallengeType::TlsAlpn01, localhost(), lab(1, port));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Tls,
            "did not negotiate acme-tls/1",
        );

        // Nothing listening.
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let j = job(ChallengeType::TlsAlpn01, localhost(), lab(1, port));
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Connection,
            "could not connect",
        );
    }

    #[tokio::test]
    async fn a_dns_name_resolves_before_connecting() {
        // "localhost" resolves offline (hosts file); skip where it does not.
        let (port, seen) = http_server(|_| ok(KEY_AUTH)).await;
        let j = job(
            ChallengeType::Http01,
            Identifier::Dns("localhost".into()),
            lab(port, 1),
        );
        match validate(&j, &quick()).await {
            Ok(()) => {
                assert_eq!(seen.requests()[0].1, "localhost");
            }
            Err(e) if e.kind == ProblemKind::Dns || e.kind == ProblemKind::ServerInternal => {
                eprintln!("skipped: the system resolver does not resolve localhost here: {e}");
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// An authoritative, non-recursive bind9 for `example.test` on a loopback port (answers
    /// carry AA and no RA); killed when dropped.
    struct Bind9 {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Bind9 {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn bind9(zone: &str) -> Option<Bind9> {
        let named = std::path::Path::new("/usr/sbin/named");
        if !named.exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(dir.path().join("example.test.zone"), zone).unwrap();
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                r#"options {{ directory "{d}"; pid-file "{d}/named.pid"; listen-on port {port} {{ 127.0.0.1; }};
listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; }};
controls {{ }};
zone "example.test" {{ type master; file "{d}/example.test.zone"; }};
"#
            ),
        )
        .unwrap();
        let child = std::process::Command::new(named)
            .arg("-g")
            .arg("-c")
            .arg(dir.path().join("named.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Bind9 {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        None
    }

    #[tokio::test]
    async fn dns01_and_names_through_an_authoritative_bind9() {
        let want = dns01_txt_value(KEY_AUTH);
        let (a, b) = want.split_at(20);
        let zone = format!(
            "$TTL 60\n@ IN SOA ns hostmaster 1 60 60 60 60\n@ IN NS ns\nns IN A 127.0.0.1\n\
             web IN A 127.0.0.1\ninside IN A 10.0.0.1\n\
             _acme-challenge.ok IN TXT \"unrelated\"\n_acme-challenge.ok IN TXT \"{want}\"\n\
             _acme-challenge.split IN TXT \"{a}\" \"{b}\"\n\
             _acme-challenge.wrong IN TXT \"{a}\"\n_acme-challenge.empty IN CAA 0 issue \"ca.example\"\n"
        );
        let Some(bind) = bind9(&zone).await else {
            eprintln!("skipped: no bind9 (/usr/sbin/named) here");
            return;
        };
        let (port, seen) = http_server(|_| ok(KEY_AUTH)).await;
        let dir = Arc::new(AcmeDirectory {
            resolvers: vec![SocketAddr::from(([127, 0, 0, 1], bind.port))],
            ..(*lab(port, 1)).clone()
        });
        let dns = |name: &str| Identifier::Dns(name.into());
        for name in ["ok.example.test", "*.ok.example.test", "split.example.test"] {
            let j = job(ChallengeType::Dns01, dns(name), dir.clone());
            validate(&j, &quick())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, kind, detail) in [
            (
                "wrong.example.test",
                ProblemKind::Unauthorized,
                "incorrect TXT record",
            ),
            (
                "empty.example.test",
                ProblemKind::Unauthorized,
                "no TXT record found at _acme-challenge.empty.example.test",
            ),
            (
                "web.example.test",
                ProblemKind::Dns,
                "NXDOMAIN looking up TXT for _acme-challenge.web.example.test",
            ),
        ] {
            let j = job(ChallengeType::Dns01, dns(name), dir.clone());
            assert_refused(validate(&j, &quick()).await, kind, detail);
        }
        // http-01 for names: resolved by the directory's server, checked, then connected.
        let j = job(ChallengeType::Http01, dns("web.example.test"), dir.clone());
        validate(&j, &quick()).await.unwrap();
        assert_eq!(seen.requests()[0].1, "web.example.test");
        let j = job(
            ChallengeType::Http01,
            dns("inside.example.test"),
            dir.clone(),
        );
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Connection,
            "may not connect to 10.0.0.1 (a private address",
        );
        let j = job(ChallengeType::Http01, dns("missing.example.test"), dir);
        assert_refused(validate(&j, &quick()).await, ProblemKind::Dns, "NXDOMAIN");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn mismatched_jobs_are_refused() {
        let dir = lab(1, 1);
        let j = job(ChallengeType::Dns01, localhost(), dir.clone());
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Malformed,
            "IP address",
        );
        let j = job(
            ChallengeType::Http01,
            Identifier::Dns("*.example.com".into()),
            dir.clone(),
        );
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::RejectedIdentifier,
            "wildcard",
        );
        let mut j = job(ChallengeType::Http01, localhost(), dir);
        j.token = "../../etc/passwd".into();
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Malformed,
            "base64url",
        );
        let only_http = Arc::new(AcmeDirectory {
            challenges: vec![ChallengeType::Http01],
            ..(*lab(1, 1)).clone()
        });
        let j = job(ChallengeType::TlsAlpn01, localhost(), only_http);
        assert_refused(
            validate(&j, &quick()).await,
            ProblemKind::Malformed,
            "does not offer",
        );
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_answers_every_accepted_job_once() {
        let (port, seen) = http_server(|_| {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec())
        })
        .await;
        let validator = Validator::start(Limits {
            workers: 1,
            queue: 1,
            ..quick()
        })
        .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let done = |n: usize| -> Done {
            let tx = tx.clone();
            Box::new(move |outcome| {
                let thread = std::thread::current().name().map(str::to_owned);
                tx.send((n, thread, outcome)).unwrap();
            })
        };
        let j = || job(ChallengeType::Http01, localhost(), lab(port, 1));
        validator.submit(j(), done(1)).unwrap();
        // The worker has taken the first job once the server sees it.
        for _ in 0..100 {
            if seen.connections.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        validator.submit(j(), done(2)).unwrap();
        let started = Instant::now();
        assert_eq!(validator.submit(j(), done(3)), Err(QueueFull));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(
            QueueFull.to_string(),
            "the challenge validation queue is full"
        );

        let mut answered = Vec::new();
        for _ in 0..2 {
            let (n, thread, outcome) = tokio::time::timeout(Duration::from_secs(4), rx.recv())
                .await
                .expect("a job was not answered")
                .unwrap();
            assert_eq!(thread.as_deref(), Some("acme-validate"));
            assert_eq!(outcome.unwrap_err().kind, ProblemKind::Connection);
            answered.push(n);
        }
        assert_eq!(answered, [1, 2]);
        // Nothing more: the refused job's callback never runs, the others ran once.
        drop(tx);
        drop(validator);
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .map_or(true, |m| m.is_none()));
        assert!(Validator::start(Limits {
            queue: 0,
            ..Limits::default()
        })
        .is_err());
    }

    #[test]
    fn redirect_targets_and_names() {
        let dir = lab(5002, 5001);
        let base = Target {
            https: false,
            host: Host::Ip("127.0.0.1".parse().unwrap()),
            port: 5002,
            path: "/.well-known/acme-challenge/abc?q=1".into(),
        };
        for (location, want) in [
            ("/x", "http://127.0.0.1:5002/x"),
            ("y", "http://127.0.0.1:5002/.well-known/acme-challenge/y"),
            (
                "?z",
                "http://127.0.0.1:5002/.well-known/acme-challenge/abc?z",
            ),
            ("//Example.COM/a#frag", "http://example.com/a"),
            ("HTTPS://[::1]:5001/b?c", "https://[::1]:5001/b?c"),
            ("https://ca.example:443", "https://ca.example/"),
            ("http://1.2.3.4:5001", "http://1.2.3.4:5001/"),
        ] {
            let t = redirect_target(&base, location, &dir).unwrap();
            assert_eq!(t.to_string(), want, "{location}");
        }
        for location in [
            "http://example.com:8080/",
            "mailto:a@example.com",
            "javascript:alert(1)",
            "http://ex ample/",
            "http://exa_mple..com/",
        ] {
            assert!(
                redirect_target(&base, location, &dir).is_err(),
                "{location}"
            );
        }
        assert_eq!(
            reverse_name("192.0.2.7".parse().unwrap()),
            "7.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert_eq!(trim_trailing_whitespace(b"ab \r\n\t"), b"ab");
        assert_eq!(trim_trailing_whitespace(b" \n"), b"");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
