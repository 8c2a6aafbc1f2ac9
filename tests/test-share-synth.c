/* Unit test of nbd-share's pure modules, without nbdkit: the region table,
 * image synthesis over a crafted tree, the fingerprint and the generation
 * table.
 *
 * Images are checked three ways: fsck.erofs (the format's own checker, 4 KiB
 * blocks only in erofs-utils 1.5) on the image written to a file; its
 * --extract output compared with the source tree (contents, modes, owners,
 * mtimes with nanoseconds, symlinks); and a small independent reader here
 * that walks the image at 512 B, 4 KiB and 64 KiB blocks and compares every
 * entry with the host, including what fsck.erofs 1.5 cannot extract
 * (chunk-based files with holes) and hard links (same nid).
 *
 * With --fingerprint ROOT...: print the fingerprint of ROOTs and its time
 * (used by test-share.sh for the 100 000-file timing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "erofs-format.h"
#include "fingerprint.h"
#include "gens.h"
#include "regions.h"
#include "synth.h"

static int failures;

#define CHECK(cond) check((cond), __FILE__, __LINE__, #cond, NULL)
#define CHECKF(cond, ...) check_fmt((cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

static bool check(bool ok, const char *file, int line, const char *what, const char *ctx)
{
  if (!ok) {
    fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, what, ctx ? " -- " : "", ctx ? ctx : "");
    failures++;
  }
  return ok;
}

static bool check_fmt(bool ok, const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool check_fmt(bool ok, const char *file, int line, const char *what, const char *fmt, ...)
{
  if (ok)
    return true;
  char ctx[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  return check(false, file, line, what, ctx);
}

static int log_lines;
static void count_log(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  log_lines++;
  if (getenv("TEST_SHARE_VERBOSE")) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
  }
}

static void die(const char *what)
{
  perror(what);
  exit(1);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    die("vasprintf");
  va_end(ap);
  return s;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd == -1 || write(fd, data, len) != (ssize_t)len || close(fd) == -1)
    die(path);
  chmod(path, mode);
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
  struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) == -1)
    die(path);
}

static int run(const char *cmd)
{
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ------------------------------------------------------------ regions */

static int fake_reader(void *opaque, uint32_t file, void *buf, size_t len, uint64_t offset)
{
  (void)opaque;
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t)(file * 16 + (offset + i) % 16);
  return 0;
}

static void test_regions(void)
{
  struct regions r;
  regions_init(&r);
  static const uint8_t mem[5] = { 1, 2, 3, 4, 5 };
  CHECK(regions_append_memory(&r, mem, 5) == 0);
  CHECK(regions_pad(&r, 8) == 0);             /* zero 5..8 */
  CHECK(regions_append_file(&r, 2, 100, 4) == 0);
  CHECK(regions_append_file(&r, 2, 104, 4) == 0); /* continues: merged */
  CHECK(regions_append_zero(&r, 0) == 0);     /* ignored */
  CHECK(regions_append_zero(&r, 3) == 0);
  CHECK(regions_append_zero(&r, 5) == 0);     /* merged */
  CHECK(r.n == 4);
  CHECK(regions_size(&r) == 24);
  CHECK(regions_find(&r, 0) == &r.v[0]);
  CHECK(regions_find(&r, 7)->kind == REGION_ZERO);
  CHECK(regions_find(&r, 15)->kind == REGION_FILE);
  CHECK(regions_find(&r, 23)->kind == REGION_ZERO);
  CHECK(regions_find(&r, 24) == NULL);

  uint8_t buf[30];
  memset(buf, 0xee, sizeof buf);
  CHECK(regions_read(&r, buf, sizeof buf, 0, fake_reader, NULL) == 0);
  const uint8_t want[30] = { 1, 2, 3, 4, 5, 0, 0, 0, 36, 37, 38, 39, 40, 41, 42, 43 };
  CHECK(memcmp(buf, want, sizeof want) == 0);
  CHECK(regions_read(&r, buf, 4, 10, fake_reader, NULL) == 0);
  CHECK(buf[0] == 38 && buf[3] == 41);
  regions_free(&r);
}

/* ------------------------------------------------------------ crafted tree */

struct fixture {
  char *dir;        /* temporary directory */
  char *tree;       /* dir/tree: the main root */
  char *other;      /* dir/other: a second root */
  bool as_root;
};

