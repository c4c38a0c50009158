//! The ACME objects as the ledger keeps them (JSON documents under [`AcmeKind`]): accounts,
//! orders and authorizations with their challenges, their states (RFC 8555 §7.1.6), and typed
//! reads and compare-and-swap writes, so replicas sharing a ledger never lose an update.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_pki::wire::acme::{AcmeError, Identifier};

use super::Refused;
use crate::db::{AcmeKind, AcmeRow, AcmeUpdate, Ledger};

/// The state of an ACME object (RFC 8555 §7.1.6; each kind uses some of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the client (an order's or an authorization's first state).
    Pending,
    /// An order whose authorizations are all valid: it may be finalized.
    Ready,
    /// Being worked on: a challenge under validation, an order being signed.
    Processing,
    /// Done: a usable account, a validated authorization, an issued order.
    Valid,
    /// Failed for good.
    Invalid,
    /// Given up by its client (an account or an authorization).
    Deactivated,
    /// Past its expiry.
    Expired,
    /// Withdrawn by the server.
    Revoked,
}

/// A registered account key and what its owner agreed to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `valid` or `deactivated`.
    pub status: Status,
    /// The account key as its canonical JWK (RFC 7638 member order).
    pub jwk: String,
    /// `mailto:` contacts.
    pub contact: Vec<String>,
    /// Whether the client agreed to the terms of service.
    pub tos_agreed: bool,
    /// The enrolment token it was bound to (external account binding), if any: every
    /// certificate spends one of its uses and is held to its identity.
    pub eab: Option<EabBinding>,
}

/// The token behind an external account binding.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EabBinding {
    /// The token's public id.
    pub token_id: String,
    /// The token's hash, base64url (the EAB key id).
    pub token_hash: String,
}

/// An identifier as stored (`{"type": "dns", "value": "a.example"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdentifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name or address.
    pub value: String,
}

impl From<&Identifier> for StoredIdentifier {
    fn from(i: &Identifier) -> Self {
        StoredIdentifier {
            kind: match i {
                Identifier::Dns(_) => "dns".into(),
                Identifier::Ip(_) => "ip".into(),
            },
            value: i.value(),
        }
    }
}

impl StoredIdentifier {
    /// Back to the core's identifier (it was checked when the order was made).
    pub fn parse(&self) -> Result<Identifier, Refused> {
        Identifier::parse(&self.kind, &self.value)
            .map_err(|e| Refused::internal(format!("a stored identifier: {}", e.detail)))
    }
}

/// An order (RFC 8555 §7.1.3).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// pending → ready → processing → valid, or invalid.
    pub status: Status,
    /// Unix seconds after which a pending or ready order is invalid.
    pub expires: i64,
    /// What the certificate will name, as the client asked.
    pub identifiers: Vec<StoredIdentifier>,
    /// One authorization id per identifier, in the same order.
    pub authzs: Vec<String>,
    /// The issued certificate's serial, once valid.
    pub certificate: Option<String>,
    /// Why it is invalid (a problem document).
    pub error: Option<Value>,
    /// When finalization started (a signer that died mid-way leaves it processing; another
    /// finalize may take it over after a while).
    pub processing_since: Option<i64>,
}

/// An authorization of an account for one identifier (RFC 8555 §7.1.4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authz {
    /// The order it was made for.
    pub order: String,
    /// The identifier, without `*.` for a wildcard.
    pub identifier: StoredIdentifier,
    /// Whether the order asked for `*.` + the identifier.
    pub wildcard: bool,
    /// pending → valid or invalid; deactivated by the client; expired.
    pub status: Status,
    /// Unix seconds.
    pub expires: i64,
    /// The challenges offered; one valid one validates the authorization.
    pub challenges: Vec<Challenge>,
}

/// A challenge (RFC 8555 §7.1.5).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// `http-01`, `tls-alpn-01` or `dns-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 256 random bits, base64url.
    pub token: String,
    /// pending → processing → valid or invalid.
    pub status: Status,
    /// When it was validated, Unix seconds.
    pub validated: Option<i64>,
    /// Why validation failed (a problem document).
    pub error: Option<Value>,
    /// When validation started.
    pub started: Option<i64>,
}

/// An object read from the ledger with the row it came from (its version for the next write).
pub struct Stored<T> {
    /// The row as read (body not yet re-encoded).
    pub row: AcmeRow,
    /// The document.
    pub doc: T,
}

impl<T: Serialize + DeserializeOwned> Stored<T> {
    /// Read the object of `kind` with `id`.
    pub fn load(ledger: &dyn Ledger, kind: AcmeKind, id: &str) -> Result<Option<Self>, Refused> {
        match ledger.acme_get(kind, id).map_err(Refused::ledger)? {
            None => Ok(None),
            Some(row) => Ok(Some(Self::from_row(row)?)),
        }
    }

    /// Decode a row.
    pub fn from_row(row: AcmeRow) -> Result<Self, Refused> {
        let doc = serde_json::from_str(&row.body).map_err(|e| {
            Refused::internal(format!("the stored {} {}: {e}", row.kind.name(), row.id))
        })?;
        Ok(Stored { row, doc })
    }

    /// Write the document back if nobody else did since it was read.
    pub fn save(&mut self, ledger: &dyn Ledger) -> Result<AcmeUpdate, Refused> {
        self.row.body = serde_json::to_string(&self.doc)
            .map_err(|e| Refused::internal(format!("encoding an ACME object: {e}")))?;
        let done = ledger.acme_update(&self.row).map_err(Refused::ledger)?;
        if done == AcmeUpdate::Done {
            self.row.version += 1;
        }
        Ok(done)
    }
}

/// The row of a new object.
pub fn row<T: Serialize>(
    kind: AcmeKind,
    id: &str,
    directory: &str,
    account: &str,
    key: Option<&str>,
    doc: &T,
    now: i64,
) -> Result<AcmeRow, Refused> {
    let body = serde_json::to_string(doc)
        .map_err(|e| Refused::internal(format!("encoding an ACME object: {e}")))?;
    Ok(AcmeRow {
        kind,
        id: id.to_string(),
        directory: directory.to_string(),
        account: account.to_string(),
        key: key.map(String::from),
        body,
        version: 1,
        created_at: now,
    })
}

/// Store a new object; false when its id or key is taken.
pub fn insert<T: Serialize>(
    ledger: &dyn Ledger,
    kind: AcmeKind,
    id: &str,
    (directory, account, key): (&str, &str, Option<&str>),
    doc: &T,
    now: i64,
) -> Result<bool, Refused> {
    ledger
        .acme_insert(&row(kind, id, directory, account, key, doc, now)?)
        .map_err(Refused::ledger)
}

/// A problem document for storing in an object.
pub fn problem_value(e: &AcmeError) -> Value {
    serde_json::to_value(wasm_pki::wire::acme::Problem::from(e)).unwrap_or(Value::Null)
}
