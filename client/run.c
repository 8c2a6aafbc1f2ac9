/* The client side of a call: run a program (or a command of the guest) in
 * the guest and exit as it did: the same code, or death by the same signal.
 *
 * The call is a thin relay: it sends the run (and, with --copy, the program
 * file) to the supervisor, copies stdin to the guest within the credit the
 * agent grants, writes stdout and stderr, and what the program wrote to
 * the caller's other fds open for writing, as they come and grants credit
 * for what it wrote, and forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT. If the call
 * itself is killed, the supervisor sees the socket close and cancels the run.
 * A harness's SIGTERM must end the call even when the program ignores it or
 * the guest hangs: a second SIGINT, SIGTERM or SIGHUP, or VMEXEC_KILL_GRACE
 * seconds after the first, cancels the run and vmexec dies of that signal
 * (see forward_signals).
 *
 * vmexec --target TARGET [--shell] -- COMMAND [ARGS...] runs a command of the
 * guest instead (client_run_command): looked up on the guest's PATH, the trees
 * around the working directory shared. With --shell (-it) it runs on a
 * pseudo-terminal in the guest: the caller's terminal is raw (terminal.c),
 * Ctrl-C is a byte for the guest's line discipline, not a forwarded SIGINT,
 * and window size changes follow (WIRE_WINSIZE). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"
#include "elf-detect.h"
#include "env.h"
#include "fail.h"
#include "frame-conn.h"
#include "out-track.h"
#include "run.h"
#include "terminal.h"
#include "trace.h"
#include "wire-msg.h"
#include "writeback.h"

extern char **environ;

/* The run id this call uses on its connection (one run per call). */
#define RUN_ID 1

static noreturn void run_in_guest(struct run_options *o, const struct target *t, const struct share_roots *roots,
                                  const char *path, const char *file, int argc, char **argv);

static volatile sig_atomic_t pending_signals[NSIG];
static int wake_pipe[2] = { -1, -1 };
/* SIGUSR1 and SIGUSR2 go to the program alone: a script that signals the pid
 * the program printed or wrote to a pid file (vmexec's, see WIRE_RUN_PID)
 * means that process, as kill(1) natively does; the others go to its group,
 * as a terminal or a harness's timeout sends them. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void on_signal(int sig)
{
  int saved = errno;
  pending_signals[sig] = 1;
  ssize_t ignored = write(wake_pipe[1], "", 1);
  (void)ignored;
  errno = saved;
}

static void catch_signal(int sig)
{
  struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: a blocked write returns */
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void install_forwarding(void)
{
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
    fail(EXIT_TOOL_FAILED, "pipe: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
}

/* From the run's frame on, the forwarded signals are caught for the program
 * (a guest still booting gets them with the run). Before it there is no
 * program to give them to: while vmexec builds an image or waits for another
 * call that starts the guest, SIGTERM or Ctrl-C ends it at once, as a killed
 * call (the supervisor drops a run whose caller went). */
static void catch_forwarded(void)
{
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
    catch_signal(forwarded[i]);
}

/* The connection failed while this call sent its run (send_frame): the
 * supervisor closed it unread (it was stopping, or vmexec was replaced under
 * it), and the call may start over, as when nothing came back (relay). */
static int send_errno;

/* One frame of this call's run before the relay starts; after a failed one
 * the rest are not sent. */
static void send_frame(int sock, uint16_t type, const void *p, size_t n)
{
  if (send_errno == 0 && frame_write(sock, type, RUN_ID, p, n) == -1)
    send_errno = errno;
}

/* Send the program file ahead of the run, in frames the agent stores. */
static void send_program(int sock, const char *path)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd == -1 || fstat(fd, &st) == -1)
    fail(EXIT_CANNOT_EXECUTE, "cannot read %s: %s", path, strerror(errno));
  struct wire_file m = { .mode = st.st_mode & 07777, .size = (uint64_t)st.st_size, .name = "program" };
  uint8_t head[sizeof m.name + 32];
  size_t len;
  wire_encode_file(&m, head, sizeof head, &len); /* fits: a short name */
  send_frame(sock, WIRE_FILE, head, len);
  static uint8_t chunk[256 * 1024];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail(EXIT_CANNOT_EXECUTE, "cannot read %s: %s", path, strerror(errno));
    if (n == 0)
      break;
    send_frame(sock, WIRE_FILE_DATA, chunk, (size_t)n);
  }
}

/* The trees the run sees at their host paths; the supervisor picks the
 * generation (gen, offset and size, left 0 here). */
static void send_share(int sock, const struct share_roots *roots)
{
  if (roots->n == 0)
    return; /* run from "/" with nothing to share: the guest's own files only */
  static uint8_t buf[WIRE_MAX_PAYLOAD];
  static struct wire_root wroots[SHARE_MAX_ROOTS];
  struct wire_share m = { .nroots = (uint32_t)roots->n, .roots = wroots };
  _Static_assert(sizeof wroots[0].path == sizeof roots->root[0].path, "a root's path is copied whole");
  for (size_t i = 0; i < roots->n; i++) {
    memcpy(wroots[i].path, roots->root[i].path, sizeof wroots[i].path);
    wroots[i].flags = roots->root[i].writable ? WIRE_ROOT_WRITABLE : 0;
  }
  size_t len;
  wire_encode_share(&m, buf, sizeof buf, &len); /* fits: SHARE_MAX_ROOTS paths */
  send_frame(sock, WIRE_SHARE, buf, len);
}

