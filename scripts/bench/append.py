#!/usr/bin/env python3
"""What append-only costs (capexec-broker's append relay): a small C program
(append.c) writes N records of SIZE bytes to fd 3, under `capexec run` with
a `preopen.file` in `mode = "append"` (fd 3 is a pipe the broker copies to
the file) and with the same file preopened in `mode = "write"` (fd 3 is the
file itself, in the same sandbox), and unconfined with `3>>FILE`. Reports
the service's cost per write and the whole run's wall time (the broker
writes what is left before capexec exits, so the file is complete then;
the script checks it). Alternating rounds, medians. Writes the table into
docs/performance.md.

Usage: scripts/bench/append.py [--rounds N] [--records N] [--size BYTES] [--no-write]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402


def run(cmd, path, expect):
    # Empty before each run (`mode = "write"` writes from offset 0).
    os.truncate(path, 0)
    t0 = time.monotonic()
    p = subprocess.run(["taskset", "-c", "0"] + cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    size = os.path.getsize(path)
    assert size == expect, f"{cmd}: the file holds {size} bytes, not {expect}"
    vals = {line.split()[0]: float(line.split()[1]) for line in p.stdout.splitlines()}
    return vals["write"], wall * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="capexec-append-bench-", dir="/var/tmp")
    os.chmod(d, 0o755)
    prog = os.path.join(d, "append-bench")
    subprocess.run(["gcc", "-O2", "-o", prog, str(ROOT / "scripts/bench/append.c")], check=True)
    files = {k: os.path.join(d, f"{k}.log") for k in ("pipe", "file", "unconfined")}
    for f in files.values():
        Path(f).write_text("")
        os.chmod(f, 0o666)
    units = {}
    for k, mode in (("pipe", "append"), ("file", "write")):
        units[k] = os.path.join(d, f"{k}.svc")
        Path(units[k]).write_text(f'[[preopen.file]]\npath = "{files[k]}"\nmode = "{mode}"\n')
    n, size = str(a.records), str(a.size)
    sides = {
        "pipe": [a.capexec, "run", "--unit", units["pipe"], "--", prog, n, size],
        "file": [a.capexec, "run", "--unit", units["file"], "--", prog, n, size],
        "unconfined": ["sh", "-c", f'exec "$0" "$1" "$2" 3>>"$3"', prog, n, size, files["unconfined"]],
    }
    samples = {k: [] for k in sides}
    for r in range(a.rounds):
        for k in (list(sides) if r % 2 == 0 else list(reversed(list(sides)))):
            samples[k].append(run(sides[k], files[k], a.records * a.size))
    med = {k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)) for k, v in samples.items()}
    rows = [
        "| fd 3 is | per write (ns) | whole run (ms) |",
        "|---|---|---|",
        f"| a pipe to the file (`mode = \"append\"`, append-only) | {med['pipe'][0]:.0f} | {med['pipe'][1]:.1f} |",
        f"| the file itself, same sandbox (`mode = \"write\"`) | {med['file'][0]:.0f} | {med['file'][1]:.1f} |",
        f"| the file with O_APPEND, unconfined (`3>>FILE`) | {med['unconfined'][0]:.0f} | {med['unconfined'][1]:.1f} |",
    ]
    ratio = med["pipe"][1] / med["file"][1]
    table = "\n".join(rows) + (
        f"\n\nMedians of {a.rounds} alternating rounds of {a.records} writes of {a.size} bytes, {time.strftime('%Y-%m-%d')}, "
        f"kernel {os.uname().release}, on CPU 0 (the service and the broker's relay share it). Whole run: `capexec run` from start "
        f"until it exits, when the broker has written everything to the file (checked): {ratio:.2f} × the run that writes the file itself.\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "append", table)
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
