#!/usr/bin/env python3
"""Cold start of a trivial static s390x program, side by side in one run:

  cold, snapshot present   no guest running; the supervisor restores the
                           image's memory snapshot (supervisor/snapshot.c)
  cold, no snapshot        the same with VMEXEC_SNAPSHOT=0: the guest boots

each to the program's exit, alternating, from a small working directory (the
working directory is shared: a big one would add its scan to both). Then
the snapshot's size on disk and what other formats would cost: its raw
stream and lz4 -1 against zstd -1, sizes and the CPU time to decompress
(the restore reads the stream through the decompressor).

Usage: bench/coldstart.py [--rounds N] [--vmexec PATH]
Run from the source tree after `ninja -C build`. Nothing here is asserted."""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env, cwd):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed with {r.returncode}: {r.stderr.decode()[-300:]}")
    return time.perf_counter() - t


def child_cpu(cmd, stdin, stdout):
    """CPU seconds (user + system) of running CMD to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdin=stdin, stdout=stdout, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def formats(snapshot, work, reps=5):
    """Rows (format, size, median CPU s to decompress) for zstd -1 (the
    snapshot), lz4 -1 and the raw stream."""
    raw, lz4 = os.path.join(work, "stream.raw"), os.path.join(work, "stream.lz4")
    with open(snapshot, "rb") as i, open(raw, "wb") as o:
        subprocess.run(["zstd", "-dcq"], stdin=i, stdout=o, check=True)
    rows = []
    have_lz4 = shutil.which("lz4") is not None
    if have_lz4:
        subprocess.run(["lz4", "-1", "-q", "-f", raw, lz4], check=True)
    cases = [("zstd -1 (used)", snapshot, ["zstd", "-dcq"]), ("raw", raw, ["cat"])]
    if have_lz4:
        cases.insert(1, ("lz4 -1", lz4, ["lz4", "-dcq"]))
    with open(os.devnull, "wb") as null:
        for name, path, cmd in cases:
            cpu = []
            for _ in range(reps):
                with open(path, "rb") as i:
                    cpu.append(child_cpu(cmd, i, null))
            rows.append((name, os.path.getsize(path), statistics.median(cpu)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    for tool in ("s390x-linux-gnu-gcc", "qemu-system-s390x", "zstd"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing; run scripts/install-deps")

    work = tempfile.mkdtemp(prefix="vmexec-bench-cold-")
    runtime = os.path.join(work, "runtime")
    os.mkdir(runtime, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="600")
    env.pop("VMEXEC_SNAPSHOT", None)
    boot_env = dict(env, VMEXEC_SNAPSHOT="0")
    prog = os.path.join(work, "true-s390x")
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-static", "-o", prog, os.path.join(top, "tests/guest/probe.c")],
                   check=True)
    call = [a.vmexec, prog, "exit", "0"]
    stop = [a.vmexec, "stop", "s390x"]
    log = os.path.join(runtime, "vmexec", "s390x", "supervisor.log")
    try:
        subprocess.run(stop, env=env, capture_output=True)
        first = timed(call, env, work)  # boots and saves the snapshot, unless the image has one
        with open(log) as f:
            text = f.read()
        m = re.search(r"snapshot saved to (\S+) in", text) or re.search(r"on the snapshot (\S+)\n", text)
        if not m:
            sys.exit(f"bench: no snapshot was saved or restored: {text[-500:]}")
        snapshot = m.group(1)
        snap, boot = [], []
        for _ in range(a.rounds):
            timed(stop, env, work)
            snap.append(timed(call, env, work))
            with open(log) as f:
                if "restored from" not in f.read():
                    sys.exit("bench: the cold start did not restore the snapshot (see " + log + ")")
            timed(stop, env, work)
            boot.append(timed(call, boot_env, work))
        timed(stop, env, work)
        rows = formats(snapshot, work)
    finally:
        subprocess.run(stop, env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    s = statistics.median(snap)
    print(f"trivial static s390x program, cold calls to its exit; {a.rounds} rounds; host: {os.cpu_count()} cpus; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':34} {'median s':>9} {'min s':>8} {'max s':>8} {'x snapshot':>11}")
    for name, xs in (("cold, snapshot present", snap), ("cold, no snapshot (boots)", boot)):
        m = statistics.median(xs)
        print(f"{name:34} {m:9.3f} {min(xs):8.3f} {max(xs):8.3f} {m / s:11.1f}")
    print(f"first call (boot, then save the snapshot, if none): {first:.3f} s")
    print(f"snapshot: {snapshot}")
    print(f"{'format':34} {'size MB':>9} {'decompress CPU s':>17}")
    for name, size, cpu in rows:
        print(f"{name:34} {size / 1e6:9.1f} {cpu:17.3f}")


if __name__ == "__main__":
    main()
