//! The ledger (`db/`, as step-ca's `db/`): enrolment tokens (as hashes) and every issued
//! certificate, recorded before the certificate is handed out; registration entries; ACME
//! objects (compare-and-swap documents, as step-ca's `acme/db`). Stores only: it decides nothing.
//! Two backends behind one trait: SQLite in the data directory (the default, [`SqliteLedger`])
//! and PostgreSQL for several signers sharing one ledger ([`PgLedger`]). [`LedgerSpec`] picks one.

mod group;
mod pg;
mod sqlite;
#[cfg(test)]
mod suite;

pub use pg::PgLedger;
pub use sqlite::SqliteLedger;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use serde::Serialize;

/// The ledger cannot be reached now (the database is down or restarting, no connection free in
/// time): nothing was written, and the same request may succeed shortly. The authority answers it
/// with 503 and `Retry-After`.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the ledger is unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// A certificate was not recorded because the ACME object that had to move with it
/// ([`Ledger::record_with`]) had moved meanwhile: nothing of either was written.
#[derive(Debug)]
pub struct Stale(pub String);

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an ACME object moved meanwhile: {}", self.0)
    }
}

impl std::error::Error for Stale {}

/// `Ok` when the compare-and-swap of `row` was `done`, else [`Stale`] (it had moved).
fn moved(row: &AcmeRow, done: AcmeUpdate) -> Result<()> {
    match done {
        AcmeUpdate::Done => Ok(()),
        _ => Err(Stale(format!("{} {}", row.kind.name(), row.id)).into()),
    }
}

/// The certificate columns both backends read, in the order their `read_record` takes them.
const COLUMNS: &str = "serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem, identity, renewed_from, csr_sha256, revocation_reason";

/// The serials of a lineage (one parameter: a member's serial), for both backends: up to the
/// oldest ancestor still recorded, then down through every renewal of it.
const LINEAGE: &str = "WITH RECURSIVE
   up(serial, parent) AS (
     SELECT serial, renewed_from FROM certificates WHERE serial = $1
     UNION SELECT c.serial, c.renewed_from FROM certificates c JOIN up ON c.serial = up.parent),
   root(serial) AS (
     SELECT serial FROM up
     WHERE parent IS NULL OR parent NOT IN (SELECT serial FROM certificates)),
   down(serial) AS (
     SELECT serial FROM root
     UNION SELECT c.serial FROM certificates c JOIN down ON c.renewed_from = down.serial)
 SELECT serial FROM down ORDER BY serial";

/// Where the ledger lives: `sqlite:PATH`, or `postgres://…` (`postgresql://` too); without one,
/// `DIR/ledger.sqlite`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerSpec {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`sslmode=require&sslrootcert=FILE` for TLS).
    Postgres(String),
}

impl LedgerSpec {
    /// Read `--ledger` (or `WASM_PKI_LEDGER`), defaulting to the data directory's SQLite file.
    pub fn parse(text: Option<&str>, dir: Option<&Path>) -> Result<Self> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => match dir {
                Some(d) => Ok(LedgerSpec::Sqlite(d.join("ledger.sqlite"))),
                None => bail!("give --ledger (sqlite:PATH or postgres://…) or --dir"),
            },
            Some(t) if t.starts_with("postgres://") || t.starts_with("postgresql://") => {
                Ok(LedgerSpec::Postgres(t.to_string()))
            }
            Some(t) => match t.strip_prefix("sqlite:") {
                Some(p) if !p.is_empty() => Ok(LedgerSpec::Sqlite(PathBuf::from(p))),
                _ => bail!(
                    "--ledger {}: expected sqlite:PATH or postgres://…",
                    redact(t)
                ),
            },
        }
    }

    /// Open (and create or migrate the schema of) the ledger.
    pub fn open(&self) -> Result<Arc<dyn Ledger>> {
        Ok(match self {
            LedgerSpec::Sqlite(p) => Arc::new(SqliteLedger::open(p)?),
            LedgerSpec::Postgres(url) => Arc::new(PgLedger::open(url)?),
        })
    }

    /// The spec as it may be shown (no password).
    pub fn shown(&self) -> String {
        match self {
            LedgerSpec::Sqlite(p) => format!("sqlite:{}", p.display()),
            LedgerSpec::Postgres(u) => redact(u),
        }
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match auth.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            if auth[..auth.len() - host.len() - 1].contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

/// A token as stored, for copying a ledger ([`Snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// SHA-256 of the secret.
    pub hash: Vec<u8>,
    /// Public id.
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// Bound identity.
    pub identity: Option<String>,
    /// Uses left.
    pub uses_left: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Creation, Unix seconds.
    pub created_at: i64,
}

/// Everything a ledger holds that outlives a request: tokens, certificates (revocations
/// included), the last CRL number, registration entries and ACME objects. Used proofs are not
/// copied: they expire within minutes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Tokens, by id.
    pub tokens: Vec<TokenRow>,
    /// Certificates, newest first.
    pub certificates: Vec<Record>,
    /// The last CRL number handed out (0: none yet).
    pub crl_number: u64,
    /// The trust bundle's last sequence number and the CA set it was given to, if any.
    pub bundle: Option<(u64, String)>,
    /// Registration entries, oldest first.
    pub entries: Vec<Entry>,
    /// ACME objects, by kind (its name), then oldest first (created_at, then id).
    pub acme: Vec<AcmeRow>,
}

