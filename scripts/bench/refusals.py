#!/usr/bin/env python3
"""Denial-trail benchmark (issue 20): a service that loops on a refused call
must cost the daemon bounded memory and CPU. One `capexec daemon` (as root,
reading the kernel's audit records) runs a service that makes N refused
syscalls (mincore, outside the default allowlist) as fast as it can, then
sleeps. Measures the daemon's RSS before and after, its CPU time during the
flood (utime+stime from /proc), how many refusals the trail counted and how
many lines reached the service's log, and what the kernel reported lost
(audit's backlog is 64 records by default: what the kernel drops never
reaches any reader). Writes the table to docs/performance.md (between the
bench:refusals markers).

With --rootless USER the daemon runs as USER (`capexec daemon --user`):
there is no audit log, the daemon answers the service's refused calls
itself (a seccomp listener the launcher hands it) and counts their
repeats before they reach its event loop; the table goes between the
bench:refusals-rootless markers.

With --rootless USER --brokered the service has a broker (a read grant):
the kernel allows one listener in its filter chain, the broker's, so the
broker answers the refused calls and counts their repeats, and the daemon
reads its reports; the CPU is then the broker's, the launcher's and the
daemon's together (bench:refusals-rootless-brokered markers).

Target (issue 20): 1 million refusals in a minute at bounded daemon RSS and CPU.

Usage (as root): scripts/bench/refusals.py [--calls N] [--capexec PATH] [--rootless USER [--brokered]] [--no-write]
"""
import argparse, json, os, pwd, shutil, socket, struct, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402
from daemon import ctl, rss_kib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def tree(pid):
    """`pid` and every process below it."""
    children = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def capexec_cpu(daemon, service):
    """CPU seconds of the daemon and its processes (launcher, broker), the service's left out."""
    total = 0.0
    for p in tree(daemon):
        if p in service:
            continue
        try:
            total += cpu_secs(p)
        except OSError:
            pass
    return total


