/* Writes the seed corpora of tests/fuzz (run by make-corpus; the output is
 * committed): frame streams made by the encoders of wire-msg.c, and the
 * record inputs of fuzz-writeback.c and fuzz-synth.c (see their comments
 * for the formats). Usage: gen-corpus CORPUS_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire-msg.h"

static const char *dir;
static uint8_t out[1 << 16];
static size_t len;

static void save(const char *target, const char *name)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(out, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
  len = 0;
}

static void bytes(const void *p, size_t n)
{
  memcpy(out + len, p, n);
  len += n;
}

/* ------------------------------------------------------------ frames */

static void frame(uint16_t type, uint32_t run, const void *payload, size_t n)
{
  struct wire_header h = { .length = (uint32_t)n, .type = type, .run = run };
  wire_encode_header(out + len, &h);
  len += WIRE_HEADER_SIZE;
  bytes(payload, n);
}

#define ENCODE(fn, msg, type, run)                          \
  do {                                                      \
    static uint8_t buf_[1 << 14];                           \
    size_t n_;                                              \
    if (!fn(msg, buf_, sizeof buf_, &n_))                   \
      abort();                                              \
    frame(type, run, buf_, n_);                             \
  } while (0)

static void u32_frame(uint16_t type, uint32_t run, uint32_t v)
{
  uint8_t b[4];
  frame(type, run, b, wire_encode_u32(b, v));
}

static void wb(uint32_t kind, uint32_t mode, const char *path, const char *target, uint64_t size)
{
  static struct wire_wb m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.mode = mode;
  snprintf(m.path, sizeof m.path, "%s", path);
  snprintf(m.target, sizeof m.target, "%s", target);
  m.size = size;
  m.mtime_sec = 1700000000;
  m.mtime_nsec = 5;
  ENCODE(wire_encode_wb, &m, WIRE_WB, 1);
}

