/* The lazy image: see lazy.h.
 *
 * The image is a run of extents, handed out in increasing block order:
 *   block 0          the superblock, and the root inode right after it (its
 *                    nid must fit the superblock's 16 bits)
 *   inode blocks     the children of one directory, in the directory's order
 *                    (made when its entries are first read): 64 bytes each,
 *                    or with inline=true a small file's data (a symlink's
 *                    target) after its inode, within the inode's block
 *   directory blocks one directory's entries (made when its inode is)
 *   file data        one host file, read when the guest reads it
 *   symlink target   one symlink's target
 * A read finds its extent by binary search and generates the bytes; inode
 * and directory blocks are generated from the tables below each time, so a
 * block reads the same whenever it is read. One mutex guards the tables;
 * host file data is read outside it. */
#include "lazy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "erofs-format.h"
#include "grow.h"
#include "hostfiles.h"
#include "wire.h"

#define NONE UINT32_MAX
#define INODE_SIZE ((uint64_t)sizeof(struct erofs_inode_extended))
#define DIRENT_SIZE ((uint64_t)sizeof(struct erofs_dirent))
#define ROOT_POS ((uint64_t)EROFS_SUPER_OFFSET + sizeof(struct erofs_super_block))
/* With inline data: the guest's kernel reads metadata this far ahead of a
 * miss (image/kernel-configs/common.patch). After a directory's inode
 * blocks this much is left unused, so that a read ahead from them takes
 * only that directory's inodes from the host, never another file's data
 * or a directory's entries (which would place its children). */
#define RA_GAP ((uint64_t)128 << 10)
/* Sizing the inline slots costs an lstat per child when a directory is
 * placed: a bigger directory keeps 64-byte slots (2048 inodes in one read
 * ahead), so that listing a directory of a million names costs no million
 * lstats on the host. */
#define INLINE_DIR_MAX 4096

/* What changes a directory's listing, the directory itself or an entry's
 * inode (stale_event sorts them out). */
#define WATCH_EVENTS                                                                                         \
  (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |           \
   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

enum ext_kind { EXT_SUPER, EXT_INODES, EXT_DIR, EXT_FILE, EXT_LINK };

struct lnode {
  uint64_t nid;
  uint64_t name;        /* in the arena */
  uint32_t parent;      /* its directory's node (the root: itself) */
  uint16_t namelen;
  uint8_t ftype;        /* EROFS_FT_* of its directory entry */
  bool done;            /* taken from the host: the fields below are set */
  bool inline_data;     /* its data follows its inode (size <= room) */
  bool changed;         /* in the image's changed list (note_changed) */
  uint16_t room;        /* bytes for inline data after its inode in its slot */
  uint32_t mode, uid, gid, nlink;
  uint64_t size;
  int64_t mtime;
  uint32_t mtime_nsec;
  uint32_t blkaddr;
  uint32_t dir;         /* directories: index in dirs */
  uint32_t file;        /* files with data: hostfiles id */
  uint64_t target;      /* symlinks: the target in the arena */
};

/* One entry of a read directory, "." and ".." included, in directory order. */
struct lent {
  uint64_t name, ino;
  uint32_t node;        /* NONE until the children are placed */
  uint16_t len;
  uint8_t ftype;
};

struct ldir {
  uint32_t node;
  uint32_t first, n;          /* its entries in ents */
  uint32_t first_blk, nblk;   /* the index of the first entry of each block, in bstarts */
  uint64_t dev;
  uint32_t first_child, nchildren; /* nodes made for it when placed */
  bool placed;                /* the guest read one of its blocks: its listing is fixed */
  bool relist;                /* its names changed before that: read it again then */
};

struct lext {
  uint32_t start, nblk;
  uint32_t ref;               /* EXT_INODES, EXT_DIR: a dir; EXT_FILE, EXT_LINK: a node */
  uint8_t kind;
};

/* Hard links: a non-directory entry whose (dev, ino) was placed before
 * names the same node. */
struct llink {
  uint64_t dev, ino;
  uint32_t node;
};

/* A name made, removed, renamed or written in a directory whose listing
 * the guest has (its own inode aside): what it is is looked at when the
 * next call asks (take_changed). */
struct lname {
  uint32_t dir;
  char *name;           /* a name in it, or a path below it through directories made since (lpdir) */
};

/* A directory made on the host, at some depth, in one whose listing the
 * guest has (after the image was made, so not in it): the guest gets it,
 * and what is put in it later, as patches (take_dir). Its watch says what
 * changes there; wd_dir maps the watch to PDIR | its index. */
struct lpdir {
  uint32_t dir;         /* the listed directory it is in (ldir index) */
  char *rel;            /* its path from there */
};
#define PDIR (UINT32_C(1) << 31)
/* More directories made between calls than this (a tree unpacked into the
 * build directory) get a new image, as does a tree deeper than
 * PDIR_DEPTH below a listed directory. */
#define PDIR_MAX 1024
#define PDIR_DEPTH 8

struct lazy_image {
  pthread_mutex_t lock;
  unsigned bits;
  uint64_t bs, total_blocks;
  char *root;
  bool hide_system;
  bool inline_data;           /* small files' data after their inodes */
  struct lnode *nodes;
  size_t nnodes, capnodes;
  struct lent *ents;
  size_t nents, capents;
  uint32_t *bstarts;
  size_t nbstarts, capbstarts;
  struct ldir *dirs;
  size_t ndirs, capdirs;
  struct lext *exts;
  size_t nexts, capexts;
  char *arena;
  size_t alen, acap;
  struct llink *links;
  size_t nlinks, caplinks;
  uint64_t next_blk;          /* the next block to hand out */
  uint64_t seen_blk;          /* one past the highest block the guest read */
  uint8_t *block0, *scratch; /* the blocks of the superblock and root inode; one block */
  struct hostfiles *files;
  int inotify_fd;
  uint32_t *wd_dir;           /* watch descriptor -> the directory it watches */
  size_t capwd;
  bool stale;
  uint32_t *changed;          /* regular files changed in place since the last ask (note_changed) */
  size_t nchanged, capchanged;
  struct lname *names;        /* names of placed directories changed since the last ask (note_name) */
  size_t nnames, capnames;
  struct lpdir *pdirs;        /* directories made since the image, shown as patches */
  size_t npdirs, cappdirs;
  char *patch_paths;          /* their host paths, each NUL-terminated, for lazy_take_changed */
  size_t patch_len;
  size_t relists_pending;     /* directories whose relist flag is set */
  size_t relist_garbage;      /* bytes of tables the relists left behind (about) */
  int64_t now;
  synth_log_fn log;
  void *log_opaque;
};

static void no_log(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  (void)fmt;
}

/* ---- tables ---- */

static bool reserve_nodes(struct lazy_image *img, size_t need)
{
  void *p = grow(img->nodes, &img->capnodes, need, sizeof *img->nodes, 64);
  if (p)
    img->nodes = p;
  return p != NULL && need < NONE;
}

static bool reserve_ents(struct lazy_image *img, size_t need)
{
  void *p = grow(img->ents, &img->capents, need, sizeof *img->ents, 64);
  if (p)
    img->ents = p;
  return p != NULL && need < NONE;
}

static uint64_t arena_add(struct lazy_image *img, const char *s, size_t len)
{
  char *p = grow(img->arena, &img->acap, img->alen + len, 1, 4096);
  if (!p)
    return UINT64_MAX;
  img->arena = p;
  memcpy(p + img->alen, s, len);
  img->alen += len;
  return img->alen - len;
}

/* Hand out NBLK blocks for an extent: above every block handed out and every
 * block the guest has read (it may hold zeroes of that block in a cache).
 * The start block, or NONE when the image is full. */
static uint32_t alloc_ext(struct lazy_image *img, uint64_t nblk, enum ext_kind kind, uint32_t ref)
{
  uint64_t start = img->next_blk > img->seen_blk ? img->next_blk : img->seen_blk;
  if (nblk == 0)
    return 0;
  if (start + nblk > img->total_blocks || start + nblk >= EROFS_NULL_ADDR) {
    img->log(img->log_opaque, "the lazy image is full (%llu blocks): what the guest reads next is left empty",
             (unsigned long long)img->total_blocks);
    return NONE;
  }
  struct lext *e = grow(img->exts, &img->capexts, img->nexts + 1, sizeof *e, 256);
  if (!e)
    return NONE;
  img->exts = e;
  img->exts[img->nexts++] = (struct lext){ .start = (uint32_t)start, .nblk = (uint32_t)nblk, .ref = ref,
                                           .kind = (uint8_t)kind };
  img->next_blk = start + nblk;
  return (uint32_t)start;
}

static const struct lext *find_ext(const struct lazy_image *img, uint64_t blk)
{
  size_t lo = 0, hi = img->nexts;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct lext *e = &img->exts[mid];
    if (blk < e->start)
      hi = mid;
    else if (blk - e->start >= e->nblk)
      lo = mid + 1;
    else
      return e;
  }
  return NULL;
}

