#!/usr/bin/env python3
"""Guest test of the full Debian userland image (issue 6): `vmexec image
build s390x --full` and `vmexec --target s390x --image full -- COMMAND`.

1. The image is built by an unprivileged user (VMEXEC_TEST_USER, default
   "tester", when the test runs as root; else the caller): no root, the
   host's dpkg and apt state unchanged (hashes before and after), the guest
   configures the packages on a first boot. A second build says "(cached)",
   keeps the same image and boots nothing; `image list` shows it. Root then
   uses the same cache for the rest of the test, so the first boot happens
   once per test run.
5. Commands run in the image's own userland: s390x, dpkg's architecture,
   every package configured (`dpkg --audit` silent, `dpkg -l` all "ii");
   VMEXEC_IMAGE=full does what --image full does; a write outside the shared
   trees (/etc/x) is gone in the next run (per-run overlay root); a non-ELF
   file without --target is 126; --image bogus is 125 with one line.
2. The Meson example built and tested natively in the guest (meson setup,
   ninja, meson test): the harness's verdicts, vmexec's status = meson's,
   the build tree (s390x ELF programs, logs) back on the host.
3. The plain Makefile example (`make -f plain.mk check`) and the automake
   example (autoreconf on the host, `./configure && make check` in the guest).
4. The CMake example (cmake, cmake --build, ctest): ctest's verdicts and
   status.
6. `--shell` on the full image through a host pseudo-terminal: bash, a
   command, Ctrl-C to a sleep, `exit 7`.

The user runs a world-readable copy of vmexec, its agents and the share
plugin; the cache is new for every run (packages already downloaded into
BUILDDIR/test-cache are copied in, and new ones copied back, to spare the
network; so is s390x's kernel built from source, to spare minutes). Environment: VMEXEC, BUILDDIR, SRCDIR; VMEXEC_TEST_USER; FULL_PARTS
(default "meson make cmake shell persist": which of 2-4, 6 and the
persistent layer run). Under
CI=true a test that cannot run is a failure, never a skip (77)."""

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import termios
import time

from testlib import HostTerminal, check, finish_timed, skip_or_fail, timed
from verdicts import (AUTOMAKE_WANT, CTEST_WANT, MESON_WANT, automake_verdicts, ctest_verdicts, expect_verdicts,
                      meson_verdicts)

VMEXEC_BUILD = os.environ["VMEXEC"]
BUILDDIR = os.environ["BUILDDIR"]
SRCDIR = os.environ["SRCDIR"]
EXAMPLES = os.path.join(SRCDIR, "tests", "examples")
TARGET = "s390x"
# The build-system parts to run after the build and userland checks (all by default).
PARTS = os.environ.get("FULL_PARTS", "meson make cmake shell persist").split()
FULL = ["--target", TARGET, "--image", "full"]

for tool in ["qemu-system-s390x", "nbdkit", "autoreconf", "automake"]:
    if not shutil.which(tool):
        skip_or_fail(f"{tool} is missing (scripts/install-deps installs it)")

# The user who builds the image: the caller when unprivileged, else another one.
if os.getuid() == 0:
    try:
        USER = pwd.getpwnam(os.environ.get("VMEXEC_TEST_USER", "tester"))
    except KeyError:
        skip_or_fail("no user %s to build the image as (useradd -m tester, or set VMEXEC_TEST_USER)"
                     % os.environ.get("VMEXEC_TEST_USER", "tester"))
    if not shutil.which("setpriv"):
        skip_or_fail("setpriv is missing (apt-get install util-linux)")
else:
    USER = pwd.getpwuid(os.getuid())

top = tempfile.mkdtemp(prefix="vmexec-test-full-")
os.chmod(top, 0o755)


def user_dir(name, mode=0o755):
    path = os.path.join(top, name)
    os.mkdir(path, mode)
    os.chown(path, USER.pw_uid, USER.pw_gid)
    return path