/// A token's state, read without spending it (Vault's `lookup-self`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// What it grants.
    pub grant: Grant,
    /// Uses left (reservations in flight not counted).
    pub uses_left: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Creation, Unix seconds.
    pub created_at: i64,
}

/// What a valid token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Public id of the token (not the secret).
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// Identity bound to the token, if any.
    pub identity: Option<String>,
}

/// A token to store.
pub struct NewToken<'a> {
    /// SHA-256 of the secret.
    pub hash: &'a [u8],
    /// Public id.
    pub id: &'a str,
    /// Profile name.
    pub profile: &'a str,
    /// Bound identity.
    pub identity: Option<&'a str>,
    /// Number of certificates it may obtain.
    pub uses: u32,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// Why a token was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Its uses are spent.
    Used,
}

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Serial, hex.
    pub serial: String,
    /// Subject DN text.
    pub subject: String,
    /// SANs as text.
    pub names: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    /// Token id, or `operator`.
    pub token_id: String,
    /// Profile name.
    pub profile: String,
    /// When it was issued.
    pub issued_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The certificate.
    pub pem: String,
    /// The identity the credential vouched for (a renewal keeps it).
    pub identity: Option<String>,
    /// Serial of the certificate this one renewed (its lineage), if it is a renewal.
    pub renewed_from: Option<String>,
    /// SHA-256 (hex) of the CSR's DER it answered, when it answered a PEM CSR: an attested
    /// retry is handed this certificate only for exactly the same CSR.
    pub csr_sha256: Option<String>,
    /// Why it was revoked, an RFC 5280 CRLReason code, when a reason was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<u8>,
}

/// One revoked certificate, as the CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Serial, hex.
    pub serial: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: i64,
    /// Why, an RFC 5280 CRLReason code (0-10 but 7); `None` when no reason was given.
    pub reason: Option<u8>,
}

/// A registration entry: the operator's word that a workload on `node` whose attested selectors
/// include every one of `selectors` gets `spiffe_id` (SPIRE's subset rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// Random id, hex.
    pub id: String,
    /// The identity of the enrolled node whose agent serves it.
    pub node: String,
    /// The SPIFFE ID its SVIDs carry.
    pub spiffe_id: String,
    /// `type:key:value` selectors (`unix:uid:1000`), sorted, each once.
    pub selectors: Vec<String>,
    /// Lifetime of its X.509-SVIDs, seconds.
    pub x509_ttl_secs: i64,
    /// Lifetime of its JWT-SVIDs, seconds.
    pub jwt_ttl_secs: i64,
    /// DNS names its X.509-SVIDs also carry.
    pub dns: Vec<String>,
    /// A hint for workloads holding several SVIDs (the Workload API's `hint`).
    pub hint: Option<String>,
    /// When it was made, Unix seconds.
    pub created_at: i64,
}

/// The columns of `acme_objects` both backends read, in the order their `read_acme` takes them.
const ACME_COLUMNS: &str = "kind, id, directory, account, key, body, version, created_at";

/// The kinds of ACME objects the ledger keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcmeKind {
    /// An account (RFC 8555 §7.1.2).
    Account,
    /// An order (RFC 8555 §7.1.3).
    Order,
    /// An authorization with its challenges (RFC 8555 §7.1.4).
    Authz,
}

impl AcmeKind {
    /// The name stored in the `kind` column: `account`, `order` or `authz`.
    pub fn name(self) -> &'static str {
        match self {
            AcmeKind::Account => "account",
            AcmeKind::Order => "order",
            AcmeKind::Authz => "authz",
        }
    }

    /// The kind named `text` ([`AcmeKind::name`]), if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "account" => Some(AcmeKind::Account),
            "order" => Some(AcmeKind::Order),
            "authz" => Some(AcmeKind::Authz),
            _ => None,
        }
    }
}

/// One ACME object as stored: the authority's JSON document, a version for compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeRow {
    /// What it is.
    pub kind: AcmeKind,
    /// Random id (URL-safe), unique per kind.
    pub id: String,
    /// The `[acme.NAME]` directory it belongs to.
    pub directory: String,
    /// The account it belongs to (an account: its own id).
    pub account: String,
    /// A lookup key unique per (kind, directory) when set: an account's key thumbprint.
    pub key: Option<String>,
    /// The JSON document.
    pub body: String,
    /// Starts at 1; each successful update adds one.
    pub version: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a compare-and-swap update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcmeUpdate {
    /// Written: the stored version is now one more.
    Done,
    /// Nothing written: the version moved or the row is gone.
    Stale,
    /// Nothing written: another row of this kind and directory has that key.
    KeyTaken,
}

