//! `stats_pipe._native`: the Rust half of the Python package `stats_pipe`.
//!
//! Recording calls go straight into this process's registry (a by-name call
//! is a thread-cached hash lookup, a handle call one atomic add); the
//! serving threads are Rust and never take the GIL. Every call finds this
//! process's state through the fork-aware runtime of `stats-pipe-capi`, so
//! a handle made before a `fork` records into the child's own registry in
//! the child. The pure-Python half (`python/stats_pipe/__init__.py`) adds
//! pipestatic's `stats` object, timers, task decorators and the fork and
//! exit hooks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};
use stats_core::{Counter, Gauge, Histogram, Task, TaskGuard, Value};
use stats_pipe::{fork, runtime};

create_exception!(
    _native,
    StatsPipeError,
    PyOSError,
    "Serving the stats pipe failed; the message names the path."
);

/// A Python number as a stat value: `int` stays an integer (one too big
/// for 64 bits becomes a float, like pipestatic's big ints), `float` a
/// float, anything else through `float()`.
#[inline]
fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(i) = v.cast::<PyInt>() {
        return Ok(match i.extract::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(i.extract::<f64>()?),
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    Ok(Value::Float(v.extract::<f64>()?))
}

fn to_py(py: Python<'_>, v: Value) -> Py<PyAny> {
    match v {
        Value::Int(n) => n.into_pyobject(py).map(|o| o.into_any().unbind()),
        Value::Float(f) => f.into_pyobject(py).map(|o| o.into_any().unbind()),
    }
    .unwrap_or_else(|never| match never {})
}

fn serve_error(e: stats_pipe::Error) -> PyErr {
    StatsPipeError::new_err(e.to_string())
}

/// Adds `value` (default 1) to the stat `name`, creating it at `value`
/// (pipestatic's `incr`). Serving starts on the first record.
#[pyfunction]
#[pyo3(signature = (name, value = None))]
fn incr(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let by = match value {
        None => Value::Int(1),
        Some(v) => self::value(v)?,
    };
    runtime::recording().registry().incr(name, by);
    Ok(())
}

/// Sets the stat `name` to `value` (pipestatic's `set`; once a float,
/// always a float).
#[pyfunction]
fn set(name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let v = self::value(value)?;
    runtime::recording().registry().set(name, v);
    Ok(())
}

/// Records `value` into the histogram `name`.
#[pyfunction]
fn observe(name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let v = self::value(value)?;
    runtime::recording().registry().record(name, v);
    Ok(())
}

/// Starts serving at `<dir>/<pid>.stats` (`dir` None: `STATS_PIPE_DIR`,
/// else `/tmp/stats-pipe`) and returns the path.
#[pyfunction]
#[pyo3(signature = (dir = None))]
fn start(dir: Option<PathBuf>) -> PyResult<String> {
    runtime::start(dir.as_deref())
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(serve_error)
}

/// Stops serving and removes the FIFO, first waiting up to `linger`
/// seconds for a reader to take a snapshot made after this call.
#[pyfunction]
#[pyo3(signature = (linger = 0.0))]
fn stop(py: Python<'_>, linger: f64) -> PyResult<()> {
    let linger = std::time::Duration::try_from_secs_f64(linger)
        .map_err(|_| PyValueError::new_err(format!("linger must be >= 0 seconds, not {linger}")))?;
    // The wait may be long; other threads run meanwhile. (The fork gate is
    // taken only after the wait, never across a GIL handover.)
    py.detach(|| runtime::stop(linger)).map_err(serve_error)
}

/// What the process does at exit: stop, lingering `STATS_PIPE_LINGER`
/// seconds for a last read (unset: 2.5 s, and only if the pipe was read
/// before).
#[pyfunction]
fn _at_exit(py: Python<'_>) {
    let _ = py.detach(runtime::stop_at_exit);
}

/// The path being served, or None.
#[pyfunction]
fn path() -> Option<String> {
    runtime::path().map(|p| p.to_string_lossy().into_owned())
}

/// Why serving failed or ended, or None.
#[pyfunction]
fn last_error() -> Option<String> {
    runtime::last_error().map(|e| e.to_string())
}

/// `os.register_at_fork(after_in_child=...)`: makes the child's empty
/// runtime now (the `pthread_atfork` handler already dropped the parent's
/// descriptors and moved to a new epoch).
#[pyfunction]
fn _after_fork_in_child() {
    let _ = runtime::current();
}

/// This process's stats as the text lines a reader of the pipe gets
/// (without the envelope and kind lines).
#[pyfunction]
fn render() -> String {
    let mut buf = Vec::new();
    runtime::current().registry().render_into(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `base[k=v,...]` with `\`, `,`, `=`, `[` and `]` escaped in keys and
/// values (FORMAT.md, "Tags").
#[pyfunction]
fn tagged(base: &str, tags: Vec<(String, String)>) -> String {
    let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    stats_core::tags::join(base, &pairs)
}

/// A handle of a stat that is looked up again after a `fork`: a child
/// records into its own registry (the fork epoch changes there), never
/// into the copy of its parent's. Shared by every Python handle class.
struct PerFork<H> {
    epoch: u64,
    inner: H,
    lookup: fn(&str) -> H,
}

impl<H> PerFork<H> {
    fn new(name: &str, lookup: fn(&str) -> H) -> PerFork<H> {
        PerFork {
            epoch: fork::epoch(),
            inner: lookup(name),
            lookup,
        }
    }

    /// The handle to record with: this process's serving is started if it
    /// is not yet (the first record does it, as in the library).
    #[inline]
    fn recording(&mut self, name: &str) -> &H {
        runtime::recording();
        self.current(name)
    }

    /// The handle of this process, to read with (serving is not started).
    #[inline]
    fn current(&mut self, name: &str) -> &H {
        if self.epoch != fork::epoch() {
            self.inner = (self.lookup)(name);
            self.epoch = fork::epoch();
        }
        &self.inner
    }
}

/// Declares a handle class: a `#[pyclass]` holding the stat's name (the
/// read-only attribute `name`) and its [`PerFork`] handle, which `lookup`
/// finds by name in this process, with `__init__(name)` and the methods
/// given after the `;`.
macro_rules! handle_class {
    (
        $(#[$attr:meta])*
        struct $class:ident(PerFork<$handle:ty>) = $lookup:expr;
        $($methods:tt)*
    ) => {
        $(#[$attr])*
        struct $class {
            /// The stat's name.
            #[pyo3(get)]
            name: String,
            handle: PerFork<$handle>,
        }

        #[pymethods]
        impl $class {
            #[new]
            fn new(name: String) -> $class {
                $class {
                    handle: PerFork::new(&name, $lookup),
                    name,
                }
            }

            $($methods)*
        }
    };
}

handle_class! {
    /// A counter handle: `incr(n=1)` is one atomic add.
    #[pyclass(module = "stats_pipe", name = "Counter")]
    struct PyCounter(PerFork<Counter>) = |name| runtime::current().registry().counter(name);

    /// Adds `n` (default 1; an int or float >= 0).
    #[pyo3(signature = (n = None))]
    #[inline]
    fn incr(&mut self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.map(value).transpose()?;
        let counter = self.handle.recording(&self.name);
        match n {
            None => counter.incr(),
            Some(Value::Int(n)) => match u64::try_from(n) {
                Ok(n) => counter.incr_by(n),
                Err(_) => return Err(negative(&self.name, n as f64)),
            },
            Some(Value::Float(f)) if f >= 0.0 => counter.incr_by_float(f),
            Some(Value::Float(f)) => return Err(negative(&self.name, f)),
        }
        Ok(())
    }

    /// The current value in this process.
    #[getter]
    fn value(&mut self, py: Python<'_>) -> Py<PyAny> {
        to_py(py, self.handle.current(&self.name).value())
    }
}

fn negative(name: &str, n: f64) -> PyErr {
    PyValueError::new_err(format!(
        "counter {name:?} only counts up; {n} is not >= 0 (use a gauge)"
    ))
}

handle_class! {
    /// A gauge handle: `set(v)`, `add(n)`.
    #[pyclass(module = "stats_pipe", name = "Gauge")]
    struct PyGauge(PerFork<Gauge>) = |name| runtime::current().registry().gauge(name);

    /// Sets the value (an int stays an int until a float is set).
    fn set(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = value(v)?;
        self.handle.recording(&self.name).set(v);
        Ok(())
    }

    /// Adds `n` (default 1; may be negative).
    #[pyo3(signature = (n = None))]
    fn add(&mut self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.map(value).transpose()?.unwrap_or(Value::Int(1));
        self.handle.recording(&self.name).add(n);
        Ok(())
    }

    /// The current value in this process.
    #[getter]
    fn value(&mut self, py: Python<'_>) -> Py<PyAny> {
        to_py(py, self.handle.current(&self.name).value())
    }
}

handle_class! {
    /// A histogram handle: `observe(v)`; the package's subclass adds `time()`.
    #[pyclass(module = "stats_pipe", name = "Histogram", subclass)]
    struct PyHistogram(PerFork<Histogram>) = |name| runtime::current().registry().histogram(name);

    /// Records one value (an int or a float; durations in seconds).
    fn observe(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        match value(v)? {
            Value::Int(n) => self.handle.recording(&self.name).record(n),
            Value::Float(f) => self.handle.recording(&self.name).record_float(f),
        }
        Ok(())
    }

    /// How many values this process recorded.
    #[getter]
    fn count(&mut self) -> u64 {
        self.handle.current(&self.name).distribution().count
    }
}

handle_class! {
    /// A task handle (monkit's `mon.Task()`): `begin()` starts a run.
    #[pyclass(module = "stats_pipe", name = "TaskHandle")]
    struct PyTask(PerFork<&'static Task>) = |name| runtime::current().task(name);

    /// Starts a run: `.current` goes up and the clock starts.
    fn begin(&mut self) -> PyRun {
        PyRun {
            guard: Some(self.handle.recording(&self.name).start()),
        }
    }

    /// Completed runs in this process: `(success, errors, panics)`.
    fn outcomes(&mut self) -> (i64, i64, i64) {
        let o = self.handle.current(&self.name).outcomes();
        (o.success, o.errors, o.panics)
    }
}

/// One run of a task; `end(ok)` records its outcome and duration. A run
/// dropped without `end` counts as an error.
#[pyclass(module = "stats_pipe", name = "Run")]
struct PyRun {
    guard: Option<TaskGuard<'static>>,
}

#[pymethods]
impl PyRun {
    /// Ends the run: a success if `ok`, else an error. A second call does
    /// nothing.
    fn end(&mut self, ok: bool) {
        if let Some(guard) = self.guard.take() {
            if ok {
                guard.success();
            } else {
                guard.error();
            }
        }
    }
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(incr, m)?)?;
    m.add_function(wrap_pyfunction!(set, m)?)?;
    m.add_function(wrap_pyfunction!(observe, m)?)?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(path, m)?)?;
    m.add_function(wrap_pyfunction!(last_error, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(render, m)?)?;
    m.add_function(wrap_pyfunction!(tagged, m)?)?;
    m.add_class::<PyCounter>()?;
    m.add_class::<PyGauge>()?;
    m.add_class::<PyHistogram>()?;
    m.add_class::<PyTask>()?;
    m.add_class::<PyRun>()?;
    m.add("StatsPipeError", m.py().get_type::<StatsPipeError>())?;
    // Registers the pthread_atfork handlers now, before any fork.
    let _ = runtime::current();
    Ok(())
}
