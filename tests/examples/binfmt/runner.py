#!/usr/bin/env python3
"""Host-side runner of the binfmt example: starts the target program PROG
directly (no wrapper), checks its output and exit status, and exits 0 if all
is well. Usage: runner.py PROG ENDIAN (the target's byte order, big or little)."""

import subprocess
import sys

prog, endian = sys.argv[1], sys.argv[2]
ok = True


def run(args, want_out, want_status):
    global ok
    try:
        r = subprocess.run([prog, *args], capture_output=True, text=True, timeout=600)
    except OSError as e:
        print(f"cannot start {prog}: {e}")
        ok = False
        return
    good = r.stdout == want_out and r.returncode == want_status
    print(f"{'ok' if good else 'FAIL'}: {prog} {args}: status {r.returncode}, output {r.stdout!r}")
    ok = ok and good


run(["one", "two words"], f"{endian}-endian [one] [two words]\n", 0)
run(["exit", "3"], f"{endian}-endian [exit] [3]\n", 3)
sys.exit(0 if ok else 1)