static void make_tree(struct fixture *f)
{
  char tmpl[] = "/tmp/vmexec-share-synth.XXXXXX";
  const char *tmpdir = getenv("TMPDIR");
  f->dir = tmpdir ? xasprintf("%s/vmexec-share-synth.XXXXXX", tmpdir) : strdup(tmpl);
  if (!mkdtemp(f->dir))
    die("mkdtemp");
  f->tree = xasprintf("%s/tree", f->dir);
  f->other = xasprintf("%s/other", f->dir);
  f->as_root = geteuid() == 0;
  mkdir(f->tree, 0755);
  mkdir(f->other, 0750);
  char *p;

#define P(...) (free(p), p = xasprintf(__VA_ARGS__))
  p = NULL;
  /* regular files around block boundaries, odd modes, times */
  static uint8_t data[1 << 20];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 7 + i / 4096);
  const size_t sizes[] = { 0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, 65537, sizeof data };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    write_file(P("%s/size-%zu", f->tree, sizes[i]), data, sizes[i], 0644);
    set_mtime(p, 1600000000 + (time_t)i, (long)i * 111111111 % 1000000000);
  }
  write_file(P("%s/setuid", f->tree), "x", 1, 04755);
  write_file(P("%s/nothing", f->tree), "secret", 6, 0);
  write_file(P("%s/old", f->tree), "1969", 4, 0644);
  set_mtime(p, -1000000, 5);
  write_file(P("%s/future", f->tree), "2200", 4, 0644);
  set_mtime(p, 7258118400, 999999999);
  if (f->as_root) {
    write_file(P("%s/owned", f->tree), "uid", 3, 0640);
    if (lchown(p, 100000, 4000000000u) == -1)
      die("lchown");
  }

  /* names: 255 bytes, non-UTF-8, and every byte but '/' and NUL */
  char name[256];
  memset(name, 'L', 255);
  name[255] = '\0';
  write_file(P("%s/%s", f->tree, name), "long", 4, 0644);
  write_file(P("%s/\xff\xfe-latin1-\xe9t\xe9", f->tree), "bytes", 5, 0644);
  write_file(P("%s/new\nline\ttab \\ back", f->tree), "nl", 2, 0644);
  mkdir(P("%s/bytes", f->tree), 0755);
  for (int b = 1; b < 256; b += 16) {
    char n[17];
    int k = 0;
    for (int c = b; c < b + 16 && c < 256; c++)
      if (c != '/' && c != '.')
        n[k++] = (char)c;
    n[k] = '\0';
    write_file(P("%s/bytes/%s", f->tree, n), n, (size_t)k, 0644);
  }
  write_file(P("%s/bytes/.hidden", f->tree), ".", 1, 0644);
  write_file(P("%s/bytes/-", f->tree), "-", 1, 0644); /* sorts before "." */
  write_file(P("%s/bytes/..x", f->tree), "..x", 3, 0644);

  /* a wide directory over several blocks, names of mixed lengths */
  mkdir(P("%s/wide", f->tree), 0755);
  for (int i = 0; i < 3000; i++) {
    char n[300];
    snprintf(n, sizeof n, "%s/wide/e%0*d", f->tree, 1 + i % 200, i);
    write_file(n, n, (size_t)(i % 3), 0644);
  }
  /* a deep chain */
  char *deep = xasprintf("%s", f->tree);
  for (int i = 0; i < 60; i++) {
    char *next = xasprintf("%s/d%02d", deep, i);
    free(deep);
    deep = next;
    mkdir(deep, 0700 + (i % 2) * 055);
  }
  write_file(P("%s/bottom", deep), "deep", 4, 0644);
  free(deep);

  /* symlinks: dangling, looping, absolute, inline-sized and block-sized targets */
  mkdir(P("%s/links", f->tree), 01777);
  symlink("nowhere/at/all", P("%s/links/dangling", f->tree));
  symlink("loop-b", P("%s/links/loop-a", f->tree));
  symlink("loop-a", P("%s/links/loop-b", f->tree));
  symlink("/etc/hostname", P("%s/links/absolute", f->tree));
  symlink("../size-1", P("%s/links/relative", f->tree));
  char target[4001];
  for (int len = 100; len <= 4000; len += 300) {
    memset(target, 'a' + len % 26, (size_t)len);
    target[len] = '\0';
    symlink(target, P("%s/links/t%04d", f->tree, len));
  }
  memset(target, 't', 4000);
  target[4000] = '\0';
  symlink(target, P("%s/links/t4000", f->tree));
  set_mtime(p, 1234567890, 123456789);

  /* hard links, across directories, of a file and of a symlink */
  write_file(P("%s/hard", f->tree), "shared inode", 12, 0604);
  char *hard = xasprintf("%s/hard", f->tree);
  link(hard, P("%s/links/hard2", f->tree));
  link(hard, P("%s/wide/hard3", f->tree));
  free(hard);
  char *dangling = xasprintf("%s/links/dangling", f->tree);
  link(dangling, P("%s/links/dangling-hard", f->tree));
  free(dangling);

  /* sparse files: data islands, no data at all, over 4 GiB */
  int fd = open(P("%s/sparse", f->tree), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || pwrite(fd, data, 5000, 0) != 5000 || pwrite(fd, data, 70000, 20 << 20) != 70000 ||
      pwrite(fd, "end", 3, (64 << 20) - 3) != 3 || close(fd) == -1)
    die("sparse");
  fd = open(P("%s/holes-only", f->tree), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || ftruncate(fd, 10 << 20) == -1 || close(fd) == -1)
    die("holes-only");
  fd = open(P("%s/huge", f->tree), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1 || pwrite(fd, "tail", 4, (5LL << 30) - 4) != 4 || close(fd) == -1)
    die("huge");

  /* left out: a fifo and a socket */
  mkfifo(P("%s/fifo", f->tree), 0644);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", f->tree);
  if (strlen(f->tree) + 6 < sizeof sa.sun_path && bind(s, (struct sockaddr *)&sa, sizeof sa) == -1)
    die("bind");
  close(s);

  /* the second root */
  write_file(P("%s/readme", f->other), "other root", 10, 0444);
  mkdir(P("%s/empty", f->other), 0700);
  set_mtime(f->other, 1500000000, 42);
  set_mtime(f->tree, 1500000001, 43);
  free(p);
#undef P
}

static void remove_tree(const char *dir)
{
  char *cmd = xasprintf("rm -rf '%s'", dir);
  run(cmd);
  free(cmd);
}

/* ------------------------------------------------------------ image reader */

/* An independent reader of the images, from the format description: it
 * shares only erofs-format.h's field offsets with the writer. */
