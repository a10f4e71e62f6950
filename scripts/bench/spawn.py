#!/usr/bin/env python3
"""Spawn benchmark: `capexec run` of /bin/true with full confinement against
`bwrap --unshare-all` doing the same, in one session, alternating the tools
run by run (so drift in machine load hits both alike). Reports medians and the
ratio, and writes the table to docs/performance.md (between markers).

Usage: scripts/bench/spawn.py [--runs N] [--capexec PATH] [--no-write]
"""
import argparse, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BWRAP = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
         "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
         "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "/bin/true"]


def timed(argv):
    """Wall time of one run, measured around posix_spawn + waitpid (no shell)."""
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"spawn bench: {' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return (t1 - t0) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    bwrap = subprocess.run(["which", "bwrap"], capture_output=True, text=True).stdout.strip()
    if not bwrap:
        sys.exit("spawn bench: bwrap is not installed (apt-get install bubblewrap)")
    cases = {
        "capexec run -- /bin/true": [a.capexec, "run", "--", "/bin/true"],
        "bwrap --unshare-all ... /bin/true": [bwrap] + BWRAP[1:],
        "unshare -Urmpinu --fork /bin/true": ["/usr/bin/unshare", "-Urmpinu", "--fork", "/bin/true"],
        "/bin/true (fork+exec only)": ["/bin/true"],
    }
    for argv in cases.values():  # warm up caches
        for _ in range(20):
            timed(argv)
    samples = {k: [] for k in cases}
    names = list(cases)
    for i in range(a.runs):
        order = names if i % 2 == 0 else list(reversed(names))
        for k in order:
            samples[k].append(timed(cases[k]))
    med = {k: statistics.median(v) for k, v in samples.items()}
    p90 = {k: statistics.quantiles(v, n=10)[8] for k, v in samples.items()}
    cap, bw = med["capexec run -- /bin/true"], med["bwrap --unshare-all ... /bin/true"]
    floor = med["unshare -Urmpinu --fork /bin/true"]
    rows = ["| command | median (ms) | p90 (ms) | vs bwrap | vs the namespaces alone |", "|---|---|---|---|---|"]
    for k in names:
        rows.append(f"| `{k}` | {med[k]:.2f} | {p90[k]:.2f} | {med[k] / bw:.2f} | {med[k] / floor:.2f} |")
    uname = os.uname()
    table = "\n".join(rows) + (
        f"\n\n{a.runs} alternating runs each, {time.strftime('%Y-%m-%d')}, kernel {uname.release}, "
        f"{os.cpu_count()} CPUs. capexec/bwrap median ratio: **{cap / bw:.2f}**; capexec against "
        f"`unshare -Urmpinu --fork` (the same namespaces with nothing else, the kernel's floor here): "
        f"**{cap / floor:.2f}** (target ≤ 1.30).\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "spawn", table)


def write_section(path, name, body):
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{body}{end}{tail}"
    else:
        text += f"\n{start}\n{body}{end}\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
