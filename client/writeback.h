/* Applying a run's changes to the host (WIRE_WB frames), confined to the
 * writable roots of the call (see writeback.c). */
#ifndef VMEXEC_WRITEBACK_H
#define VMEXEC_WRITEBACK_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "share-roots.h"
#include "wire.h"

struct writeback {
  const struct share_roots *roots;
  /* the file being received */
  int file_fd, parent_fd;
  uint64_t file_left;
  unsigned mode;
  struct timespec mtime; /* the guest's, given to the file when it is whole */
  char path[PATH_MAX], base[NAME_MAX + 1], temp[64];
  unsigned applied, refused;
};

void writeback_init(struct writeback *wb, const struct share_roots *roots);
void writeback_frame(struct writeback *wb, uint16_t type, const uint8_t *payload, size_t len);
/* Remove a file still in progress. */
void writeback_abort(struct writeback *wb);

#endif
