//! The SQLite ledger: WAL, synchronous=FULL, group commit.

use std::path::Path;
use std::sync::{Condvar, Mutex};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Grant, Ledger, NewToken, Record, TokenRefusal};

/// The SQLite ledger in the data directory.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
    /// Uses reserved by requests in flight, by token id (always locked after `conn`).
    reserved: Mutex<std::collections::HashMap<String, i64>>,
    /// Group commit: records waiting for the next transaction (never locked while holding `conn`).
    group: Mutex<Group>,
    committed: Condvar,
}

/// Records queued for the next group commit, and the outcomes of committed ones.
#[derive(Default)]
struct Group {
    queue: Vec<(u64, Record)>,
    done: std::collections::HashMap<u64, std::result::Result<(), String>>,
    committing: bool,
    next: u64,
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
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS used_proofs (
                fingerprint TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL,
                PRIMARY KEY (fingerprint, jti));",
        )?;
        // Columns added since the first schema: ledgers written before gain them empty.
        for (column, decl) in [("identity", "TEXT"), ("renewed_from", "TEXT")] {
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
        Ok(SqliteLedger {
            conn: Mutex::new(conn),
            reserved: Mutex::new(std::collections::HashMap::new()),
            group: Mutex::new(Group::default()),
            committed: Condvar::new(),
        })
    }
}

