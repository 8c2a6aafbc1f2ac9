#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (w == 0)
        errno = EIO; /* a write that takes nothing would loop forever */
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int mkdir_p(const char *path, mode_t leaf_mode)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) == -1 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(buf, leaf_mode) == -1 && errno != EEXIST)
    return -1;
  return 0;
}

void clear_dir(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (!prefix || !strncmp(e->d_name, prefix, strlen(prefix)))
      unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}
