/* Console logging and the way out of PID 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static int console_fd = 2; /* the kernel gives PID 1 /dev/console as fds 0-2 */

void log_open_console(void)
{
  int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd == -1)
    return;
  /* Without /dev/console in the initramfs the kernel starts PID 1 with fds
   * 0-2 closed; fill them, so that no later open() lands there. */
  for (int i = 0; i <= 2; i++)
    if (fcntl(i, F_GETFD) == -1)
      dup2(fd, i);
  if (fd <= 2)
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (fd >= 0)
    console_fd = fd;
}

static void vlog(const char *fmt, va_list ap)
{
  /* One write per line, so that lines do not mix with the kernel's. */
  char line[1024];
  int n = snprintf(line, sizeof line, "vmexec-agent: ");
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  if (m < 0)
    m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  line[len++] = '\n';
  int saved = errno;
  while (write(console_fd, line, len) == -1 && errno == EINTR)
    ;
  errno = saved;
}

void agent_log(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void agent_fatal(const char *fmt, ...)
{
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  agent_log("%s; powering off", msg);
  sync();
  reboot(RB_POWER_OFF);
  /* Still here (not PID 1, or no permission): never return, never exit. */
  for (;;)
    pause();
}

double uptime_seconds(void)
{
  struct timespec ts;
  if (clock_gettime(CLOCK_BOOTTIME, &ts) == -1)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
