//! The SQLite ledger: WAL, synchronous=FULL, group commit.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use super::group::{Failed, GroupCommit, Outcome, Queued};
use super::{
    AcmeKind, AcmeRow, AcmeUpdate, Entry, Grant, Ledger, NewToken, Record, Revocation, Snapshot,
    TokenInfo, TokenRefusal, TokenRow, ACME_COLUMNS, COLUMNS, LINEAGE,
};

/// The schema this binary writes (`PRAGMA user_version`); a newer one is refused.
const SCHEMA_VERSION: i64 = 6;

/// The SQLite ledger in the data directory.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
    /// A second connection for lookups on the signing path (`find`): under WAL it reads the
    /// last commit without waiting for the writer's transaction and fsync.
    reader: Mutex<Connection>,
    /// Uses reserved by requests in flight, by token id (locked after `conn` where both are
    /// held; `consume_token` holds it, never `conn`, while it reads through `reader`).
    reserved: Mutex<std::collections::HashMap<String, i64>>,
    /// Group commit: records waiting for the next transaction (never locked while holding `conn`).
    group: GroupCommit,
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
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            bail!(
                "the ledger {} has schema version {version}, newer than this wasm-pki knows ({SCHEMA_VERSION}): upgrade wasm-pki",
                path.display()
            );
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, profile TEXT NOT NULL, identity TEXT,
                uses_left INTEGER NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS certificates (
                serial TEXT PRIMARY KEY, subject TEXT NOT NULL, names TEXT NOT NULL,
                not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, fingerprint TEXT NOT NULL,
                token_id TEXT NOT NULL, profile TEXT NOT NULL, issued_at INTEGER NOT NULL,
                revoked_at INTEGER, pem TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS used_proofs (
                fingerprint TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL,
                PRIMARY KEY (fingerprint, jti));
             CREATE TABLE IF NOT EXISTS bundle_sequence (
                sequence INTEGER PRIMARY KEY, digest TEXT NOT NULL, created_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS entries (
                id TEXT PRIMARY KEY, node TEXT NOT NULL, spiffe_id TEXT NOT NULL,
                selectors TEXT NOT NULL, x509_ttl INTEGER NOT NULL, jwt_ttl INTEGER NOT NULL,
                dns TEXT NOT NULL, hint TEXT, created_at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS entries_node ON entries (node);
             CREATE TABLE IF NOT EXISTS acme_objects (
                kind TEXT NOT NULL, id TEXT NOT NULL, directory TEXT NOT NULL, account TEXT NOT NULL,
                key TEXT, body TEXT NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL,
                PRIMARY KEY (kind, id));
             CREATE UNIQUE INDEX IF NOT EXISTS acme_objects_key ON acme_objects (kind, directory, key);
             CREATE INDEX IF NOT EXISTS acme_objects_account ON acme_objects (kind, account, created_at);",
        )?;
        // Columns added since the first schema: ledgers written before gain them empty.
        for (column, decl) in [
            ("identity", "TEXT"),
            ("renewed_from", "TEXT"),
            ("csr_sha256", "TEXT"),
            // Schema 6: also added to a file already at 6 from before the column.
            ("revocation_reason", "INTEGER"),
        ] {
            let present: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('certificates') WHERE name = ?1",
                params![column],
                |r| r.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE certificates ADD COLUMN {column} {decl};"
                ))?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the ledger {} to read", path.display()))?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteLedger {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            reserved: Mutex::new(std::collections::HashMap::new()),
            group: GroupCommit::default(),
        })
    }
}

