/* Generations: one large virtual disk cut into fixed slots; slot N holds
 * generation N, a complete EROFS image that the guest loop-mounts at offset
 * N * slot_size. A generation is built once and never changes, so a guest
 * never reads through a stale page cache: a changed tree gets a new slot.
 *
 * The supervisor asks for generations through the control directory:
 *   gen-N.roots    one absolute root per line (write it atomically: rename)
 *   gen-N.retired  the guest let go of N: its memory is freed (removing
 *                  gen-N.roots does the same)
 *   gen-N.ask      is N still true to the host? (a lazy generation)
 * and the plugin answers with
 *   gen-N.info     key=value statistics after N was built
 *   gen-N.error    one line, if N could not be built (its slot reads as zeroes)
 *   gen-N.stale    N no longer shows the host as it is (written before
 *                  gen-N.ask is removed)
 *   gen-N.changed  else, appended before gen-N.ask is removed: the host
 *                  paths of regular files N showed that changed since (each
 *                  ending with a NUL; lazy_take_changed); the supervisor
 *                  removes it when it sends them to the guest
 * A roots file of the one line "/" asks for the lazy image of the whole
 * host (lazy.h); any other, for an image of the roots scanned whole.
 * Generation N is built on the first read of its slot; a slot without a
 * roots file reads as zeroes. When the plugin has freed a retired slot, it
 * removes the slot's files, gen-N.retired last: from then on the supervisor
 * may write a new gen-N.roots, which is built afresh (slots are reused; the
 * guest reads a released slot's range no more, and it reads each generation
 * through a partition of its own, whose page cache dies with it, or a loop
 * device with direct I/O: no cache of the old image survives in the guest).
 * No nbdkit here: tests drive it directly. */
#ifndef NBD_SHARE_GENS_H
#define NBD_SHARE_GENS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "synth-log.h"

struct gens_config {
  const char *control_dir;
  uint64_t export_size, slot_size;  /* slot_size divides export_size */
  unsigned blkszbits;
  bool inline_data;          /* lazy images: small files' data after their inodes (lazy.h) */
  synth_log_fn log;                 /* debug lines */
  synth_log_fn error;               /* failures worth the operator's attention */
  void *log_opaque;
};

struct gens;

/* NULL with ERR on bad configuration or no memory. */
struct gens *gens_new(const struct gens_config *c, char *err, size_t errlen);
void gens_free(struct gens *g);

/* LEN bytes of the disk at OFFSET, building generations on demand.
 * Thread-safe. 0, or -1 with errno. */
int gens_read(struct gens *g, void *buf, size_t len, uint64_t offset);

/* 1 if generation N no longer shows the host as it is (a lazy image saw a
 * change in what it has read; a failed build), else 0. The supervisor asks
 * through gen-N.ask (see gens.c); tests call it directly. */
int gens_stale(struct gens *g, uint64_t n);

/* After gens_stale(N) said 0: what lazy_take_changed says of N (NULL: no
 * changed file, or not a lazy generation). */
char *gens_take_changed(struct gens *g, uint64_t n, size_t *len);

/* Free retired generations now (gens_read also does it about once a second). */
void gens_sweep(struct gens *g);

/* Sweep from a thread of our own whenever the control directory changes
 * (the plugin calls this after nbdkit forked). 0, or -1 with ERR. */
int gens_watch(struct gens *g, char *err, size_t errlen);

#endif
