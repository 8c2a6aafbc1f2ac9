/* The lazy image (nbd-share/synth/lazy.c), without nbdkit:
 *   - read whole, it is a valid EROFS image of the tree (fsck.erofs, and its
 *     extraction equals the tree) at 4 KiB blocks; at 512 B and 64 KiB
 *     (which this fsck.erofs cannot check on a 4 KiB-page host) it reads whole;
 *   - nothing is read from the host before the guest asks: a tree of 100
 *     directories is one inode until the root's entries are read, and
 *     reading those places the children without taking them from the host;
 *   - a block the guest read while it was unused is never handed out;
 *   - lazy_stale: a new name in a directory the guest read a block of, or a
 *     changed entry whose inode it gave out, says so; a change in a directory
 *     the image never read, or of an entry whose inode it did not give out,
 *     does not; nor does a new name (a new subdirectory too) in a directory
 *     whose inode the guest has but none of its blocks: its first block
 *     read shows the name (its size, whole blocks, and its link count, 1,
 *     unchanged), unless the listing outgrew its blocks, which is stale;
 *   - lazy_take_changed: a regular file of one name whose inode the guest
 *     has, rewritten in place or renamed over (the write-back's temporary
 *     names not counting), is listed, once, and the image is not stale; so
 *     are a file made and a name removed (a directory too) in a listing the guest has (a fifo
 *     made there is not listed); a hard-linked file, one grown past
 *     WIRE_PATCH_FILE_MAX, a symlink made, or too many names make it
 *     stale;
 *   - a directory made there is listed, before what it holds, and what
 *     changes in it later too (test_dir_made). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs-format.h"
#include "hostfiles.h"
#include "lazy.h"
#include "wire.h"
#include "unit-check.h"

static void die(const char *what)
{
  perror(what);
  exit(2);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  char *s;
  if (vasprintf(&s, f, ap) < 0)
    die("vasprintf");
  va_end(ap);
  return s;
}

static void put(const char *path, const char *text, size_t repeat)
{
  FILE *f = fopen(path, "w");
  if (!f)
    die(path);
  for (size_t i = 0; i < repeat; i++)
    fputs(text, f);
  if (fclose(f))
    die(path);
}

static void sh(const char *cmd)
{
  if (system(cmd) != 0) {
    fprintf(stderr, "failed: %s\n", cmd);
    failures++;
  }
}

static struct lazy_image *open_lazy_inline(const char *root, unsigned bits, bool inline_data)
{
  struct lazy_options o = { .root = root, .blkszbits = bits, .size = 1ULL << 34, .inline_data = inline_data };
  struct lazy_image *img = NULL;
  char err[512];
  if (lazy_new(&o, &img, err, sizeof err) == -1) {
    fprintf(stderr, "lazy_new: %s\n", err);
    exit(2);
  }
  return img;
}

static struct lazy_image *open_lazy(const char *root, unsigned bits)
{
  return open_lazy_inline(root, bits, false);
}

/* Read the image from its first block on, as far as it grows while read:
 * everything reachable gets laid out. */
static void dump(struct lazy_image *img, unsigned bits, const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  uint8_t *buf = malloc(1u << bits);
  if (fd == -1 || !buf)
    die(path);
  uint64_t blk = 0;
  for (; blk < lazy_stats(img).blocks; blk++) {
    if (lazy_read(img, buf, 1u << bits, blk << bits) == -1)
      die("lazy_read");
    if (pwrite(fd, buf, 1u << bits, (off_t)(blk << bits)) != (ssize_t)(1u << bits))
      die("pwrite");
  }
  close(fd);
  free(buf);
}

static void make_tree(const char *t)
{
  char *p;
  mkdir(t, 0755);
  put(p = fmt("%s/empty", t), "", 0), free(p);
  put(p = fmt("%s/small", t), "hello\n", 1), free(p);
  put(p = fmt("%s/blocks", t), "0123456789abcdef", 4097), free(p);
  mkdir(p = fmt("%s/sub", t), 0750), free(p);
  mkdir(p = fmt("%s/sub/deeper", t), 0755), free(p);
  put(p = fmt("%s/sub/deeper/leaf", t), "leaf\n", 3), free(p);
  mkdir(p = fmt("%s/wide", t), 0755), free(p);
  for (int i = 0; i < 300; i++) /* several directory blocks, and inode blocks */
    put(p = fmt("%s/wide/file-with-a-longish-name-%03d", t, i), "x", (size_t)i), free(p);
  char *q;
  if (symlink("small", p = fmt("%s/link", t)))
    die("symlink");
  free(p);
  if (symlink("/nowhere/at/all", q = fmt("%s/dangling", t)))
    die("symlink");
  free(q);
  if (link(p = fmt("%s/small", t), q = fmt("%s/sub/hard", t)))
    die("link");
  free(p), free(q);
  if (mkfifo(p = fmt("%s/fifo", t), 0644))
    die("mkfifo");
  free(p);
}

