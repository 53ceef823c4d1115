//! Live views end to end: `/history` from a live aggregator over real
//! writers, the dashboard in headless Chromium, and `top` in a tmux
//! terminal and on a plain pipe.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use stats_pipe_tests::live::{Browser, Feeder, TempDir, Tmux, artifacts_dir, wait_for};
use stats_pipe_tests::serve::{Aggregator, workspace_binary};

/// Feeds writers from a thread until dropped: every 100 ms each adds to
/// `requests` and sets `temperature` to a new value.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Feeder>>>,
}

impl Traffic {
    fn start(mut feeders: Vec<Feeder>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut step = 0u64;
            while !stopping.load(Ordering::SeqCst) {
                step += 1;
                for (i, feeder) in feeders.iter_mut().enumerate() {
                    let i = i as u64 + 1;
                    feeder.send(&format!("requests += {}", 5 * i));
                    feeder.send(&format!("temperature: {}.5", 20 + (step + 7 * i) % 13));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            feeders
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // The feeders come back and are killed as they drop.
            let _ = thread.join();
        }
    }
}

fn history(aggregator: &Aggregator, query: &str) -> Value {
    let response = aggregator.get(&format!("/history?{query}"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// PIDs with a series of `stat` in a `/history` answer.
fn pids_of(body: &Value, stat: &str) -> Vec<u64> {
    body["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == stat)
        .flat_map(|s| s["processes"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["pid"].as_u64())
        .collect()
}

#[test]
fn history_serves_rates_and_collection_times_of_live_writers() {
    let dir = TempDir::new("history");
    let feeders = vec![Feeder::start(dir.path()), Feeder::start(dir.path())];
    let pids: Vec<u64> = feeders.iter().map(|f| u64::from(f.pid())).collect();
    let traffic = Traffic::start(feeders);
    let aggregator = Aggregator::serve(dir.path(), &["--interval", "200ms"]);
    let body = wait_for("3 points of both writers", Duration::from_secs(30), || {
        let body = history(&aggregator, "stat=req*");
        let times = body["times"].as_array().map_or(0, Vec::len);
        let mut seen = pids_of(&body, "requests");
        seen.sort_unstable();
        let mut want = pids.clone();
        want.sort_unstable();
        if times >= 3 && seen == want {
            Ok(body)
        } else {
            Err(body.to_string())
        }
    });
    let stat = &body["stats"][0];
    assert_eq!(stat["name"], "requests");
    assert_eq!(stat["counter"], true);
    // Times are real collection times: increasing, ~200 ms apart, recent.
    let times: Vec<f64> = body["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - times[times.len() - 1]).abs() < 10.0);
    let gap = times[times.len() - 1] - times[times.len() - 2];
    assert!(
        (0.1..2.0).contains(&gap),
        "gap {gap} s for a 200 ms interval"
    );
    // The host rates are never negative and integrate exactly to what was
    // counted: sum(rate[i] * (t[i] - t[i-1])) == total[last] - total[first].
    let floats = |v: &Value| -> Vec<Option<f64>> {
        v.as_array().unwrap().iter().map(Value::as_f64).collect()
    };
    let rates = floats(&stat["total"]["rates"]);
    let totals = floats(&stat["total"]["values"]);
    assert!(rates.iter().flatten().all(|r| *r >= 0.0), "{rates:?}");
    let counted: f64 = (1..times.len())
        .map(|i| rates[i].expect("a rate after the first point") * (times[i] - times[i - 1]))
        .sum();
    let grown = totals[times.len() - 1].unwrap() - totals[0].unwrap();
    assert!(grown > 0.0);
    assert!(
        (counted - grown).abs() < 1e-6 * grown,
        "{counted} vs {grown}"
    );
    // The host rate is the sum of the writers' rates at every point.
    let processes = stat["processes"].as_array().unwrap();
    for (i, rate) in rates.iter().enumerate().skip(1) {
        let sum: f64 = processes
            .iter()
            .map(|p| floats(&p["rates"])[i].unwrap())
            .sum();
        assert!((sum - rate.unwrap()).abs() < 1e-9 * sum.max(1.0));
    }
    // temperature goes up and down: a gauge, no rates.
    // It falls every 1.3 s; until it first does, it may pass for a counter.
    let gauges = wait_for("temperature to be a gauge", Duration::from_secs(30), || {
        let body = history(&aggregator, "stat=temperature");
        if body["stats"][0]["counter"] == false {
            Ok(body)
        } else {
            Err(body.to_string())
        }
    });
    assert!(gauges["stats"][0]["total"].get("rates").is_none());
    // Filters: one PID, only points after `since`.
    let one = history(&aggregator, &format!("stat=requests&pid={}", pids[0]));
    assert_eq!(pids_of(&one, "requests"), [pids[0]]);
    // Between two points: serde_json's float parsing may be an ulp off,
    // so a point's own time is not a safe boundary.
    let since = (times[times.len() - 2] + times[times.len() - 1]) / 2.0;
    let recent = history(&aggregator, &format!("stat=requests&since={since}"));
    let recent_times = recent["times"].as_array().unwrap();
    assert!(!recent_times.is_empty());
    assert!(recent_times.iter().all(|t| t.as_f64().unwrap() > since));
    assert_eq!(aggregator.get("/history?pid=nope").status, 400);
    drop(traffic);
}

#[test]
fn dashboard_in_headless_chromium_charts_live_writers() {
    let dir = TempDir::new("dashboard");
    let feeders = vec![Feeder::start(dir.path()), Feeder::start(dir.path())];
    let pids: Vec<u64> = feeders.iter().map(|f| u64::from(f.pid())).collect();
    let traffic = Traffic::start(feeders);
    let aggregator = Aggregator::serve(dir.path(), &["--interval", "250ms"]);
    let browser = Browser::start();
    let url = format!(
        "http://{}/#stat=requests&stat=temperature",
        aggregator.addr()
    );
    browser.navigate(&url);

    // Both charts list both writers' PIDs plus the host total in their
    // legends, and the canvases have ink on them.
    let charted = r##"
        const out = {};
        for (const card of document.querySelectorAll(".card[data-stat]")) {
          const canvas = card.querySelector("canvas");
          const ctx = canvas.getContext("2d");
          const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
          let ink = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) ink++;
          out[card.dataset.stat] = {
            pids: Array.from(card.querySelectorAll(".legend [data-pid]")).map((e) => Number(e.dataset.pid)),
            total: card.querySelectorAll('.legend [data-series="total"]').length,
            ink: ink,
            mode: card.dataset.mode,
            value: card.querySelector(".number").dataset.value,
          };
        }
        return { cards: out, ready: window.__dashboardReady === true,
                 errors: window.__dashboardErrors || null,
                 sources: Array.from(document.querySelectorAll("#sources tbody tr[data-pid]")).map((r) => ({
                   pid: Number(r.dataset.pid), cells: Array.from(r.children).map((c) => c.textContent) })) };
    "##;
    let state = wait_for("charts of both writers", Duration::from_secs(60), || {
        let state = browser.execute(charted);
        let complete = ["requests", "temperature"].iter().all(|stat| {
            let card = &state["cards"][stat];
            let mut seen: Vec<u64> = card["pids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            seen.sort_unstable();
            let mut want = pids.clone();
            want.sort_unstable();
            seen == want && card["total"] == 1 && card["ink"].as_u64().unwrap_or(0) > 500
        });
        if complete && state["sources"].as_array().is_some_and(|s| s.len() == 2) {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    });
    assert_eq!(
        state["ready"], true,
        "the dashboard script did not finish: {state}"
    );
    assert_eq!(
        state["cards"]["requests"]["mode"], "rate",
        "counters chart rates"
    );
    assert_eq!(state["cards"]["temperature"]["mode"], "value");
    // The sources table shows each writer as ok with its process figures.
    for row in state["sources"].as_array().unwrap() {
        assert!(pids.contains(&row["pid"].as_u64().unwrap()), "{row}");
        let cells: Vec<&str> = row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cells[1], "ok", "{cells:?}");
        assert!(cells[5].ends_with("iB"), "RSS shown: {cells:?}");
        assert!(
            cells[9].ends_with('s') || cells[9].ends_with('m'),
            "uptime: {cells:?}"
        );
    }

    // A displayed value changes between two moments.
    let value_of = |stat: &str| browser.execute(charted)["cards"][stat]["value"].clone();
    let first = value_of("temperature");
    let requests_first = value_of("requests");
    let changed = wait_for(
        "a displayed value to change",
        Duration::from_secs(20),
        || {
            let now = value_of("temperature");
            if now != first && now != "" {
                Ok(now)
            } else {
                Err(format!("still {now}"))
            }
        },
    );
    assert_ne!(first, changed);
    assert_ne!(requests_first, Value::Null);

    std::thread::sleep(Duration::from_millis(1500));
    let png = browser.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    let path = artifacts_dir().join("dashboard.png");
    std::fs::write(&path, &png).expect("save the screenshot");
    eprintln!("dashboard screenshot: {}", path.display());

    // No JavaScript error, by the page's own hook or in the console.
    browser.assert_no_errors(&[]);
    drop(traffic);
}

#[test]
fn top_in_a_terminal_sees_values_change_and_quits_on_q() {
    let dir = TempDir::new("top");
    let mut feeder = Feeder::start(dir.path());
    let pid = feeder.pid();
    feeder.send("ticks: 1");
    feeder.send("served += 1");
    let top = workspace_binary("host-aggregator", "host-aggregator");
    let command = format!(
        "{} --pipe-dir {} top --interval 250ms; echo TOP-EXITED $?; sleep 60",
        top.display(),
        dir.path().display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    let value_of = |screen: &str, stat: &str| -> Option<String> {
        screen
            .lines()
            .find(|line| line.split_whitespace().next() == Some(stat))
            .and_then(|line| line.split_whitespace().nth(1).map(str::to_owned))
    };
    let screen = wait_for("top to show ticks", Duration::from_secs(30), || {
        let screen = tmux.capture();
        match value_of(&screen, "ticks") {
            Some(v) if v == "1" => Ok(screen),
            _ => Err(screen),
        }
    });
    assert!(screen.contains("stats-pipe top"), "{screen}");
    assert!(screen.contains("RATE/s"), "{screen}");
    // A live change shows up in place.
    feeder.send("ticks: 42");
    wait_for("top to show the new value", Duration::from_secs(30), || {
        let screen = tmux.capture();
        match value_of(&screen, "ticks") {
            Some(v) if v == "42" => Ok(()),
            _ => Err(screen),
        }
    });
    // `served` keeps counting: a rate appears for it.
    for _ in 0..10 {
        feeder.send("served += 10");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("a rate for the counter", Duration::from_secs(30), || {
        let screen = tmux.capture();
        let line = screen
            .lines()
            .find(|l| l.split_whitespace().next() == Some("served"));
        match line.and_then(|l| l.split_whitespace().nth(2)) {
            Some(rate) if rate.parse::<f64>().is_ok() => Ok(()),
            _ => Err(screen),
        }
    });
    // `p` adds a row per process.
    tmux.send_keys("p");
    wait_for("a per-process row", Duration::from_secs(30), || {
        let screen = tmux.capture();
        if screen.contains(&format!("pid {pid}")) {
            Ok(())
        } else {
            Err(screen)
        }
    });
    tmux.send_keys("q");
    let screen = wait_for("top to exit on q", Duration::from_secs(30), || {
        let screen = tmux.capture();
        if screen.contains("TOP-EXITED") {
            Ok(screen)
        } else {
            Err(screen)
        }
    });
    assert!(screen.contains("TOP-EXITED 0"), "{screen}");
    // The terminal was given back: off the alternate screen, so top's
    // frame is gone.
    assert!(!screen.contains("RATE/s"), "{screen}");
}

/// The first visible row and the last, and how many there are, from the
/// help line `rows A-B of N ...` of a `top` screen.
fn rows_shown(screen: &str) -> Option<(usize, usize, usize)> {
    let line = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("rows "))?;
    let (range, rest) = line.split_once(" of ")?;
    let (first, last) = range.split_once('-')?;
    let total = rest.split_whitespace().next()?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

#[test]
fn top_fits_an_80_column_terminal_and_scrolls_to_every_row() {
    let dir = TempDir::new("top-scroll");
    let mut feeder = Feeder::start(dir.path());
    for i in 0..60 {
        feeder.send(&format!("row.{i:02}: {i}"));
    }
    let top = workspace_binary("host-aggregator", "host-aggregator");
    let command = format!(
        "{} --pipe-dir {} top --interval 250ms --sort name; sleep 60",
        top.display(),
        dir.path().display()
    );
    // The issue's case: an 80-column terminal, rows far below the screen.
    let tmux = Tmux::start(&command, 80, 20);
    let wait_rows = |what: &str, want: &dyn Fn((usize, usize, usize)) -> bool| {
        wait_for(what, Duration::from_secs(30), || {
            let screen = tmux.capture();
            match rows_shown(&screen) {
                Some(shown) if want(shown) => Ok((screen, shown)),
                _ => Err(screen),
            }
        })
    };
    let (screen, (first, last, total)) =
        wait_rows("top to show its rows", &|(_, _, total)| total >= 60);
    assert_eq!(first, 1, "{screen}");
    // The header is whole (wrapped, not cut) and no line is wider than 80.
    for part in [
        "stats-pipe top",
        "UTC",
        "sources 1 (1 ok)",
        "ms",
        "sort: name",
        "per-process: off",
    ] {
        assert!(screen.contains(part), "{part:?} missing:\n{screen}");
    }
    let header: Vec<&str> = screen
        .lines()
        .take_while(|l| !l.starts_with("STAT"))
        .collect();
    assert!(
        !header.concat().contains('…'),
        "the header was cut:\n{screen}"
    );
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    let page = last - first + 1;
    assert!(page < total, "{screen}");
    // End: the last row is on screen, the first is not.
    tmux.send_keys("End");
    let (screen, _) = wait_rows("End", &|(_, last, total)| last == total);
    assert!(screen.contains("row.59"), "{screen}");
    assert!(!screen.contains("row.00 "), "{screen}");
    // Home, then one row down, a page down and a page up.
    tmux.send_keys("Home");
    wait_rows("Home", &|(first, _, _)| first == 1);
    tmux.send_keys("Down");
    wait_rows("Down", &|(first, _, _)| first == 2);
    tmux.send_keys("NPage");
    let (_, (after_page_down, _, _)) = wait_rows("PgDn", &|(first, _, _)| first > 2);
    assert!(
        after_page_down > page / 2,
        "{after_page_down} after a page of {page}"
    );
    tmux.send_keys("PPage");
    wait_rows("PgUp", &|(first, _, _)| first == 2);
    tmux.send_keys("Up");
    let (screen, _) = wait_rows("Up", &|(first, _, _)| first == 1);
    assert!(!screen.contains("row.59"), "{screen}");
    drop(feeder);
}

#[test]
fn top_without_a_terminal_prints_plain_blocks() {
    let dir = TempDir::new("top-plain");
    let mut feeder = Feeder::start(dir.path());
    feeder.send("plain.stat: 7");
    let output = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .arg("--pipe-dir")
        .arg(dir.path())
        .args(["top", "--count", "2", "--interval", "200ms"])
        .stdin(Stdio::null())
        .output()
        .expect("run top");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.matches("stats-pipe top").count(), 2, "{text}");
    assert!(
        !text.contains('\x1b'),
        "no escape codes on a pipe: {text:?}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("plain.stat"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.split_whitespace().nth(1), Some("7"));
    drop(feeder);
}
