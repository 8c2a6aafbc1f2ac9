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
