//! `wasm-pki`: the sandboxed signer's CLI and server.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use wasm_pki::{Algorithm, CaParams, CertificateAuthority, KeyEncryption, OffsetDateTime};

use wasm_pki_host::authority::policy::Policy;
use wasm_pki_host::authority::{self, tokens, Authority, DataDir};
use wasm_pki_host::db::{LedgerSpec, SqliteLedger};
use wasm_pki_host::{api, assets};
use wasm_pki_host::{client, files};

/// A certificate authority whose signing core runs inside a wasmtime sandbox.
#[derive(Parser)]
#[command(name = "wasm-pki", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Runtime {
    /// The wasm module to run; default: the npm package's module built into this binary.
    #[arg(long, env = "WASM_PKI_MODULE")]
    module: Option<PathBuf>,
    /// File holding the CA key's passphrase (never written anywhere).
    #[arg(long, env = "WASM_PKI_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// Policy file (TOML) with named profiles; the built-in `default` is always there.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Base URL the CA is reachable at (repeatable): every issued certificate then carries a
    /// CRL Distribution Point (BASE/v1/crl.der) and AIA caIssuers (BASE/v1/ca.der).
    #[arg(long = "public-url")]
    public_urls: Vec<String>,
    #[command(flatten)]
    ledger: LedgerArg,
    /// Who verifies CSR signatures: the host with ring (P-256, Ed25519), or the sandbox in pure
    /// wasm (every step inside; slower).
    #[arg(long, value_enum, default_value = "host", env = "WASM_PKI_VERIFY")]
    verify: wasm_pki_host::sandbox::Verifier,
    /// Where the CA key is: `sandbox` (in the guest, beside the CSR parser), `memory` (the key
    /// file decrypted in the host, which signs what the guest builds after checking it), or a
    /// `pkcs11:` URI (RFC 7512) naming the key in a token; the PIN from `pin-source`, never the
    /// command line.
    #[arg(long, default_value = "sandbox", env = "WASM_PKI_KEY_STORE")]
    key_store: wasm_pki_host::keys::KeyStoreSpec,
}

/// Where the ledger is.
#[derive(clap::Args, Clone)]
struct LedgerArg {
    /// The ledger: by default DIR/ledger.sqlite; `postgres://USER@HOST:PORT/DB` for several
    /// signers sharing one (TLS: `?sslmode=require&sslrootcert=CA.pem`); or `sqlite:PATH`.
    #[arg(long = "ledger", env = "WASM_PKI_LEDGER")]
    ledger: Option<String>,
}

/// `--reason`: an RFC 5280 CRLReason name (any case) or code.
fn parse_reason(text: &str) -> Result<u8, String> {
    wasm_pki::crl::reason_code_named(text).ok_or_else(|| {
        let names: Vec<&str> = wasm_pki::crl::REASONS.iter().map(|(_, n)| *n).collect();
        format!(
            "not an RFC 5280 revocation reason; one of {} (any case), or its code 0-10 but 7",
            names.join(", ")
        )
    })
}

