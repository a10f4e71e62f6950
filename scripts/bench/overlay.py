#!/usr/bin/env python3
"""Overlay benchmark (issue 21): building a C project under `capexec run
--overlay DIR` against the same build unconfined, alternating, from a clean
tree each time (the layers discarded, the objects removed), medians and
their ratio; and `capexec diff --stat` of a layer holding 10,000 changed
files. Writes the table to docs/performance.md (between the bench:overlay
markers).

The project is generated: N C files of a few functions each, a header they
all include, and a Makefile (make -j2, gcc -O2), about what a small Debian
source package compiles. It lives in /var/tmp, which the overlaid view shows
through its /var overlay.

Targets (issue 21): the build at most 1.05 x unconfined (Mbox: 1.27 x);
diff --stat of 10,000 changed files under 1 s.

Usage (as root): scripts/bench/overlay.py [--files N] [--rounds R] [--capexec PATH] [--no-write]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from spawn import write_section  # noqa: E402


def project(src, files):
    src.mkdir(parents=True)
    (src / "common.h").write_text("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\nint checksum(const char *s);\n")
    for i in range(files):
        body = "".join(
            f"static int f{i}_{j}(int x) {{ int a[64]; for (int k = 0; k < 64; k++) a[k] = k * x + {j}; "
            f"int s = 0; for (int k = 0; k < 64; k++) s += a[k] ^ (s >> 3); return s; }}\n" for j in range(12))
        calls = " + ".join(f"f{i}_{j}(n)" for j in range(12))
        (src / f"m{i}.c").write_text(f'#include "common.h"\n{body}int m{i}(int n) {{ return {calls}; }}\n')
    mains = "".join(f"int m{i}(int);\n" for i in range(files))
    total = " + ".join(f"m{i}(argc)" for i in range(files))
    (src / "main.c").write_text(f'#include "common.h"\n{mains}int checksum(const char *s) {{ return (int)strlen(s); }}\n'
                                f'int main(int argc, char **argv) {{ (void)argv; printf("%d\\n", {total}); return 0; }}\n')
    objs = " ".join(f"m{i}.o" for i in range(files))
    (src / "Makefile").write_text(f"CFLAGS = -O2\nOBJS = main.o {objs}\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n"
                                  f"%.o: %.c common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\nclean:\n\trm -f prog *.o\n")


def timed(cmd, cwd):
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--capexec", default=str(ROOT / "target/release/capexec"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("overlay bench: run as root")
    work = Path(tempfile.mkdtemp(prefix="capexec-bench-overlay-", dir="/var/tmp"))
    try:
        src, box = work / "src", work / "box"
        project(src, a.files)
        make = ["make", "-j2", "-s", "prog"]
        native, overlaid = [], []
        for _ in range(a.rounds):
            subprocess.run(["make", "-s", "clean"], cwd=src, check=True)
            native.append(timed(make, src))
            subprocess.run(["make", "-s", "clean"], cwd=src, check=True)
            shutil.rmtree(box, ignore_errors=True)
            overlaid.append(timed([a.capexec, "run", "--overlay", str(box), "--", "/usr/bin/make", "-j2", "-s", "prog"], src))
        assert not (src / "prog").exists(), "the overlaid build wrote to the host"
        files = int(subprocess.run([a.capexec, "diff", "--json", str(box)], capture_output=True, text=True, check=True).stdout.count('"path"'))
        # diff --stat of 10,000 changed files.
        shutil.rmtree(box, ignore_errors=True)
        many = work / "many"
        many.mkdir()
        subprocess.run([a.capexec, "run", "--overlay", str(box), "--", "/bin/sh", "-c",
                        f"cd {many} && i=0; while [ $i -lt 100 ]; do mkdir d$i; j=0; while [ $j -lt 100 ]; do echo $i$j > d$i/f$j; j=$((j+1)); done; i=$((i+1)); done"],
                       check=True, stdin=subprocess.DEVNULL)
        stat = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            out = subprocess.run([a.capexec, "diff", "--stat", str(box)], capture_output=True, text=True, check=True).stdout
            stat.append(time.perf_counter() - t)
        assert out.startswith("10100 new"), out
    finally:
        subprocess.run([a.capexec, "discard", str(work / "box")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    n, o, s = statistics.median(native), statistics.median(overlaid), statistics.median(stat)
    body = (
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} CPUs) by `scripts/bench/overlay.py` "
        f"(release build, {a.rounds} alternating rounds, medians; as root).\n\n"
        "| what | unconfined | `capexec run --overlay` | ratio | target |\n|---|---|---|---|---|\n"
        f"| `make -j2` of a generated C project ({a.files + 1} files, gcc -O2; {files} files in the layer) | {n:.2f} s | {o:.2f} s | {o / n:.3f} | ≤ 1.05 (Mbox: 1.27) |\n"
        f"| `capexec diff --stat` of 10,100 changed files | | {s * 1000:.0f} ms | | < 1 s |\n"
    )
    print(body)
    if not a.no_write:
        write_section(ROOT / "docs/performance.md", "overlay", body)


if __name__ == "__main__":
    main()