def audit_lost():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)
    s.bind((0, 0))
    s.send(struct.pack("IHHII", 16, 1000, 1, 1, 0))
    data = s.recv(65536)
    return struct.unpack("IIIIIIII", data[16:48])[6]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--rootless", metavar="USER", help="run the daemon as USER, with no audit log")
    ap.add_argument("--brokered", action="store_true", help="with --rootless: the service has a broker, which answers the refusals")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if a.brokered and not a.rootless:
        sys.exit("refusals bench: --brokered goes with --rootless (as root the audit log tells the refusals, broker or not)")
    if os.geteuid() != 0:
        sys.exit("refusals bench: run as root (the audit log needs it; --rootless needs it to become the user)")
    work = Path(tempfile.mkdtemp(prefix="capexec-bench-refusals-"))
    os.chmod(work, 0o755)
    units = work / "units"
    units.mkdir()
    daemon = [a.capexec, "daemon"]
    if a.rootless:
        u = pwd.getpwnam(a.rootless)
        os.chown(work, u.pw_uid, u.pw_gid)
        os.chown(units, u.pw_uid, u.pw_gid)
        daemon = ["setpriv", "--reuid", str(u.pw_uid), "--regid", str(u.pw_gid), "--clear-groups",
                  "env", f"HOME={work}", f"XDG_RUNTIME_DIR={work}", a.capexec, "daemon", "--user"]
    prog = f"for (1..{a.calls}) {{ syscall(27, 0, 0, 0) }} print \"done\\n\"; STDOUT->flush; sleep 600;"
    grant = '[[broker.fs]]\npath = "/etc/**"\nrights = ["read"]\n' if a.brokered else ""
    (units / "flood.svc").write_text(f'[exec]\nargv = ["/usr/bin/perl", "-e", {json.dumps(prog)}]\n[service]\nrestart = "no"\n{grant}')
    sock = str(work / "run/control.sock")
    log = open(work / "daemon.log", "w")
    d = subprocess.Popen([*daemon, "--runtime-dir", str(work / "run"), "--state-dir", str(work / "state"),
                          "--log-dir", str(work / "logs"), "--log-files", "--unit-path", str(units), "--cgroup", f"capexec-bench-{os.getpid()}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        while not os.path.exists(sock):
            if d.poll() is not None:
                sys.exit(f"refusals bench: the daemon exited: {(work / 'daemon.log').read_text()}")
            time.sleep(0.005)
        time.sleep(0.2)
        lost = (lambda: 0) if a.rootless else audit_lost
        rss0, cpu0, lost0 = rss_kib(d.pid), cpu_secs(d.pid), lost()
        t0 = time.perf_counter()
        r = ctl(a.capexec, sock, "start", "flood")
        if r.returncode != 0:
            sys.exit(f"refusals bench: start: {r.stdout}{r.stderr}")
        if a.brokered:
            # The broker's CPU comes with the daemon's; the service's does not.
            run = json.loads(ctl(a.capexec, sock, "status", "--json", "flood").stdout)["result"][0]
            service = set(tree(run["init_pid"]))
            cpu0 = capexec_cpu(d.pid, service)
        out = work / "logs/flood.log"
        while "done" not in (out.read_text() if out.exists() else ""):
            if time.perf_counter() - t0 > 300:
                sys.exit("refusals bench: the flood did not end in 5 minutes")
            time.sleep(0.05)
        flood = time.perf_counter() - t0
        # Let the daemon take what the kernel still holds.
        time.sleep(1)
        rss1, cpu1, lost1 = rss_kib(d.pid), cpu_secs(d.pid), lost()
        if a.brokered:
            cpu1 = capexec_cpu(d.pid, service)
        st = json.loads(ctl(a.capexec, sock, "status", "--json", "flood").stdout)["result"][0]["denials"]
        lines = sum(1 for l in out.read_text().splitlines() if "refused by seccomp" in l)
        ctl(a.capexec, sock, "stop", "flood")
    finally:
        d.terminate()
        d.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    if a.rootless:
        # Who answers the refused calls, whose CPU is measured, and who counts the repeats.
        answerer, cpu, counts, section = (
            ("broker", "broker, launcher and daemon", "the broker counts the repeats, one report a second", "refusals-rootless-brokered")
            if a.brokered else ("daemon", "daemon", "repeats counted, one event a second", "refusals-rootless"))
        rows = [
            ("refused calls made", f"{a.calls:,}", f"in {flood:.1f} s, each answered by the {answerer}"),
            ("refusals the daemon counted", f"{st['total']:,}", f"{st['not_shown']:,} not written to the log"),
            ("lines in the service's log", f"{lines}", "at most 20 per 10 s"),
            (f"{cpu} CPU during the flood", f"{cpu1 - cpu0:.2f} s", f"{100 * (cpu1 - cpu0) / flood:.0f}% of one core"),
            ("daemon RSS before / after", f"{rss0 / 1024:.1f} / {rss1 / 1024:.1f} MiB", counts),
        ]
        return table(rows, section, a.no_write)
    rows = [
        ("refused calls made", f"{a.calls:,}", f"in {flood:.1f} s"),
        ("records the kernel dropped (audit backlog)", f"{lost1 - lost0:,}", "never reach any reader"),
        ("refusals the daemon counted", f"{st['total']:,}", f"{st['not_shown']:,} not written to the log"),
        ("records not read (the daemon's 8 MiB socket buffer overflowed)", f"{max(0, a.calls - st['total'] - (lost1 - lost0)):,}", "dropped for this reader only"),
        ("lines in the service's log", f"{lines}", "at most 20 per 10 s"),
        ("daemon CPU during the flood", f"{cpu1 - cpu0:.2f} s", f"{100 * (cpu1 - cpu0) / flood:.0f}% of one core"),
        ("daemon RSS before / after", f"{rss0 / 1024:.1f} / {rss1 / 1024:.1f} MiB", "the trail keeps 64 entries"),
    ]
    table(rows, "refusals", a.no_write)


def table(rows, section, no_write):
    body = "| measure | value | note |\n|---|---|---|\n" + "".join(f"| {m} | {v} | {n} |\n" for m, v, n in rows)
    print(body)
    if not no_write:
        write_section(ROOT / "docs/performance.md", section, body)


if __name__ == "__main__":
    main()
