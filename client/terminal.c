/* The caller's terminal for vmexec --shell (see terminal.h). */
#include "terminal.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static volatile sig_atomic_t raw_fd = -1;

void terminal_restore(void)
{
  int fd = raw_fd;
  if (fd >= 0) {
    raw_fd = -1;
    tcsetattr(fd, TCSADRAIN, &saved);
  }
}

bool terminal_make_raw(int fd)
{
  static bool registered;
  if (raw_fd >= 0)
    return true;
  if (!isatty(fd) || tcgetattr(fd, &saved) == -1)
    return false;
  if (!registered) {
    atexit(terminal_restore);
    registered = true;
  }
  struct termios raw = saved;
  cfmakeraw(&raw);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  raw_fd = fd;
  if (tcsetattr(fd, TCSAFLUSH, &raw) == -1) {
    raw_fd = -1;
    return false;
  }
  return true;
}

static void restore_and_die(int sig)
{
  terminal_restore();
  /* SA_RESETHAND made the action the default again: the signal, blocked
   * while this handler runs, kills the process when it returns. */
  raise(sig);
}

void terminal_die_on(int sig)
{
  struct sigaction sa = { .sa_handler = restore_and_die, .sa_flags = SA_RESETHAND };
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

bool terminal_size(uint32_t *rows, uint32_t *cols)
{
  for (int fd = 0; fd <= 2; fd++) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
      *rows = ws.ws_row;
      *cols = ws.ws_col;
      return true;
    }
  }
  return false;
}