/* FD is /dev/full (char device 1:7 on Linux): the program gets the guest's,
 * whose writes fail at once, where a pipe's would succeed and the error come
 * too late for a program that has already exited. */
static bool is_dev_full(int fd)
{
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 7;
}

static bool is_guest_system_path(const char *cmd);

/* Our FD is a regular file open for reading, at a path the share shows
 * the guest: its PATH (CAP bytes) and our OFFSET in it, for the program to
 * open there. */
static bool shared_read_file(int fd, char *path, size_t cap, uint64_t *offset)
{
  struct stat st, named;
  int flags = fcntl(fd, F_GETFL);
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || flags == -1 || (flags & O_ACCMODE) != O_RDONLY ||
      (flags & O_PATH))
    return false;
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(proc, path, cap - 1);
  if (n <= 0 || path[0] != '/')
    return false;
  path[n] = '\0';
  off_t at = lseek(fd, 0, SEEK_CUR);
  /* (A file deleted since it was opened reads "PATH (deleted)"; its name
   * may be another file's now.) */
  return at >= 0 && stat(path, &named) == 0 && named.st_dev == st.st_dev && named.st_ino == st.st_ino &&
         !is_guest_system_path(path) && (*offset = (uint64_t)at, true);
}

/* The caller's stdin is such a file (M->stdin_path, M->stdin_offset): the
 * program can read it there (WIRE_RUN_STDIN_FILE) rather than through a
 * pipe, as it would natively: it may seek it or fstat it, and a program
 * that reads part of it leaves the rest to the next (`(head -1; cat) <
 * file`, pcre2grep and sed's -u, gnulib's fseek tests). */
static bool stdin_is_shared_file(struct wire_run *m)
{
  return shared_read_file(0, m->stdin_path, sizeof m->stdin_path, &m->stdin_offset);
}

/* Does the program inherit our FD (3 and up)? Not when it is close-on-exec,
 * as vmexec's own are. */
static bool inherited(int fd)
{
  int fdflags = fcntl(fd, F_GETFD);
  return fdflags != -1 && !(fdflags & FD_CLOEXEC);
}

/* The caller's descriptors 3 and up that the program inherits and that
 * are regular files open for reading, at paths the guest sees: into M
 * (WIRE_RUN_IN_FILES), so that `prog /dev/fd/4 4<file` reads the file as
 * natively (gawk's devfd tests). Those open for writing: find_out_fds.
 * Other descriptors open for reading only (pipes, terminals) do not reach
 * it. */
static bool find_in_files(struct wire_run *m)
{
  m->nin_files = 0;
  for (int fd = 3; fd < WIRE_FD_MAX && m->nin_files < WIRE_MAX_IN_FILES; fd++) {
    struct wire_in_file *f = &m->in_files[m->nin_files];
    if (!inherited(fd) || !shared_read_file(fd, f->path, sizeof f->path, &f->offset))
      continue;
    f->fd = (uint32_t)fd;
    m->nin_files++;
  }
  return m->nin_files > 0;
}

static bool same_open_file(int a, int b);

