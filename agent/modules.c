/* Kernel modules: the image builder lists the .ko files in load order in
 * /etc/vmexec/modules (absolute paths, one per line). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

#define MODULES_LIST "/etc/vmexec/modules"

static void load_one(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    agent_log("module %s: %s", path, strerror(errno));
    return;
  }
  long r = syscall(SYS_finit_module, fd, "", 0);
  int err = errno;
  close(fd);
  if (r == 0 || err == EEXIST)
    return;
  /* ENODEV / ENOENT: e.g. crc32c-intel on a cpu without the instruction;
   * the generic module covers it. Other errors are logged the same way: a
   * module that really matters shows up later (no port, no disk). */
  agent_log("module %s not loaded: %s", path, strerror(err));
}

void load_modules(void)
{
  FILE *f = fopen(MODULES_LIST, "re");
  if (!f) {
    if (errno != ENOENT)
      agent_log("cannot read %s: %s", MODULES_LIST, strerror(errno));
    return;
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '\0' || *p == '#')
      continue;
    load_one(p);
  }
  fclose(f);
}
