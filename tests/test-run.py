#!/usr/bin/env python3
"""Guest test of the core promise: `vmexec ./prog args` behaves like `./prog
args` on the target. A real guest (qemu-system, TCG; s390x, or TARGET) runs the probe
program (tests/guest/probe.c). Checks exit codes, signals, streams, stdin,
stdout and stderr that are files,
argv and environment bytes, uid/gid, killing of the whole process tree,
a SIGTERM the program ignores (cancelled after the grace period or a second one),
concurrency, a share disk whose requests stop completing, one guest for simultaneous first calls, idle stop, `vmexec stop`
and a guest that dies under a run.

Environment: VMEXEC, PROBE (the probe built for TARGET), TARGET (default
s390x), BUILDDIR. Under CI=true a
missing prerequisite is a failure, never a skip (77)."""

import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from testlib import check, finish, skip_or_fail, world_readable_copy

VMEXEC = os.environ["VMEXEC"]
PROBE = os.environ["PROBE"]
TARGET = os.environ.get("TARGET", "s390x")
# What the probe's "hello" says on each target the suite runs (uname's
# machine, then the byte order), its "bits" (the byte order and word size of
# the program as it runs) and the qemu binary.
ROWS = {
    "s390x": ("s390x", "big", 64, "qemu-system-s390x"),
    "aarch64": ("aarch64", "little", 64, "qemu-system-aarch64"),
    "powerpc": ("ppc", "big", 32, "qemu-system-ppc"),
    "mips": ("mips", "big", 32, "qemu-system-mips"),
    "mipsel": ("mips", "little", 32, "qemu-system-mipsel"),
    "ppc64": ("ppc64", "big", 64, "qemu-system-ppc64"),
    "riscv64": ("riscv64", "little", 64, "qemu-system-riscv64"),
    "m68k": ("m68k", "big", 32, "qemu-system-m68k"),
    "sparc64": ("sparc64", "big", 64, "qemu-system-sparc64"),
}
_machine, _order, _bits, QEMU = ROWS[TARGET]
HELLO = f"hello from {_machine} {_order}-endian\n".encode()
BITS = f"{_order}-endian {_bits}-bit\n".encode()

# Each run of this test has its own supervisors (runtime dir); images come from
# the shared cache, built on first use.
runtime = tempfile.mkdtemp(prefix="vmexec-test-run-")
os.chmod(runtime, 0o755)
ENV = dict(os.environ, XDG_RUNTIME_DIR=runtime, VMEXEC_IDLE_TIMEOUT="600")