/* The first block handed out after BLK (total_blocks if none). */
static uint64_t next_ext_start(const struct lazy_image *img, uint64_t blk)
{
  size_t lo = 0, hi = img->nexts;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (img->exts[mid].start > blk)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo < img->nexts ? img->exts[lo].start : img->total_blocks;
}

/* ---- paths ---- */

/* The host path of node N into BUF (CAP bytes); false if too long. */
static bool node_path(const struct lazy_image *img, uint32_t n, char *buf, size_t cap)
{
  size_t len = 0;
  uint32_t chain[4096];
  size_t depth = 0;
  for (uint32_t c = n; c != 0; c = img->nodes[c].parent) {
    if (depth == sizeof chain / sizeof *chain)
      return false;
    chain[depth++] = c;
  }
  size_t rl = strlen(img->root);
  if (rl + 1 > cap)
    return false;
  memcpy(buf, img->root, rl + 1);
  len = rl;
  while (depth > 0) {
    const struct lnode *c = &img->nodes[chain[--depth]];
    bool slash = len == 0 || buf[len - 1] != '/';
    if (len + slash + c->namelen + 1 > cap)
      return false;
    if (slash)
      buf[len++] = '/';
    memcpy(buf + len, img->arena + c->name, c->namelen);
    len += c->namelen;
    buf[len] = '\0';
  }
  return true;
}

/* Node C's name, NUL-terminated, into NAME (EROFS_NAME_LEN + 1 bytes). */
static void node_name(const struct lazy_image *img, const struct lnode *c, char *name)
{
  memcpy(name, img->arena + c->name, c->namelen);
  name[c->namelen] = '\0';
}

/* The host directory of node N, opened (following no symlink), or -1. */
static int open_host_dir(const struct lazy_image *img, uint32_t n)
{
  char path[8192];
  return node_path(img, n, path, sizeof path) ? hostfiles_open_path(path, O_RDONLY | O_DIRECTORY) : -1;
}

/* ---- directories ---- */

static uint8_t ftype_of_mode(mode_t m)
{
  switch (m & S_IFMT) {
  case S_IFREG: return EROFS_FT_REG_FILE;
  case S_IFDIR: return EROFS_FT_DIR;
  case S_IFLNK: return EROFS_FT_SYMLINK;
  default: return EROFS_FT_UNKNOWN;
  }
}

static uint8_t ftype_of_dtype(unsigned char t)
{
  switch (t) {
  case DT_REG: return EROFS_FT_REG_FILE;
  case DT_DIR: return EROFS_FT_DIR;
  case DT_LNK: return EROFS_FT_SYMLINK;
  default: return EROFS_FT_UNKNOWN;
  }
}

/* The host's pseudo file systems and runtime state: the guest has its own. */
static bool hidden_at_root(const char *name)
{
  return !strcmp(name, "proc") || !strcmp(name, "sys") || !strcmp(name, "dev") || !strcmp(name, "run");
}

/* Directory order: bytes compared unsigned, a prefix first (what the
 * kernel's binary search in erofs_namei expects; as in layout.c). */
