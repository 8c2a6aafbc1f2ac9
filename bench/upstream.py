#!/usr/bin/env python3
"""Real upstream test suites, cross-built for s390x, under qemu-user and under
vmexec side by side (issue 12's bar: a test that passes under qemu-user must
pass under vmexec, at qemu-user's speed or better).

    python3 bench/upstream.py [--vmexec build/vmexec] [--work DIR] [-j 2] [PROJECT...]

For each project (default: DEFAULT, the first twelve of PROJECTS) it takes Debian's source package
as a user would (`apt-get source` through a private apt configuration in
WORK/apt: the host's apt setup is not touched), cross-builds it once for s390x
with Debian's cross compiler and the project's own build system, then runs its
test phase twice in the same run: with qemu-user (`qemu-s390x -L
/usr/s390x-linux-gnu`) and with vmexec as the exe_wrapper /
CMAKE_CROSSCOMPILING_EMULATOR / LOG_COMPILER. It prints one line per project:
tests, passed under each, the test phase's wall time under each and the ratio,
then every test whose verdict differs. Logs are kept in WORK/logs.

Test scripts of these suites run the built programs directly (xz's
test_files.sh, json-c's *.test, fribidi's test-runner.py), as they do on a
machine where qemu-user's binfmt_misc handler is installed. So that both sides
get that without touching the host's binfmt_misc, each test phase runs in a
user and mount namespace of its own with a private binfmt_misc instance
(Linux 6.7 and later): qemu-s390x for the qemu-user run, `vmexec binfmt
install s390x` for the vmexec run.

Needs: root or unprivileged user namespaces, gcc-s390x-linux-gnu,
g++-s390x-linux-gnu, qemu-user, dpkg-dev, cmake, meson, ninja, autoconf,
automake, libtool, util-linux's unshare (scripts/install-deps). The first run downloads the sources
(a few MiB) and builds each project once; later runs reuse WORK."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIPLET = "s390x-linux-gnu"
SYSROOT = "/usr/" + TRIPLET
DEBIAN = "http://deb.debian.org/debian"
SUITE = "bookworm"

# Debian source package, build system, the source's subdirectory, extra
# configure options. A mix of build systems whose tests read data files from
# the source tree, run programs from scripts, and check byte order.
PROJECTS = {
    "xz-utils": ("autotools", "", ["--disable-shared", "--disable-nls", "--disable-doc"]),
    "libyaml": ("cmake", "", []),
    "zlib": ("make", "", []),
    "json-c": ("cmake", "", ["-DBUILD_SHARED_LIBS=OFF"]),
    # (its CMake build does not compile with Debian's patches: XML_DTD defined empty)
    "expat": ("autotools", "expat", ["--without-docbook"]),
    "fribidi": ("meson", "", ["-Ddocs=false"]),
    # RunTest and RunGrepTest: shell scripts that run pcre2test and pcre2grep
    # (libtool wrappers) over testdata/ files, stdin and pipes
    "pcre2": ("autotools", "", ["--enable-pcre2-16", "--enable-pcre2-32"]),
    # (gzip, tried in session 14: all 26 pass under both, but its list-big
    # test compresses a 4 GiB sparse file: 4 minutes of CPU under either.)
    # gnulib's own tests of the C library and syscalls, and sed's shell tests
    # (MAKEINFO=true: Debian patches the texinfo manual; no makeinfo here)
    "sed": ("autotools", "", ["MAKEINFO=true"]),
    # diff, cmp, sdiff, diff3 over files, stdin and pipes; gnulib's tests
    "diffutils": ("autotools", "", ["MAKEINFO=true"]),
    # grep's shell tests (options, encodings, binary files, stdin and pipes)
    # and gnulib's; no PCRE (no s390x libpcre2 here)
    "grep": ("autotools", "", ["MAKEINFO=true", "--disable-perl-regexp"]),
    # gnulib's tests (m4's own checks/ are not automake tests, not counted)
    "m4": ("autotools", "", ["MAKEINFO=true"]),
    # find, xargs, locate: the shell tests of tests/ and gnulib's (DejaGnu's
    # find/testsuite needs runtest)
    "findutils": ("autotools", "", ["MAKEINFO=true"]),
    # libuv's runner (one ctest test per library, shared and static) runs
    # each of its ~400 tests in a child it spawns of itself: pipes, signals,
    # threads, tcp and udp on loopback, fs events, ptys; verdicts from its TAP
    "libuv1": ("cmake", "", []),
    # json_process over each case of test/suites (files in the source tree),
    # and the API tests (no docs: no sphinx here)
    "jansson": ("cmake", "", ["-DJANSSON_BUILD_DOCS=OFF"]),
    # ASN.1 parsing and DER coding: test programs over files of tests/ and
    # asn1Parser, asn1Coding, asn1Decoding run from shell tests (no valgrind:
    # a host valgrind cannot run s390x programs)
    "libtasn1-6": ("autotools", "", ["MAKEINFO=true", "--disable-doc", "--disable-valgrind-tests"]),
    # lz4's tests/Makefile: shell recipes that pipe datagen into lz4 and
    # back, files, stdin redirected from files, sparse output, --rm; its
    # fuzzers and frame tests (see MAKE_TESTS)
    "lz4": ("make", "", []),
    # cmocka's own tests: assertions, expected failures (a test that must
    # fail, ctest's WILL_FAIL), signals caught in tests, output formats
    "cmocka": ("cmake", "", ["-DUNIT_TESTING=ON"]),
    # the brotli tool's round trips and compatibility cases run by CMake
    # scripts (cmake -P) over its sources and tests/testdata: they run the
    # tool directly (binfmt_misc) with QEMU_LD_PREFIX set to this prefix
    "brotli": ("cmake", "", ["-DBROTLI_WRAPPER_LD_PREFIX=" + SYSROOT]),
    # the Check unit-test framework's own tests: tests in forked children,
    # timeouts (timer_create, alarms), signals, exit codes, log/XML/TAP output
    "check": ("autotools", "", ["MAKEINFO=true"]),
    # libevent's regress under each backend (epoll, poll, select, changelist):
    # sockets on loopback, its own DNS server, HTTP, signals, threads, timers
    # (no TLS: no s390x OpenSSL or mbedTLS here)
    "libevent": ("cmake", "", ["-DEVENT__DISABLE_OPENSSL=ON", "-DEVENT__DISABLE_MBEDTLS=ON",
                               "-DEVENT__DISABLE_BENCHMARK=ON"]),
    # libarchive_test, bsdtar_test, bsdcpio_test, bsdcat_test: one ctest test
    # each of ~700 cases: files, hard and symbolic links, sparse files,
    # modes, times, xattrs, extraction over existing trees (no compression
    # libraries for s390x here: those formats' cases skip)
    "libarchive": ("cmake", "", ["-DENABLE_WERROR=OFF"]),
    # patch's shell tests (files, backups, symlinks, modes, merge, reject
    # files) and gnulib's
    "patch": ("autotools", "", ["MAKEINFO=true"]),
    # gawk's test/Makefile (not automake's harness, see NAME_ECHO_TESTS):
    # ~550 tests, each a shell recipe that runs gawk on files of the source
    # tree, stdin and pipes, two-way pipes and ptys, /dev/fd/N, system(),
    # extensions (readdir, fts, time); no readline, MPFR or NLS here
    "gawk": ("autotools", "", ["MAKEINFO=true", "--without-readline", "--without-mpfr", "--disable-nls"]),
    # GMP's tests of mpn, mpz, mpq, mpf, rand, misc and the C++ interface:
    # CPU-bound programs (automake's harness through libtool wrappers)
    "gmp": ("autotools", "", ["MAKEINFO=true"]),
    # libsodium's test/default: one program per primitive, CPU-bound, each
    # comparing its output with a .exp file of the source tree
    "libsodium": ("autotools", "", []),
    # strace's tests run strace (through binfmt_misc) on test programs it
    # starts: ptrace, which qemu-user does not offer (its runs fail), in the
    # guest a real kernel's; a subset (CHECK_ARGS). No personalities (no
    # 31-bit s390 libc here), libunwind, libdw or SELinux
    "strace": ("autotools", "", ["MAKEINFO=true", "--enable-mpers=no", "--without-libunwind", "--without-libdw",
                                 "--without-libselinux"]),
    # libjpeg-turbo's ctest tests: cjpeg, djpeg, jpegtran, tjunittest and
    # tjbench over testimages/ of the source tree, each output's MD5 checked
    # by md5cmp (an s390x program too) in tests of their own that DEPEND on
    # it; FLOATTEST as Debian's rules set it for s390x (its FPU contracts)
    "libjpeg-turbo": ("cmake", "", ["-DFLOATTEST=fp-contract"]),
    # nettle's testsuite/ and examples/ (its run-tests script, not automake's
    # harness; see LINE_VERDICTS): ciphers, hashes, MACs over known answers,
    # byte order of every algorithm, public key (mini-gmp: no s390x libgmp
    # here) and the examples' shell tests; s390x assembly (memxor, ...)
    "nettle": ("autotools", "", ["--enable-mini-gmp", "--disable-documentation"]),
    # zstd's tests/Makefile (see MAKE_TESTS): playTests.sh (hundreds of zstd
    # and datagen runs: pipes, stdin and stdout files, --rm, -r over trees,
    # modes, symlinks, sparse output), cli-tests/run.py (Python running zstd),
    # the fuzzers for a fixed time, the legacy formats, the thread pool
    "zstd": ("make", "", []),
}

# What a run without projects named runs (about 25 minutes); session 15's
# ten more (libuv1 to patch) take another 40 or so, by name.
DEFAULT = list(PROJECTS)[:12]

# Environment of a test phase: json-c's test-defs.sh runs every test under
# valgrind when the host has it (a host valgrind cannot run s390x programs).
TEST_ENV = {"json-c": {"USE_VALGRIND": "0"},
            # a cap on the size of a file a test writes (ulimit -f, 512-byte
            # blocks): grep's hash-collision-perf doubles its input until grep
            # takes 200 ms of user time, which a program in the guest never
            # shows its caller: a 43 GB file filled the disk
            "grep": {"UPSTREAM_FSIZE": "2097152"},
            # patch's tests are bash scripts without their execute bit, run
            # by its LOG_COMPILER, $(SHELL)
            "patch": {"UPSTREAM_SHELL": "bash"},
            # libuv's runner refuses root (the namespace's user) without
            # UV_RUN_AS_ROOT; Debian's timeouts and no DNS queries
            "libuv1": {"UV_RUN_AS_ROOT": "1", "UV_TEST_TIMEOUT_MULTIPLIER": "2", "RES_OPTIONS": "attempts:0"},
            # each strace test's time limit (its default 1500 s): under
            # qemu-user, kill_child's program runs on without end
            "strace": {"TIMEOUT_DURATION": "120"}}

# Options of ctest: libuv's two runners (shared and static library) run the
# same tests on the same ports; only the shared one, with time for it all.
CTEST_ARGS = {"libuv1": ["-E", "^uv_test_a$", "--timeout", "3600"]}

# Plain Makefile projects built in a copy of the source tree (no configure:
# CC names the cross compiler), whose tests are make targets run directly
# (through binfmt_misc) in a directory: (directory, targets, make variables).
# Each target is a verdict. lz4: `make test`'s targets but the 4-6 GB
# hugefile ones (minutes of CPU); the fuzzers for a fixed time.
MAKE_TESTS = {"lz4": ("tests", ["test-lz4-basic", "test-lz4-multiple", "test-lz4-multiple-legacy",
                                "test-lz4-frame-concatenation", "test-lz4-testmode", "test-lz4-contentSize",
                                "test-lz4-dict", "test-lz4-opt-parser", "test-lz4-sparse", "test-lz4-skippable",
                                "test-lz4c", "test-frametest", "test-fullbench", "test-fuzzer", "test-amalgamation",
                                "listTest", "test-decompress-partial"],
                      ["FUZZER_TIME=-T20s", "NB_LOOPS=-i1"]),
              # zstd: `make test`'s targets (no --test-large-data: ZSTDRTTEST
              # empty, as `make check`) and the decodecorpus round trips; the
              # fuzzers 20 s each
              "zstd": ("tests", ["test-zstd", "test-cli-tests", "test-fullbench", "test-fuzzer", "test-zstream",
                                 "test-invalidDictionaries", "test-legacy", "test-decodecorpus", "test-pool",
                                 "test-decodecorpus-cli"],
                       ["ZSTDRTTEST=", "FUZZERTEST=-T20s", "ZSTREAM_TESTTIME=-T20s", "DECODECORPUS_TESTTIME=-T20"])}

# What the build step makes in MAKE_TESTS' directory (default: all): zstd's
# test targets remake ../programs/zstd with their own flags (another object
# directory), and legacy and invalidDictionaries are not in its `all`.
MAKE_BUILD = {"zstd": ["all", "zstd", "invalidDictionaries", "legacy"]}

# Projects whose ctest tests are runners of many tests that print TAP lines
# ("ok 3 - name", "not ok 4 - name", "ok 5 - name # SKIP why"): each of those
# is a verdict of its own, "ctest-test/name" (ctest -V shows the output of
# passing tests too, each line prefixed with its test's number).
TAP = {"libuv1"}

# Autotools projects whose Debian patches change a Makefile.am: regenerated
# as Debian's build does (autoreconf; gettext, libtool, autoheader not rerun),
# or make's rebuild rule wants the tarball's newer automake.
AUTORECONF = {"grep", "m4", "findutils", "patch"}
# ... and those whose tarball's ltmain.sh is older than the host's libtool
# macros: libtoolize too (gmp: Debian's patch drops doc/ from configure.ac)
AUTORECONF_ALL = {"gmp"}

# Files of the source tree touched (created empty where missing) with an old
# date before configure, as Debian's rules do: gawk's tarball lacks its
# GFDL manual, which doc/Makefile would otherwise rebuild.
TOUCH_OLD = {"gawk": ["doc/gawktexi.in", "doc/sidebar.awk", "doc/gawk.texi", "doc/gawk.info", "doc/gawkinet.texi",
                      "doc/gawkinet.info", "doc/gawkworkflow.texi", "doc/gawkworkflow.info", "doc/pm-gawk.texi",
                      "doc/pm-gawk.info"]}

# Make variables of an automake test phase. strace: a subset of its ~1250
# tests (each runs strace on a test program, all through binfmt_misc): its
# own tests (MISC_TESTS but the performance and long-running ones) and the
# decoders of common system calls. Not read-write, readv, pread64-pwrite64:
# their programs write tens of MB of expected hexdumps, line by line, which
# strace stops at twice each.
STRACE_TESTS = ("attach-f-p attach-p-cmd bexecve clone_ptrace count-f count delay detach-running detach-sleeping "
                "detach-stopped fflush filter-unavailable filtering_fd-syntax filtering_syscall-syntax "
                "first_exec_failure fork--pidns-translation get_regs gettid--pidns-translation inject-nf "
                "interactive_block kill_child legacy_syscall_info localtime opipe options-syntax pc pidns-cache poke "
                "poke-ptrace poke-range poke-unaligned printpath-umovestr-legacy printstrn-umoven-legacy "
                "qual_fault-syntax qual_fault-syscall qual_inject-error-signal-syscall qual_inject-error-signal "
                "qual_inject-retval-syscall qual_inject-retval qual_inject-signal-syscall qual_inject-signal "
                "qual_inject-syntax qual_signal qual_syscall redirect-fds redirect restart_syscall sigblock sigign "
                "status-detached status-none-threads status-unfinished-threads strace--tips strace--tips-full "
                "strace-C strace-D strace-DD strace-DDD strace-E strace-E-override strace-E-unset strace-S "
                "strace-T_upper strace-V strace-ff strace-log-merge-error strace-log-merge-suffix strace-p-Y-p "
                "strace-r strace-t strace-tt strace-ttt tampering-notes termsig threads-execve umovestr_cached "
                "uname lseek getuid futex mmap brk execve rt_sigaction sigaltstack ioctl poll faccessat").split()
STRACE_GEN_TESTS = ("open openat chdir chmod dup dup2 dup3 pipe2 kill umask getcwd mkdirat unlinkat renameat rename "
                    "link symlink readlink fstat stat nanosleep clock_nanosleep getpid getppid sched_yield wait4 "
                    "waitid rt_sigprocmask getrandom prctl-no-args fcntl getdents64 select ppoll times getrusage "
                    "sysinfo utimensat fchmodat truncate ftruncate").split()
CHECK_ARGS = {"strace": ["TESTS=" + " ".join([t + ".test" for t in STRACE_TESTS] +
                                             [t + ".gen.test" for t in STRACE_GEN_TESTS])]}

# Autotools projects whose `make check` runs its own script, not automake's
# harness: it prints "PASS: name", "FAIL: name" or "SKIP: name" for each test
# and runs the programs with $(EMULATOR) (nettle's run-tests); verdicts are
# named by the directory make entered. The build step makes $(TS_ALL), the
# tests, in the directories named here (not `make check`: that runs them).
LINE_VERDICTS = {"nettle": ["testsuite", "examples"]}

# Where the build step makes the test programs, if not the top: m4's checks/
# runs its own suite at `make check` (198.sysval fails under qemu-user).
CHECK_BUILD_DIR = {"m4": "tests"}

# Suites that are not automake's test harness: their Makefile in DIR echoes
# each test's name and leaves _NAME (or _NAME.*) behind when it fails (gawk's
# test/Makefile; "N TESTS FAILED" counts them). `make` builds what they run
# (`make check TESTS=` would run them all), and they run one at a time, as
# Debian's build does (tests share scratch files).
NAME_ECHO_TESTS = {"gawk": "test"}

# The exe_wrapper, emulator and LOG_COMPILER of every build: an s390x program
# runs under the emulator UPSTREAM_EMU names, anything else (a test script) as
# it is. Built once, the suites are then run under either emulator.
EMU_SCRIPT = """#!/bin/sh
# bench/upstream.py: run an s390x program under $UPSTREAM_EMU, anything else as it is.
if [ "$(head -c 4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \\n')" = 7f454c46 ]; then
  case $UPSTREAM_EMU in
    qemu) exec qemu-s390x -L %(sysroot)s "$@" ;;
    vmexec) exec "$UPSTREAM_VMEXEC" "$@" ;;
  esac
