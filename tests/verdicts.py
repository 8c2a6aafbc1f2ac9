"""The example projects' tests (tests/examples) and the verdict each harness
must give them, on a big-endian target under vmexec or natively in the full
image alike; and reading those verdicts from each harness's output."""

import json
import os
import re

from testlib import check

MESON_WANT = {"byteorder": "OK", "datafile": "OK", "writer": "OK", "reader": "OK", "skip": "SKIP",
              "segv": "EXPECTEDFAIL", "hang": "TIMEOUT", "threads": "OK", "argsenv": "OK"}
# CTest's WILL_FAIL inverts exit statuses, not crashes: segv is a SegFault
# failure with it, on the real machine as here.
CTEST_WANT = {"byteorder": "Passed", "datafile": "Passed", "writer": "Passed", "reader": "Passed",
              "reader-missing": "Passed", "skip": "Skipped", "segv": "Exception: SegFault", "hang": "Timeout",
              "threads": "Passed", "argsenv": "Passed"}
AUTOMAKE_WANT = {"byteorder": "PASS", "datafile": "PASS", "writer": "PASS", "reader": "PASS", "skip": "SKIP",
                 "segv": "XFAIL", "hang": "XFAIL", "threads": "PASS", "argsenv": "PASS"}
CTEST_LINE = re.compile(r"Test\s+#\d+: (\S+) \.+\s*(?:\*\*\*)?(.+?)\s+[\d.]+ sec")


def expect_verdicts(harness, got, want):
    """One check per test of WANT, one for tests it lacks; whether all passed."""
    for name, verdict in want.items():
        check(got.get(name) == verdict, f"{harness}: {name} is {verdict} (got {got.get(name)})")
    extra = set(got) - set(want)
    check(not extra, f"{harness}: no unexpected tests ({sorted(extra)})")
    return got == want


def meson_verdicts(builddir):
    """From meson test's testlog.json; {} when there is none."""
    got = {}
    path = os.path.join(builddir, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        return got
    with open(path) as f:
        for line in f:
            if line.strip():
                t = json.loads(line)
                got[t["name"]] = t["result"]
    return got


def ctest_verdicts(out):
    """From ctest's output."""
    return {m.group(1): m.group(2).strip() for m in CTEST_LINE.finditer(out)}


def automake_verdicts(builddir):
    """From the .trs files of automake's test driver (hang.sh.trs: hang)."""
    got = {}
    for name in os.listdir(builddir):
        if name.endswith(".trs"):
            with open(os.path.join(builddir, name)) as f:
                m = re.search(r"^:test-result: (\S+)", f.read(), re.M)
            got[name[:-4].removesuffix(".sh")] = m.group(1) if m else None
    return got
