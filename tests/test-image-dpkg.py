#!/usr/bin/env python3
"""Unit test of the unpacking behind `vmexec image build --full`
(rootfs/image-dpkg.c), without network or guest: .deb files made here with
the owners, modes, conffiles, hard links and symlinks of real packages are
unpacked by the driver (argv[1], tests/test-image-dpkg.c) into a new root,
as the calling user, and the result is checked: the merged /usr, the
conffiles left as PATH.dpkg-new, the dpkg database (read back with the
host's dpkg-query), the info files, the owners list and the preinst order.
A corrupt package is one line and status 125."""

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from testlib import check, finish

DRIVER = sys.argv[1]


def ar_member(name, data):
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def tar_gz(entries):
    """ENTRIES: (name, kind, extra) with kind file/dir/symlink/hardlink; extra
    has data, target, mode, uid, gid, uname, gname."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.uid, info.gid = extra.get("uid", 0), extra.get("gid", 0)
            info.uname, info.gname = extra.get("uname", "root"), extra.get("gname", "root")
            data = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, extra.get("mode", 0o755)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, extra["target"], 0o777
            elif kind == "hardlink":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, extra["target"], extra.get("mode", 0o644)
            else:
                data = extra.get("data", b"")
                info.size, info.mode = len(data), extra.get("mode", 0o644)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buf.getvalue())


def deb(path, control, files, data):
    """CONTROL: {name: (text, mode)}; DATA: tar_gz entries."""
    ctrl = [("./", "dir", {})] + [(f"./{n}", "file", {"data": t.encode(), "mode": m}) for n, (t, m) in control.items()]
    with open(path, "wb") as f:
        f.write(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n") + ar_member("control.tar.gz", tar_gz(ctrl)) +
                ar_member("data.tar.gz", tar_gz(data)))
    files.append(path)


def d(name, **kw):
    return (name, "dir", kw)


def f(name, data=b"x\n", **kw):
    return (name, "file", dict(kw, data=data))


top = tempfile.mkdtemp(prefix="vmexec-test-image-dpkg-")
try:
    debs = []
    sh = ("#!/bin/sh\nexit 0\n", 0o755)
    # A library as Multi-Arch: same packages come: files under /lib and /lib64
    # (merged into /usr), a conffile, a setuid program and its hard link, a
    # setgid directory of group staff, a file of another user, a symlink to a
    # directory, and control files of every kind (and one dpkg ignores).
    deb(os.path.join(top, "libfoo1.deb"), {
        "control": ("Package: libfoo1\nVersion: 1:1.0-1\nArchitecture: s390x\nMulti-Arch: same\nMaintainer: T <t@t>\n"
                    "Description: test library\n more text\n .\n last line\n", 0o644),
        "conffiles": ("/etc/foo.conf\nremove-on-upgrade /etc/gone.conf\n", 0o644),
        "preinst": sh, "postinst": sh, "md5sums": ("0 usr/bin/tool\n", 0o644),
        "triggers": ("interest-noawait /usr/share/foo\n", 0o644), "notes.txt": ("ignored\n", 0o644),
    }, debs, [
        d("./"), d("./etc/"), f("./etc/foo.conf", b"conf\n"), d("./lib/"), d("./lib/s390x-linux-gnu/"),
        f("./lib/s390x-linux-gnu/libfoo.so.1", b"lib\n"), d("./lib64/"),
        ("./lib64/ld64.so.1", "symlink", {"target": "/lib/s390x-linux-gnu/libfoo.so.1"}),
        d("./usr/"), d("./usr/bin/"), f("./usr/bin/tool", b"tool\n", mode=0o4755),
        ("./usr/bin/tool-link", "hardlink", {"target": "./usr/bin/tool", "mode": 0o4755}),
        d("./usr/lib/"), d("./usr/lib/s390x-linux-gnu/"), ("./usr/lib/foo-link", "symlink", {"target": "s390x-linux-gnu"}),
        d("./usr/share/"), d("./usr/share/foo/"),
        f("./usr/share/foo/data", uid=1, gid=1, uname="daemon", gname="daemon"),
        d("./var/"), d("./var/local/", mode=0o2775, gid=50, gname="staff"),
    ])
    # base-passwd: its preinst runs first, though apt unpacks it later.
    deb(os.path.join(top, "base-passwd.deb"), {
        "control": ("Package: base-passwd\nVersion: 3.6.1\nArchitecture: s390x\nEssential: yes\nMaintainer: T <t@t>\n"
                    "Description: passwd\n", 0o644),
        "preinst": sh,
    }, debs, [d("./"), d("./usr/"), d("./usr/share/"), d("./usr/share/base-passwd/"),
              f("./usr/share/base-passwd/passwd.master", b"root:*:0:0:root:/root:/bin/sh\n")])
    # A package with a directory where the root has symlinks: /bin (merged
    # /usr) and /usr/lib/foo-link (libfoo1's): dpkg follows them.
    deb(os.path.join(top, "bar.deb"), {
        "control": ("Package: bar\nVersion: 2\nArchitecture: all\nMaintainer: T <t@t>\nDescription: bar\n", 0o644),
    }, debs, [d("./"), d("./bin/"), f("./bin/bartool", mode=0o755), d("./usr/"), d("./usr/lib/"),
              d("./usr/lib/foo-link/"), f("./usr/lib/foo-link/bar.txt")])

    root = os.path.join(top, "root")
    os.mkdir(root)
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(top, "cache"))
    r = subprocess.run([DRIVER, root, *debs], capture_output=True, text=True, env=env)
    check(r.returncode == 0 and r.stdout.startswith("packages 3 "), f"unpacked 3 packages: {r.returncode} "
          f"{r.stdout!r} {r.stderr!r}")

    def p(rel):
        return os.path.join(root, rel)

    def read(rel):
        with open(p(rel)) as fh:
            return fh.read()

    # The merged /usr, and paths resolved through the root's symlinks.
    links = {n: os.readlink(p(n)) if os.path.islink(p(n)) else None for n in ["bin", "sbin", "lib", "lib64"]}
    check(links == {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"},
          f"bin, sbin, lib and lib64 are symlinks into usr/: {links}")
    check(os.path.isfile(p("usr/lib/s390x-linux-gnu/libfoo.so.1")) and os.path.isdir(p("usr/lib64")) and
          os.readlink(p("usr/lib64/ld64.so.1")) == "/lib/s390x-linux-gnu/libfoo.so.1",
          "/lib and /lib64 files are in usr/lib and usr/lib64")
    check(os.path.isfile(p("usr/bin/bartool")), "/bin/bartool of a later package is in usr/bin")
    check(os.path.islink(p("usr/lib/foo-link")) and os.path.isfile(p("usr/lib/s390x-linux-gnu/bar.txt")),
          "a directory where the root has a symlink: the symlink stays, the files go through it")
    st1, st2 = os.stat(p("usr/bin/tool")), os.stat(p("usr/bin/tool-link"))
    check(st1.st_ino == st2.st_ino, "the hard link is one")

    # Conffiles where dpkg's unpack leaves them.
    check(not os.path.exists(p("etc/foo.conf")) and read("etc/foo.conf.dpkg-new") == "conf\n",
          "the conffile is etc/foo.conf.dpkg-new")

    # The database, read with the host's own dpkg.
    admin = p("var/lib/dpkg")
    q = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Package} ${Version} ${Status}\\n"],
                       capture_output=True, text=True)
    got = sorted(q.stdout.splitlines())
    check(q.returncode == 0 and got == ["bar 2 install ok unpacked", "base-passwd 3.6.1 install ok unpacked",
                                        "libfoo1 1:1.0-1 install ok unpacked"],
          f"dpkg-query reads every package as unpacked: {got} {q.stderr!r}")
    q = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Conffiles}\\n${Description}\\n",
                        "libfoo1"], capture_output=True, text=True)
    check(" /etc/foo.conf newconffile\n /etc/gone.conf newconffile remove-on-upgrade\n" in q.stdout and
          "last line" in q.stdout, f"conffiles with dpkg's newconffile mark; the description whole: {q.stdout!r}")
    q = subprocess.run(["dpkg-query", f"--admindir={admin}", "-L", "libfoo1"], capture_output=True, text=True)
    listed = q.stdout.splitlines()
    check(q.returncode == 0 and listed[:1] == ["/."] and "/lib64/ld64.so.1" in listed and "/etc/foo.conf" in listed
          and "/usr/bin/tool-link" in listed and not any(x.endswith("/") and x != "/" for x in listed),
          f"the file list as dpkg writes it: {listed[:6]}...")
    info = sorted(os.listdir(p("var/lib/dpkg/info")))
    want = ["bar.list", "base-passwd.list", "base-passwd.preinst", "format", "libfoo1:s390x.conffiles",
            "libfoo1:s390x.list", "libfoo1:s390x.md5sums", "libfoo1:s390x.postinst", "libfoo1:s390x.preinst",
            "libfoo1:s390x.triggers"]
    check(info == want, f"info files: PACKAGE:ARCH for Multi-Arch: same, no control, none with a dot: {info}")
    check(os.stat(p("var/lib/dpkg/info/libfoo1:s390x.preinst")).st_mode & 0o777 == 0o755, "scripts are executable")
    check(read("var/lib/dpkg/info/format") == "1\n" and all(
        read(f"var/lib/dpkg/{n}") == "" for n in ["available", "diversions", "statoverride"]) and all(
        os.path.isdir(p(f"var/lib/dpkg/{n}")) for n in ["updates", "triggers", "alternatives", "parts"]),
          "format 1, empty available/diversions/statoverride, the state directories")
    check(os.listdir(p("var/lib/dpkg/triggers")) == [],
          "triggers/ without Unincorp: dpkg derives the interests from the info files")

    # What the first boot gets.
    owners = read("var/lib/vmexec/owners").splitlines()
    want = ["4755 root root 0 0 /usr/bin/tool", "4755 root root 0 0 /usr/bin/tool-link",
            "0644 daemon daemon 1 1 /usr/share/foo/data", "2775 root staff 0 50 /var/local"]
    check(sorted(owners) == sorted(want), f"the owners list: {owners}")
    order = read("var/lib/vmexec/order").splitlines()
    check(order == ["base-passwd base-passwd s390x", "libfoo1:s390x libfoo1 s390x", "bar bar all"],
          f"the preinst order: base-passwd first, then as unpacked: {order}")
    fb = p("var/lib/vmexec/firstboot")
    check(read("var/lib/vmexec/firstboot").startswith("#!/bin/sh\n") and os.stat(fb).st_mode & 0o777 == 0o755,
          "the first-boot script")
    check(subprocess.run(["sh", "-n", fb]).returncode == 0, "the first-boot script is valid sh")

    # A package that is not one: one line, 125.
    bad = os.path.join(top, "bad.deb")
    with open(bad, "wb") as fh:
        fh.write(b"!<arch>\nnot a package\n")
    root2 = os.path.join(top, "root2")
    os.mkdir(root2)
    r = subprocess.run([DRIVER, root2, bad], capture_output=True, text=True, env=env)
    check(r.returncode == 125 and r.stderr.count("\n") == 1 and "bad.deb" in r.stderr,
          f"a corrupt package: 125 and one line naming it: {r.returncode} {r.stderr!r}")
finally:
    shutil.rmtree(top, ignore_errors=True)

sys.exit(finish())
