/* The lazy image: a read-only EROFS view of a whole host tree (the host's /
 * for the guest) that is laid out while the guest reads it, so that its cost
 * follows what the guest looks at, never the size of the host.
 *
 * Nothing is scanned up front: the root directory is read when the image is
 * made, and from then on
 *   - a directory's children get inode slots (hence nids) in fresh blocks
 *     when one of its directory blocks is first read;
 *   - an inode is taken from the host (lstat) when the block holding it is
 *     first read: a directory is then read (one readdir of it: its size is
 *     in the inode), a file gets its data blocks (mapped to the host file,
 *     read when the guest reads them, as in synth.c), a symlink its target.
 * Blocks are handed out in increasing order and never below one the guest
 * has read, so what the guest has read never changes under it: the image
 * only grows into blocks nobody has seen. Every inode is a 64-byte extended
 * one with flat data (no chunks), which keeps the slots fixed; a sparse
 * file costs address space (not memory) for its holes. With inline_data a
 * file smaller than a block, or a symlink's target, follows its inode
 * instead (its slot sized from an lstat when its directory is placed).
 *
 * Change detection: each directory read is watched (inotify) before it is
 * read. lazy_stale() answers whether anything the image has shown changed
 * since (a listing the guest read a block of, or an inode it gave out): a
 * new image is then needed for the next call, and an unchanged image is
 * reused whatever happened elsewhere on the host. A directory whose names
 * changed while the guest had at most its inode is read again (at the next
 * lazy_stale, or when the guest first reads it); its size is whole blocks
 * and its link count 1, so the inode still holds as long as the listing
 * fills as many blocks (else the image is stale). A regular file of one name
 * whose inode the image gave out and that changed in place, or was renamed
 * over (vmexec's write-back), does not make it stale: lazy_take_changed
 * hands out its path, and the guest gets its new bytes another way (the
 * agent's patch layer over the generation, nbd-share/README.md). */
#ifndef NBD_SHARE_LAZY_H
#define NBD_SHARE_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "synth-log.h"

struct lazy_options {
  const char *root;       /* the host directory shown as the image's root ("/" by default) */
  unsigned blkszbits;     /* 12 by default: the guest's PAGE_SHIFT */
  uint64_t size;          /* bytes the image may grow to (the slot), at most 2^32 blocks */
  unsigned cache_fds;     /* host descriptors kept open (0: 64) */
  bool inline_data;       /* a small file's data, a symlink's target, after its inode (for a
                             guest kernel that reads metadata ahead: common.patch) */
  synth_log_fn log;       /* may be NULL */
  void *log_opaque;
};

/* What has been laid out so far. */
struct lazy_stats {
  uint64_t inodes, dirs, dirents, blocks;
};

struct lazy_image;

/* Read the root and make the image. 0, or -1 with one line in ERR. With
 * root "/", the host's /proc, /sys, /dev and /run are left out: they are
 * the guest's own and reading them could block. */
int lazy_new(const struct lazy_options *opt, struct lazy_image **out, char *err, size_t errlen);

/* LEN bytes at OFFSET, laying out what they cover. Thread-safe. 0, or -1
 * with errno (an I/O error reading a host file). */
int lazy_read(struct lazy_image *img, void *buf, size_t len, uint64_t offset);

/* True once a directory the image has read changed its names, or an entry
 * whose inode it gave out changed, on the host (or could not be watched). */
bool lazy_stale(struct lazy_image *img);

/* After lazy_stale said false: the host paths of the regular files changed
 * since the ask before (see above), each ending with a NUL, in a malloc'ed
 * buffer of *LEN bytes, or NULL (none). Taken once: the next ask starts an
 * empty list. */
char *lazy_take_changed(struct lazy_image *img, size_t *len);

struct lazy_stats lazy_stats(struct lazy_image *img);
void lazy_free(struct lazy_image *img);

#endif