# A copy of vmexec, the agent and the plugin the user can read (the build tree
# may sit in a private home); root runs the same copy, so the image keys match.
bindir = os.path.join(top, "bin")
os.mkdir(bindir, 0o755)
VMEXEC = os.path.join(bindir, "vmexec")
shutil.copy2(VMEXEC_BUILD, VMEXEC)
shutil.copy2(os.path.join(os.path.dirname(VMEXEC_BUILD), "vmexec-tools"), bindir)  # all but warm calls
os.mkdir(os.path.join(bindir, "agents"), 0o755)
shutil.copy2(os.path.join(BUILDDIR, "agent", f"vmexec-agent-{TARGET}"), os.path.join(bindir, "agents"))
PLUGIN = os.path.join(BUILDDIR, "nbd-share", "nbdkit-vmexec-share-plugin.so")
if os.path.exists(PLUGIN):
    shutil.copy2(PLUGIN, bindir)
# The kernel's config fragments and patch (s390x's kernel is built from
# linux-source): a copy outside the build tree finds them only through
# VMEXEC_KERNEL_CONFIG_DIR.
KERNEL_CONFIGS = os.path.join(bindir, "kernel-configs")
shutil.copytree(os.path.join(SRCDIR, "image", "kernel-configs"), KERNEL_CONFIGS)
for dirpath, dirnames, filenames in os.walk(bindir):
    for f in filenames:
        os.chmod(os.path.join(dirpath, f), 0o755)

cache = user_dir("cache", 0o700)
runtime = os.path.join(top, "runtime")  # root's guests
os.mkdir(runtime, 0o700)
work = os.path.join(top, "work")
os.mkdir(work, 0o755)

# The persistent download cache of the build tree's guest tests.
SEED = os.path.join(BUILDDIR, "test-cache", "vmexec", "debs")


def seed_downloads():
    """Copy the packages the build tree's tests already downloaded (copies,
    owned by the user: hard links would change the originals' owner)."""
    if not os.path.isdir(SEED):
        return 0
    debs = os.path.join(cache, "vmexec", "debs")
    os.makedirs(debs, exist_ok=True)
    n = 0
    for name in os.listdir(SEED):
        if name.endswith(".deb"):
            shutil.copy2(os.path.join(SEED, name), debs)
            n += 1
    # s390x's kernel is built from linux-source (targets.def): minutes of
    # compiling that the other guest tests already did. Its cache entry is
    # copied like the packages.
    images = os.path.join(BUILDDIR, "test-cache", "vmexec", "images")
    if os.path.islink(os.path.join(images, "s390x-kernel")):
        key = os.readlink(os.path.join(images, "s390x-kernel"))
        shutil.copytree(os.path.join(images, key), os.path.join(cache, "vmexec", "images", key), symlinks=True)
    for dirpath, dirnames, filenames in os.walk(os.path.join(cache, "vmexec")):
        os.chown(dirpath, USER.pw_uid, USER.pw_gid)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), USER.pw_uid, USER.pw_gid)
    return n


def keep_downloads():
    """The packages this run downloaded go to the build tree's cache for the next run."""
    debs = os.path.join(cache, "vmexec", "debs")
    if not os.path.isdir(debs):
        return
    try:
        os.makedirs(SEED, exist_ok=True)
        for name in os.listdir(debs):
            if name.endswith(".deb") and not os.path.exists(os.path.join(SEED, name)):
                shutil.copy2(os.path.join(debs, name), SEED)
    except OSError as e:
        print(f"note: cannot keep the downloads in {SEED}: {e}")


base = dict(os.environ, XDG_CACHE_HOME=cache, VMEXEC_AGENT_DIR=os.path.join(bindir, "agents"),
            VMEXEC_KERNEL_CONFIG_DIR=KERNEL_CONFIGS,
            VMEXEC_IDLE_TIMEOUT="1800", PATH=bindir + os.pathsep + os.environ["PATH"])
if os.path.exists(os.path.join(bindir, os.path.basename(PLUGIN))):
    base["VMEXEC_SHARE_PLUGIN"] = os.path.join(bindir, os.path.basename(PLUGIN))
