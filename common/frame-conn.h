/* A framed connection over a non-blocking file descriptor (a unix socket on the
 * host, the virtio-serial port in the guest): input is buffered until a whole
 * frame is there, output is queued until the descriptor takes it. Event loops
 * call frame_conn_fill() when the fd is readable and frame_conn_flush() when it
 * is writable (or after queueing). */
#ifndef VMEXEC_FRAME_CONN_H
#define VMEXEC_FRAME_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct frame_conn {
  int fd;
  uint8_t *in;               /* WIRE_HEADER_SIZE + WIRE_MAX_PAYLOAD bytes */
  size_t in_start, in_end;   /* unconsumed input is in[in_start, in_end) */
  uint8_t *out;
  size_t out_start, out_end, out_cap;
};

/* 0, or -1 (out of memory). The connection does not own fd: the caller closes it. */
int frame_conn_init(struct frame_conn *c, int fd);
void frame_conn_free(struct frame_conn *c);

/* Read what the fd has. Returns 1 if bytes came (or none were ready), 0 at end
 * of file, -1 on error (errno set). */
int frame_conn_fill(struct frame_conn *c);

/* The next whole frame, if there is one: 1 with *h and *payload set (valid until
 * the next frame_conn_fill), 0 if more bytes are needed, -1 if the frame is
 * malformed (the connection must be dropped). */
int frame_conn_next(struct frame_conn *c, struct wire_header *h, const uint8_t **payload);

/* Queue a frame. Returns 0, or -1 if the payload is too large or memory ran out. */
int frame_conn_queue(struct frame_conn *c, uint16_t type, uint32_t run, const void *payload, size_t len);

/* Queue a frame whose payload is one u32 (credits, signals). */
int frame_conn_queue_u32(struct frame_conn *c, uint16_t type, uint32_t run, uint32_t value);

/* Write queued bytes until the fd would block. 0, or -1 on error (errno set). */
int frame_conn_flush(struct frame_conn *c);

/* Bytes queued and not yet written. */
size_t frame_conn_pending(const struct frame_conn *c);

/* For blocking fds: send one frame now, or read one frame into buf (at least
 * WIRE_MAX_PAYLOAD bytes). Return 0, or -1 (errno; EPROTO for a malformed
 * frame, ECONNRESET at end of file). */
int frame_write(int fd, uint16_t type, uint32_t run, const void *payload, size_t len);
int frame_read(int fd, struct wire_header *h, uint8_t *buf);

#endif
