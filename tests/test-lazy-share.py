#!/usr/bin/env python3
"""Guest test of the lazy share (issue 12), on s390x: every host path
outside the guest's system is visible in the guest without being named.

- a tempfile.mkdtemp() directory under /tmp and one under /var/tmp, never
  named by the call (its working directory is elsewhere), are read in the
  guest: a file, a symlink, hard links (one inode), a file of 40 MiB;
- writes: /tmp and /var/tmp are scratch (the program writes there, the
  host's files do not change); a directory under another host directory
  (the build tree when it is not under /tmp) refuses writes with EROFS;
- the next call sees what the host changed in between (a new generation),
  and one that changed nothing reuses the generation;
- a file the guest read, then rewritten in place on the host or replaced by
  the write-back (a program's output), is seen new by the next call through
  the generation's patch layer, not a new generation ("patched" in
  VMEXEC_TRACE): in a writable root, a read-only one (--share DIR:ro) and a
  directory named by no call (under /tmp), with the host's mode and mtime,
  and its directory keeping its own; so does a file made on the host in a
  directory the guest listed, and a file or directory removed from one is
  gone;
- a directory made anew on the host in one the guest listed (a test's
  scratch directory), what is put in it, and what a program running in it
  writes there, come the same way; the generation's old directory of that
  name shows nothing through it.

Environment: VMEXEC, BUILDDIR."""

import os
import subprocess
import sys
import tempfile

from testlib import check, guest_main, private_top

VMEXEC = os.environ["VMEXEC"]
BUILDDIR = os.environ["BUILDDIR"]
top, runtime, ENV = private_top("vmexec-test-lazy-", VMEXEC_IDLE_TIMEOUT="600")
cwd = os.path.join(top, "cwd")
os.mkdir(cwd)
unnamed = tempfile.mkdtemp(prefix="vmexec-lazy-", dir="/tmp")
unnamed_var = tempfile.mkdtemp(prefix="vmexec-lazy-", dir="/var/tmp")


def guest(script):
    """Runs SCRIPT with the guest's sh from CWD; the completed process."""
    return subprocess.run([VMEXEC, "--target", "s390x", "--", "/bin/sh", "-c", script], cwd=cwd, env=ENV,
                          capture_output=True, timeout=900)


def out(r):
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")[-300:]


def setup():
    for d, text in ((unnamed, "in tmp\n"), (unnamed_var, "in var tmp\n")):
        with open(os.path.join(d, "data.txt"), "w") as f:
            f.write(text)
        os.symlink("data.txt", os.path.join(d, "link"))
        os.link(os.path.join(d, "data.txt"), os.path.join(d, "hard"))
    with open(os.path.join(unnamed, "big"), "wb") as f:
        f.write(bytes(range(256)) * (40 * 4096))


def test_visible():
    r = guest(f"cat {unnamed}/data.txt {unnamed_var}/data.txt {unnamed}/link; "
              f"ls -i {unnamed}/data.txt {unnamed}/hard | awk '{{print $1}}' | uniq | wc -l; "
              f"md5sum {unnamed}/big | cut -d' ' -f1")
    import hashlib
    with open(os.path.join(unnamed, "big"), "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    check(r.returncode == 0 and out(r) == f"in tmp\nin var tmp\nin tmp\n1\n{md5}\n",
          f"unnamed directories under /tmp and /var/tmp read in the guest: {out(r)!r}")


def test_writes():
    r = guest(f"echo guest > {unnamed}/data.txt && echo new > {unnamed_var}/new && cat {unnamed}/data.txt")
    check(r.returncode == 0 and out(r) == "guest\n", f"/tmp is writable scratch in the guest: {out(r)!r}")
    with open(os.path.join(unnamed, "data.txt")) as f:
        check(f.read() == "in tmp\n" and not os.path.exists(os.path.join(unnamed_var, "new")),
              "what the guest wrote in /tmp and /var/tmp did not reach the host")
    elsewhere = BUILDDIR if not BUILDDIR.startswith(("/tmp/", "/var/tmp/")) else os.path.expanduser("~")
    if elsewhere.startswith(("/tmp/", "/var/tmp/")) or not os.access(elsewhere, os.W_OK):
        print(f"     (no writable host directory outside /tmp to try EROFS in: {elsewhere})")
        return
    d = tempfile.mkdtemp(prefix="vmexec-lazy-", dir=elsewhere)
    try:
        r = guest(f"echo x > {d}/file")
        check(r.returncode != 0 and "Read-only file system" in out(r) and not os.listdir(d),
              f"a write under {elsewhere}, not a writable root, fails with EROFS: {out(r)!r}")
    finally:
        os.rmdir(d) if not os.listdir(d) else None