static int ent_cmp(const void *a, const void *b, void *ctx)
{
  const char *arena = ctx;
  const struct lent *x = a, *y = b;
  int c = memcmp(arena + x->name, arena + y->name, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The entries of the directory open at FD (-1: none) for node N, "." and
 * ".." first, appended to ents and sorted: their first index in *FIRST,
 * their number in *COUNT. 0, or -1 when memory ran out. */
static int list_dir(struct lazy_image *img, uint32_t n, int fd, size_t *first, uint32_t *count)
{
  *first = img->nents;
  static const char *const dots[] = { ".", ".." };
  for (int i = 0; i < 2; i++) {
    uint64_t off = arena_add(img, dots[i], (size_t)i + 1);
    if (off == UINT64_MAX || !reserve_ents(img, img->nents + 1))
      return -1;
    img->ents[img->nents++] = (struct lent){ .name = off, .len = (uint16_t)(i + 1), .ftype = EROFS_FT_DIR,
                                             .node = i == 0 ? n : img->nodes[n].parent };
  }
  DIR *d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
  for (struct dirent *de; d && (de = readdir(d));) {
    size_t len = strlen(de->d_name);
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || len > EROFS_NAME_LEN ||
        (n == 0 && img->hide_system && hidden_at_root(de->d_name)))
      continue;
    uint8_t ft = ftype_of_dtype(de->d_type);
    if (de->d_type == DT_UNKNOWN) {
      struct stat st;
      ft = fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? ftype_of_mode(st.st_mode) : EROFS_FT_UNKNOWN;
    }
    if (ft == EROFS_FT_UNKNOWN)
      continue; /* sockets, fifos, devices: as synth.c, left out */
    uint64_t off = arena_add(img, de->d_name, len);
    if (off == UINT64_MAX || !reserve_ents(img, img->nents + 1)) {
      closedir(d);
      return -1;
    }
    img->ents[img->nents++] = (struct lent){ .name = off, .len = (uint16_t)len, .ftype = ft, .node = NONE,
                                             .ino = de->d_ino };
  }
  if (d)
    closedir(d);
  *count = (uint32_t)(img->nents - *first);
  qsort_r(img->ents + *first, *count, sizeof *img->ents, ent_cmp, img->arena);
  return 0;
}

/* Pack COUNT entries from ents[FIRST] into blocks as layout.c's pack_dir: a
 * block takes entries while they fit. Their block starts are appended to
 * bstarts: the first in *FIRST_BLK, the number of blocks in *NBLK. 0, or -1
 * when memory ran out. */
static int pack_dir(struct lazy_image *img, size_t first, uint32_t count, uint32_t *first_blk, uint32_t *nblk)
{
  *first_blk = (uint32_t)img->nbstarts;
  *nblk = 0;
  for (uint32_t i = 0; i < count;) {
    uint32_t *b = grow(img->bstarts, &img->capbstarts, img->nbstarts + 1, sizeof *b, 64);
    if (!b)
      return -1;
    img->bstarts = b;
    img->bstarts[img->nbstarts++] = i;
    ++*nblk;
    uint64_t used = 0;
    while (i < count && used + DIRENT_SIZE + img->ents[first + i].len <= img->bs)
      used += DIRENT_SIZE + img->ents[first + i++].len;
  }
  return 0;
}

/* Read the directory open at FD (-1: show it empty) for node N: its entries
 * sorted with "." and "..", packed into blocks, and those blocks handed out.
 * The watch comes first, so that a change during the read is not missed.
 *
 * Its size is its blocks, the last one padded with zeroes (names end at a
 * NUL or at the block's end): a name added or removed before the guest read
 * any of its blocks leaves the size as the guest may have it in the inode,
 * and the listing is then read again when the guest first reads a block
 * (relist). 0, or -1 when memory ran out. */
static int read_dir(struct lazy_image *img, uint32_t n, int fd, uint64_t dev)
{
  if (fd >= 0 && !img->stale) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(img->inotify_fd, self, WATCH_EVENTS);
    size_t old = img->capwd;
    uint32_t *map = wd >= 0 ? grow(img->wd_dir, &img->capwd, (size_t)wd + 1, sizeof *map, 64) : NULL;
    if (!map) {
      img->log(img->log_opaque, "cannot watch a directory (%s): every call gets a new generation", strerror(errno));
      img->stale = true;
    } else {
      img->wd_dir = map;
      for (size_t i = old; i < img->capwd; i++)
        map[i] = NONE;
      /* The same directory twice (a bind mount): the events cannot tell
       * which listing they are about. */
      map[wd] = map[wd] == NONE ? (uint32_t)img->ndirs : NONE - 1;
    }
  }
  size_t first;
  uint32_t count, first_blk, nblk;
  if (list_dir(img, n, fd, &first, &count) == -1 || pack_dir(img, first, count, &first_blk, &nblk) == -1)
    return -1;
  struct ldir *dirs = grow(img->dirs, &img->capdirs, img->ndirs + 1, sizeof *dirs, 64);
  if (!dirs)
    return -1;
  img->dirs = dirs;
  struct ldir *ld = &img->dirs[img->ndirs];
  *ld = (struct ldir){ .node = n, .first = (uint32_t)first, .n = count, .first_blk = first_blk, .nblk = nblk,
                       .dev = dev };
  struct lnode *node = &img->nodes[n];
  node->dir = (uint32_t)img->ndirs++;
  node->size = (uint64_t)nblk * img->bs;
  /* 1, "not counted" (as overlayfs shows merged directories): a count of
   * subdirectories would tie the inode to the listing, which may be read
   * again (relist), and find(1) trusts it to stop looking for more. */
  node->nlink = 1;
  uint32_t blk = alloc_ext(img, nblk, EXT_DIR, node->dir);
  if (blk == NONE) { /* no room: an empty directory, which needs no block of its own */
    node->size = 0;
    blk = 0;
  }
  node->blkaddr = blk;
  return 0;
}

/* Relisting leaves the old entries and names behind in the tables: past
 * this many bytes of them the image is called stale instead (a new one
 * starts empty), so that a directory that keeps changing (a busy /tmp)
 * cannot grow a long-lived image without end. */
#define RELIST_GARBAGE_MAX (8u << 20)

/* Directory D's names changed on the host before the guest read any of its
 * blocks: read it again, as long as the new listing fills as many blocks
 * (its size, which the guest may have in the inode); else keep the
 * listing as it was and say the image is stale. 0, or -1 when memory ran
 * out. */
static int relist(struct lazy_image *img, uint32_t d)
{
  img->dirs[d].relist = false;
  img->relists_pending--;
  if (img->relist_garbage > RELIST_GARBAGE_MAX) {
    img->stale = true;
    return 0;
  }
  uint32_t node = img->dirs[d].node;
  int fd = open_host_dir(img, node);
  if (fd < 0) {
    img->stale = true; /* gone: its old listing stays, and its entries show empty */
    return 0;
  }
  size_t first, nbstarts = img->nbstarts, alen = img->alen;
  uint32_t count, first_blk, nblk;
  int r = list_dir(img, node, fd, &first, &count);
  close(fd);
  if (r == -1 || pack_dir(img, first, count, &first_blk, &nblk) == -1)
    return -1;
  struct ldir *ld = &img->dirs[d];
  if (nblk != ld->nblk) {
    img->nents = first; /* the new entries and names go */
    img->nbstarts = nbstarts;
    img->alen = alen;
    img->stale = true;
    return 0;
  }
  img->relist_garbage += ld->n * (sizeof *img->ents + 16) + ld->nblk * sizeof *img->bstarts;
  ld->first = (uint32_t)first;
  ld->n = count;
  ld->first_blk = first_blk;
  return 0;
}

static size_t link_hash(uint64_t dev, uint64_t ino, size_t mask)
{
  uint64_t h = (dev * 0x9E3779B97F4A7C15u) ^ (ino * 0xC2B2AE3D27D4EB4Fu);
  return (size_t)(h ^ (h >> 29)) & mask;
}

