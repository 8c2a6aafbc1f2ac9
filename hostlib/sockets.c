#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(sa->sun_path, path);
  return 0;
}

int unix_listen(const char *path)
{
  char tmp[sizeof ((struct sockaddr_un *)0)->sun_path + 16];
  snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
  struct sockaddr_un sa;
  if (fill_addr(&sa, tmp) == -1)
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  unlink(tmp);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 || listen(fd, 64) == -1 || rename(tmp, path) == -1) {
    int e = errno;
    unlink(tmp);
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int unix_connect(const char *path, bool nonblocking)
{
  struct sockaddr_un sa;
  if (fill_addr(&sa, path) == -1)
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (nonblocking)
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}
