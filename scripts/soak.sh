#!/usr/bin/env bash
# Soak test (not part of scripts/test.sh: it runs for minutes). N `pipe-writer
# --linger` processes, each fed ~50 stats (40 counters incremented every
# second, 10 gauges), are killed at random (SIGKILL or SIGTERM) and replaced,
# while `host-aggregator serve` collects every second, `cat`s read random
# pipes and `curl`s poll /stats, /metrics and /processes; `host-aggregator
# gc` runs every 10 s. Checks, each printed in the summary with its figures:
#
#   - no duplicated or torn snapshot accepted: every `cat` output is judged
#     by the envelope rules (FORMAT.md): one `#stats-pipe` line first, a last
#     `#end: N` line where N is its byte offset. Complete snapshots must come
#     from the PID their path names and never repeat (same PID, #seq, #time);
#     torn, doubled or empty reads are counted (a reader retries them);
#   - retained counters never decrease: the host-wide `soak.ticks` and
#     `soak.c.*` in /stats, across process exits (the aggregator retains an
#     exited process's last counter values); nor count twice: `soak.ticks`
#     stays at most the number of `soak.ticks += 1` lines fed;
#   - no fd or memory growth in the aggregator: VmRSS and open fds from /proc
#     after the warm-up (history rings full) against the end;
#   - no FIFO left by a dead process after gc: at the end, after one more gc,
#     every name in the pipe directory belongs to a live writer;
#   - the pipe directory never grows without bound: its largest entry count
#     against 4 names per live writer plus the dead writers' between gcs.
#
# Usage: scripts/soak.sh [--writers N] [--seconds S] [--restart-every S]
#                        [--cat-threads N]
#   defaults: 1000 writers, 600 s, each writer replaced every 60 s on
#   average, 4 cat threads. Quick run: scripts/soak.sh --writers 50 --seconds 30
# Exit status: 0 when every check passed, 1 otherwise. Needs python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p host-aggregator -p pipe-writer --bin host-aggregator --bin pipe-writer
export SOAK_PIPE_WRITER=$target/release/pipe-writer
export SOAK_AGGREGATOR=$target/release/host-aggregator
exec python3 - "$@" <<'PY'
import argparse, json, os, random, re, signal, subprocess, sys, tempfile, threading, time

p = argparse.ArgumentParser(prog="soak.sh")
p.add_argument("--writers", type=int, default=1000)
p.add_argument("--seconds", type=int, default=600)
p.add_argument("--restart-every", type=float, default=60.0, help="mean writer lifetime, s")
p.add_argument("--cat-threads", type=int, default=4)
args = p.parse_args()
WRITER, AGG = os.environ["SOAK_PIPE_WRITER"], os.environ["SOAK_AGGREGATOR"]
COUNTERS, GAUGES = 40, 10

root = tempfile.mkdtemp(prefix="stats-pipe-soak.")
pipes = os.path.join(root, "pipes")
os.mkdir(pipes)
stop = threading.Event()
lock = threading.Lock()
fig = dict(started=0, killed=0, termed=0, feed_dropped=0, cats=0, cat_complete=0, cat_empty=0,
           cat_incomplete=0, cat_foreign=0, cat_timeouts=0, cat_wrong_pid=0, cat_duplicates=0,
           curls=0, curl_errors=0, counter_decreases=0, ticks_fed=0, gc_runs=0, gc_removed=0, dir_max=0)
problems = []

def problem(text):
    with lock:
        if len(problems) < 20:
            problems.append(text)

# --- writers -----------------------------------------------------------------
writers = {}  # pid -> Popen