/* The node already placed for (DEV, INO), or NONE after recording NODE for it. */
static uint32_t link_fold(struct lazy_image *img, uint64_t dev, uint64_t ino, uint32_t node)
{
  if ((img->nlinks + 1) * 2 > img->caplinks) {
    size_t cap = img->caplinks ? img->caplinks * 2 : 1024;
    struct llink *v = malloc(cap * sizeof *v);
    if (!v)
      return NONE; /* no folding: the names show as separate files */
    for (size_t i = 0; i < cap; i++)
      v[i].node = NONE;
    for (size_t i = 0; i < img->caplinks; i++)
      if (img->links[i].node != NONE) {
        size_t j = link_hash(img->links[i].dev, img->links[i].ino, cap - 1);
        while (v[j].node != NONE)
          j = (j + 1) & (cap - 1);
        v[j] = img->links[i];
      }
    free(img->links);
    img->links = v;
    img->caplinks = cap;
  }
  size_t j = link_hash(dev, ino, img->caplinks - 1);
  for (; img->links[j].node != NONE; j = (j + 1) & (img->caplinks - 1))
    if (img->links[j].dev == dev && img->links[j].ino == ino)
      return img->links[j].node;
  img->links[j] = (struct llink){ dev, ino, node };
  img->nlinks++;
  return NONE;
}

/* With inline data, the room for a child's data after its inode: its size
 * now, rounded to the inode slot (the next inode is 32-byte aligned), when
 * the inode and all its data fit in one block (a file of a block or more
 * keeps flat blocks); 0 otherwise. Fixed at placement, as the nids after
 * it depend on it; a file that grew by the time its inode is taken gets
 * flat blocks instead, in the same slot. */
static uint16_t inline_room(const struct lazy_image *img, int dfd, const struct lnode *c)
{
  if (dfd < 0 || (c->ftype != EROFS_FT_REG_FILE && c->ftype != EROFS_FT_SYMLINK))
    return 0;
  char name[EROFS_NAME_LEN + 1];
  node_name(img, c, name);
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 || st.st_size <= 0 ||
      (uint64_t)st.st_size + INODE_SIZE > img->bs)
    return 0;
  uint64_t room = ((uint64_t)st.st_size + EROFS_INODE_SLOT - 1) & ~(uint64_t)(EROFS_INODE_SLOT - 1);
  return (uint16_t)(room + INODE_SIZE > img->bs ? img->bs - INODE_SIZE : room);
}

/* The first read of directory D's entries: its children get nodes and inode
 * slots, in fresh blocks. A name whose (dev, ino) was placed already is a
 * hard link of that node. A slot is the inode and, with inline data, room
 * for the child's data; one never crosses a block (the kernel reads an
 * inode's inline data from the inode's block). 0, or -1 when memory ran
 * out. */
static int place_children(struct lazy_image *img, uint32_t d)
{
  if (img->dirs[d].placed)
    return 0;
  if (img->dirs[d].relist && relist(img, d) == -1)
    return -1;
  struct ldir *ld = &img->dirs[d];
  uint32_t first = (uint32_t)img->nnodes, count = 0;
  int dfd = img->inline_data && ld->n <= INLINE_DIR_MAX ? open_host_dir(img, ld->node) : -1;
  uint64_t pos = 0; /* the next slot's offset in the extent */
  for (uint32_t i = 0; i < ld->n; i++) {
    struct lent *e = &img->ents[ld->first + i];
    if (e->node != NONE)
      continue; /* "." and ".." */
    if (e->ftype != EROFS_FT_DIR) {
      uint32_t same = link_fold(img, ld->dev, e->ino, first + count);
      if (same != NONE) {
        e->node = same;
        continue;
      }
    }
    if (!reserve_nodes(img, img->nnodes + 1)) {
      if (dfd >= 0)
        close(dfd);
      return -1;
    }
    ld = &img->dirs[d];
    struct lnode *c = &img->nodes[img->nnodes++];
    *c = (struct lnode){ .name = e->name, .namelen = e->len, .ftype = e->ftype, .parent = ld->node, .dir = NONE,
                         .file = NONE };
    c->room = inline_room(img, dfd, c);
    uint64_t slot = INODE_SIZE + c->room;
    if (pos / img->bs != (pos + slot - 1) / img->bs)
      pos = (pos + img->bs - 1) & ~(img->bs - 1);
    c->nid = pos; /* the offset until the extent is handed out */
    pos += slot;
    e->node = first + count++;
  }
  if (dfd >= 0)
    close(dfd);
  uint32_t blk = count ? alloc_ext(img, (pos + img->bs - 1) / img->bs, EXT_INODES, d) : 0;
  if (img->inline_data && blk != NONE && count) {
    /* Keep the guest's metadata readahead (RA_GAP) to these inodes. */
    uint64_t gap = (RA_GAP + img->bs - 1) / img->bs;
    img->next_blk = img->next_blk + gap < img->total_blocks ? img->next_blk + gap : img->total_blocks;
  }
  for (uint32_t k = 0; k < count; k++) {
    struct lnode *c = &img->nodes[first + k];
    c->nid = blk == NONE ? img->nodes[0].nid : ((uint64_t)blk * img->bs + c->nid) / EROFS_INODE_SLOT;
    if (blk == NONE)
      c->room = 0;
  }
  ld->first_child = first;
  ld->nchildren = count;
  ld->placed = true;
  return 0;
}

/* ---- inodes ---- */

/* An entry that vanished or changed into something we do not show: an empty
 * directory or file of its entry's type, so that the listing stays true. */
static void fill_missing(struct lazy_image *img, uint32_t n)
{
  struct lnode *c = &img->nodes[n];
  c->mode = c->ftype == EROFS_FT_DIR ? S_IFDIR | 0555 : S_IFREG | 0444;
  c->nlink = 1;
  c->size = 0;
  c->mtime = img->now;
  img->stale = true;
}

/* Take node N (a child of the directory open at DFD, or -1) from the host.
 * 0, or -1 when memory ran out. */
static int materialise(struct lazy_image *img, uint32_t n, int dfd)
{
  struct lnode *c = &img->nodes[n];
  char name[EROFS_NAME_LEN + 1];
  node_name(img, c, name);
  c->done = true;
  struct stat st;
  if (dfd < 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 || ftype_of_mode(st.st_mode) == EROFS_FT_UNKNOWN) {
    fill_missing(img, n);
    return c->ftype == EROFS_FT_DIR ? read_dir(img, n, -1, 0) : 0;
  }
  c->mode = st.st_mode;
  c->uid = st.st_uid;
  c->gid = st.st_gid;
  c->nlink = (uint32_t)st.st_nlink;
  c->mtime = st.st_mtim.tv_sec;
  c->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = read_dir(img, n, fd, (uint64_t)st.st_dev);
    if (fd >= 0)
      close(fd);
    return r;
  }
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t len = readlinkat(dfd, name, target, sizeof target);
    if (len <= 0 || (size_t)len == sizeof target) {
      fill_missing(img, n);
      return 0;
    }
    if ((c->target = arena_add(img, target, (size_t)len)) == UINT64_MAX)
      return -1;
    c = &img->nodes[n];
    c->size = (uint64_t)len;
    c->inline_data = c->size <= c->room;
  } else {
    c->size = (uint64_t)st.st_size;
    c->inline_data = c->size > 0 && c->size <= c->room; /* read beneath its directory (inline_data) */
    char path[8192];
    if (c->size && !c->inline_data && node_path(img, n, path, sizeof path)) {
      int64_t id = hostfiles_add(img->files, path, strlen(path), st.st_dev, st.st_ino);
      if (id < 0)
        return -1;
      c->file = (uint32_t)id;
    }
  }
  if (c->inline_data)
    return 0; /* its data is in its inode's block */
  uint32_t blk = alloc_ext(img, (c->size + img->bs - 1) / img->bs, S_ISLNK(c->mode) ? EXT_LINK : EXT_FILE, n);
  if (blk == NONE) {
    fill_missing(img, n); /* no room left in the slot */
    blk = 0;
  }
  img->nodes[n].blkaddr = blk;
  return 0;
}

