/* Debugging tools of a target that the image does not carry: gdbserver for
 * vmexec --gdbserver, and the guest's own libraries for the host's gdb.
 * Fetched from Debian with the image builder's private apt state (no root,
 * the host's apt and dpkg untouched) and extracted into
 * cache_dir()/tools/TARGET-FILE, FILE being the gdbserver package's file name
 * (a new version gets a new directory), with the link tools/TARGET-gdbserver
 * naming the current one: a call finds it without running apt.
 *
 * The guest sees that directory read-only at its host path, like the cross
 * sysroot, so the image stays as it is; gdbserver's libraries (libc,
 * libstdc++, libgcc_s, libthread_db) are in every image already.
 *
 * DIR/sysroot holds the libraries of gdbserver's dependency closure (libc6,
 * libgcc-s1, libstdc++6: the versions the image has, from the same apt
 * state), which gdb reads as its sysroot: the cross sysroot /usr/TRIPLET is
 * another build of libc, at other offsets. The dynamic loader is left out:
 * gdb then finds the libraries at each stop instead of through a breakpoint
 * on the loader's _dl_debug_state, a branch that qemu-system-s390x 7.2 (TCG)
 * single-steps wrongly, so stepping over it crashed every program. */
#include "image-tools.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "fsutil.h"
#include "image-apt.h"
#include "paths.h"
#include "subprocess.h"
#include "util.h"

/* The packages whose files the tools directory holds. */
static const char *const tool_packages[] = {"gdbserver", "libc6", "libgcc-s1", "libstdc++6"};

static bool has_gdbserver(const char *dir)
{
  CLEANUP_FREE char *bin = xasprintf("%s/usr/bin/gdbserver", dir);
  return access(bin, X_OK) == 0;
}

static void extract(const struct target *t, const char *deb, const char *dest)
{
  char *argv[] = {"dpkg-deb", "-x", (char *)deb, (char *)dest, NULL};
  char why[512];
  int st = run_checked(argv, why, sizeof why);
  if (st != 0)
    fail(EXIT_TOOL_FAILED, "[%s] cannot extract %s: %s; %s", t->name, deb, why,
         st == -1 ? "install dpkg" : "remove the file and try again");
}

/* Remove the dynamic loader (T's PT_INTERP and the file it links to) from SYSROOT. */
static void drop_loader(const struct target *t, const char *sysroot)
{
  CLEANUP_FREE char *interp = xasprintf("%s%s", sysroot, t->interp);
  char real[PATH_MAX];
  if (realpath(interp, real) && strncmp(real, sysroot, strlen(sysroot)) == 0)
    unlink(real);
  unlink(interp);
}

/* Extract the packages of R that TOOL_PACKAGES names into a new directory
 * under TOOLS named after gdbserver's file; returns it. */
static char *extract_tools(const struct target *t, const struct apt_resolution *r, const char *debs,
                           const char *tools)
{
  const struct deb *server = NULL;
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->debs[i].name, "gdbserver") == 0)
      server = &r->debs[i];
  const char *file = server->file;
  char *dir = xasprintf("%s/%s-%.*s", tools, t->name, (int)(strlen(file) - strlen(".deb")), file);
  if (has_gdbserver(dir))
    return dir;
  CLEANUP_FREE char *tmp = xasprintf("%s.tmp-%ld", dir, (long)getpid());
  CLEANUP_FREE char *sysroot = xasprintf("%s/sysroot", tmp);
  remove_tree(tmp);
  if (mkdir_p(sysroot, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s", sysroot, strerror(errno));
  for (size_t i = 0; i < r->n; i++) {
    CLEANUP_FREE char *deb = xasprintf("%s/%s", debs, r->debs[i].file);
    extract(t, deb, &r->debs[i] == server ? tmp : sysroot);
  }
  drop_loader(t, sysroot);
  if (rename(tmp, dir) == -1 && !has_gdbserver(dir)) /* another call may have won */
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s", dir, strerror(errno));
  remove_tree(tmp);
  return dir;
}

/* Download gdbserver:ARCH and the libraries of its closure; extract them. */
static char *fetch_gdbserver(const struct target *t, const char *tools)
{
  struct apt a;
  apt_open(&a, t, true);
  struct strv pkgs = {0};
  strv_push(&pkgs, "gdbserver");
  struct apt_resolution r;
  apt_resolve(&a, NULL, &pkgs, &r);
  strv_free(&pkgs);
  struct deb wanted[sizeof tool_packages / sizeof tool_packages[0]];
  struct apt_resolution some = {.debs = wanted};
  bool server = false;
  for (size_t i = 0; i < r.n; i++)
    for (size_t j = 0; j < sizeof tool_packages / sizeof tool_packages[0]; j++)
      if (strcmp(r.debs[i].name, tool_packages[j]) == 0) {
        wanted[some.n++] = r.debs[i];
        server |= j == 0;
      }
  if (!server)
    fail(EXIT_TOOL_FAILED, "[%s] Debian has no gdbserver:%s in the configured sources; add the Debian archive "
         "of %s to the host's apt sources", t->name, t->debian_arch, t->debian_arch);
  CLEANUP_FREE char *debs = xasprintf("%s/debs", cache_dir());
  if (mkdir_p(debs, 0700) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s", debs, strerror(errno));
  fprintf(stderr, "vmexec: fetching gdbserver:%s from Debian\n", t->debian_arch);
  apt_download(&a, &some, debs, NULL, NULL);
  apt_close(&a);
  char *dir = extract_tools(t, &some, debs, tools);
  apt_resolution_free(&r);
  return dir;
}

char *image_gdbserver_dir(const struct target *t)
{
  CLEANUP_FREE char *tools = xasprintf("%s/tools", cache_dir());
  if (mkdir_p(tools, 0700) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; set XDG_CACHE_HOME to a writable directory", tools,
         strerror(errno));
  CLEANUP_FREE char *link = xasprintf("%s/%s-gdbserver", tools, t->name);
  char *dir = realpath(link, NULL);
  if (dir && has_gdbserver(dir))
    return dir;
  free(dir);
  dir = fetch_gdbserver(t, tools);
  /* Point the link at it atomically: a parallel call sees the old or the new one. */
  CLEANUP_FREE char *tmp_link = xasprintf("%s.tmp-%ld", link, (long)getpid());
  unlink(tmp_link);
  if (symlink(dir, tmp_link) == -1 || rename(tmp_link, link) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s", link, strerror(errno));
  return dir;
}
