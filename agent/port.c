/* Finding and opening the virtio-serial port the host talks to. Its device
 * node depends on the transport (/dev/vport0p1 on pci and ccw, /dev/vport1p1
 * on virtio-mmio), so it is found by name in /sys/class/virtio-ports. The port
 * appears asynchronously after virtio_console loads, hence the polling. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

#define PORTS_DIR "/sys/class/virtio-ports"

/* The name of the port's device node ("vport0p1") into dev, or false. */
static bool find_port(char *dev, size_t cap)
{
  DIR *d = opendir(PORTS_DIR);
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, PORTS_DIR "/%s/name", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
      continue; /* the name attribute appears once the host named the port */
    char name[64];
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    if (n <= 0)
      continue;
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
    if (strcmp(name, WIRE_PORT_NAME) == 0 && strlen(e->d_name) < cap) {
      strcpy(dev, e->d_name);
      found = true;
    }
  }
  closedir(d);
  return found;
}

int port_open(int timeout_ms)
{
  long long deadline = now_ms() + timeout_ms;
  char dev[NAME_MAX + 1];
  int last_err = ENOENT;
  for (;;) {
    if (find_port(dev, sizeof dev)) {
      char path[PATH_MAX];
      snprintf(path, sizeof path, "/dev/%s", dev);
      int fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      if (fd >= 0)
        return fd;
      last_err = errno;
    }
    if (now_ms() >= deadline)
      break;
    struct timespec step = { 0, 25 * 1000 * 1000 };
    nanosleep(&step, NULL);
  }
  errno = last_err;
  return -1;
}

bool port_host_connected(int fd)
{
  /* virtio_console reports POLLHUP for as long as the host end is closed
   * (and read() returns 0 then); POLLOUT once it is open and has room. */
  struct pollfd p = { .fd = fd, .events = POLLOUT };
  if (poll(&p, 1, 0) == -1)
    return false;
  return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}
