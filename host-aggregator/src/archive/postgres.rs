//! The archive in PostgreSQL, for many hosts writing into one database:
//! one transaction per run, serialised across hosts by a transaction-scoped
//! advisory lock so the int-to-float promotion of a stat's type cannot race
//! and each run reads its pass and the retention state in turn.
//! The connection is secured as libpq's `sslmode` says (see [`super::tls`]).

use std::collections::HashMap;
use std::fmt;

use ::postgres::{Client, Config, Transaction};

use super::retained::StateRow;
use super::{
    Batch, Outcome, Plan, Row, Run, WriteOptions, db_error, pending_migrations, schema,
    tls::{self, TlsSettings},
    unix_seconds,
};
use crate::Error;

/// The advisory lock key every archive run takes (an arbitrary constant:
/// "stpipe" in ASCII).
const LOCK_KEY: i64 = 0x7374_7069_7065;

/// One run into the PostgreSQL database at `url`. `db` names the database
/// in errors (without its password).
pub(super) fn write(url: &str, run: Run<'_>) -> Result<(Batch, Outcome), Error> {
    let (db, host, options) = (run.db, run.host, run.options);
    let fail = |action| db_error::<::postgres::Error>(db, action);
    let mut client = connect(url, db, options)?;
    let mut tx = client.transaction().map_err(fail("begin a transaction"))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        options.lock_timeout.as_millis().max(1)
    ))
    .map_err(fail("set the lock timeout"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(fail("take the archive lock"))?;
    migrate(&mut tx, db)?;

    let stored = load_retention(&mut tx, host).map_err(fail("read the retention state"))?;
    let (batch, new_state) = (run.read)(&stored)?;
    let claimed = tx
        .execute(
            "INSERT INTO runs (time, host, per_process, sources, samples, written_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &batch.time,
                &batch.host,
                &batch.per_process,
                &(batch.sources as i64),
                &(batch.samples.len() as i64),
                &unix_seconds(std::time::SystemTime::now()),
            ],
        )
        .map_err(fail("record the run"))?;
    if claimed == 0 {
        // Dropping the transaction rolls it back: nothing is written.
        return Ok((batch, Outcome::AlreadyArchived));
    }

    let known: HashMap<String, bool> = tx
        .query("SELECT name, kind FROM stats", &[])
        .map_err(fail("read the stat types"))?
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, &str>(1) == "float"))
        .collect();
    let plan = Plan::new(&batch, &known);
    let record = tx
        .prepare(
            "INSERT INTO stats (name, kind, first_seen) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET kind = 'float' WHERE excluded.kind = 'float'",
        )
        .map_err(fail("record the stat types"))?;
    for (name, kind) in plan.stat_types() {
        tx.execute(&record, &[&name, &kind, &batch.time])
            .map_err(fail("record the stat types"))?;
    }

    let (first, second) = plan.rows.split_at(plan.rows.len() / 2);
    insert_rows(&mut tx, &batch, first).map_err(fail("insert the samples"))?;
    super::pause_midway(options, first.len(), plan.rows.len());
    insert_rows(&mut tx, &batch, second).map_err(fail("insert the samples"))?;
    if let Some(rows) = new_state {
        store_retention(&mut tx, host, &rows).map_err(fail("store the retention state"))?;
    }
    tx.commit().map_err(fail("commit the run"))?;
    let outcome = Outcome::Written {
        samples: plan.rows.len() as u64,
        new_floats: plan.new_floats(),
    };
    Ok((batch, outcome))
}

/// The retention rows stored for `host`.
fn load_retention(
    tx: &mut Transaction<'_>,
    host: &str,
) -> Result<Vec<StateRow>, ::postgres::Error> {
    let rows = tx.query(
        "SELECT pid, boot_id, started_ns, name, kind, int_value, float_value
         FROM retention WHERE host = $1",
        &[&host],
    )?;
    rows.iter()
        .map(|row| {
            Ok(StateRow::read(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            ))
        })
        .collect()
}