/* FD is /dev/null (char device 1:3): the program gets the guest's, open the same way. */
static bool is_dev_null(int fd)
{
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

/* The caller's descriptors 3 and up that the program inherits and that
 * are open for writing (O_WRONLY or O_RDWR), into M (WIRE_RUN_OUT_FDS), the
 * first WIRE_MAX_OUT_FDS of them: bats' TAP on fd 3, `prog 3>log`,
 * automake's and strace's harnesses. Each is a pipe in the guest whose
 * bytes we write to our fd (relay: WIRE_FD_OUTPUT), so that its offset or
 * O_APPEND place them as the program's own writes would; an O_RDWR one is
 * only written (the program's reads there fail with EBADF). One that is
 * the same open file as our stdout, stderr or one before it (`exec 5>&1`)
 * is a copy of that one in the guest, so that what goes to either keeps
 * its order. /dev/null, open any way (`3</dev/null` too), is the guest's. */
static bool find_out_fds(struct wire_run *m)
{
  m->nout_fds = 0;
  for (int fd = 3; fd < WIRE_FD_MAX && m->nout_fds < WIRE_MAX_OUT_FDS; fd++) {
    int flags = fcntl(fd, F_GETFL);
    bool in_file = false;
    for (uint32_t i = 0; i < m->nin_files; i++)
      in_file |= m->in_files[i].fd == (uint32_t)fd;
    if (in_file || flags == -1 || (flags & O_PATH) || !inherited(fd))
      continue;
    int access = flags & O_ACCMODE;
    struct wire_out_fd *f = &m->out_fds[m->nout_fds];
    *f = (struct wire_out_fd){ .fd = (uint32_t)fd, .kind = WIRE_OUT_FD_PIPE };
    if (is_dev_null(fd)) {
      f->kind = WIRE_OUT_FD_NULL;
      f->arg = access == O_RDONLY ? WIRE_FD_READ : access == O_WRONLY ? WIRE_FD_WRITE : WIRE_FD_READ | WIRE_FD_WRITE;
    } else if (access == O_RDONLY) {
      continue;
    } else {
      for (int other = 1; other <= 2 && f->kind == WIRE_OUT_FD_PIPE; other++)
        if (same_open_file(other, fd))
          *f = (struct wire_out_fd){ .fd = (uint32_t)fd, .kind = WIRE_OUT_FD_DUP, .arg = (uint32_t)other };
      for (uint32_t i = 0; i < m->nout_fds && f->kind == WIRE_OUT_FD_PIPE; i++)
        if (same_open_file((int)m->out_fds[i].fd, fd))
          *f = (struct wire_out_fd){ .fd = (uint32_t)fd, .kind = WIRE_OUT_FD_DUP, .arg = m->out_fds[i].fd };
    }
    m->nout_fds++;
  }
  return m->nout_fds > 0;
}

/* The caller's FD (1 or 2) is a regular file open for writing, into O:
 * the program gets a file like it (WIRE_RUN_STDOUT_FILE). Not when the
 * offset is inside the file without O_APPEND (`1<>file`): the guest's copy
 * holds no bytes of the host's, so what the program wrote among them could
 * not be told from what it left; that stays a pipe. */
static bool output_is_file(int fd, struct wire_out_file *o)
{
  struct stat st;
  int flags = fcntl(fd, F_GETFL);
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || flags == -1 || (flags & O_ACCMODE) == O_RDONLY)
    return false;
  off_t at = lseek(fd, 0, SEEK_CUR);
  if (at < 0 || (!(flags & O_APPEND) && at < st.st_size))
    return false;
  *o = (struct wire_out_file){ .offset = (uint64_t)at, .size = (uint64_t)st.st_size, .append = (flags & O_APPEND) != 0 };
  return true;
}

/* Are fds A and B one open file (`>log 2>&1`, a terminal, `exec 5>&1`)?
 * kcmp says; without it, the same file at the same offset with the same
 * flags. */
static bool same_open_file(int a, int b)
{
  long rc = syscall(SYS_kcmp, (long)getpid(), (long)getpid(), 0L /* KCMP_FILE */, (long)a, (long)b);
  if (rc == 0 || rc > 0)
    return rc == 0;
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
         fcntl(a, F_GETFL) == fcntl(b, F_GETFL) && lseek(a, 0, SEEK_CUR) == lseek(b, 0, SEEK_CUR);
}

/* The WIRE_RUN flags for the caller's stdin, stdout and stderr. */
static uint32_t stream_flags(struct wire_run *m, bool shared)
{
  bool full1 = is_dev_full(1), full2 = is_dev_full(2);
  uint32_t f = (full1 ? WIRE_RUN_STDOUT_FULL : 0) | (full2 ? WIRE_RUN_STDERR_FULL : 0) |
               (shared && stdin_is_shared_file(m) ? WIRE_RUN_STDIN_FILE : 0);
  if (shared && find_in_files(m))
    f |= WIRE_RUN_IN_FILES;
  if (find_out_fds(m))
    f |= WIRE_RUN_OUT_FDS;
  if (!full1 && output_is_file(1, &m->out_file[0]))
    f |= WIRE_RUN_STDOUT_FILE;
  if (!full1 && !full2 && same_open_file(1, 2))
    f |= WIRE_RUN_STDERR_IS_STDOUT;
  else if (!full2 && output_is_file(2, &m->out_file[1]))
    f |= WIRE_RUN_STDERR_FILE;
  return f;
}

/* Sends the run; what went (its flags, the offsets the program's stdout
 * and stderr files start at, the caller's fds it got). */
static const struct wire_run *send_run(int sock, const struct run_options *o, const char *file, int argc, char **argv,
                                       bool shared)
{
  static uint8_t buf[WIRE_MAX_PAYLOAD];
  static struct wire_run m;
  mode_t mask = umask(0);
  umask(mask);
  m.uid = o->root ? 0 : getuid();
  m.gid = o->root ? 0 : getgid();
  m.umask = mask;
  m.flags = (o->copy ? WIRE_RUN_COPY : 0) | (trace_on() ? WIRE_RUN_TRACE : 0) |
            (getpgrp() == getpid() ? WIRE_RUN_LEAD_GROUP : 0) | WIRE_RUN_PID | o->run_flags;
  m.pid = (uint32_t)getpid();
  if (!(o->run_flags & WIRE_RUN_PTY))
    m.flags |= stream_flags(&m, shared);
  if (!getcwd(m.cwd, sizeof m.cwd))
    fail(EXIT_TOOL_FAILED, "cannot get the current directory: %s", strerror(errno));
  bool fits = snprintf(m.file, sizeof m.file, "%s", file) < (int)sizeof m.file;
  m.argc = (uint32_t)argc;
  m.argv = argv;
  m.envc = 0;
  for (char **e = environ; *e; e++)
    m.envc++;
  m.envp = environ;
  gid_t groups[WIRE_MAX_GROUPS];
  int ngroups = o->root ? 0 : getgroups(WIRE_MAX_GROUPS, groups);
  m.ngroups = ngroups < 0 ? 0 : (uint32_t)ngroups;
  for (uint32_t i = 0; i < m.ngroups; i++)
    m.groups[i] = groups[i];
  size_t len;
  if (!fits || !wire_encode_run(&m, buf, sizeof buf, &len))
    fail(EXIT_CANNOT_EXECUTE, "the arguments and environment are larger than vmexec can send (%d KiB); make them smaller",
         WIRE_MAX_PAYLOAD / 1024);
  send_frame(sock, WIRE_RUN, buf, len);
  return &m;
}