static void encode_inode(const struct lazy_image *img, uint32_t n, uint8_t *out)
{
  const struct lnode *c = &img->nodes[n];
  struct erofs_inode_extended ie = {
    .i_format = EROFS_INODE_LAYOUT_EXTENDED |
                (c->inline_data ? EROFS_INODE_FLAT_INLINE : EROFS_INODE_FLAT_PLAIN) << EROFS_I_DATALAYOUT_BIT,
    .i_mode = (uint16_t)c->mode,
    .i_size = c->size,
    .i_u = c->inline_data ? EROFS_NULL_ADDR : c->blkaddr, /* no whole blocks: all of it inline */
    .i_ino = n + 1,
    .i_uid = c->uid,
    .i_gid = c->gid,
    .i_mtime = (uint64_t)c->mtime,
    .i_mtime_nsec = c->mtime_nsec,
    .i_nlink = c->nlink,
  };
  erofs_put_inode(out, &ie);
}

/* Node N's inline data into OUT (its size): a symlink's target, or the
 * file read beneath its directory, open at DFD (-1: cannot be read). A file
 * that cannot be read any more, is no regular file now or is shorter, changed
 * since its inode was taken: what is missing reads as zeroes, and the image
 * is stale. */
static void inline_data(struct lazy_image *img, uint32_t n, int dfd, uint8_t *out)
{
  const struct lnode *c = &img->nodes[n];
  if (S_ISLNK(c->mode)) {
    memcpy(out, img->arena + c->target, c->size);
    return;
  }
  char name[EROFS_NAME_LEN + 1];
  node_name(img, c, name);
  int fd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  ssize_t got = fd < 0 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ? -1 : pread(fd, out, c->size, 0);
  if (fd >= 0)
    close(fd);
  if (got < (ssize_t)c->size) {
    memset(out + (got > 0 ? got : 0), 0, c->size - (size_t)(got > 0 ? got : 0));
    img->stale = true;
  }
}

/* Block BLK, of the inode extent of directory D, into OUT: the nodes whose
 * slots are in it, taken from the host first if they were not. */
static int inode_block(struct lazy_image *img, uint32_t d, uint64_t blk, uint8_t *out)
{
  memset(out, 0, img->bs);
  uint64_t from = blk * img->bs / EROFS_INODE_SLOT, to = (blk + 1) * img->bs / EROFS_INODE_SLOT;
  uint32_t first = img->dirs[d].first_child, count = img->dirs[d].nchildren;
  /* The first child whose nid is in the block: nids grow with the index. */
  uint32_t lo = 0, hi = count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (img->nodes[first + mid].nid < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  int dfd = -2;
  for (uint32_t i = lo; i < count && img->nodes[first + i].nid < to; i++) {
    uint32_t n = first + i;
    /* The directory: to take a node from the host, or to read a file's inline data. */
    if (dfd == -2 && (!img->nodes[n].done || (img->nodes[n].inline_data && !S_ISLNK(img->nodes[n].mode))))
      dfd = open_host_dir(img, img->dirs[d].node);
    if (!img->nodes[n].done) {
      if (materialise(img, n, dfd) == -1) {
        if (dfd >= 0)
          close(dfd);
        return -1;
      }
    }
    uint8_t *at = out + (img->nodes[n].nid - from) * EROFS_INODE_SLOT;
    encode_inode(img, n, at);
    if (img->nodes[n].inline_data)
      inline_data(img, n, dfd, at + INODE_SIZE);
  }
  if (dfd >= 0)
    close(dfd);
  return 0;
}

/* Block K of directory D's entries into OUT. */
static int dir_block(struct lazy_image *img, uint32_t d, uint64_t k, uint8_t *out)
{
  if (place_children(img, d) == -1)
    return -1;
  const struct ldir *ld = &img->dirs[d];
  memset(out, 0, img->bs);
  uint32_t from = img->bstarts[ld->first_blk + k];
  uint32_t to = k + 1 < ld->nblk ? img->bstarts[ld->first_blk + k + 1] : ld->n;
  uint64_t nameoff = DIRENT_SIZE * (to - from);
  for (uint32_t i = from; i < to; i++) {
    const struct lent *e = &img->ents[ld->first + i];
    struct erofs_dirent de = { .nid = img->nodes[e->node].nid, .nameoff = (uint16_t)nameoff, .file_type = e->ftype };
    erofs_put_dirent(out + DIRENT_SIZE * (i - from), &de);
    memcpy(out + nameoff, img->arena + e->name, e->len);
    nameoff += e->len;
  }
  return 0;
}

/* ---- the image ---- */

int lazy_new(const struct lazy_options *opt, struct lazy_image **out, char *err, size_t errlen)
{
  unsigned bits = opt->blkszbits ? opt->blkszbits : 12;
  if (bits < 9 || bits > 16) {
    snprintf(err, errlen, "block size 2^%u is outside 512 B .. 64 KiB", bits);
    return -1;
  }
  struct lazy_image *img = calloc(1, sizeof *img);
  if (!img) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&img->lock, NULL);
  img->bits = bits;
  img->bs = 1u << bits;
  img->total_blocks = opt->size >> bits;
  if (img->total_blocks >= EROFS_NULL_ADDR)
    img->total_blocks = EROFS_NULL_ADDR - 1;
  img->log = opt->log ? opt->log : no_log;
  img->log_opaque = opt->log_opaque;
  img->root = strdup(opt->root ? opt->root : "/");
  img->hide_system = img->root && !strcmp(img->root, "/");
  img->inline_data = opt->inline_data;
  /* With 512-byte blocks the superblock and the root inode are in block 2. */
  uint64_t head = (ROOT_POS + INODE_SIZE + img->bs - 1) / img->bs;
  img->block0 = calloc(head, img->bs);
  img->scratch = malloc(img->bs);
  img->files = hostfiles_new(opt->cache_fds ? opt->cache_fds : 64, img->log, img->log_opaque);
  img->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  img->now = now.tv_sec;
  if (!img->root || !img->block0 || !img->scratch || !img->files || !reserve_nodes(img, 1) ||
      alloc_ext(img, head, EXT_SUPER, 0) != 0) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (img->inotify_fd == -1)
    img->stale = true; /* no watch: never reused */

  int fd = hostfiles_open_path(img->root, O_RDONLY | O_DIRECTORY);
  struct stat st;
  if (fd == -1 || fstat(fd, &st) == -1) {
    snprintf(err, errlen, "cannot read %s: %s", img->root, strerror(errno));
    if (fd >= 0)
      close(fd);
    goto fail;
  }
  img->nnodes = 1;
  img->nodes[0] = (struct lnode){ .nid = ROOT_POS / EROFS_INODE_SLOT, .parent = 0, .ftype = EROFS_FT_DIR,
                                  .done = true, .mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid,
                                  .mtime = st.st_mtim.tv_sec, .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
                                  .dir = NONE, .file = NONE };
  int r = read_dir(img, 0, fd, (uint64_t)st.st_dev);
  close(fd);
  if (r == -1) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }

  struct erofs_super_block sb = {
    .magic = EROFS_SUPER_MAGIC,
    .blkszbits = (uint8_t)bits,
    .root_nid = (uint16_t)img->nodes[0].nid,
    .inos = 1,
    .build_time = (uint64_t)now.tv_sec,
    .build_time_nsec = (uint32_t)now.tv_nsec,
    .blocks = (uint32_t)img->total_blocks,
  };
  memcpy(sb.volume_name, "vmexec-lazy", 11);
  encode_inode(img, 0, img->block0 + ROOT_POS);
  if (getrandom(sb.uuid, sizeof sb.uuid, 0) != sizeof sb.uuid)
    memset(sb.uuid, 0x5a, sizeof sb.uuid);
  erofs_put_super(img->block0 + EROFS_SUPER_OFFSET, &sb);
  *out = img;
  return 0;