static void test_fsck(const char *dir, unsigned bits, bool inline_data)
{
  char *tree = fmt("%s/tree", dir), *image = fmt("%s/image-%u-%d", dir, bits, inline_data),
       *out = fmt("%s/out-%u-%d", dir, bits, inline_data);
  struct lazy_image *img = open_lazy_inline(tree, bits, inline_data);
  dump(img, bits, image);
  if (bits != 12) {
    lazy_free(img);
    free(tree), free(image), free(out);
    return;
  }
  char *cmd = fmt("fsck.erofs '%s' >'%s.log' 2>&1 || cat '%s.log' >&2", image, image, image);
  sh(cmd), free(cmd);
  cmd = fmt("fsck.erofs --extract='%s' '%s' >'%s.x.log' 2>&1 || cat '%s.x.log' >&2", out, image, image, image);
  sh(cmd), free(cmd);
  cmd = fmt("diff -r --no-dereference -x fifo '%s' '%s'", tree, out);
  sh(cmd), free(cmd);
  struct lazy_stats s = lazy_stats(img);
  CHECK(s.dirs == 4);
  lazy_free(img);
  free(tree), free(image), free(out);
}

/* The inode of child I of a directory whose inodes start at block BLK. */
static struct erofs_inode_extended child_inode(struct lazy_image *img, uint64_t blk, unsigned i)
{
  uint8_t b[4096];
  struct erofs_inode_extended ie;
  if (lazy_read(img, b, sizeof b, blk * 4096) == -1)
    die("lazy_read");
  erofs_get_inode(b + i * sizeof(struct erofs_inode_extended), &ie);
  return ie;
}