/* The caller's window size as a WIRE_WINSIZE payload into b; its length. */
static size_t winsize_payload(uint8_t b[8])
{
  struct wire_winsize m = { 0, 0 };
  terminal_size(&m.rows, &m.cols);
  size_t len;
  wire_encode_winsize(&m, b, 8, &len);
  return len;
}

/* --shell: the caller's terminal goes raw when it is one (it comes back at
 * exit and before death by a signal), SIGINT and SIGQUIT are no longer
 * forwarded (Ctrl-C is a byte the guest's terminal turns into SIGINT for its
 * foreground job; sent to vmexec from elsewhere, they end the call), and the
 * window size goes to the guest now and on every SIGWINCH. */
static void start_terminal(int sock)
{
  terminal_make_raw(0);
  terminal_die_on(SIGINT);
  terminal_die_on(SIGQUIT);
  struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGWINCH, &sa, NULL);
  uint8_t b[8];
  send_frame(sock, WIRE_WINSIZE, b, winsize_payload(b));
}

/* The guest's text made safe for the caller's terminal, in place: control
 * characters (escape sequences start with one) and the C1 controls in UTF-8
 * become '?', so a guest cannot move the cursor, retitle the window or
 * answer back through the terminal, and a message stays one line. */
static void make_printable(char *s)
{
  for (unsigned char *c = (unsigned char *)s; *c; c++)
    if (*c < 0x20 || *c == 0x7f)
      *c = '?';
    else if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)
      c[0] = c[1] = '?';
}

/* Die of SIG, without a core file of vmexec. */
static noreturn void die_of_signal(int sig)
{
  struct rlimit no_core = { 0, 0 };
  setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  exit(128 + sig);
}

static noreturn void die_like(int how, uint32_t value, char *msg)
{
  terminal_restore(); /* --shell: before dying of a signal too */
  if (how == WIRE_EXITED)
    exit((int)(value & 0xff));
  if (how == WIRE_SIGNALED) {
    int sig = wire_signal_to_native(value);
    if (sig <= 0)
      exit(128 + (int)(value & 0x7f));
    die_of_signal(sig);
  }
  make_printable(msg);
  fail(value >= 125 && value <= 127 ? (int)value : EXIT_TOOL_FAILED, "%s", msg);
}

/* The state of one call's relay: the connection to the supervisor, stdin's
 * credit from the guest, and which of our outputs lost their reader. */
struct relay {
  struct frame_conn conn;
  struct writeback *wb;
  uint32_t stdin_credit;
  bool stdin_open, got_any;
  bool out_broken[WIRE_FD_MAX]; /* 1, 2 and the fds 3 and up the guest has a pipe of */
  bool out_append[3]; /* the caller's fd appends: WIRE_OUTPUT_AT's offset does not count */
  struct out_track out[3]; /* fd 1, 2 when they are files the guest copies (not O_APPEND) */
  bool fd_pipe[WIRE_FD_MAX]; /* WIRE_OUT_FD_PIPE: WIRE_FD_OUTPUT may come for it */
};

/* How a terminating signal ends the call. The first SIGINT, SIGTERM or
 * SIGHUP goes to the program, which may clean up and exit as it likes (its
 * status is then the call's). If the call has not ended VMEXEC_KILL_GRACE
 * seconds later, or a second one comes, the run is cancelled (WIRE_CANCEL:
 * the agent kills its whole cgroup and writes nothing back) and vmexec dies
 * of that signal, as timeout(1) or a test harness that sent it expects; a
 * guest that does not confirm the cancel within CANCEL_WAIT seconds does not
 * hold the call either. The clock is the SIGALRM of an interval timer, which
 * also interrupts a write to a caller that stopped reading our output.
 * SIGQUIT is only forwarded: a program may answer it and go on (a JVM's
 * thread dump). */
#define DEFAULT_KILL_GRACE 5
#define CANCEL_WAIT 3

static struct {
  int first;      /* the first SIGINT, SIGTERM or SIGHUP forwarded; 0 */
  double grace;   /* VMEXEC_KILL_GRACE, read then */
  bool cancelled; /* WIRE_CANCEL is sent: no more write-back */
  int sig;        /* the signal the call then dies of */
  char why[256];  /* the line that says why */
} ending;

static bool ends_call(int sig)
{
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
}

