#!/usr/bin/env python3
"""Broker benchmark: the cost of a brokered call against the plain one, in one
session. A small program (integration-tests/src/bin/broker-bench.rs) times N
calls where it runs and prints the median and p99; this script runs it

  - on the host (plain open, plain connect: the peer),
  - in a capexec sandbox with the file in its static view (plain open under
    Landlock and seccomp),
  - in a sandbox whose file and connect grants make every open and connect go
    through the transparent broker (seccomp user notification),
  - in the same sandbox through capexec-client (explicit protocol),
  - and, as the floor, the same kernel round trips from a minimal C program
    with nothing of capexec around them (scripts/bench/broker-floor.c),

R rounds each, cases alternating in order round by round, and writes the table
to docs/performance.md (between markers). Run as root with a release build:

  cargo build --release -p capexec -p capexec-integration-tests
  scripts/bench/broker.py [--calls N] [--rounds R] [--no-write]
"""
import argparse, os, shutil, socket, statistics, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from spawn import write_section  # noqa: E402


def server():
    """A loopback TCP server that accepts and drops connections as fast as it can."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)

    def loop():
        while True:
            c, _ = s.accept()
            c.close()
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def run(argv):
    o = subprocess.run(argv, capture_output=True, text=True)
    if o.returncode != 0:
        sys.exit(f"broker bench: {' '.join(argv)} failed:\n{o.stdout}\n{o.stderr}")
    med, p99 = o.stdout.split()[-2:]
    return float(med), float(p99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("broker bench: run as root")
    rel = ROOT / "target/release"
    for b in ("capexec", "broker-bench"):
        if not (rel / b).exists():
            sys.exit(f"broker bench: {rel / b} is missing: cargo build --release -p capexec -p capexec-integration-tests")
    work = Path("/tmp/capexec-bench-broker")
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    (work / "data/file").write_text("benchmark\n")
    for b in ("capexec", "broker-bench"):
        shutil.copy(rel / b, work / b)
    floor = str(work / "broker-floor")
    subprocess.run(["cc", "-O2", "-o", floor, str(ROOT / "scripts/bench/broker-floor.c")], check=True)
    os.chmod(work, 0o755)
    port = server()
    unit = work / "bench.svc"
    unit.write_text(f'[namespaces]\nnet = "none"\n\n[[broker.fs]]\npath = "{work}/data/**"\nrights = ["read"]\n\n'
                    f'[broker.net]\nconnect = ["tcp:127.0.0.1:{port}"]\n')
    cap, bench, f, n = str(work / "capexec"), str(work / "broker-bench"), str(work / "data/file"), str(a.calls)
    cases = {
        "open(2), host (no sandbox)": [bench, "open", f, n],
        "open(2), sandbox, file in the static view": [cap, "run", "--ro", str(work / "data"), "--", bench, "open", f, n],
        "open(2), transparent broker (seccomp user notification)": [cap, "run", "--unit", str(unit), "--", bench, "open", f, n],
        "capexec-client open, explicit broker": [cap, "run", "--unit", str(unit), "--", bench, "explicit", f, n],
        "connect(2) to loopback, host (no sandbox)": [bench, "connect", str(port), n],
        "connect(2), net = none, transparent broker": [cap, "run", "--unit", str(unit), "--", bench, "connect", str(port), n],
        "capexec-client connect, explicit broker": [cap, "run", "--unit", str(unit), "--", bench, "explicit-connect", str(port), n],
        # The same two brokered opens with broker and service on one CPU: what
        # is left when no wakeup has to cross CPUs.
        "open(2), transparent broker, one CPU (taskset -c 0)": ["taskset", "-c", "0", cap, "run", "--unit", str(unit), "--", bench, "open", f, n],
        "capexec-client open, explicit broker, one CPU (taskset -c 0)": ["taskset", "-c", "0", cap, "run", "--unit", str(unit), "--", bench, "explicit", f, n],
        # The floor: the kernel's part of the same round trips on this machine.
        "floor (C): notify round trip, ADDFD+SEND of a preopened fd, no checks": [floor, "notify", n],
        "floor (C): notify + read the path, ID_VALID, open, ADDFD+SEND": [floor, "notify-work", n],
        "floor (C): notify + read the address, ID_VALID, pidfd_getfd, fdinfo, connect, ADDFD(SETFD), SEND": [floor, "notify-connect", n, str(port)],
        "floor (C): SEQPACKET request, reply with an fd (SCM_RIGHTS), 50 µs spin": [floor, "seqpacket", n],
        "floor (C): notify + read the path, ID_VALID, open, one CPU": ["taskset", "-c", "0", floor, "notify-work", n],
        "floor (C): SEQPACKET request and fd reply, one CPU": ["taskset", "-c", "0", floor, "seqpacket", n],
    }
    names = list(cases)
    res = {k: [] for k in names}
    for r in range(a.rounds):
        for k in (names if r % 2 == 0 else list(reversed(names))):
            res[k].append(run(cases[k]))
            print(f"round {r + 1}: {k}: median {res[k][-1][0]:.2f} µs, p99 {res[k][-1][1]:.2f} µs", flush=True)
    med = {k: statistics.median(m for m, _ in v) for k, v in res.items()}
    p99 = {k: statistics.median(p for _, p in v) for k, v in res.items()}
    plain_open, plain_conn = med[names[0]], med[names[4]]
    t_open, t_conn = med[names[2]], med[names[5]]
    open_floor = med["floor (C): notify + read the path, ID_VALID, open, ADDFD+SEND"]
    conn_floor = med["floor (C): notify + read the address, ID_VALID, pidfd_getfd, fdinfo, connect, ADDFD(SETFD), SEND"]
    # Issue 18's targets, for this machine as it is (2 CPUs); the one-CPU rows
    # explain, they are not the target. The explicit protocol keeps issue 3's.
    met = lambda ok: "met" if ok else "NOT met"
    targets = {
        names[2]: f"≤ 1.25 × its floor ({1.25 * open_floor:.1f} µs): {met(t_open <= 1.25 * open_floor)}",
        names[3]: f"≤ 20 µs: {met(med[names[3]] <= 20.0)}",
        names[5]: f"≤ transparent open + host connect ({t_open + plain_conn:.1f} µs): {met(t_conn <= t_open + plain_conn)}; "
                  f"≤ 1.25 × its floor ({1.25 * conn_floor:.1f} µs): {met(t_conn <= 1.25 * conn_floor)}",
    }
    rows = ["| call | median (µs) | p99 (µs) | vs the host's plain call | target (median) |", "|---|---|---|---|---|"]
    for k in names:
        base = plain_conn if "connect" in k else plain_open
        rows.append(f"| {k} | {med[k]:.2f} | {p99[k]:.2f} | {med[k] / base:.1f}× | {targets.get(k, '—')} |")
    uname = os.uname()
    table = "\n".join(rows) + (
        f"\n\n{a.calls} calls per run, {a.rounds} rounds with the cases alternating in order; the table gives the median of the "
        f"rounds' medians and of their p99s. Each open is followed by close(2) (not timed); each connect is closed with RST. "
        f"{time.strftime('%Y-%m-%d')}, kernel {uname.release}, {os.cpu_count()} CPUs, release build, as root.\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "broker", table)


if __name__ == "__main__":
    main()
