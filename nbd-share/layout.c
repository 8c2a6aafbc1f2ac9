/* EROFS layout and encoding: see layout.h, and erofs-format.h for the
 * structures. All inodes are extended (64 bytes): they carry 64-bit sizes,
 * 32-bit uid/gid/nlink and per-inode mtime with nanoseconds, which the
 * 32-byte compact form cannot. */
#include "layout.h"

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
    const struct trun *r = t->runs + n->first_run, *end = r + n->nruns;
    unsigned shift = n->chunkbits - t->blkszbits;
    for (uint64_t c = 0; c < nchunks(n); c++) {
      while (r < end && c >= r->first + r->count)
        r++;
      struct erofs_inode_chunk_index ci = { .blkaddr = EROFS_NULL_ADDR };
      if (r < end && c >= r->first)
        ci.blkaddr = r->blkaddr + (uint32_t)((c - r->first) << shift);
      erofs_put_chunk_index(p + c * sizeof(struct erofs_inode_chunk_index), &ci);
    }
  }
}

/* The regions must reach block BLKADDR exactly when its data is appended:
 * a cheap guard that inodes and regions agree. 0, or -2. */
static int expect_at(const struct regions *rg, uint32_t blkaddr, uint64_t bs)
{
  return regions_size(rg) == blkaddr * bs ? 0 : -2;
}

