/* Unit test of the wire protocol codec: the byte layout is big-endian whatever
 * the host, every message survives a round trip through its encoder and
 * decoder with the bytes written by hand below, and malformed input is
 * refused without reading or writing out of bounds (this runs under
 * ASan+UBSan in CI: each truncated payload is copied to a buffer of its exact
 * size, so a read past it is caught). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire-msg.h"

#include "unit-check.h"

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

static void u64_layout(void)
{
  uint8_t buf[8];
  struct wire_writer w;
  wire_writer_init(&w, buf, sizeof buf);
  wire_put_u64(&w, 0x0102030405060708u);
  const uint8_t want[] = { 1, 2, 3, 4, 5, 6, 7, 8 }; /* u32 high, then u32 low */
  CHECK(w.ok && w.len == 8 && memcmp(buf, want, 8) == 0);
  struct wire_reader r;
  wire_reader_init(&r, buf, 8);
  CHECK(wire_get_u64(&r) == 0x0102030405060708u && r.ok);
  wire_reader_init(&r, buf, 7);
  CHECK(wire_get_u64(&r) == 0 || !r.ok);
  CHECK(!r.ok);
}

/* Each message is decoded through one of these, so that the truncation
 * check below can try any of them. */
typedef bool decode_fn(const uint8_t *p, size_t n);

/* Every prefix shorter than the whole payload fails to decode, read from a
 * buffer of exactly its size. */
static void check_prefixes(decode_fn *decode, const uint8_t *p, size_t n)
{
  for (size_t k = 0; k < n; k++) {
    uint8_t *copy = malloc(k ? k : 1);
    if (!copy)
      abort();
    memcpy(copy, p, k);
    if (decode(copy, k)) {
      fprintf(stderr, "a prefix of %zu of %zu bytes decoded\n", k, n);
      failures++;
    }
    free(copy);
  }
}

/* The codec's bytes are the ones written field by field (the layout wire.h
 * documents, which the other end decodes). */
static void check_bytes(const uint8_t *got, size_t len, const struct wire_writer *want)
{
  CHECK(want->ok && len == want->len && memcmp(got, want->buf, len) == 0);
}

static struct wire_hello hello_out;
static bool decode_hello(const uint8_t *p, size_t n)
{
  return wire_decode_hello(p, n, &hello_out);
}

static void hello_msg(void)
{
  struct wire_hello m = { .version = WIRE_VERSION, .kernel = "6.1.0-28-s390x", .machine = "s390x" };
  uint8_t buf[512], ref[512];
  size_t len;
  CHECK(wire_encode_hello(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_VERSION);
  wire_put_str(&w, "6.1.0-28-s390x");
  wire_put_str(&w, "s390x");
  check_bytes(buf, len, &w);
  CHECK(decode_hello(buf, len) && hello_out.version == WIRE_VERSION && strcmp(hello_out.kernel, m.kernel) == 0 &&
        strcmp(hello_out.machine, m.machine) == 0);
  check_prefixes(decode_hello, buf, len);

  /* A machine name longer than its field (63 bytes and the terminator). */
  char big[65];
  memset(big, 'm', 64);
  big[64] = '\0';
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_VERSION);
  wire_put_str(&w, "6.1");
  wire_put_str(&w, big);
  CHECK(!decode_hello(ref, w.len));
  big[63] = '\0';
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_VERSION);
  wire_put_str(&w, "6.1");
  wire_put_str(&w, big);
  CHECK(decode_hello(ref, w.len) && strlen(hello_out.machine) == 63);
}

static struct wire_resume resume_out;
static bool decode_resume(const uint8_t *p, size_t n)
{
  return wire_decode_resume(p, n, &resume_out);
}

/* WIRE_RESUME: u64 seconds (high half first), u32 nanoseconds, the seed as
 * length-prefixed bytes; a seed too short or too long and nanoseconds of a
 * second or more are refused both ways. */
