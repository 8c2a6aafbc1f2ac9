/* The files a supervisor was started from, and whether they were replaced
 * since: a rebuild relinks vmexec and the agent to new files, an upgrade
 * renames new ones over them; either gives the path a new inode or time. */
#include "replaced.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"
#include "util.h"

static void note(struct started_from *w, char *path)
{
  if (!path || w->n == REPLACED_MAX_FILES) {
    free(path);
    return;
  }
  struct stat st;
  w->file[w->n].path = path;
  w->file[w->n].present = stat(path, &st) == 0;
  if (w->file[w->n].present) {
    w->file[w->n].dev = st.st_dev;
    w->file[w->n].ino = st.st_ino;
    w->file[w->n].size = st.st_size;
    w->file[w->n].mtime = st.st_mtim;
  }
  w->n++;
}

void started_from_note(struct started_from *w, const struct target *t)
{
  memset(w, 0, sizeof *w);
  /* This executable (vmexec-tools) and the light vmexec beside it, which
   * talks to us on warm calls. */
  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    note(w, xstrdup(self));
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      note(w, xasprintf("%s/vmexec", self));
    }
  }
  note(w, agent_path(t));
  note(w, share_plugin_path());
  if (t->kernel_arch) { /* a kernel built from source: common.EXT and NAME.EXT (image-kernel.c) */
    const char *owners[] = { "common", t->name }, *exts[] = { "config", "patch" };
    for (size_t i = 0; i < 4; i++) {
      char *name = xasprintf("%s.%s", owners[i / 2], exts[i % 2]);
      note(w, kernel_config_path(name));
      free(name);
    }
  }
}

const char *started_from_replaced(const struct started_from *w)
{
  for (size_t i = 0; i < w->n; i++) {
    struct stat st;
    bool present = stat(w->file[i].path, &st) == 0;
    if (present != w->file[i].present)
      return w->file[i].path;
    if (present && (st.st_dev != w->file[i].dev || st.st_ino != w->file[i].ino || st.st_size != w->file[i].size ||
                    st.st_mtim.tv_sec != w->file[i].mtime.tv_sec || st.st_mtim.tv_nsec != w->file[i].mtime.tv_nsec))
      return w->file[i].path;
  }
  return NULL;
}