static void test_lazy(const char *dir)
{
  char *big = fmt("%s/big", dir), *p;
  mkdir(big, 0755);
  for (int i = 0; i < 100; i++) {
    mkdir(p = fmt("%s/d%03d", big, i), 0755), free(p);
    for (int j = 0; j < 20; j++)
      put(p = fmt("%s/d%03d/f%02d", big, i, j), "", 0), free(p);
  }
  struct lazy_image *img = open_lazy(big, 12);
  struct lazy_stats s = lazy_stats(img);
  CHECK(s.inodes == 1 && s.dirs == 1);
  uint8_t buf[4096];
  /* Unused blocks read by the guest: never given out later. */
  CHECK(lazy_read(img, buf, sizeof buf, 100 * 4096) == 0);
  /* The root's entries (block 1): children placed, none taken from the host. */
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0);
  s = lazy_stats(img);
  CHECK(s.inodes == 1 && s.dirs == 1);
  CHECK(s.blocks == 101 + (100 * 64 + 4095) / 4096);
  /* Their first inode block: 64 directories read, nothing below them. */
  CHECK(lazy_read(img, buf, sizeof buf, 101 * 4096) == 0);
  s = lazy_stats(img);
  CHECK(s.inodes == 65 && s.dirs == 65);
  CHECK(!lazy_stale(img));

  /* A change where the image never looked: still fresh. */
  put(p = fmt("%s/d099/new", big), "", 0), free(p);
  CHECK(!lazy_stale(img));
  /* A file rewritten in a directory it read (d000's listing), whose inode
   * the guest does not have: still fresh (it will be taken as it is). */
  put(p = fmt("%s/d000/f00", big), "changed", 1), free(p);
  CHECK(!lazy_stale(img));
  /* A new name there: d000's blocks unread, so still fresh, and its first
   * block read shows it, in a listing of the same size (whole blocks). */
  put(p = fmt("%s/d000/new", big), "", 0), free(p);
  CHECK(!lazy_stale(img));
  struct erofs_inode_extended d000 = child_inode(img, 101, 0);
  CHECK(d000.i_size == 4096);
  CHECK(lazy_read(img, buf, sizeof buf, (uint64_t)d000.i_u * 4096) == 0);
  CHECK(memmem(buf, sizeof buf, "new", 3) != NULL);
  CHECK(!lazy_stale(img));
  /* Once a block of it was read, a new file or directory there is a patch
   * (test_changed, test_dir_made), a symlink makes it stale. */
  mkdir(p = fmt("%s/d000/newer", big), 0755), free(p);
  CHECK(!lazy_stale(img));
  if (symlink("f00", p = fmt("%s/d000/ln", big)))
    die("symlink");
  free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* A listing that outgrew its block before the guest read it: stale at
   * once (the next call would miss names it may look for), and the guest
   * gets the old one. */
  img = open_lazy(big, 12);
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0);
  struct erofs_inode_extended d001 = child_inode(img, 2, 1); /* no block read before: its inodes follow the root's entries */
  CHECK(!lazy_stale(img));
  for (int j = 0; j < 300; j++)
    put(p = fmt("%s/d001/a-name-long-enough-to-fill-a-block-%03d", big, j), "", 0), free(p);
  CHECK(lazy_stale(img));
  CHECK(lazy_read(img, buf, sizeof buf, (uint64_t)d001.i_u * 4096) == 0);
  CHECK(memmem(buf, sizeof buf, "a-name-long", 11) == NULL);
  lazy_free(img);
  /* A new subdirectory where the guest has only the parent's inode (a
   * test's working directory made in the tree the last call ran in): still
   * fresh, and it is there when the guest looks. */
  img = open_lazy(big, 12);
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0);
  struct erofs_inode_extended d003 = child_inode(img, 2, 3);
  CHECK(d003.i_nlink == 1);
  CHECK(!lazy_stale(img));
  mkdir(p = fmt("%s/d003/cwd", big), 0755), free(p);
  CHECK(!lazy_stale(img));
  CHECK(lazy_read(img, buf, sizeof buf, (uint64_t)d003.i_u * 4096) == 0);
  CHECK(memmem(buf, sizeof buf, "cwd", 3) != NULL);
  CHECK(!lazy_stale(img));
  lazy_free(img);
  /* An entry whose inode the guest has, its attributes changed: stale. */
  img = open_lazy(big, 12);
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0 && lazy_read(img, buf, sizeof buf, 2 * 4096) == 0);
  CHECK(!lazy_stale(img));
  chmod(p = fmt("%s/d002", big), 0700), free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* The root's listing, read when the image is made: a new name before the
   * guest read its block is shown; a new symlink after makes the image
   * stale. */
  img = open_lazy(big, 12);
  put(p = fmt("%s/new", big), "", 0), free(p);
  CHECK(!lazy_stale(img));
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0);
  CHECK(memmem(buf, sizeof buf, "new", 3) != NULL);
  if (symlink("new", p = fmt("%s/newest", big)))
    die("symlink");
  free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  free(big);
}

/* The nid of NAME in the directory block BLOCK (4 KiB), or 0. */
static uint64_t child_nid(const uint8_t *block, const char *name)
{
  struct erofs_dirent de;
  erofs_get_dirent(block, &de);
  unsigned n = de.nameoff / sizeof de;
  for (unsigned i = 0; i < n; i++) {
    struct erofs_dirent e, next;
    erofs_get_dirent(block + i * sizeof e, &e);
    size_t end = 4096;
    if (i + 1 < n) {
      erofs_get_dirent(block + (i + 1) * sizeof next, &next);
      end = next.nameoff;
    }
    size_t len = strnlen((const char *)block + e.nameoff, end - e.nameoff);
    if (len == strlen(name) && !memcmp(block + e.nameoff, name, len))
      return e.nid;
  }
  return 0;
}

/* Inline data (inline=true): a small file's data and a symlink's target
 * follow the inode, in its block; a file that grew past its slot's room
 * after its directory was placed gets flat blocks instead, one that shrank
 * stays inline; 128 KiB after a directory's inodes stay free; what one
 * read lays out goes past the read's end; a directory of more than 4096
 * names keeps 64-byte slots. */
