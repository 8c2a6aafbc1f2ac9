/* inotify watches on every directory of the shared trees: one per directory,
 * set once per generation, so that a call that finds nothing changed costs
 * one read() instead of an lstat() of every file (the fingerprint). A
 * directory watch reports changes to the entries in it and to their contents
 * (written, truncated, chmod, created, deleted, renamed). Writes through a
 * shared mmap raise no event; the share reads file data when the guest reads
 * it, so the guest sees those bytes anyway (only sizes are fixed per
 * generation). */
#include "share-watch.h"

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define EVENTS                                                                                               \
  (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |           \
   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)

struct share_watch {
  int fd;
  bool changed;
};

/* nftw has no user pointer: the watch being set up, and the directory to
 * leave out. */
static struct share_watch *walking;
static const char *skipping;

static int add_dir(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if (type != FTW_D)
    return FTW_CONTINUE;
  size_t n = strlen(skipping);
  if (n > 0 && strncmp(path, skipping, n) == 0 && (path[n] == '/' || path[n] == '\0'))
    return FTW_SKIP_SUBTREE;
  if (inotify_add_watch(walking->fd, path, EVENTS) == -1 && errno != ENOENT && errno != EACCES)
    return FTW_STOP;
  return FTW_CONTINUE;
}

struct share_watch *share_watch_start(char *const *roots, size_t nroots, const char *skip)
{
  struct share_watch *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd == -1) {
    free(w);
    return NULL;
  }
  walking = w;
  skipping = skip ? skip : "";
  for (size_t i = 0; i < nroots; i++)
    if (nftw(roots[i], add_dir, 64, FTW_PHYS | FTW_ACTIONRETVAL) != 0 && errno != ENOENT) {
      share_watch_stop(w); /* e.g. ENOSPC: more directories than watches */
      return NULL;
    }
  return w;
}

bool share_watch_changed(struct share_watch *w)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t n;
  while ((n = read(w->fd, buf, sizeof buf)) > 0)
    w->changed = true; /* any event, IN_Q_OVERFLOW included */
  return w->changed;
}

void share_watch_stop(struct share_watch *w)
{
  if (!w)
    return;
  close(w->fd);
  free(w);
}
