#!/usr/bin/env python3
"""nbd-share against virtio-9p, and what a share generation costs, measured in
one run on one s390x guest:

  1. sequential read of a 256 MiB file, and walking + reading 10 000 small
     files: through the share (EROFS on the nbdkit disk) vs virtio-9p
     (msize 512 KiB, cache=loose), page cache dropped before each; timed in
     the guest; then the walk again with everything cached, what the guest's
     system calls cost alone (the floor of the walk under TCG). The files
     are in the working directory, a writable root (an overlay over the
     share, as a build tree is), then shared read-only (`--share DIR:ro`,
     the share's EROFS bind-mounted, as a source tree's test data is);
  2. the time of a call that reuses the current generation (a metadata
     fingerprint of the trees) vs one that needs a new generation (scan,
     layout, mount), for trees of 1 000, 10 000 and 50 000 files;
  3. per-call overhead of a trivial program with the share vs --copy;
  4. the lazy share (issue 12): the first call after a tree of 1 000 000
     empty files appeared under /var/tmp and is shared (--share TREE:ro),
     against one of 1 000 files; nested (1 000 directories of 1 000) and
     flat (one directory). The share reads only what the guest looks at: a
     nested tree costs its top directory, a flat one a readdir of it.

Usage: bench/share.py [--vmexec PATH] [--calls N] [--parts 1,2,3,4] [--lazy (only 4)].
Nothing is asserted."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from proccpu import cpu_seconds

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tree(root, files, size=2048):
    per_dir = 100
    blob = os.urandom(size)
    for i in range(files):
        d = os.path.join(root, f"d{i // per_dir:04}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06}"), "wb") as f:
            f.write(blob)


def make_empty(root, dirs, per_dir):
    """DIRS directories of PER_DIR empty files under ROOT (DIRS 0: the files
    in ROOT itself), as fast as Python creates files."""
    os.makedirs(root)
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for d in range(max(dirs, 1)):
        sub = os.path.join(root, f"d{d:04}") if dirs else root
        if dirs:
            os.mkdir(sub)
        fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(per_dir):
                os.close(os.open(f"f{i:07}", flags, 0o644, dir_fd=fd))
        finally:
            os.close(fd)


def lazy_figure(vm, prog, env, work, calls):
    """Section 4: the first call after a tree appeared, by its size."""
    print("\n4. first call after a tree of empty files appeared under /var/tmp and is shared (s)")
    print(f"{'tree':34} {'first call':>10} {'next calls':>10}")
    results = {}
    for shape, dirs, per_dir in (("nested 1 000 x 1 000", 1000, 1000), ("nested 1 x 1 000", 1, 1000),
                                 ("flat 1 000 000", 0, 1000000), ("flat 1 000", 0, 1000)):
        tree = tempfile.mkdtemp(prefix="vmexec-bench-lazy-", dir="/var/tmp")
        try:
            make_empty(os.path.join(tree, "t"), dirs, per_dir)
            args = [vm, "--share", os.path.join(tree, "t") + ":ro", prog, "stat", os.path.join(tree, "t")]
            first = timed(args, env, work)[0]
            rest = statistics.median(timed(args, env, work)[0] for _ in range(calls))
            results[shape] = first
            print(f"{shape + f' ({max(dirs, 1) * per_dir} files)':34} {first:10.3f} {rest:10.3f}")
        finally:
            shutil.rmtree(tree, ignore_errors=True)
    print(f"ratio 1 000 000 / 1 000 files, first call: nested "
          f"{results['nested 1 000 x 1 000'] / results['nested 1 x 1 000']:.2f}, "
          f"flat {results['flat 1 000 000'] / results['flat 1 000']:.2f}")


def timed(cmd, env, cwd):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)}: status {r.returncode}: {r.stderr.decode()[-400:]}")
    return time.perf_counter() - t, r.stdout.decode()


def guest_pids(rundir):
    """The guest's qemu and the share's nbdkit: the processes whose command
    line names RUNDIR's sockets."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if ("qemu-system" in cmd or "nbdkit" in cmd) and rundir in cmd:
            pids.append(int(pid))
    return pids


