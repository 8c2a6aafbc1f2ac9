#include "rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fail.h"
#include "paths.h"

/* The base directory, open once: the guests' directories are made and
 * checked through it, not through a path that could be swapped between the
 * check and the use. */
static int base_fd = -1;

/* Check the directory FD (PATH, for messages) is ours, and nobody else's to
 * enter: its owner and mode are read from the fd, and fixed through it. */
static void check_private(int fd, const char *path)
{
  struct stat st;
  if (fstat(fd, &st) == -1)
    fail(EXIT_TOOL_FAILED, "cannot use runtime directory %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid())
    fail(EXIT_TOOL_FAILED, "runtime directory %s is not a directory owned by you; remove it or set XDG_RUNTIME_DIR",
         path);
  if ((st.st_mode & 077) != 0 && fchmod(fd, 0700) == -1)
    fail(EXIT_TOOL_FAILED, "cannot make %s private: %s; remove it", path, strerror(errno));
}

/* NAME in the directory AT (-1: PATH itself), made if missing, opened without
 * following a symlink, checked; PATH names it in messages. The same directory
 * is still at PATH (the paths of sockets and files go through it). */
static int open_private(int at, const char *name, const char *path)
{
  if ((at == -1 ? mkdir(path, 0700) : mkdirat(at, name, 0700)) == -1 && errno != EEXIST)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; set XDG_RUNTIME_DIR", path, strerror(errno));
  int fd = at == -1 ? open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    : openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -1)
    fail(EXIT_TOOL_FAILED, "runtime directory %s is not a directory owned by you (%s); remove it or set "
         "XDG_RUNTIME_DIR", path, strerror(errno));
  check_private(fd, path);
  struct stat a, b;
  if (fstat(fd, &a) == -1 || lstat(path, &b) == -1 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    fail(EXIT_TOOL_FAILED, "runtime directory %s changed while vmexec checked it; remove it or set XDG_RUNTIME_DIR",
         path);
  return fd;
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
  base_fd = open_private(-1, NULL, base);
  return base;
}

void rundir_guest(const char *name, char *dir)
{
  if (snprintf(dir, PATH_MAX, "%s/%s", rundir_base(), name) >= PATH_MAX)
    fail(EXIT_TOOL_FAILED, "runtime directory path too long; set XDG_RUNTIME_DIR to a shorter path");
  close(open_private(base_fd, name, dir));
}

void rundir_file(const char *dir, const char *file, int is_socket, char *out)
{
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
  size_t limit = is_socket ? sizeof(((struct sockaddr_un *)0)->sun_path) : PATH_MAX;
  if (n < 0 || (size_t)n >= limit)
    fail(EXIT_TOOL_FAILED, "socket path %s/%s is too long; set XDG_RUNTIME_DIR to a shorter path", dir, file);
}