struct reader {
  struct synth_image *img;
  unsigned bits;
  uint64_t bs;
  uint64_t nids_seen;
};

static void rd(struct reader *r, void *buf, size_t len, uint64_t off)
{
  if (synth_read(r->img, buf, len, off) == -1)
    die("synth_read");
}

static void rd_inode(struct reader *r, uint64_t nid, struct erofs_inode_extended *ie)
{
  uint8_t b[64];
  rd(r, b, sizeof b, nid * EROFS_INODE_SLOT);
  erofs_get_inode(b, ie);
  CHECKF((ie->i_format & 1) == 1, "nid %llu not extended", (unsigned long long)nid);
}

static unsigned layout_of(const struct erofs_inode_extended *ie)
{
  return (ie->i_format >> 1) & 7;
}

/* LEN bytes of the inode's data at OFF. */
static void rd_data(struct reader *r, uint64_t nid, const struct erofs_inode_extended *ie,
                    uint8_t *buf, size_t len, uint64_t off)
{
  while (len > 0) {
    uint64_t addr, avail;
    switch (layout_of(ie)) {
    case EROFS_INODE_FLAT_PLAIN:
      addr = (uint64_t)ie->i_u * r->bs + off;
      avail = len;
      break;
    case EROFS_INODE_FLAT_INLINE:
      CHECK(ie->i_size < r->bs);
      addr = nid * EROFS_INODE_SLOT + 64 + off;
      avail = len;
      CHECK((nid * EROFS_INODE_SLOT) / r->bs == (addr + len - 1) / r->bs);
      break;
    case EROFS_INODE_CHUNK_BASED: {
      CHECK(ie->i_u & EROFS_CHUNK_FORMAT_INDEXES);
      unsigned cbits = r->bits + (ie->i_u & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
      uint64_t chunk = off >> cbits, csize = 1ULL << cbits;
      uint8_t idx[8];
      rd(r, idx, 8, nid * EROFS_INODE_SLOT + 64 + chunk * 8);
      uint32_t blk = erofs_get32(idx + 4);
      avail = csize - (off & (csize - 1));
      if (avail > len)
        avail = len;
      if (blk == EROFS_NULL_ADDR) {
        memset(buf, 0, avail);
        addr = UINT64_MAX;
      } else {
        addr = (uint64_t)blk * r->bs + (off & (csize - 1));
      }
      break;
    }
    default:
      CHECKF(false, "nid %llu: layout %u", (unsigned long long)nid, layout_of(ie));
      return;
    }
    if (addr != UINT64_MAX)
      rd(r, buf, avail, addr);
    buf += avail;
    off += avail;
    len -= avail;
  }
}

struct rd_dirent {
  char name[256];
  size_t len;
  uint64_t nid;
  unsigned type;
};

/* All entries of directory NID, in on-disk order; *N set. Checks order. */
static struct rd_dirent *rd_dir(struct reader *r, uint64_t nid, const struct erofs_inode_extended *ie, size_t *n)
{
  struct rd_dirent *v = NULL;
  size_t cap = 0;
  *n = 0;
  uint8_t *blk = malloc(r->bs);
  for (uint64_t pos = 0; pos < ie->i_size; pos += r->bs) {
    uint64_t maxsize = ie->i_size - pos < r->bs ? ie->i_size - pos : r->bs;
    rd_data(r, nid, ie, blk, maxsize, pos);
    struct erofs_dirent de;
    erofs_get_dirent(blk, &de);
    size_t count = de.nameoff / sizeof de;
    CHECK(de.nameoff % sizeof de == 0 && count > 0);
    for (size_t i = 0; i < count; i++) {
      erofs_get_dirent(blk + i * sizeof de, &de);
      size_t end;
      if (i + 1 < count) {
        struct erofs_dirent next;
        erofs_get_dirent(blk + (i + 1) * sizeof de, &next);
        end = next.nameoff;
      } else {
        end = de.nameoff + strnlen((char *)blk + de.nameoff, maxsize - de.nameoff);
      }
      if (!CHECK(end > de.nameoff && end - de.nameoff <= 255 && end <= maxsize))
        break;
      if (*n == cap) {
        cap = cap ? cap * 2 : 64;
        v = realloc(v, cap * sizeof *v);
      }
      struct rd_dirent *e = &v[(*n)++];
      e->len = end - de.nameoff;
      memcpy(e->name, blk + de.nameoff, e->len);
      e->name[e->len] = '\0';
      e->nid = de.nid;
      e->type = de.file_type;
      if (*n > 1) {
        const struct rd_dirent *p = &v[*n - 2];
        int c = memcmp(p->name, e->name, p->len < e->len ? p->len : e->len);
        CHECKF(c < 0 || (c == 0 && p->len < e->len), "dirents out of order: '%s' then '%s'", p->name, e->name);
      }
    }
  }
  free(blk);
  return v;
}

static const struct rd_dirent *find_dirent(const struct rd_dirent *v, size_t n, const char *name, size_t len)
{
  for (size_t i = 0; i < n; i++)
    if (v[i].len == len && memcmp(v[i].name, name, len) == 0)
      return &v[i];
  return NULL;
}

/* Hard links seen: (dev, ino) -> nid. */
struct linkent {
  dev_t dev;
  ino_t ino;
  uint64_t nid;
};
struct linkmap {
  struct linkent v[64];
  size_t n;
};

static void compare_file_data(struct reader *r, uint64_t nid, const struct erofs_inode_extended *ie, const char *path)
{
  int fd = open(path, O_RDONLY);
  if (fd == -1) /* mode 0 when not root */
    return;
  static uint8_t a[1 << 16], b[1 << 16];
  uint64_t size = ie->i_size;
  /* a huge sparse file: check the first and last MiB and every chunk's start */
  for (uint64_t off = 0; off < size;) {
    size_t n = size - off < sizeof a ? (size_t)(size - off) : sizeof a;
    rd_data(r, nid, ie, a, n, off);
    ssize_t got = pread(fd, b, n, (off_t)off);
    if (!CHECKF(got == (ssize_t)n && memcmp(a, b, n) == 0, "%s: data differs at %llu", path, (unsigned long long)off))
      break;
    off += n;
    if (size > (256u << 20) && off > (1u << 20) && off < size - (1u << 20))
      off = off + (64u << 20) < size - (1u << 20) ? off + (64u << 20) : size - (1u << 20);
  }
  close(fd);
}

/* Compare image directory NID with host directory PATH, recursively. */
static void compare_dir(struct reader *r, uint64_t nid, uint64_t parent_nid, const char *path, struct linkmap *links,
                        int *skipped)
{
  struct erofs_inode_extended ie;
  rd_inode(r, nid, &ie);
  size_t n;
  struct rd_dirent *v = rd_dir(r, nid, &ie, &n);
  const struct rd_dirent *dot = find_dirent(v, n, ".", 1), *dotdot = find_dirent(v, n, "..", 2);
  CHECKF(dot && dot->nid == nid, "%s: '.'", path);
  CHECKF(dotdot && dotdot->nid == parent_nid, "%s: '..'", path);

  DIR *d = opendir(path);
  if (!d)
    die(path);
  size_t host_entries = 0;
  unsigned subdirs = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char *sub = xasprintf("%s/%s", path, de->d_name);
    struct stat st;
    if (lstat(sub, &st) == -1)
      die(sub);
    const struct rd_dirent *e = find_dirent(v, n, de->d_name, strlen(de->d_name));
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
      CHECKF(!e, "%s: special file shown", sub);
      (*skipped)++;
      free(sub);
      continue;
    }
    host_entries++;
    if (!CHECKF(e != NULL, "%s: missing from the image", sub)) {
      free(sub);
      continue;
    }
    struct erofs_inode_extended ce;
    rd_inode(r, e->nid, &ce);
    r->nids_seen++;
    CHECKF(ce.i_mode == (st.st_mode & 0xffff), "%s: mode %o, want %o", sub, ce.i_mode, st.st_mode);
    CHECKF(ce.i_uid == st.st_uid && ce.i_gid == st.st_gid, "%s: owner", sub);
    CHECKF((int64_t)ce.i_mtime == st.st_mtim.tv_sec && ce.i_mtime_nsec == st.st_mtim.tv_nsec, "%s: mtime", sub);
    unsigned want_type = S_ISDIR(st.st_mode) ? EROFS_FT_DIR : S_ISLNK(st.st_mode) ? EROFS_FT_SYMLINK : EROFS_FT_REG_FILE;
    CHECKF(e->type == want_type, "%s: file type %u", sub, e->type);
    if (!S_ISDIR(st.st_mode)) {
      CHECKF(ce.i_size == (uint64_t)st.st_size, "%s: size %llu", sub, (unsigned long long)ce.i_size);
      CHECKF(ce.i_nlink == st.st_nlink, "%s: nlink %u want %lu", sub, ce.i_nlink, (unsigned long)st.st_nlink);
    }
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode)) {
      size_t k;
      for (k = 0; k < links->n; k++)
        if (links->v[k].dev == st.st_dev && links->v[k].ino == st.st_ino)
          break;
      if (k == links->n && links->n < 64)
        links->v[links->n++] = (struct linkent){ st.st_dev, st.st_ino, e->nid };
      else
        CHECKF(k < links->n && links->v[k].nid == e->nid, "%s: hard link has another inode", sub);
    }
    if (S_ISDIR(st.st_mode)) {
      subdirs++;
      compare_dir(r, e->nid, nid, sub, links, skipped);
    } else if (S_ISLNK(st.st_mode)) {
      char t1[PATH_MAX] = "", t2[PATH_MAX] = "";
      ssize_t l = readlink(sub, t1, sizeof t1);
      if (ce.i_size < sizeof t2)
        rd_data(r, e->nid, &ce, (uint8_t *)t2, ce.i_size, 0);
      CHECKF(l == (ssize_t)ce.i_size && memcmp(t1, t2, (size_t)l) == 0, "%s: symlink target", sub);
      CHECKF(layout_of(&ce) == (64 + ce.i_size <= r->bs ? EROFS_INODE_FLAT_INLINE : EROFS_INODE_FLAT_PLAIN),
             "%s: symlink layout %u", sub, layout_of(&ce));
    } else {
      compare_file_data(r, e->nid, &ce, sub);
      if ((uint64_t)st.st_blocks * 512 + (4u << 20) < (uint64_t)st.st_size)
        CHECKF(layout_of(&ce) == EROFS_INODE_CHUNK_BASED, "%s: sparse but layout %u", sub, layout_of(&ce));
    }
    free(sub);
  }
  closedir(d);
  CHECKF(n == host_entries + 2, "%s: %zu entries in the image, %zu on the host", path, n - 2, host_entries);
  CHECKF(ie.i_nlink == 2 + subdirs, "%s: nlink %u, %u subdirectories", path, ie.i_nlink, subdirs);
  free(v);
}