static void resume_msg(void)
{
  struct wire_resume m = { .seconds = 0x123456789aULL, .nanoseconds = 999999999, .seed_len = 32 };
  for (int i = 0; i < 32; i++)
    m.seed[i] = (uint8_t)(0xa0 + i);
  uint8_t buf[512], ref[512];
  size_t len;
  CHECK(wire_encode_resume(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 0x12);
  wire_put_u32(&w, 0x3456789a);
  wire_put_u32(&w, 999999999);
  wire_put_bytes(&w, m.seed, 32);
  check_bytes(buf, len, &w);
  CHECK(buf[0] == 0 && buf[3] == 0x12 && buf[4] == 0x34 && buf[7] == 0x9a);
  CHECK(decode_resume(buf, len) && resume_out.seconds == m.seconds && resume_out.nanoseconds == m.nanoseconds &&
        resume_out.seed_len == 32 && memcmp(resume_out.seed, m.seed, 32) == 0);
  check_prefixes(decode_resume, buf, len);

  m.seed_len = WIRE_SEED_MIN - 1;
  CHECK(!wire_encode_resume(&m, buf, sizeof buf, &len));
  m.seed_len = WIRE_SEED_MAX + 1;
  CHECK(!wire_encode_resume(&m, buf, sizeof buf, &len));
  m.seed_len = WIRE_SEED_MAX;
  CHECK(wire_encode_resume(&m, buf, sizeof buf, &len) && decode_resume(buf, len) &&
        resume_out.seed_len == WIRE_SEED_MAX);
  CHECK(!wire_encode_resume(&m, buf, 40, &len));

  uint8_t seed[WIRE_SEED_MAX + 1] = { 0 };
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u64(&w, 1);
  wire_put_u32(&w, 1000000000);
  wire_put_bytes(&w, seed, 32);
  CHECK(!decode_resume(ref, w.len));
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u64(&w, 1);
  wire_put_u32(&w, 0);
  wire_put_bytes(&w, seed, WIRE_SEED_MIN - 1);
  CHECK(!decode_resume(ref, w.len));
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u64(&w, 1);
  wire_put_u32(&w, 0);
  wire_put_bytes(&w, seed, WIRE_SEED_MAX + 1);
  CHECK(!decode_resume(ref, w.len));
}

static uint8_t run_buf[WIRE_MAX_PAYLOAD], run_ref[WIRE_MAX_PAYLOAD];
static struct wire_run run_out;
static char *run_vec[WIRE_RUN_VEC_CAP(WIRE_MAX_PAYLOAD)];
static char run_strings[WIRE_MAX_PAYLOAD];

/* Decoded into arrays of exactly the size the header promises suffices. */
static bool decode_run(const uint8_t *p, size_t n)
{
  return wire_decode_run(p, n, &run_out, run_vec, WIRE_RUN_VEC_CAP(n), run_strings, n);
}

static char *run_argv[] = { "env", "-i", "a b", "", NULL };
static char *run_env[] = { "PATH=/bin:/usr/bin", "X=", NULL };

static void sample_run(struct wire_run *m)
{
  *m = (struct wire_run){ .uid = 1000, .gid = 100, .umask = 022, .flags = WIRE_RUN_COPY | WIRE_RUN_PTY,
                          .cwd = "/home/u/src", .file = "/usr/bin/env", .argc = 4, .argv = run_argv,
                          .envc = 2, .envp = run_env, .ngroups = 3, .groups = { 4, 27, 0xfffffffe } };
}

/* The caller's fds open for writing (WIRE_RUN_OUT_FDS): a count, then fd,
 * kind and arg each, after the in-files; what the decoder refuses. M is
 * sample_run's with two in-files (at 4 and 100 here) and no flags of its own. */
static void out_fds(struct wire_run *m)
{
  size_t len;
  m->nin_files = 2;
  m->in_files[1].fd = 100;
  snprintf(m->in_files[1].path, sizeof m->in_files[1].path, "/src/devfd.in2");
  m->flags = WIRE_RUN_IN_FILES | WIRE_RUN_OUT_FDS;
  m->nout_fds = 4;
  m->out_fds[0] = (struct wire_out_fd){ .fd = 3, .kind = WIRE_OUT_FD_PIPE };
  m->out_fds[1] = (struct wire_out_fd){ .fd = 6, .kind = WIRE_OUT_FD_DUP, .arg = 3 };
  m->out_fds[2] = (struct wire_out_fd){ .fd = 9, .kind = WIRE_OUT_FD_NULL, .arg = WIRE_FD_WRITE };
  m->out_fds[3] = (struct wire_out_fd){ .fd = 255, .kind = WIRE_OUT_FD_DUP, .arg = 1 };
  CHECK(wire_encode_run(m, run_buf, sizeof run_buf, &len));
  const uint8_t want[] = { 0, 0, 0, 4, 0, 0, 0, 3,   0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 2,
                           0, 0, 0, 3, 0, 0, 0, 9,   0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 255, 0, 0, 0, 2,
                           0, 0, 0, 1 };
  CHECK(len > sizeof want && memcmp(run_buf + len - sizeof want, want, sizeof want) == 0);
  CHECK(decode_run(run_buf, len) && run_out.nin_files == 2 && run_out.in_files[1].fd == 100 && run_out.nout_fds == 4);
  for (uint32_t i = 0; i < 4; i++)
    CHECK(run_out.out_fds[i].fd == m->out_fds[i].fd && run_out.out_fds[i].kind == m->out_fds[i].kind &&
          run_out.out_fds[i].arg == m->out_fds[i].arg);
  check_prefixes(decode_run, run_buf, len);
  /* Without the flag, neither sent nor read. */
  m->flags = WIRE_RUN_IN_FILES;
  CHECK(wire_encode_run(m, run_buf, sizeof run_buf, &len) && decode_run(run_buf, len) && run_out.nout_fds == 0);
  m->flags = WIRE_RUN_IN_FILES | WIRE_RUN_OUT_FDS;

  /* Each entry that must not decode, one at a time. */
  static const struct {
    uint32_t at;
    struct wire_out_fd f;
  } bad[] = {
    { 0, { 2, WIRE_OUT_FD_PIPE, 0 } },             /* a stream */
    { 3, { WIRE_FD_MAX, WIRE_OUT_FD_PIPE, 0 } },   /* too high */
    { 3, { 100, WIRE_OUT_FD_DUP, 1 } },            /* an in-file's number */
    { 1, { 3, WIRE_OUT_FD_PIPE, 0 } },             /* twice */
    { 2, { 6, WIRE_OUT_FD_NULL, 1 } },             /* not above the one before */
    { 0, { 3, WIRE_OUT_FD_PIPE, 1 } },             /* a pipe's arg is 0 */
    { 2, { 9, WIRE_OUT_FD_NULL, 0 } },             /* /dev/null open neither way */
    { 2, { 9, WIRE_OUT_FD_NULL, 4 } },
    { 1, { 6, WIRE_OUT_FD_DUP, 0 } },              /* a copy of stdin */
    { 1, { 6, WIRE_OUT_FD_DUP, 6 } },              /* of itself */
    { 1, { 6, WIRE_OUT_FD_DUP, 9 } },              /* of one after it */
    { 1, { 6, WIRE_OUT_FD_DUP, 4 } },              /* of an in-file */
    { 0, { 3, 0, 0 } },                            /* no such kind */
    { 0, { 3, 4, 0 } },
  };
  static struct wire_run b;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    b = *m;
    b.out_fds[bad[i].at] = bad[i].f;
    bool ok = wire_encode_run(&b, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len);
    CHECK(ok);
    if (!ok)
      fprintf(stderr, "out fd case %zu decoded\n", i);
  }
  b = *m;
  b.nout_fds = WIRE_MAX_OUT_FDS + 1;
  CHECK(!wire_encode_run(&b, run_buf, sizeof run_buf, &len));
  /* A count over the limit, by hand. */
  b.nout_fds = 0;
  CHECK(wire_encode_run(&b, run_buf, sizeof run_buf, &len));
  uint8_t *count = run_buf + len - 4;
  CHECK(count[3] == 0);
  count[3] = WIRE_MAX_OUT_FDS + 1;
  CHECK(!decode_run(run_buf, len));
  m->nout_fds = 0;
  m->nin_files = 0;
  m->flags = WIRE_RUN_STDERR_FILE | WIRE_RUN_IN_FILES;
}

