/* `vmexec image test`: boot an image, wait for the agent's hello on the
 * virtio-serial port, report how long it took, stop the guest. Everything of
 * the boot (sockets, console log, qemu's own messages) lives in a private
 * temporary directory, removed on success and kept on failure so the console
 * log named in the message can be read. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "console-log.h"
#include "env.h"
#include "fail.h"
#include "frame-conn.h"
#include "qemu-cmdline.h"
#include "qmp.h"
#include "image-test.h"
#include "sockets.h"
#include "wire-msg.h"

struct boot {
  const struct target *t;
  char dir[sizeof ((struct sockaddr_un *)0)->sun_path]; /* short: socket paths live in it */
  char serial[PATH_MAX], console[PATH_MAX], qemu_log[PATH_MAX];
  pid_t pid;   /* qemu, until reaped */
  int status;  /* qemu's wait status once reaped */
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The boot has no QMP socket: qemu_stop's SIGTERM makes qemu exit at once
 * (the guest has nothing to save). */
static void stop_qemu(struct boot *b)
{
  if (b->pid <= 0)
    return;
  qemu_stop(NULL, b->pid);
  b->pid = -1;
}

/* A private directory for the boot's files, short enough for socket paths. */
static int make_tmpdir(struct boot *b)
{
  const char *bases[] = { getenv("XDG_RUNTIME_DIR"), "/tmp" };
  for (size_t i = 0; i < 2; i++) {
    const char *base = bases[i];
    if (!base || base[0] != '/')
      continue;
    int n = snprintf(b->dir, sizeof b->dir, "%s/vmexec-test-XXXXXX", base);
    /* + "/serial.sock" must fit in sun_path */
    if (n < 0 || (size_t)n + 12 >= sizeof ((struct sockaddr_un *)0)->sun_path)
      continue;
    if (mkdtemp(b->dir))
      return 0;
  }
  return -1;
}

static void path_in(const struct boot *b, const char *name, char *out)
{
  snprintf(out, PATH_MAX, "%s/%s", b->dir, name);
}

static void remove_tmpdir(const struct boot *b)
{
  unlink(b->serial);
  unlink(b->console);
  unlink(b->qemu_log);
  rmdir(b->dir);
}

static bool file_nonempty(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && st.st_size > 0;
}

static void print_indented(const char *text)
{
  for (const char *s = text; *s;) {
    const char *nl = strchr(s, '\n');
    int len = nl ? (int)(nl - s) : (int)strlen(s);
    fprintf(stderr, "    %.*s\n", len, s);
    s += len + (nl != NULL);
  }
}

/* One line naming the cause and the fix, then the last console lines (and
 * qemu's own last words when it exited by itself), indented. Returns 125. */