impl SqliteLedger {
    /// Write `batch` in one transaction, each record under its own savepoint so that one failing
    /// record (a token with no use left, a repeated serial) fails alone. For a token's certificate
    /// the reserved use is spent in the same transaction.
    fn commit_batch(&self, batch: &[(u64, Record)]) -> Vec<(u64, std::result::Result<(), String>)> {
        let mut conn = self.conn.lock().unwrap();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut spent = Vec::new();
        let result = (|| -> Result<()> {
            let mut tx = conn.transaction()?;
            for (id, r) in batch {
                let is_token = self
                    .reserved
                    .lock()
                    .unwrap()
                    .get(&r.token_id)
                    .is_some_and(|n| *n > 0);
                let sp = tx.savepoint()?;
                match write_record(&sp, r, is_token) {
                    Ok(()) => {
                        sp.commit()?;
                        outcomes.push((*id, Ok(())));
                        if is_token {
                            spent.push(r.token_id.clone());
                        }
                    }
                    Err(e) => outcomes.push((*id, Err(format!("{e:#}")))), // rolled back on drop
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
            Err(e) => batch
                .iter()
                .map(|(id, _)| (*id, Err(format!("the ledger commit failed: {e:#}"))))
                .collect(),
        }
    }
}

fn write_record(tx: &rusqlite::Savepoint<'_>, r: &Record, is_token: bool) -> Result<()> {
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
        "INSERT INTO certificates (serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem, identity, renewed_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, ?11, ?12)",
        params![r.serial, r.subject, serde_json::to_string(&r.names)?, r.not_before, r.not_after, r.fingerprint, r.token_id, r.profile, r.issued_at, r.pem, r.identity, r.renewed_from],
    )?;
    Ok(())
}

/// The columns [`read_record`] reads, in its order.
const COLUMNS: &str = "serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem, identity, renewed_from";

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
    })
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
        // Group commit: whoever finds no commit running writes everything queued so far in one
        // transaction (one fsync); the others wait for their outcome, or take the next turn.
        let mut g = self.group.lock().unwrap();
        let id = g.next;
        g.next += 1;
        g.queue.push((id, r.clone()));
        loop {
            if let Some(outcome) = g.done.remove(&id) {
                return outcome.map_err(|e| anyhow::anyhow!(e));
            }
            if g.committing {
                g = self.committed.wait(g).unwrap();
                continue;
            }
            g.committing = true;
            let batch = std::mem::take(&mut g.queue);
            drop(g);
            let outcomes = self.commit_batch(&batch);
            g = self.group.lock().unwrap();
            g.committing = false;
            g.done.extend(outcomes);
            self.committed.notify_all();
        }
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
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM certificates ORDER BY issued_at DESC, serial"
        ))?;
        let rows = st.query_map([], read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn find(&self, serial: &str) -> Result<Option<Record>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM certificates WHERE serial = ?1"
        ))?;
        let mut rows = st.query_map(params![serial], read_record)?;
        Ok(rows.next().transpose()?)
    }

    fn lineage(&self, serial: &str) -> Result<Vec<String>> {
        let conn = self.conn.lock().unwrap();
        // Up to the oldest ancestor still recorded, then down through every renewal of it.
        let mut st = conn.prepare(
            "WITH RECURSIVE
               up(serial, parent) AS (
                 SELECT serial, renewed_from FROM certificates WHERE serial = ?1
                 UNION SELECT c.serial, c.renewed_from FROM certificates c JOIN up ON c.serial = up.parent),
               root(serial) AS (
                 SELECT serial FROM up
                 WHERE parent IS NULL OR parent NOT IN (SELECT serial FROM certificates)),
               down(serial) AS (
                 SELECT serial FROM root
                 UNION SELECT c.serial FROM certificates c JOIN down ON c.renewed_from = down.serial)
             SELECT serial FROM down ORDER BY serial",
        )?;
        let rows = st.query_map(params![serial.to_ascii_lowercase()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoked(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn.prepare("SELECT serial, revoked_at FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
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
            identity: None,
            renewed_from: None,
        }
    }

    #[test]
    fn a_proof_is_spent_once_and_forgotten_after_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
        assert!(l.spend_proof("f1", "j", 100, 10).unwrap());
        assert!(!l.spend_proof("f1", "j", 100, 20).unwrap(), "a replay");
        assert!(
            l.spend_proof("f2", "j", 100, 20).unwrap(),
            "another certificate's jti"
        );
        assert!(l.spend_proof("f1", "k", 100, 20).unwrap());
        // Past its expiry the record goes (the proof itself is refused as expired by then).
        assert!(l.spend_proof("f1", "j", 300, 101).unwrap());
        let n: i64 = l
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM used_proofs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_lineage_is_found_from_any_member_branches_included() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
        // a → b → c, b → d (renewed twice), and an unrelated e.
        for (serial, from) in [
            ("0a", None),
            ("0b", Some("0a")),
            ("0c", Some("0b")),
            ("0d", Some("0b")),
            ("0e", None),
        ] {
            let mut r = record(serial, "operator");
            r.renewed_from = from.map(String::from);
            ledger.record(&r).unwrap();
        }
        for member in ["0a", "0b", "0c", "0D"] {
            assert_eq!(
                ledger.lineage(member).unwrap(),
                ["0a", "0b", "0c", "0d"],
                "{member}"
            );
        }
        assert_eq!(ledger.lineage("0e").unwrap(), ["0e"]);
        assert!(ledger.lineage("ff").unwrap().is_empty());
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

    #[test]
    fn concurrent_records_share_commits_and_fail_alone() {
        let dir = std::env::temp_dir().join(format!("wasm-pki-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let l = std::sync::Arc::new(SqliteLedger::open(&dir.join("l.sqlite")).unwrap());
        l.create_token(&NewToken {
            hash: b"g",
            id: "g",
            profile: "default",
            identity: None,
            uses: 1000,
            expires_at: 100,
            created_at: 0,
        })
        .unwrap();
        // 8 threads x 50 records; every 10th repeats an earlier serial and must fail on its own.
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut failed = 0;
                    for i in 0..50 {
                        l.consume_token(b"g", 10).unwrap().unwrap();
                        let serial = if i % 10 == 9 {
                            format!("{t:02x}{:04x}", i - 1)
                        } else {
                            format!("{t:02x}{i:04x}")
                        };
                        if l.record(&record(&serial, "g")).is_err() {
                            l.refund_token("g").unwrap();
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let failed: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(failed, 8 * 5);
        assert_eq!(l.list().unwrap().len(), 8 * 45);
        // Exactly the recorded certificates spent uses; no reservation is left behind.
        let left: i64 = l
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT uses_left FROM tokens WHERE id = 'g'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left, 1000 - 8 * 45);
        assert!(l.reserved.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
