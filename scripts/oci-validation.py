#!/usr/bin/env python3
"""The OCI runtime-tools validation suite against capexec-oci and runc, in
one run: every validation program under each runtime in turn (alternating
which goes first), each in a session of its own under a timeout, with its
TAP output counted. Prints a summary; `--json FILE` writes the results for
tests/oci_validation.rs, `--write` the table in docs/oci-validation.md.

The suite comes from ../shared/vendor/runtime-tools-260e151.tar.gz (Go
dependencies vendored; built offline with Debian's Go 1.19, see
../shared/vendor/README.md) and is built once into target/. Each runtime
keeps its containers in a state directory of this run's (`--root`), and
whatever a program leaves there is deleted by force after it.

Usage: scripts/oci-validation.py [--capexec-oci PATH] [--runc PATH]
       [--timeout S] [--only PROGRAM]... [--json FILE] [--write]
As root.
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tarfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARBALL = "runtime-tools-260e151.tar.gz"
TAP = re.compile(r"^(ok|not ok) \d+(?: - (.*?))?(?: # .*)?$")


def tarball():
    env = os.environ.get("CAPEXEC_RUNTIME_TOOLS")
    for p in ([Path(env)] if env else []) + [ROOT.parent / "shared/vendor" / TARBALL, Path("/work/shared/vendor") / TARBALL]:
        if p.is_file():
            return p
    sys.exit(f"oci-validation: {TARBALL} not found in ../shared/vendor (or set CAPEXEC_RUNTIME_TOOLS to its path)")


def build(work):
    """Extracts and builds the suite once; returns its directory."""
    src = work / "runtime-tools"
    if (src / "runtimetest").is_file() and (src / "validation/default/default.t").is_file():
        return src
    if not shutil.which("go"):
        sys.exit("oci-validation: go is not installed (apt-get install golang-go; scripts/install-test-deps.sh installs it)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(tarball()) as t:
        t.extractall(work)
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GOCACHE=str(work / "go-cache"), GOPATH=str(work / "go"))
    p = subprocess.run(["make", "runtimetest", "validation-executables"], cwd=src, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"oci-validation: building runtime-tools failed:\n{p.stdout}\n{p.stderr}")
    return src


def wrapper(work, name, real):
    """A runtime command with a state directory of this run's."""
    state = work / f"state-{name}"
    state.mkdir(parents=True, exist_ok=True)
    w = work / "bin" / name
    w.parent.mkdir(parents=True, exist_ok=True)
    w.write_text(f'#!/bin/sh\nexec {real} --root {state} "$@"\n')
    w.chmod(0o755)
    return w, state


def parse(text):
    passed, failed = {}, {}
    for line in text.splitlines():
        m = TAP.match(line)
        if m:
            d = passed if m.group(1) == "ok" else failed
            d[m.group(2) or ""] = d.get(m.group(2) or "", 0) + 1
    return passed, failed


