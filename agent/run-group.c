/* The process group a run's program is in. Run natively from a shell
 * script, make or ctest, a program is a member of a group it does not
 * lead, so its setsid() succeeds (daemons, the `setsid` command, tests of
 * both); run from an interactive shell, or from meson test (a new session
 * for each test), it leads its group and setsid() fails with EPERM. The
 * caller says which is the case (WIRE_RUN_LEAD_GROUP: vmexec leads its own
 * group). A program that does not lead its group joins one led by a holder:
 * a child of the agent that blocks every signal and sleeps until the run
 * ends and kills it. Holders are forked ahead, while the agent is idle, as
 * the spare cgroup is made ahead (runs.c): a fork was not to be on a warm
 * call's path.
 *
 * The group's id stays the holder's pid as long as the group has a member,
 * even when the holder itself is gone (`kill -9 -1` from a program kills
 * it): the kernel does not hand out a pid still in use as a group id. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "runs.h"

static pid_t spare_holder; /* 0: none */

void run_group_spare(void)
{
  if (spare_holder > 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    /* Nothing of the agent's: a pipe end held here would keep a run's
     * stdin from ending. All signals blocked: only SIGKILL ends it, and
     * kill(0, sig) by the program (its whole group) passes it by. */
    close_range(0, ~0U, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    setpgid(0, 0);
    for (;;)
      pause();
  }
  if (pid < 0) {
    agent_log("cannot fork a process group holder: %s; programs lead their groups", strerror(errno));
    return;
  }
  setpgid(pid, pid); /* a group before the child runs (either may do it first) */
  spare_holder = pid;
}

pid_t run_group_take(void)
{
  run_group_spare();
  pid_t pid = spare_holder;
  spare_holder = 0;
  return pid > 0 ? pid : 0;
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
  /* EACCES: it has exec'd, and its own call decided; EPERM: it leads a
   * session (--shell). Never the agent's own group. */
  pid_t g = getpgid(pid);
  return g > 0 && g != getpgrp() ? g : pid;
}

bool run_group_reaped(pid_t pid)
{
  if (pid == spare_holder) {
    spare_holder = 0;
    return true;
  }
  return false;
}
