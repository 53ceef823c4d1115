//! The archive: one read pass written to a database as one transaction of
//! samples (SQLite by default, embedded; PostgreSQL for many hosts).
//!
//! A run is all or nothing. It writes one `runs` row keyed by
//! `(time, host)` and every sample of the pass in the same transaction; a
//! run whose `(time, host)` is already archived writes nothing, so a retry
//! with the same `--time` is harmless and two runs at once cannot both
//! land. Each stat's type lives in the `stats` table and only ever goes from
//! `int` to `float`: once a stat was a float, every later sample of it is
//! stored as a float, whatever a restarted writer or another host sends.
//! The schema is documented in `docs/ARCHIVE.md`.
//!
//! Each engine is a cargo feature (`sqlite`, `postgres`; both on by
//! default); a build without one refuses its `--db` with a message.
// The shared writing plan is used by the engines only.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

#[cfg(feature = "cli")]
mod command;
#[cfg(feature = "postgres")]
mod postgres;
pub mod remote;
mod retained;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "postgres")]
mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stats_core::Value;

use crate::retention::{RetainedState, Retention};
use crate::{Error, Pass, Status};

#[cfg(feature = "cli")]
pub use command::{ArchiveArgs, run};
pub use schema::VERSION as SCHEMA_VERSION;

/// The `pid` of a host-wide sample (the sum over every process). No user
/// process has PID 0, and a real key value (not NULL) keeps the unique key
/// effective in both engines.
pub const HOST_PID: u32 = 0;

/// Test-only hook: when this environment variable holds a number of
/// milliseconds, a run pauses that long after inserting half of its samples,
/// inside the open transaction, and says so on stderr. The end-to-end tests
/// use it to kill a run or stop its database mid-transaction.
pub const PAUSE_ENV: &str = "STATS_PIPE_ARCHIVE_TEST_PAUSE_MS";

/// One value to archive.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The stat name, as written (tags included).
    pub name: String,
    /// The process it came from, or [`HOST_PID`] for the host-wide sum.
    pub pid: u32,
    /// Its value; the type is kept.
    pub value: Value,
}

/// Everything one run writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The sample time, Unix seconds.
    pub time: i64,
    /// The host name the samples are filed under.
    pub host: String,
    /// Whether per-process samples are included.
    pub per_process: bool,
    /// How many sources were read successfully.
    pub sources: u64,
    /// The samples: host-wide sums, then per process if asked.
    pub samples: Vec<Sample>,
}

impl Batch {
    /// The samples of a pass read from the pipes directly: the host-wide
    /// merge, and each good source's stats if `per_process`. `time` defaults
    /// to the pass start, truncated to the second.
    pub fn from_pass(pass: &Pass, host: &str, time: Option<i64>, per_process: bool) -> Batch {
        let good = || {
            pass.sources
                .iter()
                .filter(|source| source.status == Status::Ok)
        };
        let mut samples: Vec<Sample> = pass
            .merged
            .iter()
            .map(|(name, value)| Sample {
                name: name.to_owned(),
                pid: HOST_PID,
                value,
            })
            .collect();
        if per_process {
            for source in good() {
                let Some(pid) = source.pid else { continue };
                samples.extend(source.snapshot.iter().map(|(name, value)| Sample {
                    name: name.to_owned(),
                    pid,
                    value,
                }));
            }
        }
        Batch {
            time: time.unwrap_or_else(|| unix_seconds(pass.started)),
            host: host.to_owned(),
            per_process,
            sources: good().count() as u64,
            samples,
        }
    }
}

/// Whole Unix seconds of `time` (a time before 1970 gives 0).
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    })
}

/// Where a run writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL or key=value string.
    Postgres(String),
}

impl Database {
    /// Reads a `--db` value: a plain `PATH` or `sqlite:PATH` (an SQLite
    /// file; `sqlite:///abs/path` also works), or `postgres://...` /
    /// `postgresql://...`. Leaving `--db` out is the way to the default
    /// file: an empty path (`''`, `sqlite:`) is refused, not read as it.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for an empty path, any other `scheme://`
    /// (`mysql://...`), or a libpq `key=value` string (only the URL form
    /// is taken); the value is echoed with any password hidden.
    pub fn parse(url: &str) -> Result<Database, Error> {
        let bad = |expected| Error::BadArgument {
            what: "--db",
            given: redact(url),
            expected,
        };
        const SCHEMES: &str = "PATH, sqlite:PATH or postgres://USER@HOST/DB (postgresql:// too)";
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        let path = match url.strip_prefix("sqlite:") {
            Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
            None if has_scheme(url) || url.contains("password=") => return Err(bad(SCHEMES)),
            None => url,
        };
        if path.trim().is_empty() {
            return Err(bad(
                "a non-empty path (leave --db out for the default file)",
            ));
        }
        Ok(Database::Sqlite(PathBuf::from(path)))
    }