impl SqliteLedger {
    /// Write `batch` in one transaction, each record under its own savepoint so that one failing
    /// record (a token with no use left, a repeated serial) fails alone. For a token's certificate
    /// the reserved use is spent in the same transaction, and an ACME object queued with it moves
    /// with it (or neither is written).
    fn commit_batch(&self, batch: &[(u64, Queued)]) -> Vec<(u64, Outcome)> {
        let mut conn = self.conn.lock().unwrap();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut spent = Vec::new();
        let result = (|| -> Result<()> {
            let mut tx = conn.transaction()?;
            for (id, Queued { record: r, then }) in batch {
                let is_token = self
                    .reserved
                    .lock()
                    .unwrap()
                    .get(&r.token_id)
                    .is_some_and(|n| *n > 0);
                let sp = tx.savepoint()?;
                let written = write_record(&sp, r, is_token).and_then(|()| match then {
                    Some(row) => super::moved(row, acme_cas(&sp, row)?),
                    None => Ok(()),
                });
                match written {
                    Ok(()) => {
                        sp.commit()?;
                        outcomes.push((*id, Ok(())));
                        if is_token {
                            spent.push(r.token_id.clone());
                        }
                    }
                    Err(e) => outcomes.push((*id, Err(Failed::of(&e)))), // rolled back on drop
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                let mut reserved = self.reserved.lock().unwrap();
                for t in &spent {
                    release(&mut reserved, t);
                }
                outcomes
            }
            // Nothing of this batch is durable: every record in it fails.
            Err(e) => {
                let f = Failed::of(&e.context("the ledger commit failed"));
                batch.iter().map(|(id, _)| (*id, Err(f.clone()))).collect()
            }
        }
    }
}

/// Run `write` of `rows` without waiting for the disk when they are all orders and
/// authorizations (synchronous=NORMAL for that write; WAL mode keeps the order of commits, so they
/// reach the disk with the next durable one, at the latest the certificate's record). A power cut
/// may lose the last ones: the client then finds no such order and orders again. Accounts,
/// tokens and certificates stay durable before the answer.
fn lazily<T>(
    conn: &Connection,
    rows: &[AcmeRow],
    write: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let lazy = !rows.is_empty()
        && rows
            .iter()
            .all(|r| matches!(r.kind, AcmeKind::Order | AcmeKind::Authz));
    if !lazy {
        return write(conn);
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let written = write(conn);
    // Restored whatever the write did: every other write of this connection is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    written
}

/// Compare-and-swap of an ACME object: one statement, so of two writers holding the same
/// version, the one that gets the write lock first moves it, and the other's WHERE no longer
/// matches (another replica too).
fn acme_cas(conn: &Connection, row: &AcmeRow) -> Result<AcmeUpdate> {
    let n = conn
        .prepare_cached(
            "UPDATE acme_objects SET body = ?1, key = ?2, version = version + 1
             WHERE kind = ?3 AND id = ?4 AND version = ?5",
        )?
        .execute(params![
            row.body,
            row.key,
            row.kind.name(),
            row.id,
            row.version
        ]);
    match n {
        Ok(0) => Ok(AcmeUpdate::Stale),
        Ok(_) => Ok(AcmeUpdate::Done),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Ok(AcmeUpdate::KeyTaken)
        }
        Err(e) => Err(e.into()),
    }
}

fn insert_certificate(tx: &Connection, r: &Record) -> Result<()> {
    // Cached: parsing this statement was a visible share of each certificate's CPU.
    tx.prepare_cached(
        "INSERT INTO certificates (serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem, identity, renewed_from, csr_sha256, revocation_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![r.serial, r.subject, serde_json::to_string(&r.names)?, r.not_before, r.not_after, r.fingerprint, r.token_id, r.profile, r.issued_at, r.revoked_at, r.pem, r.identity, r.renewed_from, r.csr_sha256, r.revocation_reason],
    )?;
    Ok(())
}

fn write_record(tx: &rusqlite::Savepoint<'_>, r: &Record, is_token: bool) -> Result<()> {
    if is_token {
        let spent = tx
            .prepare_cached(
                "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left > 0",
            )?
            .execute(params![r.token_id])?;
        if spent != 1 {
            anyhow::bail!("token {} has no use left to spend", r.token_id);
        }
    }
    insert_certificate(
        tx,
        &Record {
            revoked_at: None,
            revocation_reason: None,
            ..r.clone()
        },
    )
}

/// The last trust bundle sequence number handed out and the CA set's digest it was for.
fn last_bundle(c: &Connection) -> Result<Option<(i64, String)>> {
    Ok(c.query_row(
        "SELECT sequence, digest FROM bundle_sequence ORDER BY sequence DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
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
        identity: r.get(11)?,
        renewed_from: r.get(12)?,
        csr_sha256: r.get(13)?,
        revocation_reason: r.get(14)?,
    })
}

const ENTRY_COLUMNS: &str =
    "id, node, spiffe_id, selectors, x509_ttl, jwt_ttl, dns, hint, created_at";

fn read_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(Entry {
        id: r.get(0)?,
        node: r.get(1)?,
        spiffe_id: r.get(2)?,
        selectors: list(3)?,
        x509_ttl_secs: r.get(4)?,
        jwt_ttl_secs: r.get(5)?,
        dns: list(6)?,
        hint: r.get(7)?,
        created_at: r.get(8)?,
    })
}

fn insert_entry(c: &Connection, e: &Entry) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            e.id,
            e.node,
            e.spiffe_id,
            serde_json::to_string(&e.selectors)?,
            e.x509_ttl_secs,
            e.jwt_ttl_secs,
            serde_json::to_string(&e.dns)?,
            e.hint,
            e.created_at
        ],
    )?;
    Ok(())
}

