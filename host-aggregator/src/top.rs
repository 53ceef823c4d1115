//! `host-aggregator top`: a terminal view of every stat on the host,
//! refreshed in place, sorted by rate, value or name, host-wide or per
//! process.
//!
//! It speaks plain ANSI escape codes (the alternate screen, cursor moves,
//! erase to end of line), so it works in any terminal and over SSH; keys are
//! read in non-canonical mode set with termios (no unsafe code, no terminal
//! library). The terminal's size comes from `TIOCGWINSZ` (rustix's safe
//! `tcgetwinsize`), read again before every frame and at least every
//! 200 ms, so a resized window is redrawn to fit: every line is
//! cut to the width, the header wraps onto more lines rather than being
//! cut. Rows below the screen are reached with the arrow keys, PgUp/PgDn
//! and Home/End. When stdout is not a terminal it prints a plain block
//! every interval instead.

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
        size: terminal_size().unwrap_or((24, 80)),
        scroll: 0,
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
        if screen.is_some()
            && let Some(size) = terminal_size()
        {
            view.size = size;
        }
        let mut out = stdout.lock();
        let written = match &screen {
            Some(_) => out.write_all(render_screen(&pass, &history, &mut view).as_bytes()),
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
                let page = view.page();
                match screen.wait_key(next.min(Instant::now() + RESIZE_CHECK)) {
                    Key::Quit => return Ok(()),
                    Key::Timeout if Instant::now() >= next => break,
                    Key::Timeout => match terminal_size() {
                        Some(size) if size != view.size => view.size = size,
                        _ => continue,
                    },
                    Key::Sort => view.sort = view.sort.next(),
                    Key::PerProcess => view.per_process = !view.per_process,
                    Key::Scroll(Scroll::Up) => view.scroll = view.scroll.saturating_sub(1),
                    Key::Scroll(Scroll::Down) => view.scroll = view.scroll.saturating_add(1),
                    Key::Scroll(Scroll::PageUp) => view.scroll = view.scroll.saturating_sub(page),
                    Key::Scroll(Scroll::PageDown) => {
                        view.scroll = view.scroll.saturating_add(page);
                    }
                    Key::Scroll(Scroll::Home) => view.scroll = 0,
                    // Clamped to the last full page when drawn.
                    Key::Scroll(Scroll::End) => view.scroll = usize::MAX,
                    Key::Other => continue,
                }
                let frame = render_screen(&pass, &history, &mut view);
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

/// How often the terminal's size is read again between passes, so a
/// resized window is redrawn at once (no SIGWINCH handler: that would need
/// a signal thread or unsafe code).
const RESIZE_CHECK: Duration = Duration::from_millis(200);

/// The terminal's rows and columns, if stdout is one that knows them.
fn terminal_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

struct View {
    sort: SortBy,
    per_process: bool,
    /// Rows and columns.
    size: (u16, u16),
    /// Rows scrolled past at the top (clamped when drawn).
    scroll: usize,
}

impl View {
    /// Rows a PgUp/PgDn moves: what a screen shows, less one for context.
    fn page(&self) -> usize {
        usize::from(self.size.0).saturating_sub(5).max(1)
    }
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

/// The header's parts, in the order shown.
fn header_parts(pass: &Pass, view: &View) -> Vec<String> {
    let clock = crate::export::unix_seconds(pass.started) as u64 % 86_400;
    vec![
        "stats-pipe top".to_owned(),
        format!(
            "{:02}:{:02}:{:02} UTC",
            clock / 3600,
            clock / 60 % 60,
            clock % 60
        ),
        format!("sources {} ({} ok)", pass.sources.len(), pass.ok_count()),
        format!("pass {:.1} ms", pass.duration.as_secs_f64() * 1e3),
        format!("sort: {}", view.sort.as_str()),
        format!(
            "per-process: {}",
            if view.per_process { "on" } else { "off" }
        ),
    ]
}

fn header(pass: &Pass, view: &View) -> String {
    header_parts(pass, view).join("  ")
}

/// `parts` joined by two spaces into lines at most `cols` wide: a part that
/// does not fit goes to the next line (one wider than a line is cut).
fn wrap(parts: &[String], cols: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in parts {
        let part = truncate(part, cols);
        match lines.last_mut() {
            Some(line) if line.chars().count() + 2 + part.chars().count() <= cols => {
                line.push_str("  ");
                line.push_str(&part);
            }
            _ => lines.push(part),
        }
    }
    lines
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

/// [`format_row`] cut to `cols` (a terminal narrower than the columns).
fn screen_row(label: &str, value: &str, rate: &str, width: usize, cols: usize) -> String {
    let mut line = String::new();
    format_row(&mut line, label, value, rate, width);
    if line.chars().count() > cols {
        line = line.chars().take(cols).collect();
    }
    line
}

fn rate_text(row: &Row<'_>) -> String {
    match (row.stat.counter, row.rate) {
        (true, Some(rate)) => format_number(rate),
        (true, None) => "…".to_owned(),
        (false, _) => String::new(),
    }
}

/// A full screen: the header (wrapped to the width), the column titles
/// (inverse video), a screenful of rows from `view.scroll` (clamped here
/// to the last full page), each line cleared to its end, the rest of the
/// screen cleared, and the key help with the rows shown on the last line;
/// starts from the top-left corner so it overwrites the last one.
fn render_screen(pass: &Pass, history: &History, view: &mut View) -> String {
    let (rows_on_screen, cols) = (usize::from(view.size.0), usize::from(view.size.1));
    let width = name_width(view.size.1);
    let latest = history.latest();
    let rows = rows(&latest, view);
    let header = wrap(&header_parts(pass, view), cols);
    let mut out = String::with_capacity(8192);
    out.push_str("\x1b[H");
    for line in &header {
        out.push_str(line);
        out.push_str("\x1b[K\r\n");
    }
    out.push_str("\x1b[7m");
    out.push_str(&screen_row("STAT", "VALUE", "RATE/s", width, cols));
    out.push_str("\x1b[0m\x1b[K\r\n");
    // The header, the titles and the key help around the rows.
    let room = rows_on_screen.saturating_sub(header.len() + 2).max(1);
    view.scroll = view.scroll.min(rows.len().saturating_sub(room));
    for row in rows.iter().skip(view.scroll).take(room) {
        out.push_str(&screen_row(
            &row.label,
            &format_number(row.value),
            &rate_text(row),
            width,
            cols,
        ));
        out.push_str("\x1b[K\r\n");
    }
    if rows.is_empty() {
        out.push_str(&truncate("(no stats yet: no readable pipes)", cols));
        out.push_str("\x1b[K\r\n");
    }
    out.push_str("\x1b[J");
    // The position first: on a narrow terminal the key names are cut.
    let mut help = String::new();
    if rows.len() > room {
        let last = (view.scroll + room).min(rows.len());
        let _ = write!(
            help,
            "rows {}-{last} of {} ↑↓ PgUp PgDn  ",
            view.scroll + 1,
            rows.len()
        );
    }
    help.push_str("q quit  s sort  p per-process");
    let _ = write!(
        out,
        "\x1b[{rows_on_screen};1H\x1b[2m{}\x1b[0m\x1b[K",
        truncate(&help, cols)
    );
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
    Scroll(Scroll),
    Timeout,
    Other,
}

/// A scrolling key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scroll {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
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
        out.flush()?;
        Ok(Screen {
            saved,
            pending: Vec::new(),
        })
    }

    /// The next key before `deadline`.
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

/// Takes one key (a byte, or a whole escape sequence: `ESC [ A` or
/// `ESC O A` for an arrow, `ESC [ 5 ~` for PgUp...) off the front of
/// `pending`; `None` when more bytes are needed.
fn parse_key(pending: &mut Vec<u8>) -> Option<Key> {
    let first = *pending.first()?;
    if first == 0x1b {
        let second = *pending.get(1)?;
        if second == b'O' {
            // SS3: ESC O plus one byte (arrows in "application" mode).
            let third = *pending.get(2)?;
            pending.drain(..3);
            return Some(csi_key(&[], third));
        }
        if second != b'[' {
            pending.drain(..1);
            return Some(Key::Other);
        }
        // A CSI sequence ends with a byte in 0x40..=0x7e.
        let end = pending[2..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))?
            + 2;
        let sequence: Vec<u8> = pending.drain(..=end).collect();
        return Some(csi_key(&sequence[2..end], sequence[end]));
    }
    pending.drain(..1);
    Some(match first {
        b'q' | b'Q' | 0x03 | 0x04 => Key::Quit,
        b's' | b'S' => Key::Sort,
        b'p' | b'P' => Key::PerProcess,
        b'k' => Key::Scroll(Scroll::Up),
        b'j' => Key::Scroll(Scroll::Down),
        b' ' => Key::Scroll(Scroll::PageDown),
        b'g' => Key::Scroll(Scroll::Home),
        b'G' => Key::Scroll(Scroll::End),
        _ => Key::Other,
    })
}

/// The key of an escape sequence with parameters `params` ending in
/// `last` (xterm, VT220 and rxvt spellings of Home and End alike).
fn csi_key(params: &[u8], last: u8) -> Key {
    let scroll = match (params, last) {
        (_, b'A') => Scroll::Up,
        (_, b'B') => Scroll::Down,
        (_, b'H') | (b"1" | b"7", b'~') => Scroll::Home,
        (_, b'F') | (b"4" | b"8", b'~') => Scroll::End,
        (b"5", b'~') => Scroll::PageUp,
        (b"6", b'~') => Scroll::PageDown,
        _ => return Key::Other,
    };
    Key::Scroll(scroll)
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
            scroll: 0,
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
    fn keys_and_scrolling_sequences() {
        let mut pending = b"s\x1b[Apx\x1b[6~\x1b[5~\x1bOB\x1b[H\x1b[4~\x1b[Zq".to_vec();
        let mut keys = Vec::new();
        while let Some(key) = parse_key(&mut pending) {
            keys.push(match key {
                Key::Quit => "quit".to_owned(),
                Key::Sort => "sort".to_owned(),
                Key::PerProcess => "per-process".to_owned(),
                Key::Scroll(scroll) => format!("{scroll:?}"),
                Key::Timeout => "timeout".to_owned(),
                Key::Other => "other".to_owned(),
            });
        }
        assert_eq!(
            keys,
            [
                "sort",
                "Up",
                "per-process",
                "other",
                "PageDown",
                "PageUp",
                "Down",
                "Home",
                "End",
                "other",
                "quit"
            ]
        );
        // A sequence cut in two waits for its end.
        let mut pending = b"\x1b[6".to_vec();
        assert!(parse_key(&mut pending).is_none());
        pending.extend_from_slice(b"~");
        assert!(matches!(
            parse_key(&mut pending),
            Some(Key::Scroll(Scroll::PageDown))
        ));
        assert!(matches!(parse_key(&mut b"\x03".to_vec()), Some(Key::Quit)));
    }

    #[test]
    fn the_header_wraps_to_the_width_and_is_never_cut() {
        let parts: Vec<String> = ["stats-pipe top", "12:00:00 UTC", "sources 3 (3 ok)"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            wrap(&parts, 80),
            ["stats-pipe top  12:00:00 UTC  sources 3 (3 ok)"]
        );
        assert_eq!(
            wrap(&parts, 30),
            ["stats-pipe top  12:00:00 UTC", "sources 3 (3 ok)"]
        );
        assert_eq!(wrap(&parts, 10), ["stats-pip…", "12:00:00 …", "sources 3…"]);
    }

    #[test]
    fn the_screen_scrolls_and_fits_its_width() {
        let text: String = (0..50).map(|i| format!("stat.{i:02}: {i}\n")).collect();
        let pass = Pass {
            started: std::time::UNIX_EPOCH,
            duration: Duration::ZERO,
            sources: Vec::new(),
            merged: stats_core::Snapshot::parse(text.as_bytes(), 1 << 20).0,
            kinds: Default::default(),
        };
        let mut history = History::new(HistoryOptions::new());
        history.record(&pass);
        let mut view = View {
            sort: SortBy::Name,
            per_process: false,
            size: (20, 60),
            scroll: 0,
        };
        let visible =
            |frame: &str| -> Vec<String> { frame.split("\r\n").map(strip_escapes).collect() };
        let top = visible(&render_screen(&pass, &history, &mut view));
        assert!(top.iter().any(|l| l.starts_with("stat.00 ")), "{top:#?}");
        assert!(top.iter().any(|l| l.contains("rows 1-")), "{top:#?}");
        view.scroll = usize::MAX;
        let end = visible(&render_screen(&pass, &history, &mut view));
        assert!(end.iter().any(|l| l.starts_with("stat.49 ")), "{end:#?}");
        assert!(!end.iter().any(|l| l.starts_with("stat.00 ")), "{end:#?}");
        assert!(
            end.iter().any(|l| l.starts_with("rows 35-50 of 50 ")),
            "{end:#?}"
        );
        assert!(view.scroll < 50 && view.scroll > 30, "{}", view.scroll);
        for line in top.iter().chain(&end) {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
    }

    fn strip_escapes(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: up to the final byte.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) && c != '[' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
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
