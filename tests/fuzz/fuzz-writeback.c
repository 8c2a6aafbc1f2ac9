/* Fuzz target: the client's write-back (client/writeback.c) fed the WB and
 * WB_DATA frames a hostile guest could send, over a fresh tree per input:
 *
 *   SANDBOX/1/2/3/W          writable root (W/link -> ../secret, W/hl a hard
 *                            link to secret/key, W/fifo, W/f, W/d/e/g)
 *   SANDBOX/1/2/3/W/ro       read-only root nested in it (W/ro/keep)
 *   SANDBOX/1/2/3/W/n        writable root nested in it
 *   SANDBOX/1/2/3/secret     outside every root (secret/key, secret/sub/)
 *   SANDBOX/1/other          outside, three levels up
 *
 * After writeback_finish (or writeback_abort, as the input says), nothing
 * outside the writable roots changed: every entry of SANDBOX outside W and
 * everything in W/ro has the type, mode, size, content and target it had.
 * Also: no entry anywhere has a setuid, setgid or sticky bit or escapes the
 * umask (022), no .vmexec-wb temporary is left, no descriptor leaks.
 *
 * The input is a list of records (see next_record): a change (FILE, DIR,
 * SYMLINK, DELETE) whose paths are built from a small dictionary of names
 * ("..", ".", "", "link", "ro", ...) under one of the tree's directories,
 * file data, or a raw frame of arbitrary bytes. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "fuzz.h"
#include "wire-msg.h"
#include "writeback.h"

static char sandbox[PATH_MAX]; /* this process's scratch directory */
static char base[PATH_MAX];    /* sandbox/1/2/3 */

/* ------------------------------------------------------------ the tree */

static void put(const char *dir, const char *rel, const char *data)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
  close(fd);
}

static void mk(const char *dir, const char *rel)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  REQUIRE(mkdir(path, 0755) == 0);
}

static void make_tree(void)
{
  mk(sandbox, "1");
  mk(sandbox, "1/2");
  mk(sandbox, "1/2/3");
  mk(sandbox, "1/other");
  put(sandbox, "1/other/o", "other");
  mk(base, "W");
  mk(base, "W/ro");
  mk(base, "W/n");
  mk(base, "W/d");
  mk(base, "W/d/e");
  put(base, "W/d/e/g", "g");
  char fifo[PATH_MAX];
  snprintf(fifo, sizeof fifo, "%s/W/fifo", base); /* opening it would block the write-back */
  REQUIRE(mkfifo(fifo, 0644) == 0);
  mk(base, "secret");
  mk(base, "secret/sub");
  put(base, "W/ro/keep", "keep");
  put(base, "W/f", "f");
  put(base, "secret/key", "key");
  put(base, "secret/sub/deep", "deep");
  char path[PATH_MAX], key[PATH_MAX];
  snprintf(path, sizeof path, "%s/W/link", base);
  REQUIRE(symlink("../secret", path) == 0);
  snprintf(path, sizeof path, "%s/W/hl", base); /* a hard link to the secret: never written through */
  snprintf(key, sizeof key, "%s/secret/key", base);
  REQUIRE(link(key, path) == 0);
}

/* ------------------------------------------------------------ the snapshot */

struct snapshot {
  char *text;
  size_t len, cap;
};

static void add(struct snapshot *s, const char *line)
{
  size_t n = strlen(line);
  if (s->len + n + 1 > s->cap) {
    s->cap = (s->len + n + 1) * 2;
    s->text = realloc(s->text, s->cap);
    REQUIRE(s->text);
  }
  memcpy(s->text + s->len, line, n + 1);
  s->len += n;
}

/* A line per entry: path, type and mode, size, what it holds. */
static void describe(struct snapshot *s, int dirfd, const char *name, const char *path, const struct stat *st)
{
  char what[256] = "";
  if (S_ISLNK(st->st_mode)) {
    ssize_t n = readlinkat(dirfd, name, what, sizeof what - 1);
    what[n > 0 ? n : 0] = '\0';
  } else if (S_ISREG(st->st_mode)) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW);
    ssize_t n = fd >= 0 ? read(fd, what, sizeof what - 1) : 0;
    what[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
      close(fd);
  }
  char line[PATH_MAX + 512];
  snprintf(line, sizeof line, "%s %o %lld %s\n", path, st->st_mode, (long long)st->st_size, what);
  add(s, line);
}

/* Walks DIRFD (PATH): the lines of what must not change go to OUTSIDE, and
 * every entry is checked for modes and temporaries. INSIDE: under a
 * writable root, whose changes are allowed. */
static void walk(struct snapshot *outside, int dirfd, const char *path, bool inside)
{
  DIR *d = fdopendir(dirfd);
  REQUIRE(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "/" : "", e->d_name);
    struct stat st;
    REQUIRE(fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
    REQUIRE(strncmp(e->d_name, ".vmexec-wb", 10) != 0);
    REQUIRE(S_ISLNK(st.st_mode) || (st.st_mode & 07022) == 0);
    bool in = strcmp(sub, "1/2/3/W/ro") == 0 ? false : inside || strcmp(sub, "1/2/3/W") == 0;
    if (!in)
      describe(outside, dirfd, e->d_name, sub, &st);
    if (S_ISDIR(st.st_mode)) {
      fchmodat(dirfd, e->d_name, st.st_mode | 0700, 0); /* a DIR frame may have taken our access */
      int fd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      REQUIRE(fd >= 0);
      walk(outside, fd, sub, in);
      fchmodat(dirfd, e->d_name, st.st_mode & 07777, 0);
    }
  }
  closedir(d);
}