/* Find PATH (absolute) from the root; returns its nid and parent's. */
static uint64_t lookup(struct reader *r, uint64_t root, const char *path, uint64_t *parent)
{
  uint64_t nid = root;
  *parent = root;
  const char *p = path;
  while (*p == '/') {
    p++;
    size_t len = strcspn(p, "/");
    struct erofs_inode_extended ie;
    rd_inode(r, nid, &ie);
    if (!CHECKF(S_ISDIR(ie.i_mode), "%.*s: not a directory", (int)(p - path), path))
      return root;
    size_t n;
    struct rd_dirent *v = rd_dir(r, nid, &ie, &n);
    const struct rd_dirent *e = find_dirent(v, n, p, len);
    if (!CHECKF(e != NULL, "%s: component %.*s missing", path, (int)len, p)) {
      free(v);
      return root;
    }
    *parent = nid;
    nid = e->nid;
    free(v);
    p += len;
  }
  return nid;
}

/* ------------------------------------------------------------ images */

static void write_image(struct synth_image *img, const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd == -1)
    die(path);
  static uint8_t buf[1 << 20], zero[1 << 20];
  for (uint64_t off = 0; off < synth_size(img); off += sizeof buf) {
    size_t n = synth_size(img) - off < sizeof buf ? (size_t)(synth_size(img) - off) : sizeof buf;
    if (synth_read(img, buf, n, off) == -1)
      die("synth_read");
    if (memcmp(buf, zero, n) != 0 && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
      die("pwrite");
  }
  if (ftruncate(fd, (off_t)synth_size(img)) == -1 || close(fd) == -1)
    die(path);
}