    /// The default SQLite file: `/var/lib/stats-pipe/archive.db` for root,
    /// else `$XDG_DATA_HOME/stats-pipe/archive.db` (falling back to
    /// `~/.local/share/stats-pipe/archive.db`).
    pub fn default_sqlite_path() -> PathBuf {
        // /proc/self is owned by the process's effective user.
        let is_root = std::fs::metadata("/proc/self")
            .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
            .unwrap_or(false);
        if is_root {
            return PathBuf::from("/var/lib/stats-pipe/archive.db");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("stats-pipe/archive.db")
    }

    /// The database for messages: its path, or its URL without a password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite:{}", path.display()),
            Database::Postgres(url) => redact(url),
        }
    }

    /// Writes `batch` as one transaction, creating or migrating the schema
    /// first if needed. The retention state stored for its host is left as
    /// it is.
    ///
    /// # Errors
    /// [`Error::Database`] if the database is down, locked beyond
    /// `options.lock_timeout`, read-only, or refuses a statement; the
    /// transaction is then rolled back and nothing of the run is stored.
    pub fn write(&self, batch: &Batch, options: &WriteOptions) -> Result<Outcome, Error> {
        self.run(&batch.host, options, |_| Ok((batch.clone(), None)))
            .map(|(_, outcome)| outcome)
    }

    /// One run as one transaction: takes the archive's lock, creates or
    /// migrates the schema, restores the retention state stored for `host`,
    /// and only then calls `read` with it, so concurrent runs read and
    /// store in turn and none goes back on the state of a later one. `read`
    /// returns the batch to write and the state to store after it (`None`:
    /// leave it as it was). Returns the batch with what was done.
    ///
    /// # Errors
    /// As [`Database::write`], and whatever `read` returns (nothing is then
    /// stored).
    fn run<F>(&self, host: &str, options: &WriteOptions, read: F) -> Result<(Batch, Outcome), Error>
    where
        F: FnOnce(Retention) -> Result<(Batch, Option<RetainedState>), Error>,
    {
        let boot = crate::procfs::boot_id().ok();
        let read = |rows: &[retained::StateRow]| {
            let (batch, state) = read(retained::restore(rows, boot.as_deref()))?;
            let rows = state.map(|state| retained::rows_of(state, boot.as_deref()));
            Ok::<_, Error>((batch, rows))
        };
        let db = self.describe();
        let run = Run {
            db: &db,
            host,
            options,
            read: Box::new(read),
        };
        match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(path) => sqlite::write(path, run),
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => postgres::write(url, run),
            #[allow(unreachable_patterns)]
            _ => {
                drop(run);
                Err(Error::BadArgument {
                    what: "--db",
                    given: self.describe(),
                    expected: "a database engine this build has (features `sqlite`, `postgres`)",
                })
            }
        }
    }
}

impl Default for Database {
    /// SQLite at [`Database::default_sqlite_path`].
    fn default() -> Database {
        Database::Sqlite(Database::default_sqlite_path())
    }
}

/// How a run writes.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// How long to wait for another writer's lock before giving up.
    pub lock_timeout: Duration,
    /// Test-only: pause this long halfway through the inserts (see
    /// [`PAUSE_ENV`]).
    pub pause_midway: Option<Duration>,
}

impl Default for WriteOptions {
    /// A 10 s lock timeout, no pause.
    fn default() -> WriteOptions {
        WriteOptions {
            lock_timeout: Duration::from_secs(10),
            pause_midway: None,
        }
    }
}

impl WriteOptions {
    /// Default options with the pause taken from [`PAUSE_ENV`], if set.
    pub fn from_env() -> WriteOptions {
        WriteOptions {
            pause_midway: std::env::var(PAUSE_ENV)
                .ok()
                .and_then(|ms| ms.trim().parse().ok())
                .map(Duration::from_millis),
            ..WriteOptions::default()
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The samples were committed.
    Written {
        /// Samples stored.
        samples: u64,
        /// Stats stored as floats for the first time in this run (their
        /// type went, or started, float for good).
        new_floats: u64,
    },
    /// This `(time, host)` was archived before: nothing was written.
    AlreadyArchived,
}

/// One row as stored: exactly one of the two values is set, except a float
/// NaN in SQLite, which has no NaN and stores it as NULL.
struct Row<'a> {
    name: &'a str,
    pid: i64,
    int_value: Option<i64>,
    float_value: Option<f64>,
}

/// What a backend's run is given besides its address: the database as
/// errors name it (without a password), the host whose retention rows it
/// reads and stores, the options, and what reads the stored rows.
struct Run<'a> {
    db: &'a str,
    host: &'a str,
    options: &'a WriteOptions,
    /// Gets the retention rows stored for `host` and returns the batch and
    /// the rows to store instead (`None`: keep them).
    read: ReadStored<'a>,
}

