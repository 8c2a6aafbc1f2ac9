#include "qmp.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockets.h"

/* The next line qemu sent into q->line (without its newline); -1 on
 * timeout, end of file or a line longer than the buffer. */
static int qmp_line(struct qmp *q)
{
  for (;;) {
    char *nl = memchr(q->buf, '\n', q->len);
    if (nl) {
      size_t n = (size_t)(nl - q->buf);
      memcpy(q->line, q->buf, n);
      q->line[n] = '\0';
      memmove(q->buf, nl + 1, q->len - n - 1);
      q->len -= n + 1;
      return 0;
    }
    if (q->len == sizeof q->buf)
      return -1;
    ssize_t got = read(q->fd, q->buf + q->len, sizeof q->buf - q->len);
    if (got <= 0)
      return -1;
    q->len += (size_t)got;
  }
}

int qmp_open(struct qmp *q, const char *path, int timeout_ms)
{
  memset(q, 0, sizeof *q);
  q->fd = path ? unix_connect(path, false) : -1;
  if (q->fd == -1)
    return -1;
  struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
  setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(q->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  /* The greeting, then command mode. */
  if (qmp_line(q) == -1 || !strstr(q->line, "\"QMP\"") ||
      qmp_command(q, "{\"execute\":\"qmp_capabilities\"}", -1) == -1) {
    qmp_close(q);
    return -1;
  }
  return 0;
}

void qmp_close(struct qmp *q)
{
  if (q->fd >= 0)
    close(q->fd);
  q->fd = -1;
}

int qmp_command(struct qmp *q, const char *command, int fd)
{
  size_t n = strlen(command);
  char nl = '\n';
  struct iovec iov[2] = { { (void *)command, n }, { &nl, 1 } };
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
  if (fd >= 0) {
    /* The descriptor travels with the command's bytes (SCM_RIGHTS), as
     * QMP's getfd wants it. */
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof ctl.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(q->fd, &msg, MSG_NOSIGNAL) != (ssize_t)(n + 1))
    return -1;
  /* Events ({"timestamp": ..., "event": ...}) may come first; the answer
   * starts with "return" or "error". */
  while (qmp_line(q) == 0) {
    if (strncmp(q->line, "{\"return\"", 9) == 0)
      return 0;
    if (strncmp(q->line, "{\"error\"", 8) == 0)
      return -1;
  }
  q->line[0] = '\0';
  return -1;
}

static int qmp_quit(const char *path)
{
  struct qmp q;
  if (qmp_open(&q, path, 3000) == -1)
    return -1;
  /* Wait for the answer (or the close): qemu may drop a command whose
   * connection is gone before it was read. */
  qmp_command(&q, "{\"execute\":\"quit\"}", -1);
  qmp_close(&q);
  return 0;
}

int qemu_wait_exit(pid_t pid, int ms)
{
  for (int waited = 0; waited <= ms; waited += 20) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || r == -1)
      return 1;
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  return 0;
}

void qemu_exit_reason(int status, char *buf, size_t cap)
{
  if (WIFSIGNALED(status))
    snprintf(buf, cap, "qemu was killed by signal %d", WTERMSIG(status));
  else
    snprintf(buf, cap, "qemu exited with status %d", WEXITSTATUS(status));
}

void qemu_stop(const char *qmp_socket, pid_t pid)
{
  if (qmp_quit(qmp_socket) == 0 && qemu_wait_exit(pid, 5000))
    return;
  kill(pid, SIGTERM);
  if (qemu_wait_exit(pid, 5000))
    return;
  kill(pid, SIGKILL);
  qemu_wait_exit(pid, 5000);
}

long qemu_rss_kib(pid_t pid)
{
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  long kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}