static void frames(void)
{
  struct wire_hello hello = { .version = WIRE_VERSION, .kernel = "6.1.0-28-s390x", .machine = "s390x" };
  ENCODE(wire_encode_hello, &hello, WIRE_HELLO, 0);
  save("frame", "hello");

  struct wire_resume resume = { .seconds = 1765000000, .nanoseconds = 5, .seed_len = 32 };
  ENCODE(wire_encode_resume, &resume, WIRE_RESUME, 0);
  save("frame", "resume");

  struct wire_root roots[2] = { { "/home/u/build", WIRE_ROOT_WRITABLE }, { "/usr/s390x-linux-gnu", 0 } };
  struct wire_share share = { .gen = 3, .offset = 3ULL << 38, .size = 1 << 20, .nroots = 2, .roots = roots };
  ENCODE(wire_encode_share, &share, WIRE_SHARE, 1);
  struct wire_file file = { .mode = 0755, .size = 5, .name = "prog" };
  ENCODE(wire_encode_file, &file, WIRE_FILE, 1);
  frame(WIRE_FILE_DATA, 1, "\177ELF\2", 5);
  static struct wire_run run = { .uid = 1000, .gid = 1000, .umask = 022, .flags = WIRE_RUN_COPY | WIRE_RUN_PTY,
                                 .cwd = "/home/u/build", .file = "prog", .argc = 2, .envc = 1, .ngroups = 2,
                                 .groups = { 24, 27 } };
  char *argv[] = { "prog", "--flag", NULL }, *envp[] = { "PATH=/bin", NULL };
  run.argv = argv;
  run.envp = envp;
  ENCODE(wire_encode_run, &run, WIRE_RUN, 1);
  run.flags = WIRE_RUN_STDIN_FILE;
  snprintf(run.stdin_path, sizeof run.stdin_path, "/home/u/src/testdata/in");
  run.stdin_offset = 9;
  ENCODE(wire_encode_run, &run, WIRE_RUN, 2);
  frame(WIRE_STDIN_END, 2, "\0\0\0\0\0\0\0\x0d", 8);
  run.flags = WIRE_RUN_STDOUT_FILE | WIRE_RUN_STDERR_FILE | WIRE_RUN_LEAD_GROUP | WIRE_RUN_PID;
  run.pid = 4242;
  run.out_file[0] = (struct wire_out_file){ .offset = 3, .size = 3 };
  run.out_file[1] = (struct wire_out_file){ .offset = 0, .size = 7, .append = 1 };
  ENCODE(wire_encode_run, &run, WIRE_RUN, 3);
  uint8_t at[WIRE_OUTPUT_AT_HEADER + 3];
  memcpy(at + wire_encode_output_at(at, 1, 3), "out", 3);
  frame(WIRE_OUTPUT_AT, 3, at, sizeof at);
  struct wire_output end = { .fd = 1, .offset = 6, .size = WIRE_OUTPUT_KEPT };
  ENCODE(wire_encode_output_end, &end, WIRE_OUTPUT_END, 3);
  /* bats: TAP on fd 3 (a pipe), a copy of it at 5, /dev/null at 7, a file to read at 4. */
  run.flags = WIRE_RUN_IN_FILES | WIRE_RUN_OUT_FDS;
  run.nin_files = 1;
  run.in_files[0] = (struct wire_in_file){ .fd = 4, .offset = 2, .path = "/home/u/src/devfd.in" };
  run.nout_fds = 3;
  run.out_fds[0] = (struct wire_out_fd){ .fd = 3, .kind = WIRE_OUT_FD_PIPE };
  run.out_fds[1] = (struct wire_out_fd){ .fd = 5, .kind = WIRE_OUT_FD_DUP, .arg = 3 };
  run.out_fds[2] = (struct wire_out_fd){ .fd = 7, .kind = WIRE_OUT_FD_NULL, .arg = WIRE_FD_READ | WIRE_FD_WRITE };
  ENCODE(wire_encode_run, &run, WIRE_RUN, 4);
  uint8_t tap[WIRE_FD_OUTPUT_HEADER + 7];
  memcpy(tap + wire_encode_fd_output(tap, 3), "ok 1 a\n", 7);
  frame(WIRE_FD_OUTPUT, 4, tap, sizeof tap);
  u32_frame(WIRE_OUTPUT_CLOSED, 4, 3);
  struct wire_host_file hf = { .mode = 0644, .path = "/etc/hosts" };
  ENCODE(wire_encode_host_file, &hf, WIRE_HOST_FILE, 0);
  run.flags = WIRE_RUN_COPY | WIRE_RUN_PTY;
  struct wire_winsize ws = { 24, 80 };
  ENCODE(wire_encode_winsize, &ws, WIRE_WINSIZE, 1);
  frame(WIRE_STDIN, 1, "input\n", 6);
  frame(WIRE_STDIN, 1, "", 0);
  u32_frame(WIRE_CREDIT, 1, 4096);
  u32_frame(WIRE_SIGNAL, 1, 15);
  frame(WIRE_CANCEL, 1, "", 0);
  save("frame", "run");

  frame(WIRE_STDOUT, 1, "out\n", 4);
  frame(WIRE_STDERR, 1, "err\n", 4);
  wb(WIRE_WB_DIR, 0755, "/home/u/build/d", "", 0);
  wb(WIRE_WB_FILE, 0644, "/home/u/build/d/f", "", 3);
  frame(WIRE_WB_DATA, 1, "abc", 3);
  wb(WIRE_WB_SYMLINK, 0777, "/home/u/build/l", "d/f", 0);
  wb(WIRE_WB_DELETE, 0, "/home/u/build/old", "", 0);
  struct wire_trace tr = { .n = 2, .phase = { { "guest: fork", 3000000, 0 },
                                              { "guest: teardown of the previous run", 900000, WIRE_PHASE_ASIDE } } };
  ENCODE(wire_encode_trace, &tr, WIRE_TRACE, 1);
  struct wire_exit ex = { .how = WIRE_FAILED, .value = 127, .msg = "prog: not found in the s390x guest" };
  ENCODE(wire_encode_exit, &ex, WIRE_EXIT, 1);
  u32_frame(WIRE_GEN_RELEASED, 0, 2);
  save("frame", "exit");

  static struct wire_patch patch = { .gen = 3, .uid = 1000, .gid = 1000 };
  patch.file = (struct wire_wb){ .kind = WIRE_WB_FILE, .mode = 0100644, .path = "/home/u/build/tests/tmp_comp",
                                 .size = 3, .mtime_sec = 1700000000, .mtime_nsec = 5 };
  ENCODE(wire_encode_patch, &patch, WIRE_PATCH, 0);
  frame(WIRE_PATCH_DATA, 0, "xz!", 3);
  patch.file = (struct wire_wb){ .kind = WIRE_WB_DELETE, .path = "/home/u/build/tests/gone" };
  ENCODE(wire_encode_patch, &patch, WIRE_PATCH, 0);
  patch.file = (struct wire_wb){ .kind = WIRE_WB_DIR, .mode = 040755, .path = "/home/u/build/tests/testSubDir/t1",
                                 .mtime_sec = 1700000000 };
  ENCODE(wire_encode_patch, &patch, WIRE_PATCH, 0);
  save("frame", "patch");

  frame(WIRE_STATUS, 0, "", 0);
  frame(WIRE_ERROR, 0, "\0\0\0\4oops", 8);
  frame(WIRE_STOP, 0, "", 0);
  save("frame", "status");

  struct wire_header bad = { .length = 4, .type = WIRE_CREDIT, .flags = 1 };
  wire_encode_header(out, &bad);
  len = WIRE_HEADER_SIZE;
  save("frame", "bad-flags");
  ENCODE(wire_encode_run, &run, WIRE_RUN, 7);
  len -= 9;
  save("frame", "truncated");
}

