/* Runs: the programs the host asked the agent to start, many at once.
 *
 * Each run gets pipes for stdin, stdout and stderr, its own session (so a
 * signal from the host reaches its process group) and its own cgroup (so that
 * everything it spawned, even what left the session, is killed when the run
 * ends or is cancelled: nothing leaks into the next run). Output is read only
 * while the host has granted credit, so a slow reader on the host stops the
 * program the way a full pipe would, without the agent buffering it.
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
 * A run is over when its main process was reaped and both output pipes hit
 * end of file (the rest of its cgroup is killed at the reap, so they do);
 * then what it changed under writable roots goes to the host (writeback.c),
 * unless it was cancelled, and only then WIRE_EXIT, after all of it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define MAX_ARGS 65536
#define READ_CHUNK (64 * 1024)

struct run {
  uint32_t id;
  pid_t pid;             /* main process; 0 before the start and after the reap */
  int in_fd, out_fd, err_fd, exec_fd; /* our pipe ends, -1 once closed */
  uint8_t *stdin_buf;    /* stdin from the host not yet taken by the program */
  size_t stdin_len;
  bool stdin_eof;        /* the host's stdin ended: close in_fd once drained */
  uint32_t credit;       /* output bytes the host will still take */
  bool started, reaped, cgroup;
  int status;            /* wait status of the main process */
  int file_fd;           /* the file being received (--copy), or -1 */
  uint64_t file_left;
  char dir[64];          /* RUN_DIR/ID: files sent with the run, its share tmpfs */
  struct share *share;   /* from WIRE_SHARE, or NULL */
  char share_err[512];   /* why the WIRE_SHARE was refused: the run fails at WIRE_RUN */
  struct writeback *wb;  /* the write-back in progress, once the program ended */
  bool cancelled;        /* WIRE_CANCEL or the host went away: no write-back */
  bool pty;              /* WIRE_RUN_PTY: out_fd is the terminal's master */
  bool eof_in_canon;     /* its EOF key went in while in line mode (see end_stdin) */
  bool line_open;        /* the last byte of stdin was not the end of a line */
  struct run *next;
};

static struct run *runs;
static bool have_cgroups;

