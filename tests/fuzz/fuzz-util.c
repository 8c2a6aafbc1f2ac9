/* Helpers of the fuzz targets that work on real trees. */
#include "fuzz-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

void fuzz_remove_tree(int dirfd, const char *name)
{
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
    return;
  if (!S_ISDIR(st.st_mode)) {
    unlinkat(dirfd, name, 0);
    return;
  }
  fchmodat(dirfd, name, 0700, 0);
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      fuzz_remove_tree(fd, e->d_name);
  if (d)
    closedir(d);
  unlinkat(dirfd, name, AT_REMOVEDIR);
}

void fuzz_sandbox(const char *what, char *out, size_t cap)
{
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"; /* fsync is free on tmpfs */
  char tmpl[PATH_MAX];
  snprintf(tmpl, sizeof tmpl, "%s/vmexec-fuzz-%s.XXXXXX", tmp, what);
  REQUIRE(mkdtemp(tmpl));
  char real[PATH_MAX];
  REQUIRE(realpath(tmpl, real)); /* roots have their symlinks resolved */
  REQUIRE(strlen(real) < cap);
  strcpy(out, real);
}