static void test_inline(const char *dir)
{
  char *t = fmt("%s/inl", dir), *p;
  mkdir(t, 0755);
  put(p = fmt("%s/a-grows", t), "0123456789", 10), free(p);
  put(p = fmt("%s/b-small", t), "small\n", 1), free(p);
  put(p = fmt("%s/c-shrinks", t), "0123456789", 20), free(p);
  if (symlink("b-small", p = fmt("%s/d-link", t)))
    die("symlink");
  free(p);
  mkdir(p = fmt("%s/e-dir", t), 0755), free(p);
  struct lazy_image *img = open_lazy_inline(t, 12, true);
  static uint8_t buf[4096 * 48];
  /* The root's entries (block 1) place the children: slots from their sizes now. */
  CHECK(lazy_read(img, buf, 4096, 4096) == 0);
  /* Their inodes in block 2, and the 128 KiB after them left free: what
   * the guest's kernel reads ahead of a miss there. */
  CHECK(lazy_stats(img).blocks == 3 + 32);
  put(p = fmt("%s/a-grows", t), "0123456789", 500), free(p); /* 5000 bytes: past its room */
  put(p = fmt("%s/c-shrinks", t), "short", 1), free(p);
  CHECK(!lazy_stale(img)); /* their inodes not given out yet */
  /* Their inodes: block 2, and 47 blocks after it in the same read (past
   * the 32 left free after the inodes). */
  CHECK(lazy_read(img, buf, sizeof buf, 2 * 4096) == 0);
  struct erofs_inode_extended a, b, c, d, e;
  uint64_t off = 0;
  erofs_get_inode(buf + off, &a); /* a-grows: 64 + 128 bytes (100, rounded to 32) */
  off += 64 + 128;
  erofs_get_inode(buf + off, &b); /* b-small: 64 + 32 */
  off += 64 + 32;
  erofs_get_inode(buf + off, &c); /* c-shrinks: 64 + 224 */
  const uint8_t *c_data = buf + off + 64;
  off += 64 + 224;
  erofs_get_inode(buf + off, &d); /* d-link: 64 + 32 */
  const uint8_t *d_data = buf + off + 64;
  off += 64 + 32;
  erofs_get_inode(buf + off, &e); /* e-dir: 64 */
  unsigned layout_a = (a.i_format >> EROFS_I_DATALAYOUT_BIT) & 7, layout_b = (b.i_format >> EROFS_I_DATALAYOUT_BIT) & 7,
           layout_c = (c.i_format >> EROFS_I_DATALAYOUT_BIT) & 7, layout_d = (d.i_format >> EROFS_I_DATALAYOUT_BIT) & 7,
           layout_e = (e.i_format >> EROFS_I_DATALAYOUT_BIT) & 7;
  CHECK(a.i_size == 5000 && layout_a == EROFS_INODE_FLAT_PLAIN);
  CHECK(b.i_size == 6 && layout_b == EROFS_INODE_FLAT_INLINE && !memcmp(buf + 64 + 128 + 64, "small\n", 6));
  CHECK(c.i_size == 5 && layout_c == EROFS_INODE_FLAT_INLINE && !memcmp(c_data, "short", 5));
  CHECK(d.i_size == 7 && layout_d == EROFS_INODE_FLAT_INLINE && !memcmp(d_data, "b-small", 7));
  CHECK(S_ISDIR(e.i_mode) && layout_e == EROFS_INODE_FLAT_PLAIN);
  /* What that read laid out (a-grows' data, e-dir's block) is past its end:
   * blocks 3-49 were unused when it came, and read as zeroes. */
  CHECK(a.i_u >= 50 && e.i_u >= 50);
  static const uint8_t zero[4096];
  for (int k = 1; k < 48; k++)
    CHECK(!memcmp(buf + k * 4096, zero, 4096));
  CHECK(lazy_read(img, buf, 4096, (uint64_t)a.i_u * 4096) == 0);
  CHECK(!memcmp(buf, "0123456789", 10));
  CHECK(!lazy_stale(img));
  lazy_free(img);
  /* A directory of more than 4096 names keeps 64-byte slots: no lstat of
   * each name when it is placed. */
  char *wide = fmt("%s/wide", t);
  mkdir(wide, 0755);
  for (int i = 0; i < 4100; i++)
    put(p = fmt("%s/f%04d", wide, i), "tiny", 1), free(p);
  img = open_lazy_inline(t, 12, true);
  CHECK(lazy_read(img, buf, 4096, 4096) == 0); /* the root's entries */
  uint64_t wide_nid = child_nid(buf, "wide");
  CHECK(lazy_read(img, buf, 4096, wide_nid * 32 / 4096 * 4096) == 0);
  struct erofs_inode_extended w;
  erofs_get_inode(buf + wide_nid * 32 % 4096, &w);
  CHECK(S_ISDIR(w.i_mode));
  CHECK(lazy_read(img, buf, 4096, (uint64_t)w.i_u * 4096) == 0); /* its entries: its children placed */
  struct erofs_dirent de;
  erofs_get_dirent(buf + 2 * sizeof de, &de); /* after "." and "..": f0000 */
  CHECK(lazy_read(img, buf, 4096, de.nid * 32 / 4096 * 4096) == 0);
  struct erofs_inode_extended f0, f1;
  erofs_get_inode(buf + de.nid * 32 % 4096, &f0);
  erofs_get_inode(buf + de.nid * 32 % 4096 + 64, &f1);
  CHECK(f0.i_size == 4 && ((f0.i_format >> EROFS_I_DATALAYOUT_BIT) & 7) == EROFS_INODE_FLAT_PLAIN);
  CHECK(f1.i_size == 4 && S_ISREG(f1.i_mode)); /* the next slot: 64 bytes on */
  lazy_free(img);
  free(wide);
  free(t);
}

