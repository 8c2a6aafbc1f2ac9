/* Scan host trees into the tree model (see tree.h): the roots' parent
 * directories are synthesised (root:root 0755), each root is walked, hard
 * links are folded into one node, sparse files get their data chunks found
 * with SEEK_DATA/SEEK_HOLE. Sockets, fifos and devices are left out with a
 * log line: a share of build trees has no use for them and the guest would
 * get its own devices' semantics anyway. */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grow.h"
#include "roots.h"
#include "walk.h"

/* A sparse file gets at most this many chunks: the chunk grows with the file
 * so that its index (8 bytes a chunk, in memory) stays small, at the price of
 * mapping some zeroes around the data. */
#define MAX_CHUNKS 2048

/* reserve_X(t, need): room for NEED elements in array X, or false. */
#define DEFINE_RESERVE(fname, arr, cap)                               \
  static bool fname(struct tree *t, size_t need)                      \
  {                                                                   \
    void *p = grow(t->arr, &t->cap, need, sizeof *t->arr, 64);        \
    if (p)                                                            \
      t->arr = p;                                                     \
    return p != NULL;                                                 \
  }
DEFINE_RESERVE(reserve_names, names, names_cap)
DEFINE_RESERVE(reserve_nodes, nodes, capnodes)
DEFINE_RESERVE(reserve_dents, dents, capdents)
DEFINE_RESERVE(reserve_runs, runs, capruns)

static int64_t add_name(struct tree *t, const char *s, size_t len)
{
  if (!reserve_names(t, t->names_len + len))
    return -1;
  memcpy(t->names + t->names_len, s, len);
  t->names_len += len;
  return (int64_t)(t->names_len - len);
}

static int64_t new_node(struct tree *t, uint32_t mode, uint32_t uid, uint32_t gid,
                        int64_t mtime, uint32_t nsec)
{
  if (t->nnodes >= TREE_NONE - 1 || !reserve_nodes(t, t->nnodes + 1))
    return -1;
  t->nodes[t->nnodes] = (struct tnode){
    .mode = mode, .uid = uid, .gid = gid, .nlink = 1,
    .mtime = mtime, .mtime_nsec = nsec,
    .parent = TREE_NONE, .first_dent = 0, .file = TREE_NONE, .nid = UINT64_MAX,
  };
  return (int64_t)t->nnodes++;
}

static int64_t node_from_stat(struct tree *t, const struct stat *st)
{
  return new_node(t, st->st_mode, st->st_uid, st->st_gid, st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec);
}

/* Name NAME in directory DIR for NODE. The walker visits a directory's
 * entries in one go, so they land contiguously. */
static int add_dent(struct tree *t, uint32_t dir, const char *name, size_t len, uint32_t node)
{
  if (t->ndents >= TREE_NONE - 1 || !reserve_dents(t, t->ndents + 1))
    return -1;
  int64_t off = add_name(t, name, len);
  if (off < 0)
    return -1;
  struct tnode *d = &t->nodes[dir];
  if (d->ndents == 0)
    d->first_dent = (uint32_t)t->ndents;
  d->ndents++;
  t->dents[t->ndents++] = (struct tdent){ .name = (uint64_t)off, .node = node, .namelen = (uint16_t)len };
  return 0;
}

/* ---- hard links ---- */

static size_t link_hash(uint64_t dev, uint64_t ino, size_t mask)
{
  uint64_t h = (dev * 0x9E3779B97F4A7C15u) ^ (ino * 0xC2B2AE3D27D4EB4Fu);
  return (size_t)(h ^ (h >> 29)) & mask;
}

static uint32_t link_find(const struct tree *t, uint64_t dev, uint64_t ino)
{
  if (!t->caplinks)
    return TREE_NONE;
  for (size_t i = link_hash(dev, ino, t->caplinks - 1);; i = (i + 1) & (t->caplinks - 1)) {
    if (t->links[i].node == TREE_NONE)
      return TREE_NONE;
    if (t->links[i].dev == dev && t->links[i].ino == ino)
      return t->links[i].node;
  }
}

static int link_insert(struct tree *t, uint64_t dev, uint64_t ino, uint32_t node)
{
  if ((t->nlinks + 1) * 2 > t->caplinks) {
    size_t cap = t->caplinks ? t->caplinks * 2 : 256;
    struct tlink *old = t->links;
    size_t oldcap = t->caplinks;
    t->links = malloc(cap * sizeof *t->links);
    if (!t->links) {
      t->links = old;
      return -1;
    }
    t->caplinks = cap;
    for (size_t i = 0; i < cap; i++)
      t->links[i].node = TREE_NONE;
    t->nlinks = 0;
    for (size_t i = 0; i < oldcap; i++) {
      if (old[i].node != TREE_NONE)
        link_insert(t, old[i].dev, old[i].ino, old[i].node); /* cannot grow again */
    }
    free(old);
  }
  size_t i = link_hash(dev, ino, t->caplinks - 1);
  while (t->links[i].node != TREE_NONE)
    i = (i + 1) & (t->caplinks - 1);
  t->links[i].dev = dev;
  t->links[i].ino = ino;
  t->links[i].node = node;
  t->nlinks++;
  return 0;
}