/// Replaces the retention rows of `host` with `rows`, in one statement
/// after the delete (arrays and `unnest`, as the samples).
fn store_retention(
    tx: &mut Transaction<'_>,
    host: &str,
    rows: &[StateRow],
) -> Result<(), ::postgres::Error> {
    tx.execute("DELETE FROM retention WHERE host = $1", &[&host])?;
    if rows.is_empty() {
        return Ok(());
    }
    let pids: Vec<i64> = rows.iter().map(|row| row.pid).collect();
    let boots: Vec<Option<&str>> = rows.iter().map(|row| row.boot_id.as_deref()).collect();
    let started: Vec<Option<i64>> = rows.iter().map(|row| row.started_ns).collect();
    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
    let ints: Vec<Option<i64>> = rows.iter().map(|row| row.int_value).collect();
    let floats: Vec<Option<f64>> = rows.iter().map(|row| row.float_value).collect();
    tx.execute(
        "INSERT INTO retention (host, pid, boot_id, started_ns, name, kind, int_value, float_value)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[],
                                 $6::text[], $7::bigint[], $8::float8[])",
        &[
            &host, &pids, &boots, &started, &names, &kinds, &ints, &floats,
        ],
    )?;
    Ok(())
}

/// Opens the connection, over TLS as the URL's `sslmode` asks.
fn connect(url: &str, db: &str, options: &WriteOptions) -> Result<Client, Error> {
    let (driver_url, settings) = TlsSettings::split(url)?;
    let connector = settings
        .connector(tls::home_dir().as_deref())
        .map_err(db_error(db, "set up TLS"))?;
    let mut config: Config = driver_url
        .parse()
        .map_err(db_error::<::postgres::Error>(db, "read the connection URL"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.lock_timeout);
    }
    config.ssl_mode(connector.driver_mode);
    config.connect(connector.tls).map_err(|cause| {
        db_error(db, "connect")(ConnectError {
            cause,
            tls: connector.describe,
        })
    })
}

/// A failed connection. The driver's own message is as short as "error
/// connecting to server" or "db error", with the cause (refused, host
/// unknown, password refused, certificate refused) in its source chain, so
/// this prints the chain, and for a TLS failure the TLS settings in force
/// (whether and against which roots the certificate was checked).
#[derive(Debug)]
struct ConnectError {
    cause: ::postgres::Error,
    tls: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        let mut next = std::error::Error::source(&self.cause);
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        if tls::is_tls_failure(&self.cause) {
            write!(f, " ({})", self.tls)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Creates or migrates the schema inside the run's transaction (the advisory
/// lock is already held, so two first runs cannot both create it).
fn migrate(tx: &mut Transaction<'_>, db: &str) -> Result<(), Error> {
    let fail = |action| db_error::<::postgres::Error>(db, action);
    tx.batch_execute(schema::VERSION_TABLE)
        .map_err(fail("create the schema_version table"))?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .map_err(fail("read the schema version"))?
        .get(0);
    let pending = pending_migrations(db, current)?;
    for migration in pending {
        tx.batch_execute(migration)
            .map_err(fail("migrate the schema"))?;
    }
    if !pending.is_empty() {
        tx.execute("DELETE FROM schema_version", &[])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO schema_version VALUES ($1)",
                    &[&schema::VERSION],
                )
            })
            .map_err(fail("record the schema version"))?;
    }
    Ok(())
}

/// Inserts rows in one statement: the columns travel as arrays and
/// `unnest` turns them back into rows, one round trip for any count.
fn insert_rows(
    tx: &mut Transaction<'_>,
    batch: &Batch,
    rows: &[Row<'_>],
) -> Result<u64, ::postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = rows.iter().map(|row| row.name).collect();
    let pids: Vec<i64> = rows.iter().map(|row| row.pid).collect();
    let ints: Vec<Option<i64>> = rows.iter().map(|row| row.int_value).collect();
    let floats: Vec<Option<f64>> = rows.iter().map(|row| row.float_value).collect();
    tx.execute(
        "INSERT INTO samples (time, host, name, pid, int_value, float_value)
         SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::float8[])
         ON CONFLICT DO NOTHING",
        &[&batch.time, &batch.host, &names, &pids, &ints, &floats],
    )
}
