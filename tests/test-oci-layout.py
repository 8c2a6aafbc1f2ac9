#!/usr/bin/env python3
"""Unit test of the OCI image layout (hub/oci-layout.c) through
test-oci-layout (argv[1]), no registry and no guest: a sparse file goes in
as a gzip'd layer and comes back the same bytes and still sparse; the
layout is one skopeo reads when skopeo is installed; one byte flipped in
the layer's blob or in the manifest is refused with one line and status
125 before the layer is used."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from testlib import check, finish

HELPER = sys.argv[1]
work = tempfile.mkdtemp(prefix="vmexec-test-oci-layout-")


def helper(*args):
    return subprocess.run([HELPER, *args], capture_output=True, timeout=120)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def blobs(layout):
    with open(os.path.join(layout, "index.json")) as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"]
    path = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    with open(path(manifest_digest)) as f:
        manifest = json.load(f)
    return path(manifest_digest), path(manifest["layers"][0]["digest"])


def main():
    try:
        src = os.path.join(work, "disk.img")
        with open(src, "wb") as f:
            f.write(b"start" * 1000)
            f.seek(64 << 20)
            f.write(os.urandom(100000))
            f.truncate(128 << 20)  # ends in a hole
        layout = os.path.join(work, "layout")
        r = helper("write", layout, src)
        check(r.returncode == 0, f"a sparse file is written as a layer: {r.stderr!r}")
        manifest, layer = blobs(layout)
        check(os.path.getsize(layer) < 1 << 20, f"the layer is compressed: {os.path.getsize(layer)} bytes")

        out = os.path.join(work, "out.img")
        r = helper("read", layout, out)
        same = r.returncode == 0 and open(out, "rb").read() == open(src, "rb").read()
        check(same, f"the layer comes back the same bytes: {r.returncode} {r.stderr!r}")
        if same:
            blocks = os.stat(out).st_blocks * 512
            check(blocks < 4 << 20, f"and sparse: {blocks} bytes on the disk for a 128 MiB file")

        if shutil.which("skopeo"):
            r = subprocess.run(["skopeo", "copy", "--quiet", f"oci:{layout}:test", f"oci:{work}/copy:test"],
                               capture_output=True, timeout=120)
            check(r.returncode == 0, f"skopeo copies the layout: {r.stderr!r}")

        for what, path in (("layer", layer), ("manifest", manifest)):
            bad = os.path.join(work, "bad-" + what)
            shutil.copytree(layout, bad)
            bad_path = os.path.join(bad, os.path.relpath(path, layout))
            flip(bad_path, os.path.getsize(bad_path) // 2)
            dest = os.path.join(work, "out-" + what)
            r = helper("read", bad, dest)
            check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and b"corrupt" in r.stderr,
                  f"one byte flipped in the {what} is refused in one line with 125: {r.returncode} {r.stderr!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
