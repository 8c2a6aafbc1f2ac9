/* Fuzz target: the wire protocol as either end receives it. The input is a
 * byte stream as it would arrive on the virtio-serial port or the client's
 * socket. It is read three ways that must agree:
 *   - frame_conn (the event loops of the agent and the supervisor), fed
 *     through a socketpair and drained with frame_conn_fill/frame_conn_next;
 *   - frame_read (the blocking readers), over a second socketpair;
 *   - wire_decode_header on the first 12 bytes, which must encode back to
 *     the same bytes.
 * Every payload goes through every message decoder of wire-msg.c (not only
 * the one its type names: a hostile peer picks the type). A decode that
 * succeeds must encode again to exactly the bytes it consumed, and decoding
 * those must give the same struct (the round trip). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame-conn.h"
#include "fuzz.h"
#include "wire-msg.h"

static uint8_t enc[WIRE_MAX_PAYLOAD];

/* The encoding of a decoded message is the prefix of the payload the
 * decoder read (bytes after the last field are ignored). */
static void same_prefix(const uint8_t *p, size_t n, size_t len)
{
  REQUIRE(len <= n);
  REQUIRE(memcmp(enc, p, len) == 0);
}

static void fuzz_hello(const uint8_t *p, size_t n)
{
  struct wire_hello m, m2;
  size_t len;
  if (!wire_decode_hello(p, n, &m))
    return;
  REQUIRE(wire_encode_hello(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_hello(enc, len, &m2));
  REQUIRE(m.version == m2.version && strcmp(m.kernel, m2.kernel) == 0 && strcmp(m.machine, m2.machine) == 0);
}

static void fuzz_resume(const uint8_t *p, size_t n)
{
  static struct wire_resume m, m2;
  size_t len;
  if (!wire_decode_resume(p, n, &m))
    return;
  REQUIRE(wire_encode_resume(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_resume(enc, len, &m2));
  REQUIRE(m.seconds == m2.seconds && m.nanoseconds == m2.nanoseconds && m.seed_len == m2.seed_len &&
          memcmp(m.seed, m2.seed, m.seed_len) == 0);
}

static bool same_strings(char **a, char **b, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(a[i], b[i]) != 0)
      return false;
  return a[n] == NULL && b[n] == NULL;
}

/* Decodes a RUN payload into arrays sized from the frame as the agent does
 * (exactly, on the heap, so that ASan sees any write past them). */
static bool decode_run(const uint8_t *p, size_t n, struct wire_run *m, char ***vec, char **str)
{
  *vec = malloc(WIRE_RUN_VEC_CAP(n) * sizeof **vec);
  *str = malloc(n ? n : 1);
  REQUIRE(*vec && *str);
  return wire_decode_run(p, n, m, *vec, WIRE_RUN_VEC_CAP(n), *str, n);
}

static void fuzz_run(const uint8_t *p, size_t n)
{
  static struct wire_run m, m2;
  char **vec, *str, **vec2 = NULL, *str2 = NULL;
  size_t len;
  if (decode_run(p, n, &m, &vec, &str)) {
    REQUIRE(m.argv && m.envp);
    REQUIRE(wire_encode_run(&m, enc, sizeof enc, &len));
    same_prefix(p, n, len);
    REQUIRE(decode_run(enc, len, &m2, &vec2, &str2));
    REQUIRE(m.uid == m2.uid && m.gid == m2.gid && m.umask == m2.umask && m.flags == m2.flags);
    REQUIRE(strcmp(m.cwd, m2.cwd) == 0 && strcmp(m.file, m2.file) == 0);
    REQUIRE(m.argc == m2.argc && m.envc == m2.envc && m.ngroups == m2.ngroups);
    REQUIRE(same_strings(m.argv, m2.argv, m.argc) && same_strings(m.envp, m2.envp, m.envc));
    REQUIRE(memcmp(m.groups, m2.groups, m.ngroups * sizeof m.groups[0]) == 0);
    REQUIRE(strcmp(m.stdin_path, m2.stdin_path) == 0 && m.stdin_offset == m2.stdin_offset);
    for (int i = 0; i < 2; i++)
      REQUIRE(m.out_file[i].offset == m2.out_file[i].offset && m.out_file[i].size == m2.out_file[i].size &&
              m.out_file[i].append == m2.out_file[i].append);
    REQUIRE(m.nin_files == m2.nin_files && m.nin_files <= WIRE_MAX_IN_FILES);
    for (uint32_t i = 0; i < m.nin_files; i++)
      REQUIRE(m.in_files[i].fd == m2.in_files[i].fd && m.in_files[i].offset == m2.in_files[i].offset &&
              strcmp(m.in_files[i].path, m2.in_files[i].path) == 0);
    /* The out fds the agent sets up: each a number of its own, 3 to
     * WIRE_FD_MAX - 1, no in-file's, ascending; a copy only of 1, 2 or one
     * set up before it. */
    REQUIRE(m.nout_fds == m2.nout_fds && m.nout_fds <= WIRE_MAX_OUT_FDS);
    for (uint32_t i = 0; i < m.nout_fds; i++) {
      const struct wire_out_fd *f = &m.out_fds[i];
      REQUIRE(f->fd == m2.out_fds[i].fd && f->kind == m2.out_fds[i].kind && f->arg == m2.out_fds[i].arg);
      REQUIRE(f->fd >= 3 && f->fd < WIRE_FD_MAX && (i == 0 || f->fd > m.out_fds[i - 1].fd));
      for (uint32_t j = 0; j < m.nin_files; j++)
        REQUIRE(m.in_files[j].fd != f->fd);
      REQUIRE(f->kind != WIRE_OUT_FD_DUP || f->arg == 1 || f->arg == 2 || (f->arg >= 3 && f->arg < f->fd));
      REQUIRE(f->kind == WIRE_OUT_FD_DUP || f->kind == WIRE_OUT_FD_PIPE || f->kind == WIRE_OUT_FD_NULL);
    }
  }
  free(vec);
  free(str);
  free(vec2);
  free(str2);
}

static void fuzz_file(const uint8_t *p, size_t n)
{
  struct wire_file m, m2;
  size_t len;
  if (!wire_decode_file(p, n, &m))
    return;
  REQUIRE(wire_encode_file(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_file(enc, len, &m2));
  REQUIRE(m.mode == m2.mode && m.size == m2.size && strcmp(m.name, m2.name) == 0);
}

/* CAP, the caller's array of roots, comes from the input too: the decoder
 * must respect any size, 0 included. */
static void fuzz_share(const uint8_t *p, size_t n, size_t cap)
{
  struct wire_share m, m2;
  struct wire_root *roots = malloc((cap ? cap : 1) * sizeof *roots);
  struct wire_root *roots2 = malloc((cap ? cap : 1) * sizeof *roots2);
  size_t len;
  REQUIRE(roots && roots2);
  if (wire_decode_share(p, n, &m, roots, cap)) {
    REQUIRE(m.nroots <= cap);
    REQUIRE(wire_encode_share(&m, enc, sizeof enc, &len));
    REQUIRE(len == n && memcmp(enc, p, n) == 0); /* no trailing bytes in SHARE */
    REQUIRE(wire_decode_share(enc, len, &m2, roots2, cap));
    REQUIRE(m.gen == m2.gen && m.offset == m2.offset && m.size == m2.size && m.nroots == m2.nroots);
    for (uint32_t i = 0; i < m.nroots; i++)
      REQUIRE(strcmp(roots[i].path, roots2[i].path) == 0 && roots[i].flags == roots2[i].flags);
  }
  free(roots);
  free(roots2);
}

static void fuzz_exit(const uint8_t *p, size_t n)
{
  static struct wire_exit m, m2;
  size_t len;
  if (!wire_decode_exit(p, n, &m))
    return;
  REQUIRE(wire_encode_exit(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_exit(enc, len, &m2));
  REQUIRE(m.how == m2.how && m.value == m2.value && strcmp(m.msg, m2.msg) == 0);
}

static void fuzz_wb(const uint8_t *p, size_t n)
{
  static struct wire_wb m, m2;
  size_t len;
  if (!wire_decode_wb(p, n, &m))
    return;
  REQUIRE(wire_encode_wb(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_wb(enc, len, &m2));
  REQUIRE(m.kind == m2.kind && m.mode == m2.mode && strcmp(m.path, m2.path) == 0);
  REQUIRE(strcmp(m.target, m2.target) == 0 && m.size == m2.size && m.mtime_sec == m2.mtime_sec);
  REQUIRE(m.mtime_nsec == m2.mtime_nsec);
}

static void fuzz_patch(const uint8_t *p, size_t n)
{
  static struct wire_patch m, m2;
  size_t len;
  if (!wire_decode_patch(p, n, &m))
    return;
  REQUIRE(m.file.kind == WIRE_WB_FILE || m.file.kind == WIRE_WB_DIR || m.file.kind == WIRE_WB_DELETE);
  REQUIRE(wire_encode_patch(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_patch(enc, len, &m2));
  REQUIRE(m.gen == m2.gen && m.uid == m2.uid && m.gid == m2.gid && m.file.mode == m2.file.mode);
  REQUIRE(strcmp(m.file.path, m2.file.path) == 0 && m.file.size == m2.file.size);
  REQUIRE(m.file.mtime_sec == m2.file.mtime_sec && m.file.mtime_nsec == m2.file.mtime_nsec);
}

static void fuzz_trace(const uint8_t *p, size_t n)
{
  static struct wire_trace m, m2;
  size_t len;
  if (!wire_decode_trace(p, n, &m))
    return;
  REQUIRE(m.n <= WIRE_TRACE_MAX);
  REQUIRE(wire_encode_trace(&m, enc, sizeof enc, &len));
  same_prefix(p, n, len);
  REQUIRE(wire_decode_trace(enc, len, &m2) && m.n == m2.n);
  for (uint32_t i = 0; i < m.n; i++)
    REQUIRE(strcmp(m.phase[i].name, m2.phase[i].name) == 0 && m.phase[i].ns == m2.phase[i].ns &&
            m.phase[i].flags == m2.phase[i].flags);
  (void)wire_run_flags(p, n);
}

static void fuzz_small(const uint8_t *p, size_t n)
{
  struct wire_winsize w, w2;
  size_t len;
  if (wire_decode_winsize(p, n, &w)) {
    REQUIRE(wire_encode_winsize(&w, enc, sizeof enc, &len));
    same_prefix(p, n, len);
    REQUIRE(wire_decode_winsize(enc, len, &w2) && w.rows == w2.rows && w.cols == w2.cols);
  }
  struct wire_output o, o2;
  if (wire_decode_output_end(p, n, &o)) {
    REQUIRE(wire_encode_output_end(&o, enc, sizeof enc, &len));
    same_prefix(p, n, len);
    REQUIRE(wire_decode_output_end(enc, len, &o2) && o.fd == o2.fd && o.offset == o2.offset && o.size == o2.size);
  }
  const uint8_t *data;
  size_t bytes;
  if (wire_decode_output_at(p, n, &o, &data, &bytes)) {
    REQUIRE(data >= p && data + bytes == p + n);
    REQUIRE(wire_encode_output_at(enc, o.fd, o.offset) == WIRE_OUTPUT_AT_HEADER);
    same_prefix(p, n, WIRE_OUTPUT_AT_HEADER);
  }
  uint32_t fd;
  if (wire_decode_fd_output(p, n, &fd, &data, &bytes)) {
    REQUIRE(fd >= 3 && fd < WIRE_FD_MAX && data >= p && data + bytes == p + n);
    REQUIRE(wire_encode_fd_output(enc, fd) == WIRE_FD_OUTPUT_HEADER);
    same_prefix(p, n, WIRE_FD_OUTPUT_HEADER);
  }
  static struct wire_host_file hf, hf2;
  if (wire_decode_host_file(p, n, &hf, &data, &bytes)) {
    REQUIRE(data >= p && data + bytes == p + n);
    REQUIRE(wire_encode_host_file(&hf, enc, sizeof enc, &len));
    same_prefix(p, n, len);
    REQUIRE(wire_decode_host_file(enc, len, &hf2, &data, &bytes) && hf.mode == hf2.mode && bytes == 0 &&
            strcmp(hf.path, hf2.path) == 0);
  }
  uint32_t v, v2;
  if (wire_decode_u32(p, n, &v)) {
    len = wire_encode_u32(enc, v);
    same_prefix(p, n, len);
    REQUIRE(wire_decode_u32(enc, len, &v2) && v == v2);
  }
}

/* Every decoder on one payload, from an exactly sized copy. */
static void fuzz_payload(const struct wire_header *h, const uint8_t *payload)
{
  uint8_t *p = malloc(h->length ? h->length : 1);
  REQUIRE(p);
  memcpy(p, payload, h->length);
  fuzz_hello(p, h->length);
  fuzz_resume(p, h->length);
  fuzz_run(p, h->length);
  fuzz_file(p, h->length);
  fuzz_share(p, h->length, h->run % 9);
  fuzz_exit(p, h->length);
  fuzz_wb(p, h->length);
  fuzz_patch(p, h->length);
  fuzz_trace(p, h->length);
  fuzz_small(p, h->length);
  free(p);
}

/* The frames the blocking reader sees, to compare with frame_conn's. */
struct frame_log {
  struct wire_header h[64];
  uint8_t *payload[64];
  size_t n;
  bool malformed;
};

static void socketpair_with(const uint8_t *data, size_t size, int sv[2])
{
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int buf = (int)size + 65536;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(sv[0], data + off, size - off);
    REQUIRE(w > 0);
    off += (size_t)w;
  }
  close(sv[0]);
}

static void read_blocking(const uint8_t *data, size_t size, struct frame_log *log)
{
  int sv[2];
  socketpair_with(data, size, sv);
  uint8_t *buf = malloc(WIRE_MAX_PAYLOAD);
  REQUIRE(buf);
  log->n = 0;
  log->malformed = false;
  struct wire_header h;
  int r;
  while (log->n < 64 && (r = frame_read(sv[1], &h, buf)) == 0) {
    log->h[log->n] = h;
    log->payload[log->n] = malloc(h.length ? h.length : 1);
    memcpy(log->payload[log->n++], buf, h.length);
  }
  if (log->n < 64)
    log->malformed = errno == EPROTO;
  free(buf);
  close(sv[1]);
}

/* Through frame_conn, as the event loops read: each frame must be the one
 * frame_read saw. */
static void read_conn(const uint8_t *data, size_t size, struct frame_log *log)
{
  int sv[2];
  socketpair_with(data, size, sv);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  struct frame_conn c;
  REQUIRE(frame_conn_init(&c, sv[1]) == 0);
  size_t i = 0;
  int more = 1, r = 0;
  while (i < log->n) {
    struct wire_header h;
    const uint8_t *payload;
    r = frame_conn_next(&c, &h, &payload);
    if (r == 1) {
      REQUIRE(memcmp(&h, &log->h[i], sizeof h) == 0);
      REQUIRE(memcmp(payload, log->payload[i], h.length) == 0);
      fuzz_payload(&h, payload);
      i++;
    } else if (r == -1 || !more) {
      break;
    } else {
      more = frame_conn_fill(&c);
      REQUIRE(more >= 0);
    }
  }
  REQUIRE(i == log->n);
  if (log->malformed) {
    while ((r = frame_conn_next(&c, &(struct wire_header){ 0 }, &(const uint8_t *){ NULL })) == 0 &&
           frame_conn_fill(&c) == 1)
      ;
    REQUIRE(r == -1);
  }
  frame_conn_free(&c);
  close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 128 * 1024)
    return 0; /* the socketpair must take it all before anything reads */
  if (size >= WIRE_HEADER_SIZE) {
    struct wire_header h;
    uint8_t back[WIRE_HEADER_SIZE];
    if (wire_decode_header(data, &h)) {
      wire_encode_header(back, &h);
      REQUIRE(memcmp(back, data, WIRE_HEADER_SIZE) == 0);
    }
  }
  static struct frame_log log;
  read_blocking(data, size, &log);
  read_conn(data, size, &log);
  for (size_t i = 0; i < log.n; i++)
    free(log.payload[i]);
  return 0;
}
