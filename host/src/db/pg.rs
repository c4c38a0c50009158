//! The PostgreSQL ledger: several signers share one database and behave as one CA. Token uses
//! are reserved by one atomic statement, serials are unique by constraint, every record is
//! committed (group commit, as for SQLite) before its certificate is answered, CRL numbers come
//! from one sequence. The sync `postgres` driver (tokio-postgres underneath) with an r2d2 pool;
//! TLS by rustls when the URL asks for it (`sslmode=require&sslrootcert=FILE`).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use postgres::config::SslMode;
use postgres::{Config, GenericClient, Row};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::group::{Failed, GroupCommit, Outcome, Queued};
use super::{
    redact, AcmeKind, AcmeRow, AcmeUpdate, Entry, Grant, Ledger, NewToken, Record, Revocation,
    Snapshot, TokenInfo, TokenRefusal, TokenRow, Unavailable, ACME_COLUMNS, COLUMNS, LINEAGE,
};

type Manager = PostgresConnectionManager<MakeRustlsConnect>;
type Conn = r2d2::PooledConnection<Manager>;

/// The schema this binary writes; a database with a newer one is refused.
const SCHEMA_VERSION: i32 = 6;
/// The migrations, in order: `MIGRATIONS[v]` takes the schema from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY, hash BYTEA NOT NULL UNIQUE, profile TEXT NOT NULL, identity TEXT,
        uses_left BIGINT NOT NULL CHECK (uses_left >= 0), expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL);
    CREATE TABLE certificates (
        serial TEXT PRIMARY KEY, subject TEXT NOT NULL, names TEXT NOT NULL,
        not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, fingerprint TEXT NOT NULL,
        token_id TEXT NOT NULL, profile TEXT NOT NULL, issued_at BIGINT NOT NULL,
        revoked_at BIGINT, pem TEXT NOT NULL, identity TEXT, renewed_from TEXT);
    CREATE INDEX certificates_renewed_from ON certificates (renewed_from);
    CREATE INDEX certificates_revoked ON certificates (serial) WHERE revoked_at IS NOT NULL;
    CREATE TABLE used_proofs (
        fingerprint TEXT NOT NULL, jti TEXT NOT NULL, expires_at BIGINT NOT NULL,
        PRIMARY KEY (fingerprint, jti));
    CREATE SEQUENCE crl_number;
",
    "
    CREATE INDEX certificates_identity ON certificates (identity, token_id, issued_at);
",
    "
    CREATE TABLE bundle_sequence (
        sequence BIGINT PRIMARY KEY, digest TEXT NOT NULL, created_at BIGINT NOT NULL);
",
    "
    ALTER TABLE certificates ADD COLUMN csr_sha256 TEXT;
",
    "
    CREATE TABLE entries (
        id TEXT PRIMARY KEY, node TEXT NOT NULL, spiffe_id TEXT NOT NULL, selectors TEXT NOT NULL,
        x509_ttl BIGINT NOT NULL, jwt_ttl BIGINT NOT NULL, dns TEXT NOT NULL, hint TEXT,
        created_at BIGINT NOT NULL);
    CREATE INDEX entries_node ON entries (node);
",
    "
    CREATE TABLE acme_objects (
        kind TEXT NOT NULL, id TEXT NOT NULL, directory TEXT NOT NULL, account TEXT NOT NULL,
        key TEXT, body TEXT NOT NULL, version BIGINT NOT NULL, created_at BIGINT NOT NULL,
        PRIMARY KEY (kind, id));
    CREATE UNIQUE INDEX acme_objects_key ON acme_objects (kind, directory, key);
    CREATE INDEX acme_objects_account ON acme_objects (kind, account, created_at);
    ALTER TABLE certificates ADD COLUMN IF NOT EXISTS revocation_reason SMALLINT;
