#!/usr/bin/env python3
"""Unit test of issue 14's defect 10e: the runtime directory may be swapped
for a symlink between vmexec's check and its use. An LD_PRELOAD shim
(tests/rundir-swap.c) swaps $XDG_RUNTIME_DIR/vmexec for a symlink to a
victim directory right after vmexec's lstat() of it; vmexec must not change
the victim (its mode, its contents) and must say what happened in one line.

Environment: VMEXEC, RUNDIR_SWAP (the shim). No guest."""

import os
import stat
import subprocess
import sys
import tempfile

from testlib import check, finish

VMEXEC = os.environ["VMEXEC"]
SHIM = os.environ["RUNDIR_SWAP"]


def main():
    top = tempfile.mkdtemp(prefix="vmexec-rundir-race-")
    runtime = os.path.join(top, "runtime")
    os.mkdir(runtime, 0o700)
    base = os.path.join(runtime, "vmexec")
    os.mkdir(base)
    os.chmod(base, 0o755)  # not private yet: vmexec makes it so
    victim = os.path.join(top, "victim")
    os.mkdir(victim)
    os.chmod(victim, 0o755)
    # verify_asan_link_order: the ASan build of vmexec accepts the shim first.
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, LD_PRELOAD=SHIM, ASAN_OPTIONS="verify_asan_link_order=0",
               RUNDIR_SWAP_PATH=base, RUNDIR_SWAP_VICTIM=victim)
    r = subprocess.run([VMEXEC, "stop", "s390x"], env=env, capture_output=True, timeout=60)
    err = r.stderr.decode()
    check("rundir-swap:" in err, f"the shim swapped the runtime directory during the call: {err!r}")
    mode = stat.S_IMODE(os.stat(victim).st_mode)
    check(mode == 0o755, f"the victim's mode is unchanged (0755): {oct(mode)}")
    check(os.listdir(victim) == [], f"nothing was made in the victim: {os.listdir(victim)}")
    lines = [l for l in err.splitlines() if not l.startswith("rundir-swap:")]
    check(r.returncode != 0 and len(lines) == 1 and "changed" in lines[0],
          f"the call fails with one line naming the change: {r.returncode} {lines!r}")
    subprocess.run(["rm", "-rf", top])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
