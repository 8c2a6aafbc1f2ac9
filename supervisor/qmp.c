#include "qmp.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockets.h"

/* Read until a line containing WANT arrives (QMP answers one JSON object per
 * line); 0 or -1 on timeout / end of file. The socket has a receive timeout. */
static int qmp_expect(int fd, const char *want)
{
  char buf[4096];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      return -1;
    len += (size_t)n;
    buf[len] = '\0';
    if (strstr(buf, want))
      return 0;
    char *nl = strrchr(buf, '\n');
    if (nl) { /* keep only the unfinished line */
      size_t keep = len - (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, keep);
      len = keep;
    }
    if (len == sizeof buf - 1)
      len = 0;
  }
}

static int qmp_quit(const char *path)
{
  int fd = path ? unix_connect(path, false) : -1;
  if (fd == -1)
    return -1;
  struct timeval tv = { .tv_sec = 3 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
  static const char quit[] = "{\"execute\":\"quit\"}\n";
  int rc = -1;
  if (qmp_expect(fd, "\"QMP\"") == 0 && write(fd, caps, sizeof caps - 1) == (ssize_t)(sizeof caps - 1) &&
      qmp_expect(fd, "\"return\"") == 0 && write(fd, quit, sizeof quit - 1) == (ssize_t)(sizeof quit - 1)) {
    /* Wait for the answer (or the close): qemu may drop a command whose
     * connection is gone before it was read. */
    qmp_expect(fd, "\"return\"");
    rc = 0;
  }
  close(fd);
  return rc;
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
