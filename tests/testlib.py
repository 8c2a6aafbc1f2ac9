"""What the Python guest tests share: one line per check, the list of
failures, and the rule that under CI (CI=true) a test that cannot run is a
failure, never a skip (exit 77)."""

import sys
import os
import tempfile

CI = os.environ.get("CI") == "true"
failures = []
timings = []


def private_top(prefix, **env):
    """A world-readable temporary directory for a guest test and, in it, a
    private runtime directory, so that the test has supervisors of its own:
    (top, runtime, the environment for vmexec with ENV added)."""
    top = tempfile.mkdtemp(prefix=prefix)
    os.chmod(top, 0o755)
    runtime = os.path.join(top, "runtime")
    os.mkdir(runtime, 0o700)
    return top, runtime, dict(os.environ, XDG_RUNTIME_DIR=runtime, **env)


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


def timed(label, secs):
    """Note how long LABEL took, for finish_timed()'s summary."""
    timings.append((label, secs))
    print(f"     {label}: {secs:.1f} s", flush=True)


def finish_timed():
    """finish() after a summary of the timings and of the failed checks (for
    the long tests, whose output is too long to scroll back through)."""
    print("timings:")
    for label, secs in timings:
        print(f"  {label}: {secs:.1f} s")
    for f in failures:
        print("FAILED: " + f)
    return finish()


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
    """A copy of vmexec (and vmexec-tools beside it), the target's agent, the
    share plugin, the kernel's config fragments and patch, the current image and FILES in a new directory everybody
    can read, so that another user can run vmexec even when the build tree
    sits in a private home. Returns (directory, environment additions). The
    caller removes it."""
    import shutil
    import tempfile
    build = os.environ["BUILDDIR"]
    top = tempfile.mkdtemp(prefix="vmexec-test-copy-")
    os.chmod(top, 0o755)
    tools = os.path.join(os.path.dirname(vmexec), "vmexec-tools")
    for path in (vmexec, *([tools] if os.path.exists(tools) else []), *files):
        shutil.copy2(path, top)
    agents = os.path.join(top, "agents")
    os.mkdir(agents)
    shutil.copy2(os.path.join(build, "agent", f"vmexec-agent-{target}"), agents)
    plugin = os.path.join(build, "nbd-share", "nbdkit-vmexec-share-plugin.so")
    shutil.copy2(plugin, top)
    # A kernel built from source: its config fragments and patch are part of
    # the image's key, read from the build tree's sources only by a vmexec
    # that runs from the build tree.
    configs = os.path.join(top, "kernel-configs")
    shutil.copytree(os.path.join(os.environ["SRCDIR"], "image", "kernel-configs"), configs)
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
           "VMEXEC_KERNEL_CONFIG_DIR": configs, "XDG_CACHE_HOME": os.path.join(top, "cache")}
    return top, env


class HostTerminal:
    """A command (vmexec) on a host pseudo-terminal: its stdin, stdout and
    stderr, as a user at a terminal would run it. expect() and run() read
    what it prints, escape sequences removed; PROMPT ends a command's output."""

    ANSI = __import__("re").compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][0-9A-B]|\x1b[=>]")

    def __init__(self, argv, cwd, env, prompt):
        import subprocess
        import termios
        self.master, self.slave = os.openpty()
        self.set_size(24, 80)
        self.saved = termios.tcgetattr(self.slave)
        self.prompt = prompt
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=cwd, env=env,
                                     start_new_session=True)
        self.buf = b""

    def set_size(self, rows, cols):
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.master, data)

    def expect(self, what, timeout):
        """Read until WHAT (bytes, or a compiled regex of bytes) appears after
        what earlier expects consumed; the text before it, or None."""
        import re
        import select
        import time
        pattern = what if isinstance(what, re.Pattern) else re.compile(re.escape(what))
        deadline = time.monotonic() + timeout
        while True:
            clean = self.ANSI.sub(b"", self.buf)
            m = pattern.search(clean)
            if m:
                self.buf = clean[m.end():]
                return clean[:m.start()]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                return None
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def run(self, line, timeout=120):
        """Type LINE and return its output (up to the next prompt)."""
        self.send(line.encode() + b"\r")
        out = self.expect(self.prompt, timeout)
        if out is None:
            return None
        # The guest's terminal echoes the line, then the output (\r\n line ends).
        return out.replace(b"\r", b"").split(b"\n", 1)[-1].decode(errors="replace")

    def ctrl_c_stops_sleep(self, count_sleeps):
        """Run sleep 100 in the foreground, type Ctrl-C and check that the
        prompt comes back and that COUNT_SLEEPS (a shell command printing the
        number of sleep processes) prints 0."""
        import time
        self.send(b"sleep 100\r")
        self.expect(b"sleep 100", 60)
        check(self.expect(self.prompt, 3) is None, "sleep 100 runs in the foreground (no prompt for 3 s)")
        started = time.monotonic()
        self.send(b"\x03")
        back = self.expect(self.prompt, 30)
        check(back is not None, f"Ctrl-C stops sleep: the prompt is back in {time.monotonic() - started:.1f} s")
        out = self.run(count_sleeps)
        check(out == "0\n", f"sleep is gone after Ctrl-C: {out!r}")

    def wait_exit(self, timeout):
        """The command's exit status once it ends, or None after TIMEOUT seconds."""
        import subprocess
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)
