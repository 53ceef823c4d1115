//! `host-aggregator top`: a terminal view of every stat on the host,
//! refreshed in place, sorted by rate, value or name, host-wide or per
//! process.
//!
//! It speaks plain ANSI escape codes (the alternate screen, cursor moves,
//! erase to end of line), so it works in any terminal and over SSH; keys are
//! read in non-canonical mode set with termios (no unsafe code, no terminal
//! library). The terminal's size is asked with a cursor-position report
//! (`ESC [ 6 n` after moving the cursor far down-right), which also works
//! over SSH without an ioctl. When stdout is not a terminal it prints a
//! plain block every interval instead.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};

use crate::history::{History, HistoryOptions, Latest};
use crate::{Collector, Error, Pass};

/// How the rows are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// Highest rate first (counters), then gauges by value.
    Rate,
    /// Highest value first.
    Value,
    /// By name.
    Name,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Rate => SortBy::Value,
            SortBy::Value => SortBy::Name,
            SortBy::Name => SortBy::Rate,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SortBy::Rate => "rate",
            SortBy::Value => "value",
            SortBy::Name => "name",
        }
    }
}

/// What `top` shows and how often.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// Time between passes.
    pub interval: Duration,
    /// Initial order (the `s` key cycles rate, value, name).
    pub sort: SortBy,
    /// Start with a row per process under each stat (the `p` key toggles).
    pub per_process: bool,
    /// Stop after this many refreshes (plain output mostly; `None`: until
    /// `q`, Ctrl-C or a closed stdout).
    pub count: Option<u64>,
}

impl TopOptions {
    /// One second, sorted by rate, host-wide rows, until quit.
    pub fn new() -> TopOptions {
        TopOptions {
            interval: HistoryOptions::DEFAULT_INTERVAL,
            sort: SortBy::Rate,
            per_process: false,
            count: None,
        }
    }
}

impl Default for TopOptions {
    fn default() -> TopOptions {
        TopOptions::new()
    }
}

/// Runs `top` on this terminal (or plain output when stdout is not one)
/// until `q`, Ctrl-C, [`TopOptions::count`] refreshes or a closed stdout.
///
/// # Errors
/// A pass that fails (the directory cannot be listed) or a terminal that
/// cannot be written or set up.
pub fn run(mut collector: Collector, options: &TopOptions) -> Result<(), Error> {
    let mut history = History::new(HistoryOptions {
        interval: options.interval,
        // Rates need two points; a short window keeps `top` small.
        points: 8,
        ..HistoryOptions::new()
    });
    let stdout = std::io::stdout();
    let interactive = stdout.is_terminal() && std::io::stdin().is_terminal();
    let mut view = View {
        sort: options.sort,
        per_process: options.per_process,
        size: (24, 80),
    };
    let mut screen = if interactive {
        Some(Screen::enter().map_err(|e| terminal_error("set up", e))?)
    } else {
        None
    };
    let mut frames = 0u64;
    loop {
        let pass = collector.collect()?;
        history.record(&pass);
        frames += 1;
        let mut out = stdout.lock();
        let written = match &screen {
            Some(_) => out
                .write_all(render_screen(&pass, &history, &view).as_bytes())
                .and_then(|()| out.write_all(SIZE_QUERY.as_bytes())),
            None => out.write_all(render_plain(&pass, &history, &view).as_bytes()),
        }
        .and_then(|()| out.flush());
        drop(out);
        match written {
            Ok(()) => {}
            // A closed stdout (`| head`) ends `top` quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(terminal_error("write to", e)),
        }
        if options.count.is_some_and(|count| frames >= count) {
            return Ok(());
        }
        let next = Instant::now() + options.interval;
        match &mut screen {
            Some(screen) => loop {
                // Keys are answered at once (redrawn with the same pass),
                // the next pass still comes on schedule.
                match screen.wait_key(next) {
                    Key::Quit => return Ok(()),
                    Key::Timeout => break,
                    Key::Sort => view.sort = view.sort.next(),
                    Key::PerProcess => view.per_process = !view.per_process,
                    Key::Size(rows, cols) => view.size = (rows, cols),
                    Key::Other => continue,
                }
                let frame = render_screen(&pass, &history, &view);
                let mut out = stdout.lock();
                out.write_all(frame.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| terminal_error("write to", e))?;
            },
            None => std::thread::sleep(next.saturating_duration_since(Instant::now())),
        }
    }
}

