#!/usr/bin/env python3
"""Per-call overhead of running a trivial s390x program, side by side in one run:

  vmexec (warm)      a call to a running guest
  qemu-user          qemu-s390x on the same static binary
  fresh VM per call  boot a guest, run the program, stop the guest
  vmexec (cold)      the first call: starts the supervisor and boots the guest

The cold and fresh-VM rows boot (VMEXEC_SNAPSHOT=0); bench/coldstart.py
measures cold starts from the image's memory snapshot against boots.

Usage: bench/overhead.py [--calls N] [--cold N] [--vmexec PATH]
Run from the source tree after `ninja -C build`. Prints a table and ratios.
Nothing here is asserted: these are measurements, not tests."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed with {r.returncode}: {r.stderr.decode()[-300:]}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    for tool in ("s390x-linux-gnu-gcc", "qemu-s390x", "qemu-system-s390x"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing; run scripts/install-deps")

    work = tempfile.mkdtemp(prefix="vmexec-bench-")
    env = dict(os.environ, XDG_RUNTIME_DIR=work, VMEXEC_IDLE_TIMEOUT="600")
    boot_env = dict(env, VMEXEC_SNAPSHOT="0")
    prog = os.path.join(work, "true-s390x")
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-static", "-o", prog, os.path.join(top, "tests/guest/probe.c")],
                   check=True)
    call = [a.vmexec, prog, "exit", "0"]
    stop = [a.vmexec, "stop", "s390x"]
    try:
        cold, fresh = [], []
        for _ in range(a.cold):
            subprocess.run(stop, env=env, capture_output=True)
            t = time.perf_counter()
            cold.append(timed(call, boot_env))
            timed(stop, env)
            fresh.append(time.perf_counter() - t)
        timed(call, env)  # the guest is up again: warm from here on
        warm = [timed(call, env) for _ in range(a.calls)]
        user = [timed(["qemu-s390x", prog, "exit", "0"], env) for _ in range(a.calls)]
        status = subprocess.run([a.vmexec, "status"], env=env, capture_output=True).stdout.decode().strip()
    finally:
        subprocess.run(stop, env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    w = statistics.median(warm)
    rows = [
        ("vmexec, warm guest", warm),
        ("qemu-user (qemu-s390x)", user),
        ("fresh VM per call (boot, run, stop)", fresh),
        ("vmexec, cold (first call, boots)", cold),
    ]
    print(f"trivial static s390x program; {a.calls} warm calls, {a.cold} cold; host: {os.cpu_count()} cpus")
    print(f"{'':40} {'median s':>9} {'min s':>8} {'x warm vmexec':>14}")
    for name, xs in rows:
        m = statistics.median(xs)
        print(f"{name:40} {m:9.3f} {min(xs):8.3f} {m / w:14.1f}")
    print(f"guest after the run: {status}")


if __name__ == "__main__":
    main()