class TopWatch:
    """inotify watches on /, the directories at its top, /var/tmp and the
    test's own directories, with the plugin's events."""

    def __init__(self):
        import ctypes
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        events = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
        tops = [os.path.join("/", n) for n in os.listdir("/")]
        for d in ["/", "/var/tmp", top, cwd, unnamed] + [t for t in tops if os.path.isdir(t)]:
            self.libc.inotify_add_watch(self.fd, d.encode(), events)

    def changed(self):
        try:
            return len(os.read(self.fd, 65536)) > 0
        except BlockingIOError:
            return False
        finally:
            os.close(self.fd)


def generations():
    """The plugin's generations as (slot, time made): a new one changes it."""
    share = os.path.join(runtime, "vmexec", "s390x", "share")
    return sorted((f, os.stat(os.path.join(share, f)).st_mtime_ns) for f in os.listdir(share) if f.endswith(".info"))


def test_changes():
    with open(os.path.join(unnamed, "data.txt"), "w") as f:
        f.write("changed on the host\n")
    with open(os.path.join(unnamed, "added"), "w") as f:
        f.write("added\n")
    r = guest(f"cat {unnamed}/data.txt {unnamed}/added")
    check(r.returncode == 0 and out(r) == "changed on the host\nadded\n",
          f"the next call sees the host's changes: {out(r)!r}")
    # Every call reads the listings of / and of every directory at its top
    # (the guest mounts them): another process changing one meanwhile (a
    # compiler's temporary file in /tmp, a shell's history in /root) rightly
    # makes a new generation. Watch them as the plugin does; try again then.
    for _ in range(5):
        watch = TopWatch()
        before = generations()
        r = guest("true")
        r2 = guest(f"cat {unnamed}/added")
        churn = watch.changed()
        if set(generations()) <= set(before) or not churn:
            break
    # (An older generation may be released meanwhile: the guest does that
    # after a run's end, agent/share.c share_sweep.)
    if churn and not set(generations()) <= set(before):
        print("     (reuse not checked: another process changed a directory at the top of / during every try)")
    else:
        check(r.returncode == 0 and r2.returncode == 0 and set(generations()) <= set(before),
              f"calls that change nothing reuse the generation: {before} then {generations()}")


def traced(script, *share):
    """SCRIPT as guest() runs it, with VMEXEC_TRACE=1: (completed process,
    how the supervisor got its share generation)."""
    args = [VMEXEC, "--target", "s390x"] + [a for d in share for a in ("--share", d)]
    r = subprocess.run(args + ["--", "/bin/sh", "-c", script], cwd=cwd, env=dict(ENV, VMEXEC_TRACE="1"),
                       capture_output=True, timeout=900)
    err = r.stderr.decode(errors="replace")
    how = err.split("share generation (")[1].split(")")[0] if "share generation (" in err else "?"
    r.stderr = err.split("vmexec trace")[0].encode()
    return r, how


