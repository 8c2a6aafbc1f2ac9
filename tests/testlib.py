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


def world_readable_copy(vmexec, target="s390x", files=()):
    """A copy of vmexec, the target's agent, the share plugin, the current
    image and FILES in a new directory everybody can read, so that another
    user can run vmexec even when the build tree sits in a private home.
    Returns (directory, environment additions). The caller removes it."""
    import shutil
    import tempfile
    build = os.environ["BUILDDIR"]
    top = tempfile.mkdtemp(prefix="vmexec-test-copy-")
    os.chmod(top, 0o755)
    for path in (vmexec, *files):
        shutil.copy2(path, top)
    agents = os.path.join(top, "agents")
    os.mkdir(agents)
    shutil.copy2(os.path.join(build, "agent", f"vmexec-agent-{target}"), agents)
    plugin = os.path.join(build, "nbd-share", "nbdkit-vmexec-share-plugin.so")
    shutil.copy2(plugin, top)
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vmexec", "images")
    key = os.readlink(os.path.join(cache, target))
    images = os.path.join(top, "cache", "vmexec", "images")
    shutil.copytree(os.path.join(cache, key), os.path.join(images, key))
    os.symlink(key, os.path.join(images, target))
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    env = {"VMEXEC_AGENT_DIR": agents, "VMEXEC_SHARE_PLUGIN": os.path.join(top, os.path.basename(plugin)),
           "XDG_CACHE_HOME": os.path.join(top, "cache")}
    return top, env
