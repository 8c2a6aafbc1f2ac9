/* A cheap "did anything change under these roots?" check for the supervisor:
 * a 128-bit hash (XXH3) of every entry's path and lstat metadata (type, mode,
 * owner, size, mtime and ctime with nanoseconds, inode, device, link count).
 * It costs one lstat per entry and reads no file data. Any change that a new
 * image would show changes the hash: content writes move mtime/ctime, renames
 * and deletions move the directory's, chmod/chown move ctime. */
#ifndef NBD_SHARE_FINGERPRINT_H
#define NBD_SHARE_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "synth-log.h"

struct synth_fingerprint {
  uint64_t low, high;
};

/* 0, or -1 with ERR (a root that is not an absolute path, out of memory).
 * Missing roots hash as missing: creating one later changes the result. */
int synth_fingerprint(char *const *roots, size_t nroots, struct synth_fingerprint *out,
                      synth_log_fn log, void *log_opaque, char *err, size_t errlen);

static inline int synth_fingerprint_equal(const struct synth_fingerprint *a, const struct synth_fingerprint *b)
{
  return a->low == b->low && a->high == b->high;
}

#endif