/// What a run's `read` returns once it has the stored retention rows: the
/// batch to write and the rows to store instead (`None`: keep them).
type ReadRetained = Result<(Batch, Option<Vec<retained::StateRow>>), Error>;

/// A run's `read`: called once, inside the run's transaction, with the
/// retention rows stored for its host.
type ReadStored<'a> = Box<dyn FnOnce(&[retained::StateRow]) -> ReadRetained + 'a>;

/// What a run must store, given each stat's recorded type.
struct Plan<'a> {
    /// Stats seen for the first time, with `true` for float.
    new_stats: Vec<(&'a str, bool)>,
    /// Known `int` stats that now arrive as floats: promoted for good.
    promoted: Vec<&'a str>,
    rows: Vec<Row<'a>>,
}

impl<'a> Plan<'a> {
    /// `known` maps each recorded stat to `true` if its type is float.
    fn new(batch: &'a Batch, known: &HashMap<String, bool>) -> Plan<'a> {
        let mut now_float: HashMap<&'a str, bool> = HashMap::new();
        for sample in &batch.samples {
            *now_float.entry(&sample.name).or_default() |= sample.value.is_float();
        }
        let mut new_stats = Vec::new();
        let mut promoted = Vec::new();
        for (&name, &float) in &now_float {
            match known.get(name) {
                None => new_stats.push((name, float)),
                Some(false) if float => promoted.push(name),
                Some(_) => {}
            }
        }
        new_stats.sort_unstable();
        promoted.sort_unstable();
        let rows = batch
            .samples
            .iter()
            .map(|sample| {
                let float = known.get(&sample.name).copied().unwrap_or(false)
                    || now_float
                        .get(sample.name.as_str())
                        .copied()
                        .unwrap_or(false);
                let (int_value, float_value) = match sample.value {
                    Value::Int(i) if !float => (Some(i), None),
                    value => (None, Some(value.as_f64())),
                };
                Row {
                    name: &sample.name,
                    pid: i64::from(sample.pid),
                    int_value,
                    float_value,
                }
            })
            .collect();
        Plan {
            new_stats,
            promoted,
            rows,
        }
    }

    /// Every stat whose recorded type this run sets, with that type
    /// (`"int"` or `"float"`): the new ones and the promoted ones. Each
    /// backend upserts these one by one.
    fn stat_types(&self) -> impl Iterator<Item = (&'a str, &'static str)> + '_ {
        let kind = |float: bool| if float { "float" } else { "int" };
        self.new_stats
            .iter()
            .map(move |&(name, float)| (name, kind(float)))
            .chain(self.promoted.iter().map(|&name| (name, "float")))
    }

    fn new_floats(&self) -> u64 {
        let fresh = self.new_stats.iter().filter(|(_, float)| *float).count();
        (fresh + self.promoted.len()) as u64
    }
}

/// Sleeps for the test hook, saying so on stderr so a test knows the
/// transaction is open with half of the rows in it.
fn pause_midway(options: &WriteOptions, inserted: usize, total: usize) {
    if let Some(pause) = options.pause_midway {
        eprintln!("archive: test pause: {inserted} of {total} samples inserted, transaction open");
        std::thread::sleep(pause);
    }
}

/// Maps a driver error to [`Error::Database`] for `db` and `action`.
fn db_error<'a, E>(db: &'a str, action: &'static str) -> impl FnOnce(E) -> Error + 'a
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::Database {
        db: db.to_owned(),
        action,
        source: Box::new(e),
    }
}

/// The migrations a database at schema version `current` needs.
fn pending_migrations(db: &str, current: i64) -> Result<&'static [&'static str], Error> {
    schema::pending(current).map_err(|why| Error::Database {
        db: db.to_owned(),
        action: "check the schema version",
        source: why.into(),
    })
}