fn terminal_error(action: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: "the terminal".into(),
        source,
    }
}

/// Asks the terminal for its size: save the cursor, move it as far down
/// and right as it goes, report its position, restore it.
const SIZE_QUERY: &str = "\x1b7\x1b[999;999H\x1b[6n\x1b8";

struct View {
    sort: SortBy,
    per_process: bool,
    /// Rows and columns.
    size: (u16, u16),
}

/// One row: a stat (host-wide) or one process's share of it.
struct Row<'a> {
    stat: &'a Latest,
    label: String,
    value: f64,
    rate: Option<f64>,
}

fn rows<'a>(latest: &'a [Latest], view: &View) -> Vec<Row<'a>> {
    let mut stats: Vec<&Latest> = latest.iter().collect();
    let by_value = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    match view.sort {
        SortBy::Rate => stats.sort_by(|a, b| {
            let key = |s: &Latest| (s.rate.is_some(), by_value(s.rate.unwrap_or(s.value)));
            let (ka, kb) = (key(a), key(b));
            kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1))
        }),
        SortBy::Value => stats.sort_by(|a, b| by_value(b.value).total_cmp(&by_value(a.value))),
        SortBy::Name => {}
    }
    let mut rows = Vec::new();
    for stat in stats {
        rows.push(Row {
            stat,
            label: stat.name.to_string(),
            value: stat.value,
            rate: stat.rate,
        });
        if view.per_process {
            for (key, value, rate) in &stat.processes {
                rows.push(Row {
                    stat,
                    label: format!("  └ pid {}", key.pid),
                    value: *value,
                    rate: *rate,
                });
            }
        }
    }
    rows
}

fn header(pass: &Pass, view: &View) -> String {
    let clock = crate::export::unix_seconds(pass.started) as u64 % 86_400;
    format!(
        "stats-pipe top  {:02}:{:02}:{:02} UTC  sources {} ({} ok)  pass {:.1} ms  sort: {}  per-process: {}",
        clock / 3600,
        clock / 60 % 60,
        clock % 60,
        pass.sources.len(),
        pass.ok_count(),
        pass.duration.as_secs_f64() * 1e3,
        view.sort.as_str(),
        if view.per_process { "on" } else { "off" },
    )
}

/// Name column width for a terminal `cols` wide: what is left after the
/// two number columns, within sane limits.
fn name_width(cols: u16) -> usize {
    usize::from(cols).saturating_sub(2 * 16 + 2).clamp(16, 120)
}

fn format_row(out: &mut String, label: &str, value: &str, rate: &str, width: usize) {
    let label = truncate(label, width);
    let _ = write!(out, "{label:<width$} {value:>16} {rate:>16}");
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A value as `top` shows it: integers in full, others to 3 decimals,
/// huge or tiny ones in exponent form.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "-".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let magnitude = value.abs();
    if value.fract() == 0.0 && magnitude < 1e15 {
        format!("{value:.0}")
    } else if magnitude != 0.0 && !(1e-3..1e12).contains(&magnitude) {
        format!("{value:.3e}")
    } else {
        format!("{value:.3}")
    }
}

fn format_stat_row(out: &mut String, row: &Row<'_>, width: usize) {
    format_row(
        out,
        &row.label,
        &format_number(row.value),
        &rate_text(row),
        width,
    );
}

