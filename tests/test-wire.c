/* Unit test of the wire protocol codec: the byte layout is big-endian whatever
 * the host, and malformed input is refused without reading or writing out of
 * bounds (this runs under ASan+UBSan in CI). */
#include <stdio.h>
#include <string.h>

#include "wire.h"

static int failures;

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                      \
    }                                                                  \
  } while (0)

static void header_layout(void)
{
  struct wire_header h = { .length = 0x01020304, .type = 0x0506, .flags = 0, .run = 0x0a0b0c0d };
  uint8_t b[WIRE_HEADER_SIZE];
  wire_encode_header(b, &h);
  const uint8_t want[] = { 1, 2, 3, 4, 5, 6, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d };
  CHECK(memcmp(b, want, sizeof want) == 0);
  /* 0x01020304 is over the limit: the decoder refuses it. */
  struct wire_header d;
  CHECK(!wire_decode_header(b, &d));
  h.length = 17;
  wire_encode_header(b, &h);
  CHECK(wire_decode_header(b, &d));
  CHECK(d.length == 17 && d.type == 0x0506 && d.flags == 0 && d.run == 0x0a0b0c0d);
}

static void header_rejects(void)
{
  struct wire_header h = { .length = WIRE_MAX_PAYLOAD, .type = WIRE_HELLO, .run = 0 }, d;
  uint8_t b[WIRE_HEADER_SIZE];
  wire_encode_header(b, &h);
  CHECK(wire_decode_header(b, &d));
  h.length = WIRE_MAX_PAYLOAD + 1;
  wire_encode_header(b, &h);
  CHECK(!wire_decode_header(b, &d));
  h.length = 0;
  h.flags = 1;
  wire_encode_header(b, &h);
  CHECK(!wire_decode_header(b, &d));
  h.flags = 0;
  h.type = 0;
  wire_encode_header(b, &h);
  CHECK(!wire_decode_header(b, &d));
}

static void payload_round_trip(void)
{
  uint8_t buf[64];
  struct wire_writer w;
  wire_writer_init(&w, buf, sizeof buf);
  wire_put_u32(&w, 0xdeadbeef);
  wire_put_str(&w, "s390x");
  wire_put_bytes(&w, "a\0b", 3);
  CHECK(w.ok && w.len == 4 + 4 + 5 + 4 + 3);
  CHECK(buf[0] == 0xde && buf[3] == 0xef && buf[7] == 5);

  struct wire_reader r;
  wire_reader_init(&r, buf, w.len);
  CHECK(wire_get_u32(&r) == 0xdeadbeef);
  char s[16];
  CHECK(wire_get_str(&r, s, sizeof s) && strcmp(s, "s390x") == 0);
  size_t n;
  const uint8_t *p = wire_get_bytes(&r, &n);
  CHECK(r.ok && n == 3 && memcmp(p, "a\0b", 3) == 0);
  CHECK(r.pos == r.len);
  /* Reading past the end fails and keeps failing. */
  CHECK(wire_get_u32(&r) == 0 && !r.ok);
}

static void writer_overflow(void)
{
  uint8_t buf[8];
  struct wire_writer w;
  wire_writer_init(&w, buf, sizeof buf);
  wire_put_str(&w, "toolong");
  CHECK(!w.ok);
  wire_put_u32(&w, 1);
  CHECK(!w.ok && w.len <= sizeof buf);
}

static void reader_rejects(void)
{
  /* A length prefix larger than what is left. */
  const uint8_t lie[] = { 0, 0, 0, 200, 'x' };
  struct wire_reader r;
  wire_reader_init(&r, lie, sizeof lie);
  size_t n;
  wire_get_bytes(&r, &n);
  CHECK(!r.ok && n == 0);

  /* A string with an embedded NUL is refused as a C string. */
  const uint8_t nul[] = { 0, 0, 0, 3, 'a', 0, 'b' };
  char s[8];
  wire_reader_init(&r, nul, sizeof nul);
  CHECK(!wire_get_str(&r, s, sizeof s) && s[0] == '\0');

  /* A string that does not fit the destination is refused. */
  const uint8_t big[] = { 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
  wire_reader_init(&r, big, sizeof big);
  CHECK(!wire_get_str(&r, s, 4));
  wire_reader_init(&r, big, sizeof big);
  CHECK(wire_get_str(&r, s, 5) && strcmp(s, "abcd") == 0);
}

int main(void)
{
  header_layout();
  header_rejects();
  payload_round_trip();
  writer_overflow();
  reader_rejects();
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  return 0;
}
