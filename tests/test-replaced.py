#!/usr/bin/env python3
"""Guest test: vmexec rebuilt or upgraded while its guest runs. The guest
was started from the old files (vmexec, its agent); the next call must get a
guest of the new ones, and a call running at that moment must end as it
would have. Checked on a copy of vmexec whose files are replaced as an
upgrade replaces them (a new file renamed over the old): the agent, then
vmexec-tools (the supervisor's own executable).

Environment: VMEXEC, PROBE (the s390x probe), BUILDDIR. Under CI=true a
missing prerequisite is a failure, never a skip (77)."""

import os
import re
import shutil
import subprocess
import sys
import time

from testlib import check, guest_main, private_top, world_readable_copy

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
TOP, RUNTIME, ENV = private_top("vmexec-test-replaced-", VMEXEC_IDLE_TIMEOUT="600")
COPY = {}


def setup():
    # The image first (built on first use), with this build's vmexec; its
    # guest stopped, so that the copy starts its own.
    r = subprocess.run([VMEXEC, PROBE, "hello"], env=ENV, capture_output=True, text=True, timeout=1800)
    check(r.returncode == 0, f"the build's vmexec runs the probe: {r.returncode} {r.stderr[-300:]!r}")
    subprocess.run([VMEXEC, "stop", "--all"], env=ENV, capture_output=True, timeout=600)
    top, extra = world_readable_copy(VMEXEC, files=(PROBE,))
    COPY.update(top=top, vmexec=os.path.join(top, "vmexec"), probe=os.path.join(top, os.path.basename(PROBE)))
    ENV.update(extra)


def vm(*args, **kw):
    return subprocess.run([COPY["vmexec"], *args], env=ENV, capture_output=True, text=True, timeout=600, **kw)


def qemu_pid():
    """The running s390x guest's qemu pid, or None."""
    m = re.search(r"qemu pid (\d+)", vm("status").stdout)
    return int(m.group(1)) if m else None


def replace(path):
    """Replace PATH as an upgrade does: the same bytes in a new file renamed over it."""
    shutil.copy2(path, path + ".new")
    os.rename(path + ".new", path)


def hello(what):
    r = vm(COPY["probe"], "hello")
    check(r.returncode == 0 and "hello from s390x" in r.stdout, f"{what}: {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")


def while_running(path, what):
    """A call that runs for a few seconds; PATH replaced meanwhile; then a
    new call. Both must succeed, the new one in a new guest."""
    hello(f"a call before {what} is replaced")
    before = qemu_pid()
    check(before is not None, f"the guest runs before {what} is replaced")
    long = subprocess.Popen([COPY["vmexec"], "--target", "s390x", "--", "sh", "-c", "sleep 4; echo long done"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while "1 running" not in vm("status").stdout and time.monotonic() < deadline and long.poll() is None:
        time.sleep(0.1)
    replace(path)
    hello(f"a call after {what} was replaced, while another ran")
    out, err = long.communicate(timeout=600)
    check(long.returncode == 0 and out == "long done\n",
          f"the call running while {what} was replaced ends as it would have: {long.returncode} {out!r} {err[-300:]!r}")
    after = qemu_pid()
    check(after is not None and after != before,
          f"the call after {what} was replaced ran in a new guest: qemu pid {before} then {after}")


def test_agent():
    while_running(os.path.join(COPY["top"], "agents", "vmexec-agent-s390x"), "the agent")


def test_tools():
    while_running(os.path.join(COPY["top"], "vmexec-tools"), "vmexec-tools")


def cleanup_copy():
    if COPY:
        vm("stop", "--all")
        shutil.rmtree(COPY["top"], ignore_errors=True)


if __name__ == "__main__":
    try:
        status = guest_main([test_agent, test_tools], VMEXEC, ENV, TOP, setup=setup)
    finally:
        cleanup_copy()
    sys.exit(status)
