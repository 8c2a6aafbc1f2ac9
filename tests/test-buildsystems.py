#!/usr/bin/env python3
"""Guest test of the build-system integration: the example projects of
tests/examples (Meson, CMake, automake, a plain Makefile) are cross built for
s390x with vmexec's installed cross file / toolchain files, and their tests
run in a real s390x guest through each harness: `meson test` (2 processes),
`ninja test`, `ctest -j2`, `ninja test` of CMake (VmexecEmulator added to a
toolchain of the user's), `make -j2 check` (automake) and `make check` (plain
Makefile). For every test the harness's own verdict is checked (OK, SKIP,
EXPECTEDFAIL, TIMEOUT, FAIL where it must), and after each harness that no
process of its runs is left in the guest (the probe's `procs`).

The byte-order proof: the Meson example built for the build machine (no cross
file, no vmexec) with the byteorder test expecting big-endian FAILS, while
the same test passes under vmexec on s390x.

Environment: VMEXEC, BUILDDIR, SRCDIR; BS_TARGETS (space separated, default
s390x; aarch64 works too). Under CI=true a test that cannot run is a
failure, never a skip (77)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from testlib import CI, check, finish_timed, skip_or_fail, timed
from verdicts import (AUTOMAKE_WANT, CTEST_WANT, MESON_WANT, automake_verdicts, ctest_verdicts, expect_verdicts,
                      meson_verdicts)

VMEXEC = os.environ["VMEXEC"]
BUILDDIR = os.environ["BUILDDIR"]
SRCDIR = os.environ["SRCDIR"]
EXAMPLES = os.path.join(SRCDIR, "tests", "examples")
TARGETS = os.environ.get("BS_TARGETS", "s390x").split()
BIG_ENDIAN = {"s390x"}




for tool in ["cmake", "autoreconf", "automake", "make", "ninja", "meson"]:
    if not shutil.which(tool):
        skip_or_fail(f"{tool} is not installed (apt-get install cmake automake autoconf make ninja-build meson)")

work = tempfile.mkdtemp(prefix="vmexec-test-bs-")
runtime = os.path.join(work, "runtime")  # private XDG_RUNTIME_DIR: this run's own guests
os.mkdir(runtime, 0o700)
destdir = os.path.join(work, "destdir")
ENV = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="600",
           PATH=os.path.dirname(VMEXEC) + os.pathsep + os.environ["PATH"])
for var in ["MESON_TESTTHREADS", "CTEST_PARALLEL_LEVEL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS", "CXXFLAGS"]:
    ENV.pop(var, None)


def run(cmd, cwd=None, env=None, timeout=1200):
    """Runs cmd; returns (exit status, output, seconds)."""
    start = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode(errors="replace")
    return p.returncode, out, time.monotonic() - start


def must(cmd, what, **kw):
    rc, out, secs = run(cmd, **kw)
    check(rc == 0, f"{what} (exit {rc}, {secs:.1f} s)")
    if rc != 0:
        print(out[-4000:], flush=True)
    return out


def no_guest_processes(target, harness):
    probe = os.path.join(BUILDDIR, "tests", "probe-" + target)
    if not os.path.exists(probe):
        check(False, f"{harness}: probe-{target} is built (ninja -C {BUILDDIR} tests/probe-{target})")
        return
    # The harness's timeout killed vmexec; the guest kills the run's processes
    # as it sees the connection go. Allow it a moment.
    deadline = time.monotonic() + 10
    while True:
        rc, out, _ = run([VMEXEC, probe, "procs"], cwd=work)
        if (rc == 0 and out.strip() == "") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(rc == 0 and out.strip() == "", f"{harness}: no guest process left behind (procs: {out.strip()!r})")


def harness_verdicts(target, harness, got, want, out):
    """What a test harness's run must show: WANT's verdicts (its output when
    not), and no guest process left behind."""
    if not expect_verdicts(harness, got, want):
        print(out[-4000:])
    no_guest_processes(target, harness)


def install_layout():
    """meson install into a DESTDIR: the cross files, CMake files, vmexec,
    agents, plugin and man page are there; returns $DESTDIR$prefix."""
    must(["meson", "install", "-C", BUILDDIR, "--no-rebuild", "--destdir", destdir], "meson install --destdir")
    found = {}
    for dirpath, _, files in os.walk(destdir):
        for f in files:
            found.setdefault(f, os.path.join(dirpath, f))
    for f in ["vmexec", "vmexec.1", "VmexecEmulator.cmake", "vmexec-config.cmake", "vmexec-config-version.cmake"]:
        check(f in found, f"installed: {f}")
    for t in TARGETS:
        check(f"vmexec-agent-{t}" in found, f"installed: vmexec-agent-{t}")
        check(found.get(f"{t}-vmexec", "").endswith(f"/share/meson/cross/{t}-vmexec"),
              f"installed: share/meson/cross/{t}-vmexec")
        check(found.get(f"{t}-vmexec.cmake", "").endswith(f"/share/cmake/vmexec/{t}-vmexec.cmake"),
              f"installed: share/cmake/vmexec/{t}-vmexec.cmake")
    if os.path.exists(os.path.join(BUILDDIR, "nbd-share", "nbdkit-vmexec-share-plugin.so")):
        check("nbdkit-vmexec-share-plugin.so" in found, "installed: nbdkit-vmexec-share-plugin.so")
    vm = found.get("vmexec")
    return os.path.dirname(os.path.dirname(vm)) if vm else None


def meson_example(target, prefix):
    src = os.path.join(EXAMPLES, "meson")
    bld = os.path.join(work, f"meson-{target}")
    # By name, as a user would once vmexec is installed: Meson looks in
    # $XDG_DATA_DIRS/meson/cross.
    env = dict(ENV, XDG_DATA_DIRS=os.path.join(prefix, "share") + os.pathsep + "/usr/local/share:/usr/share")
    rc, out, secs = run(["meson", "setup", "--cross-file", f"{target}-vmexec", bld, src], env=env)
    check(rc == 0, f"meson setup --cross-file {target}-vmexec (exit {rc})")
    timed(f"{target} meson setup (cc.run through vmexec)", secs)
    if rc != 0:
        print(out[-4000:])
        return
    check('Checking if "byte order at run time" runs: YES' in out, "meson: cc.run() ran through vmexec")
    must(["ninja", "-C", bld], "meson example builds")
    for harness, cmd in [("meson test", ["meson", "test", "-C", bld, "--num-processes", "2"]),
                         ("ninja test", ["ninja", "-C", bld, "test"])]:
        handoff = os.path.join(bld, "handoff.txt")
        if os.path.exists(handoff):
            os.unlink(handoff)
        rc, out, secs = run(cmd, env=dict(ENV, MESON_TESTTHREADS="2"))
        timed(f"{target} {harness}", secs)
        check(rc != 0, f"{target} {harness}: exits non-zero (the hang test times out) (exit {rc})")
        harness_verdicts(target, f"{target} {harness}", meson_verdicts(bld), MESON_WANT, out)
        with open(os.path.join(bld, "meson-logs", "testlog.txt")) as f:
            log = f.read()
        want_bytes = "01 02 03 04" if target in BIG_ENDIAN else "04 03 02 01"
        check(f"0x01020304 in memory: {want_bytes}" in log, f"{target} {harness}: byteorder saw {want_bytes}")


def byte_order_proof():
    """The byteorder test expecting big-endian, built for this (little-endian)
    machine and run without vmexec: it must FAIL."""
    src = os.path.join(EXAMPLES, "meson")
    bld = os.path.join(work, "meson-native-big")
    must(["meson", "setup", "-Dexpect_endian=big", bld, src], "native meson setup -Dexpect_endian=big")
    must(["ninja", "-C", bld], "native meson example builds")
    run(["meson", "test", "-C", bld, "--num-processes", "2", "byteorder"])
    got = meson_verdicts(bld)
    check(got.get("byteorder") == "FAIL",
          f"byte-order proof: byteorder expecting big-endian FAILS natively (got {got.get('byteorder')})")


def cmake_example(target, prefix):
    src = os.path.join(EXAMPLES, "cmake")
    # A: vmexec's toolchain file, ctest -j2.
    bld = os.path.join(work, f"cmake-{target}")
    toolchain = os.path.join(prefix, "share", "cmake", "vmexec", f"{target}-vmexec.cmake")
    rc, out, secs = run(["cmake", "-G", "Ninja", f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                         f"-DVMEXEC_EXECUTABLE={VMEXEC}", "-S", src, "-B", bld])
    timed(f"{target} cmake configure (try_run through vmexec)", secs)
    check(rc == 0, f"cmake -DCMAKE_TOOLCHAIN_FILE={target}-vmexec.cmake (exit {rc})")
    if rc != 0:
        print(out[-4000:])
        return
    endian = "big" if target in BIG_ENDIAN else "little"
    check(f"Byte order at run time (try_run): {endian}" in out, f"cmake: try_run ran through vmexec ({endian})")
    must(["cmake", "--build", bld], "cmake example builds")
    rc, out, secs = run(["ctest", "--test-dir", bld, "-j2"])
    timed(f"{target} ctest -j2", secs)
    check(rc != 0, f"{target} ctest -j2: exits non-zero (segv and hang fail in CTest) (exit {rc})")
    harness_verdicts(target, f"{target} ctest -j2", ctest_verdicts(out), CTEST_WANT, out)

    # B: the user's own toolchain file adds vmexec with VmexecEmulator.cmake;
    # `ninja test` runs ctest.
    bld = os.path.join(work, f"cmake-own-{target}")
    triplet = cross_triplet(target)
    own = os.path.join(work, f"own-{target}.cmake")
    with open(own, "w") as f:
        f.write(f"set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR {target})\n"
                f"set(CMAKE_C_COMPILER {triplet}-gcc)\nset(CMAKE_CXX_COMPILER {triplet}-g++)\n"
                f"include({os.path.join(prefix, 'share', 'cmake', 'vmexec', 'VmexecEmulator.cmake')})\n")
    must(["cmake", "-G", "Ninja", f"-DCMAKE_TOOLCHAIN_FILE={own}", f"-DVMEXEC_EXECUTABLE={VMEXEC}",
          "-S", src, "-B", bld], "cmake with an own toolchain + VmexecEmulator.cmake")
    must(["cmake", "--build", bld], "cmake example builds (own toolchain)")
    rc, out, secs = run(["ninja", "-C", bld, "test"])
    timed(f"{target} ninja test (CMake)", secs)
    harness_verdicts(target, f"{target} ninja test (CMake)", ctest_verdicts(out), CTEST_WANT, out)


def cross_triplet(target):
    with open(os.path.join(BUILDDIR, "cross-files", f"{target}-vmexec")) as f:
        return re.search(r"^c = '(.+)-gcc'", f.read(), re.M).group(1)


def make_examples(target):
    triplet = cross_triplet(target)
    # automake: autoreconf writes into the source tree, so work on a copy.
    src = os.path.join(work, f"automake-src-{target}", "make")
    shutil.copytree(os.path.join(EXAMPLES, "make"), src)
    shutil.copytree(os.path.join(EXAMPLES, "common"), os.path.join(os.path.dirname(src), "common"))
    must(["autoreconf", "-fi"], "autoreconf the automake example", cwd=src)
    bld = os.path.join(work, f"automake-{target}")
    os.mkdir(bld)
    rc, out, secs = run([os.path.join(src, "configure"), f"--host={triplet}"], cwd=bld)
    check(rc == 0, f"configure --host={triplet} (exit {rc})")
    if rc != 0:
        print(out[-4000:])
        return
    endian = "big" if target in BIG_ENDIAN else "little"
    check(f"checking byte order at run time... {endian}" in out, "configure: ran a program through vmexec")
    rc, out, secs = run(["make", "-j2", "check"], cwd=bld)
    timed(f"{target} make -j2 check (automake)", secs)
    check(rc == 0, f"{target} make check (automake): exits 0 (exit {rc})")
    harness_verdicts(target, f"{target} make check (automake)", automake_verdicts(bld), AUTOMAKE_WANT, out)

    # A plain Makefile.
    bld = os.path.join(work, f"plain-{target}")
    os.mkdir(bld)
    msrc = os.path.join(EXAMPLES, "make")
    rc, out, secs = run(["make", "-f", os.path.join(msrc, "plain.mk"), f"srcdir={msrc}", f"CC={triplet}-gcc",
                         f"CXX={triplet}-g++", "VMEXEC=vmexec", "check"], cwd=bld)
    timed(f"{target} make check (plain Makefile)", secs)
    check(rc == 0 and "make check: all tests passed" in out, f"{target} make check (plain Makefile) (exit {rc})")
    want_bytes = "01 02 03 04" if target in BIG_ENDIAN else "04 03 02 01"
    check(f"0x01020304 in memory: {want_bytes}" in out, f"{target} plain make: byteorder saw {want_bytes}")
    if rc != 0:
        print(out[-4000:])


try:
    prefix = install_layout()
    if prefix:
        for target in TARGETS:
            if not shutil.which(cross_triplet(target) + "-g++"):
                skip_or_fail(f"no C++ cross compiler for {target} (apt-get install g++-{cross_triplet(target)})")
            print(f"== {target}", flush=True)
            meson_example(target, prefix)
            cmake_example(target, prefix)
            make_examples(target)
        byte_order_proof()
finally:
    run([VMEXEC, "stop", "--all"])
    shutil.rmtree(work, ignore_errors=True)

sys.exit(finish_timed())
