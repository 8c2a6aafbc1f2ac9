/* A region table: the virtual disk as a sorted run of byte ranges, each
 * answered from generated metadata in memory, a slice of a host file, or
 * zeroes (after nbdkit's common/regions). Regions are appended in order and
 * cover [0, regions_size()) without gaps; a read binary-searches the first
 * region and walks on. The table owns no memory that regions point to. */
#ifndef NBD_SHARE_REGIONS_H
#define NBD_SHARE_REGIONS_H

#include <stddef.h>
#include <stdint.h>

enum region_kind {
  REGION_ZERO,
  REGION_MEMORY,
  REGION_FILE,
};

struct region {
  uint64_t start, len;
  enum region_kind kind;
  uint32_t file;          /* REGION_FILE: index in the caller's file table */
  union {
    const uint8_t *mem;   /* REGION_MEMORY: len bytes */
    uint64_t offset;      /* REGION_FILE: offset in the host file of start */
  } u;
};

struct regions {
  struct region *v;
  size_t n, cap;
};

/* Reads LEN bytes at OFFSET of host file FILE into BUF: 0, or -1 with errno. */
typedef int (*region_file_reader)(void *opaque, uint32_t file, void *buf, size_t len, uint64_t offset);

void regions_init(struct regions *r);
void regions_free(struct regions *r);

/* End of the last region. */
uint64_t regions_size(const struct regions *r);

/* Append a region at regions_size(). Zero-length appends are ignored;
 * neighbouring zero regions merge, as do file regions that continue each
 * other. 0, or -1 if memory ran out. */
int regions_append_zero(struct regions *r, uint64_t len);
int regions_append_memory(struct regions *r, const void *mem, uint64_t len);
int regions_append_file(struct regions *r, uint32_t file, uint64_t offset, uint64_t len);

/* Pad with zeroes up to the next multiple of ALIGN (a power of two). */
int regions_pad(struct regions *r, uint64_t align);

/* The region holding OFFSET, or NULL past the end. */
const struct region *regions_find(const struct regions *r, uint64_t offset);

/* Fill BUF with LEN bytes at OFFSET; bytes past the end read as zero.
 * 0, or -1 with errno from READER. */
int regions_read(const struct regions *r, void *buf, size_t len, uint64_t offset,
                 region_file_reader reader, void *opaque);

#endif
