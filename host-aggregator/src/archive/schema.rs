//! The archive's schema and its migrations, shared by SQLite and PostgreSQL
//! (the DDL below is valid in both; `docs/ARCHIVE.md` documents it).

/// The schema version this build writes. A database at a higher version was
/// written by a newer build and is refused rather than misread.
pub const VERSION: i64 = 2;

/// Creates the version table if it is missing; run first in every archive
/// transaction.
pub const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE runs (
        time BIGINT NOT NULL,
        host TEXT NOT NULL,
        per_process BOOLEAN NOT NULL,
        sources BIGINT NOT NULL,
        samples BIGINT NOT NULL,
        written_at BIGINT NOT NULL,
        PRIMARY KEY (time, host)
    );
    CREATE TABLE stats (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('int', 'float')),
        first_seen BIGINT NOT NULL
    );
    CREATE TABLE samples (
        time BIGINT NOT NULL,
        host TEXT NOT NULL,
        name TEXT NOT NULL,
        pid BIGINT NOT NULL,
        int_value BIGINT,
        float_value DOUBLE PRECISION,
        CHECK (int_value IS NULL OR float_value IS NULL),
        PRIMARY KEY (time, host, name, pid)
    );
    CREATE INDEX samples_by_name ON samples (name, time);",
    // Version 2: the retention state of one-shot runs reading the pipes
    // (see `super::retained`): each live process's last counter and
    // histogram lines under its PID, boot and start after boot, and the
    // retained totals of exited processes under PID 0.
    "CREATE TABLE retention (
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        boot_id TEXT,
        started_ns BIGINT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('counter', 'histogram')),
        int_value BIGINT,
        float_value DOUBLE PRECISION,
        CHECK (int_value IS NULL OR float_value IS NULL),
        PRIMARY KEY (host, pid, name)
    );",
];

/// Which migrations a database at `current` needs, or why it cannot be used.
pub fn pending(current: i64) -> Result<&'static [&'static str], String> {
    match usize::try_from(current) {
        Ok(done) if done <= MIGRATIONS.len() => Ok(&MIGRATIONS[done..]),
        _ => Err(format!(
            "schema version {current} is not one this build knows (it writes {VERSION}); \
             was it written by a newer host-aggregator?"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_migrations() {
        assert_eq!(VERSION, MIGRATIONS.len() as i64);
        assert_eq!(pending(0).unwrap().len(), MIGRATIONS.len());
        assert!(pending(VERSION).unwrap().is_empty());
        assert!(pending(VERSION + 1).unwrap_err().contains("newer"));
        assert!(pending(-1).is_err());
    }
}