/* ---- sparse files ---- */

static int add_run(struct tree *t, struct tnode *n, uint64_t first, uint64_t last)
{
  if (n->nruns) {
    struct trun *prev = &t->runs[t->nruns - 1];
    if (first <= prev->first + prev->count) {
      if (last + 1 > prev->first + prev->count)
        prev->count = last + 1 - prev->first;
      return 0;
    }
  }
  if (!reserve_runs(t, t->nruns + 1))
    return -1;
  t->runs[t->nruns++] = (struct trun){ .first = first, .count = last - first + 1 };
  n->nruns++;
  return 0;
}

/* Make N chunk-based if the file at DIRFD/AT has holes of a chunk or more.
 * Any doubt (no SEEK_DATA support, open failure) leaves it flat: correct,
 * only bigger. */
static int find_holes(struct tree *t, uint32_t node, int dirfd, const char *at, const struct stat *st)
{
  unsigned bits = t->blkszbits;
  uint64_t size = (uint64_t)st->st_size;
  if ((uint64_t)st->st_blocks * 512 >= size || size < (2u << bits))
    return 0;
  unsigned cb = bits;
  while (((size - 1) >> cb) + 1 > MAX_CHUNKS && cb < bits + 31)
    cb++;
  int fd = openat(dirfd, at, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -1)
    return 0;

  struct tnode *n = &t->nodes[node];
  size_t runs_before = t->nruns;
  n->first_run = (uint32_t)t->nruns;
  n->nruns = 0;
  uint64_t data_chunks = 0, nchunks = ((size - 1) >> cb) + 1;
  off_t off = 0;
  int ret = 0;
  bool seekable = true;
  while ((uint64_t)off < size) {
    off_t d = lseek(fd, off, SEEK_DATA);
    if (d == -1) {
      seekable = errno == ENXIO; /* ENXIO: no data after off; else no SEEK_DATA here */
      break;
    }
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h == -1 || (uint64_t)h > size)
      h = (off_t)size;
    if ((uint64_t)d >= size || h <= d)
      break;
    if (add_run(t, n, (uint64_t)d >> cb, ((uint64_t)h - 1) >> cb) == -1) {
      ret = -1;
      break;
    }
    off = h;
  }
  close(fd);
  for (size_t i = runs_before; i < t->nruns; i++)
    data_chunks += t->runs[i].count;
  if (ret == 0 && seekable && data_chunks < nchunks) {
    n->chunkbits = (uint8_t)cb;
    t->count.chunked++;
  } else {
    t->nruns = runs_before;
    n->nruns = 0;
  }
  return ret;
}

/* ---- visiting entries ---- */

static int visit(void *ctx, uint64_t parent, const struct walk_entry *e, uint64_t *descend)
{
  struct tree *t = ctx;
  const struct stat *st = e->st;
  uint32_t dir = (uint32_t)parent;

  if (e->namelen > 255) {
    t->log(t->log_opaque, "%s: name longer than 255 bytes; left out", e->path);
    t->count.skipped++;
    return 0;
  }
  if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode)) {
    t->log(t->log_opaque, "%s: %s left out of the share", e->path,
           S_ISSOCK(st->st_mode) ? "socket" : S_ISFIFO(st->st_mode) ? "fifo" : "device");
    t->count.skipped++;
    return 0;
  }

  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
    uint32_t seen = link_find(t, st->st_dev, st->st_ino);
    if (seen != TREE_NONE) {
      t->nodes[seen].nlink++;
      t->count.hardlinks++;
      return add_dent(t, dir, e->name, e->namelen, seen);
    }
  }

  int64_t node = node_from_stat(t, st);
  if (node < 0)
    return -1;
  struct tnode *n = &t->nodes[node];
  if (S_ISDIR(st->st_mode)) {
    n->parent = dir;
    *descend = (uint64_t)node;
    t->count.dirs++;
  } else if (S_ISREG(st->st_mode)) {
    n->size = (uint64_t)st->st_size;
    if (n->size > 0) {
      int64_t id = hostfiles_add(t->files, e->path, e->pathlen, st->st_dev, st->st_ino);
      if (id < 0)
        return -1;
      n->file = (uint32_t)id;
      if (find_holes(t, (uint32_t)node, e->dirfd, e->at, st) == -1)
        return -1;
    }
    t->count.files++;
  } else {
    char buf[PATH_MAX];
    ssize_t len = readlinkat(e->dirfd, e->at, buf, sizeof buf);
    if (len < 0 || (size_t)len >= sizeof buf) {
      t->log(t->log_opaque, "%s: cannot read the symlink (%s); left out", e->path,
             len < 0 ? strerror(errno) : "target too long");
      t->nnodes--;
      t->count.skipped++;
      return 0;
    }
    int64_t off = add_name(t, buf, (size_t)len);
    if (off < 0)
      return -1;
    n = &t->nodes[node];
    n->target = (uint64_t)off;
    n->size = (uint64_t)len;
    t->count.symlinks++;
  }
  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && link_insert(t, st->st_dev, st->st_ino, (uint32_t)node) == -1)
    return -1;
  return add_dent(t, dir, e->name, e->namelen, (uint32_t)node);
}

