//! The archive in SQLite, the embedded default: one `BEGIN IMMEDIATE`
//! transaction per run, so concurrent runs queue on the write lock (up to
//! the lock timeout) instead of interleaving, and each reads its pass and
//! the retention state only once it holds the lock.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior, params};

use super::retained::StateRow;
use super::{Batch, Outcome, Plan, Run, db_error, pending_migrations, schema, unix_seconds};
use crate::Error;

/// One run into the SQLite file at `path` (created with its directory if
/// missing). `db` names the database in errors.
pub(super) fn write(path: &Path, run: Run<'_>) -> Result<(Batch, Outcome), Error> {
    let (db, host, options) = (run.db, run.host, run.options);
    let fail = |action| db_error::<rusqlite::Error>(db, action);
    if let Some(parent) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            action: "create the archive directory",
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(fail("open the database file"))?;
    conn.busy_timeout(options.lock_timeout)
        .map_err(fail("set the lock timeout"))?;
    // WAL: readers (dashboards, the sqlite3 shell) never block a run, and a
    // run never blocks them. The mode is stored in the file; setting it
    // again is a no-op.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(fail("switch to write-ahead logging"))?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("take the write lock"))?;
    tx.execute_batch(schema::VERSION_TABLE)
        .map_err(fail("create the schema_version table"))?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(fail("read the schema version"))?;
    let pending = pending_migrations(db, current)?;
    for migration in pending {
        tx.execute_batch(migration)
            .map_err(fail("migrate the schema"))?;
    }
    if !pending.is_empty() {
        tx.execute_batch(&format!(
            "DELETE FROM schema_version; INSERT INTO schema_version VALUES ({});",
            schema::VERSION
        ))
        .map_err(fail("record the schema version"))?;
    }

    let stored = load_retention(&tx, host).map_err(fail("read the retention state"))?;
    let (batch, new_state) = (run.read)(&stored)?;
    let claimed = tx
        .execute(
            "INSERT INTO runs (time, host, per_process, sources, samples, written_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                batch.time,
                batch.host,
                batch.per_process,
                batch.sources as i64,
                batch.samples.len() as i64,
                unix_seconds(std::time::SystemTime::now()),
            ],
        )
        .map_err(fail("record the run"))?;
    if claimed == 0 {
        // Dropping the transaction rolls it back: nothing is written.
        return Ok((batch, Outcome::AlreadyArchived));
    }

    let known = {
        let mut stmt = tx
            .prepare("SELECT name, kind FROM stats")
            .map_err(fail("read the stat types"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)? == "float",
                ))
            })
            .map_err(fail("read the stat types"))?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .map_err(fail("read the stat types"))?
    };
    let plan = Plan::new(&batch, &known);
    {
        let mut record = tx
            .prepare(
                "INSERT INTO stats (name, kind, first_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET kind = 'float' WHERE excluded.kind = 'float'",
            )
            .map_err(fail("record the stat types"))?;
        for (name, kind) in plan.stat_types() {
            record
                .execute(params![name, kind, batch.time])
                .map_err(fail("record the stat types"))?;
        }

        let mut insert = tx
            .prepare(
                "INSERT INTO samples (time, host, name, pid, int_value, float_value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )
            .map_err(fail("insert the samples"))?;
        let half = plan.rows.len() / 2;
        for (i, row) in plan.rows.iter().enumerate() {
            if i == half {
                super::pause_midway(options, i, plan.rows.len());
            }
            insert
                .execute(params![
                    batch.time,
                    batch.host,
                    row.name,
                    row.pid,
                    row.int_value,
                    row.float_value
                ])
                .map_err(fail("insert the samples"))?;
        }
    }
    if let Some(rows) = new_state {
        store_retention(&tx, host, &rows).map_err(fail("store the retention state"))?;
    }
    tx.commit().map_err(fail("commit the run"))?;
    let outcome = Outcome::Written {
        samples: plan.rows.len() as u64,
        new_floats: plan.new_floats(),
    };
    Ok((batch, outcome))
}

