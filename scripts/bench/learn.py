#!/usr/bin/env python3
"""Mining benchmark and coverage table for `capexec learn` (issue 5).

For nginx, redis and memcached from Debian: mine a declaration from the
shipped unit with one workload (timed, median of --rounds), time the same
workload against the service under its shipped unit (`capexec exec`, the
enforced peer, in the same session), then judge a second, different workload
against the mined declaration with `capexec learn --check --json`. A row per
service, plus rows mined without the monitoring probe (INFO, stats) to show
what a workload that misses a code path costs. Writes the table into
docs/learning.md and docs/performance.md (between the bench:learn markers).

Run as root after `cargo build --release -p capexec` (or pass --capexec).
Usage: scripts/bench/learn.py [--rounds N] [--no-write] [--capexec PATH]
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402

MC = "--servers=127.0.0.1:11211"
NGINX_CHECK = ("curl -sf http://127.0.0.1:8080/ -o /dev/null && curl -sfI http://127.0.0.1:8080/ >/dev/null && "
               "curl -s -o /dev/null http://127.0.0.1:8080/nope && curl -sf -r 0-9 http://127.0.0.1:8080/ >/dev/null")
REDIS_CHECK = ("redis-cli HSET h f1 a f2 b && redis-cli HGETALL h && redis-cli SADD s x y && redis-cli SMEMBERS s && "
               "redis-cli SET t 1 EX 100 && redis-cli TTL t && redis-cli DBSIZE && redis-cli SAVE && "
               "redis-cli INFO && redis-cli DEL h s t")
MC_CHECK = (f"cd /etc && memcping {MC} && memccp {MC} hostname && memccat {MC} hostname && memcexist {MC} hostname && "
            f"memctouch {MC} --expire=100 hostname && memcrm {MC} hostname && memcstat {MC} && memcflush {MC}")
REDIS_MINE = "redis-benchmark -q -n 1000 -c 4"
MC_MINE = f"memcslap {MC} --concurrency=4 --execute-number=2000 && memcslap {MC} --concurrency=2 --execute-number=1000 --test=get"

# (label, unit, port, mining workload, check workload)
CASES = [
    ("nginx", "nginx.svc", 8080, "wrk -t2 -c8 -d2s http://127.0.0.1:8080/", NGINX_CHECK),
    ("redis", "redis.svc", 6379, f"{REDIS_MINE} && redis-cli INFO", REDIS_CHECK),
    ("memcached", "memcached.svc", 11211, f"{MC_MINE} && memcstat {MC}", MC_CHECK),
    ("redis, no INFO while mining", "redis.svc", 6379, REDIS_MINE, REDIS_CHECK),
    ("memcached, no stats while mining", "memcached.svc", 11211, MC_MINE, MC_CHECK),
]


def quiet(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"learn bench: port {port} did not come up")


def enforced_seconds(capexec, unit, port, workload):
    """The workload against the service under its shipped unit, start to stop."""
    t0 = time.monotonic()
    p = subprocess.Popen([capexec, "exec", str(unit)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    w = quiet(["/bin/sh", "-c", workload])
    if w.returncode != 0:
        sys.exit(f"learn bench: workload failed under capexec exec: {workload}\n{w.stderr}")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("learn bench: run as root (the services run as their own users)")
    if not Path(a.capexec).exists():
        sys.exit(f"learn bench: {a.capexec} is missing: cargo build --release -p capexec")
    work = Path(tempfile.mkdtemp(prefix="capexec-learn-bench-"))
    rows = []
    for label, unit_name, port, mine, check in CASES:
        unit = ROOT / "units" / unit_name
        mined = work / f"{label.split(',')[0]}.svc"
        learn_s, exec_s = [], []
        for _ in range(a.rounds):
            t0 = time.monotonic()
            r = quiet([a.capexec, "learn", str(unit), "--workload", mine, "--out", str(mined)])
            learn_s.append(time.monotonic() - t0)
            if r.returncode != 0:
                sys.exit(f"learn bench: mining {label} failed:\n{r.stderr[-3000:]}")
            exec_s.append(enforced_seconds(a.capexec, unit, port, mine))
        r = quiet([a.capexec, "learn", "--check", str(mined), "--workload", check, "--json"])
        rep = json.loads(r.stdout)
        distinct, refused = rep["distinct_syscalls"], [d["what"] for d in rep["syscalls"]]
        other = len(rep["files"]) + len(rep["network"])
        rows.append((label, mine, statistics.median(learn_s), statistics.median(exec_s), distinct, refused, other))
        print(f"{label}: mining {statistics.median(learn_s):.2f} s (enforced {statistics.median(exec_s):.2f} s); "
              f"check {distinct - len(refused)}/{distinct} syscalls, refused {refused}, files+network {other}", flush=True)

    body = [
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} CPUs) by `scripts/bench/learn.py` "
        f"(median of {a.rounds} rounds; release build). *Mining*: `capexec learn UNIT --workload W`, start to "
        "declaration written. *Same workload, enforced*: the same W against the service under its shipped unit "
        "(`capexec exec`), start to stop, in the same session. *Second workload*: a different client judged "
        "with `capexec learn --check` against the mined declaration.",
        "",
        "| service | mining workload | mining | same workload, enforced | second workload: syscalls allowed | refused syscalls | refused files + network |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for label, mine, ls, es, distinct, refused, other in rows:
        pct = 100.0 * (distinct - len(refused)) / distinct if distinct else 100.0
        shown = mine if len(mine) < 70 else mine[:67] + "..."
        body.append(f"| {label} | `{shown}` | {ls:.2f} s | {es:.2f} s | {distinct - len(refused)}/{distinct} ({pct:.1f}%) | "
                    f"{', '.join(refused) or 'none'} | {other} |")
    text = "\n".join(body) + "\n"
    print(text)
    if not a.no_write:
        for doc in ("docs/learning.md", "docs/performance.md"):
            write_section(ROOT / doc, "learn", text)


if __name__ == "__main__":
    main()
