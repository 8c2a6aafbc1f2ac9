#!/usr/bin/env python3
"""The fault matrix (issue 14): each fault on a real s390x guest, then the same
checks:

  - every host file is its old content or its new content, never a part, and
    none is lost;
  - no `.vmexec-wb*` leftovers once the next call wrote back into the tree;
  - no process of the faulted run survives in the guest;
  - the failure is one line and status 125 (unless vmexec itself was killed,
    or the program's own status is what the fault gives: OOM, ENOSPC);
  - the next call works.

Faults: a guest kernel panic (sysrq from a --root run), qemu SIGKILLed,
the supervisor SIGKILLed, vmexec SIGKILLed mid-write-back of a 200 MiB file
and of a directory replacement, guest OOM, the guest's overlay full, the host
filesystem full during the write-back (a 20 MiB tmpfs, root only: skipped
otherwise). nbdkit SIGKILLed is test-share-guest.py's test_nbdkit_killed.

Environment: VMEXEC. CI=true: no skips."""

import hashlib
import os
import shutil
import subprocess
import sys
import time

from testlib import CI, check, guest_main, private_top

VMEXEC = os.environ["VMEXEC"]
TARGET = "s390x"

top, runtime, ENV = private_top("vmexec-fault-matrix-", VMEXEC_IDLE_TIMEOUT="900")
TREE = os.path.join(top, "tree")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pattern_digest(byte, size):
    h = hashlib.sha256()
    block = byte * (1 << 20)
    for _ in range(size >> 20):
        h.update(block)
    return h.hexdigest()


def snapshot(root):
    """{relative path: sha256} of the regular files under ROOT."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = digest(p)
    return out


def leftovers(root):
    found = []
    for dirpath, dirs, files in os.walk(root):
        found += [os.path.join(dirpath, n) for n in dirs + files if n.startswith(".vmexec-wb")]
    return found


def sh(script, env=None, timeout=1800, root=False, cwd=TREE):
    """SCRIPT in the guest's sh, CWD shared writable, waited for."""
    argv = [VMEXEC, "--target", TARGET, *(["--root"] if root else []), "--share", cwd, "--", "sh", "-c", script]
    try:
        return subprocess.run(argv, env=env or ENV, cwd=cwd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, None, e.stdout or b"", e.stderr or b"")


