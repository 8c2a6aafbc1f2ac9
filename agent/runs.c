/* Runs: the programs the host asked the agent to start, many at once.
 *
 * Each run gets pipes for stdin, stdout and stderr, its own process group
 * (so a signal from the host reaches it; a session only with --shell's
 * terminal) and its own cgroup (so that everything it spawned, even what
 * left the group, is killed when the run ends or is cancelled: nothing
 * leaks into the next run). This file holds the
 * run table and dispatches the host's frames and the poll events to the runs;
 * run-child.c sets up the child before its exec, run-io.c moves its stdin,
 * stdout and stderr within the host's credit, run-out-file.c a stdout or
 * stderr that is a file on the host.
 *
 * A run with a share (WIRE_SHARE before WIRE_RUN) sees the host's trees at
 * their paths in its own mount namespace (share.c).
 *
 * A WIRE_RUN_PTY run (vmexec --shell) has a pseudo-terminal instead of the
 * pipes (pty.c): the master is both in_fd (a dup, for writing) and out_fd;
 * there is no err_fd. Its output ends (EIO) when the last process holding
 * the slave is gone. WIRE_RUN_SEARCH_PATH looks the command up on the run's
 * PATH (command.c).
 *
 * The caller's fds 3 and up open for writing (WIRE_RUN_OUT_FDS) are pipes
 * too, read as stdout is (run-io.c).
 *
 * A run is over when its main process was reaped and all its output pipes
 * (stdout, stderr, those fds') hit end of file (the rest of its cgroup is
 * killed at the reap, so they do);
 * then what it changed under writable roots goes to the host (writeback.c),
 * unless it was cancelled, and only then WIRE_EXIT, after all of it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "runs.h"
#include "wire.h"

_Static_assert(RUN_POLLFDS_MAX >= 6 + WIRE_MAX_OUT_FDS, "room for every pipe of a run");

static struct run *runs;
static bool have_cgroups;
static void make_spare_cgroup(void);

void runs_init(void)
{
  mkdir(RUN_DIR, 0755);
  share_init();
  /* cgroup2 lets us kill a run's whole tree, even processes that called
   * setsid() or were reparented to us. Without it: the process group is killed. */
  /* favordynmods (Linux 6.0): moving a process into a cgroup no longer waits
   * for an RCU grace period, which under TCG took 12-15 ms of each run's
   * start; forks and exits pay a little instead. Older kernels: without. */
  unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  int rc = mount("cgroup2", CGROUP_ROOT, "cgroup2", flags, "favordynmods");
  if (rc == -1 && errno == EINVAL)
    rc = mount("cgroup2", CGROUP_ROOT, "cgroup2", flags, NULL);
  if (rc == 0 || errno == EBUSY)
    have_cgroups = access(CGROUP_ROOT "/cgroup.procs", F_OK) == 0;
  if (!have_cgroups)
    agent_log("no cgroup2 (%s): a run's processes are killed by process group", strerror(errno));
  make_spare_cgroup();
  run_pid_init();
  run_group_spare();
}

static struct run *find(uint32_t id)
{
  for (struct run *r = runs; r; r = r->next)
    if (r->id == id)
      return r;
  return NULL;
}

void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void send_exit(struct run *r, uint32_t how, uint32_t value, const char *msg)
{
  struct wire_exit m = { .how = how, .value = value };
  snprintf(m.msg, sizeof m.msg, "%.1024s", msg);
  uint8_t b[1200];
  size_t len;
  if (wire_encode_exit(&m, b, sizeof b, &len))
    agent_send(WIRE_EXIT, r->id, b, len);
}

static struct run *create(uint32_t id)
{
  struct run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->id = id;
  r->in_fd = r->out_fd = r->err_fd = r->exec_fd = r->file_fd = r->stdin_file = -1;
  r->ns_sock = r->ns_sock_child = r->stdin_sock = r->stdin_sock_child = -1;
  r->cgroup_procs_fd = r->cgroup_kill_fd = -1;
  r->credit = WIRE_WINDOW;
  snprintf(r->dir, sizeof r->dir, RUN_DIR "/%u", id);
  r->next = runs;
  runs = r;
  return r;
}