fi
# a test script a Debian patch added without its execute bit (diffutils' diff3),
# or a suite's scripts that its own LOG_COMPILER runs with a shell (patch's)
[ -x "$1" ] || [ ! -f "$1" ] || exec ${UPSTREAM_SHELL:-sh} "$@"
exec "$@"
"""

# qemu-binfmt-conf.sh's s390x entry; F: the interpreter is opened now, so it
# works in the namespace whatever its mounts; P: the program keeps its argv[0]
# (qemu-user reads AT_FLAGS), as natively and under vmexec's handler (sed's
# tests compare messages that start with it).
QEMU_BINFMT = (r":qemu-s390x:M::\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16"
               r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff"
               r":/usr/bin/qemu-s390x:PF")

# Run in a new user + mount namespace: a private binfmt_misc with the handler
# of the emulator, then the test command.
BINFMT_SH = """set -e
[ -z "$UPSTREAM_FSIZE" ] || ulimit -f "$UPSTREAM_FSIZE"
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ "$UPSTREAM_EMU" = qemu ]; then
  printf '%s\\n' "$UPSTREAM_QEMU_BINFMT" > /proc/sys/fs/binfmt_misc/register
else
  "$UPSTREAM_VMEXEC" binfmt install s390x >/dev/null
fi
exec "$@"
"""


def run(cmd, log=None, **kw):
    """Run a build step; its output goes to LOG; fail with the log's tail."""
    with open(log or os.devnull, "ab") as out:
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        tail = open(log, errors="replace").read()[-3000:] if log else ""
        raise RuntimeError("upstream.py: %s failed (%d); see %s\n%s" % (" ".join(cmd), r.returncode, log, tail))


