#!/usr/bin/env python3
"""Per-call overhead of running a trivial s390x program, side by side in one run:

  vmexec (warm)      a call to a running guest, the share on (static and dynamic)
  qemu-user          qemu-s390x on the same static binary; the dynamic one
                     with -L /usr/s390x-linux-gnu
  fresh VM per call  boot a guest, run the program, stop the guest
  vmexec (cold)      the first call: starts the supervisor and boots the guest

and, as a test script calls programs, the static one with its output
written to a file in a shared tree (`./t > out`), against qemu-user: a new
file in the working directory each call (json-c's test scripts), and one
file next to the program, rewritten each call.

The cold and fresh-VM rows boot (VMEXEC_SNAPSHOT=0); bench/coldstart.py
measures cold starts from the image's memory snapshot against boots.

The warm calls and qemu-user's alternate, call by call, so that a load that
comes and goes on the machine hits both alike. Then --trace N more warm
calls with VMEXEC_TRACE=1: the median of each phase.

Usage: bench/overhead.py [--calls N] [--cold N] [--trace N] [--vmexec PATH]
Run from the source tree after `ninja -C build`. Prints medians and ratios.
Nothing here is asserted: these are measurements, not tests."""

import argparse
import os
import re
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


def timed_to(cmd, env, cwd, out):
    """One call from CWD with its stdout written to the file OUT."""
    t = time.perf_counter()
    with open(out, "wb") as f:
        r = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed with {r.returncode}: {r.stderr.decode()[-300:]}")
    return time.perf_counter() - t


def traced(cmd, env):
    """One call with VMEXEC_TRACE=1: its phases, {name: ms}, in order."""
    r = subprocess.run(cmd, env=dict(env, VMEXEC_TRACE="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    phases = {}
    for line in r.stderr.decode(errors="replace").splitlines():
        m = re.match(r"^\s+([\d.]+)  (.+)$", line)
        if m:
            phases[m[2]] = float(m[1])
    return phases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--trace", type=int, default=10)
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    a = ap.parse_args()
    for tool in ("s390x-linux-gnu-gcc", "qemu-s390x", "qemu-system-s390x"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing; run scripts/install-deps")

    work = tempfile.mkdtemp(prefix="vmexec-bench-")
    env = dict(os.environ, XDG_RUNTIME_DIR=work, VMEXEC_IDLE_TIMEOUT="600")
    boot_env = dict(env, VMEXEC_SNAPSHOT="0")
    prog = os.path.join(work, "true-s390x")
    dyn = os.path.join(work, "true-s390x-dynamic")
    probe = os.path.join(top, "tests/guest/probe.c")
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-static", "-o", prog, probe], check=True)
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-o", dyn, probe], check=True)
    call = [a.vmexec, prog, "exit", "0"]
    stop = [a.vmexec, "stop", "s390x"]
    user_static = ["qemu-s390x", prog, "exit", "0"]
    user_dyn = ["qemu-s390x", "-L", "/usr/s390x-linux-gnu", dyn, "exit", "0"]
    try:
        cold, fresh = [], []
        new_out = user_new_out = next_out = user_next_out = []
        for _ in range(a.cold):
            subprocess.run(stop, env=env, capture_output=True)
            t = time.perf_counter()
            cold.append(timed(call, boot_env))
            timed(stop, env)
            fresh.append(time.perf_counter() - t)
        timed(call, env)  # the guest is up again: warm from here on
        timed([a.vmexec, dyn, "exit", "0"], env)
        warm, user, warm_dyn, user_dyn_t = [], [], [], []
        for _ in range(a.calls):
            warm.append(timed(call, env))
            user.append(timed(user_static, env))
            warm_dyn.append(timed([a.vmexec, dyn, "exit", "0"], env))
            user_dyn_t.append(timed(user_dyn, env))
        # Output into the shared trees, as a test script writes it.
        cases = os.path.join(work, "cases")
        os.mkdir(cases)
        say = [prog, "puts", "a line"]
        new_out, user_new_out, next_out, user_next_out = [], [], [], []
        for i in range(a.calls):  # apart: a write next to the program makes every call's generation new
            new_out.append(timed_to([a.vmexec, *say], env, cases, os.path.join(cases, f"v{i}.out")))
            user_new_out.append(timed_to(["qemu-s390x", *say], env, cases, os.path.join(cases, f"u{i}.out")))
        for i in range(a.calls):
            next_out.append(timed_to([a.vmexec, *say], env, cases, prog + ".out"))
            user_next_out.append(timed_to(["qemu-s390x", *say], env, cases, prog + ".out"))
        traces = [traced(call, env) for _ in range(a.trace)]
        status = subprocess.run([a.vmexec, "status"], env=env, capture_output=True).stdout.decode().strip()
    finally:
        subprocess.run(stop, env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(f"trivial s390x program (tests/guest/probe.c exit 0); {a.calls} warm calls each, alternating; "
          f"{a.cold} cold; host: {os.cpu_count()} cpus")
    print(f"{'':44} {'median s':>9} {'min s':>8} {'x qemu-user':>12}")
    rows = [
        ("vmexec, warm guest, static", warm, user),
        ("qemu-user (qemu-s390x), static", user, user),
        ("vmexec, warm guest, dynamic", warm_dyn, user_dyn_t),
        ("qemu-user -L /usr/s390x-linux-gnu, dynamic", user_dyn_t, user_dyn_t),
        ("vmexec, static, > a new file in the cwd", new_out, user_new_out),
        ("qemu-user, static, > a new file in the cwd", user_new_out, user_new_out),
        ("vmexec, static, > a file by the program", next_out, user_next_out),
        ("qemu-user, static, > a file by the program", user_next_out, user_next_out),
        ("fresh VM per call (boot, run, stop)", fresh, user),
        ("vmexec, cold (first call, boots)", cold, user),
    ]
    for name, xs, base in rows:
        if xs:
            print(f"{name:44} {med(xs):9.3f} {min(xs):8.3f} {med(xs) / med(base):12.2f}")
    if traces:
        print(f"\nVMEXEC_TRACE=1, static, median of {len(traces)} warm calls (ms; the guest's phases on its clock):")
        for name in traces[0]:
            print(f"  {med([t.get(name, 0.0) for t in traces]):9.3f}  {name}")
    print(f"guest after the run: {status}")


if __name__ == "__main__":
    main()