static void run_msg(void)
{
  static struct wire_run m;
  sample_run(&m);
  size_t len;
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, run_ref, sizeof run_ref);
  const uint32_t head[] = { 1000, 100, 022, WIRE_RUN_COPY | WIRE_RUN_PTY };
  for (size_t i = 0; i < 4; i++)
    wire_put_u32(&w, head[i]);
  wire_put_str(&w, "/home/u/src");
  wire_put_str(&w, "/usr/bin/env");
  wire_put_u32(&w, 4);
  for (size_t i = 0; i < 4; i++)
    wire_put_str(&w, run_argv[i]);
  wire_put_u32(&w, 2);
  for (size_t i = 0; i < 2; i++)
    wire_put_str(&w, run_env[i]);
  wire_put_u32(&w, 3);
  wire_put_u32(&w, 4);
  wire_put_u32(&w, 27);
  wire_put_u32(&w, 0xfffffffe);
  check_bytes(run_buf, len, &w);

  CHECK(decode_run(run_buf, len));
  struct wire_run *d = &run_out;
  CHECK(d->uid == 1000 && d->gid == 100 && d->umask == 022 && d->flags == (WIRE_RUN_COPY | WIRE_RUN_PTY));
  CHECK(strcmp(d->cwd, m.cwd) == 0 && strcmp(d->file, m.file) == 0);
  CHECK(d->argc == 4 && d->envc == 2 && d->argv[4] == NULL && d->envp[2] == NULL);
  for (size_t i = 0; d->argv && i < 4; i++)
    CHECK(strcmp(d->argv[i], run_argv[i]) == 0);
  for (size_t i = 0; d->envp && i < 2; i++)
    CHECK(strcmp(d->envp[i], run_env[i]) == 0);
  CHECK(d->ngroups == 3 && d->groups[0] == 4 && d->groups[1] == 27 && d->groups[2] == 0xfffffffe);
  check_prefixes(decode_run, run_buf, len);

  /* stdin from a file: its path and offset after the groups. */
  m.flags = WIRE_RUN_STDIN_FILE;
  snprintf(m.stdin_path, sizeof m.stdin_path, "/home/u/src/testdata/in");
  m.stdin_offset = 0x100000004;
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  wire_put_str(&w, "/home/u/src/testdata/in");
  wire_put_u64(&w, 0x100000004);
  CHECK(len == w.len && memcmp(run_buf + len - 8, w.buf + w.len - 8, 8) == 0);
  CHECK(decode_run(run_buf, len) && strcmp(run_out.stdin_path, "/home/u/src/testdata/in") == 0 &&
        run_out.stdin_offset == 0x100000004);
  check_prefixes(decode_run, run_buf, len);
  snprintf(m.stdin_path, sizeof m.stdin_path, "relative");
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));

  /* stdout and stderr files: offset, size, append each, after the stdin file. */
  snprintf(m.stdin_path, sizeof m.stdin_path, "/in");
  m.flags = WIRE_RUN_STDIN_FILE | WIRE_RUN_STDOUT_FILE | WIRE_RUN_STDERR_FILE;
  m.out_file[0] = (struct wire_out_file){ .offset = 0x200000001, .size = 5, .append = 0 };
  m.out_file[1] = (struct wire_out_file){ .offset = 0, .size = 9, .append = 1 };
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  const uint8_t outs[] = { 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0,
                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1 };
  CHECK(len > sizeof outs && memcmp(run_buf + len - sizeof outs, outs, sizeof outs) == 0);
  CHECK(decode_run(run_buf, len) && run_out.out_file[0].offset == 0x200000001 && run_out.out_file[0].size == 5 &&
        !run_out.out_file[0].append && run_out.out_file[1].size == 9 && run_out.out_file[1].append == 1 &&
        strcmp(run_out.stdin_path, "/in") == 0);
  check_prefixes(decode_run, run_buf, len);
  m.flags = WIRE_RUN_STDERR_FILE; /* only the one flagged */
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && memcmp(run_buf + len - 20, outs + 20, 20) == 0);
  CHECK(decode_run(run_buf, len) && run_out.out_file[1].size == 9 && run_out.out_file[0].size == 0);

  /* The caller's files open for reading at fds 3 and up: a count, then fd,
   * path and offset each, last. */
  m.flags = WIRE_RUN_STDERR_FILE | WIRE_RUN_IN_FILES;
  m.nin_files = 2;
  m.in_files[0] = (struct wire_in_file){ .fd = 4, .offset = 7, .path = "/src/devfd.in1" };
  m.in_files[1] = (struct wire_in_file){ .fd = 5, .offset = 0x300000000, .path = "/src/devfd.in2" };
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  CHECK(decode_run(run_buf, len) && run_out.nin_files == 2 && run_out.in_files[0].fd == 4 &&
        run_out.in_files[0].offset == 7 && strcmp(run_out.in_files[0].path, "/src/devfd.in1") == 0 &&
        run_out.in_files[1].fd == 5 && run_out.in_files[1].offset == 0x300000000 &&
        strcmp(run_out.in_files[1].path, "/src/devfd.in2") == 0 && run_out.out_file[1].size == 9);
  check_prefixes(decode_run, run_buf, len);
  m.in_files[1].fd = 2; /* 0-2 are the streams */
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));
  m.in_files[1].fd = WIRE_FD_MAX;
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));
  m.in_files[1].fd = 5;
  snprintf(m.in_files[1].path, sizeof m.in_files[1].path, "relative");
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));
  m.nin_files = WIRE_MAX_IN_FILES + 1;
  CHECK(!wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  m.nin_files = 0;
  out_fds(&m);
  m.out_file[1].offset = (uint64_t)INT64_MAX + 1; /* not an offset a host file has */
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));
  sample_run(&m);

  /* The caller's pid: a u32, last; not 0 or 1 (the agent's), nor negative as a pid_t. */
  m.flags = WIRE_RUN_PID;
  m.pid = 0x01020304;
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && memcmp(run_buf + len - 4, "\x01\x02\x03\x04", 4) == 0);
  CHECK(decode_run(run_buf, len) && run_out.pid == 0x01020304);
  check_prefixes(decode_run, run_buf, len);
  const uint32_t bad_pids[] = { 0, 1, 0x80000000u };
  for (size_t i = 0; i < sizeof bad_pids / sizeof bad_pids[0]; i++) {
    m.pid = bad_pids[i];
    CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len) && !decode_run(run_buf, len));
  }
  sample_run(&m);

  /* The worst case for the caller's arrays: nothing but empty strings. */
  static char *empty[200000];
  for (size_t i = 0; i < 200000; i++)
    empty[i] = "";
  m.argc = 200000;
  m.argv = empty;
  m.envc = 0;
  CHECK(wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  CHECK(decode_run(run_buf, len) && run_out.argc == 200000 && run_out.argv[199999][0] == '\0');
  CHECK(!wire_decode_run(run_buf, len, &run_out, run_vec, 200001, run_strings, len)); /* no room for env's NULL */
  CHECK(!wire_decode_run(run_buf, len, &run_out, run_vec, 200002, run_strings, 199999)); /* no room for bytes */
  CHECK(wire_decode_run(run_buf, len, &run_out, run_vec, 200002, run_strings, 200000));
}