",
];
/// Columns added to a released schema version after a database was already migrated to it:
/// (table, column, declaration), added by [`PgLedger::migrate`] when missing.
const LATE_COLUMNS: &[(&str, &str, &str)] = &[("certificates", "revocation_reason", "SMALLINT")];
/// Key of the advisory lock that serialises schema changes between signers starting together.
const SCHEMA_LOCK: i64 = 0x0077_6173_6d70_6b69; // "wasmpki"
/// Key of the advisory lock under which a new trust bundle sequence number is taken.
const BUNDLE_LOCK: i64 = SCHEMA_LOCK + 1;
/// Connections per signer.
const POOL_SIZE: u32 = 16;
/// How long a request waits for a connection (or to open one) before the ledger is unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The PostgreSQL ledger.
pub struct PgLedger {
    pool: r2d2::Pool<Manager>,
    group: GroupCommit,
}

/// A driver error as the authority needs it: no answer from the database (I/O, a closed
/// connection, the server shutting down or refusing connections) is [`Unavailable`]; an answer
/// (a constraint, a bad statement) is an ordinary error.
fn db(e: postgres::Error) -> anyhow::Error {
    let unavailable = match e.code() {
        None => true,
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        }
    };
    if unavailable {
        anyhow::Error::new(Unavailable(e.to_string()))
    } else {
        anyhow::Error::new(e)
    }
}

/// `url` without the query parameter `name`, and that parameter's value (libpq's `sslrootcert`
/// is not a tokio-postgres option).
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => {
                value = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), value)
    } else {
        (format!("{base}?{}", kept.join("&")), value)
    }
}

