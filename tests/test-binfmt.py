#!/usr/bin/env python3
"""Guest test of the binfmt_misc handler (issue 7): `vmexec binfmt install
s390x` makes the host kernel start s390x programs through vmexec, so host
scripts that exec them directly run them in a real s390x guest.

Checked: --print (the binfmt.d line), the refusals (a native target, not
root, binfmt_misc not mounted, another handler for s390x without --force),
--force (disables the other entry), status; then this Python script and a
bash script start the s390x probe (tests/guest/probe.c) directly: exit
status, arguments, argv[0], stdin, a signal; the example project
tests/examples/binfmt (a Meson test whose host-side runner starts the target
program) passes under `meson test`; after `vmexec binfmt remove` the entry is
gone, exec fails with "Exec format error" and the example's test fails.

The "other handler" is a dummy entry of this test (qemu-user's qemu-s390x
magic, interpreter /usr/bin/qemu-s390x). Registering changes the whole
machine: everything the test registers is removed in a finally block.

Environment: VMEXEC, PROBE (the s390x probe), BUILDDIR, SRCDIR. Skips (77)
when binfmt_misc cannot be used (not root, cannot mount it); under CI=true
that is a failure."""

import errno
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

from testlib import CI, check, finish, skip_or_fail

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
BUILDDIR = os.environ["BUILDDIR"]
SRCDIR = os.environ["SRCDIR"]
BINFMT = "/proc/sys/fs/binfmt_misc"
OURS = os.path.join(BINFMT, "vmexec-s390x")
OTHER_NAME = "qemu-s390x-vmexec-test"  # the dummy "other handler" of this test
OTHER = os.path.join(BINFMT, OTHER_NAME)
# qemu-binfmt-conf.sh's s390x entry
QEMU_S390X = (r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
              r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff")
# This process as the probe's `procs` prints it: seen only by a program that runs on this host (qemu-user).
with open("/proc/self/cmdline", "rb") as _f:
    SELF_PROC = b"\n%d %s\n" % (os.getpid(), _f.read().split(b"\0")[0])
HOST_TARGET = {"x86_64": "x86_64", "aarch64": "aarch64", "s390x": "s390x", "ppc64le": "ppc64el",
               "mips64": "mips64el", "i686": "i386"}.get(platform.machine())


def vmexec(*args, env=None, **kw):
    return subprocess.run([VMEXEC, *args], capture_output=True, text=True, env=env or ENV, timeout=600, **kw)


def unregister(path):
    """Remove a binfmt_misc entry if it exists."""
    if os.path.exists(path):
        with open(path, "w") as f:
            f.write("-1")


def first_line(path):
    with open(path) as f:
        return f.readline().strip()


def s390x_status():
    r = vmexec("binfmt", "status")
    m = re.search(r"^s390x +(.*)$", r.stdout, re.M)
    return m.group(1) if m else f"(no s390x line: {r.stdout!r} {r.stderr!r})"


def usable():
    if os.geteuid() != 0:
        skip_or_fail("not root: this test registers binfmt_misc entries")
    if not os.path.exists(os.path.join(BINFMT, "register")):
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], capture_output=True)
    if not os.path.exists(os.path.join(BINFMT, "register")):
        skip_or_fail(f"binfmt_misc is not mounted at {BINFMT} and cannot be mounted")
    if not os.path.exists(PROBE):
        skip_or_fail(f"the s390x probe {PROBE} is missing (install gcc-s390x-linux-gnu and rebuild)")
    for tool in ["qemu-system-s390x", "nbdkit", "bash", "meson", "ninja", "s390x-linux-gnu-gcc"]:
        if not shutil.which(tool):
            skip_or_fail(f"{tool} is missing (scripts/install-deps installs it)")
    if HOST_TARGET == "s390x":
        skip_or_fail("this machine is s390x itself: vmexec never registers for it")
    # Leftovers of an earlier run of this test, then nobody else may handle s390x.
    unregister(OURS)
    unregister(OTHER)
    status = s390x_status()
    if status != "nobody":
        skip_or_fail(f"s390x programs already have a binfmt_misc handler ({status}); this test would disturb it")


