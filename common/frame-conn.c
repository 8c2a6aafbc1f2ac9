#include "frame-conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "wire-msg.h"

int frame_conn_init(struct frame_conn *c, int fd)
{
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->in = malloc(WIRE_HEADER_SIZE + WIRE_MAX_PAYLOAD);
  return c->in ? 0 : -1;
}

void frame_conn_free(struct frame_conn *c)
{
  free(c->in);
  free(c->out);
  c->in = c->out = NULL;
}

int frame_conn_fill(struct frame_conn *c)
{
  const size_t cap = WIRE_HEADER_SIZE + WIRE_MAX_PAYLOAD;
  if (c->in_start > 0) {
    memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
    c->in_end -= c->in_start;
    c->in_start = 0;
  }
  if (c->in_end == cap)
    return 1; /* a whole frame is there; the caller takes it first */
  ssize_t n = read(c->fd, c->in + c->in_end, cap - c->in_end);
  if (n > 0) {
    c->in_end += (size_t)n;
    return 1;
  }
  if (n == 0)
    return 0;
  if (errno == EAGAIN || errno == EINTR)
    return 1;
  return -1;
}

int frame_conn_next(struct frame_conn *c, struct wire_header *h, const uint8_t **payload)
{
  size_t have = c->in_end - c->in_start;
  if (have < WIRE_HEADER_SIZE)
    return 0;
  if (!wire_decode_header(c->in + c->in_start, h))
    return -1;
  if (have < WIRE_HEADER_SIZE + h->length)
    return 0;
  *payload = c->in + c->in_start + WIRE_HEADER_SIZE;
  c->in_start += WIRE_HEADER_SIZE + h->length;
  return 1;
}

int frame_conn_queue(struct frame_conn *c, uint16_t type, uint32_t run, const void *payload, size_t len)
{
  if (len > WIRE_MAX_PAYLOAD)
    return -1;
  size_t need = WIRE_HEADER_SIZE + len;
  if (c->out_cap - c->out_end < need) {
    /* Compact first; grow only when the queue itself is large. (Before the
     * first frame there is no buffer: no memmove of a null pointer.) */
    if (c->out_start > 0)
      memmove(c->out, c->out + c->out_start, c->out_end - c->out_start);
    c->out_end -= c->out_start;
    c->out_start = 0;
    if (c->out_cap - c->out_end < need) {
      size_t cap = c->out_cap ? c->out_cap : 64 * 1024;
      while (cap - c->out_end < need)
        cap *= 2;
      uint8_t *p = realloc(c->out, cap);
      if (!p)
        return -1;
      c->out = p;
      c->out_cap = cap;
    }
  }
  struct wire_header h = { .length = (uint32_t)len, .type = type, .flags = 0, .run = run };
  wire_encode_header(c->out + c->out_end, &h);
  if (len > 0)
    memcpy(c->out + c->out_end + WIRE_HEADER_SIZE, payload, len);
  c->out_end += need;
  return 0;
}

int frame_conn_queue_u32(struct frame_conn *c, uint16_t type, uint32_t run, uint32_t value)
{
  uint8_t b[4];
  return frame_conn_queue(c, type, run, b, wire_encode_u32(b, value));
}

int frame_conn_flush(struct frame_conn *c)
{
  while (c->out_start < c->out_end) {
    ssize_t n = write(c->fd, c->out + c->out_start, c->out_end - c->out_start);
    if (n > 0) {
      c->out_start += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return 0;
    return -1;
  }
  c->out_start = c->out_end = 0;
  return 0;
}

size_t frame_conn_pending(const struct frame_conn *c)
{
  return c->out_end - c->out_start;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      errno = ECONNRESET;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int frame_write(int fd, uint16_t type, uint32_t run, const void *payload, size_t len)
{
  if (len > WIRE_MAX_PAYLOAD) {
    errno = EMSGSIZE;
    return -1;
  }
  uint8_t hb[WIRE_HEADER_SIZE];
  struct wire_header h = { .length = (uint32_t)len, .type = type, .flags = 0, .run = run };
  wire_encode_header(hb, &h);
  if (write_all(fd, hb, sizeof hb) == -1)
    return -1;
  return len ? write_all(fd, payload, len) : 0;
}

int frame_read(int fd, struct wire_header *h, uint8_t *buf)
{
  uint8_t hb[WIRE_HEADER_SIZE];
  if (read_all(fd, hb, sizeof hb) == -1)
    return -1;
  if (!wire_decode_header(hb, h)) {
    errno = EPROTO;
    return -1;
  }
  return read_all(fd, buf, h->length);
}
