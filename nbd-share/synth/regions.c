/* Region table: see regions.h. */
#include "regions.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

void regions_init(struct regions *r)
{
  r->v = NULL;
  r->n = r->cap = 0;
}

void regions_free(struct regions *r)
{
  free(r->v);
  regions_init(r);
}

uint64_t regions_size(const struct regions *r)
{
  return r->n ? r->v[r->n - 1].start + r->v[r->n - 1].len : 0;
}

static struct region *append(struct regions *r, uint64_t len, enum region_kind kind)
{
  struct region *v = grow(r->v, &r->cap, r->n + 1, sizeof *v, 64);
  if (!v)
    return NULL;
  r->v = v;
  struct region *g = &r->v[r->n++];
  memset(g, 0, sizeof *g);
  g->start = r->n > 1 ? r->v[r->n - 2].start + r->v[r->n - 2].len : 0;
  g->len = len;
  g->kind = kind;
  return g;
}

int regions_append_zero(struct regions *r, uint64_t len)
{
  if (len == 0)
    return 0;
  if (r->n && r->v[r->n - 1].kind == REGION_ZERO) {
    r->v[r->n - 1].len += len;
    return 0;
  }
  return append(r, len, REGION_ZERO) ? 0 : -1;
}

int regions_append_memory(struct regions *r, const void *mem, uint64_t len)
{
  if (len == 0)
    return 0;
  struct region *g = append(r, len, REGION_MEMORY);
  if (!g)
    return -1;
  g->u.mem = mem;
  return 0;
}

int regions_append_file(struct regions *r, uint32_t file, uint64_t offset, uint64_t len)
{
  if (len == 0)
    return 0;
  if (r->n) {
    struct region *last = &r->v[r->n - 1];
    if (last->kind == REGION_FILE && last->file == file && last->u.offset + last->len == offset) {
      last->len += len;
      return 0;
    }
  }
  struct region *g = append(r, len, REGION_FILE);
  if (!g)
    return -1;
  g->file = file;
  g->u.offset = offset;
  return 0;
}

int regions_pad(struct regions *r, uint64_t align)
{
  uint64_t end = regions_size(r);
  return regions_append_zero(r, (align - (end & (align - 1))) & (align - 1));
}

const struct region *regions_find(const struct regions *r, uint64_t offset)
{
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct region *g = &r->v[mid];
    if (offset < g->start)
      hi = mid;
    else if (offset - g->start >= g->len)
      lo = mid + 1;
    else
      return g;
  }
  return NULL;
}

int regions_read(const struct regions *r, void *buf, size_t len, uint64_t offset,
                 region_file_reader reader, void *opaque)
{
  uint8_t *out = buf;
  const struct region *g = regions_find(r, offset);
  const struct region *end = r->v + r->n;
  while (len > 0) {
    if (!g || g == end) { /* past the end of the image */
      memset(out, 0, len);
      return 0;
    }
    uint64_t within = offset - g->start;
    size_t n = g->len - within < len ? (size_t)(g->len - within) : len;
    switch (g->kind) {
    case REGION_ZERO:
      memset(out, 0, n);
      break;
    case REGION_MEMORY:
      memcpy(out, g->u.mem + within, n);
      break;
    case REGION_FILE:
      if (reader(opaque, g->file, out, n, g->u.offset + within) == -1)
        return -1;
      break;
    }
    out += n;
    offset += n;
    len -= n;
    g++;
  }
  return 0;
}