def rewrite(path, text, mode, mtime):
    with open(path, "w") as f:  # in place: the same inode, truncated
        f.write(text)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def test_patched():
    ro = os.path.join(top, "ro")
    os.mkdir(ro)
    sub = os.path.join(unnamed, "sub")
    os.mkdir(sub)
    files = {"cwd": os.path.join(cwd, "out.txt"), "ro": os.path.join(ro, "in.txt"),
             "unnamed": os.path.join(sub, "patched.txt")}
    for path in files.values():
        rewrite(path, "first\n", 0o644, 1_600_000_000)
    for d in (ro, unnamed, sub):
        os.utime(d, (1_500_000_000, 1_500_000_000))
    show = "; ".join(f"cat {p}; stat -c '%a %Y' {p}" for p in files.values())
    # (Not the working directory's: a writable root shows the run's upper
    # directory, made with the run.)
    dirs = f"stat -c '%a %Y' {ro} {unnamed} {sub}"
    r, _ = traced(f"{show}; {dirs}", ro + ":ro")
    check(r.returncode == 0 and out(r).startswith("first\n644 1600000000\n" * 3),
          f"the files as first read: {out(r)!r}")
    dirs_before = out(r).split("\n")[6:9]
    # Another process may change a directory at the top of / meanwhile (a
    # new generation then, rightly): try again.
    for attempt in range(5):
        for i, path in enumerate(files.values()):
            rewrite(path, f"rewritten {attempt} {i}, longer\n", 0o600, 1_700_000_000 + i)
        r, how = traced(f"{show}; {dirs}", ro + ":ro")
        if how == "patched":
            break
    want = "".join(f"rewritten {attempt} {i}, longer\n600 {1_700_000_000 + i}\n" for i in range(3))
    check(r.returncode == 0 and out(r).startswith(want),
          f"files rewritten in place on the host, read in the next call: {out(r)!r}")
    check(how.startswith("patched"), f"... from the generation's patch layer, not a new generation: {how}")
    check(out(r).split("\n")[6:9] == dirs_before,
          f"... their directories' modes and times as before: {dirs_before} then {out(r).split(chr(10))[6:9]}")
    # The write-back's way: the program replaces a file the guest read (its
    # output), the next call reads it.
    for attempt in range(5):
        r1, _ = traced(f"echo 'by the guest {attempt}' > {files['cwd']}")
        r, how = traced(f"cat {files['cwd']}")
        if how.startswith("patched"):
            break
    check(r1.returncode == 0 and r.returncode == 0 and out(r) == f"by the guest {attempt}\n",
          f"a file the guest wrote back, read by the next call: {out(r)!r}")
    check(how.startswith("patched"), f"... from the patch layer (sent when the writer's call ended): {how}")
    with open(files["cwd"]) as f:
        check(f.read() == f"by the guest {attempt}\n", "... and on the host")
    # Names made and removed in directories the guest listed: a new file
    # shows, a removed one is gone, without a new generation.
    os.mkdir(os.path.join(cwd, "gone"))
    r, _ = traced(f"ls {cwd} {ro} {cwd}/gone", ro + ":ro")
    check(r.returncode == 0 and "out.txt" in out(r) and "in.txt" in out(r) and "gone" in out(r),
          f"the listings first: {out(r)!r}")
    for attempt in range(5):
        with open(os.path.join(cwd, f"made{attempt}.txt"), "w") as f:
            f.write(f"made {attempt}\n")
        if attempt == 0:
            os.unlink(files["ro"])
            os.rmdir(os.path.join(cwd, "gone"))
        r, how = traced(f"cat made{attempt}.txt; ls {cwd} {ro}; cat {files['ro']} 2>&1", ro + ":ro")
        if how.startswith("patched"):
            break
    lines = out(r).split("\n")
    check(r.returncode != 0 and lines[0] == f"made {attempt}" and f"made{attempt}.txt" in lines and
          "in.txt" not in lines and "gone" not in lines and "No such file" in out(r),
          f"a file made on the host shows, a file and a directory removed are gone: {out(r)!r}")
    check(how.startswith("patched"), f"... from the patch layer: {how}")
    # A directory with a patched file in it, then removed on the host.
    d2 = os.path.join(cwd, "d2")
    os.mkdir(d2)
    rewrite(os.path.join(d2, "f"), "f\n", 0o644, 1_600_000_000)
    traced(f"cat {d2}/f")
    for attempt in range(5):
        rewrite(os.path.join(d2, "f"), f"f {attempt}\n", 0o644, 1_600_000_000)
        r, how = traced(f"cat {d2}/f")
        if how.startswith("patched"):
            break
    check(out(r) == f"f {attempt}\n" and how.startswith("patched"), f"a file in d2 patched: {out(r)!r} {how}")
    import shutil
    shutil.rmtree(d2)
    r, how = traced(f"ls {cwd}; cat {d2}/f 2>&1")
    check("d2" not in out(r).split("\n") and "No such file" in out(r),
          f"... then the directory removed on the host is gone: {out(r)!r} ({how})")