def start_writer():
    w = subprocess.Popen([WRITER, "--dir", pipes, "--linger"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.set_blocking(w.stdin.fileno(), False)
    lines = "".join(f"soak.g.{i:02}: {random.random():.3f}\n" for i in range(GAUGES))
    if feed(w, lines + tick_lines()):
        fig["ticks_fed"] += 1
    writers[w.pid] = w
    fig["started"] += 1

def tick_lines():
    return "soak.ticks += 1\n" + "".join(f"soak.c.{i:02} += {i + 1}\n" for i in range(COUNTERS - 1))

def feed(w, text):
    try:
        os.write(w.stdin.fileno(), text.encode())
        return True
    except (BlockingIOError, BrokenPipeError):
        fig["feed_dropped"] += 1
        return False

def replace(pid):
    w = writers.pop(pid)
    if random.random() < 0.5:
        w.kill(); fig["killed"] += 1
    else:
        w.terminate(); fig["termed"] += 1
    try:
        w.wait(timeout=5)
    except subprocess.TimeoutExpired:
        w.kill(); w.wait()
    w.stdin.close()
    start_writer()

# --- aggregator --------------------------------------------------------------
warm = max(5, min(90, args.seconds // 4))
points = max(2, warm // 2)  # history rings full well before the warm-up ends
agg = subprocess.Popen([AGG, "serve", "--listen", "127.0.0.1:0", "--pipe-dir", pipes,
                        "--interval", "1s", "--history-points", str(points)],
                       stdout=subprocess.PIPE, stderr=open(os.path.join(root, "serve.err"), "w"), text=True)
addr = agg.stdout.readline().strip().removeprefix("listening on http://")

def proc_figures(pid, samples=20):
    """VmRSS now, and the fewest open fds over `samples` looks 0.1 s apart:
    a pass in flight holds up to 64 pipes for a moment, a leak holds them
    for good, so one look could catch a pass (9 -> 36 seen) and the least
    of twenty cannot miss a leak."""
    fds = []
    for i in range(samples):
        if i:
            time.sleep(0.1)
        fds.append(len(os.listdir(f"/proc/{pid}/fd")))
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return rss, min(fds)

# --- readers -----------------------------------------------------------------
seen = set()

def judge(data, pid):
    """The envelope rules of FORMAT.md, written again here independently."""
    if not data:
        return "empty"
    if not data.startswith(b"#stats-pipe:"):
        return "incomplete" if (b"\n#end:" in data or b"#stats-pipe:" in data or data.startswith(b"#end")) else "foreign"
    if not data.endswith(b"\n"):
        return "incomplete"
    last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    m = re.fullmatch(rb"#end:\s*(\d+)\s*", data[last_start:])
    if not m or int(m.group(1)) != last_start or data.count(b"#stats-pipe:") != 1:
        return "incomplete"
    head = dict(re.findall(rb"^#(pid|seq|time):\s*(\S+)$", data[:last_start], re.M))
    if int(head.get(b"pid", b"-1")) != pid:
        with lock:
            fig["cat_wrong_pid"] += 1
        problem(f"cat of {pid}.stats got pid {head.get(b'pid')}")
    key = (pid, head.get(b"seq"), head.get(b"time"))
    with lock:
        if key in seen:
            fig["cat_duplicates"] += 1
            problem(f"snapshot {key} read twice")
        seen.add(key)
    return "complete"

def cat_loop():
    while not stop.is_set():
        names = [n for n in os.listdir(pipes) if re.fullmatch(r"\d+\.stats", n)]
        if not names:
            time.sleep(0.05); continue
        name = random.choice(names)
        r = subprocess.run(["timeout", "2", "cat", os.path.join(pipes, name)], capture_output=True)
        out = r.stdout
        with lock:
            fig["cats"] += 1
            # 124: nobody answered in 2 s (its writer was killed as we opened).
            fig["cat_timeouts"] += r.returncode == 124
        verdict = judge(out, int(name.split(".")[0]))
        with lock:
            fig["cat_" + verdict] += 1

last_counters = {}

def curl_loop():
    paths = ["/stats", "/stats", "/metrics", "/processes"]
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]; i += 1
        r = subprocess.run(["curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", f"http://{addr}{path}"],
                           capture_output=True)
        body, _, code = r.stdout.rpartition(b"\n")
        with lock:
            fig["curls"] += 1
        if r.returncode != 0 or code != b"200":
            with lock:
                fig["curl_errors"] += 1
            problem(f"curl {path}: exit {r.returncode}, HTTP {code.decode(errors='replace')}")
        elif path == "/stats":
            try:
                stats = json.loads(body)["stats"]
            except ValueError as e:
                with lock:
                    fig["curl_errors"] += 1
                problem(f"/stats is not JSON: {e}"); continue
            for name, value in stats.items():
                if not name.startswith(("soak.ticks", "soak.c.")):
                    continue
                before = last_counters.get(name)
                if before is not None and value < before:
                    with lock:
                        fig["counter_decreases"] += 1
                    problem(f"{name} went from {before} to {value}")
                last_counters[name] = value
        time.sleep(0.2)

# --- run ---------------------------------------------------------------------
def cleanup(*_):
    stop.set()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, cleanup)

t0 = time.time()
for _ in range(args.writers):
    start_writer()
print(f"soak: {args.writers} writers started in {time.time() - t0:.1f}s; aggregator on {addr}; "
      f"{args.seconds}s, warm-up {warm}s", flush=True)
threads = [threading.Thread(target=cat_loop, daemon=True) for _ in range(args.cat_threads)]
threads.append(threading.Thread(target=curl_loop, daemon=True))
for t in threads:
    t.start()

start = time.time()
start_fig = None
replace_p = 1.0 / args.restart_every
next_gc = start + 10
while not stop.is_set() and time.time() - start < args.seconds:
    tick = time.time()
    lines = tick_lines()
    for pid, w in list(writers.items()):
        fig["ticks_fed"] += feed(w, lines)
    for pid in list(writers):
        if random.random() < replace_p:
            replace(pid)
    fig["dir_max"] = max(fig["dir_max"], len(os.listdir(pipes)))
    if start_fig is None and tick - start >= warm:
        start_fig = proc_figures(agg.pid)
    if tick >= next_gc:
        r = subprocess.run([AGG, "gc", "--pipe-dir", pipes], capture_output=True, text=True)
        fig["gc_runs"] += 1
        fig["gc_removed"] += sum(1 for l in r.stdout.splitlines() if l.strip())
        next_gc = tick + 10
    if agg.poll() is not None:
        problem("the aggregator exited"); break
    time.sleep(max(0.0, 1.0 - (time.time() - tick)))
elapsed = time.time() - start
stop.set()
for t in threads:
    t.join(timeout=15)

end_fig = proc_figures(agg.pid) if agg.poll() is None else (0, 0)
if start_fig is None:
    start_fig = end_fig
health = json.loads(subprocess.run(["curl", "-s", "-m", "10", f"http://{addr}/healthz"],
                                   capture_output=True).stdout or b"{}")
# Final gc with every writer still running: what is left must be live.
subprocess.run([AGG, "gc", "--pipe-dir", pipes], capture_output=True)
leftovers = []
for name in os.listdir(pipes):
    m = re.fullmatch(r"\.?(\d+)\.stats(\.(\d+\.)?tmp)?", name)
    if m and int(m.group(1)) not in writers:
        leftovers.append(name)
final_entries = len(os.listdir(pipes))

for w in writers.values():
    w.terminate()
for w in writers.values():
    try:
        w.wait(timeout=10)
    except subprocess.TimeoutExpired:
        w.kill(); w.wait()
agg.terminate(); agg.wait()
subprocess.run(["rm", "-rf", root])

restarts = fig["killed"] + fig["termed"]
dir_bound = 4 * args.writers + 4 * (restarts * 10 / max(elapsed, 1)) + 16
checks = [
    ("no torn or duplicated snapshot accepted", fig["cat_wrong_pid"] == 0 and fig["cat_duplicates"] == 0),
    ("retained counters never decrease", fig["counter_decreases"] == 0 and len(last_counters) == COUNTERS),
    ("no counter counted twice (soak.ticks <= ticks fed)", (last_counters.get("soak.ticks") or 0) <= fig["ticks_fed"]),
    ("aggregator fds do not grow", end_fig[1] <= start_fig[1] + 8),
    ("aggregator RSS does not grow (within 20 % + 8 MiB)", end_fig[0] <= start_fig[0] * 1.2 + 8192),
    ("no FIFO of a dead process after gc", not leftovers),
    ("pipe directory bounded", fig["dir_max"] <= dir_bound and final_entries <= 4 * args.writers),
    ("HTTP answers all 200", fig["curl_errors"] == 0 and fig["curls"] > 0),
    ("aggregator up to the end", not any("exited" in p for p in problems)),
]
print(f"""
soak summary ({elapsed:.0f} s, {args.writers} writers, mean lifetime {args.restart_every:.0f} s)
  writer processes started   {fig['started']} ({restarts} restarts: {fig['killed']} SIGKILL, {fig['termed']} SIGTERM)
  feed lines dropped         {fig['feed_dropped']} (a writer's stdin full)
  aggregator passes          {health.get('passes')} (last: {health.get('ok_sources')} of {health.get('sources')} sources ok)
  cat reads                  {fig['cats']}: {fig['cat_complete']} complete, {fig['cat_empty']} empty, {fig['cat_incomplete']} torn/doubled/cut (rejected), {fig['cat_foreign']} foreign, {fig['cat_timeouts']} timed out
  cat wrong PID / duplicate  {fig['cat_wrong_pid']} / {fig['cat_duplicates']}
  curl requests / errors     {fig['curls']} / {fig['curl_errors']}
  counter decreases          {fig['counter_decreases']} (over {len(last_counters)} counters; soak.ticks ended at {last_counters.get('soak.ticks')} of {fig['ticks_fed']} fed)
  gc runs / names removed    {fig['gc_runs']} / {fig['gc_removed']}
  pipe dir entries           max {fig['dir_max']} (bound {dir_bound:.0f}), at the end after gc {final_entries}, dead leftovers {len(leftovers)}
  aggregator RSS             {start_fig[0]} kB after warm-up, {end_fig[0]} kB at the end
  aggregator open fds        {start_fig[1]} after warm-up, {end_fig[1]} at the end (least of 20 looks)""")
for name, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}")
for text in problems:
    print(f"  problem: {text}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