def bundle_mounts():
    """Mount points in this (the host's) mount namespace under the
    runtime-tools bundles (/tmp/ocitest*): what a runtime mounted there
    outlives its container, as runc's mounts for a config without a mount
    namespace do."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [m for m in points if m.startswith("/tmp/ocitest")]


def run_one(src, program, runtime, state, timeout):
    before = set(bundle_mounts())
    t0 = time.monotonic()
    p = subprocess.Popen([str(program)], cwd=src, env=dict(os.environ, RUNTIME=str(runtime)), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        # The program's own session: nothing of ours is in it.
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        status = "timeout"
    elapsed = time.monotonic() - t0
    # What the program left: deleted by force (its processes go with it).
    for c in sorted(state.iterdir()) if state.is_dir() else []:
        subprocess.run([str(runtime), "delete", "--force", c.name], capture_output=True)
    # Mounts the runtime left in the host's namespace: counted, then
    # undone (deepest first), so that they neither pile up on the machine
    # (every later mount namespace copies them) nor count against the next.
    mounts = [m for m in bundle_mounts() if m not in before]
    for _ in range(5):
        now = [m for m in bundle_mounts() if m not in before]
        if not now:
            break
        for m in sorted(set(now), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", m], capture_output=True)
    # The bundles whose cleanup those mounts defeated, once nothing is
    # mounted in them (never through a mount into the host's files).
    still = bundle_mounts()
    for bundle in {"/".join(m.split("/")[:3]) for m in mounts}:
        if not any(m == bundle or m.startswith(bundle + "/") for m in still):
            shutil.rmtree(bundle, ignore_errors=True)
    text = out.decode(errors="replace")
    passed, failed = parse(text)
    return {"ok": sum(passed.values()), "not_ok": sum(failed.values()), "passed": passed, "status": status,
            "seconds": round(elapsed, 1), "left": [c.name for c in state.iterdir()] if state.is_dir() else [],
            "mounts_left": mounts, "tail": text[-2000:]}


def table(results, meta):
    rows = ["| program | runc ok | runc not ok | capexec-oci ok | capexec-oci not ok | runc passes, capexec-oci not |",
            "|---|---|---|---|---|---|"]
    tot = {"runc": [0, 0], "capexec-oci": [0, 0]}
    missing_total = 0
    for prog, r in sorted(results.items()):
        a, b = r["runc"], r["capexec-oci"]
        missing = sum(max(0, n - b["passed"].get(d, 0)) for d, n in a["passed"].items())
        missing_total += missing
        for k, v in (("runc", a), ("capexec-oci", b)):
            tot[k][0] += v["ok"]
            tot[k][1] += v["not_ok"]
        note = lambda v: "" if v["status"] == 0 else f" (exit {v['status']})"
        rows.append(f"| {prog} | {a['ok']} | {a['not_ok']}{note(a)} | {b['ok']} | {b['not_ok']}{note(b)} | {missing or ''} |")
    rows.append(f"| **total** | **{tot['runc'][0]}** | **{tot['runc'][1]}** | **{tot['capexec-oci'][0]}** | **{tot['capexec-oci'][1]}** | **{missing_total}** |")
    return "\n".join(rows), tot, missing_total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capexec-oci", default=str(ROOT / "target/debug/capexec-oci"))
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--timeout", type=int, default=30)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--json")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--from-json", help="report the results of an earlier run (its --json) instead of running")
    a = ap.parse_args()
    t0 = time.monotonic()
    if a.from_json:
        results = json.loads(Path(a.from_json).read_text())
        elapsed = sum(r[k]["seconds"] for r in results.values() for k in r)
    else:
        if os.geteuid() != 0:
            sys.exit("oci-validation: run as root (the suite creates containers)")
        work = ROOT / "target/runtime-tools-260e151"
        src = build(work)
        runtimes = {name: wrapper(work, name, real) for name, real in (("runc", a.runc), ("capexec-oci", a.capexec_oci))}
        programs = sorted(src.glob("validation/*/*.t"))
        if a.only:
            programs = [p for p in programs if p.stem in a.only]
        results = {}
        for i, prog in enumerate(programs):
            order = list(runtimes) if i % 2 == 0 else list(reversed(runtimes))
            results[prog.stem] = {name: run_one(src, prog, *runtimes[name], a.timeout) for name in order}
        elapsed = time.monotonic() - t0
        # The cgroup tests' own directories (cgroupsPath /testdir/cgrouptest),
        # which runc leaves behind: empty, they go.
        for d in sorted(Path("/sys/fs/cgroup").glob("*/testdir/cgrouptest")) + sorted(Path("/sys/fs/cgroup").glob("*/testdir")):
            try:
                d.rmdir()
            except OSError:
                pass
    rows, tot, missing = table(results, None)
    # A program passes when it exits 0 with no `not ok` (a test of the suite).
    passes = lambda v: v["status"] == 0 and v["not_ok"] == 0
    clean = {k: sorted(p for p, r in results.items() if passes(r[k])) for k in ("runc", "capexec-oci")}
    behind = [p for p in clean["runc"] if p not in clean["capexec-oci"]]
    summary = (f"{len(results)} programs, {elapsed:.0f} s: runc {tot['runc'][0]} ok, {tot['runc'][1]} not ok; "
               f"capexec-oci {tot['capexec-oci'][0]} ok, {tot['capexec-oci'][1]} not ok; "
               f"{missing} checks runc passes and capexec-oci does not. "
               f"Programs passed whole (exit 0, no `not ok`): runc {len(clean['runc'])}, capexec-oci {len(clean['capexec-oci'])}; "
               f"runc passes and capexec-oci not: {', '.join(behind) or 'none'}. "
               f"Mounts left in the host's mount namespace (then undone by the script): "
               + "; ".join(f"{k} {sum(len(r[k].get('mounts_left', [])) for r in results.values())}"
                           + "".join(f" ({p})" for p, r in sorted(results.items()) if r[k].get("mounts_left"))
                           for k in ("runc", "capexec-oci")))
    print(rows)
    print(summary)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    if a.write:
        runc_version = subprocess.run([a.runc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        doc = ROOT / "docs/oci-validation.md"
        doc.write_text(f"""# capexec-oci against the OCI runtime-tools validation suite

Generated by `scripts/oci-validation.py --write` ({time.strftime('%Y-%m-%d')}, kernel {os.uname().release}):
opencontainers/runtime-tools at 260e151 (../shared/vendor), every validation program under
{runc_version} and under capexec-oci in the same run, each program under a {a.timeout} s timeout.
Counted are the TAP result lines (`ok`, `not ok`); "runc passes, capexec-oci not" counts the
checks (by description) runc passes that capexec-oci does not. tests/oci_validation.rs runs the
same in CI and fails when capexec-oci stops passing a check it passes in
integration-tests/data/oci-validation-baseline.json.

{summary}.

{rows}

Why capexec-oci fails what it fails, by group (docs/oci.md says what each config field becomes):

- **runc's checks that are no passes**: `process_capabilities_fail` asks for a capability that
  does not exist (`CAP_TEST`) and wants the runtime to fail ("MUST cause an error"); runc runs
  the container anyway (its checks count as `ok`, the program fails), capexec-oci refuses it
  by name, so neither passes the program and the checks runc counts are not capexec-oci's.
- **Deliberate**: a field capexec-oci does not know is refused rather than ignored, as it might
  ask for confinement that would not happen (`misc_props`, against the spec's MUST NOT); a
  container cannot mount (Landlock and
  capexec's filters forbid it), so `linux_rootfs_propagation`, which mounts from inside, fails
  its checks; `linux.resources.devices` is met by the view (a denied device node is on a
  `nodev` mount) instead of a devices cgroup, whose `devices.list` the cgroup programs read.
- **A race in the suite**: killsig signals `sh -c "trap ... SIG; ..."` as soon as `state` says
  running (its program exec'd, as `start` waits for); a shell that has not set its trap yet dies
  of the signal. capexec-oci answers `state` and `kill` fast enough that under load this now and
  then happens (runc, slower, gives the shell more time); tests/oci_validation.rs runs killsig
  again, up to twice, when it loses a check, and says so.
- **Not implemented yet, refused by name**: SELinux and AppArmor labels (`linux_mount_label`,
  `linux_process_apparmor_profile`), blkio, hugetlb and network cgroup limits (neither runtime
  passes those programs here).
""")


if __name__ == "__main__":
    main()