/* ---- roots and the directories above them ---- */

/* Component DEPTH (0-based) of normalised path P. */
static const char *component(const char *p, size_t depth, size_t *len)
{
  p++;
  for (size_t i = 0; i < depth; i++)
    p = strchr(p, '/') + 1;
  *len = strcspn(p, "/");
  return p;
}

/* Visit root R as entry NAME of directory DIR: the root itself is followed
 * if it is a symlink (the caller named it as the tree it wants). */
static int visit_root(struct tree *t, uint32_t dir, const char *r, const char *name, size_t namelen,
                      uint64_t *descend, char **src_out)
{
  char *src = realpath(r, NULL);
  if (!src || strcmp(src, "/") == 0) {
    t->log(t->log_opaque, "root %s: %s; left out", r, src ? "resolves to /" : strerror(errno));
    free(src);
    return 0;
  }
  char *slash = strrchr(src, '/');
  *slash = '\0';
  int pfd = open(src == slash ? "/" : src, O_PATH | O_DIRECTORY | O_CLOEXEC);
  *slash = '/';
  struct stat st;
  if (pfd == -1 || fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) == -1) {
    t->log(t->log_opaque, "root %s: %s; left out", r, strerror(errno));
    if (pfd >= 0)
      close(pfd);
    free(src);
    return 0;
  }
  struct walk_entry e = {
    .name = name, .namelen = namelen, .st = &st, .dirfd = pfd, .at = slash + 1,
    .path = src, .pathlen = strlen(src),
  };
  int ret = visit(t, dir, &e, descend);
  close(pfd);
  *src_out = src;
  return ret;
}

/* Fill directory DIR with the next components of roots [lo, hi), which all
 * have more than DEPTH components and share the first DEPTH. */
static int skeleton(struct tree *t, char *const *roots, size_t lo, size_t hi, size_t depth, uint32_t dir)
{
  struct group { size_t lo, hi; uint64_t token; char *src; } *g = calloc(hi - lo, sizeof *g);
  if (!g)
    return -1;
  size_t ng = 0;
  int ret = 0;

  for (size_t i = lo; i < hi && ret == 0;) {
    size_t len, len2;
    const char *c = component(roots[i], depth, &len);
    size_t j = i + 1;
    while (j < hi && (component(roots[j], depth, &len2), len2 == len) &&
           memcmp(component(roots[j], depth, &len2), c, len) == 0)
      j++;
    struct group *gr = &g[ng++];
    *gr = (struct group){ .lo = i, .hi = j, .token = WALK_NO_DESCEND };
    if (roots_depth(roots[i]) == depth + 1) {
      /* the root itself (nested roots are gone, so it is alone) */
      ret = visit_root(t, dir, roots[i], c, len, &gr->token, &gr->src);
    } else {
      int64_t node = new_node(t, S_IFDIR | 0755, 0, 0, t->now, t->now_nsec);
      if (node < 0 || add_dent(t, dir, c, len, (uint32_t)node) == -1) {
        ret = -1;
        break;
      }
      t->nodes[node].parent = dir;
      gr->token = (uint64_t)node;
      t->count.synthesised++;
    }
    i = j;
  }

  for (size_t k = 0; k < ng && ret == 0; k++) {
    if (g[k].token == WALK_NO_DESCEND)
      continue;
    if (g[k].src)
      ret = walk_tree(g[k].src, g[k].token, visit, t, t->log, t->log_opaque);
    else
      ret = skeleton(t, roots, g[k].lo, g[k].hi, depth + 1, (uint32_t)g[k].token);
  }
  for (size_t k = 0; k < ng; k++)
    free(g[k].src);
  free(g);
  return ret;
}

int tree_scan(struct tree *t, char *const *roots, size_t nroots, char *err, size_t errlen)
{
  int64_t root = new_node(t, S_IFDIR | 0755, 0, 0, t->now, t->now_nsec);
  if (root < 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  t->nodes[root].parent = (uint32_t)root;
  if (nroots && skeleton(t, roots, 0, nroots, 0, (uint32_t)root) == -1) {
    snprintf(err, errlen, "out of memory (or more than 2^32 entries) scanning the roots");
    return -1;
  }
  return 0;
}

void tree_free(struct tree *t)
{
  free(t->nodes);
  free(t->dents);
  free(t->runs);
  free(t->names);
  free(t->links);
}
