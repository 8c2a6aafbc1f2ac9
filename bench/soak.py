#!/usr/bin/env python3
"""Soak (issue 14): N sequential calls on one guest with the shared tree
changing between calls, then M concurrent calls; every call's output, status
and written-back file are checked. Before and after: the supervisor's open
fds and RSS, and the guest's process count.

Each sequential call I: the host writes in.txt ("in I"), the guest (the
image's busybox, so any target works) prints it and writes out.txt ("out I"),
which the write-back brings home. Each concurrent call J writes its own
c-J.txt. Exit status 1 if any call was wrong or a figure grew past a bound
(fds: any growth; RSS: 8 MiB; guest processes: any growth).

Usage: bench/soak.py [--vmexec PATH] [--target T] [--calls N] [--concurrent M]
(--vmexec defaults to $VMEXEC, else build/vmexec). The guest is its own
(a private XDG_RUNTIME_DIR), stopped at the end."""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def supervisor_pid(vmexec, env, target):
    """The supervisor's pid: the process whose argv is `vmexec __supervise TARGET`
    under this runtime directory (its control socket's owner)."""
    rt = os.path.join(env["XDG_RUNTIME_DIR"], "vmexec", target)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) > 2 and argv[1] == b"__supervise" and argv[2] == target.encode():
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if b"XDG_RUNTIME_DIR=" + env["XDG_RUNTIME_DIR"].encode() in f.read().split(b"\0"):
                        return int(pid)
        except OSError:
            continue
    sys.exit(f"soak: no supervisor for {target} under {rt}")


def figures(vmexec, env, target, cwd):
    """(supervisor fds, supervisor RSS KiB, guest processes)."""
    pid = supervisor_pid(vmexec, env, target)
    # The fewest over 2 s: the last call's connection may still be closing
    # (the caller exits on the run's end; the supervisor sees its EOF later).
    fds = []
    for _ in range(10):
        fds.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.2)
    fds = min(fds)
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])
    # The guest's processes other than the kernel's threads (no cmdline),
    # this shell and its ls: what earlier calls might have left. Not the
    # agent's process group holders (comm vmexec-holder), which it keeps
    # for later runs, a few at most.
    r = subprocess.run([vmexec, "--target", target, "--", "sh", "-c",
                        "n=0; for p in /proc/[0-9]*; do l=; c=; read -r l < $p/cmdline; read -r c < $p/comm; "
                        "[ -n \"$l\" ] && [ \"$c\" != vmexec-holder ] && n=$((n+1)); done; echo $n"],
                       env=env, cwd=cwd, capture_output=True, timeout=600)
    procs = int(r.stdout) if r.returncode == 0 and r.stdout.strip().isdigit() else -1
    return fds, rss, procs


def call(vmexec, env, target, cwd, script, timeout=900):
    try:
        return subprocess.run([vmexec, "--target", target, "--share", cwd, "--", "sh", "-c", script],
                              env=env, cwd=cwd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def sequential(vmexec, env, target, tree, calls):
    bad = []
    started = time.monotonic()
    for i in range(calls):
        with open(os.path.join(tree, "in.txt"), "w") as f:
            f.write(f"in {i}\n")
        r = call(vmexec, env, target, tree, f"cat {tree}/in.txt && echo out {i} > {tree}/out.txt")
        with open(os.path.join(tree, "out.txt")) as f:
            out = f.read() if r else ""
        if r is None or r.returncode != 0 or r.stdout != f"in {i}\n".encode() or out != f"out {i}\n":
            bad.append((i, r and r.returncode, r and r.stdout[-100:], r and r.stderr[-200:], out))
            print(f"soak: call {i} wrong: {bad[-1]}", flush=True)
        if (i + 1) % 500 == 0:
            pid = supervisor_pid(vmexec, env, target)
            with open(f"/proc/{pid}/status") as f:
                rss = re.search(r"VmRSS:\s+(\d+)", f.read())[1]
            print(f"soak: {i + 1} calls, {len(bad)} wrong, {time.monotonic() - started:.0f} s, supervisor"
                  f" fds {len(os.listdir(f'/proc/{pid}/fd'))} RSS {rss} KiB", flush=True)
    return bad, time.monotonic() - started


def concurrent_calls(vmexec, env, target, tree, n):
    def one(j):
        r = call(vmexec, env, target, tree, f"echo c {j} > {tree}/c-{j}.txt && cat {tree}/c-{j}.txt", 3600)
        ok = r is not None and r.returncode == 0 and r.stdout == f"c {j}\n".encode()
        try:
            with open(os.path.join(tree, f"c-{j}.txt")) as f:
                ok = ok and f.read() == f"c {j}\n"
        except OSError:
            ok = False
        return None if ok else (j, r and r.returncode, r and r.stderr[-200:])
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        bad = [b for b in ex.map(one, range(n)) if b]
    return bad, time.monotonic() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmexec", default=os.environ.get("VMEXEC", os.path.join(top, "build", "vmexec")))
    ap.add_argument("--target", default="s390x")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--concurrent", type=int, default=64)
    a = ap.parse_args()
    vmexec = os.path.abspath(a.vmexec)
    work = tempfile.mkdtemp(prefix="vmexec-soak-")
    # A runtime directory of its own: its own supervisor, which it measures
    # and stops at the end, never the user's guest.
    env = dict(os.environ, VMEXEC_IDLE_TIMEOUT="3600", XDG_RUNTIME_DIR=os.path.join(work, "run"))
    os.mkdir(env["XDG_RUNTIME_DIR"], 0o700)
    tree = os.path.join(work, "tree")
    os.mkdir(tree)
    try:
        warm = call(vmexec, env, a.target, tree, "true")  # boots the guest
        if warm is None or warm.returncode != 0:
            sys.exit(f"soak: the guest does not start: {warm and warm.stderr.decode()[-400:]}")
        before = figures(vmexec, env, a.target, tree)
        bad, secs = sequential(vmexec, env, a.target, tree, a.calls)
        after = figures(vmexec, env, a.target, tree)
        cbad, csecs = concurrent_calls(vmexec, env, a.target, tree, a.concurrent) if a.concurrent else ([], 0)
        final = figures(vmexec, env, a.target, tree)
    finally:
        subprocess.run([vmexec, "stop", a.target], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"soak on {a.target}: {' '.join(sys.argv[1:]) or '(defaults)'}")
    print(f"| phase | calls | wrong | seconds | supervisor fds | supervisor RSS KiB | guest processes |")
    print(f"|---|---|---|---|---|---|---|")
    print(f"| before | | | | {before[0]} | {before[1]} | {before[2]} |")
    print(f"| sequential | {a.calls} | {len(bad)} | {secs:.0f} | {after[0]} | {after[1]} | {after[2]} |")
    if a.concurrent:
        print(f"| concurrent | {a.concurrent} | {len(cbad)} | {csecs:.0f} | {final[0]} | {final[1]} | {final[2]} |")
    for b in cbad:
        print(f"soak: concurrent call wrong: {b}")
    flat = (after[0] <= before[0] and after[1] - before[1] <= 8192 and 0 <= after[2] <= before[2]
            and final[0] <= before[0] and 0 <= final[2] <= before[2])
    print("soak: " + ("ok" if not bad and not cbad and flat else "FAILED"))
    return 0 if not bad and not cbad and flat else 1


if __name__ == "__main__":
    sys.exit(main())