def vm(*args, env=None, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([VMEXEC, *args], env=env or ENV, timeout=900, **kw)


def probe(*args, env=None, **kw):
    return vm(PROBE, *args, env=env, **kw)


def status_lines(env=None):
    out = vm("status", env=env).stdout.decode()
    return [l for l in out.splitlines() if l.startswith(TARGET + "\t")]


def cleanup():
    vm("stop", "--all")
    shutil.rmtree(runtime, ignore_errors=True)


def test_first_calls_boot_one_guest():
    # Eight calls at the same moment, no guest yet: exactly one guest serves all.
    barrier = threading.Barrier(8)
    results = [None] * 8

    def call(i):
        barrier.wait()
        results[i] = probe("say", f"call{i}", str(i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        check(r.returncode == i and r.stdout == f"call{i}\n".encode(),
              f"simultaneous first call {i}: status {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr[-300:]!r}")
    lines = status_lines()
    check(len(lines) == 1 and "runs 8 " in lines[0], f"one guest served all 8 first calls: {lines}")


def test_hello():
    r = probe("hello")
    check(r.returncode == 0 and r.stdout == HELLO, f"the probe runs on {TARGET} in the guest: {r.stdout!r} {r.stderr!r}")
    r = probe("bits")
    check(r.returncode == 0 and r.stdout == BITS, f"the probe is {BITS.decode().strip()}: {r.stdout!r} {r.stderr!r}")


def test_loader_cache():
    # The image's libraries are found through /etc/ld.so.cache, made at boot
    # (agent/boot-jobs.c) when the image has the target's ldconfig: without
    # it ld.so tries some 250 hwcaps directories per library, each a system
    # call under TCG. Images of -cross libraries have no ldconfig.
    if vm("--target", TARGET, "--", "test", "-x", "/sbin/ldconfig").returncode != 0:
        return
    r = vm("--target", TARGET, "--", "env", "LD_DEBUG=libs", PROBE, "hello")
    log = r.stderr.decode(errors="replace")
    check(r.returncode == 0 and r.stdout == HELLO, f"the probe with LD_DEBUG=libs: {r.returncode} {log[-300:]!r}")
    check("search cache=/etc/ld.so.cache" in log and "search path=" not in log,
          f"libc.so.6 comes from the loader's cache, not a search: {log[:600]!r}")


def test_fixed_addresses():
    # Guests boot with norandmaps (supervisor/qemu-cmdline.c): a program and
    # its libraries at the same addresses in every process, so that TCG
    # reuses what it translated for the processes before.
    r = probe("copy", "/proc/sys/kernel/randomize_va_space", "/dev/stdout")
    check(r.returncode == 0 and r.stdout == b"0\n", f"no address space randomization in the guest: {r.stdout!r} {r.stderr[-200:]!r}")


def test_pages_zeroed_on_free():
    # Guests boot with init_on_free=1 (supervisor/qemu-cmdline.c): a freed
    # page is zeroed, so that TCG drops what it translated from it before
    # the page holds another program's data.
    r = probe("copy", "/proc/cmdline", "/dev/stdout")
    check(r.returncode == 0 and b"init_on_free=1" in r.stdout.split(), f"the guest zeroes freed pages: {r.stdout!r} {r.stderr[-200:]!r}")


def test_exit_codes():
    for code in (0, 1, 42, 77, 99, 255):
        r = probe("exit", str(code))
        check(r.returncode == code and r.stderr == b"", f"exit code {code} comes back: got {r.returncode} {r.stderr!r}")


def test_signals():
    for name, sig in (("segv", signal.SIGSEGV), ("abrt", signal.SIGABRT), ("kill", signal.SIGKILL)):
        r = probe("signal", name)
        check(r.returncode == -sig, f"death by SIG{name.upper()} is re-raised: returncode {r.returncode}")
    # SIGUSR1 sent to vmexec (the program's pid: see test_ids) reaches the
    # program alone, as kill(1) natively: its child, in its group, lives on.
    p = subprocess.Popen([VMEXEC, PROBE, "usr1"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    check(line == b"ready\n", f"the usr1 probe started ({line!r})")
    p.send_signal(signal.SIGUSR1)
    out, err = p.communicate(timeout=900)
    check(p.returncode == 0 and out == b"SIGUSR1, child alive\n",
          f"SIGUSR1 goes to the program, not its group: {p.returncode} {out!r} {err[-200:]!r}")


def pattern_digest(n):
    unit = bytes(ord("a") + i % 26 for i in range(65536))
    h = hashlib.sha256()
    left = n
    while left > 0:
        chunk = unit[: min(left, len(unit))]
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def log_tails():
    """The ends of the supervisor's and the guest console's logs, for a failure's message."""
    tails = []
    for name in ("supervisor.log", "console.log"):
        try:
            with open(os.path.join(runtime, "vmexec", TARGET, name), "rb") as f:
                tails.append(f"{name}: {f.read()[-1500:].decode(errors='replace')!r}")
        except OSError as e:
            tails.append(f"{name}: {e}")
    return "; ".join(tails)


def test_streams():
    for fd in (1, 2):
        for n in (0, 1, 100 * 1024 * 1024):
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                # 100 MiB take 1-10 s; a stream that stops (a lost virtio
                # notification once did) fails here with the logs, not at
                # the suite's deadline.
                try:
                    r = subprocess.run([VMEXEC, PROBE, "write", str(fd), str(n)], env=ENV, stdout=out, stderr=err,
                                       timeout=600)
                except subprocess.TimeoutExpired:
                    check(False, f"{n} bytes on fd {fd} arrive within 600 s (got {os.fstat(out.fileno()).st_size}, {os.fstat(err.fileno()).st_size}); "
                          f"{log_tails()}")
                    continue
                out.seek(0)
                err.seek(0)
                got = (out if fd == 1 else err).read()
                other = (err if fd == 1 else out).read()
            check(r.returncode == 0 and len(got) == n and hashlib.sha256(got).hexdigest() == pattern_digest(n)
                  and other == b"", f"{n} bytes on fd {fd} arrive complete and separate (got {len(got)}, other {len(other)})")


def qmp(command, **arguments):
    """One command on the guest's QMP socket (the supervisor holds it only
    while it saves or restores a snapshot); its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(os.path.join(runtime, "vmexec", TARGET, "qmp.sock"))
        f = s.makefile("rw")
        json.loads(f.readline())
        answer = None
        for c in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
            f.write(json.dumps(c) + "\n")
            f.flush()
            while True:
                answer = json.loads(f.readline())
                if "return" in answer or "error" in answer:
                    break
        return answer


def throttle_share(bps_rd):
    return qmp("block_set_io_throttle", device="share", bps=0, bps_rd=bps_rd, bps_wr=0, iops=0, iops_rd=0, iops_wr=0)


def test_disk_stall():
    """A share read that waits seconds, as a lost virtio notification would
    leave it (qemu's I/O throttle holds it instead): the agent notices that
    nothing completed and reads a block of that disk itself
    (agent/disk-watch.c), and the program still gets its data."""
    d = tempfile.mkdtemp(prefix="vmexec-stall-")
    try:
        for name, size in (("prime", 32 * 1024), ("cold", 48 * 1024)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(os.urandom(size))
        # A file too big for a patch (WIRE_PATCH_FILE_MAX): the directory
        # comes in a new generation, not in the patch layer (guest memory).
        with open(os.path.join(d, "filler"), "wb") as f:
            f.truncate(5 << 20)
        r = probe("say", d, "0")  # the share's generation now has both files, their data not read
        check(r.returncode == 0, f"a call that names a new directory: {r.returncode} {r.stderr!r}")
        # qemu's throttle lets a request through while its bucket is empty,
        # then holds the next ones until the bucket drained: reading the
        # 32 KiB first makes the 48 KiB wait some 4 s (at 8 KiB/s).
        answer = throttle_share(8192)
        check("return" in answer, f"the share disk throttled to 8 KiB/s through QMP: {answer}")
        try:
            primed = probe("copy", os.path.join(d, "prime"), "/dev/null")
            r = probe("copy", os.path.join(d, "cold"), "/dev/null")
        finally:
            throttle_share(0)
        check(primed.returncode == 0 and r.returncode == 0,
              f"the programs read their files through the throttled share: {primed.returncode} {r.returncode} {r.stderr!r}")
        with open(os.path.join(runtime, "vmexec", TARGET, "console.log"), "rb") as f:
            log = f.read().decode(errors="replace")
        check("requests in flight for over" in log and "reading a block to wake its queue" in log,
              f"the agent saw the share's requests stop completing and read a block: {log[-600:]!r}")
    finally:
        shutil.rmtree(d)


def test_stdin():
    r = probe("cat", stdin=subprocess.DEVNULL)
    check(r.returncode == 0 and r.stdout == b"", "stdin from /dev/null: end of file, program ends")
    data = os.urandom(3 * 1024 * 1024 + 17)
    r = probe("cat", input=data)
    check(r.returncode == 0 and r.stdout == data, f"stdin from a pipe (3 MiB) arrives exactly: {len(r.stdout)} bytes")
    with tempfile.TemporaryFile() as f:
        f.write(data[:100000])
        f.seek(0)
        r = probe("cat", stdin=f)
    check(r.returncode == 0 and r.stdout == data[:100000], "stdin from a file arrives exactly")
    # A named file: the program reads it in the guest as a file, from where
    # the caller's offset was, and leaves the caller's offset where it
    # stopped (`(head -1; cat) < file`); nothing is read ahead.
    named = os.path.join(runtime, "stdin.txt")
    with open(named, "wb") as f:
        f.write(b"abcdefgh\nline2\n")
    with open(named, "rb") as f:
        r = probe("head", "4", stdin=f)
        at = os.lseek(f.fileno(), 0, os.SEEK_CUR)
        check(r.returncode == 0 and r.stdout == b"file abcd 4\n" and at == 4,
              f"stdin from a named file is that file in the guest: {r.stdout!r} {r.stderr[-200:]!r}, "
              f"the caller's offset then {at}")
        os.lseek(f.fileno(), 9, os.SEEK_SET)
        r = probe("head", "4", stdin=f)
        at = os.lseek(f.fileno(), 0, os.SEEK_CUR)
        check(r.returncode == 0 and r.stdout == b"file line 13\n" and at == 13,
              f"... read from the caller's offset on: {r.stdout!r}, the caller's offset then {at}")
        # It is the file at that path in the guest (find -files0-from FILE < FILE).
        r = probe("stdin-is", named, stdin=f)
        check(r.returncode == 0 and r.stdout == f"same {named}\n".encode(),
              f"... the file at its path in the guest: {r.stdout!r} {r.stderr[-200:]!r}")
    r = probe("head", "4", input=b"abcdefgh")
    check(r.returncode == 0 and r.stdout == b"pipe abcd -1\n", f"stdin from a pipe is a pipe: {r.stdout!r}")
    # The caller's other files open for reading (`prog /dev/fd/4 4<file`)
    # are the program's at the same numbers.
    copied = os.path.join(runtime, "copied.txt")
    with open(named, "rb") as f:
        fd = os.dup2(f.fileno(), 7, inheritable=True)
        try:
            r = probe("copy", "/dev/fd/7", copied, pass_fds=(7,))
        finally:
            os.close(fd)
    got = open(copied, "rb").read() if os.path.exists(copied) else b""
    check(r.returncode == 0 and got == b"abcdefgh\nline2\n",
          f"a file the caller has open at fd 7 is the program's fd 7: {got!r} {r.stderr[-200:]!r}")


def test_stdout_file():
    # A named file: the program's stdout is a file in the guest too (it
    # seeks, rewrites behind, truncates), the host file ends up as natively,
    # and the caller's offset is where the program left its own.
    named = os.path.join(runtime, "stdout.txt")
    with open(named, "wb") as f:
        r = probe("seekout", stdout=f, stderr=subprocess.PIPE)
        at = os.lseek(f.fileno(), 0, os.SEEK_CUR)
    with open(named, "rb") as f:
        got = f.read()
    check(r.returncode == 0 and r.stderr == b"file 3\n" and got == b"012XY567" and at == 5,
          f"stdout to a file is a file in the guest: {r.stderr[-200:]!r}, the file {got!r}, the caller's offset {at}")
    # Appending (>>): the bytes go after what the file had, seek or not
    # (then the truncation to 8 bytes cuts into the file's old bytes).
    for command, want in ((("say", "appended", "0"), b"first\nappended\n"), (("seekout",), b"first\n01")):
        with open(named, "wb") as f:
            f.write(b"first\n")
        with open(named, "ab") as f:
            r = probe(*command, stdout=f, stderr=subprocess.PIPE)
        with open(named, "rb") as f:
            got = f.read()
        check(r.returncode == 0 and got == want, f"stdout appending to a file ({command[0]}): {got!r} {r.stderr!r}")
    # `{ echo a; vmexec ...; echo c; } > file`: each writes after the other.
    with open(named, "wb") as f:
        f.write(b"a\n")
        f.flush()
        r = probe("say", "b", "0", stdout=f)
        f.write(b"c\n")
    with open(named, "rb") as f:
        got = f.read()
    check(r.returncode == 0 and got == b"a\nb\nc\n", f"stdout to a file shared with the caller: {got!r}")
    # ... and with another call whose stderr is that file and which ends
    # later without writing (`vmexec a | vmexec b` in a script run >log
    # 2>&1): it leaves the offset where b took it.
    with open(named, "wb") as f:
        f.write(b"a\n")
        f.flush()
        quiet = subprocess.Popen([VMEXEC, PROBE, "cat"], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=f)
        quiet.stdin.write(b"x")
        quiet.stdin.flush()
        started = quiet.stdout.read(1)  # it runs: its stderr's offset was taken
        r = probe("say", "b", "0", stdout=f)
        quiet.communicate(timeout=900)
        f.write(b"c\n")
    with open(named, "rb") as f:
        got = f.read()
    check(r.returncode == 0 and quiet.returncode == 0 and started == b"x" and got == b"a\nb\nc\n",
          f"a call that did not write its stderr file leaves the offset another moved: {got!r}")
    # 2>&1: one stream, in the order of the writes, into a file or a pipe.
    want = b"".join(b"o%d\ne%d\n" % (i, i) for i in range(300))
    with open(named, "wb") as f:
        r = probe("interleave", "300", stdout=f, stderr=subprocess.STDOUT)
    with open(named, "rb") as f:
        got = f.read()
    check(r.returncode == 0 and got == want, f"stdout and stderr into one file keep their order: {got[:60]!r}...")
    r = probe("interleave", "300", stderr=subprocess.STDOUT)
    check(r.returncode == 0 and r.stdout == want, f"... and into one pipe: {r.stdout[:60]!r}...")
    # Two calls at once writing to one open file (`(vmexec a & vmexec b) >
    # log`, make -j's recipes): each write goes where the shared offset is,
    # none over another's (they had each started at offset 0).
    with open(named, "wb") as f:
        calls = [subprocess.Popen([VMEXEC, PROBE, "interleave", "2000"], env=ENV, stdout=f,
                                  stderr=subprocess.PIPE) for _ in range(2)]
        codes = [end_of(c, 900)[0] for c in calls]
    with open(named, "rb") as f:
        lines = f.read().splitlines()
    check(codes == [0, 0] and len(lines) == 4000 and all(lines.count(b"o%d" % i) == 2 for i in range(0, 2000, 97)),
          f"two calls writing to one file at once: all lines of both, none written over: {len(lines)} lines")
    r = probe("seekout")
    check(r.returncode == 0 and r.stderr == b"pipe -1\n", f"stdout to a pipe is a pipe: {r.stderr!r}")
    # The file gets the bytes as they are written, not at the end: a
    # program that printed and then hangs has its line in the file, and a
    # call killed then keeps it.
    with open(named, "wb") as f:
        p = subprocess.Popen([VMEXEC, PROBE, "ignore"], env=dict(ENV, VMEXEC_KILL_GRACE="1"), stdout=f,
                             stderr=subprocess.PIPE)
    got = b""
    for _ in range(1200):
        with open(named, "rb") as f:
            got = f.read()
        if got or p.poll() is not None:
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    end_of(p, 120)
    with open(named, "rb") as f:
        kept = f.read()
    check(got == b"ready\n" and kept == b"ready\n",
          f"stdout to a file streams while the program runs: {got!r}, after the call was killed {kept!r}")


def test_host_names():
    # What the C library reads from /etc by name is the host's, as under
    # qemu-user: users and groups, localhost, services, the host name.
    try:
        http = socket.getservbyname("http", "tcp")
    except OSError:
        http = -1
    want = (f"{pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name} localhost {http} "
            f"{socket.gethostname()}\n").encode()
    r = probe("names")
    check(r.returncode == 0 and r.stdout == want, f"names from the host's /etc: {r.stdout!r}, natively {want!r}")
    # Time zones: the host's local one, and one named in TZ (the host's zoneinfo).
    for tz in (None, "Europe/Berlin"):
        env = dict(ENV, TZ=tz) if tz else {k: v for k, v in ENV.items() if k != "TZ"}
        want = subprocess.run(["date", "-d", "@1700000000", "+%Z%z"], env=env, capture_output=True).stdout
        r = probe("tz", "1700000000", env=env)
        check(r.returncode == 0 and r.stdout == want, f"the time zone {tz or 'of the host'}: {r.stdout!r}, natively {want!r}")


def test_loopback():
    # IPv6 where the kernel has it (the powerpc kernel built from source
    # has not).
    for addr in ("127.0.0.1", "::1") if TARGET == "s390x" else ("127.0.0.1",):
        r = probe("loopback", addr)
        check(r.returncode == 0 and r.stdout == b"up\n",
              f"the loopback interface is up: a connection to {addr}: {r.stdout!r} {r.stderr[-200:]!r}")


def test_argv_env():
    args = [b"a b", b'"double"', b"'single'", b"new\nline", b"", b"\xff\xfe non-utf8 \x80", b"$HOME *", b"-"]
    r = subprocess.run([VMEXEC.encode(), PROBE.encode(), b"args", *args], env=ENV, capture_output=True, timeout=600)
    got = r.stdout.split(b"\0")[:-1]
    check(r.returncode == 0 and got == args, f"argv arrives byte-exact: {got!r}")

    env = {f"VMEXEC_T{i}".encode(): f"value {i} ".encode() + b"x" * (i % 50) for i in range(1000)}
    env[b"VMEXEC_T_BYTES"] = b"\xff\xfe\x80 = =="
    env[b"XDG_RUNTIME_DIR"] = runtime.encode()
    env[b"PATH"] = os.environb.get(b"PATH", b"/usr/bin:/bin")
    r = subprocess.run([VMEXEC.encode(), PROBE.encode(), b"env"], env=env, capture_output=True, timeout=600)
    got = {}
    for item in r.stdout.split(b"\0")[:-1]:
        k, _, v = item.partition(b"=")
        got[k] = v
    check(r.returncode == 0 and got == env, f"an environment of {len(env)} variables arrives byte-exact "
          f"({len(got)} came; differing: {sorted(set(got.items()) ^ set(env.items()))[:3]})")


def test_bare_name():
    # A bare PROGRAM name is the file of that name in the working directory,
    # as qemu-user opens it (CMake's add_test(NAME ${CMAKE_CROSSCOMPILING_EMULATOR}
    # prog) of libjpeg-turbo passes the bare name, cwd the build directory);
    # argv[0] stays as given. Not there and not on PATH: 127.
    d, name = os.path.split(os.path.abspath(PROBE))
    env = dict(ENV, PATH="/usr/bin:/bin")
    r = vm(name, "argv0", cwd=d, env=env)
    check(r.returncode == 0 and r.stdout == (name + "\n").encode(),
          f"a bare name runs the cwd's program, argv[0] as given: {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")
    r = vm(name, "argv0", cwd="/", env=env)
    check(r.returncode == 127 and b"not found" in r.stderr,
          f"a bare name neither in the cwd nor on PATH: 127: {r.returncode} {r.stderr[-300:]!r}")


def test_ids():
    # Not a session leader, as a program a shell or make runs: a terminal it
    # opens does not become its controlling terminal (gawk's pty tests).
    r = probe("ctty")
    check(r.returncode == 0 and r.stdout == b"leader 0 tty ENXIO\n",
          f"the program leads no session: a terminal it opens is not its own: {r.stdout!r} {r.stderr[-200:]!r}")
    # The process group as the caller's: run from a script (vmexec is a
    # member of the test's group), the program leads no group and may
    # start a session; run as a group leader (meson test gives each test a
    # session), it leads one, and setsid() fails as it would natively.
    r = probe("pgrp")
    check(r.returncode == 0 and r.stdout == b"leader 0 setsid ok\n",
          f"called from a script, the program leads no process group: {r.stdout!r} {r.stderr[-200:]!r}")
    r = probe("pgrp", start_new_session=True)
    check(r.returncode == 0 and r.stdout == b"leader 1 setsid EPERM\n",
          f"called by a group leader, the program leads its group: {r.stdout!r} {r.stderr[-200:]!r}")
    # The pid is vmexec's, as under qemu-user (the program is the caller's
    # process there): a pid file or a printed pid names the call on the host.
    p = subprocess.Popen([VMEXEC, PROBE, "pid"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=900)
    check(p.returncode == 0 and out == f"{p.pid}\n".encode(),
          f"the program's pid is vmexec's ({p.pid}): {out!r} {err[-200:]!r}")
    r = probe("ids")
    want = f"{os.getuid()} {os.getgid()}\n".encode()
    check(r.stdout == want, f"runs with the caller's uid and gid: {r.stdout!r}, want {want!r}")
    r = vm("--root", PROBE, "ids")
    check(r.stdout == b"0 0\n", f"--root runs as root: {r.stdout!r}")
    if os.getuid() != 0:
        return
    # As root, the caller's own uid is 0 anyway: run as a normal user too.
    try:
        user = pwd.getpwnam(os.environ.get("VMEXEC_TEST_USER", "nobody"))
    except KeyError:
        check(False, "a normal user exists for the uid test")
        return
    # The user runs a copy of vmexec, its agent, plugin and image, and of the
    # probe: the build tree may sit where only root can read (a private home).
    copy, copy_env = world_readable_copy(VMEXEC, target=TARGET, files=[PROBE])
    user_rt = tempfile.mkdtemp(prefix="vmexec-test-user-")
    os.chown(user_rt, user.pw_uid, user.pw_gid)
    env = dict(ENV, XDG_RUNTIME_DIR=user_rt, HOME=user_rt, **copy_env)
    user_vmexec = os.path.join(copy, os.path.basename(VMEXEC))
    user_probe = os.path.join(copy, os.path.basename(PROBE))

    def as_user():
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    try:
        r = subprocess.run([user_vmexec, user_probe, "ids"], env=env, cwd=copy, capture_output=True, timeout=900,
                           preexec_fn=as_user)
        check(r.stdout == f"{user.pw_uid} {user.pw_gid}\n".encode(),
              f"as user {user.pw_name}: runs with uid/gid {r.stdout!r} ({r.stderr[-300:]!r})")
        subprocess.run([user_vmexec, "stop", "--all"], env=env, cwd=copy, capture_output=True, timeout=120,
                       preexec_fn=as_user)
    finally:
        shutil.rmtree(user_rt, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)


def test_malformed_frames():
    # A caller that breaks the protocol loses its connection; the guest and
    # the other callers go on.
    import socket
    sock_path = os.path.join(runtime, "vmexec", TARGET, "control.sock")
    bad = [
        b"\xff\xff\xff\xff\x00\x02\x00\x00\x00\x00\x00\x01",  # oversized length
        b"\x00\x00\x00\x00\x00\x02\x00\x01\x00\x00\x00\x01",  # reserved flags set
        b"\x00\x00\x00\x04\x00\x63\x00\x00\x00\x00\x00\x01abcd",  # unknown type
        b"\x00\x00\x00\x02\x00\x02\x00\x00\x00\x00\x00\x05xx",  # a run request cut short
    ]
    for frame in bad:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(frame)
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        s.close()
        r = probe("say", "still here", "3")
        check(r.returncode == 3 and r.stdout == b"still here\n",
              f"after a malformed frame {frame[:12].hex()} (answer {data[:40]!r}) the guest still serves calls")
    lines = status_lines()
    check(len(lines) == 1, f"the same guest is still running: {lines}")


def guest_procs():
    return probe("procs").stdout.decode().splitlines()


def wait_no_procs(deadline_s):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        procs = guest_procs()
        if not procs:
            return True, time.monotonic() - start
        time.sleep(0.2)
    return False, guest_procs()


def test_kill_tree():
    for sig in (signal.SIGTERM, signal.SIGKILL):
        p = subprocess.Popen([VMEXEC, PROBE, "tree", "3"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = p.stdout.readline()
        check(line == b"ready\n", f"tree of processes started ({line!r})")
        p.send_signal(sig)
        p.wait(timeout=120)
        check(p.returncode == -sig, f"vmexec dies of {sig.name}: {p.returncode}")
        gone, detail = wait_no_procs(30)
        check(gone, f"after {sig.name} to vmexec no process of the run is left in the guest "
              f"({'gone after %.2f s' % detail if gone else detail})")


def ignoring_call(grace):
    """vmexec PROBE ignore (SIGINT, SIGTERM and SIGHUP ignored), once the
    program runs."""
    p = subprocess.Popen([VMEXEC, PROBE, "ignore"], env=dict(ENV, VMEXEC_KILL_GRACE=grace),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    check(line == b"ready\n", f"a program that ignores SIGTERM started ({line!r})")
    return p


def end_of(p, deadline_s):
    """The call's status and stderr, or None when it did not end in time."""
    try:
        _, err = p.communicate(timeout=deadline_s)
        return p.returncode, err.decode()
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, ""


def test_ignored_sigterm():
    """A harness's SIGTERM ends the call even when the program ignores it:
    VMEXEC_KILL_GRACE seconds after it, or at a second SIGTERM, vmexec cancels
    the run and dies of SIGTERM, with one line saying why, and nothing of the
    run is left in the guest."""
    p = ignoring_call("2")
    p.send_signal(signal.SIGTERM)
    status, msg = end_of(p, 60)
    check(status == -signal.SIGTERM and msg.count("\n") == 1 and "within 2 s of SIGTERM" in msg
          and "VMEXEC_KILL_GRACE" in msg,
          f"a program that ignores SIGTERM is cancelled after the grace period, vmexec dies of SIGTERM: "
          f"{status} {msg!r}")
    gone, detail = wait_no_procs(30)
    check(gone, f"no process of the cancelled run is left in the guest "
          f"({'gone after %.2f s' % detail if gone else detail})")

    p = ignoring_call("600")
    p.send_signal(signal.SIGTERM)
    time.sleep(1)  # the first one goes to the program (a second sent at once could merge with it)
    check(p.poll() is None, f"the first SIGTERM only goes to the program, which ignores it: {p.returncode}")
    p.send_signal(signal.SIGTERM)
    status, msg = end_of(p, 60)
    check(status == -signal.SIGTERM and msg.count("\n") == 1 and "a second SIGTERM" in msg,
          f"a second SIGTERM cancels the run at once, long before the grace period: {status} {msg!r}")
    gone, detail = wait_no_procs(30)
    check(gone, f"no process of the run ended by a second SIGTERM is left in the guest "
          f"({'gone after %.2f s' % detail if gone else detail})")


def test_concurrent():
    procs = [subprocess.Popen([VMEXEC, PROBE, "say", f"concurrent {i}", str(i)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(16)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=900)
        check(p.returncode == i and out == f"concurrent {i}\n".encode() and err == b"",
              f"concurrent call {i} of 16: status {p.returncode}, {out!r} {err[-200:]!r}")


def test_stop_and_idle():
    check(len(status_lines()) == 1, "vmexec status shows the running guest")
    r = vm("stop", TARGET)
    check(r.returncode == 0 and status_lines() == [], f"vmexec stop stops it: {r.stdout!r}")
    env = dict(ENV, VMEXEC_IDLE_TIMEOUT="3")
    r = probe("exit", "0", env=env)
    check(r.returncode == 0, "a call after stop starts a fresh guest")
    deadline = time.monotonic() + 60
    while status_lines() and time.monotonic() < deadline:
        time.sleep(1)
    check(status_lines() == [], "the guest stops by itself after the idle time")


def test_guest_death():
    p = subprocess.Popen([VMEXEC, PROBE, "tree", "1"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    lines = status_lines()
    pid = int(lines[0].split("qemu pid ")[1].split()[0]) if lines else 0
    check(pid > 0, f"status names the qemu pid: {lines}")
    if pid:
        os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    msg = err.decode()
    check(p.returncode == 125 and msg.count("\n") == 1 and "console log" in msg,
          f"a run in flight when qemu dies ends with 125 and one line: {p.returncode} {msg!r}")
    r = probe("exit", "7")
    check(r.returncode == 7, f"the next call starts a fresh guest: {r.returncode} {r.stderr[-300:]!r}")


def test_death_while_booting():
    """A guest that dies before its agent's hello is booted once more: the
    call that started it still gets its answer (qemu killed while booting
    stands in for a rare emulation fault while the kernel loads modules)."""
    vm("stop", "--all")
    # A boot, not a restore from the image's snapshot (test-snapshot.py).
    p = subprocess.Popen([VMEXEC, PROBE, "exit", "5"], env=dict(ENV, VMEXEC_SNAPSHOT="0"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    pid, deadline = 0, time.monotonic() + 60
    while not pid and time.monotonic() < deadline and p.poll() is None:
        lines = [l for l in status_lines() if "\tbooting\t" in l]
        pid = int(lines[0].split("qemu pid ")[1].split()[0]) if lines and "qemu pid -" not in lines[0] else 0
        time.sleep(0.05)
    check(pid > 0, f"status shows the guest booting, with its qemu pid: {status_lines()}")
    if pid:
        os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=600)
    check(p.returncode == 5, f"the call is answered by the guest booted again: {p.returncode} {err[-300:]!r}")
    log = os.path.join(runtime, "vmexec", TARGET, "supervisor.log")
    with open(log) as f:
        text = f.read()
    check("booting it once more" in text, f"the supervisor log says it booted again: {text[-400:]!r}")


def test_harness_fds():
    """A harness that waits for EOF on a pipe it gave the call (make's
    jobserver, a test runner reading output) gets it when the call ends, even
    when that call started the guest, which keeps running: the supervisor,
    qemu and nbdkit keep none of the caller's fds."""
    vm("stop", "--all")
    r, w = os.pipe()
    p = subprocess.Popen([VMEXEC, PROBE, "exit", "3"], env=ENV, pass_fds=(w,),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(w)
    out, err = p.communicate(timeout=600)
    check(p.returncode == 3, f"the call that starts the guest: {p.returncode} {err[-300:]!r}")
    import select
    ready, _, _ = select.select([r], [], [], 10)
    eof = bool(ready) and os.read(r, 1) == b""
    os.close(r)
    check(eof and len(status_lines()) == 1,
          f"the caller's pipe sees EOF once the call ended, the guest still running: {eof} {status_lines()}")


def main():
    for tool in (QEMU,):
        if not shutil.which(tool):
            skip_or_fail(f"{tool} is not installed (scripts/install-deps installs it)")
    if not os.path.exists(PROBE):
        skip_or_fail(f"no {TARGET} probe at {PROBE}: install its cross compiler (scripts/install-deps)")
    # The image first, without a guest: for a target whose kernel is built
    # from linux-source that takes minutes, which no call's deadline allows.
    built = subprocess.run([VMEXEC, "image", "build", TARGET], env=ENV, capture_output=True, timeout=5000)
    check(built.returncode == 0, f"vmexec image build {TARGET}: {built.returncode} {built.stderr.decode()[-500:]!r}")
    try:
        test_first_calls_boot_one_guest()
        test_hello()
        test_loader_cache()
        test_fixed_addresses()
        test_pages_zeroed_on_free()
        test_exit_codes()
        test_signals()
        test_argv_env()
        test_bare_name()
        test_stdin()
        test_stdout_file()
        test_loopback()
        test_host_names()
        test_ids()
        test_concurrent()
        test_malformed_frames()
        test_kill_tree()
        test_ignored_sigterm()
        test_streams()
        test_disk_stall()
        test_guest_death()
        test_death_while_booting()
        test_stop_and_idle()
        test_harness_fds()
    finally:
        cleanup()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