fail:
  lazy_free(img);
  return -1;
}

/* Under the lock: up to LEN bytes at OFFSET into BUF; how many. A host file's
 * data is not read here: *FILE and *FOFF say what to read (file NONE:
 * nothing). -1 when memory ran out. */
static int64_t read_locked(struct lazy_image *img, uint8_t *buf, size_t len, uint64_t offset, uint32_t *file,
                           uint64_t *foff, uint64_t *fsize)
{
  uint64_t blk = offset >> img->bits, within = offset & (img->bs - 1);
  *file = NONE;
  if (blk >= img->total_blocks) { /* past the slot */
    memset(buf, 0, len);
    return (int64_t)len;
  }
  const struct lext *e = find_ext(img, blk);
  if (!e) {
    uint64_t end = next_ext_start(img, blk) << img->bits;
    size_t n = end - offset < len ? (size_t)(end - offset) : len;
    memset(buf, 0, n);
    uint64_t last = (offset + n - 1) >> img->bits;
    if (last + 1 > img->seen_blk)
      img->seen_blk = last + 1; /* never hand these blocks out: the guest has their zeroes */
    return (int64_t)n;
  }
  uint64_t k = blk - e->start, ext_end = (uint64_t)(e->start + e->nblk) << img->bits;
  size_t n = ext_end - offset < len ? (size_t)(ext_end - offset) : len;
  if (e->kind == EXT_FILE || e->kind == EXT_LINK) {
    const struct lnode *c = &img->nodes[e->ref];
    uint64_t at = offset - ((uint64_t)e->start << img->bits);
    if (e->kind == EXT_LINK) {
      memset(buf, 0, n);
      if (at < c->size)
        memcpy(buf, img->arena + c->target + at, c->size - at < n ? (size_t)(c->size - at) : n);
    } else {
      *file = c->file;
      *foff = at;
      *fsize = c->size;
    }
    return (int64_t)n;
  }
  n = img->bs - within < len ? (size_t)(img->bs - within) : len;
  const uint8_t *src = img->scratch;
  if (e->kind == EXT_SUPER)
    src = img->block0 + k * img->bs;
  else if ((e->kind == EXT_INODES ? inode_block(img, e->ref, blk, img->scratch)
                                   : dir_block(img, e->ref, k, img->scratch)) == -1)
    return -1;
  memcpy(buf, src + within, n);
  return (int64_t)n;
}

