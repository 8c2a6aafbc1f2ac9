#!/usr/bin/env python3
"""Building and testing a project inside the full s390x image against a host
cross build whose tests run through vmexec, side by side in one run, on the
example projects of tests/examples (their ../common sources beside them):

  in-guest    vmexec --target s390x --image full -- \
                  sh -c 'meson setup b && ninja -C b && meson test -C b'
              (CMake: cmake -S . -B b, cmake --build b, ctest --test-dir b)
              everything runs in the guest: compilers, build tool, tests;
              each phase is timed in the guest, "all" is the call's wall
              time from the host (with the write-back of the build tree).
              --split: one vmexec call per phase instead, timed from the host
  host-cross  meson setup --cross-file BUILD/cross-files/s390x-vmexec b;
              ninja -C b;  meson test -C b          (exe_wrapper = vmexec)
              (CMake: -DCMAKE_TOOLCHAIN_FILE=BUILD/cmake-modules/s390x-vmexec.cmake)
              Debian's cross compilers on the host; only the tests (and
              cc.run()/try_run()) run, in the minimal guest. Each phase is
              one host command, timed from the host

Every run starts from a fresh copy of the sources. Both guests are warm (one
untimed call each first). The test phase includes the example's hang test,
which its harness kills after 5 s, in both columns.

Usage: bench/inguest.py [--vmexec PATH] [--build DIR] [--runs N] [--projects meson,cmake] [--split]
Run after `ninja -C build` and `vmexec image build s390x --full` (otherwise
the warm-up call builds the image and configures it on a first boot, which
takes minutes). Prints a table and the ratios; asserts nothing."""

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> ((phase, in-guest command, host-cross command), ...); {build} is vmexec's build tree.
PROJECTS = {
    "meson": (
        ("setup", ["meson", "setup", "b"], ["meson", "setup", "--cross-file", "{build}/cross-files/s390x-vmexec", "b"]),
        ("build", ["ninja", "-C", "b"], ["ninja", "-C", "b"]),
        ("test", ["meson", "test", "-C", "b"], ["meson", "test", "-C", "b"]),
    ),
    "cmake": (
        ("configure", ["cmake", "-S", ".", "-B", "b"],
         ["cmake", "-DCMAKE_TOOLCHAIN_FILE={build}/cmake-modules/s390x-vmexec.cmake", "-DVMEXEC_EXECUTABLE={vmexec}",
          "-S", ".", "-B", "b"]),
        ("build", ["cmake", "--build", "b"], ["cmake", "--build", "b"]),
        ("test", ["ctest", "--test-dir", "b"], ["ctest", "--test-dir", "b"]),
    ),
}
# The test phase fails on purpose (the hang test times out; CTest also counts the expected crash).
TEST_STATUS = {"meson": 1, "cmake": 8}


def timed(cmd, env, cwd, ok=(0,)):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    secs = time.perf_counter() - t
    if r.returncode not in ok:
        sys.exit(f"bench: {' '.join(cmd)} (in {cwd}): status {r.returncode}:\n"
                 f"{(r.stdout + r.stderr).decode(errors='replace')[-2000:]}")
    return secs


def fresh_copy(work, name, tag):
    """A copy of the example NAME with ../common beside it: (project, common)."""
    root = os.path.join(work, f"{name}-{tag}")
    os.mkdir(root)
    shutil.copytree(os.path.join(top, "tests", "examples", name), os.path.join(root, name))
    shutil.copytree(os.path.join(top, "tests", "examples", "common"), os.path.join(root, "common"))
    return os.path.join(root, name), os.path.join(root, "common")


