/* The pid and the process group of a run's program, as the caller's.
 *
 * The pid: vmexec's own (WIRE_RUN_PID), as under qemu-user, where the
 * program is the caller's process, so that a pid it prints or writes into a
 * pid file names the vmexec call on the host (whose signals reach it). The
 * kernel gives the pid after ns_last_pid to the next fork if it is free, as
 * CRIU restores pids; the guest's pid_max is raised to the kernel's limit
 * for the host's pids to fit (on 32-bit targets it stays 32768, and larger
 * pids are not given). Another process forking in between, or the pid in
 * use, leaves the program another pid: nothing else depends on it. Right
 * after the fork the guest's own count is put back (run_pid_done): the
 * agent's next fork, a holder that lives on, would otherwise take the pid
 * after the program's, which is likely the pid of the host's next call.
 *
 * The process group. Run natively from a shell
 * script, make or ctest, a program is a member of a group it does not
 * lead, so its setsid() succeeds (daemons, the `setsid` command, tests of
 * both); run from an interactive shell, or from meson test (a new session
 * for each test), it leads its group and setsid() fails with EPERM. The
 * caller says which is the case (WIRE_RUN_LEAD_GROUP: vmexec leads its own
 * group). A program that does not lead its group joins one led by a holder:
 * a child of the agent that blocks every signal and sleeps. Holders are
 * forked ahead, while the agent is idle, as the spare cgroup is made ahead
 * (runs.c), and serve run after run: a fork is not on a warm call's path.
 *
 * The group's id stays the holder's pid as long as the group has a member,
 * even when the holder itself is gone (`kill -9 -1` from a program kills
 * it): the kernel does not hand out a pid still in use as a group id. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runs.h"

static int last_pid_fd = -1;
static char own_last[16]; /* the guest's own ns_last_pid while a program's is set, or "" */
static ssize_t own_last_len;

void run_pid_init(void)
{
  int fd = open("/proc/sys/kernel/pid_max", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    /* PID_MAX_LIMIT of 64-bit kernels; 32-bit ones refuse it (EINVAL). */
    if (write(fd, "4194304", 7) != 7 && errno != EINVAL)
      agent_log("cannot raise pid_max: %s", strerror(errno));
    close(fd);
  }
  last_pid_fd = open("/proc/sys/kernel/ns_last_pid", O_RDWR | O_CLOEXEC);
  if (last_pid_fd < 0)
    agent_log("no ns_last_pid (%s): programs get the guest's pids, not the caller's", strerror(errno));
}

void run_pid_next(pid_t pid)
{
  if (last_pid_fd < 0 || pid <= 1)
    return;
  own_last_len = pread(last_pid_fd, own_last, sizeof own_last, 0);
  if (own_last_len <= 0)
    return;
  char buf[16];
  int n = snprintf(buf, sizeof buf, "%d", (int)pid - 1);
  /* At offset 0: sysctl ignores a number written further on. EINVAL when
   * the pid is above pid_max: the next pid is then the guest's own. */
  if (pwrite(last_pid_fd, buf, (size_t)n, 0) == -1) {
    if (errno != EINVAL)
      agent_log("cannot write ns_last_pid: %s", strerror(errno));
    own_last_len = 0;
  }
}

void run_pid_done(void)
{
  if (own_last_len > 0 && pwrite(last_pid_fd, own_last, (size_t)own_last_len, 0) == -1)
    agent_log("cannot write ns_last_pid: %s", strerror(errno));
  own_last_len = 0;
}

/* Holders not in use. A run's holder comes back here when the run ends
 * (its processes are killed by its cgroup, which the holder is not in), so
 * that a warm call forks none: a fork of the agent took 2-5 ms of the
 * teardown under TCG. A few, for runs at once (meson test -j). */
#define SPARE_HOLDERS 4
static pid_t spares[SPARE_HOLDERS];
static unsigned nspares;

static pid_t fork_holder(void)
{
  pid_t pid = fork();
  if (pid == 0) {
    /* Nothing of the agent's: a pipe end held here would keep a run's
     * stdin from ending. All signals blocked: only SIGKILL ends it, and
     * kill(0, sig) by the program (its whole group) passes it by. */
    close_range(0, ~0U, 0);
    prctl(PR_SET_NAME, "vmexec-holder"); /* its comm, for ps and the tests */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    setpgid(0, 0);
    for (;;)
      pause();
  }
  if (pid < 0) {
    agent_log("cannot fork a process group holder: %s; programs lead their groups", strerror(errno));
    return 0;
  }
  setpgid(pid, pid); /* a group before the child runs (either may do it first) */
  return pid;
}

void run_group_spare(void)
{
  if (nspares == 0 && (spares[0] = fork_holder()) > 0)
    nspares = 1;
}

pid_t run_group_take(void)
{
  run_group_spare();
  return nspares > 0 ? spares[--nspares] : 0;
}

void run_group_give_back(pid_t holder)
{
  if (nspares < SPARE_HOLDERS)
    spares[nspares++] = holder;
  else
    kill(holder, SIGKILL);
}

pid_t run_group_settle(pid_t pid, pid_t holder)
{
  /* The child joins the group itself (run-child.c); this is the parent's
   * half of the usual pair of setpgid calls, so that a signal sent right
   * after the fork finds it in its group. */
  if (holder > 0 && setpgid(pid, holder) == 0)
    return holder;
  if (setpgid(pid, pid) == 0)
    return pid;
  /* EACCES: it has exec'd, and its own call decided. (A --shell run, which
   * makes a session, is not settled here: see start() in runs.c.) Never
   * the agent's own group. */
  pid_t g = getpgid(pid);
  return g > 0 && g != getpgrp() ? g : pid;
}

bool run_group_reaped(pid_t pid)
{
  for (unsigned i = 0; i < nspares; i++)
    if (spares[i] == pid) {
      spares[i] = spares[--nspares];
      return true;
    }
  return false;
}