/* RUN payloads whose counts or strings do not fit. */
static void run_rejects(void)
{
  struct wire_writer w;
  /* argc larger than the payload could hold */
  wire_writer_init(&w, run_ref, sizeof run_ref);
  for (size_t i = 0; i < 4; i++)
    wire_put_u32(&w, 0);
  wire_put_str(&w, "/");
  wire_put_str(&w, "/bin/true");
  size_t head = w.len;
  wire_put_u32(&w, 0xffffffff);
  wire_put_str(&w, "true");
  wire_put_u32(&w, 0);
  wire_put_u32(&w, 0);
  CHECK(!decode_run(run_ref, w.len));
  /* more groups than a run may have */
  w.len = head;
  wire_put_u32(&w, 1);
  wire_put_str(&w, "true");
  wire_put_u32(&w, 0);
  size_t groups = w.len;
  wire_put_u32(&w, 0);
  CHECK(decode_run(run_ref, w.len) && run_out.argc == 1 && strcmp(run_out.argv[0], "true") == 0);
  w.len = groups;
  wire_put_u32(&w, WIRE_MAX_GROUPS + 1);
  for (size_t i = 0; i <= WIRE_MAX_GROUPS; i++)
    wire_put_u32(&w, 1);
  CHECK(!decode_run(run_ref, w.len));
  /* an argument with a NUL in it */
  w.len = head;
  wire_put_u32(&w, 1);
  wire_put_bytes(&w, "a\0b", 3);
  wire_put_u32(&w, 0);
  wire_put_u32(&w, 0);
  CHECK(!decode_run(run_ref, w.len));
  /* a cwd longer than PATH_MAX - 1 */
  static char long_path[PATH_MAX + 1];
  memset(long_path, 'd', PATH_MAX);
  long_path[0] = '/';
  wire_writer_init(&w, run_ref, sizeof run_ref);
  for (size_t i = 0; i < 4; i++)
    wire_put_u32(&w, 0);
  wire_put_str(&w, long_path);
  wire_put_str(&w, "/bin/true");
  wire_put_u32(&w, 0);
  wire_put_u32(&w, 0);
  wire_put_u32(&w, 0);
  CHECK(!decode_run(run_ref, w.len));
  /* a failed decode leaves no pointers behind */
  CHECK(run_out.argv == NULL && run_out.envp == NULL && run_out.argc == 0);
}

static struct wire_file file_out;
static bool decode_file(const uint8_t *p, size_t n)
{
  return wire_decode_file(p, n, &file_out);
}

static void file_msg(void)
{
  struct wire_file m = { .mode = 0755, .size = 0x123456789u, .name = "program" };
  uint8_t buf[512], ref[512];
  size_t len;
  CHECK(wire_encode_file(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 0755);
  wire_put_u32(&w, 0x1);        /* size, high */
  wire_put_u32(&w, 0x23456789); /* size, low */
  wire_put_str(&w, "program");
  check_bytes(buf, len, &w);
  CHECK(decode_file(buf, len) && file_out.mode == 0755 && file_out.size == 0x123456789u &&
        strcmp(file_out.name, "program") == 0);
  check_prefixes(decode_file, buf, len);
  /* A name longer than 255 bytes. */
  char name[300];
  memset(name, 'n', 256);
  name[256] = '\0';
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 0644);
  wire_put_u64(&w, 1);
  wire_put_str(&w, name);
  CHECK(!decode_file(ref, w.len));
}

static struct wire_share share_out;
static struct wire_root share_roots_out[4];
static bool decode_share(const uint8_t *p, size_t n)
{
  return wire_decode_share(p, n, &share_out, share_roots_out, 4);
}

