#!/usr/bin/env python3
"""Guest test of the caller's descriptors 3 and up that are open for writing:
the program has them at the same numbers, and what it (and its children)
write there reaches the caller's descriptor, in order, at the caller's
offset or appended (bats writes TAP to fd 3, `prog 3>log`, `exec 5>&1`).
A real s390x guest runs the probe (tests/guest/probe.c); the calls go
through a shell's redirections, as a harness makes them.

Environment: VMEXEC, PROBE (the s390x probe), BUILDDIR. Under CI=true a
missing prerequisite is a failure, never a skip (77)."""

import os
import signal
import subprocess
import sys

from testlib import check, guest_main, private_top, skip_or_fail

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
TOP, RUNTIME, ENV = private_top("vmexec-test-fds-", VMEXEC_IDLE_TIMEOUT="600")
DATA = os.path.join(TOP, "data")


def sh(script, **kw):
    """SCRIPT run by sh with $V (vmexec), $P (the probe) and $D (a data
    directory) set; its stdout and stderr captured."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    env = dict(ENV, V=VMEXEC, P=PROBE, D=DATA, **kw.pop("env", {}))
    return subprocess.run(["sh", "-c", script], env=env, timeout=600, **kw)


def read(name):
    path = os.path.join(DATA, name)
    return open(path, "rb").read() if os.path.exists(path) else None


def write(name, data):
    with open(os.path.join(DATA, name), "wb") as f:
        f.write(data)


def test_file():
    r = sh('"$V" "$P" write-fd 3 text 3>"$D/f1"')
    got = read("f1")
    check(r.returncode == 0 and got == b"text\n" and r.stdout == b"",
          f"`probe write-fd 3 text 3>file` lands in the file: {r.returncode} {got!r} {r.stderr[-300:]!r}")


def test_pipe():
    # fd 3 is the caller's pipe (our stdout), stdout goes elsewhere.
    r = sh('"$V" "$P" write-fd 3 "ok 1 - tap" 1 out 3>&1 >"$D/p1"')
    check(r.returncode == 0 and r.stdout == b"ok 1 - tap\n" and read("p1") == b"out\n",
          f"fd 3 a pipe to the caller: {r.returncode} {r.stdout!r} {read('p1')!r} {r.stderr[-300:]!r}")


def test_two_fds():
    r = sh('"$V" "$P" write-fd 3 a 4 b 3 c 3>"$D/t3" 4>"$D/t4"')
    check(r.returncode == 0 and read("t3") == b"a\nc\n" and read("t4") == b"b\n",
          f"two fds, each its own file: {r.returncode} {read('t3')!r} {read('t4')!r} {r.stderr[-300:]!r}")


def test_order_with_stdout():
    want = b"".join(b"o%d\nf%d\n" % (i, i) for i in range(200))
    # `exec 5>&1` into a pipe: one open file, the order as written.
    r = sh('"$V" "$P" interleave-fd 5 200 5>&1')
    check(r.returncode == 0 and r.stdout == want,
          f"fd 5 the same pipe as stdout keeps the order: {r.returncode} {r.stdout[:60]!r} {r.stderr[-300:]!r}")
    # And into a file (stdout a file in the guest, fd 5 a copy of it).
    r = sh('"$V" "$P" interleave-fd 5 200 >"$D/o1" 5>&1')
    got = read("o1")
    check(r.returncode == 0 and got == want,
          f"fd 5 the same file as stdout keeps the order: {r.returncode} {(got or b'')[:60]!r} {r.stderr[-300:]!r}")


def test_offsets():
    # The caller's offset: the program writes where the caller left it, and
    # the caller goes on after the program's bytes.
    r = sh('{ echo pre >&3; "$V" "$P" write-fd 3 mid; echo post >&3; } 3>"$D/s1"')
    got = read("s1")
    check(r.returncode == 0 and got == b"pre\nmid\npost\n",
          f"fd 3 at the caller's offset, moved as the program wrote: {got!r} {r.stderr[-300:]!r}")
    # O_APPEND: at the end, even after another writer grew the file.
    write("a1", b"first\n")
    r = sh('{ printf "other\\n" >>"$D/a1"; "$V" "$P" write-fd 3 app; } 3>>"$D/a1"')
    got = read("a1")
    check(r.returncode == 0 and got == b"first\nother\napp\n",
          f"fd 3 opened with O_APPEND appends: {got!r} {r.stderr[-300:]!r}")


def test_dev_null_and_kinds():
    r = sh('"$V" "$P" fd-is 3 4 5 3>/dev/null 4</dev/null 5<>/dev/null')
    check(r.returncode == 0 and r.stdout == b"null w\nnull r\nnull rw\n",
          f"/dev/null is the guest's, open as the caller's: {r.stdout!r} {r.stderr[-300:]!r}")
    # A file open for writing, one open for reading and writing (only
    # written: a pipe), a copy of stdout; a pipe open for reading only is
    # not passed.
    r = sh('echo | "$V" "$P" fd-is 3 4 6 7 3>"$D/k1" 4<>"$D/k2" 6>&1 7<&0')
    check(r.returncode == 0 and r.stdout == b"pipe w\npipe w\npipe w\nclosed\n",
          f"what the program has at fds 3, 4, 6, 7: {r.stdout!r} {r.stderr[-300:]!r}")
    r = sh('"$V" "$P" write-fd 4 rw 4<>"$D/k3"')
    check(r.returncode == 0 and read("k3") == b"rw\n", f"an O_RDWR fd is written: {read('k3')!r}")


def test_children_write():
    # The program's children write there too (a shell of the guest).
    r = sh('"$V" --target s390x -- sh -c "(echo child >&3); echo parent >&3; echo out" 3>"$D/c1"')
    check(r.returncode == 0 and read("c1") == b"child\nparent\n" and r.stdout == b"out\n",
          f"a child's writes to fd 3 land too: {r.returncode} {read('c1')!r} {r.stderr[-300:]!r}")


def test_background_child():
    # As with stdout: a child that keeps fd 3 open does not hold the call;
    # it is killed when the program ends, and what came before lands.
    r = sh('"$V" "$P" linger-fd 3 3>&1 >/dev/null')
    check(r.returncode == 0 and r.stdout == b"parent\n",
          f"a background child holding fd 3 does not hold the call: {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")


def test_much():
    # More than the credit window, and the bytes still in the pipe when the
    # program exits: all of them, in order. Its stdout and stderr are a file
    # (no pipe in the guest): the run waits for fd 3's pipe alone.
    n = 3_000_000
    r = sh(f'"$V" "$P" write 3 {n} 3>"$D/m1" >"$D/m1.out" 2>&1')
    got = read("m1") or b""
    want = (bytes(ord("a") + i % 26 for i in range(65536)) * (n // 65536 + 1))[:n]
    check(r.returncode == 0 and got == want and read("m1.out") == b"",
          f"{n} bytes to fd 3: {len(got)} arrived, same: {got == want}")
    # A reader that waits: the guest can send no more than the credit
    # window ahead (256 KiB), so the program's last bytes are still in its
    # pipe when it exits; they come all the same, then the end.
    n = 256 * 1024 + 32 * 1024
    r = sh(f'"$V" "$P" write 3 {n} 3>&1 >"$D/m2.out" 2>&1 | (sleep 3; cat)')
    check(r.returncode == 0 and r.stdout == want[:n],
          f"{n} bytes to fd 3, a pipe whose reader waits: {len(r.stdout)} arrived, same: {r.stdout == want[:n]}")


def test_reader_gone():
    # The caller's fd 3 is a pipe whose reader left: the program's next
    # write there fails as natively, with SIGPIPE.
    rd, wr = os.pipe()
    os.close(rd)
    r = sh('exec "$V" "$P" yes-fd 3 3>&"$W"', env={"W": str(wr)}, pass_fds=(wr,))
    os.close(wr)
    check(r.returncode == -signal.SIGPIPE, f"fd 3 whose reader left: the program dies of SIGPIPE: {r.returncode} "
          f"{r.stderr[-300:]!r}")


def test_limits():
    # The first 8 such fds go, the others do not; nor does one from 256 up.
    fds = list(range(100, 109)) + [300]
    opened = []
    try:
        for i, fd in enumerate(fds):
            tmp = os.open(os.path.join(DATA, f"l{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(tmp, fd, inheritable=True)
            os.close(tmp)
            opened.append(fd)
        r = subprocess.run([VMEXEC, PROBE, "fd-is", *map(str, fds)], env=ENV, pass_fds=opened,
                           capture_output=True, timeout=600)
    finally:
        for fd in opened:
            os.close(fd)
    want = b"pipe w\n" * 8 + b"closed\n" * 2
    check(r.returncode == 0 and r.stdout == want, f"8 fds at most, below 256: {r.stdout!r} {r.stderr[-300:]!r}")


def main():
    if not os.path.exists(PROBE):
        skip_or_fail(f"no s390x probe at {PROBE}: install its cross compiler (scripts/install-deps)")
    os.mkdir(DATA)
    tests = [test_file, test_pipe, test_two_fds, test_order_with_stdout, test_offsets, test_dev_null_and_kinds,
             test_children_write, test_background_child, test_much, test_reader_gone, test_limits]
    only = sys.argv[1:]
    return guest_main([t for t in tests if not only or t.__name__ in only], VMEXEC, ENV, TOP,
                      needs=("qemu-system-s390x",))


if __name__ == "__main__":
    sys.exit(main())
