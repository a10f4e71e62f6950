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


def even_page_cache(paths):
    """Drops each file's pages from the page cache and reads it back whole,
    so that every binary compared starts from the same state. Without this,
    two copies of one binary differed by up to 7% in launch time (measured
    2026-12-03: the copy's pages, as written by cp or the linker, against
    pages read back by readahead)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            # Dirty pages (a binary just built or copied) are not dropped.
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)


def timed(argv):
    """Wall time of one run, measured around posix_spawn + waitpid (no shell)."""
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"spawn bench: {' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return (t1 - t0) / 1e6


def user_cpu(argv, comm, runs=200, freq=10000):
    """The launcher's own user-space CPU per launch, in ms: perf samples (at
    `freq` Hz, over `runs` launches) taken in user space in processes named
    `comm` (the launcher and its children until they exec the program), by
    instruction pointer. wait4's rusage cannot tell: on this kernel the
    user/system split is by timer ticks, and a 5 ms run gets none."""
    data = "/tmp/capexec-spawn-bench.perf"
    loop = f"for i in $(seq {runs}); do {' '.join(argv)} >/dev/null; done"
    subprocess.run(["perf", "record", "-q", "-F", str(freq), "-o", data, "--", "sh", "-c", loop], check=True, capture_output=True)
    out = subprocess.run(["perf", "report", "-i", data, "-n", "--sort", "comm,dso", "-q", "--stdio"], check=True, capture_output=True, text=True).stdout
    os.unlink(data)
    samples = loader = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[2] == comm and f[3] != "[kernel.kallsyms]":
            samples += int(f[1])
            if f[3].startswith("ld-linux"):
                loader += int(f[1])
    return samples / freq / runs * 1e3, loader / freq / runs * 1e3


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
    even_page_cache(sorted({os.path.realpath(argv[0]) for argv in cases.values()}))
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
    if subprocess.run(["which", "perf"], capture_output=True).returncode != 0:
        sys.exit("spawn bench: perf is not installed (apt-get install linux-perf): it measures user-space CPU")
    cap_user, cap_ld = user_cpu(cases["capexec run -- /bin/true"], "capexec")
    bw_user, bw_ld = user_cpu(cases["bwrap --unshare-all ... /bin/true"], "bwrap")
    true_user, true_ld = user_cpu(["/bin/true"], "true")
    uname = os.uname()
    table = "\n".join(rows) + (
        f"\n\n{a.runs} alternating runs each, {time.strftime('%Y-%m-%d')}, kernel {uname.release}, "
        f"{os.cpu_count()} CPUs. capexec/bwrap median ratio: **{cap / bw:.2f}**; capexec against "
        f"`unshare -Urmpinu --fork` (the same namespaces with nothing else, the kernel's floor here): "
        f"**{cap / floor:.2f}** (target ≤ 1.30). User-space CPU per launch (perf samples in "
        f"user space, the launcher and its children up to the program's exec, ld.so included; 200 launches each): "
        f"capexec {cap_user:.2f} ms, bwrap {bw_user:.2f} ms (target: capexec ≤ bwrap; "
        f"{'met' if cap_user <= bw_user else 'not met'}); of which in ld.so: capexec {cap_ld:.2f} ms, "
        f"bwrap {bw_ld:.2f} ms, and `/bin/true` alone spends {true_ld:.2f} ms there (its CPU feature "
        f"probes trap to the hypervisor).\n")
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