/// The rustls configuration for the database: it trusts only the roots in `rootcert`.
fn tls(rootcert: Option<&str>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = rootcert {
        for cert in
            CertificateDer::pem_file_iter(path).with_context(|| format!("sslrootcert {path}"))?
        {
            roots.add(cert.with_context(|| format!("sslrootcert {path}"))?)?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The pool's connection failures go to the log (the requests that needed one get 503).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, e: postgres::Error) {
        tracing::warn!(error = %anyhow::Error::new(e), "ledger connection failed");
    }
}

impl PgLedger {
    /// Connect (a pool that reconnects by itself), and create or migrate the schema.
    pub fn open(url: &str) -> Result<Self> {
        let shown = redact(url);
        let (url, rootcert) = take_param(url, "sslrootcert");
        let mut config: Config = url.parse().map_err(|e| anyhow!("--ledger {shown}: {e}"))?;
        // TLS when the URL asks for it: sslmode=require (or a root to check the server with).
        // The server's name is always verified against that root, as libpq's verify-full.
        match (config.get_ssl_mode(), &rootcert) {
            (SslMode::Require, None) => bail!("--ledger {shown}: sslmode=require needs sslrootcert=FILE, the root the database's certificate chains to"),
            (SslMode::Disable, _) => {}
            (_, Some(_)) => {
                config.ssl_mode(SslMode::Require);
            }
            (_, None) => {
                config.ssl_mode(SslMode::Disable);
            }
        }
        config
            .connect_timeout(CONNECT_WAIT)
            .keepalives(true)
            .application_name("wasm-pki");
        let tls = tls(rootcert.as_deref())?;
        // One connection first, outside the pool, so that a wrong address, password or root
        // is reported as itself (the pool would only time out).
        config
            .connect(MakeRustlsConnect::new(tls.clone()))
            .map_err(anyhow::Error::new)
            .with_context(|| format!("connecting to the ledger {shown}"))?;
        let manager = PostgresConnectionManager::new(config, MakeRustlsConnect::new(tls));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(CONNECT_WAIT)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(manager);
        let ledger = PgLedger {
            pool,
            group: GroupCommit::default(),
        };
        ledger
            .migrate()
            .with_context(|| format!("the ledger {shown}"))?;
        Ok(ledger)
    }

    fn conn(&self) -> Result<Conn> {
        self.pool
            .get()
            .map_err(|e| anyhow::Error::new(Unavailable(format!("no database connection: {e}"))))
    }

    /// Create or upgrade the schema under an advisory lock, in one transaction.
    fn migrate(&self) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS wasm_pki_schema (version INTEGER NOT NULL)")
            .map_err(db)?;
        let version: Option<i32> = tx
            .query_opt("SELECT version FROM wasm_pki_schema", &[])
            .map_err(db)?
            .map(|r| r.get(0));
        let from = version.unwrap_or(0);
        if from > SCHEMA_VERSION {
            bail!("the database has wasm-pki schema version {from}, newer than this wasm-pki knows ({SCHEMA_VERSION}): upgrade wasm-pki");
        }
        for m in &MIGRATIONS[from as usize..] {
            tx.batch_execute(m).map_err(db)?;
        }
        // A database migrated to version 6 before schema 6 gained these columns: checked in the
        // catalogue first so that an up-to-date database takes no table lock.
        for (table, column, decl) in LATE_COLUMNS {
            let present = tx
                .query_opt(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                    &[table, column],
                )
                .map_err(db)?
                .is_some();
            if !present {
                tx.batch_execute(&format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {decl}"
                ))
                .map_err(db)?;
            }
        }
        if version.is_none() {
            tx.execute(
                "INSERT INTO wasm_pki_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .map_err(db)?;
        } else {
            tx.execute(
                "UPDATE wasm_pki_schema SET version = $1",
                &[&SCHEMA_VERSION],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    /// Write `batch` in one transaction, each record under its own savepoint so that one failing
    /// record (a repeated serial) fails alone; an unreachable database fails them all.
    /// An ACME object queued with a record moves with it, or neither is written.
    fn commit_batch(&self, batch: &[(u64, Queued)]) -> Vec<(u64, Outcome)> {
        let result = (|| -> Result<Vec<(u64, Outcome)>> {
            let mut c = self.conn()?;
            let mut tx = c.transaction().map_err(db)?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for (id, Queued { record: r, then }) in batch {
                let mut sp = tx.savepoint("record").map_err(db)?;
                let written = insert_certificate(&mut sp, r).and_then(|()| match then {
                    Some(row) => super::moved(row, acme_cas(&mut sp, row)?),
                    None => Ok(()),
                });
                match written {
                    Ok(()) => {
                        sp.commit().map_err(db)?;
                        outcomes.push((*id, Ok(())));
                    }
                    Err(e) => {
                        let f = Failed::of(&e);
                        if f.unavailable {
                            return Err(e);
                        }
                        drop(sp); // rolled back
                        outcomes.push((*id, Err(f)));
                    }
                }
            }
            tx.commit().map_err(db)?;
            Ok(outcomes)
        })();
        result.unwrap_or_else(|e| {
            let f = Failed::of(&e.context("the ledger commit failed"));
            batch.iter().map(|(id, _)| (*id, Err(f.clone()))).collect()
        })
    }
}

/// Compare-and-swap of an ACME object: one statement; under READ COMMITTED a second writer
/// holding the same version queues on the row lock, then re-checks `version = $5` on the row the
/// first one committed, and matches nothing (on any replica).
fn acme_cas(c: &mut impl GenericClient, row: &AcmeRow) -> Result<AcmeUpdate> {
    let n = c.execute(
        "UPDATE acme_objects SET body = $1, key = $2, version = version + 1
         WHERE kind = $3 AND id = $4 AND version = $5",
        &[&row.body, &row.key, &row.kind.name(), &row.id, &row.version],
    );
    match n {
        Ok(0) => Ok(AcmeUpdate::Stale),
        Ok(_) => Ok(AcmeUpdate::Done),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Ok(AcmeUpdate::KeyTaken)
        }
        Err(e) => Err(db(e)),
    }
}

fn insert_certificate(c: &mut impl GenericClient, r: &Record) -> Result<()> {
    c.execute(
        "INSERT INTO certificates (serial, subject, names, not_before, not_after, fingerprint, token_id, profile, issued_at, revoked_at, pem, identity, renewed_from, csr_sha256, revocation_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        &[&r.serial, &r.subject, &serde_json::to_string(&r.names)?, &r.not_before, &r.not_after, &r.fingerprint, &r.token_id, &r.profile, &r.issued_at, &r.revoked_at, &r.pem, &r.identity, &r.renewed_from, &r.csr_sha256, &r.revocation_reason.map(i16::from)],
    )
    .map_err(db)?;
    Ok(())
}

const ENTRY_COLUMNS: &str =
    "id, node, spiffe_id, selectors, x509_ttl, jwt_ttl, dns, hint, created_at";

fn read_entry(r: &Row) -> Result<Entry> {
    let list = |i: usize| -> Result<Vec<String>> {
        serde_json::from_str(r.get::<_, &str>(i)).context("an entry's stored list")
    };
    Ok(Entry {
        id: r.get(0),
        node: r.get(1),
        spiffe_id: r.get(2),
        selectors: list(3)?,
        x509_ttl_secs: r.get(4),
        jwt_ttl_secs: r.get(5),
        dns: list(6)?,
        hint: r.get(7),
        created_at: r.get(8),
    })
}

fn insert_entry(c: &mut impl GenericClient, e: &Entry) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        &[
            &e.id,
            &e.node,
            &e.spiffe_id,
            &serde_json::to_string(&e.selectors)?,
            &e.x509_ttl_secs,
            &e.jwt_ttl_secs,
            &serde_json::to_string(&e.dns)?,
            &e.hint,
            &e.created_at,
        ],
    )
    .map_err(db)?;
    Ok(())
}