static void cgroup_path(const struct run *r, const char *file, char *buf, size_t cap)
{
  snprintf(buf, cap, CGROUP_ROOT "/%s%s%s", r->cgroup_name, file ? "/" : "", file ? file : "");
}

/* The next run's cgroup, made while the agent has nothing else to do (at
 * boot, after a run's teardown): its mkdir cost a warm call 0.2-0.3 ms.
 * Its cgroup.procs and cgroup.kill are opened then too, so that the child
 * joins with one write and the reap kills the rest with one (an open in
 * cgroupfs walks its path each time). */
static struct {
  char name[sizeof ((struct run *)0)->cgroup_name]; /* "" when there is none */
  int procs_fd, kill_fd;
} spare_cgroup = { "", -1, -1 };
static unsigned cgroups_made;

static int open_cgroup_file(const char *name, const char *file)
{
  char path[128];
  snprintf(path, sizeof path, CGROUP_ROOT "/%s/%s", name, file);
  return open(path, O_WRONLY | O_CLOEXEC);
}

static void make_spare_cgroup(void)
{
  if (!have_cgroups || spare_cgroup.name[0])
    return;
  char name[sizeof spare_cgroup.name], path[128];
  snprintf(name, sizeof name, "vmexec-%u", ++cgroups_made);
  snprintf(path, sizeof path, CGROUP_ROOT "/%s", name);
  if (mkdir(path, 0755) == 0) {
    memcpy(spare_cgroup.name, name, sizeof name);
    spare_cgroup.procs_fd = open_cgroup_file(name, "cgroup.procs");
    spare_cgroup.kill_fd = open_cgroup_file(name, "cgroup.kill");
  }
}

/* Give R the spare cgroup (made now if there is none yet). */
static void take_cgroup(struct run *r)
{
  make_spare_cgroup();
  if (!spare_cgroup.name[0])
    return; /* no cgroup2, or its mkdir failed: the run is killed by process group */
  memcpy(r->cgroup_name, spare_cgroup.name, sizeof spare_cgroup.name);
  r->cgroup_procs_fd = spare_cgroup.procs_fd;
  r->cgroup_kill_fd = spare_cgroup.kill_fd;
  spare_cgroup.name[0] = '\0';
  spare_cgroup.procs_fd = spare_cgroup.kill_fd = -1;
  r->cgroup = true;
}

