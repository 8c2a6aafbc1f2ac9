/* The wire protocol between the host (supervisor) and the guest agent, spoken
 * over one virtio-serial port. Host and guest may differ in byte order, so every
 * integer on the wire is big-endian, and nothing is ever cast from raw bytes:
 * encode and decode happen here, the rest of the code sees native values.
 *
 * A frame is a 12-byte header followed by LENGTH bytes of payload:
 *
 *   offset 0  u32 length   payload bytes, at most WIRE_MAX_PAYLOAD
 *   offset 4  u16 type     enum wire_type
 *   offset 6  u16 flags    0 (reserved)
 *   offset 8  u32 run      0 for the connection itself, else the run it belongs to
 *
 * Payload fields are u32 (big-endian) and strings / byte strings (u32 length,
 * then the bytes, no terminator). A frame that breaks these rules ends the
 * connection; it never overflows a buffer.
 */
#ifndef VMEXEC_WIRE_H
#define VMEXEC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 12
#define WIRE_MAX_PAYLOAD (256 * 1024)

/* Name of the virtio-serial port the agent looks for in /sys/class/virtio-ports. */
#define WIRE_PORT_NAME "vmexec.0"

enum wire_type {
  WIRE_HELLO = 1, /* agent -> host, run 0: u32 version, str kernel release, str machine */
};

struct wire_header {
  uint32_t length;
  uint16_t type;
  uint16_t flags;
  uint32_t run;
};

void wire_encode_header(uint8_t out[WIRE_HEADER_SIZE], const struct wire_header *h);
/* False if the header is malformed (reserved flags set, payload too large). */
bool wire_decode_header(const uint8_t in[WIRE_HEADER_SIZE], struct wire_header *h);

/* Building a payload into a caller's buffer. On overflow, ok turns false and
 * stays false; nothing is written past cap. */
struct wire_writer {
  uint8_t *buf;
  size_t cap, len;
  bool ok;
};
void wire_writer_init(struct wire_writer *w, uint8_t *buf, size_t cap);
void wire_put_u32(struct wire_writer *w, uint32_t v);
void wire_put_bytes(struct wire_writer *w, const void *p, size_t n); /* length-prefixed */
void wire_put_str(struct wire_writer *w, const char *s);

/* Reading a payload. Every get checks the bounds; on error ok turns false,
 * and later gets return zeroes / empty strings. */
struct wire_reader {
  const uint8_t *buf;
  size_t len, pos;
  bool ok;
};
void wire_reader_init(struct wire_reader *r, const uint8_t *buf, size_t len);
uint32_t wire_get_u32(struct wire_reader *r);
/* Points into the payload; *n is set to the length. Strings are not terminated. */
const uint8_t *wire_get_bytes(struct wire_reader *r, size_t *n);
/* Copies a string into dst (cap bytes with terminator); fails on an embedded NUL
 * or when it does not fit. */
bool wire_get_str(struct wire_reader *r, char *dst, size_t cap);

#endif