/// How ACME objects are ordered: texts byte by byte (`COLLATE "C"`), as SQLite orders them, so
/// that a copy between the backends reads back in the same order whatever the database's locale.
const ACME_ORDER: &str = r#"created_at, id COLLATE "C""#;

fn read_acme(r: &Row) -> Result<AcmeRow> {
    let kind: &str = r.get(0);
    Ok(AcmeRow {
        kind: AcmeKind::parse(kind)
            .with_context(|| format!("unknown ACME object kind {kind:?}"))?,
        id: r.get(1),
        directory: r.get(2),
        account: r.get(3),
        key: r.get(4),
        body: r.get(5),
        version: r.get(6),
        created_at: r.get(7),
    })
}

/// Insert `a` as it is (its version too); false when its id or key is taken.
fn insert_acme(c: &mut impl GenericClient, a: &AcmeRow) -> Result<bool> {
    // DO NOTHING only for a uniqueness conflict (the primary key or the key index); no error, so
    // an enclosing transaction goes on.
    let n = c
        .execute(
            &format!("INSERT INTO acme_objects ({ACME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"),
            &[
                &a.kind.name(),
                &a.id,
                &a.directory,
                &a.account,
                &a.key,
                &a.body,
                &a.version,
                &a.created_at,
            ],
        )
        .map_err(db)?;
    Ok(n == 1)
}

fn read_record(r: &Row) -> Record {
    let names: String = r.get(2);
    Record {
        serial: r.get(0),
        subject: r.get(1),
        names: serde_json::from_str(&names).unwrap_or_default(),
        not_before: r.get(3),
        not_after: r.get(4),
        fingerprint: r.get(5),
        token_id: r.get(6),
        profile: r.get(7),
        issued_at: r.get(8),
        revoked_at: r.get(9),
        pem: r.get(10),
        identity: r.get(11),
        renewed_from: r.get(12),
        csr_sha256: r.get(13),
        revocation_reason: reason(r.get(14)),
    }
}

/// A stored CRLReason code (SMALLINT) as the ledger hands it out.
fn reason(stored: Option<i16>) -> Option<u8> {
    stored.and_then(|v| u8::try_from(v).ok())
}