/* The changed files lazy_take_changed hands out, as one string with the
 * NULs made '|'; "" for none. */
static char *changed(struct lazy_image *img)
{
  size_t len;
  char *p = lazy_take_changed(img, &len);
  char *out = calloc(1, len + 1);
  if (!out)
    die("calloc");
  for (size_t i = 0; i < len; i++)
    out[i] = p[i] ? p[i] : '|';
  free(p);
  return out;
}

static void check_changed(struct lazy_image *img, const char *want)
{
  char *got = changed(img);
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "changed: got \"%s\", want \"%s\"\n", got, want);
    failures++;
  }
  free(got);
}

/* A lazy image of a fresh copy of the tree for test_changed whose every
 * inode the guest has (the root's entries and their inodes read). */
static struct lazy_image *changed_image(const char *t)
{
  char *p, *q;
  sh(p = fmt("rm -rf '%s' && mkdir -p '%s/sub'", t, t)), free(p);
  put(p = fmt("%s/a", t), "one\n", 1), free(p);
  put(p = fmt("%s/b", t), "two\n", 1), free(p);
  put(p = fmt("%s/h1", t), "linked\n", 1), free(p);
  if (link(p = fmt("%s/h1", t), q = fmt("%s/h2", t)))
    die("link");
  free(p), free(q);
  struct lazy_image *img = open_lazy(t, 12);
  uint8_t buf[4096];
  CHECK(lazy_read(img, buf, sizeof buf, 4096) == 0 && lazy_read(img, buf, sizeof buf, 2 * 4096) == 0);
  CHECK(lazy_stats(img).inodes == 5); /* the root, a, b, sub, and h1 and h2's one inode */
  CHECK(!lazy_stale(img));
  check_changed(img, "");
  return img;
}

static void must(int rc, const char *what)
{
  if (rc != 0)
    die(what);
}

/* Directories made in a listing the guest read (a test's scratch directory
 * in the build tree): listed, each before what it holds, and what changes
 * in them later too; one of the listing removed and made again, too; one
 * moved there from the listing, too many names in them, or a tree deeper
 * than the plugin follows make the image stale. Part of test_changed. */
/* The image is not stale, and lists WANT (taken). */
static void fresh_with(struct lazy_image *img, char *want)
{
  if (lazy_stale(img)) {
    fprintf(stderr, "stale, where \"%s\" was to be listed\n", want);
    failures++;
  }
  check_changed(img, want);
  free(want);
}

