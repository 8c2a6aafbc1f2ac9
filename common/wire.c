#include "wire.h"

#include <signal.h>
#include <string.h>

static void put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void wire_encode_header(uint8_t out[WIRE_HEADER_SIZE], const struct wire_header *h)
{
  put_be32(out, h->length);
  out[4] = (uint8_t)(h->type >> 8);
  out[5] = (uint8_t)h->type;
  out[6] = (uint8_t)(h->flags >> 8);
  out[7] = (uint8_t)h->flags;
  put_be32(out + 8, h->run);
}

bool wire_decode_header(const uint8_t in[WIRE_HEADER_SIZE], struct wire_header *h)
{
  h->length = get_be32(in);
  h->type = (uint16_t)(in[4] << 8 | in[5]);
  h->flags = (uint16_t)(in[6] << 8 | in[7]);
  h->run = get_be32(in + 8);
  return h->length <= WIRE_MAX_PAYLOAD && h->flags == 0 && h->type != 0;
}

void wire_writer_init(struct wire_writer *w, uint8_t *buf, size_t cap)
{
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->ok = true;
}

static uint8_t *reserve(struct wire_writer *w, size_t n)
{
  if (!w->ok || n > w->cap - w->len) {
    w->ok = false;
    return NULL;
  }
  uint8_t *p = w->buf + w->len;
  w->len += n;
  return p;
}

void wire_put_u32(struct wire_writer *w, uint32_t v)
{
  uint8_t *p = reserve(w, 4);
  if (p)
    put_be32(p, v);
}

void wire_put_u64(struct wire_writer *w, uint64_t v)
{
  wire_put_u32(w, (uint32_t)(v >> 32));
  wire_put_u32(w, (uint32_t)v);
}

void wire_put_bytes(struct wire_writer *w, const void *data, size_t n)
{
  if (n > UINT32_MAX) {
    w->ok = false;
    return;
  }
  wire_put_u32(w, (uint32_t)n);
  uint8_t *p = reserve(w, n);
  if (p && n > 0)
    memcpy(p, data, n);
}

void wire_put_str(struct wire_writer *w, const char *s)
{
  wire_put_bytes(w, s, strlen(s));
}

void wire_reader_init(struct wire_reader *r, const uint8_t *buf, size_t len)
{
  r->buf = buf;
  r->len = len;
  r->pos = 0;
  r->ok = true;
}

static const uint8_t *take(struct wire_reader *r, size_t n)
{
  if (!r->ok || n > r->len - r->pos) {
    r->ok = false;
    return NULL;
  }
  const uint8_t *p = r->buf + r->pos;
  r->pos += n;
  return p;
}

uint32_t wire_get_u32(struct wire_reader *r)
{
  const uint8_t *p = take(r, 4);
  return p ? get_be32(p) : 0;
}

uint64_t wire_get_u64(struct wire_reader *r)
{
  uint64_t high = wire_get_u32(r);
  return high << 32 | wire_get_u32(r);
}

const uint8_t *wire_get_bytes(struct wire_reader *r, size_t *n)
{
  uint32_t len = wire_get_u32(r);
  const uint8_t *p = take(r, len);
  *n = p ? len : 0;
  return p ? p : (const uint8_t *)"";
}

bool wire_get_str(struct wire_reader *r, char *dst, size_t cap)
{
  size_t n;
  const uint8_t *p = wire_get_bytes(r, &n);
  if (!r->ok || cap == 0 || n >= cap || memchr(p, '\0', n) != NULL) {
    r->ok = false;
    if (cap > 0)
      dst[0] = '\0';
    return false;
  }
  memcpy(dst, p, n);
  dst[n] = '\0';
  return true;
}

/* The generic Linux numbering, in the order of the wire numbers 1..31. */
static const int native_signals[] = {
  0,       SIGHUP,  SIGINT,  SIGQUIT, SIGILL,    SIGTRAP, SIGABRT, SIGBUS,  SIGFPE,  SIGKILL, SIGUSR1,
  SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM,
#ifdef SIGSTKFLT
  SIGSTKFLT,
#else
  0,
#endif
  SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG,  SIGXCPU, SIGXFSZ, SIGVTALRM,
  SIGPROF, SIGWINCH, SIGIO,  SIGPWR,  SIGSYS,
};

uint32_t wire_signal_from_native(int sig)
{
  for (uint32_t w = 1; w < sizeof native_signals / sizeof native_signals[0]; w++)
    if (native_signals[w] == sig)
      return w;
  return 0;
}

int wire_signal_to_native(uint32_t wsig)
{
  if (wsig == 0 || wsig >= sizeof native_signals / sizeof native_signals[0])
    return 0;
  return native_signals[wsig];
}

bool wire_is_run_request(uint16_t type)
{
  switch (type) {
  case WIRE_RUN:
  case WIRE_SHARE:
  case WIRE_FILE:
  case WIRE_FILE_DATA:
  case WIRE_STDIN:
  case WIRE_CREDIT:
  case WIRE_SIGNAL:
  case WIRE_CANCEL:
  case WIRE_WINSIZE:
  case WIRE_OUTPUT_CLOSED:
    return true;
  default:
    return false;
  }
}
