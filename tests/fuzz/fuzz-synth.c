/* Fuzz target: the EROFS synthesis of nbd-share (synth_build, synth_read)
 * over small random trees. Each image is checked and extracted by
 * erofs-utils' fsck.erofs (spawned), which must accept it, and the
 * extraction must hold the tree: every entry with its type, permissions and
 * contents, nothing more (test-share-synth.c does the same for its crafted
 * tree).
 *
 * The input describes the tree as records (see add_entry): directories (at
 * most MAX_DEPTH deep), files of up to 64 KiB, sparse files, empty files,
 * symlinks, hard links to an earlier file, names of any bytes but '/' and NUL
 * up to 255 bytes (and a few longer, which the synthesis leaves out), and
 * mode changes. At most MAX_ENTRIES entries, so that an input costs a few
 * milliseconds plus one fsck.erofs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "fuzz.h"
#include "synth.h"

enum { MAX_ENTRIES = 48, MAX_DEPTH = 5, MAX_FILES = 16 };

static char sandbox[PATH_MAX];
static char canary_path[PATH_MAX + 8]; /* a directory beside the tree, for symlinks out of it to reach */

struct tree {
  int dir[MAX_DEPTH + 1]; /* the open directories down to the current one */
  int depth;
  char files[MAX_FILES][PATH_MAX]; /* regular files made so far, for hard links */
  int nfiles;
  char cur[PATH_MAX];              /* the current directory's path */
  char nested[PATH_MAX];           /* the first directory made: a root nested in the tree */
  ino_t sparse[MAX_ENTRIES];       /* sparse files: fsck.erofs 1.5 extracts them without their holes */
  int nsparse;
  char last[NAME_MAX + 64];        /* the last entry made in it */
};

/* A name from the input: a length, then bytes ('/' and NUL become '_'; "."
 * and ".." are taken as "_"). 0xff: a name of 256 bytes, too long. */
static void name_of(struct fuzz_input *in, char *out)
{
  uint8_t n = fuzz_byte(in);
  size_t len;
  if (n == 0xff) {
    memset(out, 'L', 256);
    out[256] = '\0';
    return;
  }
  if (n >= 0xf0) {
    len = 255 - (n - 0xf0);
    memset(out, 'l', len);
  } else {
    len = n % 24 + 1;
    const uint8_t *p = fuzz_bytes(in, len, &len);
    memcpy(out, p, len);
  }
  out[len] = '\0';
  for (size_t i = 0; i < len; i++)
    if (out[i] == '/' || out[i] == '\0')
      out[i] = '_';
  if (len == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    strcpy(out, "_");
}

static void write_data(int fd, struct fuzz_input *in, size_t size)
{
  uint8_t seed = fuzz_byte(in);
  uint8_t buf[4096];
  for (size_t off = 0; off < size; off += sizeof buf) {
    size_t n = size - off < sizeof buf ? size - off : sizeof buf;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)(seed + (off + i) * 7);
    REQUIRE(write(fd, buf, n) == (ssize_t)n);
  }
}

/* A regular file: data, or (SPARSE) a hole then a little data, up to 8 MiB. */
static void add_file(struct tree *t, struct fuzz_input *in, const char *name, bool sparse)
{
  int fd = openat(t->dir[t->depth], name, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0)
    return;
  if (sparse) {
    off_t hole = (off_t)fuzz_byte(in) << 15;
    REQUIRE(lseek(fd, hole, SEEK_SET) == hole);
    write_data(fd, in, fuzz_byte(in));
    REQUIRE(ftruncate(fd, hole + (off_t)fuzz_u16(in) * 16) == 0);
    struct stat st;
    REQUIRE(fstat(fd, &st) == 0);
    t->sparse[t->nsparse++] = st.st_ino;
  } else {
    write_data(fd, in, fuzz_u16(in));
  }
  close(fd);
  if (t->nfiles < MAX_FILES)
    snprintf(t->files[t->nfiles++], PATH_MAX, "%s/%s", t->cur, name);
}

