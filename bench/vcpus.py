#!/usr/bin/env python3
"""Guest vCPUs: boot time, and the wall time of 16 concurrent calls of a
CPU-bound s390x program, with VMEXEC_CPUS=1 and 2 (multi-threaded TCG),
side by side in one run. This is the measurement behind the default.

Usage: bench/vcpus.py [--work MILLIONS] [--vmexec PATH]"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_all(cmds, env):
    t = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"bench: a call failed with {p.returncode}: {err.decode()[-300:]}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=int, default=20, help="millions of iterations per call")
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vmexec-bench-")
    prog = os.path.join(work, "probe-s390x")
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-static", "-o", prog, os.path.join(top, "tests/guest/probe.c")],
                   check=True)
    print(f"16 concurrent calls of 'probe spin {a.work}' (s390x, TCG) on {os.cpu_count()} host cpus")
    print(f"{'vCPUs':>6} {'boot + first call s':>20} {'1 call s':>9} {'16 concurrent s':>16}")
    try:
        for cpus in (1, 2):
            env = dict(os.environ, XDG_RUNTIME_DIR=work, VMEXEC_CPUS=str(cpus), VMEXEC_IDLE_TIMEOUT="600")
            subprocess.run([a.vmexec, "stop", "s390x"], env=env, capture_output=True)
            boot = run_all([[a.vmexec, prog, "exit", "0"]], env)
            one = run_all([[a.vmexec, prog, "spin", str(a.work)]], env)
            many = run_all([[a.vmexec, prog, "spin", str(a.work)]] * 16, env)
            print(f"{cpus:>6} {boot:>20.2f} {one:>9.2f} {many:>16.2f}")
            subprocess.run([a.vmexec, "stop", "s390x"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
