/* The loopback interface, up at boot as any init brings it up: programs
 * under test bind and connect to 127.0.0.1 and ::1 (servers and clients in
 * one test, gnulib's select and pselect tests), which qemu-user gives them
 * through the host's. The guest has no other interface (-nic none). */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

void loopback_up(void)
{
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || ioctl(fd, SIOCGIFFLAGS, &ifr) == -1 ||
      (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) == -1))
    agent_log("cannot bring the loopback interface up: %s", strerror(errno));
  if (fd >= 0)
    close(fd);
}