/* ------------------------------------------------------------ write-back records */

/* Names of fuzz-writeback.c's dictionary, by index. */
enum { W, RO, N, D, F, LINK, SECRET, KEY, SUB, DOTDOT, DOT, EMPTY, NEW, X, KEEP, HL, FIFO, E, G };
/* Starts: the writable root, the nested read-only root, the nested writable
 * one, the secret, the directory of all, none (relative: a target). */
/* Records: a change (kind - 1, HUGE: the size is u16 << 32), data. */
enum { OP_FILE, OP_DIR, OP_SYMLINK, OP_DELETE, OP_DATA, HUGE = 0x80 };
enum { AT_W, AT_RO, AT_N, AT_SECRET, AT_BASE, AT_NONE, RELATIVE = 0x80, SLASH = 0x40 };

static void path(unsigned start, int n, ...)
{
  __builtin_va_list ap;
  __builtin_va_start(ap, n);
  out[len++] = (uint8_t)(start | (unsigned)n << 3);
  for (int i = 0; i < n; i++)
    out[len++] = (uint8_t)__builtin_va_arg(ap, int);
  __builtin_va_end(ap);
}

static void op(uint8_t code, uint16_t mode)
{
  out[len++] = code;
  out[len++] = (uint8_t)(mode >> 8);
  out[len++] = (uint8_t)mode;
}

static void size_mtime(uint8_t size)
{
  out[len++] = size;
  out[len++] = 0x12;
  out[len++] = 0x34;
}

static void data(const char *s)
{
  out[len++] = OP_DATA;
  out[len++] = (uint8_t)strlen(s);
  bytes(s, strlen(s));
}

