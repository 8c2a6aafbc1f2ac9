#include "rundir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fail.h"
#include "paths.h"

/* A directory we may trust with our sockets: ours, and nobody else's to enter. */
static void check_private(const char *dir)
{
  struct stat st;
  if (lstat(dir, &st) == -1)
    fail(EXIT_TOOL_FAILED, "cannot use runtime directory %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
    fail(EXIT_TOOL_FAILED, "runtime directory %s is not a directory owned by you; remove it or set XDG_RUNTIME_DIR",
         dir);
  if ((st.st_mode & 077) != 0 && chmod(dir, 0700) == -1)
    fail(EXIT_TOOL_FAILED, "cannot make %s private: %s; remove it", dir, strerror(errno));
}

const char *rundir_base(void)
{
  static char base[PATH_MAX];
  if (base[0])
    return base;
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  struct stat st;
  if (xdg && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) && access(xdg, W_OK) == 0)
    snprintf(base, sizeof base, "%s/vmexec", xdg);
  else
    snprintf(base, sizeof base, "/tmp/vmexec-%u", (unsigned)getuid());
  if (mkdir(base, 0700) == -1 && errno != EEXIST)
    fail(EXIT_TOOL_FAILED, "cannot create runtime directory %s: %s; set XDG_RUNTIME_DIR", base, strerror(errno));
  check_private(base);
  return base;
}

void rundir_guest(const char *name, char *dir)
{
  if (snprintf(dir, PATH_MAX, "%s/%s", rundir_base(), name) >= PATH_MAX)
    fail(EXIT_TOOL_FAILED, "runtime directory path too long; set XDG_RUNTIME_DIR to a shorter path");
  if (mkdir(dir, 0700) == -1 && errno != EEXIST)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s", dir, strerror(errno));
  check_private(dir);
}

void rundir_file(const char *dir, const char *file, int is_socket, char *out)
{
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
  size_t limit = is_socket ? sizeof(((struct sockaddr_un *)0)->sun_path) : PATH_MAX;
  if (n < 0 || (size_t)n >= limit)
    fail(EXIT_TOOL_FAILED, "socket path %s/%s is too long; set XDG_RUNTIME_DIR to a shorter path", dir, file);
}