def one_call(guest, common, src, env, phases, test_status):
    """The issue's way: one call, sh -c 'A && B && C'. Each phase is timed in
    the guest (date before and after it); "call" is the call's wall time
    from the host (vmexec's overhead and the write-back of the build tree
    included). Returns [(phase, seconds)]."""
    script = ""
    for name, cmd, _ in phases:
        script += (f'a=$(date +%s.%N); {" ".join(shlex.quote(c) for c in cmd)} >/dev/null 2>&1; s=$?; '
                   f'echo "phase {name} $a $(date +%s.%N) $s"; ')
        script += "exit $s; " if name == phases[-1][0] else '[ $s = 0 ] || exit $s; '
    t = time.perf_counter()
    r = subprocess.run([*guest, "--share", common + ":ro", "--", "sh", "-c", script], env=env, cwd=src,
                       stdin=subprocess.DEVNULL, capture_output=True)
    wall = time.perf_counter() - t
    out = r.stdout.decode(errors="replace")
    got = [(m[0], float(m[2]) - float(m[1])) for m in re.findall(r"^phase (\S+) ([\d.]+) ([\d.]+) (\d+)$", out, re.M)]
    if r.returncode not in (0, test_status) or len(got) != len(phases):
        sys.exit(f"bench: in-guest call in {src}: status {r.returncode}:\n{(out + r.stderr.decode())[-2000:]}")
    return got + [("call", wall)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    ap.add_argument("--build", help="vmexec's build tree (cross files, CMake files); default: the vmexec's")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--projects", default="meson,cmake")
    ap.add_argument("--split", action="store_true",
                    help="in the guest too, one vmexec call per phase (the build tree goes back and forth)")
    a = ap.parse_args()
    vmexec = os.path.abspath(a.vmexec)
    build = os.path.abspath(a.build or os.path.dirname(os.path.dirname(vmexec)))
    projects = [p for p in a.projects.split(",") if p]
    for p in projects:
        if p not in PROJECTS:
            sys.exit(f"bench: unknown project {p}; the projects are {', '.join(PROJECTS)}")
    for tool in ("s390x-linux-gnu-gcc", "s390x-linux-gnu-g++", "qemu-system-s390x", "nbdkit", "meson", "ninja",
                 "cmake"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing; run scripts/install-deps")

    work = tempfile.mkdtemp(prefix="vmexec-bench-inguest-")
    runtime = os.path.join(work, "runtime")
    os.mkdir(runtime, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="1800",
               PATH=os.path.dirname(vmexec) + os.pathsep + os.environ["PATH"])
    for var in ("VMEXEC_IMAGE", "MESON_TESTTHREADS", "CTEST_PARALLEL_LEVEL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                "CFLAGS", "CXXFLAGS"):
        env.pop(var, None)
    guest = [vmexec, "--target", "s390x", "--image", "full"]
    results = {}  # (project, phase, side) -> [seconds]
    try:
        # Warm both guests: the full one for the in-guest builds, the minimal
        # one that runs the cross build's tests.
        print("warming the guests (untimed) ...", flush=True)
        timed([*guest, "--", "true"], env, work)
        timed([vmexec, "--target", "s390x", "--", "true"], env, work)
        for n in range(a.runs):
            for p in projects:
                for side in ("in-guest", "host-cross"):
                    src, common = fresh_copy(work, p, f"{side}-{n}")
                    if side == "in-guest" and not a.split:
                        for phase, secs in one_call(guest, common, src, env, PROJECTS[p], TEST_STATUS[p]):
                            results.setdefault((p, phase, side), []).append(secs)
                            print(f"  run {n + 1} {p:6} {side:10} {phase:9} {secs:7.1f} s", flush=True)
                        continue
                    for phase, in_guest, host_cross in PROJECTS[p]:
                        ok = (0, TEST_STATUS[p]) if phase == "test" else (0,)
                        if side == "in-guest":
                            cmd = [*guest, "--share", common + ":ro", "--", *in_guest]
                        else:
                            cmd = [c.format(build=build, vmexec=vmexec) for c in host_cross]
                        secs = timed(cmd, env, src, ok)
                        results.setdefault((p, phase, side), []).append(secs)
                        print(f"  run {n + 1} {p:6} {side:10} {phase:9} {secs:7.1f} s", flush=True)
                    results.setdefault((p, "call", side), []).append(
                        sum(results[(p, ph, side)][-1] for ph, _, _ in PROJECTS[p]))
        status = subprocess.run([vmexec, "status"], env=env, capture_output=True).stdout.decode().strip()
    finally:
        subprocess.run([vmexec, "stop", "--all"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"example projects of tests/examples, s390x; {a.runs} run(s), median seconds; "
          f"host: {os.cpu_count()} cpus; guest vCPUs: {os.environ.get('VMEXEC_CPUS', '1')}")
    mode = "one vmexec call per phase" if a.split else "one call (sh -c 'A && B && C'), phases timed in the guest"
    print(f"in-guest: {mode}; host-cross: one host command per phase; 'all': wall time of everything")
    print(f"{'project':8} {'phase':10} {'in-guest s':>11} {'host-cross s':>13} {'in-guest / host-cross':>22}")
    for p in projects:
        total = {"in-guest": 0.0, "host-cross": 0.0}
        for phase, _, _ in PROJECTS[p]:
            g = statistics.median(results[(p, phase, "in-guest")])
            h = statistics.median(results[(p, phase, "host-cross")])
            print(f"{p:8} {phase:10} {g:11.1f} {h:13.1f} {g / h:22.1f}")
        g = statistics.median(results[(p, "call", "in-guest")])
        h = statistics.median(results[(p, "call", "host-cross")])
        print(f"{p:8} {'all':10} {g:11.1f} {h:13.1f} {g / h:22.1f}")
    print(f"guests after the run:\n{status}")


if __name__ == "__main__":
    main()