static const char *signal_name(int sig)
{
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* A SIGALRM in SECONDS. It is caught from the first timer on; before, one
 * sent by someone else ends vmexec as it always did. */
static void arm_timer(double seconds)
{
  catch_signal(SIGALRM);
  struct itimerval t = { .it_value = { .tv_sec = (time_t)seconds,
                                       .tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) } };
  if (t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0)
    t.it_value.tv_usec = 1; /* zero would disarm it */
  setitimer(ITIMER_REAL, &t, NULL);
}

/* Our timer went off (a SIGALRM from elsewhere while it runs does nothing). */
static bool timer_expired(void)
{
  struct itimerval t;
  return getitimer(ITIMER_REAL, &t) == 0 && t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0;
}

/* Cancel the run on account of SIG; the call ends when the guest confirms it
 * (its WIRE_EXIT or the connection's end) or CANCEL_WAIT seconds later.
 * A write-back in progress stops here: its temporary files go, and files it
 * already renamed into place stay whole (writeback.c). */
static void cancel_run(struct relay *r, int sig, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cancel_run(struct relay *r, int sig, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ending.why, sizeof ending.why, fmt, ap);
  va_end(ap);
  ending.cancelled = true;
  ending.sig = sig;
  frame_conn_queue(&r->conn, WIRE_CANCEL, RUN_ID, NULL, 0);
  writeback_abort(r->wb);
  arm_timer(CANCEL_WAIT);
}

/* The end of a cancelled call: the line saying why, on the caller's own
 * terminal again, then death by the signal. */
static noreturn void die_cancelled(void)
{
  terminal_restore();
  warning("%s", ending.why);
  die_of_signal(ending.sig);
}

/* A SIGINT, SIGTERM or SIGHUP: the first goes to the program and starts the
 * grace period, a second cancels the run, a third (the guest is slow to
 * confirm the cancel) ends the call now. */
static void terminating_signal(struct relay *r, int sig)
{
  if (ending.cancelled)
    die_cancelled();
  if (ending.first) {
    char what[64];
    if (sig == ending.first)
      snprintf(what, sizeof what, "a second %s", signal_name(sig));
    else
      snprintf(what, sizeof what, "%s after %s", signal_name(sig), signal_name(ending.first));
    cancel_run(r, sig, "%s before the program ended; cancelled it (the first signal goes to the program, a second "
               "one ends the call at once)", what);
    return;
  }
  frame_conn_queue_u32(&r->conn, WIRE_SIGNAL, RUN_ID, wire_signal_from_native(sig));
  ending.first = sig;
  ending.grace = env_number("VMEXEC_KILL_GRACE", DEFAULT_KILL_GRACE, 0, 86400);
  arm_timer(ending.grace);
}

/* The timer went off: the grace period is over (cancel the run), or the
 * guest did not confirm the cancel (end the call without it; its supervisor
 * cancels the run again when our connection closes). */
static void timer_signal(struct relay *r)
{
  if (!ending.first || !timer_expired())
    return;
  if (ending.cancelled)
    die_cancelled();
  cancel_run(r, ending.first, "the program did not end within %g s of %s; cancelled it (VMEXEC_KILL_GRACE sets the "
             "wait)", ending.grace, signal_name(ending.first));
}

/* Signals caught since the last turn go to the guest: the forwarded ones as
 * WIRE_SIGNAL (the terminating ones as above), SIGWINCH (--shell only) as
 * the new window size; SIGALRM is the grace period's clock. */
static void forward_signals(struct relay *r)
{
  char drain[64];
  while (read(wake_pipe[0], drain, sizeof drain) > 0) {
  }
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
    if (pending_signals[forwarded[i]]) {
      pending_signals[forwarded[i]] = 0;
      if (ends_call(forwarded[i]))
        terminating_signal(r, forwarded[i]);
      else
        frame_conn_queue_u32(&r->conn, WIRE_SIGNAL, RUN_ID,
                             wire_signal_from_native(forwarded[i]) |
                                 (forwarded[i] == SIGUSR1 || forwarded[i] == SIGUSR2 ? WIRE_SIGNAL_PROCESS : 0));
    }
  if (pending_signals[SIGWINCH]) {
    pending_signals[SIGWINCH] = 0;
    uint8_t b[8];
    frame_conn_queue(&r->conn, WIRE_WINSIZE, RUN_ID, b, winsize_payload(b));
  }
  if (pending_signals[SIGALRM]) {
    pending_signals[SIGALRM] = 0;
    timer_signal(r);
  }
}

/* stdin is readable: as much as the guest's credit allows goes to it, and
 * its end as an empty WIRE_STDIN. */
static void forward_stdin(struct relay *r)
{
  static uint8_t inbuf[64 * 1024];
  size_t want = r->stdin_credit < sizeof inbuf ? r->stdin_credit : sizeof inbuf;
  ssize_t n = read(0, inbuf, want);
  if (n > 0) {
    frame_conn_queue(&r->conn, WIRE_STDIN, RUN_ID, inbuf, (size_t)n);
    r->stdin_credit -= (uint32_t)n;
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    frame_conn_queue(&r->conn, WIRE_STDIN, RUN_ID, NULL, 0); /* end of file */
    r->stdin_open = false;
  }
}