fn rate_text(row: &Row<'_>) -> String {
    match (row.stat.counter, row.rate) {
        (true, Some(rate)) => format_number(rate),
        (true, None) => "…".to_owned(),
        (false, _) => String::new(),
    }
}

/// A full screen: the header, the column titles (inverse video), one row
/// per stat, each line cleared to its end, and the rest of the screen
/// cleared; starts from the top-left corner so it overwrites the last one.
fn render_screen(pass: &Pass, history: &History, view: &View) -> String {
    let (rows_on_screen, cols) = (usize::from(view.size.0), view.size.1);
    let width = name_width(cols);
    let latest = history.latest();
    let rows = rows(&latest, view);
    let mut out = String::with_capacity(8192);
    out.push_str("\x1b[H");
    out.push_str(&truncate(&header(pass, view), usize::from(cols)));
    out.push_str("\x1b[K\r\n\x1b[7m");
    format_row(&mut out, "STAT", "VALUE", "RATE/s", width);
    out.push_str("\x1b[0m\x1b[K\r\n");
    // Header, titles and the key help take three lines.
    let room = rows_on_screen.saturating_sub(3);
    for row in rows.iter().take(room) {
        format_stat_row(&mut out, row, width);
        out.push_str("\x1b[K\r\n");
    }
    if rows.is_empty() {
        out.push_str("(no stats yet: no readable pipes)\x1b[K\r\n");
    }
    out.push_str("\x1b[J");
    let help = if rows.len() > room {
        format!(
            "q quit  s sort  p per-process   ({} more rows below)",
            rows.len() - room
        )
    } else {
        "q quit  s sort  p per-process".to_owned()
    };
    let _ = write!(out, "\x1b[{};1H\x1b[2m{help}\x1b[0m\x1b[K", rows_on_screen);
    out
}

/// Plain output for a pipe or a file: a header line, then every row, then
/// a blank line.
fn render_plain(pass: &Pass, history: &History, view: &View) -> String {
    let latest = history.latest();
    let rows = rows(&latest, view);
    let width = rows
        .iter()
        .map(|row| row.label.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 120);
    let mut out = header(pass, view);
    out.push('\n');
    format_row(&mut out, "STAT", "VALUE", "RATE/s", width);
    out.push('\n');
    for row in &rows {
        format_stat_row(&mut out, row, width);
        out.push('\n');
    }
    out.push('\n');
    out
}

enum Key {
    Quit,
    Sort,
    PerProcess,
    Size(u16, u16),
    Timeout,
    Other,
}