/// Whether `text` starts with a URL scheme and `://` (`mysql://...`).
fn has_scheme(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // key=value form: hide a password=... item.
        return url
            .split_whitespace()
            .map(|item| {
                if item.starts_with("password=") {
                    "password=***"
                } else {
                    item
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    // The driver also takes `?password=...` in the query.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|item| {
                    if item.starts_with("password=") {
                        "password=***"
                    } else {
                        item
                    }
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(samples: &[(&str, u32, Value)]) -> Batch {
        Batch {
            time: 100,
            host: "h".into(),
            per_process: true,
            sources: 1,
            samples: samples
                .iter()
                .map(|(name, pid, value)| Sample {
                    name: (*name).into(),
                    pid: *pid,
                    value: *value,
                })
                .collect(),
        }
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            Database::parse("sqlite:/x/a.db").unwrap(),
            Database::Sqlite("/x/a.db".into())
        );
        assert_eq!(
            Database::parse("sqlite:///x/a.db").unwrap(),
            Database::Sqlite("/x/a.db".into())
        );
        assert_eq!(
            Database::parse("sqlite:rel.db").unwrap(),
            Database::Sqlite("rel.db".into())
        );
        assert_eq!(
            Database::parse("/x/plain.db").unwrap(),
            Database::Sqlite("/x/plain.db".into())
        );
        assert_eq!(
            Database::parse("rel.db").unwrap(),
            Database::Sqlite("rel.db".into())
        );
        for empty in ["", "sqlite:", "sqlite://", " "] {
            let err = Database::parse(empty).unwrap_err().to_string();
            assert!(err.contains("non-empty path"), "{empty:?}: {err}");
        }
        assert!(matches!(
            Database::parse("postgresql://u@h/db").unwrap(),
            Database::Postgres(_)
        ));
        let err = Database::parse("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sqlite:PATH") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = Database::parse("host=h password=hunter2 user=u")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:pw@h:5/db?x=1"),
            "postgres://u:***@h:5/db?x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=pw&x=1"),
            "postgres://u@h/db?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact("postgres://u:p@ss@h/db?password=pw"),
            "postgres://u:***@h/db?password=***"
        );
        assert_eq!(
            redact("host=/tmp password=pw user=u"),
            "host=/tmp password=*** user=u"
        );
    }

    #[test]
    fn a_float_anywhere_makes_the_stat_float_in_every_row() {
        let b = batch(&[
            ("load", 0, Value::Float(1.5)),
            ("load", 7, Value::Int(1)),
            ("n", 0, Value::Int(3)),
        ]);
        let plan = Plan::new(&b, &HashMap::new());
        assert_eq!(plan.new_stats, vec![("load", true), ("n", false)]);
        assert_eq!(plan.new_floats(), 1);
        let typed: Vec<_> = plan
            .rows
            .iter()
            .map(|r| (r.name, r.int_value, r.float_value))
            .collect();
        assert_eq!(
            typed,
            vec![
                ("load", None, Some(1.5)),
                ("load", None, Some(1.0)),
                ("n", Some(3), None)
            ]
        );
    }

    #[test]
    fn a_recorded_float_stays_float_and_an_int_is_promoted() {
        let b = batch(&[
            ("was_float", 0, Value::Int(2)),
            ("was_int", 0, Value::Float(0.5)),
        ]);
        let known = HashMap::from([
            ("was_float".to_owned(), true),
            ("was_int".to_owned(), false),
        ]);
        let plan = Plan::new(&b, &known);
        assert!(plan.new_stats.is_empty());
        assert_eq!(plan.promoted, vec!["was_int"]);
        assert_eq!(plan.rows[0].float_value, Some(2.0));
        assert_eq!(plan.rows[0].int_value, None);
        assert_eq!(plan.rows[1].float_value, Some(0.5));
    }

    #[test]
    fn from_pass_keeps_host_sums_and_good_sources() {
        use crate::Source;
        let snap = |text: &[u8]| stats_core::Snapshot::parse(text, 4096).0;
        let source = |pid, status, text: &[u8]| Source {
            path: format!("/d/{pid}.stats").into(),
            pid: Some(pid),
            status,
            snapshot: snap(text),
            kinds: Default::default(),
            header: None,
            foreign: true,
            lines: 1,
            bad_lines: 0,
            first_errors: Vec::new(),
            attempts: 1,
            bytes: 0,
            last_seen: None,
        };
        let pass = Pass {
            started: UNIX_EPOCH + Duration::from_millis(5_900),
            duration: Duration::ZERO,
            sources: vec![
                source(4, Status::Ok, b"a: 1\n"),
                source(5, Status::Stale, b""),
            ],
            merged: snap(b"a: 1\n"),
            kinds: Default::default(),
        };
        let b = Batch::from_pass(&pass, "web1", None, true);
        assert_eq!(b.time, 5);
        assert_eq!(b.sources, 1);
        assert_eq!(
            b.samples,
            vec![
                Sample {
                    name: "a".into(),
                    pid: 0,
                    value: Value::Int(1)
                },
                Sample {
                    name: "a".into(),
                    pid: 4,
                    value: Value::Int(1)
                },
            ]
        );
        assert_eq!(
            Batch::from_pass(&pass, "web1", Some(9), false)
                .samples
                .len(),
            1
        );
    }
}