def test_print_and_refusals():
    r = vmexec("binfmt", "install", "--print", "s390x")
    lines = [l for l in r.stdout.splitlines() if not l.startswith("#")]
    interp = os.path.join(os.path.dirname(VMEXEC), "vmexec-binfmt")
    want = ":vmexec-s390x:M::%s:%s:%s:PF" % (QEMU_S390X[0].replace("ELF", r"\x45\x4c\x46"), QEMU_S390X[1], interp)
    check(r.returncode == 0 and lines == [want], f"--print s390x prints the binfmt.d line: {r.stdout!r}")
    check(not os.path.exists(OURS), "--print registers nothing")
    r = vmexec("binfmt", "install", "--print", "--all")
    names = re.findall(r"^:vmexec-([^:]+):", r.stdout, re.M)
    native = {"x86_64": ["x86_64", "i386"], "aarch64": ["aarch64"]}.get(HOST_TARGET, [HOST_TARGET])
    check("s390x" in names and not set(native) & set(names),
          f"--print --all has the foreign targets and not the native ones {native}: {names}")
    if HOST_TARGET:
        r = vmexec("binfmt", "install", HOST_TARGET)
        check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and "natively" in r.stderr,
              f"install {HOST_TARGET} (this machine's own) is refused in one line: {r.returncode} {r.stderr!r}")
    if shutil.which("setpriv"):
        # A copy of vmexec and vmexec-tools: the build tree may sit where only root can read.
        copy = tempfile.mkdtemp(prefix="vmexec-test-copy-")
        os.chmod(copy, 0o755)
        shutil.copy2(VMEXEC, copy)
        shutil.copy2(os.path.join(os.path.dirname(VMEXEC), "vmexec-tools"), copy)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            os.path.join(copy, os.path.basename(VMEXEC)), "binfmt", "install", "s390x"],
                           capture_output=True, text=True, env=ENV, cwd=copy)
        shutil.rmtree(copy, ignore_errors=True)
        check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and "root" in r.stderr,
              f"without root, install says it needs root in one line: {r.returncode} {r.stderr!r}")
    if shutil.which("unshare"):
        # binfmt_misc unmounted in a private mount namespace only
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'umount {BINFMT} && exec "$0" binfmt install s390x', VMEXEC],
                           capture_output=True, text=True, env=ENV)
        check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and "mount -t binfmt_misc" in r.stderr,
              f"binfmt_misc not mounted: one line says how to mount it: {r.returncode} {r.stderr!r}")
    check(os.path.exists(os.path.join(BINFMT, "register")), "binfmt_misc is still mounted here")


def test_other_handler():
    with open(os.path.join(BINFMT, "register"), "w") as f:
        f.write(f":{OTHER_NAME}:M::{QEMU_S390X[0]}:{QEMU_S390X[1]}:/usr/bin/qemu-s390x:")
    check(OTHER_NAME in s390x_status() and "/usr/bin/qemu-s390x" in s390x_status(),
          f"status names the other handler for s390x: {s390x_status()!r}")
    if shutil.which("qemu-s390x"):
        r = subprocess.run(["./prog-s390x", "procs"], cwd=WORK, env=dict(ENV, QEMU_LD_PREFIX="/usr/s390x-linux-gnu"),
                           capture_output=True, timeout=120)
        check(SELF_PROC in b"\n" + r.stdout, "with the other handler, s390x programs run under qemu-user (they see this "
              f"test's host process {SELF_PROC!r})")
    r = vmexec("binfmt", "install", "s390x")
    check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and OTHER_NAME in r.stderr and "--force" in r.stderr,
          f"install refuses to replace the other handler without --force, in one line: {r.returncode} {r.stderr!r}")
    check(not os.path.exists(OURS) and first_line(OTHER) == "enabled", "and changed nothing")
    r = vmexec("binfmt", "install", "--force", "s390x")
    check(r.returncode == 0 and f"disabled the entry {OTHER_NAME}" in r.stdout,
          f"install --force registers and says it disabled the other entry: {r.returncode} {r.stdout!r} {r.stderr!r}")
    check(os.path.exists(OTHER) and first_line(OTHER) == "disabled", "the other entry is disabled, not removed")
    with open(OURS) as f:
        entry = f.read()
    check(entry.startswith("enabled\ninterpreter /") and "vmexec-binfmt\n" in entry and "flags: PF\n" in entry,
          f"vmexec-s390x is registered with vmexec-binfmt and flags PF: {entry!r}")
    st = s390x_status()
    check("vmexec [vmexec-s390x, enabled, flags PF" in st and f"{OTHER_NAME}, disabled" in st,
          f"status shows vmexec handling s390x, and the disabled other entry: {st!r}")