/* One record; false at the end of the input. */
static bool add_entry(struct tree *t, struct fuzz_input *in)
{
  if (in->n == 0)
    return false;
  uint8_t op = fuzz_byte(in);
  char name[300], target[256];
  size_t len;
  const uint8_t *p;
  int at = t->dir[t->depth];
  switch (op % 8) {
  case 0: /* a directory, entered */
    name_of(in, name);
    if (t->depth == MAX_DEPTH || mkdirat(at, name, 0755) == -1)
      break;
    t->dir[++t->depth] = openat(at, name, O_RDONLY | O_DIRECTORY);
    REQUIRE(t->dir[t->depth] >= 0);
    snprintf(t->cur + strlen(t->cur), PATH_MAX - strlen(t->cur), "/%s", name);
    if (!t->nested[0])
      snprintf(t->nested, sizeof t->nested, "%s", t->cur);
    break;
  case 1: /* back to the parent */
    if (t->depth > 0) {
      close(t->dir[t->depth--]);
      *strrchr(t->cur, '/') = '\0';
    }
    return true;
  case 2: case 3:
    name_of(in, name);
    add_file(t, in, name, false);
    break;
  case 4:
    name_of(in, name);
    add_file(t, in, name, true);
    break;
  case 5: /* a symlink to any bytes */
    name_of(in, name);
    p = fuzz_bytes(in, fuzz_byte(in) % 200, &len);
    memcpy(target, p, len);
    target[len] = '\0';
    symlinkat(len && target[0] ? target : "x", at, name);
    break;
  case 6: /* a hard link to an earlier file */
    name_of(in, name);
    if (t->nfiles > 0)
      linkat(AT_FDCWD, t->files[fuzz_byte(in) % t->nfiles], at, name, 0);
    break;
  default: { /* the last entry's mode; the owner keeps access, for a run as a user */
    /* Never a symlink's: fchmodat follows it, and a symlink to "/dev" made the
     * fuzzer chmod the host's /dev (as root), which broke every later run as a user. */
    struct stat st;
    if (fstatat(at, t->last, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode))
      fchmodat(at, t->last, (fuzz_u16(in) & 07777) | 0700, 0);
    return true;
  }
  }
  snprintf(t->last, sizeof t->last, "%s", name);
  return true;
}

static void write_image(struct synth_image *img, const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  static uint8_t buf[1 << 20];
  for (uint64_t off = 0; off < synth_size(img); off += sizeof buf) {
    size_t n = synth_size(img) - off < sizeof buf ? (size_t)(synth_size(img) - off) : sizeof buf;
    REQUIRE(synth_read(img, buf, n, off) == 0);
    REQUIRE(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
  }
  close(fd);
}

/* fsck.erofs --extract=OUT IMAGE, its output in LOG: its exit status. */
static int fsck(const char *image, const char *out, const char *log)
{
  char extract[PATH_MAX + 16];
  snprintf(extract, sizeof extract, "--extract=%s", out);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    /* --preserve-perms: the modes as they are, not less the umask, also for a user */
    execlp("fsck.erofs", "fsck.erofs", "--preserve-perms", extract, image, (char *)NULL);
    _exit(127);
  }
  int st;
  pid_t r;
  while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR) /* libFuzzer's SIGALRM, each second */
    ;
  REQUIRE(r == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A broken property of the image: the tree and the image stay in the
 * sandbox for a look (abort runs no atexit); libFuzzer saves the input. */
static void fuzz_fail_at(const char *what, const char *path, const char *name)
{
  char msg[2 * PATH_MAX + 256];
  snprintf(msg, sizeof msg, "%s: %s/%s (sandbox %s)", what, path, name, sandbox);
  __sanitizer_report_error_summary(msg);
  abort();
}

static bool is_sparse(const struct tree *t, ino_t ino)
{
  for (int i = 0; i < t->nsparse; i++)
    if (t->sparse[i] == ino)
      return true;
  return false;
}

/* The bytes of DIRFD/NAME (a regular file or a symlink's target), at most
 * CAP; -1 if it cannot be read. */
static ssize_t contents(int dirfd, const char *name, const struct stat *st, char *buf, size_t cap)
{
  if (S_ISLNK(st->st_mode))
    return readlinkat(dirfd, name, buf, cap);
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, cap);
  close(fd);
  return n;
}

/* The extraction of the image (DST) holds what the host tree (SRC) holds:
 * every entry with its type, permissions and contents, nothing more; but
 * names over 255 bytes (left out of the image) and sparse files. */
