#!/usr/bin/env python3
"""Guest test of commands in the guest and the interactive shell (issue 6):
`vmexec --target s390x -- COMMAND` runs a command found on the guest's PATH
with the caller's cwd shared and written back, and `vmexec --target s390x
--shell` is a shell on a real pseudo-terminal in the guest, driven here
through a pseudo-terminal on the host: a command, Ctrl-C to a `sleep`, a
window size change, and `exit 7`.

Environment: VMEXEC. CI=true: no skips."""

import os
import signal
import subprocess
import sys
import termios
import time

from testlib import HostTerminal, check, guest_main, private_top

VMEXEC = os.environ["VMEXEC"]

# A prompt that the typed command lines (echoed by the guest's terminal) never contain.
top, runtime, ENV = private_top("vmexec-shell-test-", VMEXEC_IDLE_TIMEOUT="600", PS1="guest-prompt> ")
WORK = os.path.join(top, "work")
os.mkdir(WORK)


def vm(*args, env=None, cwd=WORK):
    return subprocess.run([VMEXEC, *args], env=env or ENV, cwd=cwd, capture_output=True, timeout=900)


def one_line(err):
    return err.count(b"\n") == 1


def test_commands():
    r = vm("--target", "s390x", "--", "sh", "-c", "echo $((6*7)); uname -m; exit 3")
    check(r.returncode == 3 and r.stdout == b"42\ns390x\n",
          f"sh -c in the guest: output and exit status: {r.returncode} {r.stdout!r} {r.stderr[-300:]!r}")

    r = vm("--target", "s390x", "--", "sh", "-c", "echo hi > f.txt")
    path = os.path.join(WORK, "f.txt")
    got = open(path).read() if os.path.exists(path) else None
    check(r.returncode == 0 and got == "hi\n", f"a file written in the cwd appears on the host: {r.returncode} {got!r}")

    os.mkdir(os.path.join(WORK, "sub"))
    r = vm("--target", "s390x", "sh", "-c", "cd sub && ls && echo x > out.txt")
    path = os.path.join(WORK, "sub", "out.txt")
    got = open(path).read() if os.path.exists(path) else None
    check(r.returncode == 0 and got == "x\n", f"cd sub && ... > out.txt (no --): {r.returncode} {got!r} {r.stderr!r}")

    r = vm("--target", "s390x", "--", "no-such-command", "arg")
    check(r.returncode == 127 and one_line(r.stderr) and b"no-such-command: not found in the s390x guest" in r.stderr,
          f"a missing command: 127 and one line: {r.returncode} {r.stderr!r}")

    env = {k: v for k, v in ENV.items() if k != "PATH"}
    r = vm("--target", "s390x", "--", "sh", "-c", "echo no-path", env=env)
    check(r.returncode == 0 and r.stdout == b"no-path\n",
          f"without PATH the guest's default PATH finds sh: {r.returncode} {r.stdout!r} {r.stderr!r}")

    script = os.path.join(WORK, "script.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"script on $(uname -m): $*\"\nexit 5\n")
    os.chmod(script, 0o755)
    r = vm(script, "a")
    check(r.returncode == 126 and one_line(r.stderr) and b"--target" in r.stderr,
          f"a script without --target: 126, one line naming --target: {r.returncode} {r.stderr!r}")
    r = vm("--target", "s390x", "--", "./script.sh", "a", "b")
    check(r.returncode == 5 and r.stdout == b"script on s390x: a b\n",
          f"a host script with --target runs in the guest: {r.returncode} {r.stdout!r} {r.stderr!r}")

    # `#!/usr/bin/env sh`: the guest's commands are in /usr/bin too, as on a Debian system.
    with open(script, "w") as f:
        f.write("#!/usr/bin/env sh\necho \"env script: $*\"\n")
    r = vm("--target", "s390x", "--", "./script.sh", "c")
    check(r.returncode == 0 and r.stdout == b"env script: c\n",
          f"a script starting with #!/usr/bin/env sh runs in the guest: {r.returncode} {r.stdout!r} {r.stderr!r}")

    # /bin/sh is dash, as on Debian, and bash, the GNU tools, the compressors
    # and ed are the real programs, whichever of /bin and /usr/bin comes
    # first on the PATH; busybox's applets fill the rest (busybox-static's sh
    # and env would run their gzip applet whatever the PATH).
    wanted = (("gzip", "gzip 1."), ("xz", "xz (XZ Utils)"), ("bzip2", "bzip2, "), ("lzop", "lzop "),
              ("ed", "GNU ed "), ("bash", "GNU bash"), ("ls", "ls (GNU coreutils)"),
              ("cksum", "cksum (GNU coreutils)"), ("diff", "diff (GNU diffutils)"),
              ("find", "find (GNU findutils)"), ("xargs", "xargs (GNU findutils)"), ("grep", "grep (GNU grep)"),
              ("sed", "sed (GNU sed)"))
    probe = ("for c in %s; do command -v $c; $c --version </dev/null 2>&1 | head -n 1; done; "
             "readlink /bin/sh" % " ".join(c for c, _ in wanted))
    for path in ("/usr/bin:/bin", "/bin:/usr/bin"):
        r = vm("--target", "s390x", "--", "env", "PATH=" + path, "sh", "-c", probe)
        lines = r.stdout.decode(errors="replace").splitlines()
        versions = lines[1:2 * len(wanted):2]
        check(r.returncode == 0 and len(lines) == 2 * len(wanted) + 1
              and all(v.startswith(w) for v, (_, w) in zip(versions, wanted))
              and lines[-1] == "dash",
              f"PATH={path}: dash as sh, the real bash, GNU tools, compressors and ed: {r.returncode} {lines} "
              f"{r.stderr!r}")

    r = vm("--target", "s390x", "--", VMEXEC, "--version")
    check(r.returncode == 126 and one_line(r.stderr) and b"x86_64" in r.stderr,
          f"a host ELF of another target with --target: 126, one line: {r.returncode} {r.stderr!r}")