/* The program's output to our FD (1, 2, or one of 3 and up), then credit for it. An output
 * we cannot write (its reader is gone: EPIPE; a full disk: ENOSPC; EIO...)
 * takes no more, and the guest closes the program's end of it
 * (WIRE_OUTPUT_CLOSED): its next write there fails as into a pipe whose
 * reader left, with SIGPIPE or EPIPE, so that its status shows it. */
static void write_output(struct relay *r, int fd, const uint8_t *p, size_t len, size_t credit, int64_t at)
{
  size_t done = 0;
  while (!r->out_broken[fd] && done < len) {
    ssize_t n = at < 0 || r->out_append[fd] ? write(fd, p + done, len - done)
                                             : pwrite(fd, p + done, len - done, (off_t)(at + (int64_t)done));
    if (n > 0)
      done += (size_t)n;
    else if (n < 0 && errno == EINTR) {
      /* A signal while our reader does not read: it is handled now, or
       * the call could not end before the reader went on. A cancelled call
       * drops the rest. */
      forward_signals(r);
      frame_conn_flush(&r->conn);
      if (ending.cancelled)
        break;
    } else if (n == 0 || errno != EAGAIN) {
      r->out_broken[fd] = true;
      /* A caller's closed fd (>&-) fails the program's writes with EBADF
       * natively, no signal: its output is only dropped. */
      if (n == 0 || errno != EBADF)
        frame_conn_queue_u32(&r->conn, WIRE_OUTPUT_CLOSED, RUN_ID, (uint32_t)fd);
    }
  }
  frame_conn_queue_u32(&r->conn, WIRE_CREDIT, RUN_ID, (uint32_t)credit);
}

/* WIRE_OUTPUT_AT: the program's bytes at their offset of our FD, a file
 * (out-track.h: where, when others write to it too). */
static void output_at(struct relay *r, const uint8_t *p, size_t n)
{
  struct wire_output m;
  const uint8_t *data;
  size_t len;
  if (!wire_decode_output_at(p, n, &m, &data, &len) || (m.fd != 1 && m.fd != 2) || m.offset > INT64_MAX - len)
    fail(EXIT_TOOL_FAILED, "malformed output frame from the guest; stop it with 'vmexec stop'");
  int fd = (int)m.fd;
  int64_t at = -1;
  if (!r->out_append[fd] && !r->out_broken[fd] && !out_track_place(&r->out[fd], m.offset, data, len, &at)) {
    frame_conn_queue_u32(&r->conn, WIRE_CREDIT, RUN_ID, (uint32_t)n);
    return;
  }
  write_output(r, fd, data, len, n, at);
  if (!r->out_append[fd] && !r->out_broken[fd])
    out_track_wrote(&r->out[fd], fd, m.offset, data, len, at);
}

/* WIRE_FD_OUTPUT: the program's bytes for our fd 3 and up, written there
 * as its own writes would have been (at its offset, or its end with
 * O_APPEND). */
static void fd_output(struct relay *r, const uint8_t *p, size_t n)
{
  uint32_t fd;
  const uint8_t *data;
  size_t len;
  if (!wire_decode_fd_output(p, n, &fd, &data, &len) || !r->fd_pipe[fd])
    fail(EXIT_TOOL_FAILED, "malformed output frame from the guest; stop it with 'vmexec stop'");
  write_output(r, (int)fd, data, len, n, -1);
}

/* WIRE_OUTPUT_END: our file's offset is where the program left its own
 * (an appending fd's is its end anyway), and a file it truncated is cut as
 * short. An offset at the end of what the program wrote is left where the
 * writes put it: the open file may be shared with other writers, which
 * have moved it since (`vmexec a | vmexec b` in a script whose output is a
 * file: a's stderr is b's stdout, and a, ending last without a word, took
 * the offset back over b's output). */
static void output_end(struct relay *r, const uint8_t *p, size_t n)
{
  struct wire_output m;
  if (!wire_decode_output_end(p, n, &m) || (m.fd != 1 && m.fd != 2) || m.offset > INT64_MAX)
    return;
  int fd = (int)m.fd;
  if (r->out_broken[fd])
    return;
  if (m.size <= INT64_MAX && ftruncate(fd, (off_t)m.size) == -1) {
    /* As a program's own ftruncate would have failed: it is told no more. */
  }
  int64_t to = r->out_append[fd] ? -1 : out_track_end(&r->out[fd], m.offset);
  if (to >= 0)
    lseek(fd, (off_t)to, SEEK_SET);
}

/* One frame from the supervisor: output, write-back, stdin credit, or the
 * run's end (then exit as the program did). */