/* fsck.erofs and its extraction, compared with the host by `find -printf`. */
static void check_with_fsck(struct fixture *f, struct synth_image *img)
{
  char *image = xasprintf("%s/image.erofs", f->dir);
  char *out = xasprintf("%s/extract", f->dir);
  write_image(img, image);
  char *cmd = xasprintf("fsck.erofs '%s' >'%s/fsck.log' 2>&1", image, f->dir);
  CHECKF(run(cmd) == 0, "fsck.erofs failed: see %s/fsck.log", f->dir);
  free(cmd);
  cmd = xasprintf("fsck.erofs --extract='%s' %s '%s' >'%s/extract.log' 2>&1", out,
                  f->as_root ? "--preserve" : "", image, f->dir);
  CHECKF(run(cmd) == 0, "fsck.erofs --extract failed: see %s/extract.log", f->dir);
  free(cmd);

  /* Everything but chunk-based files (fsck.erofs 1.5 writes their data
   * chunks back to back, dropping the holes), the setuid file (fsck.erofs
   * chmods before it chowns, which clears the bit) and what fsck cannot do as
   * an ordinary user (owners, unreadable files). Directory sizes differ by
   * design; hard links come out as copies. The reader above checks all. */
  const char *fmt = f->as_root ? "%y %m %U %G %T@ %l %P" : "%y %m %T@ %l %P";
  cmd = xasprintf("cd '%s' && find . \\( -type p -o -type s -o -name sparse -o -name holes-only -o -name huge "
                  "-o -name nothing -o -name setuid \\) -prune -o -printf '%s\\n' | LC_ALL=C sort >'%s/host.list' && "
                  "cd '%s%s' && find . \\( -name sparse -o -name holes-only -o -name huge -o -name nothing -o -name setuid \\) "
                  "-prune -o -printf '%s\\n' | LC_ALL=C sort >'%s/image.list' && "
                  "cmp -s '%s/host.list' '%s/image.list'",
                  f->tree, fmt, f->dir, out, f->tree, fmt, f->dir, f->dir, f->dir);
  CHECKF(run(cmd) == 0, "extracted tree differs: diff %s/host.list %s/image.list", f->dir, f->dir);
  free(cmd);
  cmd = xasprintf("diff -r --no-dereference -x sparse -x holes-only -x huge -x nothing -x fifo -x sock '%s' '%s%s' "
                  ">'%s/diff.log' 2>&1",
                  f->tree, out, f->tree, f->dir);
  CHECKF(run(cmd) == 0, "extracted contents differ: see %s/diff.log", f->dir);
  free(cmd);
  free(image);
  free(out);
}

static struct synth_image *build(struct fixture *f, unsigned bits, struct synth_options *opt)
{
  char *nested = xasprintf("%s/wide", f->tree);
  char *missing = xasprintf("%s/not-there", f->dir);
  char *messy = xasprintf("/%s//./", f->other);
  char *roots[] = { f->tree, messy, nested, missing };
  struct synth_options o = { .blkszbits = bits, .log = count_log };
  if (opt)
    o = *opt;
  struct synth_image *img = NULL;
  char err[512];
  if (synth_build(roots, 4, &o, &img, err, sizeof err) == -1) {
    fprintf(stderr, "synth_build: %s\n", err);
    failures++;
  }
  free(nested);
  free(missing);
  free(messy);
  return img;
}