static void share_msg(void)
{
  static struct wire_root roots[2] = { { "/home/u/src", WIRE_ROOT_WRITABLE }, { "/usr/lib/s390x-linux-gnu", 0 } };
  struct wire_share m = { .gen = 7, .offset = 0x700000000u, .size = 0x100000001u, .nroots = 2, .roots = roots };
  static uint8_t buf[4 * PATH_MAX], ref[4 * PATH_MAX];
  size_t len;
  CHECK(wire_encode_share(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  const uint32_t head[] = { 7, 0x7, 0, 0x1, 0x1, 2 }; /* gen, offset high/low, size high/low, nroots */
  for (size_t i = 0; i < 6; i++)
    wire_put_u32(&w, head[i]);
  wire_put_str(&w, "/home/u/src");
  wire_put_u32(&w, WIRE_ROOT_WRITABLE);
  wire_put_str(&w, "/usr/lib/s390x-linux-gnu");
  wire_put_u32(&w, 0);
  check_bytes(buf, len, &w);
  CHECK(decode_share(buf, len) && share_out.gen == 7 && share_out.offset == 0x700000000u &&
        share_out.size == 0x100000001u && share_out.nroots == 2 && share_out.roots == share_roots_out);
  CHECK(strcmp(share_roots_out[0].path, "/home/u/src") == 0 && share_roots_out[0].flags == WIRE_ROOT_WRITABLE);
  CHECK(strcmp(share_roots_out[1].path, "/usr/lib/s390x-linux-gnu") == 0 && share_roots_out[1].flags == 0);
  check_prefixes(decode_share, buf, len);
  /* The caller's request: no roots, the generation left to the supervisor. */
  m = (struct wire_share){ .nroots = 0 };
  CHECK(wire_encode_share(&m, buf, sizeof buf, &len) && len == 24);
  CHECK(decode_share(buf, len) && share_out.nroots == 0);
}

static void share_rejects(void)
{
  static uint8_t ref[8 * PATH_MAX];
  struct wire_writer w;
  /* A byte after the last root. */
  wire_writer_init(&w, ref, sizeof ref);
  for (size_t i = 0; i < 5; i++)
    wire_put_u32(&w, 0);
  size_t head = w.len;
  wire_put_u32(&w, 1);
  wire_put_str(&w, "/a");
  wire_put_u32(&w, 0);
  CHECK(decode_share(ref, w.len));
  ref[w.len] = 0;
  CHECK(!decode_share(ref, w.len + 1));
  /* More roots than the caller's array holds, and than the payload could. */
  w.len = head;
  wire_put_u32(&w, 5);
  for (size_t i = 0; i < 5; i++) {
    wire_put_str(&w, "/a");
    wire_put_u32(&w, 0);
  }
  CHECK(!decode_share(ref, w.len));
  static struct wire_root five[5];
  CHECK(wire_decode_share(ref, w.len, &share_out, five, 5) && share_out.nroots == 5);
  w.len = head;
  wire_put_u32(&w, 0x7fffffff);
  wire_put_str(&w, "/a");
  wire_put_u32(&w, 0);
  /* (the cap is a lie: the count is refused before anything is stored) */
  CHECK(!wire_decode_share(ref, w.len, &share_out, five, SIZE_MAX));
  /* A root path longer than PATH_MAX - 1. */
  static char long_path[PATH_MAX + 1];
  memset(long_path, 'p', PATH_MAX);
  long_path[0] = '/';
  w.len = head;
  wire_put_u32(&w, 1);
  wire_put_str(&w, long_path);
  wire_put_u32(&w, 0);
  CHECK(!decode_share(ref, w.len));
}

static struct wire_exit exit_out;
static bool decode_exit(const uint8_t *p, size_t n)
{
  return wire_decode_exit(p, n, &exit_out);
}

static void exit_msg(void)
{
  static struct wire_exit m = { .how = WIRE_FAILED, .value = 127, .msg = "frob: not found in the s390x guest" };
  static uint8_t buf[sizeof m.msg + 16], ref[sizeof m.msg + 64];
  size_t len;
  CHECK(wire_encode_exit(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_FAILED);
  wire_put_u32(&w, 127);
  wire_put_str(&w, m.msg);
  check_bytes(buf, len, &w);
  CHECK(decode_exit(buf, len) && exit_out.how == WIRE_FAILED && exit_out.value == 127 &&
        strcmp(exit_out.msg, m.msg) == 0);
  check_prefixes(decode_exit, buf, len);
  m = (struct wire_exit){ .how = WIRE_SIGNALED, .value = 9 };
  CHECK(wire_encode_exit(&m, buf, sizeof buf, &len) && len == 12);
  CHECK(decode_exit(buf, len) && exit_out.how == WIRE_SIGNALED && exit_out.value == 9 && exit_out.msg[0] == '\0');
  /* A message longer than its field: refused, how and value kept. */
  static char big[sizeof m.msg + 1];
  memset(big, 'x', sizeof m.msg);
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_FAILED);
  wire_put_u32(&w, 125);
  wire_put_str(&w, big);
  CHECK(!decode_exit(ref, w.len) && exit_out.how == WIRE_FAILED && exit_out.value == 125);
}

static struct wire_wb wb_out;
static bool decode_wb(const uint8_t *p, size_t n)
{
  return wire_decode_wb(p, n, &wb_out);
}

/* One change of each kind: its bytes, the round trip, its prefixes. */
static void wb_kind(const struct wire_wb *m, const struct wire_writer *want)
{
  static uint8_t buf[3 * PATH_MAX];
  size_t len;
  CHECK(wire_encode_wb(m, buf, sizeof buf, &len));
  check_bytes(buf, len, want);
  CHECK(decode_wb(buf, len) && wb_out.kind == m->kind && wb_out.mode == m->mode && strcmp(wb_out.path, m->path) == 0);
  if (m->kind == WIRE_WB_SYMLINK)
    CHECK(strcmp(wb_out.target, m->target) == 0);
  if (m->kind == WIRE_WB_FILE)
    CHECK(wb_out.size == m->size && wb_out.mtime_sec == m->mtime_sec && wb_out.mtime_nsec == m->mtime_nsec);
  check_prefixes(decode_wb, buf, len);
}

static void wb_msg(void)
{
  static struct wire_wb m;
  static uint8_t ref[3 * PATH_MAX];
  struct wire_writer w;
  m = (struct wire_wb){ .kind = WIRE_WB_FILE, .mode = 0644, .path = "/src/build/out.o", .size = 0x200000005u,
                        .mtime_sec = 0x1700000000u, .mtime_nsec = 999999999 };
  wire_writer_init(&w, ref, sizeof ref);
  const uint32_t file_tail[] = { 0x2, 0x5, 0x17, 0x0, 999999999 }; /* size, mtime seconds (high, low), ns */
  wire_put_u32(&w, WIRE_WB_FILE);
  wire_put_u32(&w, 0644);
  wire_put_str(&w, "/src/build/out.o");
  for (size_t i = 0; i < 5; i++)
    wire_put_u32(&w, file_tail[i]);
  wb_kind(&m, &w);

  m = (struct wire_wb){ .kind = WIRE_WB_SYMLINK, .mode = 0777, .path = "/src/link", .target = "../a b/c" };
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_WB_SYMLINK);
  wire_put_u32(&w, 0777);
  wire_put_str(&w, "/src/link");
  wire_put_str(&w, "../a b/c");
  wb_kind(&m, &w);

  const uint32_t kinds[] = { WIRE_WB_DIR, WIRE_WB_DELETE, 99 /* unknown: the receiver's to refuse */ };
  for (size_t i = 0; i < 3; i++) {
    m = (struct wire_wb){ .kind = kinds[i], .mode = 0755, .path = "/src/dir" };
    wire_writer_init(&w, ref, sizeof ref);
    wire_put_u32(&w, kinds[i]);
    wire_put_u32(&w, 0755);
    wire_put_str(&w, "/src/dir");
    wb_kind(&m, &w);
  }

  /* A target longer than PATH_MAX - 1. */
  static char long_path[PATH_MAX + 1];
  memset(long_path, 't', PATH_MAX);
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_WB_SYMLINK);
  wire_put_u32(&w, 0777);
  wire_put_str(&w, "/src/link");
  wire_put_str(&w, long_path);
  CHECK(!decode_wb(ref, w.len) && strcmp(wb_out.path, "/src/link") == 0);
}

