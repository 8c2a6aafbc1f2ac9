/* The child of a run, between its start and exec: its own process group
 * (a session with --shell's terminal) and cgroup, its stdin, stdout and
 * stderr, the share's mount namespace (share.c), its cwd, the caller's
 * credentials, then the program. A failure before the exec is written on
 * the exec pipe, which the agent reads (run_exec_result) to refuse the run
 * with the right status.
 *
 * The child may run in the agent's memory, like a vfork() child (runs.c
 * spawn_child), while the agent waits for its exec: what it writes, the
 * agent sees. So it changes nothing of the agent's but its trace page
 * (run_trace_child, shared either way) and errno; its fds, namespace, cwd
 * and credentials are its own, and what the agent must learn it sends
 * (share_send_ns). Code added here must keep to that. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "runs.h"
#include "wire.h"

/* What the child writes on the exec pipe when the start failed (one write,
 * under PIPE_BUF: atomic). */
struct child_msg {
  int stage, err;
  char text[512]; /* STAGE_SHARE: what failed */
};

/* In the child: report why the start failed on the exec pipe, and exit. */
static noreturn void child_fail(int fd, int stage, int err, const char *text)
{
  struct child_msg msg = { .stage = stage, .err = err };
  snprintf(msg.text, sizeof msg.text, "%s", text ? text : "");
  ssize_t ignored = write(fd, &msg, sizeof msg);
  (void)ignored;
  _exit(127);
}

/* The caller's stream FD is /dev/full (WIRE_RUN_STDOUT_FULL,
 * WIRE_RUN_STDERR_FULL): so is the program's, and its writes fail with
 * ENOSPC as they would on the host. */
static void use_dev_full(int fd)
{
  int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full >= 0 && full != fd) {
    dup2(full, fd);
    close(full);
  }
}

enum { STAGE_CGROUP = 1, STAGE_SHARE, STAGE_CWD, STAGE_CREDS, STAGE_EXEC, STAGE_PTY, STAGE_NOT_FOUND };

/* FDS: the child's ends of the stdin, stdout and stderr pipes; with a
 * pseudo-terminal, SLAVE is its path instead. */