static void writeback(void)
{
  out[len++] = 1; /* writeback_finish */
  op(OP_DIR, 0755), path(AT_W, 1, X), size_mtime(0);                  /* DIR W/x */
  op(OP_FILE, 0644), path(AT_W, 2, X, NEW), size_mtime(5), data("hello"); /* FILE W/x/new */
  op(OP_DIR, 0700), path(AT_N, 1, D), size_mtime(0);                  /* DIR W/n/d */
  op(OP_FILE, 0600), path(AT_N, 2, D, F), size_mtime(2), data("n!");
  op(OP_SYMLINK, 0777), path(AT_W, 1, NEW), path(AT_NONE | RELATIVE, 2, X, NEW), size_mtime(0);
  op(OP_DELETE, 0), path(AT_W, 1, F), size_mtime(0);                     /* DELETE W/f */
  save("writeback", "changes");

  out[len++] = 1;
  op(OP_DELETE, 0), path(AT_W, 1, N), size_mtime(0);                     /* DELETE the nested root */
  op(OP_SYMLINK, 0777), path(AT_W, 1, N), path(AT_NONE | RELATIVE, 2, DOTDOT, SECRET), size_mtime(0);
  op(OP_FILE, 0644), path(AT_N, 1, KEY), size_mtime(3), data("own");   /* through the swapped root */
  op(OP_FILE, 0644), path(AT_W, 2, LINK, NEW), size_mtime(1), data("l"); /* through W/link */
  op(OP_DELETE, 0), path(AT_RO, 1, KEEP), size_mtime(0);
  op(OP_FILE, 04777), path(AT_RO, 1, X), size_mtime(1), data("r");
  op(OP_FILE, 0644), path(AT_W, 3, DOTDOT, SECRET, NEW), size_mtime(1), data("u");
  op(OP_FILE, 0644), path(AT_W, 3, DOT, EMPTY, NEW), size_mtime(1), data("e");
  op(OP_DIR, 07777), path(AT_W | SLASH, 1, D), size_mtime(0);
  op(OP_DIR, 0777), path(AT_W, 1, HL), size_mtime(0);             /* chmod through a hard link */
  op(OP_FILE, 0644), path(AT_W, 1, HL), size_mtime(1), data("h");
  save("writeback", "escapes");

  out[len++] = 0; /* writeback_abort */
  op(OP_DELETE, 0), path(AT_W, 1, D), size_mtime(0);                     /* a replaced directory */
  op(OP_DIR, 0755), path(AT_W, 1, D), size_mtime(0);
  op(OP_FILE, 0644), path(AT_W, 2, D, NEW), size_mtime(200), data("part of it");
  save("writeback", "replace-abort");

  out[len++] = 1;
  op(OP_DELETE, 0), path(AT_W, 1, D), size_mtime(0);
  op(OP_DIR, 0755), path(AT_W, 1, D), size_mtime(0);
  op(OP_FILE, 0644), path(AT_W, 2, D, NEW), size_mtime(3), data("new");
  op(OP_FILE | HUGE, 0644), path(AT_W, 1, X);
  bytes("\0\1\x12\x34", 4); /* 2^32 bytes announced (u16 << 32), mtime */
  data("short");
  save("writeback", "replace-finish");

  out[len++] = 1;
  op(OP_FILE, 0644), path(AT_W, 1, FIFO), size_mtime(1), data("f"); /* replaces a FIFO, never opens it */
  op(OP_DIR, 0755), path(AT_W, 1, FIFO), size_mtime(0);
  op(OP_DIR, 0700), path(AT_W, 2, D, E), size_mtime(0);
  op(OP_FILE, 0644), path(AT_W, 3, D, E, G), size_mtime(2), data("gg");
  op(OP_DELETE, 0), path(AT_W, 1, D), size_mtime(0);
  save("writeback", "fifo-deep");
}

/* ------------------------------------------------------------ synth records */

static void name(const char *s)
{
  out[len++] = (uint8_t)(strlen(s) - 1);
  bytes(s, strlen(s));
}

static void synth(void)
{
  out[len++] = 0, name("dir");                                       /* mkdir, enter */
  out[len++] = 2, name("file"), out[len++] = 0x12, out[len++] = 0x34, out[len++] = 7; /* 4660 bytes */
  out[len++] = 2, name("empty"), out[len++] = 0, out[len++] = 0, out[len++] = 0;
  out[len++] = 7, out[len++] = 0x01, out[len++] = 0xed;              /* chmod 0755 */
  out[len++] = 6, name("hard"), out[len++] = 0;                      /* link to dir/file */
  out[len++] = 5, name("sym"), out[len++] = 4, bytes("file", 4);
  out[len++] = 4, name("sparse"), out[len++] = 40, out[len++] = 10, out[len++] = 1, out[len++] = 0x10,
  out[len++] = 0;
  out[len++] = 1;                                                    /* back up */
  out[len++] = 0, out[len++] = 0xf0;                                 /* a 255-byte name */
  out[len++] = 0, name("a"), out[len++] = 0, name("b"), out[len++] = 0, name("c");
  out[len++] = 5, name("up"), out[len++] = 9, bytes("../../../", 9);
  out[len++] = 2, out[len++] = 0xff, out[len++] = 0, out[len++] = 1, out[len++] = 1; /* a 256-byte name */
  save("synth", "tree");

  /* A symlink out of the tree, then a mode change of it: the target's mode must stay. */
  out[len++] = 5, name("out"), out[len++] = 9, bytes("../canary", 9);
  out[len++] = 7, out[len++] = 0x0f, out[len++] = 0xff;             /* chmod 07777 */
  save("synth", "symlink-out");
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: gen-corpus CORPUS_DIR\n");
    return 2;
  }
  dir = argv[1];
  frames();
  writeback();
  synth();
  return 0;
}
