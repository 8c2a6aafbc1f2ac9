/* EROFS layout and encoding: see layout.h, and erofs-format.h for the
 * structures. All inodes are extended (64 bytes): they carry 64-bit sizes,
 * 32-bit uid/gid/nlink and per-inode mtime with nanoseconds, which the
 * 32-byte compact form cannot. */
#include "layout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "erofs-format.h"

#define INODE_SIZE ((uint64_t)sizeof(struct erofs_inode_extended))
#define DIRENT_SIZE ((uint64_t)sizeof(struct erofs_dirent))
#define META_START ((uint64_t)EROFS_SUPER_OFFSET + sizeof(struct erofs_super_block))

static uint64_t round_up(uint64_t x, uint64_t a)
{
  return (x + a - 1) & ~(a - 1);
}

static const char *dent_name(const struct tree *t, const struct tdent *d)
{
  return t->names + d->name;
}

/* Directory order: bytes compared unsigned, a prefix before its extensions
 * (what the kernel's binary search in erofs_namei expects). */
static int name_cmp(const char *a, size_t la, const char *b, size_t lb)
{
  int c = memcmp(a, b, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

static int dent_cmp(const void *a, const void *b, void *ctx)
{
  const struct tree *t = ctx;
  const struct tdent *x = a, *y = b;
  return name_cmp(dent_name(t, x), x->namelen, dent_name(t, y), y->namelen);
}

static uint8_t file_type(uint32_t mode)
{
  switch (mode & S_IFMT) {
  case S_IFREG: return EROFS_FT_REG_FILE;
  case S_IFDIR: return EROFS_FT_DIR;
  case S_IFLNK: return EROFS_FT_SYMLINK;
  default: return EROFS_FT_UNKNOWN;
  }
}

static uint64_t nchunks(const struct tnode *n)
{
  return n->size ? ((n->size - 1) >> n->chunkbits) + 1 : 0;
}

/* Bytes that follow inode N in the metadata area. */
static uint64_t inode_tail(const struct tree *t, const struct tnode *n)
{
  if (S_ISREG(n->mode) && n->chunkbits)
    return nchunks(n) * sizeof(struct erofs_inode_chunk_index);
  if (S_ISLNK(n->mode) && INODE_SIZE + n->size <= (1u << t->blkszbits))
    return n->size; /* inline target */
  return 0;
}

/* One entry of a directory as written: its children plus "." and "..". */
struct ent {
  const char *name;
  uint16_t len;
  uint32_t node;
};

/* Fill E with the entries of directory D in directory order; returns how many. */
static size_t dir_entries(const struct tree *t, uint32_t d, struct ent *e)
{
  const struct tnode *n = &t->nodes[d];
  struct ent dots[2] = { { ".", 1, d }, { "..", 2, n->parent } };
  size_t i = 0, j = 0, k = 0;
  while (i < n->ndents || j < 2) {
    const struct tdent *c = i < n->ndents ? &t->dents[n->first_dent + i] : NULL;
    if (j < 2 && (!c || name_cmp(dots[j].name, dots[j].len, dent_name(t, c), c->namelen) < 0)) {
      e[k++] = dots[j++];
    } else {
      e[k++] = (struct ent){ dent_name(t, c), c->namelen, c->node };
      i++;
    }
  }
  return k;
}

/* Pack entries into directory blocks: each block is an array of dirents then
 * their names; a block takes entries while they fit. With OUT NULL only
 * measures. Returns the directory's i_size (the last block is not padded). */
static uint64_t pack_dir(const struct tree *t, const struct ent *e, size_t n, uint8_t *out)
{
  uint64_t bs = 1u << t->blkszbits, pos = 0;
  for (size_t i = 0; i < n;) {
    size_t k = i;
    uint64_t used = 0;
    while (k < n && used + DIRENT_SIZE + e[k].len <= bs)
      used += DIRENT_SIZE + e[k++].len;
    if (out) {
      uint8_t *blk = out + pos;
      uint64_t nameoff = DIRENT_SIZE * (k - i);
      for (size_t j = i; j < k; j++) {
        const struct tnode *c = &t->nodes[e[j].node];
        struct erofs_dirent de = { .nid = c->nid, .nameoff = (uint16_t)nameoff, .file_type = file_type(c->mode) };
        erofs_put_dirent(blk + DIRENT_SIZE * (j - i), &de);
        memcpy(blk + nameoff, e[j].name, e[j].len);
        nameoff += e[j].len;
      }
    }
    if (k == n)
      return pos + used;
    pos += bs;
    i = k;
  }
  return pos;
}

/* Inode order: root, then breadth-first by sorted names; a hard-linked file
 * sits at its first name. Fills ORDER, numbers nodes (ino from 1). */
static size_t order_nodes(struct tree *t, uint32_t *order)
{
  size_t n = 0;
  order[n++] = 0;
  t->nodes[0].ino = 1;
  for (size_t head = 0; head < n; head++) {
    struct tnode *d = &t->nodes[order[head]];
    if (!S_ISDIR(d->mode))
      continue;
    for (uint32_t i = 0; i < d->ndents; i++) {
      uint32_t c = t->dents[d->first_dent + i].node;
      if (t->nodes[c].ino == 0) {
        t->nodes[c].ino = (uint32_t)n + 1;
        order[n++] = c;
      }
    }
  }
  return n;
}

static void encode_inode(const struct tree *t, const struct tnode *n, uint32_t nlink, uint8_t *meta)
{
  uint8_t *p = meta + n->nid * EROFS_INODE_SLOT;
  uint32_t i_u = n->blkaddr;
  if (n->layout == EROFS_INODE_CHUNK_BASED)
    i_u = (uint32_t)(n->chunkbits - t->blkszbits) | EROFS_CHUNK_FORMAT_INDEXES;
  struct erofs_inode_extended ie = {
    .i_format = EROFS_INODE_LAYOUT_EXTENDED | n->layout << EROFS_I_DATALAYOUT_BIT,
    .i_mode = (uint16_t)n->mode,
    .i_size = n->size,
    .i_u = i_u,
    .i_ino = n->ino,
    .i_uid = n->uid,
    .i_gid = n->gid,
    .i_mtime = (uint64_t)n->mtime,
    .i_mtime_nsec = n->mtime_nsec,
    .i_nlink = nlink,
  };
  erofs_put_inode(p, &ie);
  p += INODE_SIZE;

  if (n->layout == EROFS_INODE_FLAT_INLINE) {
    memcpy(p, t->names + n->target, n->size);
  } else if (n->layout == EROFS_INODE_CHUNK_BASED) {
    /* t->runs is NULL when no file has data (holes only): no arithmetic on it then. */
    const struct trun *r = NULL, *end = NULL;
    if (n->nruns > 0) {
      r = t->runs + n->first_run;
      end = r + n->nruns;
    }
    unsigned shift = n->chunkbits - t->blkszbits;
    for (uint64_t c = 0; c < nchunks(n); c++) {
      while (r != end && c >= r->first + r->count)
        r++;
      struct erofs_inode_chunk_index ci = { .blkaddr = EROFS_NULL_ADDR };
      if (r != end && c >= r->first)
        ci.blkaddr = r->blkaddr + (uint32_t)((c - r->first) << shift);
      erofs_put_chunk_index(p + c * sizeof(struct erofs_inode_chunk_index), &ci);
    }
  }
}

/* The state of one layout_build: what the steps below share. */
struct build {
  struct tree *t;
  struct layout *out;
  uint64_t bs, max_size;
  uint32_t *order;          /* nodes in inode order */
  size_t count;
  struct ent *ents;         /* room for the entries of the largest directory */
  uint64_t blk;             /* next free block of the data area */
  size_t doff, loff;        /* fill of out->dirs, out->links */
  char *err;
  size_t errlen;
};

/* Steps return 0, -1 when memory ran out, or -2 with a message in ERR. */
__attribute__((format(printf, 2, 3)))
static int build_fail(struct build *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->err, b->errlen, fmt, ap);
  va_end(ap);
  return -2;
}

/* Sort every directory (the sorted order also places the inodes); returns
 * the most entries one directory writes. */
static size_t sort_dirs(struct tree *t)
{
  size_t maxents = 2;
  for (size_t i = 0; i < t->nnodes; i++) {
    struct tnode *n = &t->nodes[i];
    if (S_ISDIR(n->mode)) {
      qsort_r(t->dents + n->first_dent, n->ndents, sizeof *t->dents, dent_cmp, t);
      if (n->ndents + 2 > maxents)
        maxents = n->ndents + 2;
    }
  }
  return maxents;
}

/* Metadata: each inode's layout and position, hence its nid. */
static int place_inodes(struct build *b)
{
  struct tree *t = b->t;
  uint64_t bs = b->bs, pos = META_START;
  for (size_t i = 0; i < b->count; i++) {
    struct tnode *n = &t->nodes[b->order[i]];
    uint64_t tail = inode_tail(t, n);
    if (S_ISREG(n->mode) && n->chunkbits)
      n->layout = EROFS_INODE_CHUNK_BASED;
    else if (S_ISLNK(n->mode) && tail)
      n->layout = EROFS_INODE_FLAT_INLINE;
    else
      n->layout = EROFS_INODE_FLAT_PLAIN;
    /* An inline target must share its inode's block (Linux refuses others). */
    if (n->layout == EROFS_INODE_FLAT_INLINE && (pos & (bs - 1)) + INODE_SIZE + tail > bs)
      pos = round_up(pos, bs);
    n->nid = pos / EROFS_INODE_SLOT;
    pos = round_up(pos + INODE_SIZE + tail, INODE_SIZE); /* an inode never straddles blocks */
  }
  if (t->nodes[0].nid > UINT16_MAX) /* cannot happen: root comes first */
    return build_fail(b, "root inode out of reach of the superblock");
  b->out->meta_len = round_up(pos, b->bs);
  b->blk = b->out->meta_len / b->bs;
  return 0;
}

/* One extent of the data area: a directory's blocks, a long symlink's
 * target, or a slice of a host file (a whole flat file, or one run of a
 * chunk-based file). */
enum piece_kind { PIECE_DIR, PIECE_LINK, PIECE_FILE };

struct piece {
  enum piece_kind kind;
  uint32_t node;
  uint32_t *blkaddr;        /* where its first block is recorded */
  uint64_t offset, len;     /* PIECE_FILE: the slice of the host file */
};

typedef int (*piece_fn)(struct build *b, const struct piece *p);

/* The data area in the order its blocks are given out: directories, long
 * symlinks, then file data, each in inode order. Placing and emitting both
 * walk this one sequence, so they cannot disagree. */
static int walk_data(struct build *b, piece_fn fn)
{
  struct tree *t = b->t;
  int r = 0;
  for (int pass = 0; pass < 3 && r == 0; pass++) {
    for (size_t i = 0; i < b->count && r == 0; i++) {
      uint32_t id = b->order[i];
      struct tnode *n = &t->nodes[id];
      struct piece p = { .node = id, .blkaddr = &n->blkaddr, .len = n->size };
      if (pass == 0 && S_ISDIR(n->mode)) {
        p.kind = PIECE_DIR;
        r = fn(b, &p);
      } else if (pass == 1 && S_ISLNK(n->mode) && n->layout == EROFS_INODE_FLAT_PLAIN) {
        p.kind = PIECE_LINK;
        r = fn(b, &p);
      } else if (pass == 2 && S_ISREG(n->mode) && n->chunkbits) {
        for (uint32_t k = 0; k < n->nruns && r == 0; k++) {
          struct trun *ru = &t->runs[n->first_run + k]; /* t->runs may be NULL when nruns is 0 */
          uint64_t end = (ru->first + ru->count) << n->chunkbits;
          p = (struct piece){ .kind = PIECE_FILE, .node = id, .blkaddr = &ru->blkaddr,
                              .offset = ru->first << n->chunkbits };
          p.len = (end > n->size ? n->size : end) - p.offset;
          r = fn(b, &p);
        }
      } else if (pass == 2 && S_ISREG(n->mode) && n->size) {
        p.kind = PIECE_FILE;
        r = fn(b, &p);
      }
    }
  }
  return r;
}

/* Measure mode: give the piece its blocks (a directory's size is known only
 * once its entries are packed). */
static int place_piece(struct build *b, const struct piece *p)
{
  struct tnode *n = &b->t->nodes[p->node];
  uint64_t len = p->len;
  if (p->kind == PIECE_DIR) {
    len = n->size = pack_dir(b->t, b->ents, dir_entries(b->t, p->node, b->ents), NULL);
    b->out->dirs_len += len;
  } else if (p->kind == PIECE_LINK) {
    b->out->links_len += len;
  }
  *p->blkaddr = (uint32_t)b->blk;
  b->blk += round_up(len, b->bs) / b->bs;
  if (b->blk >= EROFS_NULL_ADDR || (b->max_size && b->blk * b->bs > b->max_size))
    return build_fail(b, "the trees need an image over %llu bytes; raise the slot size or share less",
                      (unsigned long long)(b->max_size ? b->max_size : (uint64_t)EROFS_NULL_ADDR * b->bs));
  return 0;
}

/* Emit mode: generate the piece's bytes (or map its host file) as the next
 * regions, which must reach the block the measure mode gave it. */
static int emit_piece(struct build *b, const struct piece *p)
{
  const struct tnode *n = &b->t->nodes[p->node];
  struct layout *out = b->out;
  struct regions *rg = &out->regions;
  if (regions_size(rg) != *p->blkaddr * b->bs)
    return build_fail(b, "internal error: data of inode %u not at block %u", n->ino, *p->blkaddr);
  int r;
  if (p->kind == PIECE_DIR) {
    uint8_t *mem = out->dirs + b->doff;
    pack_dir(b->t, b->ents, dir_entries(b->t, p->node, b->ents), mem);
    r = regions_append_memory(rg, mem, p->len);
    b->doff += p->len;
  } else if (p->kind == PIECE_LINK) {
    uint8_t *mem = out->links + b->loff;
    memcpy(mem, b->t->names + n->target, p->len);
    r = regions_append_memory(rg, mem, p->len);
    b->loff += p->len;
  } else {
    r = regions_append_file(rg, n->file, p->offset, p->len);
    out->mapped_bytes += p->len;
  }
  return r == 0 ? regions_pad(rg, b->bs) : r;
}

/* The metadata area: every inode, then the superblock. */
static int encode_meta(struct build *b)
{
  const struct tree *t = b->t;
  struct layout *out = b->out;
  out->meta = calloc(1, out->meta_len);
  out->dirs = calloc(1, out->dirs_len ? out->dirs_len : 1);
  out->links = malloc(out->links_len ? out->links_len : 1);
  if (!out->meta || !out->dirs || !out->links)
    return -1;

  bool chunked = false;
  for (size_t i = 0; i < b->count; i++) {
    const struct tnode *n = &t->nodes[b->order[i]];
    uint32_t nlink = n->nlink;
    if (S_ISDIR(n->mode)) {
      nlink = 2;
      for (uint32_t k = 0; k < n->ndents; k++)
        nlink += S_ISDIR(t->nodes[t->dents[n->first_dent + k].node].mode);
    }
    chunked |= n->layout == EROFS_INODE_CHUNK_BASED;
    encode_inode(t, n, nlink, out->meta);
  }

  struct erofs_super_block sb = {
    .magic = EROFS_SUPER_MAGIC,
    .blkszbits = (uint8_t)t->blkszbits,
    .root_nid = (uint16_t)t->nodes[0].nid,
    .inos = b->count,
    .build_time = (uint64_t)t->now,
    .build_time_nsec = t->now_nsec,
    .blocks = (uint32_t)b->blk,
    .meta_blkaddr = 0,
    .feature_incompat = chunked ? EROFS_FEATURE_INCOMPAT_CHUNKED_FILE : 0,
  };
  memcpy(sb.volume_name, "vmexec-share", 12);
  if (getrandom(sb.uuid, sizeof sb.uuid, 0) != sizeof sb.uuid)
    memset(sb.uuid, 0x5a, sizeof sb.uuid);
  erofs_put_super(out->meta + EROFS_SUPER_OFFSET, &sb);
  return 0;
}

int layout_build(struct tree *t, uint64_t max_size, struct layout *out, char *err, size_t errlen)
{
  struct build b = { .t = t, .out = out, .bs = 1u << t->blkszbits, .max_size = max_size,
                     .err = err, .errlen = errlen };
  memset(out, 0, sizeof *out);
  regions_init(&out->regions);
  int r = -1;
  b.order = malloc(t->nnodes * sizeof *b.order);
  if (b.order)
    b.ents = malloc(sort_dirs(t) * sizeof *b.ents);
  if (b.ents) {
    b.count = order_nodes(t, b.order);
    r = place_inodes(&b);
  }
  if (r == 0)
    r = walk_data(&b, place_piece);
  if (r == 0)
    r = encode_meta(&b);
  /* Regions, in the order blocks were given out. */
  if (r == 0)
    r = regions_append_memory(&out->regions, out->meta, out->meta_len);
  if (r == 0)
    r = walk_data(&b, emit_piece);
  if (r == 0 && regions_size(&out->regions) != b.blk * b.bs)
    r = build_fail(&b, "internal error: regions end at %llu, blocks at %llu",
                   (unsigned long long)regions_size(&out->regions), (unsigned long long)(b.blk * b.bs));
  if (r == -1)
    snprintf(err, errlen, "out of memory laying out the image");
  free(b.order);
  free(b.ents);
  if (r)
    layout_free(out);
  return r ? -1 : 0;
}

void layout_free(struct layout *l)
{
  free(l->meta);
  free(l->dirs);
  free(l->links);
  regions_free(&l->regions);
  memset(l, 0, sizeof *l);
}
