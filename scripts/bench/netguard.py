#!/usr/bin/env python3
"""The network guard's cost per call (cgroup BPF, capexec-sandbox's
netguard): a small C program (netguard.c) times a datagram sendto and a
connect+disconnect on a UDP socket, to a peer it received from, under
`capexec run` with a preopened host UDP socket and `net = "none"` (the guard
checks every such call) and under `capexec run --net host` with a socket of
its own (no guard; the same seccomp and Landlock), and unconfined. Alternating
rounds, medians. Root only (the guard needs it). Writes the table into
docs/performance.md.

Usage: sudo scripts/bench/netguard.py [--rounds N] [--calls N] [--no-write]
"""
import argparse, os, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402


def run(cmd, port):
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    # The datagram that makes this socket a peer the guard lets it answer.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.sendto(b"hi", ("127.0.0.1", port))
    out, _ = p.communicate(timeout=120)
    s.close()
    assert p.returncode == 0, out
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=200000)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--port", type=int, default=28953)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="capexec-netguard-bench-")
    os.chmod(d, 0o755)
    prog = os.path.join(d, "netguard-bench")
    subprocess.run(["gcc", "-O2", "-o", prog, str(ROOT / "scripts/bench/netguard.c")], check=True)
    unit = os.path.join(d, "bench.svc")
    Path(unit).write_text(f'[namespaces]\nnet = "none"\n\n[[preopen.listen]]\naddress = "udp:127.0.0.1:{a.port}"\n')
    n, port = str(a.calls), str(a.port)
    sides = {
        "guarded": [a.capexec, "run", "--unit", unit, "--", prog, n],
        "no guard": [a.capexec, "run", "--net", "host", "--", prog, n, port],
        "unconfined": [prog, n, port],
    }
    samples = {k: [] for k in sides}
    for r in range(a.rounds):
        for k in (list(sides) if r % 2 == 0 else list(reversed(list(sides)))):
            samples[k].append(run(sides[k], a.port))
    calls = list(samples["guarded"][0])
    med = {k: {c: statistics.median(s[c] for s in v) for c in calls} for k, v in samples.items()}
    rows = ["| call | guarded (ns) | same sandbox, no guard (ns) | unconfined (ns) | the guard's cost (ns) |", "|---|---|---|---|---|"]
    for c in calls:
        rows.append(f"| {c.replace('_', ' ')} | {med['guarded'][c]:.0f} | {med['no guard'][c]:.0f} | {med['unconfined'][c]:.0f} | {med['guarded'][c] - med['no guard'][c]:+.0f} |")
    table = "\n".join(rows) + (
        f"\n\nMedians of {a.rounds} alternating rounds of {a.calls} calls each, {time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, on CPU 0. "
        "Guarded: `capexec run` as root with a preopened `udp:` socket and `net = \"none\"`, so the guard's programs run on "
        "every call (sendmsg4 and the packet check, egress, for the datagram; connect4 for the connect; both look the peer up in the map recvmsg4 filled). "
        "No guard: `capexec run --net host`, the program's own socket. A connect+disconnect is two connect calls; only the first is checked.\n")
    print(table)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "netguard", table)


if __name__ == "__main__":
    main()
