#!/usr/bin/env python3
"""Guest test of debugging (issue 17): an s390x program built with -g runs
under the target's gdbserver in a real guest (`vmexec --gdbserver`), and
gdb-multiarch on the host debugs it through the command line that `vmexec
--gdb` prints without a terminal, in batch mode: break main, continue, step,
print a local variable, backtrace, continue; the program then exits with its
own status. Also: meson test --gdb --gdb-path vmexec's form of the call, and
`vmexec --gdb` on a host terminal starting gdb itself.

Environment: VMEXEC. CI=true: no skips."""

import os
import re
import subprocess
import sys

from testlib import HostTerminal, check, guest_main, private_top

VMEXEC = os.environ["VMEXEC"]

top, runtime, ENV = private_top("vmexec-gdb-test-", VMEXEC_IDLE_TIMEOUT="600")
WORK = os.path.join(top, "work")
os.mkdir(WORK)

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
  int answer = 6 * 7 + argc;
  printf("answer %d\n", answer);
  return argc > 1 ? atoi(argv[1]) : 0;
}
"""

# What gdb is told after the printed command line: it then runs in batch mode.
BATCH = ["-batch", "-ex", "break main", "-ex", "continue", "-ex", "next", "-ex", "print answer", "-ex", "bt",
         "-ex", "continue"]


def build():
    with open(os.path.join(WORK, "prog.c"), "w") as f:
        f.write(PROGRAM)
    subprocess.run(["s390x-linux-gnu-gcc", "-g", "-O0", "-o", "prog", "prog.c"], cwd=WORK, check=True)


def printed_line(*args):
    """What vmexec prints without a terminal for ARGS: (status, line)."""
    r = subprocess.run([VMEXEC, *args], cwd=WORK, env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=900)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_print_line():
    status, out, err = printed_line("--gdb", "./prog", "3")
    check(status == 0, f"vmexec --gdb without a terminal exits 0: {status} {err!r}")
    check(out.count("\n") == 1 and out.startswith("gdb-multiarch "), f"it prints one gdb-multiarch line: {out!r}")
    check("'set architecture s390:64-bit'" in out, "the line sets the target's architecture")
    check("set sysroot " in out, "the line sets the sysroot (the guest's libraries)")
    check(re.search(r"'target remote \| \S+ --gdbserver -- \./prog 3'", out) is not None,
          "the line attaches through vmexec --gdbserver with the program's arguments")
    check(out.rstrip().endswith(" ./prog"), "the line loads the program's symbols")
    # meson test --gdb --gdb-path vmexec runs: vmexec --quiet --args EXE_WRAPPER PROGRAM ARGS.
    status, meson_out, err = printed_line("--quiet", "--args", VMEXEC, "./prog", "3")
    check(status == 0 and meson_out == out, f"meson test --gdb's form prints the same line: {meson_out!r} {err!r}")


def test_batch():
    status, line, err = printed_line("--gdb", "./prog", "3")
    argv = ["sh", "-c", line.strip() + ' "$@"', "sh", *BATCH]
    r = subprocess.run(argv, cwd=WORK, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, timeout=1200)
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    print(out + err)
    check(re.search(r"Breakpoint 1, main \(argc=2, argv=0x[0-9a-f]+\) at prog\.c:7", out) is not None,
          "gdb stops at the breakpoint in main, with its arguments")
    check(re.search(r"^\$1 = 44$", out, re.M) is not None, "print shows the local variable's value (44)")
    check(re.search(r"^#0  main \(argc=2, .*\) at prog\.c:8$", out, re.M) is not None,
          "bt shows main at the line after next")
    check(re.search(r"\[Inferior 1 \(process \d+\) exited with code 03\]", out) is not None,
          "the program exits with its own status (3)")
    check("answer 44" in err, "the program's output arrives (gdbserver sends it to stderr)")
    check(r.returncode == 0, f"gdb-multiarch -batch exits 0: {r.returncode}")


def test_gdbserver_alone():
    # The protocol itself: gdb's first packet gets an answer on stdout, then a kill ends the program.
    r = subprocess.run([VMEXEC, "--gdbserver", "./prog"], cwd=WORK, env=ENV, input=b"+$?#3f",
                       capture_output=True, timeout=900)
    check(re.search(rb"\$T05", r.stdout) is not None, f"gdbserver answers '?' on stdout: {r.stdout[:80]!r}")
    check(b"Remote debugging using stdio" in r.stderr, "gdbserver speaks on stdio")


def test_terminal():
    term = HostTerminal([VMEXEC, "--gdb", "./prog", "5"], WORK, ENV, b"(gdb) ")
    try:
        check(term.expect(b"(gdb) ", 900) is not None, "with a terminal, gdb starts and prompts")
        out = term.run("break main")
        check(out is not None and "Breakpoint 1 at" in out, f"break main: {out!r}")
        out = term.run("continue", 600)
        check(out is not None and "Breakpoint 1, main" in out, f"continue stops in main: {out!r}")
        out = term.run("continue", 600)
        check(out is not None and "exited with code 05" in out, f"the program exits with 5: {out!r}")
        term.send(b"quit\r")
        check(term.wait_exit(60) == 0, "gdb quits")
    finally:
        term.close()


def main():
    needs = ("qemu-system-s390x", "nbdkit", "s390x-linux-gnu-gcc", "gdb-multiarch")
    return guest_main([test_print_line, test_batch, test_gdbserver_alone, test_terminal], VMEXEC, ENV, top,
                      setup=build, needs=needs)


if __name__ == "__main__":
    sys.exit(main())
