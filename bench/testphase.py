#!/usr/bin/env python3
"""The test phase of the example projects (tests/examples/meson and cmake)
under vmexec and under qemu-user, side by side in one run (issue 13).

    python3 bench/testphase.py [--vmexec build/vmexec] [--runs 3] [-j 2]

Each example is cross-built for s390x twice: once with vmexec's own cross
file / toolchain file (build/cross-files, build/cmake-modules), once with
`qemu-s390x -L /usr/s390x-linux-gnu` as the exe_wrapper /
CMAKE_CROSSCOMPILING_EMULATOR. Then `meson test -jN` and `ctest -jN` run
alternately under each, RUNS times; it prints the median wall time of each
and the ratio vmexec / qemu-user. The examples' `hang` test (killed by its
5 s timeout whatever runs it) is left out: it would only add the same 5 s to
both sides. The guest is warm (one call before the first run)."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "tests", "examples")
QEMU = ["qemu-s390x", "-L", "/usr/s390x-linux-gnu"]


def run(cmd, env, cwd=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit("testphase.py: %s failed (%d):\n%s" % (" ".join(cmd), r.returncode,
                                                       r.stdout.decode(errors="replace")[-3000:]))
    return r.stdout.decode(errors="replace")


def timed(cmd, env):
    """Wall time of a test phase; its verdicts are the examples' own
    (a skip, an expected failure): the exit status is not checked."""
    t0 = time.monotonic()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmexec", default=os.path.join(REPO, "build", "vmexec"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    vmexec = os.path.abspath(args.vmexec)
    build = os.path.dirname(vmexec)
    work = tempfile.mkdtemp(prefix="vmexec-testphase-")
    env = dict(os.environ, PATH=build + os.pathsep + os.environ["PATH"])
    for var in ["MESON_TESTTHREADS", "CTEST_PARALLEL_LEVEL", "MAKEFLAGS"]:
        env.pop(var, None)

    qemu_cross = os.path.join(work, "s390x-qemu")
    with open(os.path.join(build, "cross-files", "s390x-vmexec")) as f:
        text = f.read()
    with open(qemu_cross, "w") as f:
        f.write(text.replace("exe_wrapper = 'vmexec'", "exe_wrapper = %r" % QEMU))
    qemu_toolchain = os.path.join(work, "s390x-qemu.cmake")
    with open(qemu_toolchain, "w") as f:
        f.write('include("%s")\nset(CMAKE_CROSSCOMPILING_EMULATOR %s)\n'
                % (os.path.join(build, "cmake-modules", "s390x-vmexec.cmake"), ";".join(QEMU)))

    # a warm guest: a program that only exits, started once before the first run
    true = os.path.join(work, "true-s390x")
    subprocess.run(["s390x-linux-gnu-gcc", "-static", "-x", "c", "-o", true, "-"], input=b"int main(void){return 0;}",
                   check=True)
    subprocess.run([vmexec, true], env=env, capture_output=True)
    phases = {}
    for emu, cross, toolchain in [("vmexec", os.path.join(build, "cross-files", "s390x-vmexec"),
                                   os.path.join(build, "cmake-modules", "s390x-vmexec.cmake")),
                                  ("qemu-user", qemu_cross, qemu_toolchain)]:
        mb = os.path.join(work, "meson-" + emu)
        run(["meson", "setup", "--cross-file", cross, mb, os.path.join(EXAMPLES, "meson")], env)
        run(["ninja", "-C", mb], env)
        names = [n for n in run(["meson", "test", "-C", mb, "--list", "--no-rebuild"], env).split()
                 if n != "hang"]
        cb = os.path.join(work, "cmake-" + emu)
        run(["cmake", "-G", "Ninja", "-DCMAKE_TOOLCHAIN_FILE=" + toolchain, "-S", os.path.join(EXAMPLES, "cmake"),
             "-B", cb], env)
        run(["ninja", "-C", cb], env)
        phases[("meson test -j%d" % args.jobs, emu)] = ["meson", "test", "-C", mb, "--no-rebuild",
                                                        "--num-processes", str(args.jobs), *names]
        phases[("ctest -j%d" % args.jobs, emu)] = ["ctest", "--test-dir", cb, "-j%d" % args.jobs, "-E", "^hang$"]

    times = {k: [] for k in phases}
    for _ in range(args.runs):
        for k, cmd in phases.items():
            times[k].append(timed(cmd, env))
    print("%-16s %10s %10s %7s   (median of %d runs, s)" % ("test phase", "qemu-user", "vmexec", "ratio", args.runs))
    for phase in dict.fromkeys(p for p, _ in phases):
        q = statistics.median(times[(phase, "qemu-user")])
        v = statistics.median(times[(phase, "vmexec")])
        print("%-16s %10.2f %10.2f %6.2fx" % (phase, q, v, v / q))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