void runs_init(void)
{
  mkdir(RUN_DIR, 0755);
  share_init();
  /* cgroup2 lets us kill a run's whole tree, even processes that called
   * setsid() or were reparented to us. Without it: the session is killed. */
  if (mount("cgroup2", CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0 || errno == EBUSY)
    have_cgroups = access(CGROUP_ROOT "/cgroup.procs", F_OK) == 0;
  if (!have_cgroups)
    agent_log("no cgroup2 (%s): a run's processes are killed by session", strerror(errno));
}

static struct run *find(uint32_t id)
{
  for (struct run *r = runs; r; r = r->next)
    if (r->id == id)
      return r;
  return NULL;
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void send_u32(uint16_t type, uint32_t run, uint32_t v)
{
  uint8_t b[4];
  struct wire_writer w;
  wire_writer_init(&w, b, sizeof b);
  wire_put_u32(&w, v);
  agent_send(type, run, b, w.len);
}

static void send_exit(struct run *r, uint32_t how, uint32_t value, const char *msg)
{
  uint8_t b[1200];
  struct wire_writer w;
  wire_writer_init(&w, b, sizeof b);
  wire_put_u32(&w, how);
  wire_put_u32(&w, value);
  wire_put_bytes(&w, msg, strnlen(msg, 1024));
  agent_send(WIRE_EXIT, r->id, b, w.len);
}

static struct run *create(uint32_t id)
{
  struct run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->id = id;
  r->in_fd = r->out_fd = r->err_fd = r->exec_fd = r->file_fd = -1;
  r->credit = WIRE_WINDOW;
  snprintf(r->dir, sizeof r->dir, RUN_DIR "/%u", id);
  r->next = runs;
  runs = r;
  return r;
}

static void cgroup_path(const struct run *r, const char *file, char *buf, size_t cap)
{
  snprintf(buf, cap, CGROUP_ROOT "/vmexec-%u%s%s", r->id, file ? "/" : "", file ? file : "");
}

/* Kill every process of the run: its cgroup, or at least its session. */
static void kill_all(struct run *r)
{
  if (r->cgroup) {
    char path[128];
    cgroup_path(r, "cgroup.kill", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (write(fd, "1", 1) == 1) {
        close(fd);
        return;
      }
      close(fd);
    }
  }
  if (r->pid > 0)
    kill(-r->pid, SIGKILL);
}

static void remove_dir_files(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
  rmdir(dir);
}

static void destroy(struct run *gone)
{
  for (struct run **p = &runs; *p; p = &(*p)->next)
    if (*p == gone) {
      *p = gone->next;
      break;
    }
  close_fd(&gone->in_fd);
  close_fd(&gone->out_fd);
  close_fd(&gone->err_fd);
  close_fd(&gone->exec_fd);
  close_fd(&gone->file_fd);
  writeback_free(gone->wb);
  share_free(gone->share); /* before the run's directory, which holds its tmpfs */
  if (gone->cgroup) {
    char path[128];
    cgroup_path(gone, NULL, path, sizeof path);
    rmdir(path); /* EBUSY while killed processes are still being reaped: harmless */
  }
  remove_dir_files(gone->dir);
  free(gone->stdin_buf);
  free(gone);
}

/* Over when reaped and all output is out: send the run's changes under
 * writable roots (as far as credit allows: runs_continue carries on), then
 * tell the host how it ended. */
static void maybe_finish(struct run *r)
{
  if (!r->reaped || r->out_fd >= 0 || r->err_fd >= 0 || r->exec_fd >= 0)
    return;
  if (r->share && !r->cancelled) {
    if (!r->wb && !(r->wb = writeback_start(r->share, r->id)))
      agent_log("run %u: out of memory: its changes are not written back", r->id);
    if (r->wb && !writeback_step(r->wb, &r->credit))
      return;
  }
  /* Before the caller hears of the end, which may be followed by a stop. */
  root_run_ended();
  if (WIFSIGNALED(r->status))
    send_exit(r, WIRE_SIGNALED, wire_signal_from_native(WTERMSIG(r->status)), "");
  else
    send_exit(r, WIRE_EXITED, (uint32_t)WEXITSTATUS(r->status), "");
  destroy(r);
}

/* Refuse a run that cannot start, in vmexec's own statuses. */
static void refuse(struct run *r, uint32_t status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct run *r, uint32_t status, const char *fmt, ...)
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

struct run_request {
  uint32_t uid, gid, umask, flags;
  char cwd[PATH_MAX], file[PATH_MAX];
  char **argv, **envp;
  gid_t groups[256];
  uint32_t ngroups;
};

/* Strings of the payload, NUL-terminated copies in one allocation per array. */
static char **get_strings(struct wire_reader *rd)
{
  uint32_t n = wire_get_u32(rd);
  if (!rd->ok || n > MAX_ARGS)
    return NULL;
  char **v = calloc(n + 1, sizeof *v);
  for (uint32_t i = 0; v && i < n; i++) {
    size_t len;
    const uint8_t *p = wire_get_bytes(rd, &len);
    if (!rd->ok || memchr(p, '\0', len) || !(v[i] = strndup((const char *)p, len))) {
      for (uint32_t j = 0; j < i; j++)
        free(v[j]);
      free(v);
      return NULL;
    }
  }
  return v;
}

static void free_strings(char **v)
{
  for (char **p = v; p && *p; p++)
    free(*p);
  free(v);
}

static bool parse_run(const uint8_t *p, size_t n, struct run_request *q)
{
  struct wire_reader rd;
  wire_reader_init(&rd, p, n);
  q->uid = wire_get_u32(&rd);
  q->gid = wire_get_u32(&rd);
  q->umask = wire_get_u32(&rd);
  q->flags = wire_get_u32(&rd);
  wire_get_str(&rd, q->cwd, sizeof q->cwd);
  wire_get_str(&rd, q->file, sizeof q->file);
  q->argv = get_strings(&rd);
  q->envp = get_strings(&rd);
  q->ngroups = wire_get_u32(&rd);
  if (q->ngroups > 256)
    rd.ok = false;
  for (uint32_t i = 0; rd.ok && i < q->ngroups; i++)
    q->groups[i] = wire_get_u32(&rd);
  return rd.ok && q->argv && q->envp && q->argv[0];
}

static void mkdir_p(const char *path)
{
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *s = buf + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(buf, 0755);
      *s = '/';
    }
  mkdir(buf, 0755);
}

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

enum { STAGE_CGROUP = 1, STAGE_SHARE, STAGE_CWD, STAGE_CREDS, STAGE_EXEC, STAGE_PTY, STAGE_NOT_FOUND };

/* FDS: the child's ends of the stdin, stdout and stderr pipes; with a
 * pseudo-terminal, SLAVE is its path instead. */
static noreturn void child(struct run *r, struct run_request *q, const int fds[3], const char *slave, int exec_w)
{
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, NULL);
  setpriority(PRIO_PROCESS, 0, 0); /* the agent runs at -20 */
  setsid();
  if (r->cgroup) {
    char path[128];
    cgroup_path(r, "cgroup.procs", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      child_fail(exec_w, STAGE_CGROUP, errno, NULL);
    close(fd);
  }
  if (slave[0]) {
    if (pty_attach(slave, q->uid, q->gid) == -1)
      child_fail(exec_w, STAGE_PTY, errno, NULL);
  } else {
    dup2(fds[0], 0);
    dup2(fds[1], 1);
    dup2(fds[2], 2);
  }
  if (r->share || root_present()) {
    char why[512];
    if (share_enter(r->share, why, sizeof why) == -1)
      child_fail(exec_w, STAGE_SHARE, errno, why);
  }
  if (chdir(q->cwd) == -1) {
    /* Without a share, --copy runs in a fresh directory of the same name in
     * guest memory; with one, the cwd is always inside a root. */
    if (!(q->flags & WIRE_RUN_COPY) || r->share)
      child_fail(exec_w, STAGE_CWD, errno, NULL);
    mkdir_p(q->cwd);
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
    exec_command(file, q->argv, q->envp, &found);
    child_fail(exec_w, found ? STAGE_EXEC : STAGE_NOT_FOUND, errno, file);
  }
  execve(file, q->argv, q->envp);
  child_fail(exec_w, STAGE_EXEC, errno, NULL);
}

/* The run's stdin, stdout and stderr: pipes whose child ends go into FDS,
 * or a pseudo-terminal whose slave path goes into SLAVE. -1 with errno. */
static int open_streams(struct run *r, bool pty, int fds[3], char *slave, size_t cap)
{
  if (pty) {
    r->pty = true;
    r->out_fd = pty_open_master(slave, cap);
    if (r->out_fd < 0 || (r->in_fd = fcntl(r->out_fd, F_DUPFD_CLOEXEC, 3)) < 0)
      return -1;
    return 0;
  }
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    int saved = errno;
    int *all[] = { &in[0], &in[1], &out[0], &out[1], &err[0], &err[1] };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
      close_fd(all[i]);
    errno = saved;
    return -1;
  }
  r->in_fd = in[1];
  r->out_fd = out[0];
  r->err_fd = err[0];
  fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
  fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
  fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
  fds[0] = in[0];
  fds[1] = out[1];
  fds[2] = err[1];
  return 0;
}