static void test_dir_made(const char *t)
{
  char *p, *want;
  struct lazy_image *img = changed_image(t);
  must(mkdir(p = fmt("%s/newdir", t), 0755), "mkdir"), free(p);
  put(p = fmt("%s/newdir/f", t), "four\n", 1), free(p);
  fresh_with(img, fmt("%s/newdir|%s/newdir/f|", t, t));
  put(p = fmt("%s/newdir/f", t), "four, longer\n", 1), free(p);
  must(mkdir(p = fmt("%s/newdir/sub", t), 0755), "mkdir"), free(p);
  fresh_with(img, fmt("%s/newdir/f|%s/newdir/sub|", t, t));
  put(p = fmt("%s/newdir/sub/g", t), "five\n", 1), free(p);
  fresh_with(img, fmt("%s/newdir/sub/g|", t));
  /* Removed and made again (rm -rf; mkdir -p): the new one is watched. */
  must(unlink(p = fmt("%s/newdir/sub/g", t)), "unlink"), free(p);
  must(rmdir(p = fmt("%s/newdir/sub", t)), "rmdir"), free(p);
  must(mkdir(p = fmt("%s/newdir/sub", t), 0755), "mkdir"), free(p);
  fresh_with(img, fmt("%s/newdir/sub/g|%s/newdir/sub|", t, t));
  put(p = fmt("%s/newdir/sub/h", t), "six\n", 1), free(p);
  fresh_with(img, fmt("%s/newdir/sub/h|", t));
  /* A directory of the listing removed and made again. */
  must(rmdir(p = fmt("%s/sub", t)), "rmdir"), free(p);
  must(mkdir(p = fmt("%s/sub", t), 0700), "mkdir"), free(p);
  fresh_with(img, fmt("%s/sub|", t));
  put(p = fmt("%s/sub/x", t), "seven\n", 1), free(p);
  fresh_with(img, fmt("%s/sub/x|", t));
  /* Nine levels are followed, ten are not. */
  sh(p = fmt("mkdir -p '%s/l1/l2/l3/l4/l5/l6/l7/l8/l9'", t)), free(p);
  CHECK(!lazy_stale(img));
  free(changed(img));
  sh(p = fmt("mkdir -p '%s/m1/m2/m3/m4/m5/m6/m7/m8/m9/m10'", t)), free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* A directory of the listing moved to a new name there: its watch is
   * the old listing's. */
  img = changed_image(t);
  must(rename(p = fmt("%s/sub", t), want = fmt("%s/moved", t)), "rename"), free(p), free(want);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* More names in directories made at once than WIRE_PATCH_COUNT_MAX. */
  img = changed_image(t);
  must(mkdir(p = fmt("%s/full", t), 0755), "mkdir"), free(p);
  for (int i = 0; i < WIRE_PATCH_COUNT_MAX; i++)
    put(p = fmt("%s/full/many-%03d", t, i), "", 0), free(p);
  CHECK(!lazy_stale(img));
  free(changed(img));
  put(p = fmt("%s/full/many-%03d", t, WIRE_PATCH_COUNT_MAX), "", 0), free(p);
  must(rmdir(p = fmt("%s/sub", t)), "rmdir"), free(p);
  must(mkdir(p = fmt("%s/sub", t), 0700), "mkdir"), free(p);
  must(rename(p = fmt("%s/full", t), want = fmt("%s/sub/full", t)), "rename"), free(p), free(want);
  CHECK(lazy_stale(img));
  lazy_free(img);
}

