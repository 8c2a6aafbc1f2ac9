#include "host-files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire-msg.h"

/* What glibc reads by name for users and groups, host and service names,
 * the resolver and the local time zone. */
static const char *const files[] = {
  "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf", "/etc/resolv.conf",
  "/etc/services", "/etc/protocols", "/etc/networks", "/etc/shells", "/etc/localtime", "/etc/timezone",
};

/* /etc/hostname with the host's name as it is now (uname's, which the
 * file may not say in a container), which also names the guest, so that
 * the host's /etc/hosts resolves it as natively. */
static void send_hostname(uint8_t *buf, void (*queue)(void *arg, uint16_t type, const uint8_t *p, size_t n), void *arg)
{
  struct wire_host_file m = { .mode = 0644, .path = "/etc/hostname" };
  char name[HOST_NAME_MAX + 2];
  size_t len;
  if (gethostname(name, sizeof name - 1) == -1 || !wire_encode_host_file(&m, buf, WIRE_MAX_PAYLOAD, &len))
    return;
  name[sizeof name - 2] = '\0';
  size_t n = strlen(name);
  name[n++] = '\n';
  memcpy(buf + len, name, n);
  queue(arg, WIRE_HOST_FILE, buf, len + n);
}

void host_files_send(void (*queue)(void *arg, uint16_t type, const uint8_t *p, size_t n), void *arg)
{
  uint8_t *buf = malloc(WIRE_MAX_PAYLOAD);
  if (!buf)
    return;
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    /* Followed if a symlink (/etc/localtime, a systemd-resolved resolv.conf): the guest gets the bytes. */
    int fd = open(files[i], O_RDONLY | O_CLOEXEC);
    struct stat st;
    struct wire_host_file m = { 0 };
    size_t len;
    if (fd < 0)
      continue;
    snprintf(m.path, sizeof m.path, "%s", files[i]);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (m.mode = st.st_mode & 0777, true) &&
        wire_encode_host_file(&m, buf, WIRE_MAX_PAYLOAD, &len) && (uint64_t)st.st_size <= WIRE_MAX_PAYLOAD - len) {
      ssize_t got = read(fd, buf + len, (size_t)st.st_size);
      if (got == st.st_size)
        queue(arg, WIRE_HOST_FILE, buf, len + (size_t)got);
    }
    close(fd);
  }
  send_hostname(buf, queue, arg);
  free(buf);
}