/// Storage of tokens, issued certificates, registration entries and ACME objects.
pub trait Ledger: Send + Sync {
    /// Store a new token (by hash only).
    fn create_token(&self, t: &NewToken<'_>) -> Result<()>;
    /// Atomically reserve one use of a token: concurrent callers can never share the last use.
    /// The use is spent by [`Ledger::record`] for that token, or released by [`Ledger::refund_token`].
    fn consume_token(&self, hash: &[u8], now: i64) -> Result<Result<Grant, TokenRefusal>>;
    /// Release a reserved use: the request failed and nothing was issued.
    fn refund_token(&self, id: &str) -> Result<()>;
    /// Record an issued certificate (durably, before it is returned to anyone). For a token's
    /// certificate this spends the reserved use in the same transaction: one fsync per certificate.
    fn record(&self, r: &Record) -> Result<()> {
        self.record_with(r, None)
    }
    /// [`Ledger::record`], and in the same transaction the compare-and-swap of `then` (as
    /// [`Ledger::acme_update`]: an ACME order made valid by this certificate): both or neither,
    /// [`Stale`] when the object's version moved.
    fn record_with(&self, r: &Record, then: Option<&AcmeRow>) -> Result<()>;
    /// Mark a certificate revoked at `at` for `reason` (an RFC 5280 CRLReason code, checked by
    /// the caller; `None`: no reason given); false when the serial is unknown or already revoked.
    fn revoke(&self, serial: &str, at: i64, reason: Option<u8>) -> Result<bool>;
    /// Every certificate, newest first.
    fn list(&self) -> Result<Vec<Record>>;
    /// The certificate with this serial, if any.
    fn find(&self, serial: &str) -> Result<Option<Record>>;
    /// Unrevoked certificates issued to `identity` on the credential `token_id` since `since`
    /// (Unix seconds), newest first: what an attested retry may get back.
    fn recent(&self, identity: &str, token_id: &str, since: i64) -> Result<Vec<Record>>;
    /// Serials of the whole lineage `serial` belongs to: its oldest recorded ancestor and every
    /// certificate renewed from it, directly or not (branches included). Empty when unknown.
    fn lineage(&self, serial: &str) -> Result<Vec<String>>;
    /// The revoked certificates (serial, time, reason), by serial.
    fn revoked(&self) -> Result<Vec<Revocation>>;
    /// Checks that the ledger takes writes now (for readiness probes); writes nothing.
    fn check_writable(&self) -> Result<()>;
    /// The next CRL number (monotonic).
    fn next_crl_number(&self) -> Result<u64>;
    /// Everything it holds, for `wasm-pki ledger migrate`.
    fn export(&self) -> Result<Snapshot>;
    /// Fill an empty ledger with `s` in one transaction (refused when it holds anything).
    fn import(&self, s: &Snapshot) -> Result<()>;
    /// Spend a renewal proof: true the first time `(fingerprint, jti)` is seen, false on every
    /// later try (a replay). Kept until `expires_at`, after which the proof is refused as expired
    /// anyway; older ones are forgotten here (`now`).
    fn spend_proof(&self, fingerprint: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool>;
    /// A token's state without spending a use; `None` when no token has this hash.
    fn token_info(&self, hash: &[u8]) -> Result<Option<TokenInfo>>;
    /// The trust bundle's sequence number for the CA set `digest`: the last one handed out when
    /// the set is the one it was handed out for, else one more, recorded (so it only grows, across
    /// restarts and signers sharing the ledger).
    fn bundle_sequence(&self, digest: &str, now: i64) -> Result<u64>;
    /// Store a registration entry (its id must be new).
    fn create_entry(&self, e: &Entry) -> Result<()>;
    /// Registration entries, of `node` only when given, oldest first.
    fn entries(&self, node: Option<&str>) -> Result<Vec<Entry>>;
    /// Delete an entry; false when there is none with this id.
    fn delete_entry(&self, id: &str) -> Result<bool>;
    /// Store a new ACME object at version 1; false (nothing written) when its id or its key is taken.
    fn acme_insert(&self, row: &AcmeRow) -> Result<bool>;
    /// Store several new ACME objects in one transaction (an order and its authorizations):
    /// all of them at version 1, or none (false) when any id or key is taken. SQLite writes
    /// orders and authorizations without waiting for the disk (they become durable with the next
    /// certificate's record); a power cut may lose the last ones, never a certificate.
    fn acme_insert_all(&self, rows: &[AcmeRow]) -> Result<bool>;
    /// The object of `kind` with `id`.
    fn acme_get(&self, kind: AcmeKind, id: &str) -> Result<Option<AcmeRow>>;
    /// The object of `kind` in `directory` whose key is `key`.
    fn acme_by_key(&self, kind: AcmeKind, directory: &str, key: &str) -> Result<Option<AcmeRow>>;
    /// The objects of `kind` belonging to `account`, oldest first (created_at, then id); at most `limit`.
    fn acme_list(&self, kind: AcmeKind, account: &str, limit: usize) -> Result<Vec<AcmeRow>>;
    /// Replace body and key of `row.id` if its stored version is still `row.version` (the new
    /// version is row.version + 1); orders and authorizations as [`Ledger::acme_insert_all`].
    fn acme_update(&self, row: &AcmeRow) -> Result<AcmeUpdate>;
}
