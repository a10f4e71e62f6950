#!/usr/bin/env python3
"""Steady-state benchmark: a service under its capexec unit against the same
program unconfined, alternating rounds in one session. nginx serves a static
page (driven by wrk over loopback); redis answers SET/GET (redis-benchmark).
Reports median throughput and the ratio, and writes docs/performance.md.

Run as root. Usage: scripts/bench/services.py [--rounds N] [--seconds S] [--no-write]
                                              [--baseline OTHER_CAPEXEC] [--only nginx|redis]
--baseline adds a third side, the same unit under another capexec build (an
earlier commit's), in the same alternating rounds: a change's own cost,
separated from the round-to-round noise of the unconfined side.
--floor adds the unconfined program under a seccomp filter that allows every
syscall (scripts/bench/seccomp-allow.c): what any seccomp allowlist costs at
least, since every syscall of a filtered process takes the slower entry path.
"""
import argparse, os, re, signal, socket, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402


def wait_port(port, up=True, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    sys.exit(f"services bench: port {port} did not come {'up' if up else 'down'}")


def start(argv, port):
    p = subprocess.Popen(SERVER_CPU + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    time.sleep(0.3)
    return p


def stop(p, port):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    wait_port(port, up=False)


# The server runs on CPU 0 and the load generator on CPU 1: on a 2-CPU machine,
# letting them share both CPUs made round-to-round noise (±15%) larger than the
# effect being measured.
SERVER_CPU = ["taskset", "-c", "0"]
CLIENT_CPU = ["taskset", "-c", "1"]


def wrk(seconds):
    out = subprocess.run(CLIENT_CPU + ["wrk", "-t1", "-c32", f"-d{seconds}s", "http://127.0.0.1:8080/"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def redis_bench(requests):
    out = subprocess.run(CLIENT_CPU + ["redis-benchmark", "-p", "6379", "-q", "--csv", "-t", "set,get", "-n", str(requests), "-c", "50"],
                         capture_output=True, text=True, check=True).stdout
    vals = {}
    for line in out.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if f[0] in ("SET", "GET"):
            vals[f[0]] = float(f[1])
    return (vals["SET"] + vals["GET"]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--baseline", help="another capexec binary to compare with, in the same rounds")
    ap.add_argument("--only", choices=["nginx", "redis"])
    ap.add_argument("--floor", action="store_true", help="add the unconfined program under an allow-all seccomp filter")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("services bench: run as root (the units run nginx as www-data and redis as redis)")
    os.makedirs("/run/nginx", exist_ok=True)
    conf = str(ROOT / "units/nginx/nginx.conf")
    nginx_confined = [a.capexec, "exec", str(ROOT / "units/nginx.svc")]
    nginx_bare = ["/usr/sbin/nginx", "-c", conf, "-e", "stderr", "-g", "daemon off;"]
    # Exactly the unit's command line, so the only difference is the sandbox.
    redis_args = ["/etc/redis/redis.conf", "--daemonize", "no", "--logfile", "", "--pidfile", ""]
    redis_confined = [a.capexec, "exec", str(ROOT / "units/redis.svc")]
    redis_bare = ["runuser", "-u", "redis", "--", "/usr/bin/redis-server"] + redis_args

    workloads = [
        ("nginx", "nginx static page (wrk, 1 thread, 32 connections)", {"capexec": nginx_confined, "unconfined": nginx_bare}, 8080, lambda: wrk(a.seconds), "requests/s"),
        ("redis", "redis SET+GET (redis-benchmark, 50 clients)", {"capexec": redis_confined, "unconfined": redis_bare}, 6379, lambda: redis_bench(200000), "requests/s"),
    ]
    results = {}
    for key, name, cases, port, measure, unit in workloads:
        if a.only and key != a.only:
            continue
        if a.baseline:
            cases["baseline"] = [a.baseline] + cases["capexec"][1:]
        if a.floor:
            helper = "/tmp/capexec-seccomp-allow"
            subprocess.run(["cc", "-O2", "-o", helper, str(ROOT / "scripts/bench/seccomp-allow.c")], check=True)
            bare = cases["unconfined"]
            # After runuser: the filter is for the server, not for runuser.
            cases["seccomp only"] = bare[:4] + [helper] + bare[4:] if bare[0] == "runuser" else [helper] + bare
        samples = {k: [] for k in cases}
        for r in range(a.rounds):
            order = list(cases) if r % 2 == 0 else list(reversed(list(cases)))
            for k in order:
                p = start(cases[k], port)
                try:
                    samples[k].append(measure())
                finally:
                    stop(p, port)
        results[name] = (unit, {k: statistics.median(v) for k, v in samples.items()}, samples)
        print(name, {k: round(statistics.median(v)) for k, v in samples.items()}, {k: [round(x) for x in v] for k, v in samples.items()}, file=sys.stderr)

    def paired(samples, a_side, b_side):
        """Median of the rounds' own ratios: each round's two sides ran back to
        back, so a slow minute of the machine hits both; the ratio of the
        medians mixes rounds and carries that drift."""
        return statistics.median(x / y for x, y in zip(samples[a_side], samples[b_side]))

    if a.floor:
        rows = ["| workload | capexec (median) | unconfined (median) | unconfined, allow-all seccomp filter (median) | median of the rounds' ratios | the filter alone | capexec / the filter alone |",
                "|---|---|---|---|---|---|---|"]
    elif a.baseline:
        rows = ["| workload | capexec (median) | baseline capexec (median) | unconfined (median) | ratio of medians | median of the rounds' ratios | baseline's | capexec / baseline |",
                "|---|---|---|---|---|---|---|---|"]
    else:
        rows = ["| workload | capexec (median) | unconfined (median) | ratio of medians | median of the rounds' ratios |", "|---|---|---|---|---|"]
    for name, (unit, med, samples) in results.items():
        pr = paired(samples, "capexec", "unconfined")
        if a.floor:
            rows.append(f"| {name} | {med['capexec']:.0f} {unit} | {med['unconfined']:.0f} {unit} | {med['seccomp only']:.0f} {unit} | **{pr:.3f}** | "
                        f"{paired(samples, 'seccomp only', 'unconfined'):.3f} | {paired(samples, 'capexec', 'seccomp only'):.3f} |")
        elif a.baseline:
            rows.append(f"| {name} | {med['capexec']:.0f} {unit} | {med['baseline']:.0f} {unit} | {med['unconfined']:.0f} {unit} | {med['capexec'] / med['unconfined']:.3f} | **{pr:.3f}** | "
                        f"{paired(samples, 'baseline', 'unconfined'):.3f} | {paired(samples, 'capexec', 'baseline'):.3f} |")
        else:
            rows.append(f"| {name} | {med['capexec']:.0f} {unit} | {med['unconfined']:.0f} {unit} | {med['capexec'] / med['unconfined']:.3f} | **{pr:.3f}** |")
    table = "\n".join(rows) + (
        f"\n\n{a.rounds} alternating rounds per side ({a.seconds} s of wrk, 200000 redis-benchmark requests per test), "
        f"{time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, {os.cpu_count()} CPUs; load generator and server share "
        "the machine (server pinned to CPU 0, load generator to CPU 1). Both sides run the same command line and configuration (the unit's). "
        "Target: ratio ≥ 0.98, judged on the median of the rounds' ratios.\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "steady", table)


if __name__ == "__main__":
    main()