fn read_acme(r: &rusqlite::Row<'_>) -> rusqlite::Result<AcmeRow> {
    let kind: String = r.get(0)?;
    let kind = AcmeKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown ACME object kind {kind:?}").into(),
        )
    })?;
    Ok(AcmeRow {
        kind,
        id: r.get(1)?,
        directory: r.get(2)?,
        account: r.get(3)?,
        key: r.get(4)?,
        body: r.get(5)?,
        version: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// Insert `a` as it is (its version too); false when its id or key is taken.
fn insert_acme(c: &Connection, a: &AcmeRow) -> Result<bool> {
    // DO NOTHING only for a uniqueness conflict (the primary key or the key index).
    let n = c.execute(
        &format!(
            "INSERT INTO acme_objects ({ACME_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING"
        ),
        params![
            a.kind.name(),
            a.id,
            a.directory,
            a.account,
            a.key,
            a.body,
            a.version,
            a.created_at
        ],
    )?;
    Ok(n == 1)
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
        // A read and an in-memory reservation, no write: the reservation lock first, then the
        // read through the reader connection, so it does not wait behind the writer's
        // transaction and fsync. A commit spends a use (durably) before it releases the use's
        // reservation under this lock, so a read made while holding it never pairs a count from
        // before a commit with a reservation released after it.
        let mut reserved = self.reserved.lock().unwrap();
        let row: Option<(String, String, Option<String>, i64, i64)> = {
            let conn = self.reader.lock().unwrap();
            let mut stmt = conn.prepare_cached(
                "SELECT id, profile, identity, uses_left, expires_at FROM tokens WHERE hash = ?1",
            )?;
            stmt.query_row(params![hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?
        };
        let Some((id, profile, identity, uses_left, expires_at)) = row else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if expires_at <= now {
            return Ok(Err(TokenRefusal::Expired));
        }
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

    fn record_with(&self, r: &Record, then: Option<&AcmeRow>) -> Result<()> {
        self.group.record(r, then, |batch| self.commit_batch(batch))
    }

    fn revoke(&self, serial: &str, at: i64, reason: Option<u8>) -> Result<bool> {
        let n = self.conn.lock().unwrap().execute(
            "UPDATE certificates SET revoked_at = ?2, revocation_reason = ?3 WHERE serial = ?1 AND revoked_at IS NULL",
            params![serial.to_ascii_lowercase(), at, reason],
        )?;
        Ok(n == 1)
    }

    fn list(&self) -> Result<Vec<Record>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM certificates ORDER BY issued_at DESC, serial"
        ))?;
        let rows = st.query_map([], read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn find(&self, serial: &str) -> Result<Option<Record>> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM certificates WHERE serial = ?1"
        ))?;
        let mut rows = st.query_map(params![serial], read_record)?;
        Ok(rows.next().transpose()?)
    }

    fn recent(&self, identity: &str, token_id: &str, since: i64) -> Result<Vec<Record>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM certificates WHERE identity = ?1 AND token_id = ?2 AND issued_at >= ?3 AND revoked_at IS NULL ORDER BY issued_at DESC"
        ))?;
        let rows = st.query_map(params![identity, token_id, since], read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn lineage(&self, serial: &str) -> Result<Vec<String>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare(LINEAGE)?;
        let rows = st.query_map(params![serial.to_ascii_lowercase()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoked(&self) -> Result<Vec<Revocation>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare("SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial")?;
        let rows = st.query_map([], |r| {
            Ok(Revocation {
                serial: r.get(0)?,
                revoked_at: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn check_writable(&self) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // Takes the write lock (fails on a read-only or locked database), then lets it go.
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .context("the ledger does not take writes")
    }

    fn spend_proof(&self, fingerprint: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // The primary key decides: of two racing uses of one proof, one insert wins.
        conn.execute(
            "DELETE FROM used_proofs WHERE expires_at < ?1",
            params![now],
        )?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO used_proofs (fingerprint, jti, expires_at) VALUES (?1, ?2, ?3)",
            params![fingerprint, jti, expires_at],
        )?;
        Ok(n == 1)
    }

    fn export(&self) -> Result<Snapshot> {
        let certificates = self.list()?;
        let entries = self.entries(None)?;
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let acme = conn
            .prepare(&format!(
                "SELECT {ACME_COLUMNS} FROM acme_objects ORDER BY kind, created_at, id"
            ))?
            .query_map([], read_acme)?
            .collect::<Result<_, _>>()?;
        let mut st = conn.prepare(
            "SELECT hash, id, profile, identity, uses_left, expires_at, created_at FROM tokens ORDER BY id",
        )?;
        let tokens = st
            .query_map([], |r| {
                Ok(TokenRow {
                    hash: r.get(0)?,
                    id: r.get(1)?,
                    profile: r.get(2)?,
                    identity: r.get(3)?,
                    uses_left: r.get(4)?,
                    expires_at: r.get(5)?,
                    created_at: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let crl_number: i64 = conn
            .query_row("SELECT value FROM counters WHERE name = 'crl'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let bundle = last_bundle(&conn)?;
        Ok(Snapshot {
            tokens,
            certificates,
            crl_number: crl_number.max(0) as u64,
            bundle: bundle.map(|(n, d)| (n.max(0) as u64, d)),
            entries,
            acme,
        })
    }

    fn import(&self, s: &Snapshot) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        let held: i64 = tx.query_row(
            "SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM certificates) + (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM acme_objects)",
            [],
            |r| r.get(0),
        )?;
        if held > 0 {
            bail!("the target ledger is not empty ({held} tokens, certificates, entries and ACME objects): refusing to merge into it");
        }
        for e in &s.entries {
            insert_entry(&tx, e)?;
        }
        for a in &s.acme {
            if !insert_acme(&tx, a)? {
                bail!(
                    "the ACME {} {} (or its key) is in the snapshot twice",
                    a.kind.name(),
                    a.id
                );
            }
        }
        for t in &s.tokens {
            tx.execute(
                "INSERT INTO tokens (id, hash, profile, identity, uses_left, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![t.id, t.hash, t.profile, t.identity, t.uses_left, t.expires_at, t.created_at],
            )?;
        }
        for r in &s.certificates {
            insert_certificate(&tx, r)?;
        }
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('crl', ?1) ON CONFLICT(name) DO UPDATE SET value = ?1",
            params![s.crl_number as i64],
        )?;
        if let Some((n, digest)) = &s.bundle {
            tx.execute(
                "INSERT INTO bundle_sequence (sequence, digest, created_at) VALUES (?1, ?2, 0)",
                params![*n as i64, digest],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn token_info(&self, hash: &[u8]) -> Result<Option<TokenInfo>> {
        let conn = self.conn.lock().unwrap();
        Ok(conn
            .query_row(
                "SELECT id, profile, identity, uses_left, expires_at, created_at FROM tokens WHERE hash = ?1",
                params![hash],
                |r| {
                    Ok(TokenInfo {
                        grant: Grant {
                            id: r.get(0)?,
                            profile: r.get(1)?,
                            identity: r.get(2)?,
                        },
                        uses_left: r.get(3)?,
                        expires_at: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    fn bundle_sequence(&self, digest: &str, now: i64) -> Result<u64> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = match last_bundle(&tx)? {
            Some((n, d)) if d == digest => return Ok(n as u64),
            Some((n, _)) => n + 1,
            None => 1,
        };
        tx.execute(
            "INSERT INTO bundle_sequence (sequence, digest, created_at) VALUES (?1, ?2, ?3)",
            params![n, digest, now],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn create_entry(&self, e: &Entry) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        insert_entry(&conn, e)
    }

    fn entries(&self, node: Option<&str>) -> Result<Vec<Entry>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE ?1 IS NULL OR node = ?1 ORDER BY created_at, id"
        ))?;
        let rows = st.query_map(params![node], read_entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_entry(&self, id: &str) -> Result<bool> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn.execute("DELETE FROM entries WHERE id = ?1", params![id])? == 1)
    }

    fn acme_insert(&self, row: &AcmeRow) -> Result<bool> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        insert_acme(
            &conn,
            &AcmeRow {
                version: 1,
                ..row.clone()
            },
        )
    }

    fn acme_insert_all(&self, rows: &[AcmeRow]) -> Result<bool> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        lazily(&conn, rows, |conn| {
            let tx = conn.unchecked_transaction()?;
            for row in rows {
                let fresh = AcmeRow {
                    version: 1,
                    ..row.clone()
                };
                if !insert_acme(&tx, &fresh)? {
                    // Dropped without commit: rolled back.
                    return Ok(false);
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn acme_get(&self, kind: AcmeKind, id: &str) -> Result<Option<AcmeRow>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // Cached: every ACME request reads its account and object by id.
        let row = conn
            .prepare_cached(&format!(
                "SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = ?1 AND id = ?2"
            ))?
            .query_row(params![kind.name(), id], read_acme)
            .optional()?;
        Ok(row)
    }

    fn acme_by_key(&self, kind: AcmeKind, directory: &str, key: &str) -> Result<Option<AcmeRow>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn
            .query_row(
                &format!("SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = ?1 AND directory = ?2 AND key = ?3"),
                params![kind.name(), directory, key],
                read_acme,
            )
            .optional()?)
    }

    fn acme_list(&self, kind: AcmeKind, account: &str, limit: usize) -> Result<Vec<AcmeRow>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(&format!(
            "SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = ?1 AND account = ?2 ORDER BY created_at, id LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(params![kind.name(), account, limit], read_acme)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn acme_update(&self, row: &AcmeRow) -> Result<AcmeUpdate> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        lazily(&conn, std::slice::from_ref(row), |conn| acme_cas(conn, row))
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

    /// Orders and authorizations are written lazily, and every other write after them is
    /// durable again (synchronous=FULL), whether the lazy write succeeded or not.
    #[test]
    fn lazy_acme_writes_leave_the_connection_durable() {
        use crate::db::suite::{acme, record};
        let dir = tempfile::tempdir().unwrap();
        let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
        let synchronous = |l: &SqliteLedger| -> i64 {
            l.conn
                .lock()
                .unwrap()
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        const FULL: i64 = 2;
        assert_eq!(synchronous(&l), FULL);
        let order = acme(AcmeKind::Order, "o", "web", "a", None, 1);
        let authz = acme(AcmeKind::Authz, "z", "web", "a", None, 1);
        assert!(l.acme_insert_all(&[order.clone(), authz]).unwrap());
        assert_eq!(synchronous(&l), FULL);
        // Taken ids: refused and rolled back, and still durable afterwards.
        assert!(!l.acme_insert_all(std::slice::from_ref(&order)).unwrap());
        assert_eq!(synchronous(&l), FULL);
        assert_eq!(l.acme_update(&order).unwrap(), AcmeUpdate::Done);
        assert_eq!(l.acme_update(&order).unwrap(), AcmeUpdate::Stale);
        assert_eq!(synchronous(&l), FULL);
        l.record(&record("01", "t")).unwrap();
        assert_eq!(
            l.acme_get(AcmeKind::Order, "o").unwrap().unwrap().version,
            2
        );
    }

    /// A ledger written by schema 3 (no csr_sha256 column) opens, keeps its records and takes
    /// new ones with the column.
    #[test]
    fn a_version_3_ledger_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE certificates (
                    serial TEXT PRIMARY KEY, subject TEXT NOT NULL, names TEXT NOT NULL,
                    not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, fingerprint TEXT NOT NULL,
                    token_id TEXT NOT NULL, profile TEXT NOT NULL, issued_at INTEGER NOT NULL,
                    revoked_at INTEGER, pem TEXT NOT NULL, identity TEXT, renewed_from TEXT);
                 INSERT INTO certificates VALUES ('01', 'CN=x', '[]', 1, 2, 'f', 'kbs:x/sign', 'tee', 1, NULL, 'pem', 'a', NULL);
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let l = SqliteLedger::open(&path).unwrap();
        let old = l.find("01").unwrap().unwrap();
        assert_eq!((old.identity.as_deref(), old.csr_sha256), (Some("a"), None));
        let mut r = crate::db::suite::record("02", "kbs:x/sign");
        r.csr_sha256 = Some("ab".into());
        l.record(&r).unwrap();
        assert_eq!(
            l.find("02").unwrap().unwrap().csr_sha256.as_deref(),
            Some("ab")
        );
        // The revocation reason column (schema 6) came too.
        assert!(l.revoke("01", 5, Some(1)).unwrap());
        assert_eq!(l.find("01").unwrap().unwrap().revocation_reason, Some(1));
        // Every table added since comes too (up to schema 6's ACME objects).
        l.create_entry(&crate::db::suite::entry("e1", "n1", 1))
            .unwrap();
        assert!(l
            .acme_insert(&crate::db::suite::acme(
                AcmeKind::Account,
                "a",
                "web",
                "a",
                Some("k"),
                1
            ))
            .unwrap());
        let v: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    /// A ledger written by schema 5 (no ACME objects) opens at 6: its tokens, certificates,
    /// entries and counters are kept, and it takes ACME objects, with their key index.
    #[test]
    fn a_version_5_ledger_is_migrated() {
        use crate::db::suite::{acme, entry, record};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            // Schema 5 is schema 6 without the ACME table and its indexes and without the
            // certificates' revocation_reason.
            let l = SqliteLedger::open(&path).unwrap();
            l.create_token(&NewToken {
                hash: b"h",
                id: "t",
                profile: "default",
                identity: None,
                uses: 2,
                expires_at: 100,
                created_at: 1,
            })
            .unwrap();
            l.record(&record("01", "operator")).unwrap();
            l.create_entry(&entry("e1", "n1", 1)).unwrap();
            assert_eq!(l.next_crl_number().unwrap(), 1);
            drop(l);
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE acme_objects;
                 ALTER TABLE certificates DROP COLUMN revocation_reason;
                 PRAGMA user_version = 5;",
            )
            .unwrap();
            let left: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'acme%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(left, 0);
        }
        let l = SqliteLedger::open(&path).unwrap();
        let before = l.export().unwrap();
        assert_eq!(
            (
                before.tokens.len(),
                before.certificates.len(),
                before.entries.len(),
                before.crl_number,
                before.acme.len()
            ),
            (1, 1, 1, 1, 0)
        );
        assert_eq!(before.entries[0], entry("e1", "n1", 1));
        let a = acme(AcmeKind::Account, "a", "web", "a", Some("k"), 1);
        assert!(l.acme_insert(&a).unwrap());
        assert!(!l
            .acme_insert(&acme(AcmeKind::Account, "b", "web", "b", Some("k"), 2))
            .unwrap());
        assert_eq!(
            l.acme_by_key(AcmeKind::Account, "web", "k").unwrap(),
            Some(a)
        );
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let indexes: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'acme_objects' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["acme_objects_account", "acme_objects_key"]);
        assert!(l.revoke("01", 7, Some(4)).unwrap());
        assert_eq!(
            l.revoked().unwrap(),
            [crate::db::Revocation {
                serial: "01".into(),
                revoked_at: 7,
                reason: Some(4)
            }]
        );
    }

    /// A file already at schema 6 from before schema 6 gained `revocation_reason` gains the
    /// column when opened; its revocations keep no reason.
    #[test]
    fn a_version_6_ledger_without_revocation_reasons_gains_the_column() {
        use crate::db::suite::record;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let l = SqliteLedger::open(&path).unwrap();
            l.record(&record("01", "operator")).unwrap();
            l.record(&record("02", "operator")).unwrap();
            drop(l);
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "UPDATE certificates SET revoked_at = 3 WHERE serial = '01';
                 ALTER TABLE certificates DROP COLUMN revocation_reason;",
            )
            .unwrap();
            let v: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, 6);
        }
        let l = SqliteLedger::open(&path).unwrap();
        assert!(l.revoke("02", 4, Some(1)).unwrap());
        let got: Vec<(String, Option<u8>)> = l
            .revoked()
            .unwrap()
            .into_iter()
            .map(|r| (r.serial, r.reason))
            .collect();
        assert_eq!(got, [("01".into(), None), ("02".into(), Some(1))]);
        assert_eq!(l.find("02").unwrap().unwrap().revocation_reason, Some(1));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        SqliteLedger::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = SqliteLedger::open(&path).err().unwrap().to_string();
        assert!(e.contains("newer than this wasm-pki knows"), "{e}");
    }
}
