/* Tree walker: see walk.h. */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grow.h"

struct walker {
  walk_visit_fn visit;
  void *ctx;
  synth_log_fn log;
  void *log_opaque;
  char *path;       /* path of the directory being walked, grown as needed */
  size_t pathcap;
};

static int path_reserve(struct walker *w, size_t need)
{
  char *p = grow(w->path, &w->pathcap, need, 1, 4096);
  if (!p)
    return -1;
  w->path = p;
  return 0;
}

/* Make w->path the path of entry N (L bytes) of the directory at
 * w->path[0, pathlen). 0, or -1 if memory ran out. */
static int path_child(struct walker *w, size_t pathlen, const char *n, size_t l)
{
  if (path_reserve(w, pathlen + l + 2) == -1)
    return -1;
  w->path[pathlen] = '/';
  memcpy(w->path + pathlen + 1, n, l + 1);
  return 0;
}

/* Read the names of D but "." and "..", NUL-separated, into *NAMES (*NLEN
 * bytes). Reading them all before visiting any: visiting while reading would
 * keep the stream's buffer and position alive across the visitor's work.
 * 0, or -1 if memory ran out. */
static int read_names(struct walker *w, DIR *d, size_t pathlen, char **names, size_t *nlen)
{
  size_t ncap = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de)
      break;
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
      continue;
    size_t l = strlen(n) + 1;
    char *p = grow(*names, &ncap, *nlen + l, 1, 4096);
    if (!p)
      return -1;
    *names = p;
    memcpy(*names + *nlen, n, l);
    *nlen += l;
  }
  if (errno && w->log)
    w->log(w->log_opaque, "%.*s: reading the directory failed (%s); entries may be missing",
           (int)pathlen, w->path, strerror(errno));
  return 0;
}

/* One subdirectory to enter after the whole directory is visited. */
struct pending {
  size_t name_off, namelen;
  uint64_t token;
};

/* Walk directory DFD (owned: closed here) whose path is w->path[0, pathlen). */
static int walk_dir(struct walker *w, int dfd, size_t pathlen, uint64_t token)
{
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return 0;
  }
  char *names = NULL;   /* the entries' names, NUL-separated */
  size_t nlen = 0;
  struct pending *sub = NULL;
  size_t nsub = 0, capsub = 0;
  int ret = read_names(w, d, pathlen, &names, &nlen);
  if (ret == -1)
    goto out;

  for (size_t off = 0; off < nlen;) {
    const char *n = names + off;
    size_t l = strlen(n);
    off += l + 1;
    struct stat st;
    if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == -1) {
      if (w->log)
        w->log(w->log_opaque, "%.*s/%s: %s; left out", (int)pathlen, w->path, n, strerror(errno));
      continue;
    }
    if (path_child(w, pathlen, n, l) == -1) {
      ret = -1;
      goto out;
    }
    struct walk_entry e = {
      .name = n, .namelen = l, .st = &st, .dirfd = dirfd(d), .at = n,
      .path = w->path, .pathlen = pathlen + 1 + l,
    };
    uint64_t descend = WALK_NO_DESCEND;
    if (w->visit(w->ctx, token, &e, &descend) == -1) {
      ret = -1;
      goto out;
    }
    if (descend != WALK_NO_DESCEND && S_ISDIR(st.st_mode)) {
      struct pending *p = grow(sub, &capsub, nsub + 1, sizeof *p, 16);
      if (!p) {
        ret = -1;
        goto out;
      }
      sub = p;
      sub[nsub++] = (struct pending){ .name_off = (size_t)(n - names), .namelen = l, .token = descend };
    }
  }

  for (size_t i = 0; i < nsub && ret == 0; i++) {
    const char *n = names + sub[i].name_off;
    size_t l = sub[i].namelen;
    if (path_child(w, pathlen, n, l) == -1) {
      ret = -1;
      break;
    }
    int fd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1) {
      if (w->log)
        w->log(w->log_opaque, "%s: cannot open directory (%s); shown empty", w->path, strerror(errno));
      continue;
    }
    ret = walk_dir(w, fd, pathlen + 1 + l, sub[i].token);
  }

out:
  closedir(d);
  free(names);
  free(sub);
  return ret;
}

int walk_tree(const char *path, uint64_t token, walk_visit_fn visit, void *ctx,
              synth_log_fn log, void *log_opaque)
{
  struct walker w = { .visit = visit, .ctx = ctx, .log = log, .log_opaque = log_opaque };
  size_t len = strlen(path);
  if (path_reserve(&w, len + 1) == -1)
    return -1;
  memcpy(w.path, path, len + 1);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) {
    if (log)
      log(log_opaque, "%s: cannot open directory (%s); shown empty", path, strerror(errno));
    free(w.path);
    return 0;
  }
  int ret = walk_dir(&w, fd, len, token);
  free(w.path);
  return ret;
}
