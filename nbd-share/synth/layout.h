/* Lay out a scanned tree (tree.h) as an uncompressed EROFS image: metadata
 * is encoded into memory, file data becomes regions that point into host
 * files. Internal to nbd-share; see synth.h for the entry points.
 *
 * Image layout, in blocks of 1 << blkszbits:
 *   metadata: superblock at byte 1024, then every inode (extended, 64-byte
 *             aligned, root first, then breadth-first so that a directory's
 *             children sit together); inline symlink targets and chunk
 *             indexes follow their inode
 *   directory blocks, long symlink targets  (memory)
 *   file data: flat files contiguous, chunk-based files only their data
 *             chunks                        (host files, zero-padded) */
#ifndef NBD_SHARE_LAYOUT_H
#define NBD_SHARE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "regions.h"
#include "tree.h"

struct layout {
  uint8_t *meta, *dirs, *links;
  size_t meta_len, dirs_len, links_len;
  struct regions regions;
  uint64_t mapped_bytes;   /* bytes of host files the image maps */
};

/* MAX_SIZE: largest image allowed (0: only the 2^32-block limit).
 * 0, or -1 with ERR. T's nodes and dents are modified (sorted, placed). */
int layout_build(struct tree *t, uint64_t max_size, struct layout *out, char *err, size_t errlen);
void layout_free(struct layout *l);

#endif