static void compare(const struct tree *t, int src, int dst, const char *path)
{
  DIR *d = fdopendir(src);
  REQUIRE(d);
  int entries = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || strlen(e->d_name) > 255)
      continue;
    entries++;
    struct stat a, b;
    REQUIRE(fstatat(src, e->d_name, &a, AT_SYMLINK_NOFOLLOW) == 0);
    if (fstatat(dst, e->d_name, &b, AT_SYMLINK_NOFOLLOW) == -1)
      fuzz_fail_at("not in the image", path, e->d_name);
    if ((a.st_mode & S_IFMT) != (b.st_mode & S_IFMT) || (a.st_mode & 0777) != (b.st_mode & 0777))
      fuzz_fail_at("another type or mode in the image", path, e->d_name);
    if (S_ISDIR(a.st_mode)) {
      char sub[PATH_MAX];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      int s2 = openat(src, e->d_name, O_RDONLY | O_DIRECTORY), d2 = openat(dst, e->d_name, O_RDONLY | O_DIRECTORY);
      REQUIRE(s2 >= 0 && d2 >= 0);
      compare(t, s2, d2, sub);
      close(d2);
    } else if (!is_sparse(t, a.st_ino)) {
      static char x[1 << 17], y[1 << 17];
      ssize_t n = contents(src, e->d_name, &a, x, sizeof x), m = contents(dst, e->d_name, &b, y, sizeof y);
      if (n != m || n < 0 || memcmp(x, y, (size_t)n) != 0)
        fuzz_fail_at("other contents in the image", path, e->d_name);
    }
  }
  closedir(d);
  d = fdopendir(dup(dst));
  REQUIRE(d);
  while ((e = readdir(d)))
    entries -= strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  if (entries != 0)
    fuzz_fail_at("another number of entries in the image", path, "");
}

static void cleanup(void)
{
  fuzz_remove_tree(AT_FDCWD, sandbox);
}

/* Synthesises the image of the tree, has fsck.erofs check and extract it,
 * and compares the extraction with the tree. */
static void check_image(const struct tree *t)
{
  char root[PATH_MAX + 8], missing[PATH_MAX + 8], image[PATH_MAX + 16], log[PATH_MAX + 16], out[PATH_MAX + 8];
  char err[512];
  snprintf(root, sizeof root, "%s/tree", sandbox);
  snprintf(missing, sizeof missing, "%s/missing", sandbox);
  snprintf(image, sizeof image, "%s/image.erofs", sandbox);
  snprintf(log, sizeof log, "%s/fsck.log", sandbox);
  snprintf(out, sizeof out, "%s/out", sandbox);
  /* The tree, a root nested in it (left out) and one that does not exist. */
  char *roots[] = { root, missing, (char *)t->nested };
  struct synth_options opt = { .blkszbits = 12 }; /* fsck.erofs 1.5 checks 4 KiB blocks only */
  struct synth_image *img = NULL;
  if (synth_build(roots, t->nested[0] ? 3 : 2, &opt, &img, err, sizeof err) == -1)
    fuzz_fail_at("synth_build failed on a small tree", err, "");
  write_image(img, image);
  synth_free(img);
  int status = fsck(image, out, log);
  if (status != 0) {
    snprintf(err, sizeof err, "fsck.erofs failed with status %d", status);
    fuzz_fail_at(err, log, "");
  }
  char extracted[2 * PATH_MAX];
  snprintf(extracted, sizeof extracted, "%s%s", out, root);
  int src = open(root, O_RDONLY | O_DIRECTORY), dst = open(extracted, O_RDONLY | O_DIRECTORY);
  REQUIRE(src >= 0 && dst >= 0);
  compare(t, src, dst, root);
  close(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!sandbox[0]) {
    fuzz_sandbox("synth", sandbox, sizeof sandbox);
    atexit(cleanup);
    snprintf(canary_path, sizeof canary_path, "%s/canary", sandbox);
    REQUIRE(mkdir(canary_path, 0755) == 0 && chmod(canary_path, 0755) == 0);
  }
  static struct tree t;
  memset(&t, 0, sizeof t);
  snprintf(t.cur, sizeof t.cur, "%s/tree", sandbox);
  REQUIRE(mkdir(t.cur, 0755) == 0);
  t.dir[0] = open(t.cur, O_RDONLY | O_DIRECTORY);
  REQUIRE(t.dir[0] >= 0);
  struct fuzz_input in = { data, size };
  for (int i = 0; i < MAX_ENTRIES && add_entry(&t, &in); i++)
    ;
  /* Making the tree changed nothing outside it (a symlink is never followed). */
  struct stat canary;
  REQUIRE(stat(canary_path, &canary) == 0 && (canary.st_mode & 07777) == 0755);
  while (t.depth >= 0)
    close(t.dir[t.depth--]);
  check_image(&t);
  int fd = open(sandbox, O_RDONLY | O_DIRECTORY);
  fuzz_remove_tree(fd, "tree");
  fuzz_remove_tree(fd, "out");
  close(fd);
  return 0;
}