static void start(struct run *r, const uint8_t *p, size_t n)
{
  struct run_request *q = calloc(1, sizeof *q);
  if (!q || !parse_run(p, n, q)) {
    if (q) {
      free_strings(q->argv);
      free_strings(q->envp);
    }
    free(q);
    refuse(r, 125, "malformed run request from the host");
    return;
  }
  char why[512];
  if (r->share_err[0] || (r->share && share_prepare(r->share, r->dir, why, sizeof why) == -1)) {
    refuse(r, 125, "%s", r->share_err[0] ? r->share_err : why);
    free_strings(q->argv);
    free_strings(q->envp);
    free(q);
    return;
  }
  if (have_cgroups) {
    char path[128];
    cgroup_path(r, NULL, path, sizeof path);
    r->cgroup = mkdir(path, 0755) == 0;
  }
  if (q->flags & WIRE_RUN_SEARCH_PATH)
    busybox_install_wait(); /* the applets in /bin are commands too */
  int fds[3] = { -1, -1, -1 }, ex[2];
  char slave[64] = "";
  if (open_streams(r, q->flags & WIRE_RUN_PTY, fds, slave, sizeof slave) == -1) {
    refuse(r, 125, "cannot create the run's %s in the guest: %s", q->flags & WIRE_RUN_PTY ? "pseudo-terminal" : "pipes",
           strerror(errno));
  } else if (pipe2(ex, O_CLOEXEC) == -1) {
    for (int i = 0; i < 3; i++)
      close_fd(&fds[i]);
    refuse(r, 125, "cannot create pipes in the guest: %s", strerror(errno));
  } else {
    pid_t pid = fork();
    if (pid == 0)
      child(r, q, fds, slave, ex[1]);
    for (int i = 0; i < 3; i++)
      close_fd(&fds[i]);
    close(ex[1]);
    r->exec_fd = ex[0];
    if (pid < 0)
      refuse(r, 125, "cannot fork in the guest: %s", strerror(errno));
    else {
      r->pid = pid;
      r->started = true;
    }
  }
  free_strings(q->argv);
  free_strings(q->envp);
  free(q);
}