noreturn void run_child(struct run *r, const struct wire_run *q, const int fds[3], const char *slave, int exec_w)
{
  run_trace_child(r, CHILD_T_FORKED);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, NULL);
  setpriority(PRIO_PROCESS, 0, 0); /* the agent runs at -20 */
  /* A process group for the run, for the signals the caller gets: its
   * holder's (run-group.c), or its own. A session only with a terminal
   * (--shell): a session leader without one that opens a terminal (gawk's
   * pty coprocesses open the slave before the fork, without O_NOCTTY) takes
   * it as its controlling terminal, which a program run from a shell or
   * make, never a session leader, does not: its child's TIOCSCTTY then
   * fails and the child cannot open /dev/tty. */
  if (slave[0])
    setsid();
  else if (!r->holder || setpgid(0, r->holder) == -1)
    setpgid(0, 0);
  if (r->cgroup && run_cgroup_write(r, "cgroup.procs", "0") == -1)
    child_fail(exec_w, STAGE_CGROUP, errno, NULL);
  run_trace_child(r, CHILD_T_CGROUP);
  if (slave[0]) {
    if (pty_attach(slave, q->uid, q->gid) == -1)
      child_fail(exec_w, STAGE_PTY, errno, NULL);
  } else {
    dup2(fds[0], 0);
    dup2(fds[1], 1);
    dup2(fds[2], 2);
    if (q->flags & WIRE_RUN_STDOUT_FULL)
      use_dev_full(1);
    if (q->flags & WIRE_RUN_STDERR_FULL)
      use_dev_full(2);
  }
  if (r->share && r->share->ns_fd >= 0) {
    /* The spare namespace of an earlier run (share-spare.c); the cwd and root go to its / */
    if (setns(r->share->ns_fd, CLONE_NEWNS) == -1)
      child_fail(exec_w, STAGE_SHARE, errno, "cannot join the run's mount namespace");
  } else if (r->share || root_present()) {
    char why[512];
    if (share_enter(r->share, why, sizeof why) == -1)
      child_fail(exec_w, STAGE_SHARE, errno, why);
    if (r->ns_sock_child >= 0)
      share_send_ns(r->ns_sock_child, r->share->gen);
  }
  run_child_stdin_by_path(r, q);
  run_child_fds(r, q, &exec_w);
  run_trace_child(r, CHILD_T_ENTERED);
  if (chdir(q->cwd) == -1) {
    /* Without a share, --copy runs in a fresh directory of the same name in
     * guest memory; with one, the cwd is always inside a root. */
    if (!(q->flags & WIRE_RUN_COPY) || r->share)
      child_fail(exec_w, STAGE_CWD, errno, NULL);
    mkdir_p(q->cwd, 0755); /* chdir says what failed */
    if (chdir(q->cwd) == -1)
      child_fail(exec_w, STAGE_CWD, errno, NULL);
  }
  if (setgroups(q->ngroups, q->groups) == -1 || setgid(q->gid) == -1 || setuid(q->uid) == -1)
    child_fail(exec_w, STAGE_CREDS, errno, NULL);
  umask(q->umask & 0777);
  char copied[sizeof r->dir + 256];
  const char *file = q->file;
  if (q->flags & WIRE_RUN_COPY) {
    /* The name was checked to be a plain file name when the file came. */
    snprintf(copied, sizeof copied, "%s/%.255s", r->dir, q->file);
    file = copied;
  }
  if (q->flags & WIRE_RUN_SEARCH_PATH) {
    bool found;
    run_trace_child(r, CHILD_T_EXEC);
    exec_command(file, q->argv, q->envp, &found);
    child_fail(exec_w, found ? STAGE_EXEC : STAGE_NOT_FOUND, errno, file);
  }
  run_trace_child(r, CHILD_T_EXEC);
  execve(file, q->argv, q->envp);
  child_fail(exec_w, STAGE_EXEC, errno, NULL);
}

/* The exec pipe: end of file means exec succeeded; data means it did not. */
void run_exec_result(struct run *r)
{
  struct child_msg msg;
  ssize_t n = read(r->exec_fd, &msg, sizeof msg);
  if (n < 0 && errno == EINTR)
    return;
  close_fd(&r->exec_fd);
  r->t_execd = run_now_ns(); /* end of file: the exec went through (the pipe is close-on-exec) */
  run_stdin_take_child_file(r);
  if (n != (ssize_t)sizeof msg) {
    run_maybe_finish(r);
    return;
  }
  msg.text[sizeof msg.text - 1] = '\0';
  /* The child exits 127 right after; drop its status and report this instead. */
  if (r->pid > 0) {
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
  if (msg.stage == STAGE_NOT_FOUND) {
    run_refuse(r, 127, "%s: not found in the %s guest", msg.text, guest_target_name());
    return;
  }
  const char *what = msg.stage == STAGE_CGROUP ? "cannot join the run's cgroup"
                     : msg.stage == STAGE_SHARE ? msg.text
                     : msg.stage == STAGE_CWD  ? "cannot enter the working directory in the guest"
                     : msg.stage == STAGE_CREDS ? "cannot take the caller's uid and gid in the guest"
                     : msg.stage == STAGE_PTY   ? "cannot open the run's terminal in the guest"
                                             : "cannot execute the program in the guest";
  uint32_t status = msg.stage == STAGE_EXEC ? (msg.err == ENOENT ? 127 : 126) : 125;
  const char *hint = msg.stage == STAGE_EXEC && msg.err == ENOENT
                       ? " (is its dynamic loader or a library missing from the image? "
                         "add packages with 'vmexec image build --with')"
                       : "";
  run_refuse(r, status, "%s: %s%s", what, strerror(msg.err), hint);
}
