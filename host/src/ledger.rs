//! The ledger: enrolment tokens (as hashes) and every issued certificate, recorded before the
//! certificate is handed out. A small trait so a PostgreSQL backend can follow; SQLite for now.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
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
    /// Serials and revocation times of revoked certificates.
    fn revoked(&self) -> Result<Vec<(String, i64)>>;
    /// The next CRL number (monotonic).
    fn next_crl_number(&self) -> Result<u64>;
}

/// The SQLite ledger in the data directory.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
    /// Uses reserved by requests in flight, by token id (always locked after `conn`).
    reserved: Mutex<std::collections::HashMap<String, i64>>,
}

impl SqliteLedger {
    /// Open (or create) the ledger file.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the ledger {}", path.display()))?;
        // WAL + FULL sync: a record that was committed survives a crash or power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, profile TEXT NOT NULL, identity TEXT,
                uses_left INTEGER NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS certificates (
                serial TEXT PRIMARY KEY, subject TEXT NOT NULL, names TEXT NOT NULL,
                not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, fingerprint TEXT NOT NULL,
                token_id TEXT NOT NULL, profile TEXT NOT NULL, issued_at INTEGER NOT NULL,
                revoked_at INTEGER, pem TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        Ok(SqliteLedger {
            conn: Mutex::new(conn),
            reserved: Mutex::new(std::collections::HashMap::new()),
        })
    }
}

fn release(reserved: &mut std::collections::HashMap<String, i64>, id: &str) {
    if let Some(n) = reserved.get_mut(id) {
        *n -= 1;
        if *n <= 0 {
            reserved.remove(id);
        }
    }
}

impl Ledger for SqliteLedger {
    fn create_token(&self, t: &NewToken<'_>) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "INSERT INTO tokens (id, hash, profile, identity, uses_left, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![t.id, t.hash, t.profile, t.identity, t.uses, t.expires_at, t.created_at],
        )?;
        Ok(())
    }

    fn consume_token(&self, hash: &[u8], now: i64) -> Result<Result<Grant, TokenRefusal>> {
        // A read and an in-memory reservation under the connection lock: no write, no fsync here.
        let conn = self.conn.lock().unwrap();
        let row: Option<(String, String, Option<String>, i64, i64)> = conn
            .query_row(
                "SELECT id, profile, identity, uses_left, expires_at FROM tokens WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, profile, identity, uses_left, expires_at)) = row else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if expires_at <= now {
            return Ok(Err(TokenRefusal::Expired));
        }
        let mut reserved = self.reserved.lock().unwrap();
        let in_flight = reserved.entry(id.clone()).or_insert(0);
        if uses_left - *in_flight <= 0 {
            if *in_flight == 0 {
                reserved.remove(&id);
            }
            return Ok(Err(TokenRefusal::Used));
        }
        *in_flight += 1;
        Ok(Ok(Grant {
            id,
            profile,
            identity,
        }))
    }

    fn refund_token(&self, id: &str) -> Result<()> {
        let _conn = self.conn.lock().unwrap();
        release(&mut self.reserved.lock().unwrap(), id);
        Ok(())
    }

    fn record(&self, r: &Record) -> Result<()> {
        let mut conn = self.conn.lock().unwrap();
        let is_token = self
            .reserved
            .lock()
            .unwrap()
            .get(&r.token_id)
            .is_some_and(|n| *n > 0);
        let tx = conn.transaction()?;
        if is_token {
            let spent = tx.execute(
                "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left > 0",
                params![r.token_id],
            )?;
            if spent != 1 {
                anyhow::bail!("token {} has no use left to spend", r.token_id);
            }
        }
        tx.execute(
            "INSERT INTO certificates (serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10)",
            params![r.serial, r.subject, serde_json::to_string(&r.names)?, r.not_before, r.not_after, r.fingerprint, r.token_id, r.profile, r.issued_at, r.pem],
        )?;
        tx.commit()?;
        if is_token {
            release(&mut self.reserved.lock().unwrap(), &r.token_id);
        }
        Ok(())
    }

    fn revoke(&self, serial: &str, at: i64) -> Result<bool> {
        let n = self.conn.lock().unwrap().execute(
            "UPDATE certificates SET revoked_at = ?2 WHERE serial = ?1 AND revoked_at IS NULL",
            params![serial.to_ascii_lowercase(), at],
        )?;
        Ok(n == 1)
    }

    fn list(&self) -> Result<Vec<Record>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare(
            "SELECT serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem
             FROM certificates ORDER BY issued_at DESC, serial",
        )?;
        let rows = st.query_map([], |r| {
            let names: String = r.get(2)?;
            Ok(Record {
                serial: r.get(0)?,
                subject: r.get(1)?,
                names: serde_json::from_str(&names).unwrap_or_default(),
                not_before: r.get(3)?,
                not_after: r.get(4)?,
                fingerprint: r.get(5)?,
                token_id: r.get(6)?,
                profile: r.get(7)?,
                issued_at: r.get(8)?,
                revoked_at: r.get(9)?,
                pem: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoked(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare("SELECT serial, revoked_at FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn next_crl_number(&self) -> Result<u64> {
        let conn = self.conn.lock().unwrap();
        let n: i64 = conn.query_row(
            "INSERT INTO counters (name, value) VALUES ('crl', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: &str, token: &str) -> Record {
        Record {
            serial: serial.into(),
            subject: "CN=x".into(),
            names: vec!["DNS:x".into()],
            not_before: 1,
            not_after: 2,
            fingerprint: "f".into(),
            token_id: token.into(),
            profile: "default".into(),
            issued_at: 1,
            revoked_at: None,
            pem: "pem".into(),
        }
    }

    #[test]
    fn reserved_uses_are_spent_with_the_record_or_released() {
        let dir = std::env::temp_dir().join(format!("wasm-pki-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let l = SqliteLedger::open(&dir.join("l.sqlite")).unwrap();
        let t = NewToken {
            hash: b"h2",
            id: "t2",
            profile: "default",
            identity: None,
            uses: 2,
            expires_at: 100,
            created_at: 0,
        };
        l.create_token(&t).unwrap();
        // Two uses: two reservations succeed, the third is refused while they are in flight.
        let a = l.consume_token(b"h2", 10).unwrap().unwrap();
        let _b = l.consume_token(b"h2", 10).unwrap().unwrap();
        assert_eq!(l.consume_token(b"h2", 10).unwrap(), Err(TokenRefusal::Used));
        // One fails (released), one is recorded (spent): one use is left.
        l.refund_token(&a.id).unwrap();
        l.record(&record("01", "t2")).unwrap();
        let c = l.consume_token(b"h2", 10).unwrap().unwrap();
        l.record(&record("02", "t2")).unwrap();
        assert_eq!(c.id, "t2");
        assert_eq!(l.consume_token(b"h2", 10).unwrap(), Err(TokenRefusal::Used));
        // A repeated serial is refused and spends nothing.
        l.create_token(&NewToken {
            hash: b"h3",
            id: "t3",
            uses: 1,
            ..t
        })
        .unwrap();
        l.consume_token(b"h3", 10).unwrap().unwrap();
        assert!(l.record(&record("01", "t3")).is_err());
        l.refund_token("t3").unwrap();
        assert!(l.consume_token(b"h3", 10).unwrap().is_ok());
        assert_eq!(
            l.consume_token(b"nope", 10).unwrap(),
            Err(TokenRefusal::Unknown)
        );
        assert_eq!(
            l.consume_token(b"h2", 100).unwrap(),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(l.list().unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