impl Ledger for PgLedger {
    fn create_token(&self, t: &NewToken<'_>) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO tokens (id, hash, profile, identity, uses_left, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&t.id, &t.hash, &t.profile, &t.identity, &i64::from(t.uses), &t.expires_at, &t.created_at],
            )
            .map_err(db)?;
        Ok(())
    }

    fn consume_token(&self, hash: &[u8], now: i64) -> Result<Result<Grant, TokenRefusal>> {
        let mut c = self.conn()?;
        // One statement, committed at once: under READ COMMITTED, concurrent UPDATEs of one row
        // queue on its row lock and each re-checks `uses_left > 0` on the version the one before
        // committed, so the last use goes to exactly one caller across all replicas, with no
        // SELECT … FOR UPDATE round trip and no serialisation failures to retry. The use is
        // taken now and given back by refund_token when nothing is issued; a signer killed in
        // between loses that use (never the other way round).
        let row = c
            .query_opt(
                "UPDATE tokens SET uses_left = uses_left - 1
                 WHERE hash = $1 AND uses_left > 0 AND expires_at > $2
                 RETURNING id, profile, identity",
                &[&hash, &now],
            )
            .map_err(db)?;
        if let Some(r) = row {
            return Ok(Ok(Grant {
                id: r.get(0),
                profile: r.get(1),
                identity: r.get(2),
            }));
        }
        let why = c
            .query_opt("SELECT expires_at FROM tokens WHERE hash = $1", &[&hash])
            .map_err(db)?;
        Ok(Err(match why {
            None => TokenRefusal::Unknown,
            Some(r) if r.get::<_, i64>(0) <= now => TokenRefusal::Expired,
            Some(_) => TokenRefusal::Used,
        }))
    }

    fn refund_token(&self, id: &str) -> Result<()> {
        self.conn()?
            .execute(
                "UPDATE tokens SET uses_left = uses_left + 1 WHERE id = $1",
                &[&id],
            )
            .map_err(db)?;
        Ok(())
    }

    fn record_with(&self, r: &Record, then: Option<&AcmeRow>) -> Result<()> {
        self.group.record(r, then, |batch| self.commit_batch(batch))
    }

    fn revoke(&self, serial: &str, at: i64, reason: Option<u8>) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 WHERE serial = $1 AND revoked_at IS NULL",
                &[&serial.to_ascii_lowercase(), &at, &reason.map(i16::from)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn list(&self) -> Result<Vec<Record>> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {COLUMNS} FROM certificates ORDER BY issued_at DESC, serial"),
                &[],
            )
            .map_err(db)?;
        Ok(rows.iter().map(read_record).collect())
    }

    fn find(&self, serial: &str) -> Result<Option<Record>> {
        let row = self
            .conn()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM certificates WHERE serial = $1"),
                &[&serial],
            )
            .map_err(db)?;
        Ok(row.as_ref().map(read_record))
    }

    fn recent(&self, identity: &str, token_id: &str, since: i64) -> Result<Vec<Record>> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {COLUMNS} FROM certificates WHERE identity = $1 AND token_id = $2 AND issued_at >= $3 AND revoked_at IS NULL ORDER BY issued_at DESC"),
                &[&identity, &token_id, &since],
            )
            .map_err(db)?;
        Ok(rows.iter().map(read_record).collect())
    }

    fn lineage(&self, serial: &str) -> Result<Vec<String>> {
        let rows = self
            .conn()?
            .query(LINEAGE, &[&serial.to_ascii_lowercase()])
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn revoked(&self) -> Result<Vec<Revocation>> {
        let rows = self
            .conn()?
            .query(
                "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial",
                &[],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| Revocation {
                serial: r.get(0),
                revoked_at: r.get(1),
                reason: reason(r.get(2)),
            })
            .collect())
    }

    fn check_writable(&self) -> Result<()> {
        let standby: bool = self
            .conn()?
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(db)?
            .get(0);
        if standby {
            bail!("the database is a read-only standby");
        }
        Ok(())
    }

    fn token_info(&self, hash: &[u8]) -> Result<Option<TokenInfo>> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT id, profile, identity, uses_left, expires_at, created_at FROM tokens WHERE hash = $1",
                &[&hash],
            )
            .map_err(db)?
            .map(|r| TokenInfo {
                grant: Grant {
                    id: r.get(0),
                    profile: r.get(1),
                    identity: r.get(2),
                },
                uses_left: r.get(3),
                expires_at: r.get(4),
                created_at: r.get(5),
            }))
    }

    fn bundle_sequence(&self, digest: &str, now: i64) -> Result<u64> {
        let mut c = self.conn()?;
        // The common case reads only; a change is written under a lock so that signers meeting
        // the same new set agree on one number.
        if let Some((n, d)) = last_bundle(&mut *c)? {
            if d == digest {
                return Ok(n as u64);
            }
        }
        let mut tx = c.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&BUNDLE_LOCK])
            .map_err(db)?;
        let n = match last_bundle(&mut tx)? {
            Some((n, d)) if d == digest => return Ok(n as u64),
            Some((n, _)) => n + 1,
            None => 1,
        };
        tx.execute(
            "INSERT INTO bundle_sequence (sequence, digest, created_at) VALUES ($1, $2, $3)",
            &[&n, &digest, &now],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n as u64)
    }

    fn create_entry(&self, e: &Entry) -> Result<()> {
        insert_entry(&mut *self.conn()?, e)
    }

    fn entries(&self, node: Option<&str>) -> Result<Vec<Entry>> {
        self.conn()?
            .query(
                &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE $1::TEXT IS NULL OR node = $1 ORDER BY created_at, id"),
                &[&node],
            )
            .map_err(db)?
            .iter()
            .map(read_entry)
            .collect()
    }

    fn delete_entry(&self, id: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute("DELETE FROM entries WHERE id = $1", &[&id])
            .map_err(db)?;
        Ok(n == 1)
    }

    fn acme_insert(&self, row: &AcmeRow) -> Result<bool> {
        insert_acme(
            &mut *self.conn()?,
            &AcmeRow {
                version: 1,
                ..row.clone()
            },
        )
    }

    fn acme_insert_all(&self, rows: &[AcmeRow]) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db)?;
        for row in rows {
            let fresh = AcmeRow {
                version: 1,
                ..row.clone()
            };
            if !insert_acme(&mut tx, &fresh)? {
                // Dropped without commit: rolled back.
                return Ok(false);
            }
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn acme_get(&self, kind: AcmeKind, id: &str) -> Result<Option<AcmeRow>> {
        self.conn()?
            .query_opt(
                &format!("SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = $1 AND id = $2"),
                &[&kind.name(), &id],
            )
            .map_err(db)?
            .as_ref()
            .map(read_acme)
            .transpose()
    }

    fn acme_by_key(&self, kind: AcmeKind, directory: &str, key: &str) -> Result<Option<AcmeRow>> {
        self.conn()?
            .query_opt(
                &format!("SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = $1 AND directory = $2 AND key = $3"),
                &[&kind.name(), &directory, &key],
            )
            .map_err(db)?
            .as_ref()
            .map(read_acme)
            .transpose()
    }

    fn acme_list(&self, kind: AcmeKind, account: &str, limit: usize) -> Result<Vec<AcmeRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn()?
            .query(
                &format!("SELECT {ACME_COLUMNS} FROM acme_objects WHERE kind = $1 AND account = $2 ORDER BY {ACME_ORDER} LIMIT $3"),
                &[&kind.name(), &account, &limit],
            )
            .map_err(db)?
            .iter()
            .map(read_acme)
            .collect()
    }

    fn acme_update(&self, row: &AcmeRow) -> Result<AcmeUpdate> {
        acme_cas(&mut *self.conn()?, row)
    }

    fn next_crl_number(&self) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT nextval('crl_number')", &[])
            .map_err(db)?
            .get(0);
        Ok(n as u64)
    }

    fn export(&self) -> Result<Snapshot> {
        let certificates = self.list()?;
        let entries = self.entries(None)?;
        let mut c = self.conn()?;
        let tokens = c
            .query(
                "SELECT hash, id, profile, identity, uses_left, expires_at, created_at FROM tokens ORDER BY id",
                &[],
            )
            .map_err(db)?
            .iter()
            .map(|r| TokenRow {
                hash: r.get(0),
                id: r.get(1),
                profile: r.get(2),
                identity: r.get(3),
                uses_left: r.get(4),
                expires_at: r.get(5),
                created_at: r.get(6),
            })
            .collect();
        let seq = c
            .query_one("SELECT last_value, is_called FROM crl_number", &[])
            .map_err(db)?;
        let crl_number = if seq.get::<_, bool>(1) {
            seq.get::<_, i64>(0).max(0) as u64
        } else {
            0
        };
        let bundle = last_bundle(&mut *c)?.map(|(n, d)| (n.max(0) as u64, d));
        let acme = c
            .query(
                &format!(r#"SELECT {ACME_COLUMNS} FROM acme_objects ORDER BY kind COLLATE "C", {ACME_ORDER}"#),
                &[],
            )
            .map_err(db)?
            .iter()
            .map(read_acme)
            .collect::<Result<_>>()?;
        Ok(Snapshot {
            tokens,
            certificates,
            crl_number,
            bundle,
            entries,
            acme,
        })
    }

    fn import(&self, s: &Snapshot) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM certificates) + (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM acme_objects)",
                &[],
            )
            .map_err(db)?
            .get(0);
        if held > 0 {
            bail!("the target ledger is not empty ({held} tokens, certificates, entries and ACME objects): refusing to merge into it");
        }
        for e in &s.entries {
            insert_entry(&mut tx, e)?;
        }
        for a in &s.acme {
            if !insert_acme(&mut tx, a)? {
                bail!(
                    "the ACME {} {} (or its key) is in the snapshot twice",
                    a.kind.name(),
                    a.id
                );
            }
        }
        for t in &s.tokens {
            tx.execute(
                "INSERT INTO tokens (id, hash, profile, identity, uses_left, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&t.id, &t.hash, &t.profile, &t.identity, &t.uses_left, &t.expires_at, &t.created_at],
            )
            .map_err(db)?;
        }
        for r in &s.certificates {
            insert_certificate(&mut tx, r)?;
        }
        let n = s.crl_number as i64;
        tx.execute(
            "SELECT setval('crl_number', $1, $2)",
            &[&n.max(1), &(n > 0)],
        )
        .map_err(db)?;
        if let Some((n, digest)) = &s.bundle {
            tx.execute(
                "INSERT INTO bundle_sequence (sequence, digest, created_at) VALUES ($1, $2, 0)",
                &[&(*n as i64), digest],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    fn spend_proof(&self, fingerprint: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        let mut c = self.conn()?;
        c.execute("DELETE FROM used_proofs WHERE expires_at < $1", &[&now])
            .map_err(db)?;
        // The primary key decides: of two racing uses of one proof, one insert wins.
        let n = c
            .execute(
                "INSERT INTO used_proofs (fingerprint, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&fingerprint, &jti, &expires_at],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
}

/// The last trust bundle sequence number handed out and the CA set's digest it was for.
fn last_bundle(c: &mut impl postgres::GenericClient) -> Result<Option<(i64, String)>> {
    Ok(c.query_opt(
        "SELECT sequence, digest FROM bundle_sequence ORDER BY sequence DESC LIMIT 1",
        &[],
    )
    .map_err(db)?
    .map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at schema 5 (no ACME objects) is migrated to 6 when a signer opens it: what
    /// it held is kept, and it takes ACME objects with their key index.
    #[test]
    fn a_version_5_database_is_migrated() {
        use crate::db::suite::{acme, entry, fresh_pg_database, record};
        let Some(url) = fresh_pg_database("schema5") else {
            return;
        };
        {
            let l = PgLedger::open(&url).unwrap();
            l.record(&record("01", "operator")).unwrap();
            l.create_entry(&entry("e1", "n1", 1)).unwrap();
            assert_eq!(l.next_crl_number().unwrap(), 1);
        }
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // Schema 5 is schema 6 without the ACME table (its indexes go with it) and without the
        // certificates' revocation_reason.
        admin
            .batch_execute(
                "DROP TABLE acme_objects;
                 ALTER TABLE certificates DROP COLUMN revocation_reason;
                 UPDATE wasm_pki_schema SET version = 5",
            )
            .unwrap();
        let l = PgLedger::open(&url).unwrap();
        let version: i32 = admin
            .query_one("SELECT version FROM wasm_pki_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let s = l.export().unwrap();
        assert_eq!(
            (
                s.certificates.len(),
                s.entries.len(),
                s.crl_number,
                s.acme.len()
            ),
            (1, 1, 1, 0)
        );
        let a = acme(AcmeKind::Account, "a", "web", "a", Some("k"), 1);
        assert!(l.acme_insert(&a).unwrap());
        assert!(!l
            .acme_insert(&acme(AcmeKind::Account, "b", "web", "b", Some("k"), 2))
            .unwrap());
        assert_eq!(
            l.acme_by_key(AcmeKind::Account, "web", "k").unwrap(),
            Some(a)
        );
        let indexes: Vec<String> = admin
            .query(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'acme_objects' AND indexname LIKE 'acme_objects_%' ORDER BY indexname",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            indexes,
            [
                "acme_objects_account",
                "acme_objects_key",
                "acme_objects_pkey"
            ]
        );
        assert!(l.revoke("01", 9, Some(1)).unwrap());
        assert_eq!(l.find("01").unwrap().unwrap().revocation_reason, Some(1));
    }

    /// A database already at schema 6 from before schema 6 gained `revocation_reason` gains the
    /// column when a signer opens it; its revocations keep no reason.
    #[test]
    fn a_version_6_database_without_revocation_reasons_gains_the_column() {
        use crate::db::suite::{fresh_pg_database, record};
        let Some(url) = fresh_pg_database("schema6r") else {
            return;
        };
        {
            let l = PgLedger::open(&url).unwrap();
            l.record(&record("01", "operator")).unwrap();
            l.record(&record("02", "operator")).unwrap();
            assert!(l.revoke("01", 3, None).unwrap());
        }
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute("ALTER TABLE certificates DROP COLUMN revocation_reason")
            .unwrap();
        let l = PgLedger::open(&url).unwrap();
        assert!(l.revoke("02", 4, Some(4)).unwrap());
        let got: Vec<(String, Option<u8>)> = l
            .revoked()
            .unwrap()
            .into_iter()
            .map(|r| (r.serial, r.reason))
            .collect();
        assert_eq!(got, [("01".into(), None), ("02".into(), Some(4))]);
        let version: i32 = admin
            .query_one("SELECT version FROM wasm_pki_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let (u, v) = take_param(
            "postgres://h/db?sslmode=require&sslrootcert=/ca.pem&x=1",
            "sslrootcert",
        );
        assert_eq!(
            (u.as_str(), v.as_deref()),
            ("postgres://h/db?sslmode=require&x=1", Some("/ca.pem"))
        );
        let (u, v) = take_param("postgres://h/db?sslrootcert=/ca.pem", "sslrootcert");
        assert_eq!(
            (u.as_str(), v.as_deref()),
            ("postgres://h/db", Some("/ca.pem"))
        );
        assert_eq!(take_param("postgres://h/db", "sslrootcert").1, None);
    }
}
