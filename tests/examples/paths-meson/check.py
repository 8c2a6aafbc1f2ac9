#!/usr/bin/env python3
"""The tmpfiles test of the paths example: a host script that makes a
temporary directory (tempfile.mkdtemp, under /tmp), writes an input file
there and runs the target program PROG on it, through $MESON_EXE_WRAPPER
when Meson gives one (a cross build). The program writes its output next to
the input; the test passes if that file holds the input in upper case.
Usage: check.py PROG."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

prog = sys.argv[1]
wrapper = shlex.split(os.environ.get("MESON_EXE_WRAPPER", ""))
tmp = tempfile.mkdtemp(prefix="paths-example-")
try:
    src, dst = os.path.join(tmp, "input.txt"), os.path.join(tmp, "output.txt")
    with open(src, "w") as f:
        f.write("hello from a temporary directory\n")
    r = subprocess.run(wrapper + [prog, src, dst], capture_output=True, text=True, timeout=600)
    got = open(dst).read() if os.path.exists(dst) else None
    print(f"{' '.join(wrapper + [prog, src, dst])}: exit {r.returncode}, output file {got!r}, stderr {r.stderr!r}")
    sys.exit(0 if r.returncode == 0 and got == "HELLO FROM A TEMPORARY DIRECTORY\n" else 1)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
