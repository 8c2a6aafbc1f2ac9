#!/usr/bin/env python3
"""Guest test of what a call sees of the caller's files and streams (issue
12), on s390x:

- paths named in the arguments: a file in a tempfile.mkdtemp() directory
  under /tmp is read, and an output file next to it comes back, the
  working directory being elsewhere;
- the example projects tests/examples/paths-meson (`meson test` with the
  vmexec cross file: a host script makes a temporary directory, writes an
  input file and runs the target program on it through $MESON_EXE_WRAPPER)
  and tests/examples/paths-automake (`make check`, LOG_COMPILER = vmexec, a
  VPATH build whose test reads $srcdir/data/...);
- write errors on the caller's streams reach the program: stdout on
  /dev/full fails the program's write (ENOSPC, exit 1 as coreutils'
  close_stdout), `| head -1` ends a writer promptly with SIGPIPE, or EPIPE
  when it ignores SIGPIPE;
- /dev/stdin, /dev/stdout and /dev/fd/N are the program's own streams;
- a call from "/" runs (no root "/"), and the calls after it too.

Environment: VMEXEC, BUILDDIR, SRCDIR, PROBE (probe-s390x)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from testlib import check, finish, skip_or_fail

VMEXEC = os.environ["VMEXEC"]
BUILDDIR = os.environ["BUILDDIR"]
SRCDIR = os.environ["SRCDIR"]
PROBE = os.environ["PROBE"]
EXAMPLES = os.path.join(SRCDIR, "tests", "examples")

for tool in ["qemu-system-s390x", "nbdkit", "s390x-linux-gnu-gcc"]:
    if not shutil.which(tool):
        skip_or_fail(f"{tool} is missing (scripts/install-deps installs it)")
if not os.path.exists(PROBE):
    skip_or_fail(f"{PROBE} is not built (ninja -C {BUILDDIR} tests/probe-s390x)")

work = tempfile.mkdtemp(prefix="vmexec-test-paths-")
runtime = os.path.join(work, "runtime")  # private XDG_RUNTIME_DIR: this run's own guests
os.mkdir(runtime, 0o700)
ENV = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="600",
           PATH=os.path.dirname(VMEXEC) + os.pathsep + os.environ["PATH"])
for var in ["MESON_TESTTHREADS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS"]:
    ENV.pop(var, None)


def run(cmd, cwd=None, timeout=1200, **kw):
    """Runs cmd; returns (exit status, stdout + stderr)."""
    p = subprocess.run(cmd, cwd=cwd or work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, **kw)
    return p.returncode, p.stdout.decode(errors="replace")


def argument_paths():
    elsewhere = os.path.join(work, "cwd")
    os.mkdir(elsewhere)
    tmp = tempfile.mkdtemp(prefix="vmexec-paths-args-")  # under /tmp, outside every other root
    try:
        src, dst = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.txt")
        with open(src, "w") as f:
            f.write("input in a temporary directory\n")
        rc, out = run([VMEXEC, PROBE, "copy", src, dst], cwd=elsewhere)
        got = open(dst).read() if os.path.exists(dst) else None
        check(rc == 0 and got == "input in a temporary directory\n",
              f"an argument's file under /tmp is read and the output file next to it comes back "
              f"(exit {rc}, {got!r}, {out.strip()!r})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dev_stdio_paths():
    """/dev/stdin, /dev/stdout and /dev/fd/N name the program's own streams,
    as on the caller's machine: `prog /dev/stdin < file` (fribidi's
    conformance tests, shell tests) and bash's process substitution."""
    for src, dst in [("/dev/stdin", "/dev/stdout"), ("/dev/fd/0", "/dev/fd/1")]:
        p = subprocess.run([VMEXEC, PROBE, "copy", src, dst], input=b"through the named streams\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=work, timeout=600)
        check(p.returncode == 0 and p.stdout == b"through the named streams\n",
              f"copy {src} {dst}: the program's own stdin and stdout "
              f"(exit {p.returncode}, {p.stdout!r}, {p.stderr.decode(errors='replace').strip()!r})")


def from_root_dir():
    """A call from "/" shares no "/" (it would hide the guest's system):
    it runs, and so do the calls after it."""
    rc, out = run([VMEXEC, PROBE, "say", "from /", "0"], cwd="/")
    check(rc == 0 and "from /" in out, f"a call from / runs (exit {rc}, {out.strip()!r})")
    rc, out = run([VMEXEC, PROBE, "say", "after", "0"])
    check(rc == 0 and "after" in out, f"and the next call too (exit {rc}, {out.strip()!r})")


def meson_example():
    bld = os.path.join(work, "paths-meson")
    cross = os.path.join(BUILDDIR, "cross-files", "s390x-vmexec")
    rc, out = run(["meson", "setup", "--cross-file", cross, bld, os.path.join(EXAMPLES, "paths-meson")])
    if not check(rc == 0, f"paths-meson: meson setup --cross-file s390x-vmexec (exit {rc})"):
        print(out[-3000:])
        return
    rc, out = run(["ninja", "-C", bld])
    if not check(rc == 0, f"paths-meson builds (exit {rc})"):
        print(out[-3000:])
        return
    rc, out = run(["meson", "test", "-C", bld, "--print-errorlogs"])
    if not check(rc == 0, f"paths-meson: meson test: the host script's mkdtemp input reaches the program "
                          f"and its output comes back (exit {rc})"):
        print(out[-3000:])


def automake_example():
    if not shutil.which("autoreconf") or not shutil.which("make"):
        skip_or_fail("autoreconf or make is missing (apt-get install automake autoconf make)")
    src = os.path.join(work, "paths-automake-src")  # autoreconf writes into the source tree: a copy
    shutil.copytree(os.path.join(EXAMPLES, "paths-automake"), src)
    rc, out = run(["autoreconf", "-fi"], cwd=src)
    if not check(rc == 0, f"paths-automake: autoreconf (exit {rc})"):
        print(out[-3000:])
        return
    bld = os.path.join(work, "paths-automake")
    os.mkdir(bld)
    rc, out = run([os.path.join(src, "configure"), "--host=s390x-linux-gnu"], cwd=bld)
    if not check(rc == 0, f"paths-automake: configure --host=s390x-linux-gnu (exit {rc})"):
        print(out[-3000:])
        return
    rc, out = run(["make", "check"], cwd=bld)
    log = os.path.join(bld, "readdata.log")
    text = open(log).read() if os.path.exists(log) else ""
    if not check(rc == 0 and "data from the source tree" in text,
                 f"paths-automake: make check: the test reads $srcdir/data in a VPATH build (exit {rc})"):
        print(out[-3000:], text[-2000:])


def write_errors():
    with open("/dev/full", "w") as full:
        p = subprocess.run([VMEXEC, PROBE, "puts", "hello"], stdout=full, stderr=subprocess.PIPE, env=ENV,
                           cwd=work, timeout=600)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "No space left on device" in err,
          f">/dev/full: the program's write fails with ENOSPC and it exits 1 (exit {p.returncode}, {err.strip()!r})")
    with open("/dev/full", "w") as full:
        p = subprocess.run([VMEXEC, PROBE, "puts", "hello"], stdout=subprocess.PIPE, stderr=full, env=ENV,
                           cwd=work, timeout=600)
    check(p.returncode == 0 and p.stdout == b"hello\n", f"2>/dev/full: stdout still works (exit {p.returncode})")

    for args, want, what in [(["yes"], -signal.SIGPIPE, "dies of SIGPIPE"),
                             (["yes", "nosigpipe"], 3, "ignoring SIGPIPE, its write fails with EPIPE")]:
        start = time.monotonic()
        gen = subprocess.Popen([VMEXEC, PROBE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                               cwd=work)
        head = subprocess.Popen(["head", "-1"], stdin=gen.stdout, stdout=subprocess.PIPE)
        gen.stdout.close()
        first = head.communicate(timeout=600)[0]
        try:
            _, err = gen.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            gen.kill()
            _, err = gen.communicate()
        secs = time.monotonic() - start
        err = err.decode(errors="replace")
        ok = gen.returncode == want and first == b"y\n"
        if want == 3:
            ok = ok and "Broken pipe" in err
        check(ok, f"yes | head -1: {what}, promptly (exit {gen.returncode}, {secs:.1f} s, {err.strip()!r})")


try:
    write_errors()
    argument_paths()
    dev_stdio_paths()
    from_root_dir()
    meson_example()
    automake_example()
finally:
    run([VMEXEC, "stop", "--all"])
    shutil.rmtree(work, ignore_errors=True)

sys.exit(finish())
