/* Applying a run's changes to the host (WIRE_WB frames), confined to the
 * writable roots of the call (see writeback.c). */
#ifndef VMEXEC_WRITEBACK_H
#define VMEXEC_WRITEBACK_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "share-roots.h"
#include "wire.h"

/* A directory the guest replaced (a DELETE, then a DIR of the same path): its
 * new tree is built under a temporary name next to it and swapped in whole. */
struct wb_replacement {
  char path[PATH_MAX];   /* the guest's path; "" when none is being built */
  int parent_fd, temp_fd;
  char base[NAME_MAX + 1], temp[64];
};

struct writeback {
  const struct share_roots *roots;
  int root_fd[SHARE_MAX_ROOTS]; /* the writable roots, opened at init; -1 */
  unsigned umask;               /* the caller's, applied to every mode */
  /* the file being received */
  int file_fd, parent_fd;
  uint64_t file_left;
  unsigned mode;
  bool file_replaces;    /* it replaces a path the guest deleted (a directory, maybe) */
  struct timespec mtime; /* the guest's, given to the file when it is whole */
  char path[PATH_MAX], base[NAME_MAX + 1], temp[64];
  char deleted[PATH_MAX]; /* a DELETE waiting for the next change; "" */
  struct wb_replacement repl;
  char **late;            /* DELETEs applied at the end */
  size_t nlate;
  struct { dev_t dev; ino_t ino; } *swept; /* directories swept of leftovers */
  size_t nswept;
  unsigned applied, refused;
  unsigned lost; /* refused for a full or failing host disk (ENOSPC, EIO, ...) */
};

/* Opens the writable roots (before the run starts: nothing the run does can
 * swap them) and reads the umask. Every write-back ends with
 * writeback_finish or writeback_abort (until then, exit() aborts it). */
void writeback_init(struct writeback *wb, const struct share_roots *roots);
void writeback_frame(struct writeback *wb, uint16_t type, const uint8_t *payload, size_t len);
/* The end of the write-back (WIRE_EXIT): the last replaced directory is
 * swapped in, the deletes are applied. */
void writeback_finish(struct writeback *wb);
/* The write-back is cut short (the connection lost, vmexec failing): every
 * temporary file and directory goes, the host keeps its old trees. Also run
 * at exit() while a write-back is in progress. */
void writeback_abort(struct writeback *wb);

#endif