static void snapshot(struct snapshot *s)
{
  s->len = 0;
  add(s, "");
  int fd = open(sandbox, O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  walk(s, fd, "", false);
}

static int count_fds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (d && readdir(d))
    n++;
  if (d)
    closedir(d);
  return n;
}

/* The first line that differs, in the report of the crash. */
static void report_change(const char *before, const char *after)
{
  size_t i = 0, line = 0;
  while (before[i] && before[i] == after[i])
    if (before[i++] == '\n')
      line = i;
  char msg[2 * PATH_MAX];
  snprintf(msg, sizeof msg, "outside the writable roots, before: %.*s; after: %.*s",
           (int)strcspn(before + line, "\n"), before + line, (int)strcspn(after + line, "\n"), after + line);
  __sanitizer_report_error_summary(msg);
  abort();
}

/* ------------------------------------------------------------ the frames */

static const char *const names[] = {
  "W", "ro", "n", "d", "f", "link", "secret", "key", "sub", "..", ".", "", "new", "x", "keep", "hl",
  "fifo", "e", "g",
};

/* A path from the input: a directory of the tree, then up to 7 names of the
 * dictionary (or a long one), maybe a trailing slash. */
static void path_of(struct fuzz_input *in, char *out, size_t cap)
{
  static const char *const starts[] = { "1/2/3/W", "1/2/3/W/ro", "1/2/3/W/n", "1/2/3/secret", "1/2/3", "" };
  uint8_t b = fuzz_byte(in);
  const char *start = starts[(b & 7) % 6];
  if (b & 0x80) /* relative (a symlink's target) */
    snprintf(out, cap, "%s", start);
  else
    snprintf(out, cap, "%s%s%s", sandbox, *start ? "/" : "", start);
  unsigned n = (b >> 3) & 7;
  for (unsigned i = 0; i < n; i++) {
    uint8_t c = fuzz_byte(in);
    size_t len = strlen(out);
    if (c == 0xff)
      snprintf(out + len, cap - len, "/%0250d", 7);
    else
      snprintf(out + len, cap - len, "%s%s", len || !(b & 0x80) ? "/" : "", names[c % (sizeof names / sizeof *names)]);
  }
  if (b & 0x40)
    strncat(out, "/", cap - strlen(out) - 1);
}

static void send_change(struct writeback *wb, const struct wire_wb *m)
{
  static uint8_t buf[3 * PATH_MAX];
  size_t len;
  if (wire_encode_wb(m, buf, sizeof buf, &len))
    writeback_frame(wb, WIRE_WB, buf, len);
}

/* One record of the input: 0 at its end. */
static int next_record(struct writeback *wb, struct fuzz_input *in)
{
  if (in->n == 0)
    return 0;
  static struct wire_wb m;
  memset(&m, 0, sizeof m);
  uint8_t op = fuzz_byte(in);
  size_t len;
  const uint8_t *p;
  switch (op % 8) {
  case 0: case 1: case 2: case 3: /* a change: WIRE_WB_FILE .. WIRE_WB_DELETE */
    m.kind = op % 8 + 1;
    m.mode = fuzz_u16(in);
    path_of(in, m.path, sizeof m.path);
    if (m.kind == WIRE_WB_SYMLINK)
      path_of(in, m.target, sizeof m.target);
    m.size = op & 0x80 ? (uint64_t)fuzz_u16(in) << 32 : fuzz_byte(in);
    m.mtime_sec = fuzz_u16(in);
    send_change(wb, &m);
    break;
  case 4: case 5: /* data of the current file */
    p = fuzz_bytes(in, fuzz_byte(in), &len);
    writeback_frame(wb, WIRE_WB_DATA, p, len);
    break;
  case 6: /* a raw WIRE_WB payload */
    p = fuzz_bytes(in, fuzz_u16(in), &len);
    writeback_frame(wb, WIRE_WB, p, len);
    break;
  default: /* an unknown kind */
    m.kind = fuzz_byte(in);
    m.mode = fuzz_u16(in);
    path_of(in, m.path, sizeof m.path);
    send_change(wb, &m);
    break;
  }
  return 1;
}

/* ------------------------------------------------------------ the target */

static void cleanup(void)
{
  fuzz_remove_tree(AT_FDCWD, sandbox);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct snapshot before, after;
  static struct share_roots roots;
  if (!sandbox[0]) {
    fuzz_sandbox("wb", sandbox, sizeof sandbox);
    snprintf(base, sizeof base, "%s/1/2/3", sandbox);
    umask(022);
    atexit(cleanup);
  }
  make_tree();
  roots.n = 3;
  snprintf(roots.root[0].path, PATH_MAX, "%s/W", base);
  snprintf(roots.root[1].path, PATH_MAX, "%s/W/ro", base);
  snprintf(roots.root[2].path, PATH_MAX, "%s/W/n", base);
  roots.root[0].writable = roots.root[2].writable = true;
  roots.root[1].writable = false;
  snapshot(&before);
  int fds = count_fds();

  struct fuzz_input in = { data, size };
  bool finish = fuzz_byte(&in) & 1;
  struct writeback wb;
  writeback_init(&wb, &roots);
  while (next_record(&wb, &in))
    ;
  if (finish)
    writeback_finish(&wb);
  else
    writeback_abort(&wb);

  REQUIRE(count_fds() == fds);
  snapshot(&after);
  if (strcmp(before.text, after.text) != 0)
    report_change(before.text, after.text);
  /* The next input starts from a fresh tree. */
  int fd = open(sandbox, O_RDONLY | O_DIRECTORY);
  fuzz_remove_tree(fd, "1");
  close(fd);
  return 0;
}