static void test_changed(const char *dir)
{
  char *t = fmt("%s/chg", dir), *p, *q, *want;
  struct lazy_image *img = changed_image(t);
  /* Rewritten in place, twice before the ask: listed once. */
  put(p = fmt("%s/a", t), "one, longer now\n", 1), free(p);
  put(p = fmt("%s/a", t), "one, longer still\n", 1), free(p);
  CHECK(!lazy_stale(img));
  check_changed(img, want = fmt("%s/a|", t)), free(want);
  check_changed(img, ""); /* taken */
  CHECK(!lazy_stale(img));
  check_changed(img, "");
  /* The write-back's way: a temporary name, renamed over the file. A
   * temporary name left behind (a killed vmexec) is no change either. */
  put(p = fmt("%s/" WIRE_WB_TEMP_PREFIX "1.1", t), "two, by the guest\n", 1);
  if (rename(p, q = fmt("%s/b", t)))
    die("rename");
  free(p), free(q);
  put(p = fmt("%s/" WIRE_WB_TEMP_PREFIX "1.2", t), "left", 1), free(p);
  put(p = fmt("%s/a", t), "one again\n", 1), free(p);
  CHECK(!lazy_stale(img));
  check_changed(img, want = fmt("%s/b|%s/a|", t, t)), free(want);
  /* A file of two names: the guest would see the other one unchanged. */
  put(p = fmt("%s/h2", t), "changed\n", 1), free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* Too big to patch. */
  img = changed_image(t);
  put(p = fmt("%s/a", t), "0123456789abcdef", WIRE_PATCH_FILE_MAX / 16 + 1), free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* In a listing the guest read: a file made (and written after the ask),
   * a file and a directory removed, a fifo made (left out of listings):
   * listed, or not. */
  img = changed_image(t);
  put(p = fmt("%s/c", t), "three\n", 1), free(p);
  if (unlink(p = fmt("%s/b", t)))
    die("unlink");
  free(p);
  if (mkfifo(p = fmt("%s/pipe", t), 0644))
    die("mkfifo");
  free(p);
  if (rmdir(p = fmt("%s/sub", t))) /* read, so watched: its own removal event is no change */
    die("rmdir");
  free(p);
  CHECK(!lazy_stale(img));
  check_changed(img, want = fmt("%s/c|%s/b|%s/sub|", t, t, t)), free(want);
  put(p = fmt("%s/c", t), "three, longer\n", 1), free(p);
  CHECK(!lazy_stale(img));
  check_changed(img, want = fmt("%s/c|", t)), free(want);
  lazy_free(img);
  test_dir_made(t);
  /* A symlink made there: a new image. */
  img = changed_image(t);
  if (symlink("a", p = fmt("%s/ln", t)))
    die("symlink");
  free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  /* More names made at once than WIRE_PATCH_COUNT_MAX. */
  img = changed_image(t);
  for (int i = 0; i <= WIRE_PATCH_COUNT_MAX; i++)
    put(p = fmt("%s/many-%03d", t, i), "", 0), free(p);
  CHECK(lazy_stale(img));
  lazy_free(img);
  free(t);
}

/* Descriptors of this process open on a deleted file. */
static int deleted_fds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));) {
    char link[300], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(link, target, sizeof target - 1);
    target[len > 0 ? len : 0] = '\0';
    n += strstr(target, " (deleted)") != NULL;
  }
  if (d)
    closedir(d);
  return n;
}

/* A file whose data was read, then deleted on the host: its cached
 * descriptor is closed (its space freed) by hostfiles_close_deleted; a
 * file still named keeps its. */
static void test_deleted(const char *dir)
{
  char *gone = fmt("%s/gone", dir), *kept = fmt("%s/kept", dir);
  put(gone, "bytes", 1000);
  put(kept, "bytes", 1000);
  struct hostfiles *h = hostfiles_new(8, NULL, NULL);
  struct stat st;
  char buf[16];
  int64_t ids[2];
  const char *paths[2] = { gone, kept };
  for (int i = 0; i < 2; i++) {
    if (stat(paths[i], &st) == -1)
      die("stat");
    ids[i] = hostfiles_add(h, paths[i], strlen(paths[i]), st.st_dev, st.st_ino);
    CHECK(ids[i] >= 0 && hostfiles_read(h, (uint32_t)ids[i], buf, sizeof buf, 0) == 0 && !memcmp(buf, "bytes", 5));
  }
  if (unlink(gone))
    die("unlink");
  CHECK(deleted_fds() == 1);
  hostfiles_close_deleted(h);
  CHECK(deleted_fds() == 0);
  CHECK(hostfiles_read(h, (uint32_t)ids[1], buf, sizeof buf, 5) == 0 && !memcmp(buf, "bytes", 5));
  CHECK(hostfiles_read(h, (uint32_t)ids[0], buf, sizeof buf, 0) == 0 && buf[0] == 0); /* gone: zeroes */
  hostfiles_free(h);
  free(gone);
  free(kept);
}

int main(void)
{
  char tmpl[] = "/tmp/test-share-lazy.XXXXXX";
  char *dir = mkdtemp(tmpl);
  if (!dir)
    die("mkdtemp");
  char *tree = fmt("%s/tree", dir);
  make_tree(tree);
  for (int inline_data = 0; inline_data < 2; inline_data++) {
    test_fsck(dir, 12, inline_data);
    test_fsck(dir, 9, inline_data);
    test_fsck(dir, 16, inline_data); /* ppc64el's 64 KiB pages */
  }
  test_lazy(dir);
  test_inline(dir);
  test_changed(dir);
  test_deleted(dir);
  if (failures == 0) {
    char *cmd = fmt("rm -rf '%s'", dir);
    sh(cmd), free(cmd);
  } else {
    fprintf(stderr, "left %s for a look\n", dir);
  }
  free(tree);
  return failures != 0;
}