static void test_image(struct fixture *f, unsigned bits)
{
  log_lines = 0;
  struct synth_image *img = build(f, bits, NULL);
  if (!img)
    return;
  const struct synth_stats *s = synth_stats(img);
  fprintf(stderr, "blocks 2^%u: %llu inodes, image %llu bytes, metadata %llu, mapped %llu, %d log lines\n",
          bits, (unsigned long long)s->inodes, (unsigned long long)s->image_size,
          (unsigned long long)s->meta_bytes, (unsigned long long)s->mapped_bytes, log_lines);
  CHECK(s->skipped == 2);
  CHECK(s->chunked == 3);
  CHECK(log_lines >= 4); /* fifo, socket, nested root, missing root */
  CHECK(s->image_size < (512u << 20)); /* holes cost nothing: 5 GiB + 64 MiB + 10 MiB of sparse files */

  struct reader r = { .img = img, .bits = bits, .bs = 1ULL << bits };
  uint8_t sb[128];
  rd(&r, sb, sizeof sb, EROFS_SUPER_OFFSET);
  struct erofs_super_block super;
  erofs_get_super(sb, &super);
  CHECK(super.magic == EROFS_SUPER_MAGIC);
  CHECK(super.blkszbits == bits);
  CHECK((uint64_t)super.blocks << bits == synth_size(img));
  CHECK(super.inos == s->inodes);
  CHECK(super.feature_incompat == EROFS_FEATURE_INCOMPAT_CHUNKED_FILE);

  /* the synthesised directories above the roots */
  uint64_t root = super.root_nid, parent;
  struct erofs_inode_extended ie;
  rd_inode(&r, root, &ie);
  CHECK(S_ISDIR(ie.i_mode) && (ie.i_mode & 07777) == 0755 && ie.i_uid == 0 && ie.i_gid == 0);
  uint64_t tmp = lookup(&r, root, "/tmp", &parent);
  rd_inode(&r, tmp, &ie);
  if (strncmp(f->dir, "/tmp/", 5) == 0)
    CHECK(S_ISDIR(ie.i_mode) && (ie.i_mode & 07777) == 0755 && ie.i_uid == 0);

  struct linkmap links = { .n = 0 };
  int skipped = 0;
  uint64_t tree = lookup(&r, root, f->tree, &parent);
  compare_dir(&r, tree, parent, f->tree, &links, &skipped);
  CHECK(skipped == 2);
  CHECK(links.n == 2);
  uint64_t other = lookup(&r, root, f->other, &parent);
  compare_dir(&r, other, parent, f->other, &links, &skipped);
  /* the directory holding both roots has exactly them */
  uint64_t top = lookup(&r, root, f->dir, &parent);
  rd_inode(&r, top, &ie);
  size_t n;
  free(rd_dir(&r, top, &ie, &n));
  CHECK(n == 4);
  CHECK(ie.i_nlink == 4);

  if (bits == 12)
    check_with_fsck(f, img);

  /* past the end: zeroes */
  uint8_t z[100];
  memset(z, 1, sizeof z);
  CHECK(synth_read(img, z, sizeof z, synth_size(img) - 50) == 0);
  CHECK(z[99] == 0 && z[60] == 0);
  synth_free(img);
}

/* A file that shrinks or vanishes after the scan reads as zeroes. */
static void test_changed_files(struct fixture *f)
{
  char *p = xasprintf("%s/changing", f->tree);
  static uint8_t data[100000];
  memset(data, 'c', sizeof data);
  write_file(p, data, sizeof data, 0644);
  struct synth_image *img = build(f, 12, NULL);
  if (!img) {
    free(p);
    return;
  }
  struct reader r = { .img = img, .bits = 12, .bs = 4096 };
  uint8_t sb[128];
  rd(&r, sb, sizeof sb, EROFS_SUPER_OFFSET);
  struct erofs_super_block super;
  erofs_get_super(sb, &super);
  uint64_t parent, nid = lookup(&r, super.root_nid, p, &parent);
  struct erofs_inode_extended ie;
  rd_inode(&r, nid, &ie);
  CHECK(ie.i_size == sizeof data);

  static uint8_t got[100000];
  if (truncate(p, 1000) == -1)
    die("truncate");
  rd_data(&r, nid, &ie, got, sizeof got, 0);
  CHECK(got[999] == 'c' && got[1000] == 0 && got[99999] == 0);
  unlink(p);
  write_file(p, "new", 3, 0644); /* replaced: the new file's bytes (logged) */
  memset(got, 1, sizeof got);
  rd_data(&r, nid, &ie, got, sizeof got, 0);
  /* the old file may still be open in the descriptor cache: either is fine,
   * but never an error */
  CHECK(got[5000] == 0);
  unlink(p);
  synth_free(img);
  write_file(p, data, 10, 0644);
  img = build(f, 12, NULL);
  if (img) {
    unlink(p);
    r.img = img;
    rd(&r, sb, sizeof sb, EROFS_SUPER_OFFSET);
    erofs_get_super(sb, &super);
    nid = lookup(&r, super.root_nid, p, &parent);
    rd_inode(&r, nid, &ie);
    memset(got, 1, 10);
    rd_data(&r, nid, &ie, got, 10, 0); /* never opened: now gone, zeroes */
    CHECK(got[0] == 0 && got[9] == 0);
    synth_free(img);
  }
  free(p);
}

/* Read LEN bytes at the start of file PATH of IMG (flat, as small files
 * are) with synth_read: 0, or -1 (an I/O error for the guest). */
static int read_file_of(struct synth_image *img, const char *path, uint8_t *buf, size_t len)
{
  struct reader r = { .img = img, .bits = 12, .bs = 4096 };
  uint8_t sb[128];
  rd(&r, sb, sizeof sb, EROFS_SUPER_OFFSET);
  struct erofs_super_block super;
  erofs_get_super(sb, &super);
  struct erofs_inode_extended ie;
  uint64_t parent, nid = lookup(&r, super.root_nid, path, &parent);
  rd_inode(&r, nid, &ie);
  CHECK(layout_of(&ie) == EROFS_INODE_FLAT_PLAIN);
  return synth_read(img, buf, len, (uint64_t)ie.i_u * r.bs);
}