def test_python_execs():
    def run(args, **kw):
        return subprocess.run(args, cwd=WORK, env=ENV, capture_output=True, timeout=600, **kw)
    r = run(["./prog-s390x", "hello"])
    check(r.returncode == 0 and r.stdout == b"hello from s390x big-endian\n",
          f"python: ./prog-s390x runs on s390x: {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")
    r = run(["./prog-s390x", "exit", "42"])
    check(r.returncode == 42, f"python: exit status 42: {r.returncode}")
    r = run(["./prog-s390x", "args", "a", "b c"])
    check(r.stdout == b"a\0b c\0", f"python: arguments: {r.stdout!r}")
    r = run(["./prog-s390x", "argv0"])
    check(r.stdout == b"./prog-s390x\n", f"python: argv[0] as given: {r.stdout!r}")
    r = run(["custom-name", "argv0"], executable="./prog-s390x")
    check(r.stdout == b"custom-name\n", f"python: a different argv[0] is preserved (flag P): {r.stdout!r}")
    r = run([os.path.join(WORK, "prog-s390x"), "cat"], input=b"through stdin\n")
    check(r.returncode == 0 and r.stdout == b"through stdin\n", f"python: stdin, by absolute path: {r.stdout!r}")
    r = run(["./prog-s390x", "signal", "segv"])
    check(r.returncode == -11, f"python: death by SIGSEGV is -11: {r.returncode} {r.stderr[-200:]!r}")
    r = run(["./prog-s390x", "procs"])
    check(r.returncode == 0 and SELF_PROC not in b"\n" + r.stdout,
          f"python: the program runs in the guest, not under qemu-user: {r.stdout[:300]!r}")


SHELL_SCRIPT = """#!/bin/bash
./prog-s390x exit 42; echo "exit=$?"
prog-s390x say "found on PATH" 7; echo "say=$?"
(exec -a shell-argv0 ./prog-s390x argv0)
echo piped | ./prog-s390x cat
./prog-s390x signal segv; echo "segv=$?"
"""


def test_shell_execs():
    script = os.path.join(WORK, "host-script.sh")
    with open(script, "w") as f:
        f.write(SHELL_SCRIPT)
    os.chmod(script, 0o755)
    env = dict(ENV, PATH=WORK + os.pathsep + ENV["PATH"])
    r = subprocess.run([script], cwd=WORK, env=env, capture_output=True, text=True, timeout=900)
    want = "exit=42\nfound on PATH\nsay=7\nshell-argv0\npiped\nsegv=139\n"
    check(r.returncode == 0 and r.stdout == want,
          f"bash: exit statuses, PATH lookup, argv[0], a pipe, SIGSEGV: {r.stdout!r} {r.stderr[-300:]!r}")
    return script, env