static struct wire_patch patch_out;
static bool decode_patch(const uint8_t *p, size_t n)
{
  return wire_decode_patch(p, n, &patch_out);
}

/* WIRE_PATCH: gen, uid, gid, then a WIRE_WB of a file, a directory or a
 * deletion; a symlink is refused. */
static void patch_msg(void)
{
  static struct wire_patch m;
  static uint8_t buf[3 * PATH_MAX], ref[3 * PATH_MAX];
  size_t len;
  m = (struct wire_patch){ .gen = 7, .uid = 1000, .gid = 0x12345678 };
  m.file = (struct wire_wb){ .kind = WIRE_WB_FILE, .mode = 0100640, .path = "/src/build/tmp_comp", .size = 3,
                             .mtime_sec = 0x1700000000u, .mtime_nsec = 5 };
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  const uint32_t head[] = { 7, 1000, 0x12345678, WIRE_WB_FILE, 0100640 };
  for (size_t i = 0; i < 5; i++)
    wire_put_u32(&w, head[i]);
  wire_put_str(&w, "/src/build/tmp_comp");
  const uint32_t tail[] = { 0, 3, 0x17, 0, 5 };
  for (size_t i = 0; i < 5; i++)
    wire_put_u32(&w, tail[i]);
  CHECK(wire_encode_patch(&m, buf, sizeof buf, &len));
  check_bytes(buf, len, &w);
  CHECK(decode_patch(buf, len) && patch_out.gen == 7 && patch_out.uid == 1000 && patch_out.gid == 0x12345678 &&
        patch_out.file.mode == 0100640 && patch_out.file.size == 3 && patch_out.file.mtime_sec == 0x1700000000u &&
        patch_out.file.mtime_nsec == 5 && strcmp(patch_out.file.path, "/src/build/tmp_comp") == 0);
  check_prefixes(decode_patch, buf, len);
  m.file = (struct wire_wb){ .kind = WIRE_WB_DELETE, .path = "/src/build/tmp_comp" };
  CHECK(wire_encode_patch(&m, buf, sizeof buf, &len) && decode_patch(buf, len) &&
        patch_out.file.kind == WIRE_WB_DELETE && strcmp(patch_out.file.path, "/src/build/tmp_comp") == 0);
  /* A directory: its times after the path. */
  m.file = (struct wire_wb){ .kind = WIRE_WB_DIR, .mode = 040750, .path = "/src/build/testSubDir/t1",
                             .mtime_sec = 9, .mtime_nsec = 10 };
  wire_writer_init(&w, ref, sizeof ref);
  const uint32_t dir_head[] = { 7, 1000, 0x12345678, WIRE_WB_DIR, 040750 };
  for (size_t i = 0; i < 5; i++)
    wire_put_u32(&w, dir_head[i]);
  wire_put_str(&w, "/src/build/testSubDir/t1");
  const uint32_t dir_tail[] = { 0, 9, 10 };
  for (size_t i = 0; i < 3; i++)
    wire_put_u32(&w, dir_tail[i]);
  CHECK(wire_encode_patch(&m, buf, sizeof buf, &len));
  check_bytes(buf, len, &w);
  CHECK(decode_patch(buf, len) && patch_out.file.kind == WIRE_WB_DIR && patch_out.file.mode == 040750 &&
        patch_out.file.mtime_sec == 9 && patch_out.file.mtime_nsec == 10 &&
        strcmp(patch_out.file.path, "/src/build/testSubDir/t1") == 0);
  check_prefixes(decode_patch, buf, len);
  m.file = (struct wire_wb){ .kind = WIRE_WB_SYMLINK, .path = "/src/build/link", .target = "x" };
  CHECK(wire_encode_patch(&m, buf, sizeof buf, &len) && !decode_patch(buf, len));
}

static struct wire_winsize winsize_out;
static bool decode_winsize(const uint8_t *p, size_t n)
{
  return wire_decode_winsize(p, n, &winsize_out);
}

static uint32_t u32_out;
static bool decode_u32(const uint8_t *p, size_t n)
{
  return wire_decode_u32(p, n, &u32_out);
}

static void winsize_and_u32_msg(void)
{
  struct wire_winsize m = { .rows = 50, .cols = 132 };
  uint8_t buf[8];
  size_t len;
  CHECK(wire_encode_winsize(&m, buf, sizeof buf, &len) && len == 8);
  const uint8_t want[] = { 0, 0, 0, 50, 0, 0, 0, 132 };
  CHECK(memcmp(buf, want, 8) == 0);
  CHECK(decode_winsize(buf, len) && winsize_out.rows == 50 && winsize_out.cols == 132);
  check_prefixes(decode_winsize, buf, len);
  CHECK(!wire_encode_winsize(&m, buf, 7, &len));

  CHECK(wire_encode_u32(buf, 0xdeadbeef) == 4 && buf[0] == 0xde && buf[3] == 0xef);
  CHECK(decode_u32(buf, 4) && u32_out == 0xdeadbeef);
  check_prefixes(decode_u32, buf, 4);
}

static struct wire_output output_out;
static bool decode_output_end(const uint8_t *p, size_t n)
{
  return wire_decode_output_end(p, n, &output_out);
}

static bool decode_output_at(const uint8_t *p, size_t n)
{
  const uint8_t *data;
  size_t len;
  return wire_decode_output_at(p, n, &output_out, &data, &len);
}

