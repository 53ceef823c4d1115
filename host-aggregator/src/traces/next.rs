//! `/trace/next.svg` and `/trace/next.json` (monkit's preselect): wait for
//! the next trace whose root task matches a pattern and that started after
//! the request arrived. The wait is asynchronous: the trace FIFOs are read
//! every [`POLL`] on a blocking thread that is given back between reads,
//! so a waiting request holds no thread and no CPU while it waits, and at
//! most [`MAX_WAITERS`] wait at once (more get `503`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stats_core::tags;
use tokio::sync::Semaphore;

use crate::funcs::Graph;
use crate::pass_cache::{CachedPass, PassCache};
use crate::reply::Reply;

use super::TraceReader;
use super::answer::TraceFormat;
use super::query::NextQuery;
use super::read::OneTrace;
use super::record::Short;

/// How often the trace FIFOs are read while a request waits. Each read
/// makes every traced process render its ring, so not much more often
/// than a person would notice.
pub const POLL: Duration = Duration::from_millis(200);

/// Requests waiting at once, at most.
pub const MAX_WAITERS: usize = 8;

/// The task names of the merged pass (tag-less bases and full names): the
/// tasks a pattern may name.
pub(crate) fn known_tasks(cached: &CachedPass) -> Result<Vec<String>, String> {
    let pass = cached.result.as_ref().map_err(ToString::to_string)?;
    let mut names: Vec<String> = Vec::new();
    for name in Graph::of(&pass.merged).funcs.into_keys() {
        let base = tags::split(&name).base.to_owned();
        if base != name {
            names.push(base);
        }
        names.push(name);
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// Waits for the next matching trace and answers it in `format`: `400`
/// for a bad query or a pattern that names no known task, `404` when
/// `serve` reads no traces, `503` when too many wait already or nothing
/// can be read, `504` when none came in the timeout.
/// `reader` is `serve`'s trace reader (`None`: traces are off), `waiters`
/// the room for waiting requests, `cache` the passes the known task names
/// come from.
pub(crate) async fn wait(
    format: TraceFormat,
    query: &str,
    reader: Option<Arc<TraceReader>>,
    waiters: Arc<Semaphore>,
    cache: Arc<PassCache>,
) -> Reply {
    let arrived = unix_now();
    let Some(reader) = reader else {
        return Reply::error(404, "traces are off in this server");
    };
    let query = match NextQuery::parse(query) {
        Ok(query) => query,
        Err(message) => return Reply::error(400, &message),
    };
    let Ok(_waiting) = waiters.try_acquire_owned() else {
        return Reply::error(
            503,
            &format!("{MAX_WAITERS} requests wait for a trace already: try again later"),
        );
    };
    let known = tokio::task::spawn_blocking(move || known_tasks(&cache.get())).await;
    match known {
        Err(_) => return Reply::error(500, "reading the task names failed"),
        Ok(Err(message)) => return Reply::error(503, &message),
        Ok(Ok(names)) if !names.iter().any(|n| query.task.is_match(n)) => {
            let mut message = format!(
                "task pattern {:?} matches no known task",
                query.task.as_str()
            );
            if !names.is_empty() {
                let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
                message.push_str(&format!(" (known: {})", shown.join(", ")));
            }
            return Reply::error(400, &message);
        }
        Ok(Ok(_)) => {}
    }
    let deadline = Instant::now() + query.timeout;
    let query = Arc::new(query);
    loop {
        let (reader, wanted) = (Arc::clone(&reader), Arc::clone(&query));
        // The index read shared with every other waiter and `/traces`,
        // then the one record found, from its process's pipe alone (it
        // may have left the ring meanwhile: then wait on).
        let found = tokio::task::spawn_blocking(move || {
            let shared = reader.shared_index(POLL);
            let set = shared.value.as_ref().map_err(ToString::to_string)?;
            let Some((pid, id)) = first_after(&set.records, arrived, &wanted) else {
                return Ok(None);
            };
            match reader.read_one(pid, id) {
                Ok(OneTrace { record, .. }) => Ok(record),
                Err(error) => Err(error.to_string()),
            }
        })
        .await;
        match found {
            Ok(Ok(Some(record))) => return format.reply(&record),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => return Reply::error(503, &error),
            Err(_) => return Reply::error(500, "reading the trace pipes failed"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Reply::error(
                504,
                &format!(
                    "no trace of a task matching {:?} started within {:?}",
                    query.task.as_str(),
                    query.timeout
                ),
            );
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// The PID and id of the earliest-started record whose root matches and
/// that started at or after `arrived` (Unix seconds).
fn first_after(records: &[Short], arrived: f64, query: &NextQuery) -> Option<(u32, u64)> {
    records
        .iter()
        .filter(|r| r.start >= arrived && query.task.is_match(&r.root))
        .min_by(|a, b| a.start.total_cmp(&b.start))
        .map(|r| (r.pid, r.id))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
