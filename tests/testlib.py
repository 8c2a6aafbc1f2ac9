"""What the Python guest tests share: one line per check, the list of
failures, and the rule that under CI (CI=true) a test that cannot run is a
failure, never a skip (exit 77)."""

import sys
import os

CI = os.environ.get("CI") == "true"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def skip_or_fail(why):
    print(why, flush=True)
    sys.exit(1 if CI else 77)


def finish():
    """The exit status of the test: 1 if any check failed."""
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


def guest_main(tests, vmexec, env, workdir, setup=None, needs=("qemu-system-s390x", "nbdkit")):
    """Run TESTS (functions) against the guests of ENV's runtime directory;
    afterwards stop those guests and remove WORKDIR, whatever happened.
    Returns the test's exit status."""
    import shutil
    import subprocess
    for tool in needs:
        if not shutil.which(tool):
            skip_or_fail(f"{tool} is missing (scripts/install-deps installs it)")
    try:
        if setup:
            setup()
        for test in tests:
            test()
    finally:
        subprocess.run([vmexec, "stop", "--all"], env=env, capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return finish()
