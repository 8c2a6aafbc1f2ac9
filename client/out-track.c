/* Where a program's bytes go in the caller's stdout or stderr file: see
 * out-track.h. */
#include "out-track.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void out_track_init(struct out_track *t, uint64_t start)
{
  *t = (struct out_track){ .end = start, .pieces = 1, .ring_lo = start };
  t->piece[0].from = start;
}

/* Our offset minus the program's at its OFFSET. */
static int64_t delta_at(const struct out_track *t, uint64_t offset)
{
  unsigned i = t->pieces - 1;
  while (i > 0 && t->piece[i].from > offset)
    i--;
  return t->piece[i].delta;
}

/* From the stream's end on, ours is DELTA from the program's. */
static void set_delta(struct out_track *t, int64_t delta)
{
  if (t->piece[t->pieces - 1].delta == delta)
    return;
  if (t->piece[t->pieces - 1].from == t->end) {
    t->piece[t->pieces - 1].delta = delta;
    return;
  }
  if (t->pieces == OUT_TRACK_PIECES) {
    memmove(&t->piece[0], &t->piece[1], (OUT_TRACK_PIECES - 1) * sizeof t->piece[0]);
    t->pieces--;
  }
  t->piece[t->pieces].from = t->end;
  t->piece[t->pieces].delta = delta;
  t->pieces++;
}

/* The lowest of the program's offsets whose bytes the ring holds. */
static uint64_t ring_from(const struct out_track *t)
{
  uint64_t lo = t->end > OUT_TRACK_RING ? t->end - OUT_TRACK_RING : 0;
  return lo > t->ring_lo ? lo : t->ring_lo;
}

static bool ring_equal(const struct out_track *t, uint64_t offset, const uint8_t *p, size_t len)
{
  if (!t->ring || offset < ring_from(t) || offset + len > t->end)
    return false;
  while (len > 0) {
    size_t i = (size_t)(offset % OUT_TRACK_RING), n = OUT_TRACK_RING - i < len ? OUT_TRACK_RING - i : len;
    if (memcmp(t->ring + i, p, n) != 0)
      return false;
    offset += n;
    p += n;
    len -= n;
  }
  return true;
}

/* Keeps the bytes at [OFFSET, OFFSET + LEN) that stay within the ring once
 * the stream's end is NEW_END. */
static void ring_store(struct out_track *t, uint64_t offset, const uint8_t *p, size_t len, uint64_t new_end)
{
  if (!t->ring && !(t->ring = malloc(OUT_TRACK_RING)))
    return; /* nothing is skipped then: the bytes sent again are written again */
  uint64_t lo = new_end > OUT_TRACK_RING ? new_end - OUT_TRACK_RING : 0;
  if (offset + len <= lo)
    return;
  if (offset < lo) {
    p += lo - offset;
    len -= (size_t)(lo - offset);
    offset = lo;
  }
  if (offset < t->ring_lo)
    t->ring_lo = offset;
  while (len > 0) {
    size_t i = (size_t)(offset % OUT_TRACK_RING), n = OUT_TRACK_RING - i < len ? OUT_TRACK_RING - i : len;
    memcpy(t->ring + i, p, n);
    offset += n;
    p += n;
    len -= n;
  }
}

bool out_track_place(struct out_track *t, uint64_t offset, const uint8_t *p, size_t len, int64_t *at)
{
  if (len == 0 || (offset + len <= t->end && ring_equal(t, offset, p, len)))
    return false;
  if (offset == t->end) {
    *at = -1; /* where the shared offset is: out_track_wrote sees where that was */
    return true;
  }
  /* A rewrite (a seek back, a truncation and the bytes after it). */
  int64_t to = (int64_t)offset + delta_at(t, offset);
  if (to < 0)
    return false;
  *at = to;
  return true;
}

void out_track_wrote(struct out_track *t, int fd, uint64_t offset, const uint8_t *p, size_t len, int64_t at)
{
  bool grew = offset + len > t->end;
  uint64_t new_end = grew ? offset + len : t->end;
  ring_store(t, offset, p, len, new_end);
  if (at < 0) {
    /* write() put our bytes where the shared offset was and moved it past
     * them: where others wrote since our last bytes, ours moved with it. */
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur >= 0 && cur != (int64_t)new_end + delta_at(t, offset)) {
      t->end = offset;
      set_delta(t, (int64_t)cur - (int64_t)new_end);
    }
    t->end = new_end;
  } else if (grew) {
    /* A rewrite that grew the stream: the shared offset follows its end,
     * as the program's own writes moved its offset. */
    t->end = new_end;
    lseek(fd, (off_t)((int64_t)new_end + delta_at(t, new_end)), SEEK_SET);
  }
}

int64_t out_track_end(const struct out_track *t, uint64_t offset)
{
  if (offset == t->end)
    return -1;
  int64_t to = (int64_t)offset + delta_at(t, offset);
  return to < 0 ? 0 : to;
}

void out_track_free(struct out_track *t)
{
  free(t->ring);
  t->ring = NULL;
}