impl LedgerArg {
    fn spec(&self, dir: Option<&Path>) -> Result<LedgerSpec> {
        LedgerSpec::parse(self.ledger.as_deref(), dir)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a root CA (and optionally an intermediate that issues) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "p256")]
        algorithm: String,
        #[arg(long, default_value = "wasm-pki CA")]
        name: String,
        /// Encrypt the key files with the passphrase in this file.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Also create an intermediate CA that does the issuing (the root key can then go offline).
        #[arg(long)]
        intermediate: bool,
        /// Where the new keys go: key files (`sandbox`, `memory`: the same files), or a
        /// `pkcs11:` URI: the keys are made inside the token (sensitive, never extractable) and
        /// the certificates are signed there; with --intermediate the root key is the URI's
        /// object label followed by `-root`.
        #[arg(long, default_value = "sandbox", env = "WASM_PKI_KEY_STORE")]
        key_store: wasm_pki_host::keys::KeyStoreSpec,
    },
    /// Run the signer: the HTTP API and the owner's page.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        #[command(flatten)]
        rt: Runtime,
        /// Sandbox instances (default: the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Page files from this folder (default: the page built into this binary).
        #[arg(long)]
        www: Option<PathBuf>,
        /// One log line per request on stderr (method, route, status, latency, token id, serial
        /// or refusal code; never a token): `text`, `json`, or `off`.
        #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "WASM_PKI_LOG_FORMAT")]
        log_format: LogFormat,
        #[command(flatten)]
        tls: TlsArgs,
        /// Also serve the Trustee KBS external plugin (gRPC) on this address, over TLS with the
        /// signer's certificate (plain only with --plain-http, and then only on loopback). Bind
        /// it where KBS alone can reach it: KBS forwards no attestation claims.
        #[arg(long, value_name = "ADDR")]
        kbs_plugin: Option<String>,
        /// The backend name KBS gives the plugin (recorded with what it issues).
        #[arg(long, default_value = "wasm-pki", value_name = "NAME")]
        kbs_backend: String,
    },
    /// Enrolment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The node agent: enrols the node (first start), keeps its certificate renewed, and serves
    /// the SPIFFE Workload API on a Unix socket to the local workloads its entries name.
    Agent {
        /// The signer (first start), https://HOST:PORT.
        #[arg(long)]
        server: Option<String>,
        /// The signer's root SHA-256 fingerprint, as `serve` prints it (first start).
        #[arg(long)]
        ca_fingerprint: Option<String>,
        /// Or the root certificate itself (first start).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// An enrolment token of the [agent] node profile (first start).
        #[arg(long, env = "WASM_PKI_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The node identity to ask for (the token's grant decides).
        #[arg(long)]
        identity: Option<String>,
        /// The agent's directory (the node certificate; made 0700).
        #[arg(long)]
        data_dir: PathBuf,
        /// The Workload API socket.
        #[arg(long)]
        socket: PathBuf,
        /// The longest wait between two reads of the node's entries, e.g. 30s.
        #[arg(long, default_value = "30s")]
        sync_interval: String,
    },
    /// Registration entries: which workload of which node gets which SPIFFE ID.
    Entry {
        #[command(subcommand)]
        command: EntryCommand,
    },
    /// Issue one certificate for a CSR through the sandbox and print it (operator path, no token).
    Sign {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        csr: PathBuf,
        #[arg(long, default_value = "default")]
        profile: String,
        /// The identity the operator vouches for (DNS name, IP, e-mail or spiffe:// ID).
        #[arg(long)]
        identity: Option<String>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Describe a certificate or CSR.
    Inspect { file: PathBuf },
    /// Revoke an issued certificate by serial (hex).
    Revoke {
        #[arg(long, required_unless_present = "ledger")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArg,
        #[arg(long)]
        serial: String,
        /// Also revoke every certificate of its lineage: what it renewed and what renewed it.
        #[arg(long)]
        lineage: bool,
        /// Why, listed in the CRL: an RFC 5280 CRLReason name (keyCompromise, cACompromise,
        /// affiliationChanged, superseded, cessationOfOperation, certificateHold, removeFromCRL,
        /// privilegeWithdrawn, aACompromise, unspecified; any case) or its code. Default: none.
        #[arg(long, value_name = "NAME", value_parser = parse_reason)]
        reason: Option<u8>,
    },
    /// Print a fresh CRL (PEM).
    Crl {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Print the SPIFFE trust bundle (the JWK Set `GET /v1/bundle` serves), with the sequence
    /// number the ledger holds for this CA set.
    Bundle {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        rt: Runtime,
    },
    /// List issued certificates.
    List {
        #[arg(long, required_unless_present = "ledger")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArg,
    },
    /// Ledger maintenance.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Client: get a first certificate from a signer with an enrolment token. The key is made
    /// here and never sent; OUT receives key.pem (0600), cert.pem, chain.pem and ca.pem.
    Enroll {
        /// The signer, https://HOST:PORT.
        #[arg(long)]
        server: String,
        /// Trust the signer only if its root has this SHA-256 fingerprint (as `serve` prints it).
        #[arg(long, required_unless_present_any = ["ca_file", "dry_run"])]
        ca_fingerprint: Option<String>,
        /// Or trust the root in this PEM file.
        #[arg(long, conflicts_with = "ca_fingerprint")]
        ca_file: Option<PathBuf>,
        /// The enrolment token (better from the environment than the command line, which other
        /// users can see in the process list).
        #[arg(long, env = "WASM_PKI_TOKEN", hide_env_values = true)]
        token: String,
        /// The name to ask for (DNS name, IP, e-mail or spiffe:// ID); the token decides.
        #[arg(long)]
        identity: Option<String>,
        /// The key's algorithm: p256 or ed25519.
        #[arg(long, default_value = "p256")]
        algorithm: Algorithm,
        /// The output directory (created 0700).
        #[arg(long)]
        out: PathBuf,
        /// Make the key and CSR and print the CSR; send nothing, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace the certificate OUT already holds.
        #[arg(long)]
        force: bool,
    },
    /// Client: renew the certificate `enroll` wrote, authenticated by the certificate itself.
    Renew {
        /// The directory `enroll` wrote.
        #[arg(long)]
        out: PathBuf,
        /// Another signer URL than the one enrolment used.
        #[arg(long)]
        server: Option<String>,
        /// Keep renewing at the signer's renewAfter (with jitter), retrying while it is down.
        #[arg(long)]
        daemon: bool,
        /// A new key each time, for the same names.
        #[arg(long)]
        rekey: bool,
        /// Authenticate with a signed renewal proof instead of the TLS client certificate (for
        /// a signer behind a TLS-terminating proxy). Expired certificates always use one.
        #[arg(long)]
        proof: bool,
        /// Run this shell command after each renewal (WASM_PKI_CERT, WASM_PKI_KEY are set).
        #[arg(long)]
        exec: Option<String>,
        /// Send a signal after each renewal: PID:SIGNAL, e.g. 1234:HUP.
        #[arg(long)]
        signal: Option<wasm_pki_host::client::renew::Signal>,
    },
}

/// How `serve` speaks TLS.
#[derive(clap::Args)]
struct TlsArgs {
    /// A name the signer is reachable at, for its own certificate (repeatable; DNS name or IP).
    /// Default: the listen host and `localhost`.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Lifetime of the certificate the signer issues itself (renewed at two thirds of it).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    tls_lifetime: std::time::Duration,
    /// Serve this certificate chain (PEM) instead of one issued by this CA.
    #[arg(long, requires = "tls_key", conflicts_with_all = ["plain_http", "names"])]
    tls_cert: Option<PathBuf>,
    /// The key (PEM, PKCS#8/PKCS#1/SEC1) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP, for use behind a TLS-terminating proxy only: tokens and certificates
    /// then cross the network in clear up to that proxy.
    #[arg(long)]
    plain_http: bool,
}

/// How `serve` logs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// No request log.
    Off,
}

fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::INFO);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Off => {}
    }
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Copy every token, certificate and revocation (and the CRL number) into an empty ledger,
    /// in one transaction, then read the copy back and compare.
    Migrate {
        /// The source: sqlite:DIR/ledger.sqlite or postgres://…
        #[arg(long)]
        from: String,
        /// The target (empty): postgres://… or sqlite:PATH
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum EntryCommand {
    /// Register who gets what: workloads on NODE whose selectors include every --selector get
    /// the SPIFFE ID (checked against the policy's [agent] workload profile). Prints the entry.
    Create {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArg,
        /// The policy file with the [agent] table (required: the entry is checked against it).
        #[arg(long)]
        policy: PathBuf,
        /// The identity of the enrolled node whose agent serves the entry.
        #[arg(long)]
        node: String,
        #[arg(long = "spiffe-id")]
        spiffe_id: String,
        /// `unix:uid:1000`, `unix:gid:…`, `unix:user:…`, `unix:group:…`, `unix:path:/abs`,
        /// `unix:sha256:HEX` (repeatable; all must match).
        #[arg(long = "selector", required = true)]
        selectors: Vec<String>,
        /// X.509-SVID lifetime, e.g. 1h (default 1h, at most the profile's).
        #[arg(long = "x509-ttl")]
        x509_ttl: Option<String>,
        /// JWT-SVID lifetime, e.g. 5m (default 5m).
        #[arg(long = "jwt-ttl")]
        jwt_ttl: Option<String>,
        /// A DNS name the X.509-SVIDs also carry (repeatable).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// A hint for workloads holding several SVIDs.
        #[arg(long)]
        hint: Option<String>,
    },
    /// List entries (of one node with --node), as JSON lines.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArg,
        #[arg(long)]
        node: Option<String>,
    },
    /// Delete an entry: its workloads get nothing new (SVIDs already issued run out).
    Delete {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArg,
        id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; the token alone is printed on the last line of stdout.
    Create {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        ledger: LedgerArg,
        #[arg(long, default_value = "default")]
        profile: String,
        /// Identity bound to the token: it becomes the certificate's CN and SAN.
        #[arg(long)]
        identity: Option<String>,
        /// How many certificates it may obtain.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime, e.g. 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Check the profile name against this policy file.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// An ACME external account binding for the policy's `[acme.NAME]` (its profile; needs
        /// --policy): prints the EAB key id and MAC key (for certbot's --eab-kid and
        /// --eab-hmac-key) instead of the token.
        #[arg(long, value_name = "NAME")]
        acme: Option<String>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

/// Open connections served at once (a thread each); more get 503 at once.
const MAX_CONNECTIONS: usize = 1024;

/// The listener's transport, and the host name to print in its address: plain (`--plain-http`),
/// the operator's files, or a certificate this CA issues itself and renews. `also` are further
/// names the certificate must carry (the KBS plugin's address, which shares it).
fn listener_tls(
    app: &Arc<api::App>,
    listen: &str,
    addr: std::net::SocketAddr,
    tls: &TlsArgs,
    also: &[String],
) -> Result<(api::server::Transport, String)> {
    use wasm_pki::SanName;
    let ip = addr.ip();
    let shown = |ip: std::net::IpAddr| -> String {
        if ip.is_unspecified() {
            "localhost".into()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        }
    };
    if tls.plain_http {
        return Ok((api::server::Transport::Plain, shown(ip)));
    }
    let cert = match (&tls.tls_cert, &tls.tls_key) {
        (Some(c), Some(k)) => wasm_pki_host::tls::from_files(c, k)?,
        _ => {
            let names = listener_names(listen, ip, tls);
            let mut sans = Vec::new();
            for n in names.iter().chain(also) {
                let san = SanName::parse(n)
                    .with_context(|| format!("--name {n}: not a DNS name or an IP address"))?;
                if !matches!(san, SanName::Dns(_) | SanName::Ip(_)) {
                    bail!("--name {n}: not a DNS name or an IP address");
                }
                if !sans.contains(&san) {
                    sans.push(san);
                }
            }
            let (app, lifetime) = (app.clone(), tls.tls_lifetime);
            wasm_pki_host::tls::self_renewing(move || {
                let c = app.authority.issue_listener_cert(&sans, lifetime)?;
                let now = authority::now();
                let renew_at = now + (c.not_after - now).max(0) * 2 / 3;
                Ok(wasm_pki_host::tls::Issued {
                    chain: c.chain.into_iter().map(Into::into).collect(),
                    key: rustls_pki_types::PrivateKeyDer::Pkcs8(c.key_pkcs8.to_vec().into()),
                    serial: c.serial,
                    renew_at: std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(renew_at.max(0) as u64),
                })
            })?
        }
    };
    let config = wasm_pki_host::tls::server_config(cert, &app.authority.root_pem)?;
    let host = match tls.names.first() {
        Some(n) if n.contains(':') => format!("[{n}]"),
        Some(n) => n.clone(),
        None => shown(ip),
    };
    Ok((
        api::server::Transport::Tls(tokio_rustls::TlsAcceptor::from(config)),
        host,
    ))
}

fn entry_command(command: EntryCommand) -> Result<()> {
    use wasm_pki_host::authority::entries;
    let ttl = |t: Option<String>| t.as_deref().map(tokens::parse_ttl).transpose();
    match command {
        EntryCommand::Create {
            dir,
            ledger,
            policy,
            node,
            spiffe_id,
            selectors,
            x509_ttl,
            jwt_ttl,
            dns,
            hint,
        } => {
            let policy = Policy::load(&policy)?;
            let ledger = ledger.spec(dir.as_deref())?.open()?;
            let req = entries::EntryRequest {
                node,
                spiffe_id,
                selectors,
                x509_ttl_secs: ttl(x509_ttl)?,
                jwt_ttl_secs: ttl(jwt_ttl)?,
                dns,
                hint,
            };
            let e = entries::create(ledger.as_ref(), &policy, &req, authority::now())?;
            println!("{}", serde_json::to_string(&e)?);
        }
        EntryCommand::List { dir, ledger, node } => {
            let ledger = ledger.spec(dir.as_deref())?.open()?;
            for e in ledger.entries(node.as_deref())? {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
        EntryCommand::Delete { dir, ledger, id } => {
            let ledger = ledger.spec(dir.as_deref())?.open()?;
            if !ledger.delete_entry(&id)? {
                bail!("no entry {id}");
            }
            eprintln!("entry {id} deleted");
        }
    }
    Ok(())
}

/// The names the listener answers to: `--name`, or the host as written in `--listen` (a name
/// stays a name) and localhost, or every local name when listening on all addresses.
fn listener_names(listen: &str, ip: std::net::IpAddr, tls: &TlsArgs) -> Vec<String> {
    let mut names: Vec<String> = tls.names.clone();
    if names.is_empty() {
        names = address_names(listen, ip);
    }
    names
}

/// The names a socket bound as `listen` (resolved to `ip`) is reached at: the host as written
/// and localhost, or every local name when it is bound to all addresses.
fn address_names(listen: &str, ip: std::net::IpAddr) -> Vec<String> {
    let host = listen.rsplit_once(':').map(|(h, _)| h).unwrap_or(listen);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if ip.is_unspecified() {
        ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec()
    } else {
        vec![host.to_string(), "localhost".into()]
    }
}

/// The renew URLs a renewal proof may name as its audience: each published base URL
/// (`--public-url`, what clients behind a proxy see) and each listener name at this port.
fn renew_audiences(
    public_urls: &[String],
    names: &[String],
    scheme: &str,
    port: u16,
) -> Vec<String> {
    let mut v: Vec<String> = public_urls
        .iter()
        .map(|b| format!("{}/v1/renew", b.trim_end_matches('/')))
        .collect();
    for n in names {
        let host = if n.contains(':') {
            format!("[{n}]")
        } else {
            n.clone()
        };
        v.push(format!("{scheme}://{host}:{port}/v1/renew"));
        if (scheme, port) == ("https", 443) || (scheme, port) == ("http", 80) {
            v.push(format!("{scheme}://{host}/v1/renew"));
        }
    }
    v.dedup();
    v
}

/// SHA-256 of the first certificate in `pem`.
fn root_fingerprint(pem: &str) -> Result<String> {
    let certs = wasm_pki::Certificate::parse_all(pem.as_bytes())?;
    Ok(certs[0].fingerprint_sha256())
}

/// `abcd…` as `AB:CD:…`, as openssl and browsers show fingerprints.
fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn read_passphrase(path: &Option<PathBuf>) -> Result<Option<zeroize::Zeroizing<String>>> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the passphrase file {}", p.display()))?;
    let pass = text.trim_end_matches(['\r', '\n']).to_string();
    if pass.is_empty() {
        bail!("the passphrase file {} is empty", p.display());
    }
    Ok(Some(zeroize::Zeroizing::new(pass)))
}

fn load_policy(p: &Option<PathBuf>) -> Result<Policy> {
    match p {
        Some(p) => Policy::load(p),
        None => Ok(Policy::builtin()),
    }
}

fn open_authority(dir: &Path, rt: &Runtime, workers: usize) -> Result<Authority> {
    let pass = read_passphrase(&rt.passphrase_file)?;
    Authority::open(
        dir,
        &assets::module_bytes(rt.module.as_deref())?,
        load_policy(&rt.policy)?,
        pass.as_ref().map(|p| p.as_str()),
        wasm_pki_host::authority::Pool {
            instances: workers,
            verifier: rt.verify,
            key_store: rt.key_store.clone(),
        },
        &rt.public_urls,
        &rt.ledger.spec(Some(dir))?,
    )
}

/// `wasm-pki ledger migrate`: copy, read back, compare.
fn migrate(from: &str, to: &str) -> Result<()> {
    let source = LedgerSpec::parse(Some(from), None)?;
    if let LedgerSpec::Sqlite(p) = &source {
        if !p.is_file() {
            bail!("--from {}: no such ledger file", p.display());
        }
    }
    let target = LedgerSpec::parse(Some(to), None)?;
    if source == target {
        bail!("--from and --to are the same ledger");
    }
    let snap = source.open()?.export()?;
    let dst = target.open()?;
    dst.import(&snap)
        .with_context(|| format!("copying into {}", target.shown()))?;
    let back = dst.export()?;
    let revoked = |s: &wasm_pki_host::db::Snapshot| {
        s.certificates
            .iter()
            .filter(|c| c.revoked_at.is_some())
            .count()
    };
    let counts = |s: &wasm_pki_host::db::Snapshot| {
        (
            s.tokens.len(),
            s.certificates.len(),
            revoked(s),
            s.entries.len(),
            s.acme.len(),
            s.crl_number,
        )
    };
    if counts(&back) != counts(&snap) || back != snap {
        bail!(
            "the copy in {} differs from {}: {:?} against {:?} (tokens, certificates, revoked, entries, ACME objects, CRL number)",
            target.shown(),
            source.shown(),
            counts(&back),
            counts(&snap)
        );
    }
    println!(
        "copied {} tokens, {} certificates ({} revoked), {} registration entries, {} ACME objects and CRL number {} from {} to {}; the copy reads back identical",
        snap.tokens.len(),
        snap.certificates.len(),
        revoked(&snap),
        snap.entries.len(),
        snap.acme.len(),
        snap.crl_number,
        source.shown(),
        target.shown()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            dir,
            algorithm,
            name,
            passphrase_file,
            intermediate,
            key_store,
        } => match key_store {
            wasm_pki_host::keys::KeyStoreSpec::Pkcs11(uri) => {
                init_in_token(&dir, &algorithm, &name, &uri, intermediate)
            }
            _ => init(&dir, &algorithm, &name, &passphrase_file, intermediate),
        },
        Command::Serve {
            dir,
            listen,
            rt,
            workers,
            www,
            log_format,
            tls,
            kbs_plugin,
            kbs_backend,
        } => {
            init_logs(log_format);
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            let workers = workers.unwrap_or(cores);
            let authority = open_authority(&dir, &rt, workers)?;
            // The page loads the npm package next to a --module that sits in one (a built
            // pkg/dist); otherwise the embedded package (also when the module is the server build,
            // which browsers cannot load).
            let pkg = rt
                .module
                .as_deref()
                .and_then(Path::parent)
                .filter(|d| d.join("wasm_pki.js").is_file())
                .and_then(Path::parent)
                .filter(|p| p.join("web.js").is_file())
                .map(Path::to_path_buf);
            let app = Arc::new(api::App::new(
                authority,
                assets::Assets { www, pkg },
                workers * 8,
            ));
            let listener = api::bind(&listen)?;
            let addr = listener.local_addr()?;
            // The plugin shares the listener's certificate, so that certificate also names the
            // address KBS connects to (KBS checks it, and gives up at start-up if it does not match).
            let plugin_bound = match &kbs_plugin {
                None => None,
                Some(at) => {
                    let l = api::bind(at)?;
                    let ip = l.local_addr()?.ip();
                    Some((at.clone(), l, address_names(at, ip)))
                }
            };
            let also = plugin_bound
                .as_ref()
                .map(|(_, _, names)| names.clone())
                .unwrap_or_default();
            let (transport, host) = listener_tls(&app, &listen, addr, &tls, &also)?;
            let ca = DataDir(dir.clone()).root_cert();
            println!(
                "wasm-pki signer: module sha256 {}",
                app.authority.sandbox.module_sha256()
            );
            println!(
                "wasm-pki signer: CA key in {}",
                match &app.authority.key_store {
                    wasm_pki_host::keys::KeyStoreSpec::Sandbox => "the sandbox".to_string(),
                    other => format!("the host's key store ({other})"),
                }
            );
            println!(
                "wasm-pki signer: CA {} sha256 fingerprint {}",
                ca.display(),
                colon_hex(&root_fingerprint(&app.authority.root_pem)?)
            );
            let scheme = if tls.plain_http { "http" } else { "https" };
            let audiences = renew_audiences(
                &rt.public_urls,
                &listener_names(&listen, addr.ip(), &tls),
                scheme,
                addr.port(),
            );
            let _ = app.renew_audiences.set(audiences);
            let _ = app.scheme.set(scheme);
            let base = format!("{scheme}://{host}:{}", addr.port());
            println!("wasm-pki signer: listening on {base}/ (open it to request a certificate)");
            if tls.plain_http {
                eprintln!("warning: --plain-http: this signer speaks plain HTTP; enrolment tokens and certificates cross the network in clear unless a TLS-terminating proxy is in front");
            } else {
                println!(
                    "wasm-pki signer: try  curl --cacert {} {base}/v1/info",
                    ca.display()
                );
            }
            let plugin = match plugin_bound {
                None => None,
                Some((addr, listener, _)) => {
                    let at = listener.local_addr()?;
                    let tls = match &transport {
                        api::server::Transport::Tls(acceptor) => Some(acceptor.clone()),
                        api::server::Transport::Plain if at.ip().is_loopback() => {
                            eprintln!("warning: the KBS plugin speaks plain gRPC on {at} (--plain-http); only processes on this machine can reach it");
                            None
                        }
                        api::server::Transport::Plain => bail!(
                            "--kbs-plugin {addr}: plain gRPC only on a loopback address; without --plain-http it uses TLS"
                        ),
                    };
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    println!("wasm-pki signer: KBS plugin (kbs.plugin.v1) on {scheme}://{at} as backend \"{kbs_backend}\"");
                    Some(api::PluginListener {
                        listener,
                        backend: kbs_backend,
                        tls,
                    })
                }
            };
            api::serve(app, listener, transport, MAX_CONNECTIONS, plugin)
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    dir,
                    ledger: ledger_arg,
                    profile,
                    identity,
                    uses,
                    ttl,
                    policy,
                    acme,
                },
        } => {
            let mut profile = profile;
            if let Some(name) = &acme {
                let Some(p) = &policy else {
                    bail!("--acme needs --policy (the directory's profile is read from it)");
                };
                let loaded = Policy::load(p)?;
                let Some(directory) = loaded.acme.get(name) else {
                    bail!("there is no [acme.{name}] in {}", p.display());
                };
                profile = directory.profile.clone();
            }
            if let Some(p) = &policy {
                if !Policy::load(p)?.profiles.contains_key(&profile) {
                    bail!("profile \"{profile}\" is not in {}", p.display());
                }
            } else if profile != "default" {
                eprintln!("note: profile \"{profile}\" is not checked (no --policy); the server refuses it if its policy lacks it");
            }
            let ttl = tokens::parse_ttl(&ttl)?;
            let d = DataDir(dir.clone());
            if !d.ca_cert().exists() {
                bail!("no CA in {}", dir.display());
            }
            let ledger = ledger_arg.spec(Some(&dir))?.open()?;
            let t = tokens::create(
                ledger.as_ref(),
                &profile,
                identity.as_deref(),
                uses,
                ttl,
                authority::now(),
            )?;
            eprintln!(
                "token {}: profile {profile}, identity {}, {uses} use(s), expires in {ttl} s",
                t.id,
                identity.as_deref().unwrap_or("(none)")
            );
            let secret = t.secret;
            if acme.is_some() {
                let key = authority::acme_secret(&dir, None)?;
                let (kid, hmac) =
                    authority::acme::account::eab_pair(key.as_bytes(), secret.as_str());
                println!("eab-kid: {kid}");
                println!("eab-hmac-key: {}", hmac.as_str());
            } else {
                println!("{}", secret.as_str());
            }
            Ok(())
        }
        Command::Entry { command } => entry_command(command),
        Command::Agent {
            server,
            ca_fingerprint,
            ca_file,
            token,
            identity,
            data_dir,
            socket,
            sync_interval,
        } => wasm_pki_host::agent::run(&wasm_pki_host::agent::Agent {
            server,
            ca_fingerprint,
            ca_file,
            token: token.map(zeroize::Zeroizing::new),
            identity,
            data_dir,
            socket,
            sync_interval: std::time::Duration::from_secs(
                tokens::parse_ttl(&sync_interval)?.max(1) as u64,
            ),
        }),
        Command::Sign {
            dir,
            csr,
            profile,
            identity,
            rt,
        } => {
            let authority = open_authority(&dir, &rt, 1)?;
            let csr_pem = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let signed = authority.sign_as_operator(&csr_pem, &profile, identity.as_deref())?;
            print!("{}", signed.certificate);
            Ok(())
        }
        Command::Inspect { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let d = wasm_pki::inspect(&bytes)?;
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
        Command::Revoke {
            dir,
            ledger,
            serial,
            lineage,
            reason,
        } => {
            let ledger = ledger.spec(dir.as_deref())?.open()?;
            let done =
                authority::revoke(ledger.as_ref(), &serial, lineage, authority::now(), reason)?;
            for s in &done {
                eprintln!("revoked {s}");
            }
            if lineage {
                eprintln!(
                    "the lineage of {serial} ({} certificates) is revoked",
                    done.len()
                );
            }
            Ok(())
        }
        Command::Bundle { dir, rt } => {
            println!("{}", open_authority(&dir, &rt, 1)?.trust_bundle()?);
            Ok(())
        }
        Command::Crl { dir, rt } => {
            print!("{}", open_authority(&dir, &rt, 1)?.crl()?);
            Ok(())
        }
        Command::Ledger {
            command: LedgerCommand::Migrate { from, to },
        } => migrate(&from, &to),
        Command::List { dir, ledger } => {
            for r in ledger.spec(dir.as_deref())?.open()?.list()? {
                println!(
                    "{}\t{}\t{}\tnotAfter={}\t{}\ttoken={}{}{}{}",
                    r.serial,
                    r.subject,
                    r.names.join(","),
                    r.not_after,
                    r.profile,
                    r.token_id,
                    r.renewed_from
                        .map(|s| format!("\trenewed_from={s}"))
                        .unwrap_or_default(),
                    r.revoked_at
                        .map(|t| format!("\trevoked={t}"))
                        .unwrap_or_default(),
                    r.revocation_reason
                        .map(|c| format!(
                            "\treason={}",
                            wasm_pki::crl::reason_name(c).unwrap_or("?")
                        ))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Enroll {
            server,
            ca_fingerprint,
            ca_file,
            token,
            identity,
            algorithm,
            out,
            dry_run,
            force,
        } => {
            let e = client::enroll::Enroll {
                server,
                ca_fingerprint,
                ca_file,
                token: zeroize::Zeroizing::new(token),
                identity,
                algorithm,
                out,
                dry_run,
                force,
            };
            let meta = client::enroll::enroll(&e)?;
            if !dry_run {
                println!(
                    "wasm-pki enroll: serial {} valid until {} (renew after {}) in {}",
                    meta.serial,
                    client::when(meta.not_after),
                    client::when(meta.renew_after),
                    e.out.display()
                );
            }
            Ok(())
        }
        Command::Renew {
            out,
            server,
            daemon,
            rekey,
            proof,
            exec,
            signal,
        } => client::renew::run(&client::renew::Renew {
            out,
            server,
            daemon,
            rekey,
            proof,
            exec,
            signal,
        }),
    }
}

/// The data directory `dir`, refused if it already holds a CA.
fn empty_data_dir(dir: &Path) -> Result<DataDir> {
    let d = DataDir(dir.to_path_buf());
    if d.ca_key().exists() || d.ca_cert().exists() {
        bail!(
            "{} already holds a CA; refusing to overwrite it",
            dir.display()
        );
    }
    Ok(d)
}

/// `init --key-store pkcs11:…`: the keys are made in the token and sign there; only the
/// certificates are written to DIR.
fn init_in_token(
    dir: &Path,
    algorithm: &str,
    name: &str,
    uri: &wasm_pki_host::keys::Pkcs11Uri,
    intermediate: bool,
) -> Result<()> {
    use wasm_pki_host::keys::{pkcs11, CaKey};
    let d = empty_data_dir(dir)?;
    if algorithm.parse::<Algorithm>()? != Algorithm::P256 {
        bail!("keys in a PKCS#11 token are P-256 here");
    }
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = OffsetDateTime::from_unix_timestamp(authority::now())?;
    let public = |spki: Vec<u8>| wasm_pki::PublicKey::from_spki(&spki);
    let signed = |tbs: wasm_pki::Tbs, key: &pkcs11::Pkcs11Key| -> Result<wasm_pki::Certificate> {
        Ok(wasm_pki::Certificate::from_der(
            tbs.assemble(&key.sign(&tbs.der)?),
        )?)
    };
    let root_uri = if intermediate {
        let mut r = uri.clone();
        r.object = Some(format!(
            "{}-root",
            uri.object.as_deref().unwrap_or("wasm-pki-ca")
        ));
        r.id = None;
        r
    } else {
        uri.clone()
    };
    files::ensure_private_dir(dir)?;
    let root_public = public(pkcs11::generate(&root_uri)?)?;
    let issuing_public = match intermediate {
        true => Some(public(pkcs11::generate(uri)?)?),
        false => None,
    };
    let root_key = pkcs11::Pkcs11Key::open(&root_uri)?;
    let tbs =
        CertificateAuthority::root_unsigned(&CaParams::new(name), &root_public, now, &mut rng)?;
    let root = signed(tbs, &root_key)?;
    files::write_atomic(&d.root_cert(), root.to_pem().as_bytes(), 0o644)?;
    if let Some(issuing_public) = issuing_public {
        let mut ip = CaParams::new(&format!("{name} Intermediate"));
        ip.path_len = Some(0);
        ip.validity_secs = 5 * 365 * 86_400;
        let parent = CertificateAuthority::load_public(root.clone(), Vec::new())?;
        let tbs = parent.intermediate_unsigned(&ip, &issuing_public, now, &mut rng)?;
        let int = signed(tbs, &root_key)?;
        let chain = format!("{}{}", int.to_pem(), root.to_pem());
        files::write_atomic(&d.ca_cert(), chain.as_bytes(), 0o644)?;
        println!(
            "created root \"{name}\" and intermediate \"{name} Intermediate\" (p256) in {}; their keys are in the token ({root_uri} and {uri})",
            dir.display()
        );
    } else {
        files::write_atomic(&d.ca_cert(), root.to_pem().as_bytes(), 0o644)?;
        println!(
            "created root CA \"{name}\" (p256) in {}; its key is in the token ({uri})",
            dir.display()
        );
    }
    SqliteLedger::open(&d.ledger())?;
    Ok(())
}

fn init(
    dir: &Path,
    algorithm: &str,
    name: &str,
    passphrase_file: &Option<PathBuf>,
    intermediate: bool,
) -> Result<()> {
    let d = empty_data_dir(dir)?;
    let alg: Algorithm = algorithm.parse()?;
    let pass = read_passphrase(passphrase_file)?;
    files::ensure_private_dir(dir)?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = OffsetDateTime::from_unix_timestamp(authority::now())?;
    let mut params = CaParams::new(name);
    params.algorithm = alg;
    let root = CertificateAuthority::new_root(&params, now, &mut rng)?;
    let key_pem = |ca: &CertificateAuthority,
                   rng: &mut rand_core::UnwrapErr<getrandom::SysRng>|
     -> Result<zeroize::Zeroizing<String>> {
        let key = ca.key().context("a new CA holds its key")?;
        Ok(match &pass {
            Some(p) => zeroize::Zeroizing::new(key.to_encrypted_pkcs8_pem(
                p.as_bytes(),
                KeyEncryption::Scrypt,
                rng,
            )?),
            None => key.to_pkcs8_pem()?,
        })
    };
    files::write_atomic(
        &d.root_cert(),
        root.certificate().to_pem().as_bytes(),
        0o644,
    )?;
    if intermediate {
        let mut ip = CaParams::new(&format!("{name} Intermediate"));
        ip.algorithm = alg;
        ip.path_len = Some(0);
        ip.validity_secs = 5 * 365 * 86_400;
        let int = root.new_intermediate(&ip, now, &mut rng)?;
        files::write_atomic(&d.root_key(), key_pem(&root, &mut rng)?.as_bytes(), 0o600)?;
        files::write_atomic(&d.ca_key(), key_pem(&int, &mut rng)?.as_bytes(), 0o600)?;
        let chain = format!(
            "{}{}",
            int.certificate().to_pem(),
            root.certificate().to_pem()
        );
        files::write_atomic(&d.ca_cert(), chain.as_bytes(), 0o644)?;
        println!(
            "created root \"{name}\" and intermediate \"{name} Intermediate\" ({alg}) in {}",
            dir.display()
        );
        println!(
            "move {} offline: the intermediate does the issuing",
            d.root_key().display()
        );
    } else {
        files::write_atomic(&d.ca_key(), key_pem(&root, &mut rng)?.as_bytes(), 0o600)?;
        files::write_atomic(&d.ca_cert(), root.certificate().to_pem().as_bytes(), 0o644)?;
        println!("created root CA \"{name}\" ({alg}) in {}", dir.display());
    }
    SqliteLedger::open(&d.ledger())?;
    Ok(())
}
