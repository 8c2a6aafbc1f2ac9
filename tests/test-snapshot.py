#!/usr/bin/env python3
"""Guest test of cold starts from a memory snapshot (issue 13), on s390x:

- the first start of a guest boots and saves the booted, idle guest next to
  its image (supervisor.log names the file);
- a cold start with the snapshot present restores it: a program runs and
  exits as it should, the guest's clock is the host's (within seconds, not
  the snapshot's time), and /dev/urandom gives other bytes than after another
  restore of the same snapshot (the agent reseeded the kernel's generator);
- a corrupt snapshot falls back to a boot (one line in supervisor.log), the
  call still runs, and a good snapshot replaces the bad one.

The guests get their own memory size (VMEXEC_MEMORY), so their snapshot is
this test's own (the machine options are part of its key).

Environment: VMEXEC, PROBE (probe-s390x)."""

import os
import re
import subprocess
import sys
import time

from testlib import check, guest_main, private_top

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
top, runtime, ENV = private_top("vmexec-test-snapshot-", VMEXEC_MEMORY="448", VMEXEC_IDLE_TIMEOUT="600")
LOG = os.path.join(runtime, "vmexec", "s390x", "supervisor.log")
GUEST_FACTS = "date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo"
snapshot = None


def vm(*args, timeout=900):
    return subprocess.run([VMEXEC, *args], env=ENV, capture_output=True, timeout=timeout)


def log():
    with open(LOG) as f:
        return f.read()


def cold(*args):
    """Stop the guest, then a call that starts it: (result, supervisor log)."""
    vm("stop", "--all")
    r = vm(*args)
    return r, log()


def first_start():
    global snapshot
    r, text = cold(PROBE, "hello")
    check(r.returncode == 0 and r.stdout == b"hello from s390x big-endian\n",
          f"the first call runs: {r.returncode} {r.stderr[-300:]!r}")
    m = re.search(r"snapshot saved to (\S+) in", text) or re.search(r"on the snapshot (\S+)\n", text)
    check(m is not None, f"supervisor.log names the snapshot it saved (or restored): {text[-600:]!r}")
    snapshot = m.group(1) if m else None
    check(snapshot is not None and os.path.getsize(snapshot) > 0, f"the snapshot file exists: {snapshot}")


def restored_facts():
    """A cold call on the snapshot: (guest's clock - host's, random hex)."""
    r, text = cold("--target", "s390x", "--", "sh", "-c", GUEST_FACTS)
    host = time.time()
    check("restored from " in text and "did not restore" not in text,
          f"the cold start restored the snapshot: {text[-600:]!r}")
    lines = r.stdout.decode(errors="replace").split()
    check(r.returncode == 0 and len(lines) == 2, f"date and urandom ran: {r.returncode} {r.stdout!r} {r.stderr!r}")
    if r.returncode != 0 or len(lines) != 2:
        return None, None
    return int(lines[0]) - host, lines[1]


def restores():
    if not snapshot:
        return
    r, text = cold(PROBE, "exit", "7")
    check(r.returncode == 7 and "restored from " in text,
          f"a program runs in a restored guest and exits as it did: {r.returncode} {r.stderr[-300:]!r}")
    skew1, random1 = restored_facts()
    skew2, random2 = restored_facts()
    for skew in (skew1, skew2):
        check(skew is not None and abs(skew) <= 5, f"the restored guest's clock is the host's: off by {skew} s")
    check(random1 is not None and len(random1) == 32 and random1 != random2,
          f"two restores of one snapshot give different random bytes: {random1} {random2}")


def corrupt():
    if not snapshot:
        return
    size = os.path.getsize(snapshot)
    with open(snapshot, "r+b") as f:  # a megabyte of garbage in the middle
        f.seek(size // 3)
        f.write(os.urandom(min(1 << 20, size // 3)))
    r, text = cold(PROBE, "hello")
    check(r.returncode == 0 and r.stdout == b"hello from s390x big-endian\n",
          f"a call on a corrupt snapshot still runs: {r.returncode} {r.stderr[-300:]!r}")
    said = [l for l in text.splitlines() if "did not restore" in l]
    check(len(said) == 1 and "booting instead" in said[0], f"one line says it booted instead: {text[-800:]!r}")
    check("snapshot saved to " in text, f"a good snapshot replaced the corrupt one: {text[-400:]!r}")
    r, text = cold(PROBE, "hello")
    check(r.returncode == 0 and "restored from " in text, f"the new snapshot restores: {text[-400:]!r}")


sys.exit(guest_main([first_start, restores, corrupt], VMEXEC, ENV, top, needs=("qemu-system-s390x", "nbdkit", "zstd")))
