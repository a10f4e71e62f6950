#!/usr/bin/env python3
"""OCI runtime benchmark: `podman run --rm --rootfs DIR /bin/true` through
capexec-oci against the same through runc, and each runtime's own
`run --bundle` of the same container (no engine), in one session,
alternating run by run. Reports medians and ratios and writes the table to
docs/performance.md (between markers). As root; needs podman, runc and
busybox-static (scripts/install-test-deps.sh).

Usage: scripts/bench/oci.py [--runs N] [--capexec-oci PATH] [--no-write]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402

# Asked of both runtimes alike: no network (podman's bridge would change the
# host's), limits root can set here (no CAP_SYS_RESOURCE on these machines).
PODMAN_RUN = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def timed(argv):
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if p.returncode != 0:
        sys.exit(f"oci bench: {' '.join(argv)} exited with {p.returncode}: {p.stderr.decode(errors='replace')}")
    return (t1 - t0) / 1e6


def bundle(base):
    """A busybox root filesystem and runc's default config running /bin/true."""
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin/busybox")
    os.symlink("busybox", rootfs / "bin/true")
    subprocess.run(["runc", "spec", "--bundle", str(base)], check=True)
    config = json.loads((base / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    (base / "config.json").write_text(json.dumps(config))
    return rootfs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--capexec-oci", default=str(ROOT / "target/release/capexec-oci"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("oci bench: run as root (podman and both runtimes run containers as root here)")
    for tool in ["podman", "runc"]:
        if not shutil.which(tool):
            sys.exit(f"oci bench: {tool} is not installed (scripts/install-test-deps.sh installs it)")
    runc = shutil.which("runc")
    base = Path(tempfile.mkdtemp(prefix="capexec-oci-bench-", dir="/var/tmp"))
    try:
        rootfs = bundle(base)
        podman = lambda rt: ["podman", "--runtime", rt, "run", "--rm"] + PODMAN_RUN + ["--rootfs", str(rootfs), "/bin/true"]
        cases = {
            "podman run --rm (capexec-oci)": podman(a.capexec_oci),
            "podman run --rm (runc)": podman(runc),
            "capexec-oci run": [a.capexec_oci, "--root", str(base / "state"), "run", "--bundle", str(base), "bench"],
            "runc run": [runc, "--root", str(base / "runc-state"), "run", "--bundle", str(base), "bench"],
        }
        for argv in cases.values():  # warm up caches
            for _ in range(3):
                timed(argv)
        samples = {k: [] for k in cases}
        names = list(cases)
        for i in range(a.runs):
            for k in (names if i % 2 == 0 else list(reversed(names))):
                samples[k].append(timed(cases[k]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    p90 = {k: statistics.quantiles(v, n=10)[8] for k, v in samples.items()}
    pair = {"podman run --rm (capexec-oci)": "podman run --rm (runc)", "capexec-oci run": "runc run"}
    rows = ["| command | median (ms) | p90 (ms) | vs runc |", "|---|---|---|---|"]
    for k in names:
        ref = pair.get(k, k)
        rows.append(f"| `{k}` | {med[k]:.1f} | {p90[k]:.1f} | {med[k] / med[ref]:.2f} |")
    ratio = med["podman run --rm (capexec-oci)"] / med["podman run --rm (runc)"]
    uname = os.uname()
    table = "\n".join(rows) + (
        f"\n\n{a.runs} alternating runs each, {time.strftime('%Y-%m-%d')}, kernel {uname.release}, {os.cpu_count()} CPUs, "
        f"podman {subprocess.run(['podman', '--version'], capture_output=True, text=True).stdout.split()[-1]}, "
        f"{subprocess.run([runc, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}; a busybox root filesystem, "
        f"`/bin/true`, podman with `{' '.join(PODMAN_RUN)}` for both. podman through capexec-oci against through runc: "
        f"**{ratio:.2f}** (target ≤ 1.00: {'met' if ratio <= 1.0 else 'not met'}).\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "oci", table)


if __name__ == "__main__":
    main()
