#!/usr/bin/env python3
"""CPU-bound code under vmexec (qemu-system, TCG) against qemu-user on the same
static binary, side by side in one run: bench/cpu-bound.c's loop of table
lookups, its qsort of 4M ints and its random reads over 4 MiB, for each
target given (s390x and aarch64 by
default). Runs alternate between the two so that the machine's load falls on
both alike. The target is vmexec at most 1.3x qemu-user (issue 13).

Each --alt NAME=VALUE adds a column: a guest of its own started with that
setting, e.g. --alt VMEXEC_TCG=thread=multi,tb-size=2048 or
--alt 'VMEXEC_QEMU_EXTRA=-cpu max' or --alt VMEXEC_APPEND=transparent_hugepage=always,
to try other settings against the targets table's.

Usage: bench/cpu.py [--targets s390x,aarch64] [--reps N] [--alt NAME=VALUE]...
                    [--vmexec PATH]
Nothing is asserted: these are measurements."""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from proccpu import cpu_seconds, qemu_pid

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# target: (cross compiler, qemu-user binary)
tools = {"s390x": ("s390x-linux-gnu-gcc", "qemu-s390x"), "aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64"),
         "armhf": ("arm-linux-gnueabihf-gcc", "qemu-arm"), "ppc64el": ("powerpc64le-linux-gnu-gcc", "qemu-ppc64le")}
works = (("lookup", "100"), ("qsort", "4"), ("random", "20"))


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, env, pid=None):
    """Wall time, CPU time and stdout of CMD. The CPU time is the command's
    own (qemu-user), or else that of process PID meanwhile (the guest's qemu,
    idle but for this call): unlike the wall time, it hardly grows with the
    machine's load."""
    before = cpu_seconds(pid) if pid else children_cpu()
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)}: status {r.returncode}: {r.stderr[-300:]}")
    cpu = (cpu_seconds(pid) if pid else children_cpu()) - before
    return wall, cpu, r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="s390x,aarch64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--alt", action="append", default=[], help="NAME=VALUE: a column with this setting")
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vmexec-bench-cpu-")
    os.chmod(work, 0o700)
    base = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(work, "rt"), VMEXEC_IDLE_TIMEOUT="600")
    os.mkdir(base["XDG_RUNTIME_DIR"], 0o700)
    configs = [("vmexec", base)]
    for i, setting in enumerate(a.alt):
        name, _, value = setting.partition("=")
        alt = dict(base, XDG_RUNTIME_DIR=os.path.join(work, f"rt-{i}"))
        alt[name] = value
        os.mkdir(alt["XDG_RUNTIME_DIR"], 0o700)
        configs.append((value, alt))
    print(f"CPU-bound, static binaries, {len(os.sched_getaffinity(0))} host cores, load "
          f"{os.getloadavg()[0]:.1f}; medians of {a.reps}; wall s / CPU s (qemu-user's own, the guest's qemu's)")
    print(f"{'target':8} {'work':11} {'qemu-user':>12}" + "".join(f" {n[:26]:>26}" for n, _ in configs)
          + "   (CPU ratio to qemu-user)")
    try:
        for target in a.targets.split(","):
            cc, user = tools[target]
            for tool in (cc, user):
                if not shutil.which(tool):
                    sys.exit(f"bench: {tool} is missing; run scripts/install-deps")
            prog = os.path.join(work, f"cpu-bound-{target}")
            subprocess.run([cc, "-O2", "-static", "-o", prog, os.path.join(top, "bench/cpu-bound.c")], check=True)
            pids = {}
            for name, env in configs:  # boot each guest before timing
                timed([a.vmexec, prog, "lookup", "0"], env)
                pids[name] = qemu_pid(a.vmexec, target, env)
            for what, n in works:
                runs = {"user": []} | {name: [] for name, _ in configs}
                sums = set()
                for _ in range(a.reps):
                    wall, cpu, out = timed([user, prog, what, n], base)
                    runs["user"].append((wall, cpu))
                    sums.add(out)
                    for name, env in configs:
                        wall, cpu, out = timed([a.vmexec, prog, what, n], env, pids[name])
                        runs[name].append((wall, cpu))
                        sums.add(out)
                if len(sums) != 1:
                    sys.exit(f"bench: different results for {what}: {sums}")
                med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                       for k, v in runs.items()}
                u = med["user"]
                cols = "".join(f" {med[name][0]:>8.2f} / {med[name][1]:5.2f} ({med[name][1] / u[1]:4.2f}x)"
                               for name, _ in configs)
                print(f"{target:8} {what + ' ' + n + 'M':11} {u[0]:>5.2f} / {u[1]:4.2f}{cols}")
            for _, env in configs:
                subprocess.run([a.vmexec, "stop", target], env=env, capture_output=True)
    finally:
        for _, env in configs:
            subprocess.run([a.vmexec, "stop", "--all"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
