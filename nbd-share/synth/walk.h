/* Walk a host directory tree for the scanner and the fingerprint: all entries
 * of a directory are visited (with their lstat) before any subdirectory is
 * entered, so a visitor can store each directory's entries contiguously.
 * Directories are opened relative to their parent (one descriptor per level),
 * so trees deeper than PATH_MAX are walked too. Unreadable or vanished
 * entries are logged and left out; they never fail the walk. */
#ifndef NBD_SHARE_WALK_H
#define NBD_SHARE_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "synth-log.h"

struct walk_entry {
  const char *name;     /* not NUL-terminated in general: use namelen */
  size_t namelen;
  const struct stat *st;
  int dirfd;            /* the directory holding the entry ... */
  const char *at;       /* ... and the entry's name in it (for openat, readlinkat) */
  const char *path;     /* absolute host path of the entry, NUL-terminated */
  size_t pathlen;
};

/* Called once per entry of directory PARENT (the token its own visit
 * returned). For a directory, set *descend to the token under which its
 * entries are to be visited, or leave it at WALK_NO_DESCEND. Return 0, or -1
 * to stop the walk (out of memory). */
#define WALK_NO_DESCEND UINT64_MAX
typedef int (*walk_visit_fn)(void *ctx, uint64_t parent, const struct walk_entry *e, uint64_t *descend);

/* Walk the directory at absolute PATH, visiting its entries under TOKEN.
 * 0, or -1 if a visit failed. */
int walk_tree(const char *path, uint64_t token, walk_visit_fn visit, void *ctx,
              synth_log_fn log, void *log_opaque);

#endif
