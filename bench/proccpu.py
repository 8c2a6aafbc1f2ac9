"""CPU time of the processes behind a guest, for the benches: on a loaded
machine the wall time of a call stretches with the load, the CPU time its
guest's qemu (and nbdkit) spent hardly."""

import os
import subprocess
import sys


def qemu_pid(vm, target, env):
    """The pid of the running TARGET guest's qemu, from `vmexec status`."""
    for line in subprocess.run([vm, "status"], env=env, capture_output=True, text=True).stdout.splitlines():
        words = line.split()
        if words and words[0] == target and "pid" in words:
            return int(words[words.index("pid") + 1])
    sys.exit(f"bench: no running {target} guest in 'vmexec status'")


def _ticks(stat_path):
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_seconds(*pids):
    """User + system time so far of processes PIDS (all their threads)."""
    return sum(_ticks(f"/proc/{pid}/stat") for pid in pids) / os.sysconf("SC_CLK_TCK")


def thread_ticks(pid):
    """CPU ticks so far of each thread of process PID."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ticks[tid] = _ticks(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:
            pass
    return ticks
