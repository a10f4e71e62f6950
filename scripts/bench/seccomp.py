#!/usr/bin/env python3
"""The cost of the seccomp allowlist's argument rules per call: a small C
program (seccomp.c) times getppid (no rule: the kernel's constant-action
cache answers it), sendto (the MSG_FASTOPEN rule) and openat+close (the
setuid/setgid rule) under `capexec run` and unconfined, alternating rounds,
medians. With --baseline OTHER_CAPEXEC (an earlier build) that build is a
third side. Writes the table into docs/performance.md.

Usage: scripts/bench/seccomp.py [--rounds N] [--calls N] [--baseline PATH] [--no-write]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402


def run(cmd):
    out = subprocess.run(["taskset", "-c", "0"] + cmd, capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000000)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--baseline")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="capexec-seccomp-bench-")
    os.chmod(d, 0o755)
    prog = os.path.join(d, "seccomp-bench")
    subprocess.run(["gcc", "-O2", "-o", prog, str(ROOT / "scripts/bench/seccomp.c")], check=True)
    sides = {"capexec": [a.capexec, "run", "--", prog, str(a.calls)], "unconfined": [prog, str(a.calls)]}
    if a.baseline:
        sides["baseline"] = [a.baseline, "run", "--", prog, str(a.calls)]
    samples = {k: [] for k in sides}
    for r in range(a.rounds):
        for k in (list(sides) if r % 2 == 0 else list(reversed(list(sides)))):
            samples[k].append(run(sides[k]))
    calls = list(samples["capexec"][0])
    med = {k: {c: statistics.median(s[c] for s in v) for c in calls} for k, v in samples.items()}
    # capexec - unconfined is the whole sandbox's cost per call (seccomp,
    # Landlock, the pid namespace's translations); capexec - baseline is what
    # the newer build's filter adds.
    head = "| call | capexec (ns) |" + (" baseline capexec (ns) |" if a.baseline else "") + " unconfined (ns) | sandbox's cost (ns) |" + (" added since the baseline (ns) |" if a.baseline else "")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in calls:
        base = f" {med['baseline'][c]:.1f} |" if a.baseline else ""
        added = f" {med['capexec'][c] - med['baseline'][c]:+.1f} |" if a.baseline else ""
        rows.append(f"| {c} | {med['capexec'][c]:.1f} |{base} {med['unconfined'][c]:.1f} | {med['capexec'][c] - med['unconfined'][c]:+.1f} |{added}")
    table = "\n".join(rows) + (
        f"\n\nMedians of {a.rounds} alternating rounds of {a.calls} calls ({a.calls // 10} for openat+close), "
        f"{time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, on CPU 0; `capexec run` with the default declaration."
        + (" The baseline is the build before the argument rules on socket, sendto/sendmsg/sendmmsg, setsockopt, chmod/open/mkdir/mknod and shmat." if a.baseline else "")
        + "\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "seccomp", table)


if __name__ == "__main__":
    main()