/// The terminal in `top`'s mode: keys unbuffered and not echoed, on the
/// alternate screen with the cursor hidden; all undone on drop.
struct Screen {
    saved: Termios,
    pending: Vec<u8>,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())?;
        let mut keys = saved.clone();
        // No line buffering, no echo, and Ctrl-C as a key (so the terminal
        // is always restored on the way out).
        keys.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &keys)?;
        let mut out = std::io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")?;
        out.write_all(SIZE_QUERY.as_bytes())?;
        out.flush()?;
        Ok(Screen {
            saved,
            pending: Vec::new(),
        })
    }

    /// The next key or size report before `deadline`.
    fn wait_key(&mut self, deadline: Instant) -> Key {
        loop {
            if let Some(key) = parse_key(&mut self.pending) {
                return key;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Key::Timeout;
            }
            let stdin = std::io::stdin();
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) => return Key::Timeout,
                Ok(_) => {
                    let mut buf = [0u8; 256];
                    match nix::unistd::read(stdin.as_fd(), &mut buf) {
                        // End of input (the terminal went away): quit.
                        Ok(0) => return Key::Quit,
                        Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                        Err(_) => return Key::Quit,
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return Key::Quit,
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Takes one key (or a whole `ESC [ rows ; cols R` size report) off the
/// front of `pending`; `None` when more bytes are needed.
fn parse_key(pending: &mut Vec<u8>) -> Option<Key> {
    let first = *pending.first()?;
    if first == 0x1b {
        if pending.len() < 2 {
            return None;
        }
        if pending[1] != b'[' {
            pending.drain(..1);
            return Some(Key::Other);
        }
        // A CSI sequence ends with a byte in 0x40..=0x7e.
        let end = pending[2..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))?
            + 2;
        let sequence: Vec<u8> = pending.drain(..=end).collect();
        if sequence[end] == b'R'
            && let Ok(body) = std::str::from_utf8(&sequence[2..end])
            && let Some((rows, cols)) = body.split_once(';')
            && let (Ok(rows), Ok(cols)) = (rows.parse(), cols.parse())
        {
            return Some(Key::Size(rows, cols));
        }
        return Some(Key::Other);
    }
    pending.drain(..1);
    Some(match first {
        b'q' | b'Q' | 0x03 | 0x04 => Key::Quit,
        b's' | b'S' => Key::Sort,
        b'p' | b'P' => Key::PerProcess,
        _ => Key::Other,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::history::ProcessKey;

    fn latest(name: &str, counter: bool, value: f64, rate: Option<f64>) -> Latest {
        Latest {
            name: Arc::from(name),
            counter,
            value,
            rate,
            processes: vec![(
                ProcessKey {
                    pid: 7,
                    started_ms: 1,
                },
                value,
                rate,
            )],
        }
    }

    fn labels(rows: &[Row<'_>]) -> Vec<String> {
        rows.iter().map(|row| row.label.clone()).collect()
    }

    #[test]
    fn sorts_by_rate_value_and_name_and_splits_per_process() {
        let stats = [
            latest("a.gauge", false, 500.0, None),
            latest("b.slow", true, 1000.0, Some(1.0)),
            latest("c.fast", true, 10.0, Some(90.0)),
        ];
        let mut view = View {
            sort: SortBy::Rate,
            per_process: false,
            size: (24, 80),
        };
        assert_eq!(
            labels(&rows(&stats, &view)),
            ["c.fast", "b.slow", "a.gauge"]
        );
        view.sort = view.sort.next();
        assert_eq!(
            labels(&rows(&stats, &view)),
            ["b.slow", "a.gauge", "c.fast"]
        );
        view.sort = view.sort.next();
        assert_eq!(
            labels(&rows(&stats, &view)),
            ["a.gauge", "b.slow", "c.fast"]
        );
        view.per_process = true;
        assert_eq!(
            labels(&rows(&stats, &view))[..2],
            ["a.gauge".to_owned(), "  └ pid 7".to_owned()]
        );
    }

    #[test]
    fn keys_and_size_reports() {
        let mut pending = b"s\x1b[40;120Rpx\x1b[Aq".to_vec();
        assert!(matches!(parse_key(&mut pending), Some(Key::Sort)));
        assert!(matches!(parse_key(&mut pending), Some(Key::Size(40, 120))));
        assert!(matches!(parse_key(&mut pending), Some(Key::PerProcess)));
        assert!(matches!(parse_key(&mut pending), Some(Key::Other)));
        assert!(matches!(parse_key(&mut pending), Some(Key::Other)));
        assert!(matches!(parse_key(&mut pending), Some(Key::Quit)));
        assert!(parse_key(&mut pending).is_none());
        // A report cut in two waits for its end.
        let mut pending = b"\x1b[40;1".to_vec();
        assert!(parse_key(&mut pending).is_none());
        pending.extend_from_slice(b"20R");
        assert!(matches!(parse_key(&mut pending), Some(Key::Size(40, 120))));
        assert!(matches!(parse_key(&mut b"\x03".to_vec()), Some(Key::Quit)));
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(12345.0), "12345");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(0.5), "0.500");
        assert_eq!(format_number(2.5e-7), "2.500e-7");
        assert_eq!(format_number(f64::NAN), "-");
        assert_eq!(format_number(f64::NEG_INFINITY), "-inf");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