static void hung(int sig)
{
  (void)sig;
  static const char msg[] = "check failed: a read of a file replaced by a fifo hangs\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  _exit(1);
}

/* Issue 14, defects 3 and 7: after the scan, a directory of the tree is
 * replaced by a symlink to a directory outside it, and a file by a fifo.
 * The image never serves the outside file's bytes, and no read blocks. */
static void test_swapped_files(struct fixture *f)
{
  char *root = xasprintf("%s/swap", f->dir), *a = xasprintf("%s/a", root), *old = xasprintf("%s/a.old", root);
  char *secret = xasprintf("%s/secret", f->dir), *key = xasprintf("%s/key", secret);
  char *inside = xasprintf("%s/key", a), *fifo = xasprintf("%s/fifo", root);
  static uint8_t data[8192], got[8192];
  mkdir(root, 0755);
  mkdir(a, 0755);
  mkdir(secret, 0700);
  memset(data, 'i', sizeof data);
  write_file(inside, data, sizeof data, 0644);
  write_file(fifo, data, sizeof data, 0644);
  memset(data, 'S', sizeof data);
  write_file(key, data, sizeof data, 0600);

  struct synth_options o = { .blkszbits = 12, .log = count_log };
  struct synth_image *img = NULL;
  char err[512];
  char *roots[] = { root };
  if (!CHECK(synth_build(roots, 1, &o, &img, err, sizeof err) == 0))
    goto out;
  /* a/ becomes a symlink to secret/, which has a key of its own */
  if (rename(a, old) == -1 || symlink(secret, a) == -1)
    die("swap");
  memset(got, 0, sizeof got);
  int rc = read_file_of(img, inside, got, sizeof got);
  CHECKF(got[0] != 'S' && got[sizeof got - 1] != 'S', "read through a swapped symlink: rc %d", rc);
  /* a file of the same path that is not the one scanned: not served either */
  unlink(a);
  mkdir(a, 0755);
  write_file(inside, data, sizeof data, 0644);
  memset(got, 0, sizeof got);
  rc = read_file_of(img, inside, got, sizeof got);
  CHECKF(got[0] != 'S', "a different file at the scanned path was served: rc %d", rc);

  /* a fifo in place of the file: the read returns */
  unlink(fifo);
  if (mkfifo(fifo, 0644) == -1)
    die("mkfifo");
  signal(SIGALRM, hung);
  alarm(10);
  read_file_of(img, fifo, got, sizeof got);
  alarm(0);
  synth_free(img);
out:
  free(root);
  free(a);
  free(old);
  free(secret);
  free(key);
  free(inside);
  free(fifo);
}

/* The image is bounded by max_size (a generation's slot). */
static void test_too_big(struct fixture *f)
{
  struct synth_options o = { .blkszbits = 12, .max_size = 1 << 20, .log = count_log };
  char *roots[] = { f->tree };
  struct synth_image *img = NULL;
  char err[512] = "";
  CHECK(synth_build(roots, 1, &o, &img, err, sizeof err) == -1);
  CHECK(strstr(err, "slot") != NULL);
  char *bad[] = { "relative/path" };
  CHECK(synth_build(bad, 1, &o, &img, err, sizeof err) == -1);
  char *up[] = { "/tmp/../etc" };
  CHECK(synth_build(up, 1, &o, &img, err, sizeof err) == -1);
  char *slash[] = { "//" };
  CHECK(synth_build(slash, 1, &o, &img, err, sizeof err) == -1);
}

/* ------------------------------------------------------------ fingerprint */

static struct synth_fingerprint fp(char **roots, size_t n)
{
  struct synth_fingerprint v = { 0, 0 };
  char err[256];
  CHECK(synth_fingerprint(roots, n, &v, NULL, NULL, err, sizeof err) == 0);
  return v;
}

static void test_fingerprint(struct fixture *f)
{
  char *roots[] = { f->tree, f->other };
  struct synth_fingerprint a = fp(roots, 2), b = fp(roots, 2);
  CHECK(synth_fingerprint_equal(&a, &b));
  char *p = xasprintf("%s/size-1", f->tree);
  set_mtime(p, 1600000000, 1); /* only the nanoseconds move */
  b = fp(roots, 2);
  CHECK(!synth_fingerprint_equal(&a, &b));
  a = b;
  chmod(p, 0600);
  b = fp(roots, 2);
  CHECK(!synth_fingerprint_equal(&a, &b));
  a = b;
  free(p);
  p = xasprintf("%s/empty/new", f->other);
  write_file(p, "", 0, 0644);
  b = fp(roots, 2);
  CHECK(!synth_fingerprint_equal(&a, &b));
  unlink(p);
  free(p);
  CHECK(fp(roots, 1).low != fp(roots + 1, 1).low);
}

/* ------------------------------------------------------------ generations */

static void write_roots(const char *control, int n, const char *text)
{
  char *tmp = xasprintf("%s/.gen-%d.tmp", control, n), *path = xasprintf("%s/gen-%d.roots", control, n);
  write_file(tmp, text, strlen(text), 0644);
  if (rename(tmp, path) == -1)
    die("rename");
  free(tmp);
  free(path);
}

