#!/usr/bin/env python3
"""The guest kernel's basic operations, timed in the guest by the program
itself (bench/kernel-ops.c), side by side with qemu-user where it can run
them: a null system call (getppid), a page fault (a write to a fresh page),
and spawning a program (fork, exec, wait) for a static C hello, a dynamic
one and a dynamic C++ one. Under qemu-user a spawned s390x program would
need the host's binfmt_misc, so spawns are the guest's alone.

    python3 bench/spawn.py [--target s390x] [--reps 5] [--vmexec build/vmexec]

These are the figures README's speed section gives for system calls, page
faults and spawns. Nothing is asserted: these are measurements."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
triplets = {"s390x": ("s390x-linux-gnu", "qemu-s390x"), "aarch64": ("aarch64-linux-gnu", "qemu-aarch64"),
            "armhf": ("arm-linux-gnueabihf", "qemu-arm"), "ppc64el": ("powerpc64le-linux-gnu", "qemu-ppc64le")}

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
HELLO_CXX = '#include <iostream>\nint main() { std::cout << "hello" << std::endl; return 0; }\n'


def build(work, triplet):
    def cc(compiler, src_text, ext, out, *flags):
        src = os.path.join(work, out + ext)
        with open(src, "w") as f:
            f.write(src_text)
        subprocess.run([f"{triplet}-{compiler}", "-O2", *flags, "-o", os.path.join(work, out), src], check=True)

    with open(os.path.join(top, "bench", "kernel-ops.c")) as f:
        cc("gcc", f.read(), ".c", "kernel-ops", "-static")
    cc("gcc", HELLO_C, ".c", "hello-static", "-static")
    cc("gcc", HELLO_C, ".c", "hello-dynamic")
    cc("g++", HELLO_CXX, ".cc", "hello-cxx")


def op_us(cmd, env):
    """Run CMD (kernel-ops under an emulator); its microseconds per operation."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"spawn.py: {' '.join(cmd)} failed ({r.returncode}): {r.stderr[-300:]}")
    return float(r.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="s390x", choices=sorted(triplets))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    args = ap.parse_args()
    triplet, qemu = triplets[args.target]
    vmexec = os.path.abspath(args.vmexec)
    work = tempfile.mkdtemp(prefix="vmexec-spawn-")
    try:
        build(work, triplet)
        env = dict(os.environ)
        ops = os.path.join(work, "kernel-ops")
        subprocess.run([vmexec, ops, "syscall", "1"], env=env, capture_output=True)  # a warm guest
        sysroot = f"/usr/{triplet}"
        rows = [("null system call (getppid)", ["syscall", "100000"], True),
                ("page fault (write to a fresh page)", ["fault", "20000"], True)]
        for name in ["hello-static", "hello-dynamic", "hello-cxx"]:
            rows.append((f"spawn: fork, exec, wait of {name}", ["spawn", "30", os.path.join(work, name)], False))
        print(f"{args.target}, microseconds per operation, median of {args.reps} runs, timed by the program")
        print(f"{'operation':42} {'vmexec guest':>13} {'qemu-user':>10}")
        for label, argv, both in rows:
            guest = statistics.median(op_us([vmexec, ops, *argv], env) for _ in range(args.reps))
            user = statistics.median(op_us([qemu, "-L", sysroot, ops, *argv], env)
                                     for _ in range(args.reps)) if both else None
            print(f"{label:42} {guest:13.2f} {user:10.2f}" if both else f"{label:42} {guest:13.2f} {'-':>10}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
