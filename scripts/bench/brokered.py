#!/usr/bin/env python3
"""What a broker adds to a launch: `capexec run --net host -- /bin/true`
(a broker for its listens, so a view builder and the broker's Landlock
layer, docs/broker.md) against the same run with `--bind-tcp 0` (no
broker), and `unshare -Urmpinu --fork /bin/true` (the kernel's floor),
alternating run by run, medians and ratios. Writes the table to
docs/performance.md (between markers).

Usage: scripts/bench/brokered.py [--runs N] [--capexec PATH] [--no-write]
"""
import argparse, os, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spawn import ROOT, even_page_cache, timed, write_section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    c = a.capexec
    if not os.access(c, os.X_OK):
        sys.exit(f"brokered bench: {c} is missing: cargo build --release -p capexec")
    commands = [
        ("`capexec run --net host --bind-tcp 0 -- /bin/true` (no broker)", [c, "run", "--net", "host", "--bind-tcp", "0", "--", "/bin/true"]),
        ("`capexec run --net host -- /bin/true` (a broker, its view builder)", [c, "run", "--net", "host", "--", "/bin/true"]),
        ("`unshare -Urmpinu --fork /bin/true`", ["/usr/bin/unshare", "-Urmpinu", "--fork", "/bin/true"]),
    ]
    even_page_cache([c])
    # stderr: `--net host` says at start that connects need their ports.
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        for _, argv in commands:  # warm up
            for _ in range(20):
                timed(argv)
        t = {name: [] for name, _ in commands}
        for i in range(a.runs):
            order = commands if i % 2 == 0 else list(reversed(commands))
            for name, argv in order:
                t[name].append(timed(argv))
    finally:
        os.dup2(saved, 2)
    base = statistics.median(t[commands[0][0]])
    floor = statistics.median(t[commands[2][0]])
    rows = ["| command | median (ms) | p90 (ms) | vs no broker | vs the namespaces alone |", "|---|---|---|---|---|"]
    for name, _ in commands:
        v = sorted(t[name])
        m = statistics.median(v)
        rows.append(f"| {name} | {m:.2f} | {v[int(len(v) * 0.9)]:.2f} | {m / base:.2f} | {m / floor:.2f} |")
    uname = os.uname()
    broker = statistics.median(t[commands[1][0]]) - base
    table = "\n".join(rows) + (
        f"\n\n{a.runs} alternating runs each, {time.strftime('%Y-%m-%d')}, kernel {uname.release}, "
        f"{os.cpu_count()} CPUs, as {'root' if os.geteuid() == 0 else 'a user'}. A broker adds **{broker:.2f} ms** "
        f"to a launch (its view builder, its Landlock layer, its threads).\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "brokered", table)


if __name__ == "__main__":
    main()
