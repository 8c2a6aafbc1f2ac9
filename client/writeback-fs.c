/* The file-system steps of the write-back, none of which ever follows a
 * symlink: the guest sends physical paths (from its overlay), so a symlink on
 * the way to a path it changes can only be a trick, or the host tree changed
 * under the run; either way the change is refused. */
#include "writeback-fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int openat2_how(int at, const char *path, int flags, uint64_t resolve)
{
  struct open_how how = { .flags = (uint64_t)flags, .resolve = resolve };
  return (int)syscall(SYS_openat2, at, path, &how, sizeof how);
}

int wb_open_root(const char *path)
{
  return openat2_how(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
}

int wb_open_beneath(int at, const char *rel, int flags)
{
  return openat2_how(at, rel, flags | O_CLOEXEC,
                     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
}

/* unlinkat of REL (which may have slashes) beneath AT. */
static int unlink_beneath(int at, const char *rel, int flags)
{
  const char *slash = strrchr(rel, '/');
  if (!slash)
    return unlinkat(at, rel, flags);
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
  int fd = wb_open_beneath(at, parent, O_PATH | O_DIRECTORY);
  if (fd == -1)
    return -1;
  int rc = unlinkat(fd, slash + 1, flags);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* Remove REL, a file or an empty directory: 0 (also when it is gone), or an
 * errno (ENOTEMPTY or EEXIST: a directory with entries). */
static int remove_one(int at, const char *rel)
{
  if (unlink_beneath(at, rel, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return errno;
  if (unlink_beneath(at, rel, AT_REMOVEDIR) == 0 || errno == ENOENT)
    return 0;
  return errno;
}

int wb_chmod_dir(int at, const char *rel, unsigned mode)
{
  int fd = wb_open_beneath(at, rel, O_PATH | O_DIRECTORY);
  if (fd == -1)
    return errno;
  /* Not when it has that mode: a chmod is an attribute change for inotify
   * even then, and the share plugin would take the directory for changed
   * (a new generation for the next call, for every directory on the way
   * to a file the guest wrote). */
  struct stat st;
  int e = 0;
  if (fstat(fd, &st) == -1 || (st.st_mode & 07777) != mode) {
    /* The directory itself, through its fd (fchmod cannot take an O_PATH fd). */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    e = chmod(proc, mode) == 0 ? 0 : errno;
  }
  close(fd);
  return e;
}

/* Remove what can go in the directory REL; the first subdirectory that is
 * not empty is appended to REL (CAP bytes) and *down is set. 0 or errno. */
static int clear_level(int at, char *rel, size_t cap, bool *down)
{
  int fd = wb_open_beneath(at, rel, O_RDONLY | O_DIRECTORY);
  /* A directory the guest made unreadable or unwritable to its owner (a user
   * may do that to a tree being removed): give it back to the owner first. */
  if (fd == -1 && errno == EACCES && wb_chmod_dir(at, rel, 0700) == 0)
    fd = wb_open_beneath(at, rel, O_RDONLY | O_DIRECTORY);
  if (fd >= 0 && faccessat(fd, ".", W_OK, AT_EACCESS) != 0 && errno == EACCES)
    wb_chmod_dir(at, rel, 0700);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return e;
  }
  int err = 0;
  struct dirent *e;
  *down = false;
  while (!err && !*down && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    int r = remove_one(dirfd(d), e->d_name);
    if (r == ENOTEMPTY || r == EEXIST) {
      size_t len = strlen(rel);
      if (snprintf(rel + len, cap - len, "/%s", e->d_name) >= (int)(cap - len)) {
        rel[len] = '\0';
        err = ENAMETOOLONG;
      } else {
        *down = true;
      }
    } else {
      err = r;
    }
  }
  closedir(d);
  return err;
}

/* Depth first, by path from AT: no fd is held per level, so no depth runs
 * out of fds (EMFILE). */
int wb_remove_tree(int at, const char *name)
{
  char rel[PATH_MAX];
  if (snprintf(rel, sizeof rel, "%s", name) >= (int)sizeof rel)
    return ENAMETOOLONG;
  size_t top = strlen(rel);
  for (;;) {
    int e = remove_one(at, rel);
    if (e == 0) {
      if (strlen(rel) == top)
        return 0;
      *strrchr(rel, '/') = '\0'; /* its parent may be empty now */
      continue;
    }
    if (e != ENOTEMPTY && e != EEXIST)
      return e;
    bool down;
    if ((e = clear_level(at, rel, sizeof rel, &down)) != 0)
      return e;
    if (!down && remove_one(at, rel) != 0)
      return ENOTEMPTY; /* emptied, yet it will not go: something keeps filling it */
  }
}

void wb_temp_name(char *buf, size_t cap)
{
  static unsigned counter;
  snprintf(buf, cap, WB_TEMP_PREFIX "%d.%u", (int)getpid(), ++counter);
}

void wb_sweep_stale(int at)
{
  int fd = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid;
    unsigned n;
    char end;
    if (sscanf(e->d_name, WB_TEMP_PREFIX "%d.%u%c", &pid, &n, &end) != 2 || pid <= 0 || pid == getpid())
      continue;
    if (kill(pid, 0) == -1 && errno == ESRCH)
      wb_remove_tree(dirfd(d), e->d_name);
  }
  closedir(d);
}

int wb_replace(int at, const char *temp, const char *name)
{
  if (renameat2(at, temp, at, name, RENAME_EXCHANGE) == 0)
    return wb_remove_tree(at, temp); /* what NAME was is under TEMP now */
  if (errno == ENOENT)
    return renameat2(at, temp, at, name, RENAME_NOREPLACE) == 0 ? 0 : errno;
  if (errno != EINVAL)
    return errno;
  /* A file system without RENAME_EXCHANGE: the old one goes aside first. */
  char old[64];
  wb_temp_name(old, sizeof old);
  if (renameat(at, name, at, old) == -1 || renameat(at, temp, at, name) == -1)
    return errno;
  return wb_remove_tree(at, old);
}