int lazy_read(struct lazy_image *img, void *buf, size_t len, uint64_t offset)
{
  uint8_t *p = buf;
  if (len == 0)
    return 0;
  /* What this read lays out (a directory's blocks when its inode is taken,
   * children's inode blocks) goes past its end: the blocks it covers are
   * what they are now, even for a guest that reads far ahead (its kernel
   * reads 128 KiB of metadata at a time). */
  pthread_mutex_lock(&img->lock);
  uint64_t end = ((offset + len - 1) >> img->bits) + 1;
  if (end > img->seen_blk)
    img->seen_blk = end < img->total_blocks ? end : img->total_blocks;
  pthread_mutex_unlock(&img->lock);
  while (len > 0) {
    uint32_t file;
    uint64_t foff = 0, fsize = 0;
    pthread_mutex_lock(&img->lock);
    int64_t n = read_locked(img, p, len, offset, &file, &foff, &fsize);
    pthread_mutex_unlock(&img->lock);
    if (n == -1) {
      errno = ENOMEM;
      return -1;
    }
    if (file != NONE || fsize) {
      /* The file's bytes up to its size as laid out; zeroes after (the
       * tail of its last block, or what it grew since). */
      size_t data = foff >= fsize ? 0 : fsize - foff < (uint64_t)n ? (size_t)(fsize - foff) : (size_t)n;
      if (data && file != NONE && hostfiles_read(img->files, file, p, data, foff) == -1)
        return -1;
      memset(p + data, 0, (size_t)n - data);
    }
    p += n;
    offset += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

/* The entry NAME (LEN bytes) of directory LD's listing, or NULL. */
static const struct lent *find_ent(const struct lazy_image *img, const struct ldir *ld, const char *name,
                                   size_t len)
{
  size_t lo = 0, hi = ld->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct lent *e = &img->ents[ld->first + mid];
    int c = memcmp(name, img->arena + e->name, len < e->len ? len : e->len);
    c = c ? c : (len > e->len) - (len < e->len);
    if (c == 0)
      return e;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* Node N, a regular file the guest may have read, changed on the host in
 * place or was replaced under its name: noted for lazy_take_changed (the
 * guest gets the new bytes in its patch layer) instead of a new image.
 * False when that cannot show it: not a regular file, one of several names
 * of an inode, or no memory for the note. */
static bool note_changed(struct lazy_image *img, uint32_t n)
{
  struct lnode *c = &img->nodes[n];
  if (c->done ? !S_ISREG(c->mode) || c->nlink != 1 : c->ftype != EROFS_FT_REG_FILE)
    return false;
  if (c->changed)
    return true;
  if (img->nchanged == img->capchanged) {
    size_t cap = img->capchanged ? 2 * img->capchanged : 16;
    uint32_t *p = realloc(img->changed, cap * sizeof *p);
    if (!p)
      return false;
    img->changed = p;
    img->capchanged = cap;
  }
  img->changed[img->nchanged++] = n;
  c->changed = true;
  return true;
}

/* NAME (LEN bytes) of placed directory D changed: noted for take_changed
 * (once). False when it cannot be: more than WIRE_PATCH_COUNT_MAX names,
 * or no memory. */
static bool note_name(struct lazy_image *img, uint32_t d, const char *name, size_t len)
{
  for (size_t i = 0; i < img->nnames; i++)
    if (img->names[i].dir == d && strlen(img->names[i].name) == len && !memcmp(img->names[i].name, name, len))
      return true;
  if (img->nnames == WIRE_PATCH_COUNT_MAX)
    return false;
  if (img->nnames == img->capnames) {
    size_t cap = img->capnames ? 2 * img->capnames : 16;
    struct lname *p = realloc(img->names, cap * sizeof *p);
    if (!p)
      return false;
    img->names = p;
    img->capnames = cap;
  }
  char *copy = strndup(name, len);
  if (!copy)
    return false;
  img->names[img->nnames++] = (struct lname){ d, copy };
  return true;
}

/* Under the lock: does EV make the image stale? In a directory the guest
 * read a block of (placed): a file or directory made, written or renamed
 * there, or a name removed, is noted for a patch (note_name, decided at
 * the ask: take_changed), and so is any change in a directory made there
 * since (lpdir); a file of the listing renamed over, or one whose inode
 * the guest has written or changed, too if it is a regular file of one
 * name (note_changed), else it does. In one it did not read, the listing
 * is read again when it does (relist), and an entry whose inode the guest
 * does not have yet will be taken as it is then. A change of a watched
 * directory itself (but its removal, which its parent's listing shows) or
 * a lost event does. */
static bool stale_event(struct lazy_image *img, const struct inotify_event *ev)
{
  bool known = ev->wd >= 0 && (size_t)ev->wd < img->capwd;
  /* A directory removed: its parent's listing says so (a name gone, below),
   * and its watch goes with it (its number may be given out again). */
  if (ev->mask & (IN_DELETE_SELF | IN_IGNORED)) {
    if (known && (ev->mask & IN_IGNORED))
      img->wd_dir[ev->wd] = NONE;
    return false;
  }
  if (ev->len == 0 || !known)
    return true;
  uint32_t d = img->wd_dir[ev->wd];
  size_t len = strnlen(ev->name, ev->len);
  /* vmexec's write-back makes a file under a temporary name, then renames
   * it over the file's: neither the temporary name's coming and writes nor
   * its going is a change of the listing. */
  if (len > strlen(WIRE_WB_TEMP_PREFIX) && !memcmp(ev->name, WIRE_WB_TEMP_PREFIX, strlen(WIRE_WB_TEMP_PREFIX)))
    return false;
  if ((d & PDIR) && (d & ~PDIR) < img->npdirs) {
    /* In a directory made since the image: whatever it is now is taken at
     * the ask, by its path from the listed directory. */
    const struct lpdir *pd = &img->pdirs[d & ~PDIR];
    char rel[PATH_MAX];
    int n = snprintf(rel, sizeof rel, "%s/%.*s", pd->rel, (int)len, ev->name);
    return n < 0 || (size_t)n >= sizeof rel || !note_name(img, pd->dir, rel, (size_t)n);
  }
  if (d >= img->ndirs)
    return true;
  struct ldir *ld = &img->dirs[d];
  if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
    if (!ld->placed) {
      img->relists_pending += !ld->relist;
      ld->relist = true;
      return false;
    }
    /* A file of the listing renamed over (write-back, an editor's save):
     * the listing holds; the file is new. */
    const struct lent *e = find_ent(img, ld, ev->name, len);
    if (e && (ev->mask & IN_MOVED_TO) && e->node != NONE && note_changed(img, e->node))
      return false;
    /* Else a file or directory made, or a name gone: the patch layer shows
     * the one and hides the other (take_changed). */
    return !note_name(img, d, ev->name, len);
  }
  if (!(ev->mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)))
    return true;
  const struct lent *e = find_ent(img, ld, ev->name, len);
  if (!e) /* a file made since the listing: its new bytes, if the guest has the listing */
    return ld->placed && !note_name(img, d, ev->name, len);
  if (e->node == NONE || !img->nodes[e->node].done)
    return false; /* its inode is taken from the host when the guest reads it */
  return !note_changed(img, e->node);
}

/* PATH into patch_paths; false if out of memory. */
static bool add_patch_path(struct lazy_image *img, const char *path)
{
  size_t len = strlen(path) + 1;
  char *p = realloc(img->patch_paths, img->patch_len + len);
  if (!p)
    return false;
  memcpy(p + img->patch_len, path, len);
  img->patch_paths = p;
  img->patch_len += len;
  return true;
}

/* A regular file of one name, small enough (with what came before, *TOTAL)
 * to go as a patch. */
static bool patchable(const struct stat *st, uint64_t *total)
{
  return S_ISREG(st->st_mode) && st->st_nlink == 1 && (uint64_t)st->st_size <= WIRE_PATCH_FILE_MAX &&
         (*total += (uint64_t)st->st_size) <= WIRE_PATCH_MAX;
}

/* Directory made since the image, REL below listed directory D: watched,
 * its events mapped to its lpdir (one per path: the same path made again
 * gets its watch anew). FD is the directory. False if it cannot be. */
static bool watch_pdir(struct lazy_image *img, uint32_t d, const char *rel, int fd)
{
  size_t i = 0;
  while (i < img->npdirs && !(img->pdirs[i].dir == d && !strcmp(img->pdirs[i].rel, rel)))
    i++;
  if (i == img->npdirs) {
    if (i == PDIR_MAX)
      return false;
    struct lpdir *p = grow(img->pdirs, &img->cappdirs, img->npdirs + 1, sizeof *p, 16);
    if (!p)
      return false;
    img->pdirs = p;
    char *copy = strdup(rel);
    if (!copy)
      return false;
    img->pdirs[img->npdirs++] = (struct lpdir){ d, copy };
  }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  int wd = inotify_add_watch(img->inotify_fd, self, WATCH_EVENTS);
  size_t old = img->capwd;
  uint32_t *map = wd >= 0 ? grow(img->wd_dir, &img->capwd, (size_t)wd + 1, sizeof *map, 64) : NULL;
  if (!map)
    return false;
  img->wd_dir = map;
  for (size_t j = old; j < img->capwd; j++)
    map[j] = NONE;
  /* A directory of the listing moved here: its events could not tell
   * which path they are about. (One made since, moved from one such path
   * to another, is the new path's now.) */
  if (map[wd] != NONE && (!(map[wd] & PDIR) || (map[wd] & ~PDIR) >= img->npdirs))
    return false;
  map[wd] = PDIR | (uint32_t)i;
  return true;
}

static bool take_path(struct lazy_image *img, uint32_t d, const char *rel, uint64_t *total, unsigned *left,
                      unsigned depth);

/* Directory PATH, REL below listed directory D, made or replaced since the
 * image: its path into patch_paths (the agent makes it anew, empty: a
 * WIRE_WB_DIR patch), then each of its names as it is now (take_path),
 * after the watch that notes what changes there later. At most *LEFT
 * names in all. */
static bool take_dir(struct lazy_image *img, uint32_t d, const char *rel, const char *path, uint64_t *total,
                     unsigned *left, unsigned depth)
{
  if (depth > PDIR_DEPTH || !add_patch_path(img, path))
    return false;
  int fd = hostfiles_open_path(path, O_RDONLY | O_DIRECTORY);
  if (fd == -1)
    return errno == ENOENT; /* gone meanwhile: its parent's event says so */
  if (!watch_pdir(img, d, rel, fd)) {
    close(fd);
    return false;
  }
  DIR *dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return false;
  }
  bool ok = true;
  for (struct dirent *e; ok && (e = readdir(dir));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[PATH_MAX];
    ok = *left > 0 && (size_t)snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name) < sizeof sub;
    if (ok) {
      --*left;
      ok = take_path(img, d, sub, total, left, depth + 1);
    }
  }
  closedir(dir);
  return ok;
}