/// The retention rows stored for `host`.
fn load_retention(tx: &Connection, host: &str) -> rusqlite::Result<Vec<StateRow>> {
    let mut stmt = tx.prepare(
        "SELECT pid, boot_id, started_ns, name, kind, int_value, float_value
         FROM retention WHERE host = ?1",
    )?;
    let rows = stmt.query_map([host], |row| {
        Ok(StateRow::read(
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            &row.get::<_, String>(4)?,
            row.get(5)?,
            row.get(6)?,
        ))
    })?;
    rows.collect()
}

/// Replaces the retention rows of `host` with `rows`.
fn store_retention(tx: &Connection, host: &str, rows: &[StateRow]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM retention WHERE host = ?1", [host])?;
    let mut insert = tx.prepare(
        "INSERT INTO retention (host, pid, boot_id, started_ns, name, kind, int_value, float_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for row in rows {
        insert.execute(params![
            host,
            row.pid,
            row.boot_id,
            row.started_ns,
            row.name,
            row.kind,
            row.int_value,
            row.float_value
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Database, Sample, WriteOptions};
    use super::*;
    use stats_core::Value;

    fn temp_db(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("archive-sqlite-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub/archive.db")
    }

    fn batch(time: i64, samples: &[(&str, Value)]) -> Batch {
        Batch {
            time,
            host: "h1".into(),
            per_process: false,
            sources: 1,
            samples: samples
                .iter()
                .map(|(name, value)| Sample {
                    name: (*name).into(),
                    pid: 0,
                    value: *value,
                })
                .collect(),
        }
    }

    #[test]
    fn writes_once_per_time_and_keeps_floats_float() {
        let path = temp_db("once");
        let db = Database::Sqlite(path.clone());
        let options = WriteOptions::default();
        let first = batch(10, &[("n", Value::Int(3)), ("load", Value::Float(0.5))]);
        assert_eq!(
            db.write(&first, &options).unwrap(),
            Outcome::Written {
                samples: 2,
                new_floats: 1
            }
        );
        assert_eq!(
            db.write(&first, &options).unwrap(),
            Outcome::AlreadyArchived
        );
        // Later the float stat arrives as an int and the int one as a float.
        let second = batch(11, &[("n", Value::Float(4.0)), ("load", Value::Int(2))]);
        assert_eq!(
            db.write(&second, &options).unwrap(),
            Outcome::Written {
                samples: 2,
                new_floats: 1
            }
        );

        let conn = Connection::open(&path).unwrap();
        let rows: Vec<(i64, String, Option<i64>, Option<f64>)> = conn
            .prepare("SELECT time, name, int_value, float_value FROM samples ORDER BY time, name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (10, "load".into(), None, Some(0.5)),
                (10, "n".into(), Some(3), None),
                (11, "load".into(), None, Some(2.0)),
                (11, "n".into(), None, Some(4.0)),
            ]
        );
        let kinds: Vec<(String, String)> = conn
            .prepare("SELECT name, kind FROM stats ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            kinds,
            vec![
                ("load".into(), "float".into()),
                ("n".into(), "float".into())
            ]
        );
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::VERSION);
        std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_and_nothing_written() {
        let path = temp_db("newer");
        let db = Database::Sqlite(path.clone());
        db.write(&batch(1, &[("n", Value::Int(1))]), &WriteOptions::default())
            .unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("UPDATE schema_version SET version = 99")
            .unwrap();
        let err = db
            .write(&batch(2, &[("n", Value::Int(1))]), &WriteOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 99"), "{err}");
        let count: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM samples", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1);
        std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_samples() {
        let path = temp_db("v1");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::VERSION_TABLE).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO schema_version VALUES (1);
             INSERT INTO runs VALUES (5, 'h1', 0, 1, 1, 5);
             INSERT INTO stats VALUES ('n', 'int', 5);
             INSERT INTO samples VALUES (5, 'h1', 'n', 0, 9, NULL);",
        )
        .unwrap();
        drop(conn);
        let db = Database::Sqlite(path.clone());
        db.write(
            &batch(6, &[("n", Value::Int(10))]),
            &WriteOptions::default(),
        )
        .unwrap();
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let values: Vec<i64> = conn
            .prepare("SELECT int_value FROM samples ORDER BY time")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(values, vec![9, 10]);
        let held: i64 = conn
            .query_row("SELECT COUNT(*) FROM retention", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 0, "a plain write leaves the retention state alone");
        std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
    }
}
