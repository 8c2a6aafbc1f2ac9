#!/usr/bin/env python3
"""nbd-share against virtio-9p, and what a share generation costs, measured in
one run on one s390x guest:

  1. sequential read of a 256 MiB file, and walking + reading 10 000 small
     files: through the share (EROFS on the nbdkit disk) vs virtio-9p
     (msize 512 KiB, cache=loose), page cache dropped before each; timed in
     the guest;
  2. the time of a call that reuses the current generation (a metadata
     fingerprint of the trees) vs one that needs a new generation (scan,
     layout, mount), for trees of 1 000, 10 000 and 50 000 files;
  3. per-call overhead of a trivial program with the share vs --copy;
  4. the lazy share (issue 12): the first call after a tree of 1 000 000
     empty files appeared under /var/tmp and is shared (--share TREE:ro),
     against one of 1 000 files; nested (1 000 directories of 1 000) and
     flat (one directory). The share reads only what the guest looks at: a
     nested tree costs its top directory, a flat one a readdir of it.

Usage: bench/share.py [--vmexec PATH] [--calls N] [--lazy (only 4)].
Nothing is asserted."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmexec", default=os.path.join(top, "build", "vmexec"))
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--lazy", action="store_true", help="only section 4, the lazy share's figure")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vmexec-bench-share-")
    data = os.path.join(work, "data")
    os.makedirs(os.path.join(data, "small"))
    if not a.lazy:
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
        if a.lazy:
            timed([vm, prog, "stat", "/"], env, work)  # the guest booted
            lazy_figure(vm, prog, env, work, 3)
            return
        # 1. throughput, share vs 9p
        _, out = timed([vm, "--root", prog, "bench", data, "bench9p"], env, work)
        rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()}
        print("1. reading through the share vs virtio-9p (s390x guest, TCG; page cache dropped)")
        print(f"{'':28} {'share':>12} {'9p':>12} {'share speedup':>14}")
        for what in ("read", "walk"):
            sh, p9 = rows.get(f"share-{what}"), rows.get(f"9p-{what}")
            if not sh or not p9:
                print(f"   {what}: missing result: {out!r}")
                continue
            speedup = float(p9[0]) / float(sh[0])  # same bytes: time ratio
            if what == "read":
                print(f"{'256 MiB sequential read':28} {float(sh[1]):7.1f} MB/s {float(p9[1]):7.1f} MB/s {speedup:13.2f}x")
            else:
                print(f"{'walk+read 10 000 files':28} {float(sh[0]):10.2f} s {float(p9[0]):10.2f} s {speedup:13.2f}x")

        # 2. generation reuse vs refresh
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

        # 3. per-call overhead, share vs --copy: from a directory holding only
        # the program, and from the work directory (all the trees above: the
        # share's change check scans every shared tree's metadata per call)
        small = os.path.join(work, "small-cwd")
        os.mkdir(small)
        shutil.copy(prog, small)
        nfiles = sum(len(f) for _, _, f in os.walk(work))
        print(f"\n3. per call, trivial program (median of {a.calls}, s)")
        print(f"{'working directory':36} {'share':>7} {'--copy':>7} {'share/copy':>11}")
        for where, cwd, p in (("only the program", small, os.path.join(small, "sharetest")),
                              (f"{nfiles} files below it", work, prog)):
            share = statistics.median(timed([vm, p, "stat", "/"], env, cwd)[0] for _ in range(a.calls))
            copy = statistics.median(timed([vm, "--copy", p, "stat", "/"], env, cwd)[0] for _ in range(a.calls))
            print(f"{where:36} {share:7.3f} {copy:7.3f} {share / copy:11.2f}")
        lazy_figure(vm, prog, env, work, 3)
    finally:
        subprocess.run([vm, "stop", "--all"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
