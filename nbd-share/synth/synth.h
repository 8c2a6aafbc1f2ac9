/* Synthesis of a read-only EROFS image of host directory trees: the pure
 * module behind the vmexec-share nbdkit plugin (it knows nothing of nbdkit).
 *
 * synth_build() scans the roots and lays out an image in which every root
 * appears at its absolute path (the directories above the roots are
 * synthesised, owned by root, mode 0755). Metadata (superblock, inodes,
 * directories, symlink targets, chunk indexes) is generated into memory;
 * file data is not copied: the image's data blocks map to the host files,
 * which synth_read() reads at the time of the read. Cost: one lstat per
 * entry (plus SEEK_DATA/SEEK_HOLE on sparse files), memory O(entries). */
#ifndef NBD_SHARE_SYNTH_H
#define NBD_SHARE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "synth-log.h"

struct synth_options {
  unsigned blkszbits;     /* 12 (4 KiB) by default; must equal the guest's PAGE_SHIFT on Linux 6.1 */
  uint64_t max_size;      /* refuse images larger than this (0: 2^32 blocks) */
  unsigned cache_fds;     /* host descriptors kept open (0: 64) */
  synth_log_fn log;       /* may be NULL */
  void *log_opaque;
};

struct synth_stats {
  uint64_t inodes, files, dirs, symlinks, hardlinks, skipped, chunked;
  uint64_t image_size, meta_bytes, mapped_bytes;
  double scan_seconds, layout_seconds;
};

struct synth_image;

/* Build an image of ROOTS (absolute paths). 0, or -1 with a one-line message
 * in ERR. Roots that do not exist are left out with a log line. */
int synth_build(char *const *roots, size_t nroots, const struct synth_options *opt,
                struct synth_image **out, char *err, size_t errlen);

/* LEN bytes of the image at OFFSET (zeroes past its end). Thread-safe.
 * 0, or -1 with errno (an I/O error reading a host file). */
int synth_read(struct synth_image *img, void *buf, size_t len, uint64_t offset);

uint64_t synth_size(const struct synth_image *img);
const struct synth_stats *synth_stats(const struct synth_image *img);
void synth_free(struct synth_image *img);

#endif