/* WIRE_OUTPUT_AT's fields before its bytes; WIRE_OUTPUT_END's three. */
static void output_msg(void)
{
  uint8_t buf[32];
  CHECK(wire_encode_output_at(buf, 2, 0x100000003) == WIRE_OUTPUT_AT_HEADER);
  const uint8_t want[] = { 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 'h', 'i' };
  memcpy(buf + WIRE_OUTPUT_AT_HEADER, "hi", 2);
  CHECK(memcmp(buf, want, sizeof want) == 0);
  const uint8_t *data;
  size_t len;
  CHECK(wire_decode_output_at(buf, sizeof want, &output_out, &data, &len) && output_out.fd == 2 &&
        output_out.offset == 0x100000003 && data == buf + WIRE_OUTPUT_AT_HEADER && len == 2);
  CHECK(wire_decode_output_at(buf, WIRE_OUTPUT_AT_HEADER, &output_out, &data, &len) && len == 0);
  check_prefixes(decode_output_at, buf, WIRE_OUTPUT_AT_HEADER);

  struct wire_output m = { .fd = 1, .offset = 5, .size = WIRE_OUTPUT_KEPT };
  CHECK(wire_encode_output_end(&m, buf, sizeof buf, &len) && len == 20);
  const uint8_t end[] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  CHECK(memcmp(buf, end, sizeof end) == 0);
  CHECK(decode_output_end(buf, len) && output_out.fd == 1 && output_out.offset == 5 && output_out.size == WIRE_OUTPUT_KEPT);
  check_prefixes(decode_output_end, buf, len);
  CHECK(!wire_encode_output_end(&m, buf, 19, &len));
}

static uint32_t fd_output_fd;
static bool decode_fd_output(const uint8_t *p, size_t n)
{
  const uint8_t *data;
  size_t len;
  return wire_decode_fd_output(p, n, &fd_output_fd, &data, &len);
}

/* WIRE_FD_OUTPUT: the fd, then the bytes; an fd the program cannot have
 * been given refused. */
static void fd_output_msg(void)
{
  uint8_t buf[16];
  CHECK(wire_encode_fd_output(buf, 0x103) == WIRE_FD_OUTPUT_HEADER);
  CHECK(!decode_fd_output(buf, WIRE_FD_OUTPUT_HEADER)); /* 259: past WIRE_FD_MAX */
  CHECK(wire_encode_fd_output(buf, 3) == WIRE_FD_OUTPUT_HEADER);
  memcpy(buf + WIRE_FD_OUTPUT_HEADER, "tap\n", 4);
  const uint8_t want[] = { 0, 0, 0, 3, 't', 'a', 'p', '\n' };
  CHECK(memcmp(buf, want, sizeof want) == 0);
  const uint8_t *data;
  size_t len;
  CHECK(wire_decode_fd_output(buf, sizeof want, &fd_output_fd, &data, &len) && fd_output_fd == 3 &&
        data == buf + WIRE_FD_OUTPUT_HEADER && len == 4);
  CHECK(decode_fd_output(buf, WIRE_FD_OUTPUT_HEADER) && fd_output_fd == 3);
  check_prefixes(decode_fd_output, buf, WIRE_FD_OUTPUT_HEADER);
  const uint32_t refused[] = { 0, 1, 2, WIRE_FD_MAX, 0xffffffff };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    wire_encode_fd_output(buf, refused[i]);
    CHECK(!decode_fd_output(buf, sizeof want));
  }
  wire_encode_fd_output(buf, WIRE_FD_MAX - 1);
  CHECK(decode_fd_output(buf, sizeof want) && fd_output_fd == WIRE_FD_MAX - 1);
}

static struct wire_host_file host_file_out;
static bool decode_host_file(const uint8_t *p, size_t n)
{
  const uint8_t *data;
  size_t len;
  return wire_decode_host_file(p, n, &host_file_out, &data, &len);
}

/* WIRE_HOST_FILE: mode, path, then the bytes. */
static void host_file_msg(void)
{
  struct wire_host_file m = { .mode = 0644, .path = "/etc/hosts" };
  uint8_t buf[64];
  size_t len;
  CHECK(wire_encode_host_file(&m, buf, sizeof buf, &len) && len == 18);
  const uint8_t want[] = { 0, 0, 1, 0xa4, 0, 0, 0, 10, '/', 'e', 't', 'c', '/', 'h', 'o', 's', 't', 's' };
  CHECK(memcmp(buf, want, sizeof want) == 0);
  memcpy(buf + len, "127.0.0.1 localhost\n", 20);
  const uint8_t *data;
  size_t n;
  CHECK(wire_decode_host_file(buf, len + 20, &host_file_out, &data, &n) && host_file_out.mode == 0644 &&
        strcmp(host_file_out.path, "/etc/hosts") == 0 && data == buf + len && n == 20);
  check_prefixes(decode_host_file, buf, len);
  CHECK(!wire_encode_host_file(&m, buf, 17, &len));
}

static struct wire_trace trace_out;
static bool decode_trace(const uint8_t *p, size_t n)
{
  return wire_decode_trace(p, n, &trace_out);
}

/* WIRE_TRACE against bytes written field by field; every prefix refused; a
 * count over WIRE_TRACE_MAX or a name too long for its field refused. The
 * flags of a WIRE_RUN read alone. */
