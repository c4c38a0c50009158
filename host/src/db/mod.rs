//! The ledger (`db/`, as step-ca's `db/`): enrolment tokens (as hashes) and every issued
//! certificate, recorded before the certificate is handed out. Stores only: it decides nothing.
//! A small trait so a PostgreSQL backend can follow; SQLite ([`sqlite`]) for now.

mod sqlite;

pub use sqlite::SqliteLedger;

use anyhow::Result;
use serde::Serialize;

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
}

/// Storage of tokens and issued certificates.
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
    fn record(&self, r: &Record) -> Result<()>;
    /// Mark a certificate revoked; false when the serial is unknown.
    fn revoke(&self, serial: &str, at: i64) -> Result<bool>;
    /// Every certificate, newest first.
    fn list(&self) -> Result<Vec<Record>>;
    /// The certificate with this serial, if any.
    fn find(&self, serial: &str) -> Result<Option<Record>>;
    /// Serials of the whole lineage `serial` belongs to: its oldest recorded ancestor and every
    /// certificate renewed from it, directly or not (branches included). Empty when unknown.
    fn lineage(&self, serial: &str) -> Result<Vec<String>>;
    /// Serials and revocation times of revoked certificates.
    fn revoked(&self) -> Result<Vec<(String, i64)>>;
    /// Checks that the ledger takes writes now (for readiness probes); writes nothing.
    fn check_writable(&self) -> Result<()>;
    /// The next CRL number (monotonic).
    fn next_crl_number(&self) -> Result<u64>;
    /// Spend a renewal proof: true the first time `(fingerprint, jti)` is seen, false on every
    /// later try (a replay). Kept until `expires_at`, after which the proof is refused as expired
    /// anyway; older ones are forgotten here (`now`).
    fn spend_proof(&self, fingerprint: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool>;
}