def test_dir_made():
    """A test's scratch directory made anew in the build tree before each
    call (json-c's `rm -rf testSubDir/T; mkdir -p testSubDir/T`), the call
    running in it: the directory, what the host put in it and what the
    program wrote there come through the patch layer, not a new generation;
    the generation's directory of that name shows none of its old names.
    A file written in a directory below it comes the same way. And a
    directory the generation never had."""
    scratch = os.path.join(cwd, "scratch")
    t = os.path.join(scratch, "t")
    os.makedirs(t)
    with open(os.path.join(t, "old.txt"), "w") as f:
        f.write("old\n")
    # A symlink made in a directory the guest listed needs a new generation,
    # which has t and old.txt.
    os.symlink("scratch", os.path.join(cwd, "to-scratch"))
    r, how = traced("ls scratch scratch/t")
    check(r.returncode == 0 and "old.txt" in out(r) and how in ("new", "made ahead"),
          f"the scratch directory first, in a new generation: {out(r)!r} ({how})")

    def run_in(d, script):
        """SCRIPT run with D as the working directory, as json-c's tests do:
        (completed process, share generation label)."""
        r = subprocess.run([VMEXEC, "--target", "s390x", "--", "/bin/sh", "-c", script], cwd=d,
                           env=dict(ENV, VMEXEC_TRACE="1"), capture_output=True, timeout=900)
        err = r.stderr.decode(errors="replace")
        return r, err.split("share generation (")[1].split(")")[0] if "share generation (" in err else "?"

    import shutil
    for attempt in range(5):
        shutil.rmtree(t)
        os.mkdir(t, 0o750)
        os.mkdir(os.path.join(t, "sub"))
        for name, text in ((f"in{attempt}.txt", f"in {attempt}\n"), ("sub/g", "g\n")):
            with open(os.path.join(t, name), "w") as f:
                f.write(text)
        r, how = run_in(t, f"cat in{attempt}.txt sub/g; ls; stat -c %a .; echo out > out.txt; mkdir made; "
                           "echo m > made/f")
        r2, how2 = traced(f"cat {t}/out.txt {t}/made/f; ls {t}")
        if how.startswith("patched") and how2.startswith("patched"):
            break
        print(f"     (try {attempt}: {how}, then {how2})")
    check(r.returncode == 0 and r.stdout.decode() == f"in {attempt}\ng\nin{attempt}.txt\nsub\n750\n",
          f"a directory made anew on the host, run in: only its own names: {out(r)!r}")
    check(how.startswith("patched"), f"... from the patch layer, not a new generation: {how}")
    check(r2.returncode == 0 and out(r2) == f"out\nm\nin{attempt}.txt\nmade\nout.txt\nsub\n",
          f"what the program wrote there (a file, a directory), in the next call: {out(r2)!r}")
    check(how2.startswith("patched"), f"... from the patch layer: {how2}")
    # The write-back of a file in a subdirectory of the root changes no
    # directory's attributes on the way (a chmod to the same mode is an
    # inotify event all the same: scratch's would need a new generation).
    for attempt in range(5):
        traced(f"echo z{attempt} > scratch/t/sub/z")
        r, how = traced("cat scratch/t/sub/z")
        if how.startswith("patched"):
            break
    check(out(r) == f"z{attempt}\n" and how.startswith("patched"),
          f"a file the program wrote in a subdirectory, read by the next call from the patch layer: {out(r)!r} "
          f"({how})")
    # Made anew once more, now that the patch layer holds it: the names its
    # old tree's watches noted come before it in the list, some of them
    # paths it has again (sub/g); each goes where it comes last, after the
    # directory above it made anew.
    for attempt in range(5):
        shutil.rmtree(t)
        os.makedirs(os.path.join(t, "sub"))
        with open(os.path.join(t, "sub", "g"), "w") as f:
            f.write(f"again {attempt}\n")
        r, how = run_in(t, "cat sub/g; ls . sub")
        if how.startswith("patched"):
            break
    check(r.returncode == 0 and r.stdout.decode() == f"again {attempt}\n.:\nsub\n\nsub:\ng\n" and
          how.startswith("patched"), f"... made anew again, run in: {out(r)!r} ({how})")
    for attempt in range(5):
        fresh = os.path.join(scratch, f"fresh{attempt}")
        os.mkdir(fresh)
        r, how = run_in(fresh, "pwd; echo x > x; cat x")
        if how.startswith("patched"):
            break
    check(r.returncode == 0 and r.stdout.decode() == f"{fresh}\nx\n" and how.startswith("patched"),
          f"a directory the generation never had, run in: {out(r)!r} ({how})")


def test_ahead_in_use():
    """A call using the namespace made ahead over a patch writes back, while
    another caller's write-back makes the next one for the same generation."""
    f = os.path.join(cwd, "shared.txt")
    rewrite(f, "0\n", 0o644, 1_600_000_000)
    guest(f"cat {f}")
    guest(f"echo 1 > {f}")  # written back: a patch, and the namespace made ahead over it
    a = subprocess.Popen([VMEXEC, "--target", "s390x", "--", "/bin/sh", "-c", "sleep 3; echo a > a.txt"],
                         cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import time
    time.sleep(1.5)
    r = guest(f"echo 2 > {f}")  # another patch and namespace ahead, while the first call runs
    out_a, err_a = a.communicate(timeout=900)
    with open(f) as fh:
        shared = fh.read()
    written = os.path.exists(os.path.join(cwd, "a.txt")) and open(os.path.join(cwd, "a.txt")).read()
    check(a.returncode == 0 and r.returncode == 0 and shared == "2\n" and written == "a\n",
          f"a call in a namespace made ahead writes back while another is made: {a.returncode} {written!r} "
          f"{shared!r} {err_a[-200:]!r}")


def cleanup_then(tests):
    def run():
        try:
            for t in tests:
                t()
        finally:
            import shutil
            shutil.rmtree(unnamed, ignore_errors=True)
            shutil.rmtree(unnamed_var, ignore_errors=True)
    return run


sys.exit(guest_main([cleanup_then([test_visible, test_writes, test_changes, test_patched, test_dir_made,
                                      test_ahead_in_use])], VMEXEC, ENV,
                    top, setup=setup))