# The whole environment goes to the guest's commands: none of the outer harness's
# (VMEXEC is the runner plain.mk and automake use; in the guest they run natively).
for var in ["VMEXEC", "MESON_TESTTHREADS", "CTEST_PARALLEL_LEVEL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS",
            "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "VMEXEC_IMAGE", "VMEXEC_SHARE", "MALLOC_PERTURB_"]:
    base.pop(var, None)
ENV = dict(base, XDG_RUNTIME_DIR=runtime)
if USER.pw_uid != os.getuid():
    UENV = dict(base, XDG_RUNTIME_DIR=user_dir("user-runtime", 0o700), HOME=user_dir("user-home"),
                USER=USER.pw_name, LOGNAME=USER.pw_name)
    AS_USER = ["setpriv", f"--reuid={USER.pw_uid}", f"--regid={USER.pw_gid}", "--clear-groups", "--"]
else:
    UENV = ENV
    AS_USER = []


def run(cmd, cwd=None, env=None, timeout=2400, input=None):
    """(exit status, stdout, stderr, seconds); stdout and stderr as text."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd or work, env=env or ENV, capture_output=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        err = (e.stderr or b"").decode(errors="replace")
        return None, out, err + f"\n(timed out after {timeout} s)", time.monotonic() - start
    return (p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"),
            time.monotonic() - start)


def full(*args, **kw):
    return run([VMEXEC, *FULL, "--", *args], **kw)


def one_line(err):
    return err.count("\n") == 1


def tail(text, n=3000):
    return text[-n:]


# ---- 1. the build: no root, host untouched, cached, first boot once ----------

def host_state():
    """Hashes of what a root-needing build would change on the host."""
    h = {}
    for path in ["/var/lib/dpkg/status", "/var/lib/dpkg/arch"]:
        try:
            with open(path, "rb") as f:
                h[path] = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            h[path] = None
    for tree in ["/etc/apt", "/var/lib/apt/lists", "/var/cache/apt/archives"]:
        d = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                st = os.lstat(p)
                d.update(f"{p} {st.st_size} {st.st_mtime_ns}\n".encode())
                if tree == "/etc/apt" and os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as fh:
                        d.update(fh.read())
        h[tree] = d.hexdigest()
    r = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True)
    h["dpkg --print-foreign-architectures"] = r.stdout.decode()
    return h


def full_images():
    """{key: directory} of the full images in the cache (the directories with a rootfs.img)."""
    images = os.path.join(cache, "vmexec", "images")
    found = {}
    if os.path.isdir(images):
        for name in os.listdir(images):
            p = os.path.join(images, name)
            if not os.path.islink(p) and os.path.isfile(os.path.join(p, "rootfs.img")):
                found[name] = p
    return found


def firstboot_logs():
    """The first-boot console logs in the cache and the user's runtime
    directory, with their sizes and mtimes: a new boot changes this."""
    logs = {}
    for tree in [cache, UENV["XDG_RUNTIME_DIR"]]:
        for dirpath, _, filenames in os.walk(tree):
            for f in filenames:
                p = os.path.join(dirpath, f)
                if "firstboot" in p or "first-boot" in p:
                    st = os.stat(p)
                    logs[p] = (st.st_size, st.st_mtime_ns)
    return logs


rootfs_stat = None


def test_build():
    global rootfs_stat
    if AS_USER:
        r = run(AS_USER + ["sh", "-c", "id -u; grep ^CapEff /proc/self/status"], env=UENV)
        check(r[0] == 0 and r[1].split("\n")[0] == str(USER.pw_uid) and "CapEff:\t0000000000000000" in r[1],
              f"the build runs as {USER.pw_name} (uid {USER.pw_uid}) without capabilities: {r[1]!r}")
    seeded = seed_downloads()
    print(f"     seeded {seeded} downloaded packages from {SEED}", flush=True)
    before = host_state()
    rc, out, err, secs = run(AS_USER + [VMEXEC, "image", "build", TARGET, "--full"], env=UENV, timeout=4000)
    timed(f"image build --full as {USER.pw_name} (downloads, unpack, first boot)", secs)
    ok = check(rc == 0, f"vmexec image build {TARGET} --full as {USER.pw_name} (exit {rc})")
    print(tail(out + err, 6000 if not ok else 2000), flush=True)
    after = host_state()
    for k in before:
        check(before[k] == after[k], f"host unchanged by the build: {k}")
    images = full_images()
    check(len(images) == 1, f"one full image in the cache: {sorted(images)}")
    if not ok or len(images) != 1:
        return False
    key, d = next(iter(images.items()))
    rootfs = os.path.join(d, "rootfs.img")
    st = os.stat(rootfs)
    check(st.st_uid == USER.pw_uid, f"the image belongs to {USER.pw_name}, who built it (uid {st.st_uid})")
    rootfs_stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    logs = firstboot_logs()
    done = [p for p in logs if "first boot done" in open(p, errors="replace").read()]
    for p in done:
        m = re.search(r"first boot done in ([\d.]+) s", open(p, errors="replace").read())
        if m:
            timed("the first boot (dpkg --configure -a in the guest)", float(m.group(1)))
    check(len(done) == 1, f"one first boot configured the image (logs saying 'first boot done': {done}; all: "
          f"{sorted(logs)})")

    # Again, as the user: a cache hit, no boot.
    rc, out2, err2, secs = run(AS_USER + [VMEXEC, "image", "build", TARGET, "--full"], env=UENV, timeout=600)
    timed("image build --full again (cached)", secs)
    check(rc == 0 and "(cached)" in out2 + err2, f"the second build is a cache hit, says (cached) (exit {rc}): "
          f"{tail(out2 + err2, 500)!r}")
    check(full_images() == images, f"the same image: {sorted(full_images())}")
    check(firstboot_logs() == logs, "the second build booted nothing (no new first-boot log)")
    st = os.stat(rootfs)
    check((st.st_size, st.st_mtime_ns, st.st_ctime_ns) == rootfs_stat, "the second build left rootfs.img alone")

    # Root uses the same cache for the rest of the test: also a hit.
    rc, out3, err3, secs = run([VMEXEC, "image", "build", TARGET, "--full"], timeout=600)
    check(rc == 0 and "(cached)" in out3 + err3 and full_images() == images and firstboot_logs() == logs,
          f"{pwd.getpwuid(os.getuid()).pw_name} finds the same image cached (exit {rc}): {tail(out3 + err3, 500)!r}")

    rc, out, err, _ = run([VMEXEC, "image", "list"])
    lines = [l for l in out.splitlines() if key in l]
    check(rc == 0 and len(lines) == 1 and "full" in lines[0] and TARGET in lines[0],
          f"image list shows the full image {key}: {out!r} {err!r}")
    return True


def test_rootfs_unchanged():
    """After every run of the test: the image is still the one configured
    by the first boot (served read-only, never booted writable again)."""
    images = full_images()
    if len(images) != 1 or rootfs_stat is None:
        return
    st = os.stat(os.path.join(next(iter(images.values())), "rootfs.img"))
    check((st.st_size, st.st_mtime_ns, st.st_ctime_ns) == rootfs_stat, "rootfs.img is unchanged after all the runs")
    console = os.path.join(runtime, "vmexec", f"{TARGET}-full", "console.log")
    text = open(console, errors="replace").read() if os.path.exists(console) else None
    check(text is not None and "first boot" not in text,
          f"the full guest's boot did not configure again (no 'first boot' in {console})")


# ---- 5. the guest's userland -------------------------------------------------

def test_userland():
    rc, out, err, secs = full("sh", "-c", "uname -m; dpkg --print-architecture", timeout=1200)
    timed("first call: boots the full guest", secs)
    check(rc == 0 and out == "s390x\ns390x\n", f"uname -m and dpkg --print-architecture: s390x ({rc} {out!r} "
          f"{tail(err, 500)!r})")
    if rc != 0:
        return False
    rc, out, err, secs = full("true")
    timed("a call to the warm full guest (true)", secs)
    rc, out, err, _ = full("dpkg", "--audit")
    check(rc == 0 and out == "" and err == "", f"dpkg --audit: nothing to say ({rc} {out[-500:]!r} {err[-300:]!r})")
    rc, out, err, _ = full("dpkg", "-l")
    lines = out.splitlines()
    body = lines[[i for i, l in enumerate(lines) if l.startswith("+++-")][0] + 1:] if "+++-" in out else []
    bad = [l for l in body if not l.startswith("ii ")]
    names = {l.split()[1].split(":")[0] for l in body if len(l.split()) > 1}
    check(rc == 0 and len(body) > 100 and not bad, f"dpkg -l: {len(body)} packages, all 'ii' (others: {bad[:5]})")
    want = {"build-essential", "gcc", "g++", "make", "meson", "ninja-build", "cmake", "pkgconf", "bash", "dpkg"}
    check(want <= names, f"dpkg -l lists {sorted(want)} (missing: {sorted(want - names)})")
    rc, out, err, _ = full("sh", "-c", "for p in gcc g++ make meson ninja cmake ctest pkg-config bash; do "
                                       "command -v $p || echo missing $p; done")
    check(rc == 0 and "missing" not in out, f"the tools are on the guest's PATH: {out!r}")

    # VMEXEC_IMAGE=full does what --image full does; the minimal image has no dpkg.
    r = run([VMEXEC, "--target", TARGET, "--", "gcc", "-dumpmachine"], env=dict(ENV, VMEXEC_IMAGE="full"))
    check(r[0] == 0 and r[1] == "s390x-linux-gnu\n",
          f"VMEXEC_IMAGE=full: the full image, with gcc ({r[0]} {r[1]!r} {tail(r[2], 300)!r})")
    r = run([VMEXEC, "--target", TARGET, "--", "gcc", "-dumpmachine"], timeout=900)
    check(r[0] == 127 and "not found" in r[2], f"the minimal image (no --image) has no gcc: 127 ({r[0]} {r[2]!r})")
    r = run([VMEXEC, "status"])
    check(f"{TARGET}-full\t" in r[1] and f"\n{TARGET}\t" in "\n" + r[1],
          f"vmexec status shows both guests, {TARGET} and {TARGET}-full: {r[1]!r}")

    # The working directory is shared, writes come back.
    d = os.path.join(work, "cwd")
    os.mkdir(d)
    rc, out, err, _ = full("sh", "-c", "pwd; echo written-in-the-full-image > from-guest.txt", cwd=d)
    path = os.path.join(d, "from-guest.txt")
    got = open(path).read() if os.path.exists(path) else None
    check(rc == 0 and out == d + "\n" and got == "written-in-the-full-image\n",
          f"the cwd is the caller's and writes come back: {rc} {out!r} {got!r} {tail(err, 300)!r}")

    # A per-run root: what a run writes outside the shared trees is gone after it.
    host_had = os.path.exists("/etc/x")
    rc, out, err, _ = run([VMEXEC, *FULL, "--root", "--", "sh", "-c",
                           "echo persisted > /etc/x && echo y > /usr/local/y && cat /etc/x"])
    check(rc == 0 and out == "persisted\n", f"a run writes /etc/x and /usr/local/y in its root: {rc} {out!r} {err!r}")
    rc, out, err, _ = run([VMEXEC, *FULL, "--root", "--", "sh", "-c",
                           "for f in /etc/x /usr/local/y; do test -e $f && echo $f present || echo $f absent; done"])
    check(rc == 0 and out == "/etc/x absent\n/usr/local/y absent\n",
          f"the next run does not see them (a fresh overlay per run): {rc} {out!r} {err!r}")
    check(host_had or not os.path.exists("/etc/x"), "the host's /etc/x was not created")

    # A script (non-ELF) without --target is still 126, with the full image too.
    script = os.path.join(d, "script.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"script on $(uname -m) with $(dpkg --print-architecture): $*\"\nexit 5\n")
    os.chmod(script, 0o755)
    for label, cmd, env in [("--image full", [VMEXEC, "--image", "full", script, "a"], ENV),
                            ("VMEXEC_IMAGE=full", [VMEXEC, script, "a"], dict(ENV, VMEXEC_IMAGE="full"))]:
        rc, out, err, _ = run(cmd, env=env, cwd=d)
        check(rc == 126 and one_line(err) and "--target" in err,
              f"{label}: a script without --target is 126, one line naming --target: {rc} {err!r}")
    rc, out, err, _ = full("./script.sh", "a", cwd=d)
    check(rc == 5 and out == "script on s390x with s390x: a\n",
          f"with --target the script runs in the full image: {rc} {out!r} {err!r}")

    for label, cmd, env in [("--image bogus", [VMEXEC, "--target", TARGET, "--image", "bogus", "--", "true"], ENV),
                            ("VMEXEC_IMAGE=bogus", [VMEXEC, "--target", TARGET, "--", "true"],
                             dict(ENV, VMEXEC_IMAGE="bogus"))]:
        rc, out, err, _ = run(cmd, env=env)
        check(rc == 125 and one_line(err) and "bogus" in err, f"{label}: 125 and one line: {rc} {err!r}")
    return True


# ---- 2-4. build systems in the guest -----------------------------------------

def project(name, tag=""):
    """A copy of the example NAME with ../common beside it; (project dir, common dir)."""
    root = os.path.join(work, f"{name}{tag}-project")
    os.mkdir(root)
    shutil.copytree(os.path.join(EXAMPLES, name), os.path.join(root, name))
    shutil.copytree(os.path.join(EXAMPLES, "common"), os.path.join(root, "common"))
    return os.path.join(root, name), os.path.join(root, "common")


def in_guest_phases(label, src, common, phases, timeout=3000):
    """Run PHASES (name, shell command) in one guest call from SRC, like the
    issue's `sh -c 'A && B && C'`, timing each phase in the guest. The last
    phase's status is printed and is the call's. Returns (status, output,
    {phase: its status} of the phases that ran)."""
    script = ""
    for i, (name, cmd) in enumerate(phases):
        script += f'echo "phase-start {name} $(date +%s.%N)"; {cmd}; s=$?; echo "phase-end {name} $(date +%s.%N) $s"; '
        script += "exit $s; " if i == len(phases) - 1 else '[ $s = 0 ] || exit $s; '
    rc, out, err, secs = run([VMEXEC, *FULL, "--share", common, "--", "sh", "-c", script], cwd=src, timeout=timeout)
    timed(f"{label}: the whole call", secs)
    starts = dict(re.findall(r"^phase-start (\S+) ([\d.]+)$", out, re.M))
    statuses = {}
    for name, end, status in re.findall(r"^phase-end (\S+) ([\d.]+) (\d+)$", out, re.M):
        if name in starts:
            timed(f"{label}: {name} (in the guest)", float(end) - float(starts[name]))
        statuses[name] = int(status)
    return rc, out + err, statuses


def elf_info(path):
    """(class, data, machine) of an ELF file: (2, 2, 22) is 64-bit big-endian s390."""
    with open(path, "rb") as f:
        h = f.read(20)
    if h[:4] != b"\x7fELF":
        return None
    return h[4], h[5], int.from_bytes(h[18:20], "big" if h[5] == 2 else "little")


def s390x_programs(bld, names, label):
    for name in names:
        p = os.path.join(bld, name)
        info = elf_info(p) if os.path.isfile(p) else None
        check(info == (2, 2, 22), f"{label}: {name} is on the host, a 64-bit big-endian s390 ELF ({info})")
    p = os.path.join(bld, names[0])
    if os.path.isfile(p):
        rc, out, err, _ = run([VMEXEC, "inspect", p])
        check(rc == 0 and "target: s390x" in out and "big-endian" in out, f"{label}: vmexec inspect: {out!r}")


BIG = "0x01020304 in memory: 01 02 03 04"


def test_meson():
    src, common = project("meson")
    rc, out, st = in_guest_phases("meson (in the guest)", src, common, [
        ("setup", "meson setup b"), ("build", "ninja -C b"), ("test", "meson test -C b")])
    bld = os.path.join(src, "b")
    check(st.get("setup") == 0 and st.get("build") == 0, f"meson setup and ninja succeed in the guest ({st})")
    check("test" in st and rc == st["test"] and rc != 0,
          f"meson: vmexec's status is meson test's, non-zero as the hang test times out "
          f"(vmexec {rc}, meson test {st.get('test')})")
    check('Checking if "byte order at run time" runs: YES' in out, "meson setup: cc.run() ran (natively in the guest)")
    check("Build type: native build" in out and "Host machine cpu family: s390x" in out,
          "meson setup: a native build on s390x (Build type: native build, host machine s390x)")
    if not expect_verdicts("meson test in the guest", meson_verdicts(bld), MESON_WANT) or "test" not in st:
        print(tail(out, 6000))
    for f in ["build.ninja", "meson-logs/testlog.txt", "meson-logs/meson-log.txt", "meson-info/meson-info.json"]:
        check(os.path.isfile(os.path.join(bld, f)), f"meson: b/{f} is on the host")
    log = os.path.join(bld, "meson-logs", "testlog.txt")
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    check(BIG in text, "meson: byteorder saw big-endian memory (natively, in the guest)")
    s390x_programs(bld, ["byteorder", "datafile", "writer", "reader", "threads", "argsenv"], "meson")
    # The guest's own build, run from the host through the full image by its ELF header.
    rc, out, err, _ = run([VMEXEC, "--image", "full", os.path.join(bld, "byteorder")], cwd=src)
    check(rc == 0 and BIG in out, f"the built byteorder runs with vmexec --image full PROGRAM: {rc} {out!r} {err!r}")


def test_make():
    src, common = project("make")
    rc, out, st = in_guest_phases("plain make (in the guest)", src, common, [
        ("check", "make -f plain.mk check")])
    check(rc == 0 and st.get("check") == 0 and "make check: all tests passed" in out,
          f"make -f plain.mk check in the guest: exit {rc}")
    check(BIG in out, "plain make: byteorder saw big-endian memory")
    if rc != 0:
        print(tail(out, 4000))
    s390x_programs(src, ["byteorder", "datafile", "writer", "reader", "threads", "argsenv"], "plain make")

    # automake: autoreconf on the host (the image has no autoconf), then the example.
    src, common = project("make", "-automake")
    r = run(["autoreconf", "-fi"], cwd=src, timeout=600)
    if not check(r[0] == 0, f"autoreconf -fi on the host (exit {r[0]})"):
        print(tail(r[1] + r[2]))
        return
    rc, out, err, secs = run([VMEXEC, *FULL, "--share", common, "--", "sh", "-c", "./configure && make check"],
                             cwd=src, timeout=3000)
    timed("automake: ./configure && make check (in the guest)", secs)
    out += err
    if rc != 0:
        files = ["configure.ac", "../common/endian-check.c", "aclocal.m4", "configure", "Makefile.in", "Makefile"]
        print("host:  " + " ".join(f"{f}={os.stat(os.path.join(src, f)).st_mtime_ns}" for f in files
                                   if os.path.exists(os.path.join(src, f))))
        r = run([VMEXEC, *FULL, "--share", common, "--", "sh", "-c",
                 "stat -c '%n=%.9Y' " + " ".join(files) + "; date +%s.%N"], cwd=src)
        print("guest: " + r[1].replace("\n", " ") + r[2])
    check(rc == 0, f"./configure && make check in the guest: exit 0 (exit {rc})")
    check("checking byte order at run time... big" in out, "configure: ran a program natively in the guest (big)")
    check("checking whether we are cross compiling... no" in out, "configure: not a cross build")
    if not expect_verdicts("make check (automake) in the guest", automake_verdicts(src), AUTOMAKE_WANT) or rc != 0:
        print(tail(out, 6000))
    check(os.path.isfile(os.path.join(src, "test-suite.log")), "automake: test-suite.log is on the host")
    s390x_programs(src, ["byteorder", "datafile", "writer", "reader", "threads", "argsenv"], "automake")


def test_cmake():
    src, common = project("cmake")
    rc, out, st = in_guest_phases("cmake (in the guest)", src, common, [
        ("configure", "cmake -S . -B b"), ("build", "cmake --build b"), ("test", "ctest --test-dir b")])
    bld = os.path.join(src, "b")
    check(st.get("configure") == 0 and st.get("build") == 0, f"cmake and cmake --build succeed in the guest ({st})")
    check("test" in st and rc == st["test"] and rc != 0,
          f"cmake: vmexec's status is ctest's, non-zero as segv and hang fail (vmexec {rc}, ctest {st.get('test')})")
    check("Byte order at run time (try_run): big" in out, "cmake: try_run ran natively in the guest (big)")
    if not expect_verdicts("ctest in the guest", ctest_verdicts(out), CTEST_WANT) or "test" not in st:
        print(tail(out, 6000))
    for f in ["CMakeCache.txt", "Makefile", "Testing/Temporary/LastTest.log"]:
        check(os.path.isfile(os.path.join(bld, f)), f"cmake: b/{f} is on the host")
    system = glob.glob(os.path.join(bld, "CMakeFiles", "*", "CMakeSystem.cmake"))
    text = open(system[0]).read() if system else ""
    check('set(CMAKE_HOST_SYSTEM_PROCESSOR "s390x")' in text and 'set(CMAKE_CROSSCOMPILING "FALSE")' in text,
          f"cmake: a native build on s390x (CMakeSystem.cmake: {system})")
    s390x_programs(bld, ["byteorder", "datafile", "writer", "reader", "threads", "argsenv"], "cmake")


# ---- 6. --shell on a pseudo-terminal -------------------------------------------

PROMPT = b"full-prompt> "


def test_shell():
    d = os.path.join(work, "shell")
    os.mkdir(d)
    t = HostTerminal([VMEXEC, *FULL, "--shell"], d, dict(ENV, TERM="xterm"), PROMPT)
    try:
        # bash's own prompt first (Debian's bash.bashrc sets PS1), then ours;
        # typed in two parts so that the echoed line never matches it.
        first = t.expect(re.compile(rb"[#$] $"), 600)
        check(first is not None, f"the full image's shell prompts: {t.buf[-300:]!r}")
        t.send(b"PS1='full-''prompt> '\r")
        check(t.expect(PROMPT, 60) is not None, f"the prompt can be set: {t.buf[-300:]!r}")
        out = t.run("echo $BASH_VERSION; readlink /proc/$$/exe; tty; uname -m")
        lines = out.splitlines() if out else []
        check(len(lines) == 4 and lines[0][:1].isdigit() and lines[1].endswith("/bash") and
              lines[2].startswith("/dev/pts/") and lines[3] == "s390x",
              f"the default shell of the full image is bash on a guest pty: {out!r}")
        out = t.run("echo $((40+2)) > shell-out.txt; cat shell-out.txt")
        check(out == "42\n", f"a command runs in the shell: {out!r}")
        t.ctrl_c_stops_sleep("grep -lx sleep /proc/[0-9]*/comm 2>/dev/null | wc -l")
        t.send(b"exit 7\r")
        status = t.wait_exit(120)
        check(status == 7, f"exit 7 in the full image's shell: vmexec exits 7: {status}")
        check(termios.tcgetattr(t.slave) == t.saved, "the caller's terminal is restored after the shell")
        path = os.path.join(d, "shell-out.txt")
        check(os.path.exists(path) and open(path).read() == "42\n", "a file the shell wrote is on the host")
    finally:
        t.close()


# ---- the persistent layer (--persist) ------------------------------------------

def test_persist():
    persist = [VMEXEC, "--target", TARGET, "--persist", "--root", "--"]
    rc, out, err, secs = run(persist + ["sh", "-c", "echo kept > /etc/vmexec-kept && mkdir -p /usr/local/lib/k && "
                                        "echo k > /usr/local/lib/k/f && echo done"])
    timed("--persist: first call (boot of the persist guest)", secs)
    check(rc == 0 and out == "done\n", f"--persist: a run writes /etc and /usr/local: {rc} {out!r} {tail(err, 300)!r}")
    show = ["sh", "-c", "cat /etc/vmexec-kept /usr/local/lib/k/f 2>&1"]
    rc, out, err, _ = run(persist + show)
    check(rc == 0 and out == "kept\nk\n", f"--persist: the next run sees them: {rc} {out!r} {err!r}")
    rc, out, err, _ = full(*show)
    check(out.count("No such file") == 2, f"the per-run guest (--image full) does not: {rc} {out!r}")
    r = run([VMEXEC, "status"])
    check(f"{TARGET}-full-persist\t" in r[1], f"status shows the {TARGET}-full-persist guest: {r[1]!r}")
    layers = os.listdir(os.path.join(cache, "vmexec", "layers"))
    check(len(layers) == 1 and layers[0].startswith(TARGET + "-"), f"one layer in the cache: {layers}")
    run([VMEXEC, "stop", TARGET], timeout=300)
    rc, out, err, _ = run(persist + show)
    check(rc == 0 and out == "kept\nk\n", f"--persist: the changes survive a guest restart: {rc} {out!r} {err!r}")
    rc, out, err, _ = run([VMEXEC, "--target", TARGET, "--image", "minimal", "--persist", "--", "true"])
    check(rc == 125 and one_line(err) and "--image full" in err,
          f"--persist with the minimal image: 125 and one line: {rc} {err!r}")


def main():
    try:
        if test_build() and test_userland():
            for name, part in [("meson", test_meson), ("make", test_make), ("cmake", test_cmake),
                               ("shell", test_shell), ("persist", test_persist)]:
                if name in PARTS:
                    part()
            test_rootfs_unchanged()
    finally:
        run([VMEXEC, "stop", "--all"], timeout=300)
        if AS_USER:
            run(AS_USER + [VMEXEC, "stop", "--all"], env=UENV, timeout=300)
        keep_downloads()
        shutil.rmtree(top, ignore_errors=True)
    return finish_timed()


if __name__ == "__main__":
    sys.exit(main())