def apt_env(work):
    """A private apt configuration: Debian's deb-src lines in WORK/apt only."""
    root = os.path.join(work, "apt")
    conf = os.path.join(root, "apt.conf")
    if not os.path.exists(conf):
        for d in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "state/lists/partial",
                  "cache/archives/partial"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        with open(os.path.join(root, "etc/sources.list"), "w") as f:
            f.write("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n"
                    % (DEBIAN, SUITE))
        with open(conf, "w") as f:
            f.write('Dir::Etc "%(r)s/etc"; Dir::Etc::sourcelist "%(r)s/etc/sources.list";\n'
                    'Dir::Etc::sourceparts "%(r)s/etc/sources.list.d"; Dir::Etc::parts "%(r)s/etc/apt.conf.d";\n'
                    'Dir::Etc::preferencesparts "%(r)s/etc/preferences.d";\n'
                    'Dir::State "%(r)s/state"; Dir::State::status "/var/lib/dpkg/status";\n'
                    'Dir::Cache "%(r)s/cache";\n' % {"r": root})
    env = dict(os.environ, APT_CONFIG=conf)
    if not os.listdir(os.path.join(root, "state/lists")) or len(os.listdir(os.path.join(root, "state/lists"))) < 3:
        run(["apt-get", "update"], os.path.join(work, "logs", "apt-update.log"), env=env)
    return env