int run_cgroup_write(const struct run *r, const char *file, const char *value)
{
  size_t len = strlen(value);
  int open_fd = !strcmp(file, "cgroup.procs") ? r->cgroup_procs_fd : !strcmp(file, "cgroup.kill") ? r->cgroup_kill_fd : -1;
  if (open_fd >= 0)
    return write(open_fd, value, len) == (ssize_t)len ? 0 : -1;
  char path[128];
  cgroup_path(r, file, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = write(fd, value, len) == (ssize_t)len ? 0 : -1;
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

/* Kill every process of the run: its cgroup (which its group's holder is
 * not in: it serves another run), or at least its process group. */
static void kill_all(struct run *r)
{
  if (r->cgroup && run_cgroup_write(r, "cgroup.kill", "1") == 0)
    return;
  if (r->pgid > 0) {
    kill(-r->pgid, SIGKILL);
    r->holder_killed = r->holder > 0 && r->pgid == r->holder;
  }
}

static void destroy(struct run *gone)
{
  uint64_t t0 = run_now_ns();
  for (struct run **p = &runs; *p; p = &(*p)->next)
    if (*p == gone) {
      *p = gone->next;
      break;
    }
  if (gone->holder > 0 && !gone->holder_killed)
    run_group_give_back(gone->holder);
  close_fd(&gone->in_fd);
  close_fd(&gone->out_fd);
  close_fd(&gone->err_fd);
  close_fd(&gone->exec_fd);
  close_fd(&gone->file_fd);
  close_fd(&gone->stdin_file);
  run_fd_pipes_close(gone);
  run_out_files_free(gone);
  close_fd(&gone->ns_sock);
  close_fd(&gone->ns_sock_child);
  close_fd(&gone->stdin_sock);
  close_fd(&gone->stdin_sock_child);
  close_fd(&gone->cgroup_procs_fd);
  close_fd(&gone->cgroup_kill_fd);
  writeback_free(gone->wb);
  share_free(gone->share); /* before the run's directory, which holds its tmpfs */
  if (gone->cgroup) {
    char path[128];
    cgroup_path(gone, NULL, path, sizeof path);
    rmdir(path); /* EBUSY while killed processes are still being reaped: harmless */
  }
  if (gone->dir[0]) { /* "" once the spare (share-spare.c) owns it */
    clear_dir(gone->dir, NULL);
    rmdir(gone->dir);
  }
  free(gone->stdin_buf);
  bool traced = gone->trace;
  run_trace_free(gone);
  free(gone);
  make_spare_cgroup();
  run_group_spare();
  share_sweep();
  if (traced)
    run_trace_teardown(run_now_ns() - t0);
}

/* Over when reaped and all output is out: send the run's changes under
 * writable roots (as far as credit allows: runs_continue carries on), then
 * tell the host how it ended. */
void run_maybe_finish(struct run *r)
{
  if (!r->reaped || run_output_open(r) || r->exec_fd >= 0 || !run_out_files_finish(r))
    return;
  if (!r->t_drained)
    r->t_drained = run_now_ns();
  /* A kept namespace whose upper layers show no change has nothing to write back. */
  if (r->share && !r->cancelled && !r->wb && !r->unchanged_known) {
    r->unchanged_known = true;
    r->unchanged = share_unchanged(r->share);
  }
  if (r->share && !r->cancelled && !r->unchanged) {
    if (!r->wb && !(r->wb = writeback_start(r->share, r->id)))
      agent_log("run %u: out of memory: its changes are not written back", r->id);
    if (r->wb && !writeback_step(r->wb, &r->credit))
      return;
  }
  if (r->share && r->keep_ns && !r->cancelled) {
    share_receive_ns(r->share, r->ns_sock);
    r->share->used = true;
    if (share_keep(r->share, r->unchanged, r->cgroup ? r->cgroup_name : "")) {
      r->share = NULL;
      r->dir[0] = '\0'; /* it holds the spare's tmpfs now */
    }
  }
  /* Before the caller hears of the end, which may be followed by a stop. */
  root_run_ended();
  run_trace_send(r);
  if (r->stdin_file >= 0) {
    off_t at = lseek(r->stdin_file, 0, SEEK_CUR);
    uint8_t b[8];
    struct wire_writer w;
    wire_writer_init(&w, b, sizeof b);
    wire_put_u64(&w, at < 0 ? 0 : (uint64_t)at);
    if (at >= 0)
      agent_send(WIRE_STDIN_END, r->id, b, w.len);
  }
  if (WIFSIGNALED(r->status))
    send_exit(r, WIRE_SIGNALED, wire_signal_from_native(WTERMSIG(r->status)), "");
  else
    send_exit(r, WIRE_EXITED, (uint32_t)WEXITSTATUS(r->status), "");
  destroy(r);
}

/* Refuse a run that cannot start, in vmexec's own statuses. */
void run_refuse(struct run *r, uint32_t status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  send_exit(r, WIRE_FAILED, status, msg);
  if (r->pid > 0)
    kill_all(r);
  r->pid = 0;
  destroy(r);
}

/* A decoded WIRE_RUN: its argv and env strings in two allocations sized by
 * the payload, which is at most WIRE_MAX_PAYLOAD (see wire_decode_run). */
struct run_request {
  struct wire_run m;
  char **vec;
  char *strings;
};

static void free_request(struct run_request *q)
{
  if (!q)
    return;
  free(q->vec);
  free(q->strings);
  free(q);
}

/* NULL if the payload is malformed (or memory ran out). */
static struct run_request *parse_run(const uint8_t *p, size_t n)
{
  struct run_request *q = calloc(1, sizeof *q);
  if (!q)
    return NULL;
  q->vec = calloc(WIRE_RUN_VEC_CAP(n), sizeof *q->vec);
  q->strings = malloc(n + 1);
  if (!q->vec || !q->strings || !wire_decode_run(p, n, &q->m, q->vec, WIRE_RUN_VEC_CAP(n), q->strings, n + 1) ||
      q->m.argc == 0) {
    free_request(q);
    return NULL;
  }
  return q;
}

/* The pipes in FDS give way to what the caller's streams are: its stdin
 * file, its stdout or stderr file, one stream for stdout and stderr.
 * -1 with errno. */
static int redirect_streams(struct run *r, const struct wire_run *q, int fds[3])
{
  if ((q->flags & WIRE_RUN_STDIN_FILE) && run_stdin_from_file(r, q, fds) == -1)
    return -1;
  run_out_files_open(r, q, fds);
  if ((q->flags & WIRE_RUN_STDERR_IS_STDOUT) && run_stderr_as_stdout(r, fds) == -1)
    return -1;
  return 0;
}

/* The run's child is started like vfork(): it shares the agent's memory,
 * on a stack of its own, and the agent waits until it has exec'd (or
 * exited). A fork() copied the agent's page tables, and then every page the
 * agent or the child wrote before the exec took a copy-on-write fault, each
 * some 30 us under TCG: fork to exec took 4-5 ms of a warm call, now 2.
 * The child writes nothing of the agent's but its own trace page, and
 * errno (it shares the agent's thread storage; the agent reads errno only
 * after its own failed calls). Its fd table, mount namespace, cwd and
 * credentials are its own (no CLONE_FILES, CLONE_FS). One stack serves
 * every run: the agent is stopped while a child uses it.
 *
 * But a child that must build a fresh mount namespace (no spare fits:
 * share_enter, 10-20 ms under TCG) is forked: the agent keeps serving the
 * other runs meanwhile. *VFORKED says which it was. */
struct child_args {
  struct run *r;
  const struct wire_run *q;
  const int *fds;
  const char *slave;
  int exec_w;
};

static int child_main(void *p)
{
  const struct child_args *a = p;
  run_child(a->r, a->q, a->fds, a->slave, a->exec_w);
}

enum { CHILD_STACK = 256 * 1024 };

static pid_t spawn_child(struct run *r, const struct wire_run *q, const int fds[3], const char *slave, int exec_w,
                         bool *vforked)
{
  bool fresh_ns = !(r->share && r->share->ns_fd >= 0) && (r->share || root_present());
  static char *stack;
  *vforked = !fresh_ns && (stack || (stack = malloc(CHILD_STACK)));
  if (!*vforked) {
    pid_t pid = fork();
    if (pid == 0)
      run_child(r, q, fds, slave, exec_w);
    return pid;
  }
  struct child_args a = { r, q, fds, slave, exec_w };
  /* The stack grows down on every target the agent is built for; keep the top 16-byte aligned. */
  return clone(child_main, stack + CHILD_STACK - 64, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
}

static void start(struct run *r, const uint8_t *p, size_t n)
{
  struct run_request *rq = parse_run(p, n);
  if (!rq) {
    run_refuse(r, 125, "malformed run request from the host");
    return;
  }
  const struct wire_run *q = &rq->m;
  r->t_run = run_now_ns();
  if (q->flags & WIRE_RUN_TRACE)
    run_trace_start(r);
  char why[512];
  /* Not with a full image's per-run root. */
  r->keep_ns = r->share && !r->share_err[0] && !root_present();
  if (r->keep_ns) {
    unsigned going = 0;
    for (struct run *o = runs; o; o = o->next)
      going += o->pid > 0 || o == r;
    share_note_start(going);
    share_ahead_collect(r->share);
    struct share *spare = share_take_spare(r->share);
    if (spare)
      r->share = spare;
    r->joined_ns = r->share->ns_fd >= 0;
    r->joined_kept = r->joined_ns && r->share->used;
  }
  if (r->share_err[0] || (r->share && !r->share->g && share_prepare(r->share, r->dir, why, sizeof why) == -1)) {
    run_refuse(r, 125, "%s", r->share_err[0] ? r->share_err : why);
    free_request(rq);
    return;
  }
  r->t_prepared = run_now_ns();
  if (!(q->flags & (WIRE_RUN_LEAD_GROUP | WIRE_RUN_PTY)))
    r->holder = run_group_take();
  take_cgroup(r);
  r->t_cgroup = run_now_ns();
  if (q->flags & WIRE_RUN_SEARCH_PATH)
    boot_jobs_wait(); /* the applets in /bin are commands too */
  int fds[3] = { -1, -1, -1 }, ex[2];
  char slave[64] = "";
  bool exec_done = false; /* the child has exec'd or given up */
  if (run_open_streams(r, q->flags & WIRE_RUN_PTY, fds, slave, sizeof slave) == -1) {
    run_refuse(r, 125, "cannot create the run's %s in the guest: %s", q->flags & WIRE_RUN_PTY ? "pseudo-terminal" : "pipes",
               strerror(errno));
  } else if (!(q->flags & WIRE_RUN_PTY) && redirect_streams(r, q, fds) == -1) {
    run_refuse(r, 125, "cannot give the run its stdin, stdout and stderr in the guest: %s", strerror(errno));
  } else if (run_fd_pipes_open(r, q) == -1) {
    for (int i = 0; i < 3; i++)
      close_fd(&fds[i]);
    run_refuse(r, 125, "cannot create the pipes of the caller's descriptors in the guest: %s", strerror(errno));
  } else if (pipe2(ex, O_CLOEXEC) == -1) {
    for (int i = 0; i < 3; i++)
      close_fd(&fds[i]);
    run_refuse(r, 125, "cannot create pipes in the guest: %s", strerror(errno));
  } else {
    int sv[2];
    if (r->keep_ns && r->share->ns_fd < 0 && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0) {
      r->ns_sock = sv[0];
      r->ns_sock_child = sv[1];
    }
    bool vforked;
    if (q->flags & WIRE_RUN_PID)
      run_pid_next((pid_t)q->pid);
    pid_t pid = spawn_child(r, q, fds, slave, ex[1], &vforked);
    run_pid_done();
    for (int i = 0; i < 3; i++)
      close_fd(&fds[i]);
    close_fd(&r->ns_sock_child);
    close_fd(&r->stdin_sock_child);
    for (uint32_t i = 0; i < r->nfd_pipes; i++)
      close_fd(&r->fd_pipes[i].child);
    close_fd(&r->cgroup_procs_fd); /* the child has joined, or failed to */
    close(ex[1]);
    r->exec_fd = ex[0];
    if (pid < 0)
      run_refuse(r, 125, "cannot fork in the guest: %s", strerror(errno));
    else {
      /* Not with a terminal: the child makes a session (setsid), which
       * fails once a parent's setpgid made it a group leader (a forked
       * child, for a full image's root, may not have run yet). */
      r->pgid = q->flags & WIRE_RUN_PTY ? pid : run_group_settle(pid, r->holder);
      r->pid = pid;
      r->started = true;
      exec_done = vforked;
    }
  }
  free_request(rq);
  /* A vforked child has exec'd or given up by now (the agent waited for
   * it): its end of the exec pipe is closed or about to be, so the outcome
   * is read here rather than in another round of the loop. */
  if (exec_done)
    run_exec_result(r); /* may end R */
}

static void receive_file(struct run *r, const uint8_t *p, size_t n)
{
  struct wire_file m;
  char path[PATH_MAX];
  const char *name = m.name;
  if (!wire_decode_file(p, n, &m) || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") || !name[0]) {
    run_refuse(r, 125, "malformed file from the host");
    return;
  }
  mkdir(r->dir, 0755);
  snprintf(path, sizeof path, "%s/%s", r->dir, name);
  close_fd(&r->file_fd);
  r->file_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, m.mode & 07777);
  r->file_left = m.size;
  if (r->file_fd < 0)
    run_refuse(r, 125, "cannot store the program in the guest: %s", strerror(errno));
}

static void receive_file_data(struct run *r, const uint8_t *p, size_t n)
{
  if (r->file_fd < 0 || n > r->file_left) {
    run_refuse(r, 125, "malformed file data from the host");
    return;
  }
  if (write_all(r->file_fd, p, n) == -1) {
    run_refuse(r, 125, "cannot store the program in the guest: %s (guest memory full? set VMEXEC_MEMORY)",
               strerror(errno));
    return;
  }
  r->file_left -= n;
  if (r->file_left == 0)
    close_fd(&r->file_fd);
}

static void receive_share(struct run *r, const uint8_t *p, size_t n)
{
  if (r->started) {
    agent_log("run %u: share after the run started; ignored", r->id);
    return;
  }
  share_free(r->share);
  r->share_err[0] = '\0';
  r->share = share_parse(p, n, r->share_err, sizeof r->share_err);
}

/* WIRE_CANCEL or the host went away: kill everything, write nothing back. */
static void cancel(struct run *r)
{
  r->cancelled = true;
  if (!r->started) {
    destroy(r);
    return;
  }
  kill_all(r);
  run_maybe_finish(r); /* ends a run whose write-back was in progress */
}

void runs_frame(const struct wire_header *h, const uint8_t *p)
{
  struct run *r = find(h->run);
  if (!r && (h->type == WIRE_RUN || h->type == WIRE_FILE || h->type == WIRE_SHARE))
    r = create(h->run);
  if (!r)
    return; /* e.g. a credit for a run that just ended */
  switch (h->type) {
  case WIRE_SHARE:
    receive_share(r, p, h->length);
    break;
  case WIRE_FILE:
    receive_file(r, p, h->length);
    break;
  case WIRE_FILE_DATA:
    receive_file_data(r, p, h->length);
    break;
  case WIRE_RUN:
    if (r->started)
      run_refuse(r, 125, "run %u started twice", r->id);
    else
      start(r, p, h->length);
    break;
  case WIRE_STDIN:
    run_receive_stdin(r, p, h->length);
    break;
  case WIRE_CREDIT:
    run_receive_credit(r, p, h->length);
    break;
  case WIRE_SIGNAL: {
    uint32_t wsig;
    int sig = wire_decode_u32(p, h->length, &wsig) ? wire_signal_to_native(wsig & ~WIRE_SIGNAL_PROCESS) : 0;
    if (sig > 0 && r->pid > 0)
      kill(wsig & WIRE_SIGNAL_PROCESS ? r->pid : -r->pgid, sig);
    break;
  }
  case WIRE_CANCEL:
    cancel(r);
    break;
  case WIRE_WINSIZE:
    run_receive_winsize(r, p, h->length);
    break;
  case WIRE_OUTPUT_CLOSED:
    run_receive_output_closed(r, p, h->length); /* may end the run */
    break;
  default:
    agent_log("run %u: unexpected frame type %u", r->id, h->type);
  }
}

void runs_cancel_all(void)
{
  for (struct run *r = runs, *next; r; r = next) {
    next = r->next;
    cancel(r);
  }
}

void runs_continue(void)
{
  for (struct run *r = runs, *next; r; r = next) {
    next = r->next;
    if (r->wb || (r->reaped && run_out_files_pending(r)))
      run_maybe_finish(r); /* may end the run */
    else
      run_out_files_pump(r);
  }
}

bool runs_active(void)
{
  return runs != NULL;
}

bool runs_reaped(pid_t pid, int status)
{
  if (run_group_reaped(pid))
    return true;
  for (struct run *r = runs; r; r = r->next)
    if (r->holder == pid) {
      r->holder = 0; /* its group lives on while it has members */
      return true;
    } else if (r->pid == pid) {
      r->pid = 0;
      r->reaped = true;
      r->t_reaped = run_now_ns();
      r->status = status;
      /* The main process is gone: so is everything it left behind. */
      kill_all(r);
      run_maybe_finish(r);
      return true;
    }
  return false;
}

/* A program that writes again within OUTPUT_GATHER_NS of our last read
 * writes in a burst (a line at a time, many small writes): its output waits
 * that long to be read and sent in one frame, instead of a wake-up, a read
 * and a frame through the port for each write (30000 lines of 3 bytes took
 * 3-4 times qemu-user's time, nearly all of it in the agent). A program
 * that answers its input writes after a round trip to the host, longer
 * than that: it is never held. */
#define OUTPUT_GATHER_NS 1000000

static void output_read(struct run *r)
{
  uint64_t now = run_now_ns();
  if (now - r->output_ns < OUTPUT_GATHER_NS)
    r->hold_ns = now + OUTPUT_GATHER_NS;
  r->output_ns = now;
}

int runs_timeout_ms(void)
{
  uint64_t now = run_now_ns(), first = UINT64_MAX;
  for (struct run *r = runs; r; r = r->next)
    if (r->hold_ns > now && r->hold_ns < first)
      first = r->hold_ns;
  return first == UINT64_MAX ? -1 : (int)((first - now + 999999) / 1000000);
}

size_t runs_pollfds(struct pollfd *p, size_t cap)
{
  size_t n = 0;
  uint64_t now = run_now_ns();
  for (struct run *r = runs; r && n + RUN_POLLFDS_MAX <= cap; r = r->next) {
    bool held = r->hold_ns > now;
    if (!held) {
      n += run_out_files_pollfds(r, p + n);
      n += run_fd_pipes_pollfds(r, p + n);
    }
    if (r->out_fd >= 0 && r->credit > 0 && !held)
      p[n++] = (struct pollfd){ .fd = r->out_fd, .events = POLLIN };
    if (r->err_fd >= 0 && r->credit > 0 && !held)
      p[n++] = (struct pollfd){ .fd = r->err_fd, .events = POLLIN };
    if (r->in_fd >= 0 && r->stdin_len > 0)
      p[n++] = (struct pollfd){ .fd = r->in_fd, .events = POLLOUT };
    if (r->exec_fd >= 0)
      p[n++] = (struct pollfd){ .fd = r->exec_fd, .events = POLLIN };
  }
  return n;
}

void runs_events(const struct pollfd *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (!p[i].revents)
      continue;
    /* Find the run that owns this fd now (an earlier event may have ended it). */
    for (struct run *r = runs; r; r = r->next) {
      if (p[i].fd == r->out_fd) {
        output_read(r);
        run_pump_output(r, &r->out_fd, 1);
        run_retype_eof(r);
        run_maybe_finish(r);
      } else if (p[i].fd == r->err_fd) {
        output_read(r);
        run_pump_output(r, &r->err_fd, 2);
        run_maybe_finish(r);
      } else if (p[i].fd == r->in_fd) {
        run_pump_stdin(r);
      } else if (p[i].fd == r->exec_fd) {
        run_exec_result(r); /* may end the run */
      } else if (run_out_files_event(r, p[i].fd)) {
        output_read(r);
      } else if (run_fd_pipes_event(r, p[i].fd)) {
        output_read(r);
        run_maybe_finish(r);
      } else {
        continue;
      }
      break;
    }
  }
}