static void from_supervisor(struct relay *r, const struct wire_header *h, const uint8_t *p)
{
  if (h->type == WIRE_STDOUT || h->type == WIRE_STDERR) {
    write_output(r, h->type == WIRE_STDOUT ? 1 : 2, p, h->length, h->length, -1);
  } else if (h->type == WIRE_OUTPUT_AT) {
    output_at(r, p, h->length);
  } else if (h->type == WIRE_FD_OUTPUT) {
    fd_output(r, p, h->length);
  } else if (h->type == WIRE_OUTPUT_END) {
    output_end(r, p, h->length);
  } else if (h->type == WIRE_WB || h->type == WIRE_WB_DATA) {
    if (!ending.cancelled) /* a cancelled run writes nothing back */
      writeback_frame(r->wb, h->type, p, h->length);
    if (h->type == WIRE_WB_DATA) /* counted against the output window */
      frame_conn_queue_u32(&r->conn, WIRE_CREDIT, RUN_ID, h->length);
  } else if (h->type == WIRE_CREDIT) {
    uint32_t more;
    if (wire_decode_u32(p, h->length, &more))
      r->stdin_credit += more;
  } else if (h->type == WIRE_TRACE) {
    trace_remote(p, h->length);
  } else if (h->type == WIRE_STDIN_END) {
    /* Where the program left the stdin file: so does the caller's. */
    struct wire_reader rd;
    wire_reader_init(&rd, p, h->length);
    uint64_t at = wire_get_u64(&rd);
    if (rd.ok && at <= INT64_MAX)
      lseek(0, (off_t)at, SEEK_SET);
  } else if (h->type == WIRE_EXIT) {
    if (ending.cancelled) /* the guest confirms the cancel */
      die_cancelled();
    trace_wait_end();
    static struct wire_exit m;
    if (!wire_decode_exit(p, h->length, &m))
      snprintf(m.msg, sizeof m.msg, "the guest failed");
    writeback_finish(r->wb); /* the write-back is whole: swap in the last tree, apply the deletes */
    if (r->wb->lost) /* the program's output did not all land: the call failed, whatever the program did */
      fail(EXIT_TOOL_FAILED, "%u of the program's changes could not be written back (the host's disk is full or failing)",
           r->wb->lost);
    trace_print("client: write-back apply");
    die_like((int)m.how, m.value, m.msg);
  }
}

/* Relay until the run's WIRE_EXIT, then exit as the program did. Returns
 * only if the connection ended before anything at all came back (a
 * supervisor that was just stopping): the caller may retry. RUN: as sent;
 * with WIRE_RUN_STDIN_FILE the guest reads the caller's stdin file itself,
 * and nothing is sent unless it grants credit (it could not). */
static void relay(int sock, struct writeback *wb, const struct wire_run *run)
{
  bool stdin_in_guest = run->flags & WIRE_RUN_STDIN_FILE;
  struct relay r = { .wb = wb, .stdin_credit = stdin_in_guest ? 0 : WIRE_WINDOW, .stdin_open = true };
  for (int fd = 1; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFL);
    r.out_append[fd] = flags != -1 && (flags & O_APPEND);
    out_track_init(&r.out[fd], run->out_file[fd - 1].offset);
  }
  for (uint32_t i = 0; (run->flags & WIRE_RUN_OUT_FDS) && i < run->nout_fds; i++)
    r.fd_pipe[run->out_fds[i].fd] = run->out_fds[i].kind == WIRE_OUT_FD_PIPE;
  if (frame_conn_init(&r.conn, sock) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);

  for (;;) {
    struct pollfd pf[3] = {
      { .fd = sock, .events = POLLIN | (frame_conn_pending(&r.conn) ? POLLOUT : 0) },
      { .fd = wake_pipe[0], .events = POLLIN },
      { .fd = r.stdin_open && r.stdin_credit > 0 ? 0 : -1, .events = POLLIN },
    };
    if (poll(pf, 3, -1) == -1 && errno != EINTR)
      fail(EXIT_TOOL_FAILED, "poll: %s", strerror(errno));

    forward_signals(&r);
    if (pf[2].revents)
      forward_stdin(&r);

    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      int rc = frame_conn_fill(&r.conn);
      struct wire_header h;
      const uint8_t *p;
      int got;
      while ((got = frame_conn_next(&r.conn, &h, &p)) == 1) {
        r.got_any = true;
        from_supervisor(&r, &h, p);
      }
      if (got == -1)
        fail(EXIT_TOOL_FAILED, "malformed frame from the guest's supervisor; stop it with 'vmexec stop --all'");
      if (rc <= 0) {
        if (ending.cancelled) /* the supervisor cancels the run of a connection that ends */
          die_cancelled();
        if (!r.got_any) {
          frame_conn_free(&r.conn);
          return;
        }
        fail(EXIT_TOOL_FAILED, "lost the connection to the guest's supervisor; see its log under %s",
             "$XDG_RUNTIME_DIR/vmexec");
      }
    }
    if (frame_conn_flush(&r.conn) == -1) {
      if (ending.cancelled)
        die_cancelled();
      if (!r.got_any) {
        frame_conn_free(&r.conn);
        return;
      }
      fail(EXIT_TOOL_FAILED, "lost the connection to the guest's supervisor: %s", strerror(errno));
    }
  }
}

