#!/usr/bin/env python3
"""A/B of capexec builds: `capexec run -- /bin/true` with each binary in
turn, alternating run by run, medians and ratios against the first. Each
binary's page cache is made alike first (see spawn.py's even_page_cache):
without that, two copies of the same binary differed by up to 7%.

Usage: scripts/bench/ab.py [--runs N] NAME=PATH NAME=PATH ...
"""
import argparse, statistics, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spawn import even_page_cache, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("builds", nargs="+", help="NAME=PATH of a capexec binary")
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.builds]
    if any(len(b) != 2 for b in builds):
        sys.exit("ab: give each build as NAME=PATH")
    even_page_cache([p for _, p in builds])
    for _, p in builds:  # warm up
        for _ in range(20):
            timed([p, "run", "--", "/bin/true"])
    t = {n: [] for n, _ in builds}
    for i in range(a.runs):
        order = builds if i % 2 == 0 else list(reversed(builds))
        for n, p in order:
            t[n].append(timed([p, "run", "--", "/bin/true"]))
    base = statistics.median(t[builds[0][0]])
    for n, _ in builds:
        m = statistics.median(t[n])
        print(f"{n:16s} median {m:.3f} ms  ratio {m / base:.3f}")


if __name__ == "__main__":
    main()
