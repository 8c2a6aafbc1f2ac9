/* Where a program's bytes go in the caller's stdout or stderr file when the
 * guest writes a copy of it (WIRE_OUTPUT_AT, WIRE_OUTPUT_END; not for an
 * O_APPEND file, which every write appends to).
 *
 * The caller's open file may be shared with other writers (`(vmexec a &
 * vmexec b) > log`, make -j's recipes writing to make's stdout): natively
 * each write goes to the shared offset and moves it, so none overwrites
 * another. The guest's copy knows only its own offsets. So the program's
 * stream continues wherever the shared offset is now (write(), atomic with
 * the offset's move), and its offsets map to ours piece by piece (where
 * others wrote between, the difference changed); the bytes the guest sends
 * again at the end (it cannot tell a rewrite from unchanged bytes) are
 * skipped where they equal what went. */
#ifndef VMEXEC_OUT_TRACK_H
#define VMEXEC_OUT_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What went last, by the program's offsets: more than the guest sends again. */
#define OUT_TRACK_RING (128 * 1024)
/* Pieces of the program's stream with their own difference to ours; when
 * more came, the oldest take the next one's. */
#define OUT_TRACK_PIECES 16

struct out_track {
  uint64_t end; /* the program's offsets below this went (its stream's end) */
  struct {
    uint64_t from; /* the program's offset where the piece starts */
    int64_t delta; /* our offset minus the program's */
  } piece[OUT_TRACK_PIECES];
  unsigned pieces; /* at least 1; the last piece runs to the end */
  uint64_t ring_lo; /* the ring holds the bytes at [max(ring_lo, end - RING), end) */
  uint8_t *ring;    /* allocated on first use; NULL: nothing to compare */
};

/* The program starts at offset START, the shared offset's value then. */
void out_track_init(struct out_track *t, uint64_t start);

/* Where the LEN bytes at the program's OFFSET go: false if nowhere
 * (sent again, unchanged); else *AT is our offset, or -1 for write() at
 * the shared offset (the stream's continuation). */
bool out_track_place(struct out_track *t, uint64_t offset, const uint8_t *p, size_t len, int64_t *at);

/* After out_track_place's write of the bytes (AT as it said). */
void out_track_wrote(struct out_track *t, int fd, uint64_t offset, const uint8_t *p, size_t len, int64_t at);

/* At the program's end, its offset OFFSET: where our shared offset goes,
 * or -1 to leave it (the program's offset is its stream's end, where the
 * writes left ours, with whatever others wrote since). */
int64_t out_track_end(const struct out_track *t, uint64_t offset);

void out_track_free(struct out_track *t);

#endif