int layout_build(struct tree *t, uint64_t max_size, struct layout *out, char *err, size_t errlen)
{
  const uint64_t bs = 1u << t->blkszbits;
  memset(out, 0, sizeof *out);
  regions_init(&out->regions);
  uint32_t *order = malloc(t->nnodes * sizeof *order);
  struct ent *ents = NULL;
  size_t maxents = 2;
  int ret = -1;
  if (!order)
    goto oom;

  /* Sort every directory; the sorted order also places the inodes. */
  for (size_t i = 0; i < t->nnodes; i++) {
    struct tnode *n = &t->nodes[i];
    if (S_ISDIR(n->mode)) {
      qsort_r(t->dents + n->first_dent, n->ndents, sizeof *t->dents, dent_cmp, t);
      if (n->ndents + 2 > maxents)
        maxents = n->ndents + 2;
    }
  }
  ents = malloc(maxents * sizeof *ents);
  if (!ents)
    goto oom;
  size_t count = order_nodes(t, order);

  /* Metadata: inode positions, hence nids. */
  uint64_t pos = META_START;
  for (size_t i = 0; i < count; i++) {
    struct tnode *n = &t->nodes[order[i]];
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
  if (t->nodes[0].nid > UINT16_MAX) { /* cannot happen: root comes first */
    snprintf(err, errlen, "root inode out of reach of the superblock");
    goto out;
  }
  out->meta_len = round_up(pos, bs);

  /* Blocks: directories, long symlinks, then file data, in order. */
  uint64_t blk = out->meta_len / bs;
  for (int pass = 0; pass < 3; pass++) {
    for (size_t i = 0; i < count; i++) {
      struct tnode *n = &t->nodes[order[i]];
      if (pass == 0 && S_ISDIR(n->mode)) {
        n->size = pack_dir(t, ents, dir_entries(t, order[i], ents), NULL);
        n->blkaddr = (uint32_t)blk;
        blk += round_up(n->size, bs) / bs;
        out->dirs_len += n->size;
      } else if (pass == 1 && S_ISLNK(n->mode) && n->layout == EROFS_INODE_FLAT_PLAIN) {
        n->blkaddr = (uint32_t)blk;
        blk += round_up(n->size, bs) / bs;
        out->links_len += n->size;
      } else if (pass == 2 && S_ISREG(n->mode) && n->chunkbits) {
        struct trun *r = t->runs + n->first_run;
        for (uint32_t k = 0; k < n->nruns; k++) {
          uint64_t start = r[k].first << n->chunkbits;
          uint64_t end = (r[k].first + r[k].count) << n->chunkbits;
          if (end > n->size)
            end = n->size;
          r[k].blkaddr = (uint32_t)blk;
          blk += round_up(end - start, bs) / bs;
        }
      } else if (pass == 2 && S_ISREG(n->mode) && n->size) {
        n->blkaddr = (uint32_t)blk;
        blk += round_up(n->size, bs) / bs;
      }
      if (blk >= EROFS_NULL_ADDR || (max_size && blk * bs > max_size)) {
        snprintf(err, errlen, "the trees need an image over %llu bytes; raise the slot size or share less",
                 (unsigned long long)(max_size ? max_size : (uint64_t)EROFS_NULL_ADDR * bs));
        goto out;
      }
    }
  }

  /* Encode. */
  out->meta = calloc(1, out->meta_len);
  out->dirs = malloc(out->dirs_len ? out->dirs_len : 1);
  out->links = malloc(out->links_len ? out->links_len : 1);
  if (!out->meta || !out->dirs || !out->links)
    goto oom;

  bool chunked = false;
  for (size_t i = 0; i < count; i++) {
    const struct tnode *n = &t->nodes[order[i]];
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
    .inos = count,
    .build_time = (uint64_t)t->now,
    .build_time_nsec = t->now_nsec,
    .blocks = (uint32_t)blk,
    .meta_blkaddr = 0,
    .feature_incompat = chunked ? EROFS_FEATURE_INCOMPAT_CHUNKED_FILE : 0,
  };
  memcpy(sb.volume_name, "vmexec-share", 12);
  if (getrandom(sb.uuid, sizeof sb.uuid, 0) != sizeof sb.uuid)
    memset(sb.uuid, 0x5a, sizeof sb.uuid);
  erofs_put_super(out->meta + EROFS_SUPER_OFFSET, &sb);

  /* Regions, in the order blocks were given out. */
  struct regions *rg = &out->regions;
  size_t doff = 0, loff = 0;
  if (regions_append_memory(rg, out->meta, out->meta_len) == -1)
    goto oom;
  for (int pass = 0; pass < 3; pass++) {
    for (size_t i = 0; i < count; i++) {
      const struct tnode *n = &t->nodes[order[i]];
      int r = 0;
      if (pass == 0 && S_ISDIR(n->mode)) {
        size_t len = pack_dir(t, ents, dir_entries(t, order[i], ents), NULL);
        memset(out->dirs + doff, 0, len);
        pack_dir(t, ents, dir_entries(t, order[i], ents), out->dirs + doff);
        if ((r = expect_at(rg, n->blkaddr, bs)) == 0)
          r = regions_append_memory(rg, out->dirs + doff, len);
        doff += len;
      } else if (pass == 1 && S_ISLNK(n->mode) && n->layout == EROFS_INODE_FLAT_PLAIN) {
        memcpy(out->links + loff, t->names + n->target, n->size);
        if ((r = expect_at(rg, n->blkaddr, bs)) == 0)
          r = regions_append_memory(rg, out->links + loff, n->size);
        loff += n->size;
      } else if (pass == 2 && S_ISREG(n->mode) && n->chunkbits) {
        const struct trun *ru = t->runs + n->first_run;
        for (uint32_t k = 0; k < n->nruns && r == 0; k++) {
          uint64_t start = ru[k].first << n->chunkbits;
          uint64_t end = (ru[k].first + ru[k].count) << n->chunkbits;
          if (end > n->size)
            end = n->size;
          if ((r = expect_at(rg, ru[k].blkaddr, bs)) == 0)
            r = regions_append_file(rg, n->file, start, end - start);
          if (r == 0)
            r = regions_pad(rg, bs);
          out->mapped_bytes += end - start;
        }
      } else if (pass == 2 && S_ISREG(n->mode) && n->size) {
        if ((r = expect_at(rg, n->blkaddr, bs)) == 0)
          r = regions_append_file(rg, n->file, 0, n->size);
        out->mapped_bytes += n->size;
      }
      if (r == -2) {
        snprintf(err, errlen, "internal error: data of inode %u not at block %u", n->ino, n->blkaddr);
        goto out;
      }
      if (r == -1 || regions_pad(rg, bs) == -1)
        goto oom;
    }
  }
  if (regions_size(rg) != blk * bs) {
    snprintf(err, errlen, "internal error: regions end at %llu, blocks at %llu",
             (unsigned long long)regions_size(rg), (unsigned long long)(blk * bs));
    goto out;
  }
  ret = 0;
  goto out;

oom:
  snprintf(err, errlen, "out of memory laying out the image");
out:
  free(order);
  free(ents);
  if (ret)
    layout_free(out);
  return ret;
}

void layout_free(struct layout *l)
{
  free(l->meta);
  free(l->dirs);
  free(l->links);
  regions_free(&l->regions);
  memset(l, 0, sizeof *l);
}
