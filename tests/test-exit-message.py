#!/usr/bin/env python3
"""Unit test (no guest): the guest's text that vmexec prints itself -- the
message of a failed run (WIRE_EXIT) -- reaches the caller's terminal without
control characters, so a guest cannot send escape sequences to it (retitle
the window, move the cursor, answer back). A fake supervisor on a private
runtime directory sends the frames.

Environment: VMEXEC."""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

from testlib import check, finish

VMEXEC = os.environ["VMEXEC"]
WIRE_RUN, WIRE_EXIT, WIRE_FAILED = 2, 11, 2


def frame(ftype, run, payload=b""):
    return struct.pack(">IHHI", len(payload), ftype, 0, run) + payload


def fake_supervisor(srv, payload):
    try:
        conn, _ = srv.accept()
    except OSError:
        return
    conn.settimeout(30)
    got = b""
    while True:  # the frames up to the whole WIRE_RUN
        chunk = conn.recv(65536)
        if not chunk:
            return
        got += chunk
        while len(got) >= 12:
            length, ftype = struct.unpack(">IH", got[:6])
            if len(got) < 12 + length:
                break
            got = got[12 + length:]
            if ftype == WIRE_RUN:
                conn.sendall(frame(WIRE_EXIT, 1, payload))
                try:
                    while conn.recv(65536):  # until the call hangs up
                        pass
                except OSError:
                    pass
                conn.close()
                return


def main():
    with tempfile.TemporaryDirectory(prefix="vmexec-exit-msg.") as rt:
        guest_dir = os.path.join(rt, "vmexec", "s390x")
        os.makedirs(guest_dir, mode=0o700)
        os.chmod(os.path.join(rt, "vmexec"), 0o700)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(os.path.join(guest_dir, "control.sock"))
        srv.listen(1)
        srv.settimeout(60)
        msg = "bad\x1b]0;pwned\x07 \x1b[2J\r\nnext \u0085line \u00e9t\u00e9".encode()
        payload = struct.pack(">III", WIRE_FAILED, 125, len(msg)) + msg
        t = threading.Thread(target=fake_supervisor, args=(srv, payload), daemon=True)
        t.start()
        env = dict(os.environ, XDG_RUNTIME_DIR=rt)
        r = subprocess.run([VMEXEC, "--target", "s390x", "--", "true"], cwd=rt, env=env,
                           capture_output=True, timeout=60)
        t.join(30)
        srv.close()
    err = r.stderr
    check(r.returncode == 125, f"the guest's failure is status 125: {r.returncode}")
    check(not any(b < 0x20 and b != 0x0a for b in err) and b"\x7f" not in err,
          f"no control character reaches the terminal: {err!r}")
    check(b"\xc2\x85" not in err, f"no C1 control either: {err!r}")
    check(err.count(b"\n") == 1, f"the message is one line: {err!r}")
    check(b"pwned" in err and "\u00e9t\u00e9".encode() in err, f"the text itself is kept: {err!r}")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
