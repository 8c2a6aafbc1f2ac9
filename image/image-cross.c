/* The user space of targets whose libraries come from Debian's -cross
 * packages (cross_userland in targets.def): architecture "all" packages that
 * put the target's libraries under usr/TRIPLET/, moved to where the
 * target's programs look for them. */
#include "image-cross.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fail.h"
#include "fsutil.h"
#include "util.h"

void cross_packages(const struct target *t, struct strv *pkgs)
{
  /* No busybox: Debian builds none for these architectures. The names
   * differ per architecture (libc6.1 on alpha, libgcc-s2 on m68k). */
  for (const char *p = t->cross_libs; *p; p += strspn(p, " ")) {
    size_t n = strcspn(p, " ");
    if (n)
      strv_pushf(pkgs, "%.*s-%s-cross", (int)n, p, t->debian_arch);
    p += n;
  }
}

/* ROOT/usr/TRIPLET/lib* -> ROOT/lib*: PT_INTERP names /lib/ld.so.1 (or
 * /lib64/ld64.so.1, a relative link into lib), and ld.so searches /lib. */
void cross_relocate(const struct target *t, const char *root)
{
  CLEANUP_FREE char *from = xasprintf("%s/usr/%s", root, t->triplet);
  DIR *d = opendir(from);
  if (!d)
    fail(EXIT_TOOL_FAILED, "[%s] the -cross packages have no usr/%s; check libc6-%s-cross", t->name, t->triplet,
         t->debian_arch);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "lib", 3) != 0)
      continue;
    CLEANUP_FREE char *src = xasprintf("%s/%s", from, e->d_name);
    CLEANUP_FREE char *dst = xasprintf("%s/%s", root, e->d_name);
    if (rename(src, dst) == -1)
      fail(EXIT_TOOL_FAILED, "[%s] cannot move %s to %s: %s", t->name, src, dst, strerror(errno));
  }
  closedir(d);
  remove_tree(from);
}