static void trace_msg(void)
{
  struct wire_trace m = { .n = 2 };
  snprintf(m.phase[0].name, sizeof m.phase[0].name, "fork");
  m.phase[0].ns = 0x123456789aULL;
  snprintf(m.phase[1].name, sizeof m.phase[1].name, "run");
  m.phase[1].ns = 7;
  m.phase[1].flags = WIRE_PHASE_ASIDE;
  uint8_t buf[256], ref[256];
  size_t len;
  CHECK(wire_encode_trace(&m, buf, sizeof buf, &len));
  struct wire_writer w;
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 2);
  wire_put_str(&w, "fork");
  wire_put_u32(&w, 0x12);
  wire_put_u32(&w, 0x3456789a);
  wire_put_u32(&w, 0);
  wire_put_str(&w, "run");
  wire_put_u32(&w, 0);
  wire_put_u32(&w, 7);
  wire_put_u32(&w, WIRE_PHASE_ASIDE);
  check_bytes(buf, len, &w);
  CHECK(decode_trace(buf, len) && trace_out.n == 2 && strcmp(trace_out.phase[0].name, "fork") == 0 &&
        trace_out.phase[0].ns == 0x123456789aULL && strcmp(trace_out.phase[1].name, "run") == 0 &&
        trace_out.phase[1].ns == 7 && trace_out.phase[0].flags == 0 && trace_out.phase[1].flags == WIRE_PHASE_ASIDE);
  check_prefixes(decode_trace, buf, len);
  CHECK(!wire_encode_trace(&m, buf, 20, &len));

  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, WIRE_TRACE_MAX + 1);
  CHECK(!decode_trace(ref, w.len));
  m.n = WIRE_TRACE_MAX + 1;
  CHECK(!wire_encode_trace(&m, buf, sizeof buf, &len));
  m.n = 1;
  memset(m.phase[0].name, 'n', sizeof m.phase[0].name); /* no terminator */
  CHECK(!wire_encode_trace(&m, buf, sizeof buf, &len));
  char long_name[100];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 1);
  wire_put_str(&w, long_name);
  wire_put_u64(&w, 1);
  wire_put_u32(&w, 0);
  CHECK(!decode_trace(ref, w.len));

  wire_writer_init(&w, ref, sizeof ref);
  wire_put_u32(&w, 1000);
  wire_put_u32(&w, 1000);
  wire_put_u32(&w, 022);
  wire_put_u32(&w, WIRE_RUN_TRACE | WIRE_RUN_COPY);
  CHECK(wire_run_flags(ref, w.len) == (WIRE_RUN_TRACE | WIRE_RUN_COPY));
  CHECK(wire_run_flags(ref, w.len - 1) == 0);
}

/* WIRE_OUTPUT_CLOSED: a whole frame, header and u32 fd, by hand and back; a
 * run request the supervisor forwards. The /dev/full flags of WIRE_RUN are
 * bits of their own. */
static void output_closed_msg(void)
{
  uint8_t frame[WIRE_HEADER_SIZE + 4];
  struct wire_header h = { .length = 4, .type = WIRE_OUTPUT_CLOSED, .run = 7 }, d;
  wire_encode_header(frame, &h);
  CHECK(wire_encode_u32(frame + WIRE_HEADER_SIZE, 2) == 4);
  const uint8_t want[] = { 0, 0, 0, 4, 0, 20, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2 };
  CHECK(sizeof want == sizeof frame && memcmp(frame, want, sizeof want) == 0);
  CHECK(wire_decode_header(frame, &d) && d.type == WIRE_OUTPUT_CLOSED && d.run == 7 && d.length == 4);
  CHECK(decode_u32(frame + WIRE_HEADER_SIZE, d.length) && u32_out == 2);
  CHECK(wire_is_run_request(WIRE_OUTPUT_CLOSED));
  uint32_t flags[] = { WIRE_RUN_COPY,        WIRE_RUN_SEARCH_PATH, WIRE_RUN_PTY,        WIRE_RUN_STDOUT_FULL,
                       WIRE_RUN_STDERR_FULL, WIRE_RUN_TRACE,       WIRE_RUN_STDIN_FILE, WIRE_RUN_STDOUT_FILE,
                       WIRE_RUN_STDERR_FILE, WIRE_RUN_STDERR_IS_STDOUT, WIRE_RUN_IN_FILES, WIRE_RUN_OUT_FDS };
  uint32_t seen = 0;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    CHECK((flags[i] & (flags[i] - 1)) == 0 && !(seen & flags[i]));
    seen |= flags[i];
  }
}

/* Encoders refuse what does not fit: the caller's buffer, WIRE_MAX_PAYLOAD,
 * or a string field that is not terminated. */
static void encoders_refuse(void)
{
  static struct wire_run m;
  sample_run(&m);
  size_t len = 1;
  CHECK(!wire_encode_run(&m, run_buf, 40, &len) && len == 0);
  /* An environment over WIRE_MAX_PAYLOAD, with room to spare in the buffer. */
  static char value[WIRE_MAX_PAYLOAD / 2];
  memset(value, 'v', sizeof value - 1);
  char *env[] = { value, value, NULL };
  m.envc = 2;
  m.envp = env;
  uint8_t *big = malloc(2 * WIRE_MAX_PAYLOAD);
  CHECK(big && !wire_encode_run(&m, big, 2 * WIRE_MAX_PAYLOAD, &len));
  m.envc = 1;
  CHECK(big && wire_encode_run(&m, big, 2 * WIRE_MAX_PAYLOAD, &len) && len <= WIRE_MAX_PAYLOAD);
  free(big);
  m.envc = 0;
  m.ngroups = WIRE_MAX_GROUPS + 1;
  CHECK(!wire_encode_run(&m, run_buf, sizeof run_buf, &len));
  m.ngroups = 0;
  memset(m.cwd, 'c', sizeof m.cwd); /* no terminator */
  CHECK(!wire_encode_run(&m, run_buf, sizeof run_buf, &len));

  struct wire_hello h = { .version = WIRE_VERSION };
  memset(h.machine, 'm', sizeof h.machine);
  uint8_t buf[1024];
  CHECK(!wire_encode_hello(&h, buf, sizeof buf, &len));
  static struct wire_wb wb = { .kind = WIRE_WB_FILE, .path = "/a/long/enough/path" };
  CHECK(!wire_encode_wb(&wb, buf, 30, &len));
  CHECK(wire_encode_wb(&wb, buf, sizeof buf, &len) && len == 4 + 4 + 4 + 19 + 20);
}

int main(void)
{
  header_layout();
  header_rejects();
  payload_round_trip();
  writer_overflow();
  reader_rejects();
  u64_layout();
  hello_msg();
  resume_msg();
  run_msg();
  run_rejects();
  file_msg();
  share_msg();
  share_rejects();
  exit_msg();
  wb_msg();
  patch_msg();
  winsize_and_u32_msg();
  output_closed_msg();
  output_msg();
  fd_output_msg();
  host_file_msg();
  trace_msg();
  encoders_refuse();
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  return 0;
}