/* The exec pipe: end of file means exec succeeded; data means it did not. */
static void exec_result(struct run *r)
{
  struct child_msg msg;
  ssize_t n = read(r->exec_fd, &msg, sizeof msg);
  if (n < 0 && errno == EINTR)
    return;
  close_fd(&r->exec_fd);
  if (n != (ssize_t)sizeof msg) {
    maybe_finish(r);
    return;
  }
  msg.text[sizeof msg.text - 1] = '\0';
  /* The child exits 127 right after; drop its status and report this instead. */
  if (r->pid > 0) {
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
  if (msg.stage == STAGE_NOT_FOUND) {
    refuse(r, 127, "%s: not found in the %s guest", msg.text, guest_target_name());
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
  refuse(r, status, "%s: %s%s", what, strerror(msg.err), hint);
}

static void receive_file(struct run *r, const uint8_t *p, size_t n)
{
  struct wire_reader rd;
  wire_reader_init(&rd, p, n);
  uint32_t mode = wire_get_u32(&rd);
  uint64_t size = (uint64_t)wire_get_u32(&rd) << 32;
  size |= wire_get_u32(&rd);
  char name[256], path[PATH_MAX];
  if (!wire_get_str(&rd, name, sizeof name) || !rd.ok || strchr(name, '/') || !strcmp(name, ".") ||
      !strcmp(name, "..") || !name[0]) {
    refuse(r, 125, "malformed file from the host");
    return;
  }
  mkdir(r->dir, 0755);
  snprintf(path, sizeof path, "%s/%s", r->dir, name);
  close_fd(&r->file_fd);
  r->file_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
  r->file_left = size;
  if (r->file_fd < 0)
    refuse(r, 125, "cannot store the program in the guest: %s", strerror(errno));
}

static void receive_file_data(struct run *r, const uint8_t *p, size_t n)
{
  if (r->file_fd < 0 || n > r->file_left) {
    refuse(r, 125, "malformed file data from the host");
    return;
  }
  while (n > 0) {
    ssize_t w = write(r->file_fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      refuse(r, 125, "cannot store the program in the guest: %s (guest memory full? set VMEXEC_MEMORY)",
             strerror(errno));
      return;
    }
    p += w;
    n -= (size_t)w;
    r->file_left -= (uint64_t)w;
  }
  if (r->file_left == 0)
    close_fd(&r->file_fd);
}

/* The host's stdin ended and all of it went to the program: close the pipe,
 * or type the terminal's end-of-file key. A shell that is starting switches
 * the terminal from line mode to raw mode for its line editor, which turns a
 * pending EOF into a stray byte on its first line: then (retype_eof) the line
 * is killed and EOF typed again, once. An unfinished last line is given to
 * the program as it is (line mode) or dropped (a line editor). */
static void end_stdin(struct run *r)
{
  if (r->pty && r->in_fd >= 0) {
    /* In line mode, EOF after an unfinished line only ends that line. */
    if (r->line_open && pty_canonical(r->in_fd))
      pty_type_eof(r->in_fd, false);
    r->eof_in_canon = pty_type_eof(r->in_fd, false);
  }
  close_fd(&r->in_fd);
}

static void retype_eof(struct run *r)
{
  if (r->eof_in_canon && r->out_fd >= 0 && !pty_canonical(r->out_fd)) {
    r->eof_in_canon = false;
    pty_type_eof(r->out_fd, true);
  }
}

static void receive_stdin(struct run *r, const uint8_t *p, size_t n)
{
  if (n == 0) {
    r->stdin_eof = true;
  } else if (r->in_fd < 0) {
    send_u32(WIRE_CREDIT, r->id, (uint32_t)n); /* the program closed stdin: drop it */
    return;
  } else {
    if (r->stdin_len + n > WIRE_WINDOW) {
      agent_log("run %u: host sent stdin beyond its credit; dropped", r->id);
      return;
    }
    if (!r->stdin_buf && !(r->stdin_buf = malloc(WIRE_WINDOW)))
      return;
    memcpy(r->stdin_buf + r->stdin_len, p, n);
    r->stdin_len += n;
  }
  if (r->stdin_eof && r->stdin_len == 0)
    end_stdin(r);
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
  maybe_finish(r); /* ends a run whose write-back was in progress */
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
      refuse(r, 125, "run %u started twice", r->id);
    else
      start(r, p, h->length);
    break;
  case WIRE_STDIN:
    receive_stdin(r, p, h->length);
    break;
  case WIRE_CREDIT: {
    struct wire_reader rd;
    wire_reader_init(&rd, p, h->length);
    uint32_t more = wire_get_u32(&rd);
    r->credit = r->credit + more > WIRE_WINDOW ? WIRE_WINDOW : r->credit + more;
    break;
  }
  case WIRE_SIGNAL: {
    struct wire_reader rd;
    wire_reader_init(&rd, p, h->length);
    int sig = wire_signal_to_native(wire_get_u32(&rd));
    if (sig > 0 && r->pid > 0)
      kill(-r->pid, sig);
    break;
  }
  case WIRE_CANCEL:
    cancel(r);
    break;
  case WIRE_WINSIZE: {
    struct wire_reader rd;
    wire_reader_init(&rd, p, h->length);
    uint32_t rows = wire_get_u32(&rd), cols = wire_get_u32(&rd);
    if (rd.ok && r->pty && r->out_fd >= 0)
      pty_resize(r->out_fd, rows, cols);
    break;
  }
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
    if (r->wb)
      maybe_finish(r); /* may end the run */
  }
}

bool runs_reaped(pid_t pid, int status)
{
  for (struct run *r = runs; r; r = r->next)
    if (r->pid == pid) {
      r->pid = 0;
      r->reaped = true;
      r->status = status;
      /* The main process is gone: so is everything it left behind. */
      kill_all(r);
      maybe_finish(r);
      return true;
    }
  return false;
}

size_t runs_pollfds(struct pollfd *p, size_t cap)
{
  size_t n = 0;
  for (struct run *r = runs; r && n + 4 <= cap; r = r->next) {
    if (r->out_fd >= 0 && r->credit > 0)
      p[n++] = (struct pollfd){ .fd = r->out_fd, .events = POLLIN };
    if (r->err_fd >= 0 && r->credit > 0)
      p[n++] = (struct pollfd){ .fd = r->err_fd, .events = POLLIN };
    if (r->in_fd >= 0 && r->stdin_len > 0)
      p[n++] = (struct pollfd){ .fd = r->in_fd, .events = POLLOUT };
    if (r->exec_fd >= 0)
      p[n++] = (struct pollfd){ .fd = r->exec_fd, .events = POLLIN };
  }
  return n;
}

/* Output of the run on FD (stdout or stderr) to the host, within credit. */
static void pump_output(struct run *r, int *fd, uint16_t type)
{
  static uint8_t buf[READ_CHUNK];
  size_t want = r->credit < sizeof buf ? r->credit : sizeof buf;
  ssize_t n = read(*fd, buf, want);
  if (n > 0) {
    agent_send(type, r->id, buf, (size_t)n);
    r->credit -= (uint32_t)n;
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    close_fd(fd);
  }
}

static void pump_stdin(struct run *r)
{
  ssize_t n = write(r->in_fd, r->stdin_buf, r->stdin_len);
  if (n > 0) {
    r->line_open = r->stdin_buf[n - 1] != '\n' && r->stdin_buf[n - 1] != '\r';
    memmove(r->stdin_buf, r->stdin_buf + n, r->stdin_len - (size_t)n);
    r->stdin_len -= (size_t)n;
    send_u32(WIRE_CREDIT, r->id, (uint32_t)n);
  } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
    /* The program closed its stdin (EPIPE): drop the rest, as a pipe would. */
    send_u32(WIRE_CREDIT, r->id, (uint32_t)r->stdin_len);
    r->stdin_len = 0;
    close_fd(&r->in_fd);
  }
  if (r->stdin_eof && r->stdin_len == 0)
    end_stdin(r);
}

void runs_events(const struct pollfd *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (!p[i].revents)
      continue;
    /* Find the run that owns this fd now (an earlier event may have ended it). */
    for (struct run *r = runs; r; r = r->next) {
      if (p[i].fd == r->out_fd) {
        pump_output(r, &r->out_fd, WIRE_STDOUT);
        retype_eof(r);
        maybe_finish(r);
      } else if (p[i].fd == r->err_fd) {
        pump_output(r, &r->err_fd, WIRE_STDERR);
        maybe_finish(r);
      } else if (p[i].fd == r->in_fd) {
        pump_stdin(r);
      } else if (p[i].fd == r->exec_fd) {
        exec_result(r); /* may end the run */
      } else {
        continue;
      }
      break;
    }
  }
}