noreturn void client_run_program(struct run_options *o, const char *path, int argc, char **argv)
{
  struct elf_info info;
  char err[1024];
  int status = elf_detect(path, &info, err, sizeof err);
  if (status != 0)
    fail(status, "%s", err);

  if (o->gdbserver)
    o->gdbserver->prepare(o, info.target);
  static struct share_roots roots;
  char real[PATH_MAX];
  if (!o->copy) {
    share_roots_find(&roots, path, info.target, o->shares, o->nshares);
    share_roots_add_args(&roots, argc - 1, argv + 1);
    if (!realpath(path, real))
      fail(EXIT_NOT_FOUND, "%s: %s", path, strerror(errno));
  }
  const char *file = o->copy ? "program" : real;
  if (o->gdbserver)
    o->gdbserver->wrap(o, &file, &argc, &argv);
  trace_mark("client: start (ELF detection, share roots)");
  run_in_guest(o, info.target, &roots, path, file, argc, argv);
}

/* Send the run to the T guest and relay it until it ends; exit as it did.
 * FILE is what the guest executes; with --copy, PATH is the file sent. */
static noreturn void run_in_guest(struct run_options *o, const struct target *t, const struct share_roots *roots,
                                  const char *path, const char *file, int argc, char **argv)
{
  struct writeback wb;
  writeback_init(&wb, roots);

  install_forwarding();
  for (int attempt = 0;; attempt++) {
    int sock = guest_connect(t, o->kind);
    trace_mark("client: connect to the supervisor");
    if (o->copy)
      send_program(sock, path);
    else
      send_share(sock, roots);
    catch_forwarded();
    const struct wire_run *run = send_run(sock, o, file, argc, argv, !o->copy && roots->n > 0);
    trace_mark("client: send the share and the run");
    trace_wait_start();
    if (o->pty)
      start_terminal(sock);
    if (send_errno == 0)
      relay(sock, &wb, run); /* returns only when it may retry */
    close(sock);
    if (send_errno && attempt == 3)
      fail(EXIT_TOOL_FAILED, "lost the connection to the guest's supervisor: %s; see its log under %s",
           strerror(send_errno), "$XDG_RUNTIME_DIR/vmexec");
    send_errno = 0;
    if (attempt == 3)
      fail(EXIT_TOOL_FAILED, "the %s guest's supervisor keeps closing the connection; see its log under %s",
           t->name, "$XDG_RUNTIME_DIR/vmexec");
  }
}

/* A command given as a path (with a slash) is a file of the caller's, shared
 * with the guest -- unless it is under the guest's own system directories,
 * which the share never covers: /bin/sh is the guest's shell. */
static bool is_guest_system_path(const char *cmd)
{
  static const char *const dirs[] = { "/bin/", "/sbin/", "/usr/", "/lib", "/etc/", "/proc/", "/sys/", "/dev/" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (strncmp(cmd, dirs[i], strlen(dirs[i])) == 0)
      return true;
  return false;
}

/* A host file run with --target: a script or other non-ELF file goes to the
 * guest as it is (its #! interpreter is the guest's); an ELF program must be
 * one of T. */
static void check_host_command(const struct target *t, const char *path)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    fail(errno == ENOENT || errno == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE, "%s: %s", path,
         strerror(errno));
  unsigned char head[SELFMAG];
  if (read(fd, head, sizeof head) != (ssize_t)sizeof head || memcmp(head, ELFMAG, SELFMAG) != 0)
    return;
  struct elf_info info;
  char err[1024];
  int status = elf_detect(path, &info, err, sizeof err);
  if (status != 0)
    fail(status, "%s", err);
  if (info.target != t)
    fail(EXIT_CANNOT_EXECUTE, "%s is a program for %s, not %s; drop --target (vmexec picks the guest from the "
         "ELF header) or use --target %s", path, info.target->name, t->name, info.target->name);
}

noreturn void client_run_command(struct run_options *o, int argc, char **argv)
{
  /* An interactive shell that edits lines: busybox's sh in the minimal image
   * (its /bin/sh is dash, as on Debian), bash in the full one. */
  static char *default_shell[] = { "/bin/busybox", "sh", NULL }, *full_shell[] = { "/bin/bash", NULL };
  if (argc == 0 && !o->pty)
    fail(EXIT_TOOL_FAILED, "no command given; usage: vmexec --target TARGET [--shell] -- COMMAND [ARGS...]");
  if (argc == 0) {
    argv = o->kind != IMAGE_MINIMAL ? full_shell : default_shell;
    argc = argv == default_shell ? 2 : 1;
  }
  if (o->copy)
    fail(EXIT_TOOL_FAILED, "--copy sends a program file to the guest; it does not go with --target, drop it");
  o->run_flags |= WIRE_RUN_SEARCH_PATH | (o->pty ? WIRE_RUN_PTY : 0);
  const char *file = argv[0], *program = NULL;
  static char real[PATH_MAX];
  if (strchr(file, '/') && !is_guest_system_path(file)) {
    check_host_command(o->target, file);
    if (!realpath(file, real))
      fail(EXIT_NOT_FOUND, "%s: %s", file, strerror(errno));
    program = file;
    file = real;
  }
  static struct share_roots roots;
  share_roots_find(&roots, program, o->target, o->shares, o->nshares);
  share_roots_add_args(&roots, argc - 1, argv + 1);
  trace_mark("client: start (share roots)");
  run_in_guest(o, o->target, &roots, NULL, file, argc, argv);
}