PROMPT = b"guest-prompt> "


def Terminal(args):
    return HostTerminal([VMEXEC, *args], WORK, ENV, PROMPT)


def test_shell():
    t = Terminal(["--target", "s390x", "--shell"])
    try:
        check(t.expect(PROMPT, 600) is not None, f"the shell's prompt appears: {t.buf[-300:]!r}")
        check(not termios.tcgetattr(t.slave)[3] & (termios.ICANON | termios.ECHO | termios.ISIG),
              "the caller's terminal is raw while the shell runs")
        out = t.run("echo $((40+2))")
        check(out == "42\n", f"a command runs in the guest shell: {out!r}")
        out = t.run("tty; uname -m")
        check(out is not None and out.startswith("/dev/pts/") and out.endswith("\ns390x\n"),
              f"the shell runs on a pseudo-terminal of the s390x guest: {out!r}")

        t.ctrl_c_stops_sleep("ps | grep -c '[s]leep 100'")

        t.set_size(33, 111)
        os.kill(t.proc.pid, signal.SIGWINCH)
        out = None
        for _ in range(20):  # the size travels to the guest on its own
            out = t.run("stty size")
            if out == "33 111\n":
                break
            time.sleep(0.5)
        check(out == "33 111\n", f"the window size reaches the guest (stty size): {out!r}")

        t.send(b"exit 7\r")
        status = t.wait_exit(120)
        check(status == 7, f"exit 7 in the shell: vmexec exits 7: {status}")
        check(termios.tcgetattr(t.slave) == t.saved, "the caller's terminal is restored (not raw) after the shell")
    finally:
        t.close()

    # SIGINT from elsewhere is not forwarded: it ends the call, terminal restored.
    t = Terminal(["--target", "s390x", "-it", "--", "sh", "-i"])
    try:
        check(t.expect(PROMPT, 600) is not None, f"-it -- sh -i: the prompt appears: {t.buf[-300:]!r}")
        os.kill(t.proc.pid, signal.SIGINT)
        status = t.wait_exit(60)
        check(status == -signal.SIGINT, f"SIGINT sent to vmexec --shell ends it by SIGINT: {status}")
        check(termios.tcgetattr(t.slave) == t.saved, "the caller's terminal is restored after death by SIGINT")
    finally:
        t.close()

    # -it with a command, stdin not a terminal: the guest still has a pty.
    r = subprocess.run([VMEXEC, "--target", "s390x", "-it", "--", "sh", "-c", "tty; exit 4"], cwd=WORK, env=ENV,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
    check(r.returncode == 4 and r.stdout.startswith(b"/dev/pts/"),
          f"-it -- COMMAND without a host terminal: a guest pty: {r.returncode} {r.stdout!r} {r.stderr!r}")
    r = subprocess.run([VMEXEC, "--target", "s390x", "--shell"], cwd=WORK, env=ENV,
                       input=b"echo piped-$((1+1))\nexit 6\n", capture_output=True, timeout=900)
    check(r.returncode == 6 and b"piped-2" in r.stdout,
          f"a script drives --shell through a pipe: {r.returncode} {r.stdout[-300:]!r}")
    r = subprocess.run([VMEXEC, "--target", "s390x", "--shell"], cwd=WORK, env=ENV,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    check(r.returncode == 0, f"--shell ends when its stdin ends: {r.returncode} {r.stdout[-300:]!r}")


def main():
    return guest_main([test_commands, test_shell], VMEXEC, ENV, top)


if __name__ == "__main__":
    sys.exit(main())