def sh_bg(script, env=None, root=False):
    argv = [VMEXEC, "--target", TARGET, *(["--root"] if root else []), "--share", TREE, "--", "sh", "-c", script]
    return subprocess.Popen(argv, env=env or ENV, cwd=TREE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def procs():
    """{pid: (ppid, comm, argv)} of the host's processes."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                envs = f.read().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        out[int(pid)] = (int(stat[stat.rindex(")") + 2:].split()[1]), comm, argv, envs)
    return out


def supervisor_pid():
    mine = b"XDG_RUNTIME_DIR=" + runtime.encode()
    for pid, (_, _, argv, envs) in procs().items():
        if len(argv) > 2 and argv[1] == b"__supervise" and argv[2] == TARGET.encode() and mine in envs:
            return pid
    return None


def child_pid(parent, prefix):
    for pid, (ppid, comm, _, _) in procs().items():
        if ppid == parent and comm.startswith(prefix):
            return pid
    return None


def wait_for(cond, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def wait_line(p, what, timeout=900):
    """Wait until P's stdout has printed the line WHAT (b"...")."""
    import select
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if select.select([p.stdout], [], [], 1)[0]:
            data = os.read(p.stdout.fileno(), 4096)
            if not data:
                return False
            buf += data
            if what + b"\n" in buf:
                return True
    return False


def one_line_125(name, status, err):
    err = err.decode(errors="replace")
    check(status == 125 and err.count("\n") == 1 and err.startswith("vmexec"),
          f"{name}: the failure is one line and 125: {status} {err[-400:]!r}")


def after(name, marker, tree_ok):
    """The checks after each fault: the next call works and writes back into
    the tree (sweeping stale temporaries), none of MARKER's processes in the
    guest, no leftovers, TREE_OK() holds."""
    r = sh(f"echo next > {TREE}/next.txt && echo {name} works; "
           "for p in /proc/[0-9]*; do l=; read -r l < $p/cmdline; [ -z \"$l\" ] || echo \"$l\"; done")
    out = r.stdout.decode(errors="replace")
    with open(os.path.join(TREE, "next.txt")) as f:
        back = f.read()
    os.unlink(os.path.join(TREE, "next.txt"))
    check(r.returncode == 0 and f"{name} works" in out and back == "next\n",
          f"{name}: the next call works: {r.returncode} {out[-200:]!r} {r.stderr[-300:]!r}")
    check(marker not in out, f"{name}: no process of the faulted run survives in the guest ({marker})")
    left = leftovers(TREE)
    check(not left, f"{name}: no .vmexec-wb leftovers after the next call: {left}")
    tree_ok()


def guest_up():
    r = sh("true")
    check(r.returncode == 0, f"the guest starts: {r.returncode} {r.stderr[-300:]!r}")


def setup():
    os.makedirs(TREE)
    write(os.path.join(TREE, "keep.txt"), "keep\n")
    guest_up()


def keep_ok(name):
    with open(os.path.join(TREE, "keep.txt")) as f:
        check(f.read() == "keep\n", f"{name}: a file the run did not touch is kept")


def old_or_new(name, path, old, new):
    """PATH holds OLD or NEW (strings or digests)."""
    try:
        if len(old) == 64 and len(new) == 64:
            got = digest(path)
        else:
            with open(path) as f:
                got = f.read()
    except FileNotFoundError:
        got = None
    check(got in (old, new), f"{name}: {os.path.basename(path)} is its old or its new content: "
          f"{'old' if got == old else 'new' if got == new else repr(got)[:80]}")


def kill_mid_run(name, which, marker):
    """A run that changed a file and sleeps; WHICH (a function giving a pid)
    is SIGKILLed meanwhile."""
    f = os.path.join(TREE, f"{name}.txt")
    write(f, "old\n")
    p = sh_bg(f"echo new > {f} && echo started && {marker}")
    started = wait_line(p, b"started")
    pid = which()
    check(started and pid is not None, f"{name}: the run started, the process to kill is {pid}")
    if pid:
        os.kill(pid, 9)
    try:
        _, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    one_line_125(name, p.returncode, err)
    after(name, marker, lambda: (old_or_new(name, f, "old\n", "new\n"), keep_ok(name)))


def test_qemu_killed():
    kill_mid_run("qemu-killed", lambda: child_pid(supervisor_pid() or -1, "qemu-system"), "sleep 4001")


def test_supervisor_killed():
    sup = supervisor_pid()
    qemu = child_pid(sup or -1, "qemu-system")
    kill_mid_run("supervisor-killed", supervisor_pid, "sleep 4002")
    gone = wait_for(lambda: qemu is None or not os.path.exists(f"/proc/{qemu}"), 120, 0.5)
    check(gone, f"supervisor-killed: the old qemu ({qemu}) is gone")


def test_panic():
    f = os.path.join(TREE, "panic.txt")
    write(f, "old\n")
    other = sh_bg("echo started && sleep 4003")
    wait_line(other, b"started")
    r = sh(f"echo new > {f} && sleep 1 && echo c > /proc/sysrq-trigger; sleep 60", root=True)
    one_line_125("panic", r.returncode, r.stderr)
    try:
        _, err = other.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        other.kill()
        _, err = other.communicate()
    one_line_125("panic (another run in flight)", other.returncode, err)
    after("panic", "sleep 4003", lambda: (old_or_new("panic", f, "old\n", "new\n"), keep_ok("panic")))


def kill_vmexec_mid_writeback(name, script, tree_ok):
    p = sh_bg(script)
    tmp = wait_for(lambda: leftovers(TREE), 1800, 0.01)
    check(tmp, f"{name}: the write-back's temporary appeared: {tmp}")
    p.kill()
    p.wait()
    after(name, "sleep 4004", tree_ok)


def test_vmexec_killed_file():
    size = 200 << 20
    f = os.path.join(TREE, "big.bin")
    write(f, b"a" * (1 << 20))
    old, new = digest(f), pattern_digest(b"b", size)
    kill_vmexec_mid_writeback("vmexec-killed-file",
                              f"dd if=/dev/zero bs=1M count=200 2>/dev/null | tr '\\0' b > {f}",
                              lambda: (old_or_new("vmexec-killed-file", f, old, new), keep_ok("vmexec-killed-file")))
    os.unlink(f)


def test_vmexec_killed_dir():
    out = os.path.join(TREE, "out")
    for n in ("a", "b", "c"):
        write(os.path.join(out, n), f"old {n}\n")
    old = snapshot(out)
    script = (f"rm -rf {out} && mkdir {out} && echo new x > {out}/x && echo new a > {out}/a && "
              f"dd if=/dev/zero bs=1M count=100 2>/dev/null | tr '\\0' n > {out}/big")

    def tree_ok():
        got = snapshot(out) if os.path.isdir(out) else None
        got_new = got and set(got) == {"x", "a", "big"} and got["big"] == pattern_digest(b"n", 100 << 20)
        check(got == old or got_new, f"vmexec-killed-dir: out/ is the old tree or the new one: "
              f"{'old' if got == old else 'new' if got_new else sorted(got or [])}")
        keep_ok("vmexec-killed-dir")
    kill_vmexec_mid_writeback("vmexec-killed-dir", script, tree_ok)
    shutil.rmtree(out, ignore_errors=True)


def small_guest(name, script, marker):
    """SCRIPT in a guest of 256 MiB (VMEXEC_MEMORY), booted for it."""
    subprocess.run([VMEXEC, "stop", TARGET], env=ENV, capture_output=True, timeout=300)
    env = dict(ENV, VMEXEC_MEMORY="256")
    f = os.path.join(TREE, f"{name}.txt")
    write(f, "old\n")
    r = sh(f"echo new > {f}; {script}", env=env)
    err = r.stderr.decode(errors="replace")
    # The program's own failure (killed by the OOM killer: 137; a write
    # failing with ENOSPC: its status), or vmexec's one line with 125.
    check(r.returncode not in (0, None) and (r.returncode != 125 or err.count("\n") == 1),
          f"{name}: the program fails, the guest does not: {r.returncode} {err[-300:]!r}")
    return f, r


def test_oom():
    f, r = small_guest("oom", "tail /dev/zero", "tail /dev/zero")
    # vmexec dies of the program's signal, as a native run would: -9 here.
    check(r.returncode in (-9, 137, 125), f"oom: the OOM killer's SIGKILL (-9) or 125: {r.returncode}")
    after("oom", "tail", lambda: (old_or_new("oom", f, "old\n", "new\n"), keep_ok("oom")))


def test_overlay_full():
    fill = os.path.join(TREE, "fill.bin")
    f, r = small_guest("overlay-full", f"dd if=/dev/zero of={fill} bs=1M 2>&1; s=$?; echo dd $s; exit $s", "dd if")
    out = r.stdout.decode(errors="replace")
    check("No space left" in out or "dd 1" in out or r.returncode == 125,
          f"overlay-full: the guest's writes fail with ENOSPC: {out[-200:]!r}")
    after("overlay-full", "dd if", lambda: (old_or_new("overlay-full", f, "old\n", "new\n"), keep_ok("overlay-full")))
    if os.path.exists(fill):
        os.unlink(fill)
    subprocess.run([VMEXEC, "stop", TARGET], env=ENV, capture_output=True, timeout=300)


def test_host_full():
    if os.getuid() != 0:
        check(not CI, "host-full: not root (it mounts a tmpfs): left out (under CI, a failure)")
        return
    # A tree of its own (a write-back crosses no mount: not inside TREE).
    small = os.path.join(top, "small")
    os.mkdir(small)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", small]).returncode != 0:
        check(False, "host-full: mount a 20 MiB tmpfs")
        return
    try:
        write(os.path.join(small, "f.txt"), "old\n")
        write(os.path.join(small, "g.txt"), "old g\n")
        r = sh(f"echo new > {small}/f.txt && dd if=/dev/zero of={small}/big bs=1M count=40 2>/dev/null && "
               f"echo new g > {small}/g.txt", cwd=small)
        # One line per change that did not land, then the call's failure.
        err = r.stderr.decode(errors="replace").splitlines()
        check(r.returncode == 125 and err and all(e.startswith("vmexec: ") for e in err)
              and "could not be written back" in err[-1] and "No space left" in err[0],
              f"host-full: one line per change lost and 125: {r.returncode} {err}")
        big = os.path.join(small, "big")
        check(not os.path.exists(big) or os.path.getsize(big) == 40 << 20,
              f"host-full: big is absent or whole: {os.path.exists(big) and os.path.getsize(big)}")
        check(not leftovers(small), f"host-full: the cut write-back removed its temporaries: {leftovers(small)}")
        r = sh(f"echo next > {small}/next.txt && echo host-full works", cwd=small)
        nxt = os.path.join(small, "next.txt")
        check(r.returncode == 0 and b"host-full works" in r.stdout and os.path.exists(nxt),
              f"host-full: the next call works and writes back: {r.returncode} {r.stderr[-300:]!r}")
        old_or_new("host-full", os.path.join(small, "f.txt"), "old\n", "new\n")
        old_or_new("host-full", os.path.join(small, "g.txt"), "old g\n", "new g\n")
        check(not leftovers(small), f"host-full: no leftovers: {leftovers(small)}")
    finally:
        subprocess.run(["umount", small])


def main():
    os.umask(0o022)
    tests = [test_vmexec_killed_file, test_vmexec_killed_dir, test_host_full, test_qemu_killed,
             test_supervisor_killed, test_panic, test_oom, test_overlay_full]
    only = os.environ.get("FAULTS")  # FAULTS=panic,oom: some of them
    if only:
        tests = [t for t in tests if t.__name__[5:] in only.split(",")]
    return guest_main(tests, VMEXEC, ENV, top, setup=setup)


if __name__ == "__main__":
    sys.exit(main())