def throughput(vm, prog, data, env, work):
    """1. sequential and small-file reads, share vs 9p, timed in the guest,
    with the CPU time qemu and nbdkit spent meanwhile (sampled as each
    result line arrives): on a loaded machine the wall times stretch with
    the load, the CPU times hardly."""
    pids = guest_pids(os.path.join(env["XDG_RUNTIME_DIR"], "vmexec", "s390x"))
    rows = {}
    # DATA under the working directory, a writable root: an overlay over the
    # share, as a build tree is; then DATA as a read-only root (--share
    # DIR:ro, from elsewhere), as a source tree's test data is: the share's
    # EROFS bind-mounted, no overlay. 9p is mounted read-only, no overlay.
    for prefix, args, cwd in (("", [prog, "bench", data, "bench9p"], work),
                              ("ro-", ["--share", data + ":ro", prog, "bench", data], "/")):
        p = subprocess.Popen([vm, "--root", *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        last = cpu_seconds(*pids)
        for line in p.stdout:
            now = cpu_seconds(*pids)
            rows[prefix + line.split()[0]] = [float(x) for x in line.split()[1:]] + [now - last]
            last = now
        err = p.stderr.read()
        if p.wait() != 0:
            sys.exit(f"bench: sharetest bench: status {p.returncode}: {err[-400:]}")
    print("1. reading through the share vs virtio-9p (s390x guest, TCG; page cache dropped); wall s in the guest,")
    print("   CPU s of qemu + nbdkit meanwhile")
    print(f"{'':28} {'share':>16} {'9p':>16} {'speedup wall':>13} {'CPU':>6}")
    for what, label, kind in (("read", "256 MiB sequential read", "share"),
                              ("walk", "walk+read 10 000 files", "share"), ("rewalk", "  again, all cached", "share"),
                              ("walk", "  the same, read-only root", "ro-share"),
                              ("rewalk", "  again, all cached", "ro-share")):
        sh, p9 = rows.get(f"{kind}-{what}"), rows.get(f"9p-{what}")
        if not sh or not p9:
            print(f"   {what}: missing result: {rows!r}")
            continue
        print(f"{label:28} {sh[0]:7.2f} / {sh[3]:6.2f} {p9[0]:7.2f} / {p9[3]:6.2f} {p9[0] / sh[0]:12.2f}x"
              f" {p9[3] / sh[3]:5.2f}x")


def generations(vm, prog, env, work):
    """2. a call that reuses the generation vs one that needs a new one."""
    print("\n2. a call's cost: reusing the generation vs a new one (s)")
    print(f"{'files':>8} {'reuse':>8} {'new gen':>8}")
    for n in (1000, 10000, 50000):
        tree = os.path.join(work, f"tree{n}")
        make_tree(tree, n, 64)
        args = [vm, "--share", tree + ":ro", prog, "stat", tree]
        timed(args, env, work)  # first: new generation with this tree
        reuse = statistics.median(timed(args, env, work)[0] for _ in range(3))
        fresh = []
        for i in range(3):
            with open(os.path.join(tree, "d0000", f"touch{i}"), "w") as f:
                f.write("x")
            fresh.append(timed(args, env, work)[0])
        print(f"{n:>8} {reuse:8.3f} {statistics.median(fresh):8.3f}")


def per_call(vm, prog, env, work, calls):
    """3. per-call overhead, share vs --copy: from a directory holding only
    the program, and from the work directory (all the trees above: the
    share's change check scans every shared tree's metadata per call)."""
    small = os.path.join(work, "small-cwd")
    os.mkdir(small)
    shutil.copy(prog, small)
    nfiles = sum(len(f) for _, _, f in os.walk(work))
    print(f"\n3. per call, trivial program (median of {calls}, s)")
    print(f"{'working directory':36} {'share':>7} {'--copy':>7} {'share/copy':>11}")
    for where, cwd, p in (("only the program", small, os.path.join(small, "sharetest")),
                          (f"{nfiles} files below it", work, prog)):
        share = statistics.median(timed([vm, p, "stat", "/"], env, cwd)[0] for _ in range(calls))
        copy = statistics.median(timed([vm, "--copy", p, "stat", "/"], env, cwd)[0] for _ in range(calls))
        print(f"{where:36} {share:7.3f} {copy:7.3f} {share / copy:11.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--lazy", action="store_true", help="only section 4, the lazy share's figure")
    ap.add_argument("--parts", default="1,2,3,4", help="which of the measurements above to run, e.g. 1")
    a = ap.parse_args()
    parts = {4} if a.lazy else {int(p) for p in a.parts.split(",")}
    work = tempfile.mkdtemp(prefix="vmexec-bench-share-")
    data = os.path.join(work, "data")
    os.makedirs(os.path.join(data, "small"))
    if 1 in parts:  # the data of the throughput measurement
        with open(os.path.join(data, "big.bin"), "wb") as f:
            for _ in range(256):
                f.write(os.urandom(1 << 20))
        make_tree(os.path.join(data, "small"), 10000)
    prog = os.path.join(work, "sharetest")
    subprocess.run(["s390x-linux-gnu-gcc", "-O2", "-o", prog, os.path.join(top, "tests/guest/sharetest.c")], check=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(work, "rt"), VMEXEC_IDLE_TIMEOUT="600",
               VMEXEC_QEMU_EXTRA=f"-fsdev local,id=b9,path={data},security_model=none,readonly=on "
                                 f"-device virtio-9p-ccw,fsdev=b9,mount_tag=bench9p")
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    vm = a.vmexec
    try:
        timed([vm, prog, "stat", "/"], env, work)  # the guest booted
        if 1 in parts:
            throughput(vm, prog, data, env, work)
        if 2 in parts:
            generations(vm, prog, env, work)
        if 3 in parts:
            per_call(vm, prog, env, work, a.calls)
        if 4 in parts:
            lazy_figure(vm, prog, env, work, 3)
    finally:
        subprocess.run([vm, "stop", "--all"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
