#!/usr/bin/env python3
"""Guest vCPUs, side by side in one run: for VMEXEC_CPUS=1, 2 and N (the host's
cores, the default), the boot (the first call), two CPU-bound calls of an s390x
program one after the other and the same two at once, and the guest's free
memory after boot, and how many of qemu's threads did the work of the two
calls at once (two: the runs were spread over the vCPUs). The default is
right when two calls at once take at most 0.65x the time of the two in a row
(issue 13).

Usage: bench/vcpus.py [--work MILLIONS] [--reps N] [--target T] [--vmexec PATH]
Nothing is asserted: these are measurements."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from proccpu import qemu_pid, thread_ticks

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
triplets = {"s390x": "s390x-linux-gnu", "aarch64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf",
            "ppc64el": "powerpc64le-linux-gnu"}


def run_all(cmds, env):
    """Start every command at once; the wall time until the last ends."""
    t = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"bench: a call failed with {p.returncode}: {err.decode()[-300:]}")
    return time.perf_counter() - t


def busy_threads(before, after):
    """How many of qemu's threads did a quarter or more of the work between
    BEFORE and AFTER: with two calls at once on two vCPUs, the two vCPU
    threads (the agent spreads the runs; nothing pins them to one CPU)."""
    delta = {t: after[t] - before.get(t, 0) for t in after}
    total = sum(delta.values()) or 1
    return sum(1 for d in delta.values() if d >= total / 4)


def guest_mem_mib(vm, target, env):
    r = subprocess.run([vm, "--target", target, "--", "cat", "/proc/meminfo"], env=env, capture_output=True, text=True)
    info = {l.split(":")[0]: int(l.split()[1]) // 1024 for l in r.stdout.splitlines() if l.endswith("kB")}
    return info.get("MemTotal", 0), info.get("MemAvailable", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=int, default=40, help="millions of table lookups per call")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each measurement (median)")
    ap.add_argument("--target", default="s390x", choices=sorted(triplets))
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vmexec-bench-")
    os.chmod(work, 0o700)
    prog = os.path.join(work, "cpu-bound")
    subprocess.run([triplets[a.target] + "-gcc", "-O2", "-static", "-o", prog, os.path.join(top, "bench/cpu-bound.c")],
                   check=True)
    call = [a.vmexec, prog, "lookup", str(a.work)]
    host = len(os.sched_getaffinity(0))
    print(f"two calls of 'cpu-bound lookup {a.work}' ({a.target}, TCG) on {host} host cores, "
          f"load {os.getloadavg()[0]:.1f}; medians of {a.reps}")
    print(f"{'vCPUs':>6} {'boot s':>7} {'1 call s':>9} {'2 in a row s':>13} {'2 at once s':>12} {'at once/in a row':>17}"
          f" {'busy threads':>13} {'guest MiB total/avail':>22}")
    try:
        for cpus in sorted({1, 2, host}):
            env = dict(os.environ, XDG_RUNTIME_DIR=work, VMEXEC_CPUS=str(cpus), VMEXEC_IDLE_TIMEOUT="600")
            subprocess.run([a.vmexec, "stop", a.target], env=env, capture_output=True)
            boot = run_all([call[:1] + [prog, "lookup", "0"]], env)
            total, avail = guest_mem_mib(a.vmexec, a.target, env)
            pid = qemu_pid(a.vmexec, a.target, env)
            one, seq, par, busy = [], [], [], []
            for _ in range(a.reps):
                one.append(run_all([call], env))
                t = time.perf_counter()
                run_all([call], env)
                run_all([call], env)
                seq.append(time.perf_counter() - t)
                before = thread_ticks(pid)
                par.append(run_all([call, call], env))
                busy.append(busy_threads(before, thread_ticks(pid)))
            one, seq, par = statistics.median(one), statistics.median(seq), statistics.median(par)
            print(f"{cpus:>6} {boot:>7.2f} {one:>9.2f} {seq:>13.2f} {par:>12.2f} {par / seq:>17.2f}"
                  f" {min(busy):>13} {total:>11}/{avail}")
            subprocess.run([a.vmexec, "stop", a.target], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
