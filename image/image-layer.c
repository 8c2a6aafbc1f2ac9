#include "image-layer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "subprocess.h"
#include "util.h"
#include "fsutil.h"
#include "paths.h"

/* Sparse: only what the guest writes takes space on the host. */
#define LAYER_SIZE "64G"

static const char *layers_dir(void)
{
  static char *dir;
  if (!dir)
    dir = cache_subdir("layers");
  return dir;
}

/* A layer belongs to the image it was written over: KEY is that image's. */
static void layer_path(const char *target, const char *key, char *layer)
{
  if (snprintf(layer, PATH_MAX, "%s/%s-%s.img", layers_dir(), target, key) >= PATH_MAX)
    fail(EXIT_TOOL_FAILED, "cache directory path is too long; set XDG_CACHE_HOME to a shorter path");
}

int image_layer_remove(const char *target, const char *key)
{
  char layer[PATH_MAX];
  layer_path(target, key, layer);
  if (unlink(layer) == 0)
    return 1;
  return errno == ENOENT ? 0 : -1;
}

void image_layer(const struct target *t, const char *full_dir, char *layer)
{
  const char *key = strrchr(full_dir, '/');
  layer_path(t->name, key ? key + 1 : full_dir, layer);
  if (access(layer, F_OK) == 0)
    return;
  /* Made aside and renamed: a layer is either whole or absent. With a
   * journal, unlike the root image: a guest stopped mid-write must not lose
   * the layer. */
  CLEANUP_FREE char *tmp = xasprintf("%s.tmp%d", layer, (int)getpid());
  /* Lazy inode tables and journal: nothing is zeroed now (a 64 GiB file
   * takes a few MiB), and the guest mounts with noinit_itable. */
  char *argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-L", "vmexec-layer", "-E", "lazy_itable_init=1,lazy_journal_init=1",
                   tmp, LAYER_SIZE, NULL };
  char line[512];
  int st = run_checked(argv, line, sizeof line);
  if (st != 0) {
    unlink(tmp);
    fail(EXIT_TOOL_FAILED, "[%s] cannot make the persistent layer %s: %s; %s", t->name, layer, line,
         st == -1 ? "install e2fsprogs" : "check the free space");
  }
  if (rename(tmp, layer) == -1) {
    unlink(tmp);
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the permissions of %s", layer, strerror(errno), layers_dir());
  }
}