def fetch(work, name):
    """Debian's source package NAME unpacked (patches applied) in WORK/src/NAME."""
    dest = os.path.join(work, "src", name)
    if os.path.isdir(dest):
        return dest
    dl = os.path.join(work, "dl", name)
    os.makedirs(dl, exist_ok=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    log = os.path.join(work, "logs", name + "-fetch.log")
    run(["apt-get", "source", "--download-only", name], log, cwd=dl, env=apt_env(work))
    dsc = [f for f in os.listdir(dl) if f.endswith(".dsc")][0]
    run(["dpkg-source", "-x", dsc, dest + ".tmp"], log, cwd=dl)
    os.rename(dest + ".tmp", dest)
    return dest


def write_tools(work):
    """The wrapper, the CMake toolchain and the Meson cross file of every build."""
    emu = os.path.join(work, "emu")
    with open(emu, "w") as f:
        f.write(EMU_SCRIPT % {"sysroot": SYSROOT})
    os.chmod(emu, 0o755)
    # a program that only exits, to start the guest before the first test phase
    true = os.path.join(work, "true-s390x")
    subprocess.run([TRIPLET + "-gcc", "-static", "-x", "c", "-o", true, "-"], input=b"int main(void){return 0;}",
                   check=True)
    with open(os.path.join(work, "s390x.cmake"), "w") as f:
        f.write("set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR s390x)\n"
                "set(CMAKE_C_COMPILER %(t)s-gcc)\nset(CMAKE_CXX_COMPILER %(t)s-g++)\n"
                "set(CMAKE_FIND_ROOT_PATH %(s)s)\nset(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n"
                "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\nset(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n"
                "set(CMAKE_CROSSCOMPILING_EMULATOR %(e)s)\n" % {"t": TRIPLET, "s": SYSROOT, "e": emu})
    with open(os.path.join(work, "s390x.ini"), "w") as f:
        f.write("[binaries]\nc = '%(t)s-gcc'\ncpp = '%(t)s-g++'\nar = '%(t)s-ar'\nstrip = '%(t)s-strip'\n"
                "exe_wrapper = '%(e)s'\n[properties]\nneeds_exe_wrapper = true\n"
                "[host_machine]\nsystem = 'linux'\ncpu_family = 's390x'\ncpu = 's390x'\nendian = 'big'\n"
                % {"t": TRIPLET, "e": emu})
    return emu


def build(work, name, jobs):
    """Cross-build NAME once into WORK/build/NAME."""
    kind, sub, opts = PROJECTS[name]
    src = os.path.join(fetch(work, name), sub)
    bld = os.path.join(work, "build", name)
    stamp = os.path.join(bld, ".upstream-built")
    if os.path.exists(stamp):
        return bld
    shutil.rmtree(bld, ignore_errors=True)
    os.makedirs(bld)
    log = os.path.join(work, "logs", name + "-build.log")
    # configure-time runs (Meson's sanity check, try_run) go through qemu-user
    os.environ["UPSTREAM_EMU"] = "qemu"
    if kind == "autotools":
        if not os.path.exists(os.path.join(src, "configure")) or name in AUTORECONF_ALL:
            run(["autoreconf", "-fi"], log, cwd=src)
        elif name in AUTORECONF:
            run(["autoreconf", "-fi"], log, cwd=src,
                env=dict(os.environ, AUTOPOINT="true", AUTOHEADER="true", LIBTOOLIZE="true"))
        for f in TOUCH_OLD.get(name, []):
            open(os.path.join(src, f), "a").close()
            os.utime(os.path.join(src, f), (946684800, 946684800))
        # a build tree apart from the source tree: tests find their data through $srcdir
        run([os.path.join(src, "configure"), "--host=" + TRIPLET, *opts], log, cwd=bld)
        run(["make", "-j%d" % jobs], log, cwd=bld)
        # (findutils' top Makefile writes tests/test-suite.log, a directory
        # only its tests' logs make)
        os.makedirs(os.path.join(bld, "tests"), exist_ok=True)
        # the test programs, not run; in qemu-user's binfmt_misc namespace, as a
        # check-local target may run what was built (gzip's)
        for d in LINE_VERDICTS.get(name, []):
            run(["make", "-C", os.path.join(bld, d), "-j%d" % jobs, "-f", "Makefile", "-f", "/dev/stdin",
                 "upstream-ts-all"], log, input=b"upstream-ts-all: $(TS_ALL)\n")
        if name not in NAME_ECHO_TESTS and name not in LINE_VERDICTS:
            run(["unshare", "--user", "--map-root-user", "--mount", "--fork", "sh", "-c", BINFMT_SH, "sh",
                 "make", "-j%d" % jobs, "check", "TESTS="], log,
                cwd=os.path.join(bld, CHECK_BUILD_DIR.get(name, "")),
                env=dict(os.environ, UPSTREAM_QEMU_BINFMT=QEMU_BINFMT, QEMU_LD_PREFIX=SYSROOT))
    elif kind == "make" and name in MAKE_TESTS:
        os.rmdir(bld)
        shutil.copytree(src, bld, symlinks=True)
        run(["make", "-j%d" % jobs, "CC=%s-gcc" % TRIPLET], log, cwd=bld)
        run(["make", "-j%d" % jobs, "CC=%s-gcc" % TRIPLET, *MAKE_BUILD.get(name, ["all"])], log,
            cwd=os.path.join(bld, MAKE_TESTS[name][0]))
    elif kind == "make":
        # zlib's own configure (not autoconf): the cross compiler from CHOST
        run([os.path.join(src, "configure"), *opts], log, cwd=bld, env=dict(os.environ, CHOST=TRIPLET))
        run(["make", "-j%d" % jobs, "all", "all64"], log, cwd=bld)
    elif kind == "cmake":
        run(["cmake", "-G", "Ninja", "-S", src, "-B", bld, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
             "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(work, "s390x.cmake"), "-DBUILD_TESTING=ON", *opts], log)
        run(["ninja", "-C", bld, "-j%d" % jobs], log)
    else:
        run(["meson", "setup", bld, src, "--cross-file", os.path.join(work, "s390x.ini"), *opts], log)
        run(["ninja", "-C", bld, "-j%d" % jobs], log)
    open(stamp, "w").close()
    return bld


MAKE_TESTS_SH = """for t in $UPSTREAM_TARGETS; do
  if make -C "$UPSTREAM_DIR" "$@" "$t"; then echo "upstream.py: $t PASS"; else echo "upstream.py: $t FAIL"; fi
done
"""


def test_command(kind, bld, jobs, junit, emu, name=None):
    if name in NAME_ECHO_TESTS:
        return ["make", "-C", bld, "-k", "check"]
    if name in LINE_VERDICTS:
        return ["make", "-C", bld, "-j%d" % jobs, "-k", "check", "EMULATOR=" + emu, *CHECK_ARGS.get(name, [])]
    if kind == "autotools":
        # -k: a failed test in one directory does not skip the others (sed's gnulib-tests)
        return ["make", "-C", bld, "-j%d" % jobs, "-k", "check", "LOG_COMPILER=" + emu, *CHECK_ARGS.get(name, [])]
    if name in MAKE_TESTS:  # one target at a time: each is a verdict (UPSTREAM_TARGETS)
        return ["sh", "-c", MAKE_TESTS_SH, "sh", "CC=%s-gcc" % TRIPLET, *MAKE_TESTS[name][2]]
    if kind == "make":  # zlib's Makefile runs its programs through $(QEMU_RUN)
        return ["make", "-C", bld, "-j%d" % jobs, "-k", "test", "test64", "QEMU_RUN=" + emu]
    if kind == "cmake":
        return ["ctest", "--test-dir", bld, "-j%d" % jobs, "-V" if name in TAP else "--output-on-failure",
                "--output-junit", junit, *CTEST_ARGS.get(name, [])]
    return ["meson", "test", "-C", bld, "--num-processes", str(jobs), "--no-rebuild", "--print-errorlogs"]


def tap_verdicts(log):
    """{ctest-test/name: PASS|FAIL|SKIP} from the TAP lines of a ctest -V log."""
    out, names = {}, {}
    for line in open(log, errors="replace"):
        m = re.match(r"\s*Start\s+(\d+): (\S+)", line)
        if m:
            names[m.group(1)] = m.group(2)
            continue
        m = re.match(r"(\d+): (not )?ok \d+ - (\S+)(.*)", line)
        if m:
            t = "%s/%s" % (names.get(m.group(1), m.group(1)), m.group(3))
            out[t] = ("FAIL" if m.group(2) else "SKIP" if re.search(r"#\s*SKIP", m.group(4), re.I) else "PASS")
    return out


def verdicts(kind, bld, junit, log, name=None):
    """{test: PASS|FAIL|SKIP} of the run that just ended."""
    out = {}
    if name in TAP:
        out.update(tap_verdicts(log))
    if name in NAME_ECHO_TESTS:
        d = os.path.join(bld, NAME_ECHO_TESTS[name])
        targets = set(re.findall(r"^([A-Za-z0-9][\w-]*):", open(os.path.join(d, "Makefile"), errors="replace").read(),
                                 re.M))
        left = os.listdir(d)
        for t in re.findall(r"^([A-Za-z0-9][\w-]*)$", open(log, errors="replace").read(), re.M):
            if t in targets:
                out[t] = "FAIL" if any(f == "_" + t or f.startswith("_" + t + ".") for f in left) else "PASS"
    elif name in LINE_VERDICTS:
        d = ""
        for line in open(log, errors="replace"):
            m = re.match(r"make\[\d+\]: Entering directory '(.*)'", line)
            if m:
                d = os.path.relpath(m.group(1), bld)
            m = re.match(r"(PASS|FAIL|SKIP): (\S+)$", line)
            if m:
                out[os.path.join(d, m.group(2))] = m.group(1)
    elif name in MAKE_TESTS:
        for m in re.finditer(r"^upstream\.py: (\S+) (PASS|FAIL)$", open(log, errors="replace").read(), re.M):
            out[m.group(1)] = m.group(2)
    elif kind == "make":  # zlib's lines: "*** zlib shared test OK ***"
        for m in re.finditer(r"\*\*\* zlib (.*?) ?test (OK|FAILED) \*\*\*", open(log, errors="replace").read()):
            out[m.group(1) or "static"] = "PASS" if m.group(2) == "OK" else "FAIL"
    elif kind == "autotools":
        for d, _, files in os.walk(bld):
            for f in files:
                if f.endswith(".trs"):
                    text = open(os.path.join(d, f), errors="replace").read()
                    res = [l.split(":", 2)[2].strip() for l in text.splitlines() if l.startswith(":test-result:")]
                    name = os.path.relpath(os.path.join(d, f[:-4]), bld)
                    out[name] = ("FAIL" if any(r in ("FAIL", "ERROR", "XPASS") for r in res) else
                                 "SKIP" if res and all(r == "SKIP" for r in res) else "PASS")
    elif kind == "cmake":
        for tc in ET.parse(junit).getroot().iter("testcase"):
            st = tc.get("status")
            out[tc.get("name")] = "PASS" if st == "run" else "SKIP" if st in ("disabled", "notrun") else "FAIL"
    else:
        with open(os.path.join(bld, "meson-logs", "testlog.json")) as f:
            for line in f:
                t = json.loads(line)
                out[t["name"]] = {"OK": "PASS", "EXPECTEDFAIL": "PASS", "SKIP": "SKIP"}.get(t["result"], "FAIL")
    return out


def clean_results(kind, bld, name=None):
    """Forget the previous run's verdicts (automake reruns only tests without a .trs)."""
    if name in NAME_ECHO_TESTS:
        d = os.path.join(bld, NAME_ECHO_TESTS[name])
        for f in os.listdir(d):
            if f.startswith("_"):
                p = os.path.join(d, f)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        return
    if kind != "autotools":
        return
    for d, _, files in os.walk(bld):
        for f in files:
            if f.endswith(".trs") or f == "test-suite.log":
                os.unlink(os.path.join(d, f))
                log = os.path.join(d, f[:-4] + ".log")
                if f.endswith(".trs") and os.path.exists(log):
                    os.unlink(log)


def guest_runs(vmexec):
    """How many calls the s390x guest has run (`vmexec status`)."""
    out = subprocess.run([vmexec, "status"], capture_output=True, text=True).stdout
    m = re.search(r"^s390x\s.*?\bruns (\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def test_phase(work, name, bld, emu_name, vmexec, jobs):
    """Run NAME's tests under EMU_NAME; return (verdicts, seconds, calls of
    the guest)."""
    kind = PROJECTS[name][0]
    clean_results(kind, bld, name)
    junit = os.path.join(work, "logs", "%s-%s.junit.xml" % (name, emu_name))
    log = os.path.join(work, "logs", "%s-%s.log" % (name, emu_name))
    env = dict(os.environ, UPSTREAM_EMU=emu_name, UPSTREAM_VMEXEC=vmexec, UPSTREAM_QEMU_BINFMT=QEMU_BINFMT,
               **TEST_ENV.get(name, {}))
    if name in MAKE_TESTS:
        env.update(UPSTREAM_DIR=os.path.join(bld, MAKE_TESTS[name][0]), UPSTREAM_TARGETS=" ".join(MAKE_TESTS[name][1]))
    if emu_name == "qemu":
        env["QEMU_LD_PREFIX"] = SYSROOT
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "--fork", "sh", "-c", BINFMT_SH, "sh",
           *test_command(kind, bld, jobs, junit, os.path.join(work, "emu"), name)]
    runs0 = guest_runs(vmexec)
    t0 = time.monotonic()
    with open(log, "wb") as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    calls = guest_runs(vmexec) - runs0
    if kind == "meson" and os.path.exists(os.path.join(bld, "meson-logs", "testlog.txt")):
        shutil.copy(os.path.join(bld, "meson-logs", "testlog.txt"), log + ".testlog.txt")
    elif kind == "autotools":
        logs = log + ".d"
        shutil.rmtree(logs, ignore_errors=True)
        for d, _, files in os.walk(bld):
            for f in files:
                if f.endswith(".log") and os.path.exists(os.path.join(d, f[:-4] + ".trs")):
                    rel = os.path.relpath(os.path.join(d, f), bld)
                    os.makedirs(os.path.dirname(os.path.join(logs, rel)), exist_ok=True)
                    shutil.copy(os.path.join(d, f), os.path.join(logs, rel))
    try:
        return verdicts(kind, bld, junit, log, name), secs, calls
    except (OSError, ET.ParseError, ValueError) as e:
        print("upstream.py: %s under %s left no verdicts (%s); see %s" % (name, emu_name, e, log), file=sys.stderr)
        return {}, secs, calls


HEAD = "%-10s %-9s %5s %9s %7s %11s %9s %6s %6s" % ("project", "build", "tests", "qemu-user", "vmexec",
                                                  "qemu-user s", "vmexec s", "ratio", "calls")
ROW = "%-10s %-9s %5d %9d %7d %11.1f %9.1f"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("projects", nargs="*", help="Debian source packages (default: %s; also: %s)" %
                    (" ".join(DEFAULT), " ".join(p for p in PROJECTS if p not in DEFAULT)))
    ap.add_argument("--vmexec", default=os.path.join(REPO, "build", "vmexec"))
    ap.add_argument("--work", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                   "vmexec-upstream"))
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel tests (and build jobs); default 2")
    args = ap.parse_args()
    for p in args.projects:
        if p not in PROJECTS:
            sys.exit("upstream.py: no recipe for %s; known: %s" % (p, " ".join(PROJECTS)))
    work = os.path.abspath(args.work)
    vmexec = os.path.abspath(args.vmexec)
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    write_tools(work)
    # a warm guest: the boot is not part of any suite's test phase
    subprocess.run([vmexec, os.path.join(work, "true-s390x")], capture_output=True)
    rows, diffs, failed_builds = [], [], []
    for name in args.projects or DEFAULT:
        try:
            bld = build(work, name, args.jobs)
        except RuntimeError as e:  # the other projects still run
            print(e, file=sys.stderr)
            failed_builds.append(name)
            continue
        q, tq, _ = test_phase(work, name, bld, "qemu", vmexec, args.jobs)
        v, tv, calls = test_phase(work, name, bld, "vmexec", vmexec, args.jobs)
        npass = lambda r: sum(1 for x in r.values() if x == "PASS")
        rows.append((name, PROJECTS[name][0], len(set(q) | set(v)), npass(q), npass(v), tq, tv, calls))
        for t in sorted(set(q) | set(v)):
            if q.get(t) != v.get(t):
                diffs.append((name, t, q.get(t, "-"), v.get(t, "-")))
        print(ROW % rows[-1][:7] + " %5.2fx %6d" % (tv / tq, calls), file=sys.stderr, flush=True)
    print("\n" + HEAD)
    for r in rows:
        print(ROW % r[:7] + " %5.2fx %6d" % (r[6] / r[5], r[7]))
    if rows:
        tot = [sum(r[i] for r in rows) for i in range(2, 8)]
        print(ROW % ("total", "", *tot[:5]) + " %5.2fx %6d" % (tot[4] / tot[3], tot[5]))
    if failed_builds:
        print("\nnot built (logs in %s): %s" % (os.path.join(work, "logs"), " ".join(failed_builds)))
    if diffs:
        print("\nverdicts that differ (logs in %s):" % os.path.join(work, "logs"))
        for name, t, a, b in diffs:
            print("  %-10s %-40s qemu-user %-4s vmexec %s" % (name, t, a, b))
    return 1 if failed_builds or any(a == "PASS" and b != "PASS" for _, _, a, b in diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