/* REL below listed directory D (a name in it, or a path through
 * directories made since) as it is now: its path into patch_paths if it is
 * a file to patch, a directory (take_dir) or gone; false if it cannot be
 * shown so. */
static bool take_path(struct lazy_image *img, uint32_t d, const char *rel, uint64_t *total, unsigned *left,
                      unsigned depth)
{
  char path[8192];
  struct stat st;
  if (!node_path(img, img->dirs[d].node, path, sizeof path))
    return false;
  size_t len = strlen(path);
  if (snprintf(path + len, sizeof path - len, "%s%s", len && path[len - 1] == '/' ? "" : "/", rel) >=
      (int)(sizeof path - len))
    return false;
  if (lstat(path, &st) == -1)
    return errno == ENOENT && add_patch_path(img, path);
  if (S_ISREG(st.st_mode))
    return patchable(&st, total) && add_patch_path(img, path);
  if (S_ISDIR(st.st_mode))
    return take_dir(img, d, rel, path, total, left, depth);
  /* A symlink made there needs a new image; a fifo or socket is left out
   * of listings, unless the name was a file's before. */
  return !S_ISLNK(st.st_mode) && (strchr(rel, '/') || !find_ent(img, &img->dirs[d], rel, strlen(rel)));
}

/* The changed files and names as they are now, their paths into
 * patch_paths: false (a new image is needed) unless each is a regular file
 * of one name, at most WIRE_PATCH_FILE_MAX bytes, WIRE_PATCH_MAX in all
 * (wire.h), a name that is gone (the patch layer hides it), or a directory
 * made (followed by what it holds, at most WIRE_PATCH_COUNT_MAX names in
 * all such). A name the listing leaves out (a fifo, a socket) stays out.
 * The paths are in the order they are to be applied: a directory comes
 * anew, empty, so what is in it comes after it. */
static bool take_changed(struct lazy_image *img)
{
  bool ok = true;
  uint64_t total = 0;
  char path[8192];
  struct stat st;
  for (size_t i = 0; i < img->nchanged; i++) {
    uint32_t n = img->changed[i];
    img->nodes[n].changed = false;
    if (!ok || !node_path(img, n, path, sizeof path))
      ok = false;
    else if (lstat(path, &st) == -1)
      ok = errno == ENOENT && add_patch_path(img, path); /* gone: hidden */
    else
      ok = patchable(&st, &total) && add_patch_path(img, path);
  }
  img->nchanged = 0;
  unsigned left = WIRE_PATCH_COUNT_MAX; /* names in the directories made */
  for (size_t i = 0; i < img->nnames; i++) {
    ok = ok && take_path(img, img->names[i].dir, img->names[i].name, &total, &left, 0);
    free(img->names[i].name);
  }
  img->nnames = 0;
  return ok;
}

bool lazy_stale(struct lazy_image *img)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  pthread_mutex_lock(&img->lock);
  ssize_t len;
  while (img->inotify_fd >= 0 && (len = read(img->inotify_fd, buf, sizeof buf)) > 0)
    for (char *p = buf; p < buf + len && !img->stale; p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
      img->stale = stale_event(img, (const struct inotify_event *)p);
  /* Directories whose names changed before the guest read them are read
   * now, when the next call is to start: one whose new listing does not
   * fit makes the image stale now, rather than miss a name that call may
   * look for (a working directory just made there). */
  for (size_t d = 0; d < img->ndirs && img->relists_pending && !img->stale; d++)
    if (img->dirs[d].relist && relist(img, (uint32_t)d) == -1)
      img->stale = true; /* out of memory: a new image */
  if ((img->nchanged || img->nnames) && !take_changed(img))
    img->stale = true;
  bool stale = img->stale;
  pthread_mutex_unlock(&img->lock);
  hostfiles_close_deleted(img->files);
  return stale;
}

char *lazy_take_changed(struct lazy_image *img, size_t *len)
{
  pthread_mutex_lock(&img->lock);
  char *p = img->stale ? NULL : img->patch_paths;
  *len = p ? img->patch_len : 0;
  if (!p)
    free(img->patch_paths);
  img->patch_paths = NULL;
  img->patch_len = 0;
  pthread_mutex_unlock(&img->lock);
  return p;
}

struct lazy_stats lazy_stats(struct lazy_image *img)
{
  pthread_mutex_lock(&img->lock);
  struct lazy_stats s = { .inodes = 0, .dirs = img->ndirs, .dirents = img->nents, .blocks = img->next_blk };
  for (size_t i = 0; i < img->nnodes; i++)
    s.inodes += img->nodes[i].done;
  pthread_mutex_unlock(&img->lock);
  return s;
}

void lazy_free(struct lazy_image *img)
{
  if (!img)
    return;
  if (img->inotify_fd >= 0)
    close(img->inotify_fd);
  hostfiles_free(img->files);
  pthread_mutex_destroy(&img->lock);
  free(img->nodes);
  free(img->ents);
  free(img->bstarts);
  free(img->dirs);
  free(img->exts);
  free(img->arena);
  free(img->links);
  free(img->wd_dir);
  free(img->changed);
  for (size_t i = 0; i < img->nnames; i++)
    free(img->names[i].name);
  free(img->names);
  for (size_t i = 0; i < img->npdirs; i++)
    free(img->pdirs[i].rel);
  free(img->pdirs);
  free(img->patch_paths);
  free(img->block0);
  free(img->scratch);
  free(img->root);
  free(img);
}
