/* Pseudo-terminals for WIRE_RUN_PTY runs (vmexec --shell): the agent keeps
 * the master, the run's first process opens the slave as its controlling
 * terminal. devpts is mounted at /dev/pts (mounts.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

int pty_open_master(char *slave, size_t cap)
{
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0)
    return -1;
  const char *name;
  if (grantpt(m) == -1 || unlockpt(m) == -1 || !(name = ptsname(m)) || (size_t)snprintf(slave, cap, "%s", name) >= cap) {
    int saved = errno ? errno : ENAMETOOLONG;
    close(m);
    errno = saved;
    return -1;
  }
  fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
  return m;
}

int pty_attach(const char *slave, uid_t uid, gid_t gid)
{
  /* A session leader without a terminal that opens one gets it as its
   * controlling terminal; TIOCSCTTY says so explicitly. */
  int fd = open(slave, O_RDWR);
  if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) == -1)
    return -1;
  /* The caller's terminal is the caller's, as with a login (mode 0620). */
  if (uid != 0 && fchown(fd, uid, gid) == -1)
    return -1;
  if (dup2(fd, 0) == -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
    return -1;
  if (fd > 2)
    close(fd);
  return 0;
}

void pty_resize(int master, uint32_t rows, uint32_t cols)
{
  struct winsize ws = {
    .ws_row = rows > 0xffff ? 0xffff : (unsigned short)rows,
    .ws_col = cols > 0xffff ? 0xffff : (unsigned short)cols,
  };
  if (ioctl(master, TIOCSWINSZ, &ws) == -1)
    agent_log("cannot set a run's window size: %s", strerror(errno));
}

bool pty_type_eof(int master, bool kill_line)
{
  struct termios t;
  bool got = tcgetattr(master, &t) == 0;
  uint8_t keys[2];
  size_t n = 0;
  if (kill_line)
    keys[n++] = got && t.c_cc[VKILL] != _POSIX_VDISABLE ? t.c_cc[VKILL] : 0x15; /* Ctrl-U */
  keys[n++] = got && t.c_cc[VEOF] != _POSIX_VDISABLE ? t.c_cc[VEOF] : 0x04;   /* Ctrl-D */
  ssize_t ignored = write(master, keys, n);
  (void)ignored;
  return got && (t.c_lflag & ICANON);
}

bool pty_canonical(int master)
{
  struct termios t;
  return tcgetattr(master, &t) == 0 && (t.c_lflag & ICANON);
}
