/* The host's files that the C library reads by name (WIRE_HOST_FILE,
 * supervisor/host-files.c): a minimal image has no /etc/passwd, hosts,
 * services, resolv.conf or localtime of its own, so getpwuid, getaddrinfo
 * ("localhost"), getservbyname and localtime failed or differed where
 * under qemu-user they read the host's. Each goes to its path in the
 * agent's root, which the runs see, unless the image has a file there
 * (one this agent did not write). A full image is a Debian system with its
 * own: nothing is written. /etc/hostname also sets the guest's name. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fsutil.h"
#include "wire-msg.h"

#define MAX_WRITTEN 32
static char written[MAX_WRITTEN][64]; /* paths this agent wrote: replaced when sent again */
static size_t nwritten;

static bool wrote(const char *path)
{
  for (size_t i = 0; i < nwritten; i++)
    if (!strcmp(written[i], path))
      return true;
  return false;
}

static void set_hostname(const uint8_t *p, size_t n)
{
  size_t len = 0;
  while (len < n && len < 64 && p[len] != '\n' && p[len] != '\0')
    len++;
  if (len > 0 && sethostname((const char *)p, len) == -1)
    agent_log("cannot set the host name: %s", strerror(errno));
}

void host_file_receive(const uint8_t *p, size_t n)
{
  static struct wire_host_file m;
  const uint8_t *data;
  size_t len;
  struct stat st;
  if (!wire_decode_host_file(p, n, &m, &data, &len) || strncmp(m.path, "/etc/", 5) != 0 || strstr(m.path, "..") ||
      strlen(m.path) >= sizeof written[0] || root_present())
    return;
  if (lstat(m.path, &st) == 0 && !wrote(m.path))
    return; /* the image's own */
  char tmp[sizeof written[0] + 8];
  snprintf(tmp, sizeof tmp, "%s.new", m.path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, m.mode & 0777);
  bool ok = fd >= 0 && write_all(fd, data, len) == 0;
  if (fd >= 0 && close(fd) == -1)
    ok = false;
  if (!ok || chmod(tmp, m.mode & 0777) == -1 || rename(tmp, m.path) == -1) {
    agent_log("cannot write the host's %s: %s", m.path, strerror(errno));
    unlink(tmp);
    return;
  }
  if (!wrote(m.path) && nwritten < MAX_WRITTEN)
    snprintf(written[nwritten++], sizeof written[0], "%s", m.path);
  if (!strcmp(m.path, "/etc/hostname"))
    set_hostname(data, len);
}