def example(setup):
    """The example project: configure (once) and run `meson test`; returns (status, test log)."""
    build = os.path.join(WORK, "example-build")
    if setup:
        r = subprocess.run(["meson", "setup", "--cross-file", os.path.join(BUILDDIR, "cross-files", "s390x-vmexec"),
                            os.path.join(SRCDIR, "tests", "examples", "binfmt"), build],
                           env=ENV, capture_output=True, text=True, timeout=900)
        check(r.returncode == 0, f"the example configures with the s390x-vmexec cross file: {r.stdout[-1000:]!r}")
    r = subprocess.run(["meson", "test", "-C", build], env=ENV, capture_output=True, text=True, timeout=900)
    log = ""
    try:
        with open(os.path.join(build, "meson-logs", "testlog.txt")) as f:
            log = f.read()
    except OSError:
        pass
    return r.returncode, r.stdout + log


def guest_runs():
    """(number of s390x guests running, their status lines)."""
    r = vmexec("status")
    lines = [l for l in r.stdout.splitlines() if l.startswith("s390x")]
    return len(lines), lines


def test_removed(script, env):
    r = vmexec("binfmt", "remove", "s390x")
    check(r.returncode == 0 and "removed vmexec-s390x" in r.stdout and not os.path.exists(OURS),
          f"remove s390x: the entry is gone: {r.stdout!r} {r.stderr!r}")
    check(OTHER_NAME in r.stdout and "stays disabled" in r.stdout, f"remove says the other entry stays disabled: "
          f"{r.stdout!r}")
    unregister(OTHER)
    check(s390x_status() == "nobody", f"status: nobody handles s390x now: {s390x_status()!r}")
    try:
        subprocess.run(["./prog-s390x", "exit", "42"], cwd=WORK, env=ENV, timeout=60)
        check(False, "python: exec of an s390x program fails now")
    except OSError as e:
        check(e.errno == errno.ENOEXEC, f"python: exec fails with ENOEXEC (Exec format error): {e}")
    r = subprocess.run([script], cwd=WORK, env=env, capture_output=True, text=True, timeout=300)
    check(r.stdout.startswith("exit=126\n") and "Exec format error" in r.stderr,
          f"bash: exec fails with 126, Exec format error: {r.stdout!r} {r.stderr[-300:]!r}")
    r = vmexec("binfmt", "remove", "s390x")
    check(r.returncode == 0 and "was not registered" in r.stdout, f"a second remove says so: {r.stdout!r}")


def main():
    usable()
    shutil.copy(PROBE, os.path.join(WORK, "prog-s390x"))
    try:
        test_print_and_refusals()
        test_other_handler()
        if os.path.exists(OURS):
            test_python_execs()
            script, env = test_shell_execs()
            status, log = example(setup=True)
            check(status == 0 and re.search(r"runner +OK", log) is not None,
                  f"the example's meson test (a host runner exec'ing the s390x program) passes: {status} {log[-1500:]!r}")
            n, lines = guest_runs()
            check(n == 1, f"every start, direct or nested under meson test, used one persistent s390x guest: {lines}")
            test_removed(script, env)
            status, log = example(setup=False)
            check(status != 0 and "Exec format error" in log,
                  f"without the handler the example's test fails (Exec format error): {status} {log[-800:]!r}")
    finally:
        unregister(OURS)
        unregister(OTHER)
        check(not os.path.exists(OURS) and not os.path.exists(OTHER), "nothing of this test stays registered")
        subprocess.run([VMEXEC, "stop", "--all"], env=ENV, capture_output=True)
        shutil.rmtree(WORK, ignore_errors=True)
    return finish()


WORK = tempfile.mkdtemp(prefix="vmexec-test-binfmt-")
os.chmod(WORK, 0o755)
_runtime = os.path.join(WORK, "runtime")  # this test's own guests
os.mkdir(_runtime, 0o700)
ENV = dict(os.environ, XDG_RUNTIME_DIR=_runtime, VMEXEC_IDLE_TIMEOUT="600",
           PATH=os.path.dirname(VMEXEC) + os.pathsep + os.environ["PATH"])
for _var in ["MESON_TESTTHREADS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS"]:
    ENV.pop(_var, None)

if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