static int boot_failed(struct boot *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int boot_failed(struct boot *b, const char *fmt, ...)
{
  bool qemu_exited = b->pid <= 0;
  stop_qemu(b);
  char line[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  warning("%s: %s; console log: %s", b->t->name, line, b->console);
  char cause[512], tail[CONSOLE_LINES * 260];
  console_report(b->console, cause, sizeof cause, tail, sizeof tail);
  print_indented(tail);
  if (qemu_exited) {
    console_tail(b->qemu_log, CONSOLE_LINES, tail, sizeof tail);
    if (tail[0]) {
      fprintf(stderr, "  %s said:\n", b->t->qemu_binary);
      print_indented(tail);
    }
  }
  return EXIT_TOOL_FAILED;
}

static int got_hello(struct boot *b, const uint8_t *p, size_t n, double elapsed)
{
  struct wire_hello m;
  if (!wire_decode_hello(p, n, &m))
    return boot_failed(b, "the agent's hello is malformed; rebuild the image with 'vmexec image build %s'", b->t->name);
  if (m.version != WIRE_VERSION)
    return boot_failed(b, "the agent speaks wire version %u, this vmexec speaks %u; rebuild the image with 'vmexec image build %s'",
                       (unsigned)m.version, (unsigned)WIRE_VERSION, b->t->name);
  printf("%s: agent hello after %.2f s (kernel %s, machine %s)\n", b->t->name, elapsed, m.kernel, m.machine);
  fflush(stdout);
  stop_qemu(b);
  remove_tmpdir(b);
  return 0;
}

/* What a boot needs before it starts: a whole image in DIR, qemu (its path
 * into BIN) and the private directory with the paths in it. 0, or 125 and
 * one line. */
static int prepare(struct boot *b, const char *dir, char *bin, size_t bin_cap)
{
  const struct target *t = b->t;
  char kernel[PATH_MAX], initrd[PATH_MAX];
  snprintf(kernel, sizeof kernel, "%s/kernel", dir);
  snprintf(initrd, sizeof initrd, "%s/initrd", dir);
  if (access(kernel, R_OK) == -1 || access(initrd, R_OK) == -1) {
    warning("%s: the image in %s is incomplete (%s: %s); rebuild it with 'vmexec image build %s'", t->name, dir,
            access(kernel, R_OK) == -1 ? "kernel" : "initrd", strerror(errno), t->name);
    return EXIT_TOOL_FAILED;
  }
  if (qemu_find(t, bin, bin_cap) == -1) {
    warning("%s is not installed; install it with 'apt-get install %s'", t->qemu_binary, t->qemu_package);
    return EXIT_TOOL_FAILED;
  }
  if (make_tmpdir(b) == -1) {
    warning("cannot create a temporary directory in $XDG_RUNTIME_DIR or /tmp: %s; set XDG_RUNTIME_DIR to a "
            "writable directory with a short path", strerror(errno));
    return EXIT_TOOL_FAILED;
  }
  path_in(b, "serial.sock", b->serial);
  path_in(b, "console.log", b->console);
  path_in(b, "qemu.log", b->qemu_log);
  return 0;
}

/* qemu BIN booting the image in DIR, its serial port and logs in the private
 * directory. 0, or 125 and one line (the directory removed). */
static int spawn_qemu(struct boot *b, const char *dir, const char *bin)
{
  struct qemu_options o = {
    .target = b->t,
    .image_dir = dir,
    .serial_socket = b->serial,
    .console_log = b->console,
    .qemu_log = b->qemu_log,
  };
  b->pid = qemu_spawn(&o, sigmask_empty());
  if (b->pid >= 0)
    return 0;
  int err = (int)-b->pid;
  b->pid = -1;
  if (err == ENOENT)
    warning("%s is not installed; install it with 'apt-get install %s'", b->t->qemu_binary, b->t->qemu_package);
  else
    warning("cannot start %s: %s", bin, strerror(err));
  remove_tmpdir(b);
  return EXIT_TOOL_FAILED;
}

/* The serial port is readable: the hello (0, printed), anything else (125),
 * or -1 to go on waiting (not a whole frame yet, or qemu closed the socket:
 * it is exiting, and the caller's waitpid says how). */
static int read_hello(struct boot *b, struct frame_conn *fc, double start)
{
  int r = frame_conn_fill(fc);
  struct wire_header h;
  const uint8_t *payload;
  int f = frame_conn_next(fc, &h, &payload);
  if (f == 1 && h.type == WIRE_HELLO)
    return got_hello(b, payload, h.length, now_s() - start);
  if (f == 1)
    return boot_failed(b, "the agent sent a frame of type %u before its hello; rebuild the image with 'vmexec image "
                          "build %s'", (unsigned)h.type, b->t->name);
  if (f == -1)
    return boot_failed(b, "the agent sent a malformed frame instead of its hello; rebuild the image with "
                          "'vmexec image build %s'", b->t->name);
  if (r <= 0) {
    close(fc->fd);
    fc->fd = -1;
  }
  return -1;
}

/* qemu exited (reaped, its wait status in b->status) before the hello: 125
 * and the line that best says why, from qemu's log and the console's. */
static int exited_early(struct boot *b, double start)
{
  const struct target *t = b->t;
  char how[128];
  qemu_exit_reason(b->status, how, sizeof how);
  char qemu_said[512] = "", cause[512];
  if (file_nonempty(b->qemu_log))
    console_last_line(b->qemu_log, qemu_said, sizeof qemu_said);
  char excerpt[CONSOLE_LINES * 260];
  console_report(b->console, cause, sizeof cause, excerpt, sizeof excerpt);
  if (qemu_said[0] && !WIFEXITED(b->status))
    return boot_failed(b, "%s before the agent said hello (%s); check the qemu installation", how, qemu_said);
  if (qemu_said[0] && WEXITSTATUS(b->status) != 0)
    return boot_failed(b, "%s before the agent said hello (%s); rebuild the image with 'vmexec image build %s'", how,
                       qemu_said, t->name);
  if (cause[0])
    return boot_failed(b, "the guest stopped before the agent said hello (%s); rebuild the image with 'vmexec "
                          "image build %s'", cause, t->name);
  if (!file_nonempty(b->console))
    return boot_failed(b, "the guest stopped before the agent said hello, without a word on the console (%s after "
                          "%.1f s): the kernel did not start; rebuild the image with 'vmexec image build %s'",
                       how, now_s() - start, t->name);
  return boot_failed(b, "the guest stopped before the agent said hello (%s after %.1f s); rebuild the image "
                        "with 'vmexec image build %s'", how, now_s() - start, t->name);
}

/* Wait for the agent's hello on the serial port, at most TIMEOUT seconds
 * from START; qemu creates the socket soon after it starts, so connecting is
 * retried until then. 0 on the hello, else 125 and one line. */
static int wait_for_hello(struct boot *b, double start, double timeout)
{
  struct frame_conn fc;
  if (frame_conn_init(&fc, -1) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  int rc = -1;
  while (rc == -1) {
    if (fc.fd < 0) {
      fc.fd = unix_connect(b->serial, true);
      if (fc.fd < 0 && errno != ENOENT && errno != ECONNREFUSED) {
        rc = boot_failed(b, "cannot connect to %s: %s", b->serial, strerror(errno));
        break;
      }
    }
    struct pollfd p = { .fd = fc.fd, .events = POLLIN };
    if (poll(&p, 1, fc.fd < 0 ? 20 : 100) == -1 && errno != EINTR) {
      rc = boot_failed(b, "poll: %s", strerror(errno));
      break;
    }
    if (p.revents && (rc = read_hello(b, &fc, start)) != -1)
      break;
    if (waitpid(b->pid, &b->status, WNOHANG) == b->pid) {
      b->pid = -1;
      rc = exited_early(b, start);
      break;
    }
    if (now_s() - start > timeout) {
      rc = boot_failed(b, "no hello from the agent within %.0f s; the image may be broken (rebuild it with 'vmexec image "
                          "build %s') or the host slow (set VMEXEC_BOOT_TIMEOUT=SECONDS to wait longer)",
                       timeout, b->t->name);
      break;
    }
  }
  if (fc.fd >= 0)
    close(fc.fd);
  frame_conn_free(&fc);
  return rc;
}

int image_test(const struct target *t, const char *dir)
{
  struct boot b = { .t = t, .pid = -1 };
  char bin[PATH_MAX];
  int rc = prepare(&b, dir, bin, sizeof bin);
  if (rc != 0)
    return rc;
  double timeout = env_boot_timeout();
  double start = now_s();
  rc = spawn_qemu(&b, dir, bin);
  if (rc != 0)
    return rc;
  return wait_for_hello(&b, start, timeout);
}