static void test_gens(struct fixture *f)
{
  char *control = xasprintf("%s/control", f->dir);
  mkdir(control, 0755);
  char err[256];
  struct gens_config c = { .control_dir = control, .export_size = 8ULL << 30, .slot_size = 1ULL << 30,
                           .blkszbits = 12, .log = count_log };
  struct gens_config bad = c;
  bad.slot_size = 3ULL << 30;
  CHECK(gens_new(&bad, err, sizeof err) == NULL);
  struct gens *g = gens_new(&c, err, sizeof err);
  if (!CHECK(g != NULL))
    return;

  uint8_t sb[2048];
  struct erofs_super_block super;
  CHECK(gens_read(g, sb, sizeof sb, 0) == 0); /* no roots yet: zeroes, nothing built */
  CHECK(sb[EROFS_SUPER_OFFSET] == 0);

  char *text = xasprintf("%s\n\n%s\n", f->other, f->tree);
  write_roots(control, 0, text);
  free(text);
  CHECK(gens_read(g, sb, sizeof sb, 0) == 0);
  erofs_get_super(sb + EROFS_SUPER_OFFSET, &super);
  CHECK(super.magic == EROFS_SUPER_MAGIC);
  char *info = xasprintf("%s/gen-0.info", control);
  CHECK(access(info, F_OK) == 0);
  free(info);

  write_roots(control, 1, f->other);
  write_roots(control, 2, "not absolute\n");
  /* a read across the end of slot 0 into slot 1 */
  static uint8_t two[8192];
  CHECK(gens_read(g, two, sizeof two, (1ULL << 30) - 4096) == 0);
  erofs_get_super(two + 4096 + EROFS_SUPER_OFFSET, &super);
  CHECK(super.magic == EROFS_SUPER_MAGIC);
  uint32_t blocks1 = super.blocks;
  CHECK(gens_read(g, sb, sizeof sb, 2ULL << 30) == 0);
  CHECK(sb[EROFS_SUPER_OFFSET] == 0);
  char *error = xasprintf("%s/gen-2.error", control);
  CHECK(access(error, F_OK) == 0);
  free(error);

  /* retiring frees generation 0; 1 stays */
  char *retired = xasprintf("%s/gen-0.retired", control);
  write_file(retired, "", 0, 0644);
  free(retired);
  gens_sweep(g);
  CHECK(gens_read(g, sb, sizeof sb, 0) == 0);
  CHECK(sb[EROFS_SUPER_OFFSET] == 0);
  CHECK(gens_read(g, sb, sizeof sb, 1ULL << 30) == 0);
  erofs_get_super(sb + EROFS_SUPER_OFFSET, &super);
  CHECK(super.magic == EROFS_SUPER_MAGIC && super.blocks == blocks1);
  /* removing the roots file retires too */
  char *roots1 = xasprintf("%s/gen-1.roots", control);
  unlink(roots1);
  free(roots1);
  gens_sweep(g);
  CHECK(gens_read(g, sb, sizeof sb, 1ULL << 30) == 0);
  CHECK(sb[EROFS_SUPER_OFFSET] == 0);

  /* Issue 14, defect 9: a freed slot is acknowledged (its files gone,
   * gen-N.retired last) and takes a new generation, built afresh. */
  char *retired0 = xasprintf("%s/gen-0.retired", control), *roots0 = xasprintf("%s/gen-0.roots", control);
  CHECK(access(retired0, F_OK) == -1 && access(roots0, F_OK) == -1);
  write_roots(control, 0, f->other);
  CHECK(gens_read(g, sb, sizeof sb, 0) == 0);
  erofs_get_super(sb + EROFS_SUPER_OFFSET, &super);
  CHECK(super.magic == EROFS_SUPER_MAGIC && super.blocks == blocks1);
  gens_free(g);

  /* with the watcher, a retired slot is free without any read */
  g = gens_new(&c, err, sizeof err);
  if (CHECK(g != NULL) && CHECK(gens_watch(g, err, sizeof err) == 0)) {
    for (int round = 0; round < 3; round++) {
      write_roots(control, 0, round % 2 ? f->other : f->tree);
      CHECK(gens_read(g, sb, sizeof sb, 0) == 0);
      erofs_get_super(sb + EROFS_SUPER_OFFSET, &super);
      CHECK(super.magic == EROFS_SUPER_MAGIC && (super.blocks == blocks1) == (round % 2 == 1));
      write_file(retired0, "", 0, 0644);
      int waited = 0;
      while (access(retired0, F_OK) == 0 && waited++ < 300)
        usleep(10000);
      CHECKF(access(retired0, F_OK) == -1, "round %d: slot 0 not freed within 3 s", round);
    }
  }
  gens_free(g);
  free(retired0);
  free(roots0);
  free(control);
}

/* ------------------------------------------------------------ main */

static int fingerprint_main(int argc, char **argv)
{
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct synth_fingerprint v;
  char err[256];
  if (synth_fingerprint(argv, (size_t)argc, &v, NULL, NULL, err, sizeof err) == -1) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%016llx%016llx %.1f\n", (unsigned long long)v.high, (unsigned long long)v.low,
         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "--fingerprint") == 0)
    return fingerprint_main(argc - 2, argv + 2);

  test_regions();
  struct fixture f;
  make_tree(&f);
  test_image(&f, 12);
  test_image(&f, 9);
  test_image(&f, 16);
  test_changed_files(&f);
  test_swapped_files(&f);
  test_too_big(&f);
  test_fingerprint(&f);
  test_gens(&f);
  if (failures == 0 || !getenv("TEST_SHARE_KEEP"))
    remove_tree(f.dir);
  else
    fprintf(stderr, "kept %s\n", f.dir);
  free(f.dir);
  free(f.tree);
  free(f.other);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  return 0;
}
