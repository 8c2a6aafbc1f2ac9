/* Unit test of the client's write-back (client/writeback.c): crafted WIRE_WB
 * frames, as a hostile or an interrupted guest would send them, applied over
 * real temporary trees. Nothing may change outside the writable roots, modes
 * never gain setuid/setgid/sticky bits and follow the umask, a replaced
 * directory is swapped in whole, and no temporary file is left behind. Runs
 * under ASan+UBSan in CI. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire-msg.h"
#include "writeback.h"

#include "unit-check.h"

static char top[64];      /* the test's directory */
static char B[128];       /* a writable root (a build tree) */
static char out[128];     /* outside every root */
static struct share_roots roots;

/* TOP/REL into a static buffer (two at a time). */
static const char *at(const char *base, const char *rel)
{
  static char buf[4][2 * PATH_MAX + 2];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", base, rel);
  return buf[i];
}

static void put_file(const char *path, const char *data)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  fputs(data, f);
  fclose(f);
}

/* The file's content, "" when it cannot be read. */
static const char *content(const char *path)
{
  static char buf[256];
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f) {
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
  }
  return buf;
}

static bool exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

static unsigned mode_of(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 ? st.st_mode & 07777 : 0xffff;
}

/* Names starting with .vmexec-wb in DIR. */
static int leftovers(const char *dir)
{
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += strncmp(e->d_name, ".vmexec-wb", 10) == 0;
  if (d)
    closedir(d);
  return n;
}

static void change(struct writeback *wb, uint32_t kind, uint32_t mode, const char *path, const char *target,
                   uint64_t size)
{
  static struct wire_wb m;
  m = (struct wire_wb){ .kind = kind, .mode = mode, .size = size, .mtime_sec = 1700000000 };
  snprintf(m.path, sizeof m.path, "%s", path);
  if (target)
    snprintf(m.target, sizeof m.target, "%s", target);
  static uint8_t buf[2 * PATH_MAX + 64];
  size_t len;
  if (strlen(path) >= sizeof m.path || !wire_encode_wb(&m, buf, sizeof buf, &len)) {
    fprintf(stderr, "test-writeback: a change too long to encode: %s\n", path);
    exit(1);
  }
  writeback_frame(wb, WIRE_WB, buf, len);
}

static void file(struct writeback *wb, uint32_t mode, const char *path, const char *data)
{
  change(wb, WIRE_WB_FILE, mode, path, NULL, strlen(data));
  if (*data)
    writeback_frame(wb, WIRE_WB_DATA, (const uint8_t *)data, strlen(data));
}

static void add_root(const char *path, bool writable)
{
  snprintf(roots.root[roots.n].path, PATH_MAX, "%s", path);
  roots.root[roots.n++].writable = writable;
}

/* A fresh tree: B (writable) with B/tests (writable, nested, as the working
 * directory in a build tree) and B/ro and B/sub/ro2 (read-only, nested), and
 * OUT, outside every root. */
static void setup(void)
{
  if (top[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", top);
    if (system(cmd) != 0)
      exit(1);
  }
  snprintf(top, sizeof top, "/tmp/test-writeback.XXXXXX");
  if (!mkdtemp(top)) {
    perror("mkdtemp");
    exit(1);
  }
  snprintf(B, sizeof B, "%s/B", top);
  snprintf(out, sizeof out, "%s/out", top);
  mkdir(B, 0755);
  mkdir(out, 0700);
  mkdir(at(B, "tests"), 0755);
  mkdir(at(B, "ro"), 0755);
  mkdir(at(B, "sub"), 0755);
  mkdir(at(B, "sub/ro2"), 0755);
  put_file(at(B, "ro/keep"), "keep");
  put_file(at(B, "sub/ro2/keep"), "keep");
  roots.n = 0;
  add_root(B, true);
  add_root(at(B, "tests"), true);
  add_root(at(B, "ro"), false);
  add_root(at(B, "sub/ro2"), false);
}

/* Defect 1: paths that are not normalised, nested roots, symlinks. */
static void escape(void)
{
  setup();
  struct writeback wb;
  writeback_init(&wb, &roots);
  /* Delete the nested root through B, put a symlink in its place, then
   * write through the nested root's path. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "./tests"), NULL, 0);
  change(&wb, WIRE_WB_SYMLINK, 0777, at(B, "./tests"), out, 0);
  file(&wb, 0644, at(B, "tests/authorized_keys"), "key");
  /* The same into a read-only root nested under a writable one. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "./ro"), NULL, 0);
  change(&wb, WIRE_WB_DELETE, 0, at(B, "ro/keep"), NULL, 0);
  file(&wb, 0644, at(B, "./ro/x"), "x");
  file(&wb, 0644, at(B, "ro//y"), "y");
  /* Deleting a directory that holds a read-only root. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "sub"), NULL, 0);
  /* A root itself, "..", empty components, a trailing slash. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "tests"), NULL, 0);
  file(&wb, 0644, at(B, "tests/../../out/a"), "a");
  file(&wb, 0644, at(B, "x/../b"), "b");
  file(&wb, 0644, at(B, "c/"), "c");
  file(&wb, 0644, at(B, "/d"), "d");
  /* A symlink in the middle of a path (the agent sends physical paths). */
  symlink(out, at(B, "link"));
  file(&wb, 0644, at(B, "link/e"), "e");
  writeback_finish(&wb);

  struct stat st;
  CHECK(lstat(at(B, "tests"), &st) == 0 && S_ISDIR(st.st_mode));
  CHECK(!exists(at(out, "authorized_keys")));
  CHECK(strcmp(content(at(B, "ro/keep")), "keep") == 0);
  CHECK(!exists(at(B, "ro/x")) && !exists(at(B, "ro/y")));
  CHECK(strcmp(content(at(B, "sub/ro2/keep")), "keep") == 0);
  CHECK(!exists(at(out, "a")) && !exists(at(B, "b")) && !exists(at(B, "c")) && !exists(at(B, "d")));
  CHECK(!exists(at(out, "e")));
  CHECK(wb.applied == 1); /* authorized_keys, in the real B/tests */
  CHECK(leftovers(B) == 0);
}

/* The root itself is swapped for a symlink after the call started: the
 * write-back still goes to the directory that was shared, or nowhere. */
static void root_swapped(void)
{
  setup();
  struct writeback wb;
  writeback_init(&wb, &roots);
  rename(at(B, "tests"), at(top, "old-tests"));
  symlink(out, at(B, "tests"));
  file(&wb, 0644, at(B, "tests/f"), "f");
  writeback_finish(&wb);
  CHECK(!exists(at(out, "f")));
}

/* Defect 2: no setuid, setgid or sticky bit from the guest; the umask applies. */
static void modes(void)
{
  setup();
  mode_t old = umask(022);
  struct writeback wb;
  writeback_init(&wb, &roots);
  file(&wb, 04777, at(B, "suid"), "x");
  file(&wb, 0666, at(B, "plain"), "x");
  change(&wb, WIRE_WB_DIR, 03777, at(B, "dir"), NULL, 0);
  mkdir(at(B, "old"), 0700);
  change(&wb, WIRE_WB_DIR, 01777, at(B, "old"), NULL, 0);
  writeback_finish(&wb);
  umask(old);
  CHECK(mode_of(at(B, "suid")) == 0755);
  CHECK(mode_of(at(B, "plain")) == 0644);
  CHECK(mode_of(at(B, "dir")) == 0755);
  CHECK(mode_of(at(B, "old")) == 0755);
}

/* Defect 4: a DIR frame never chmods a non-directory (a hard link to a file
 * outside the roots). */
static void dir_on_file(void)
{
  setup();
  put_file(at(out, "secret"), "s");
  chmod(at(out, "secret"), 0600);
  link(at(out, "secret"), at(B, "hl"));
  struct writeback wb;
  writeback_init(&wb, &roots);
  change(&wb, WIRE_WB_DIR, 0777, at(B, "hl"), NULL, 0);
  writeback_finish(&wb);
  CHECK(mode_of(at(out, "secret")) == 0600);
  CHECK(wb.refused == 1);
}

static void old_tree(const char *dir)
{
  mkdir(dir, 0755);
  mkdir(at(dir, "sub"), 0755);
  put_file(at(dir, "old1"), "old1");
  put_file(at(dir, "sub/old2"), "old2");
}

/* Defect 5: a replaced directory is built aside and swapped in whole. */
static void replace_dir(void)
{
  setup();
  old_tree(at(B, "o1"));
  old_tree(at(B, "o2"));
  old_tree(at(B, "gone"));
  mkdir(at(B, "tofile"), 0755);
  put_file(at(B, "tofile/x"), "x");
  struct writeback wb;
  writeback_init(&wb, &roots);
  change(&wb, WIRE_WB_DELETE, 0, at(B, "o1"), NULL, 0);
  change(&wb, WIRE_WB_DIR, 0755, at(B, "o1"), NULL, 0);
  file(&wb, 0644, at(B, "o1/new1"), "new1");
  change(&wb, WIRE_WB_DIR, 0755, at(B, "o1/d"), NULL, 0);
  file(&wb, 0644, at(B, "o1/d/new2"), "new2");
  /* Still the old tree: the new one is not complete yet. */
  CHECK(strcmp(content(at(B, "o1/old1")), "old1") == 0);
  CHECK(!exists(at(B, "o1/new1")));
  /* A change outside it completes it. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "gone"), NULL, 0);
  CHECK(!exists(at(B, "o1/old1")) && !exists(at(B, "o1/sub")));
  CHECK(strcmp(content(at(B, "o1/new1")), "new1") == 0);
  CHECK(strcmp(content(at(B, "o1/d/new2")), "new2") == 0);
  /* A directory replaced by a file. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "tofile"), NULL, 0);
  file(&wb, 0644, at(B, "tofile"), "file");
  /* A file never replaces a directory the guest did not delete. */
  old_tree(at(B, "keep"));
  change(&wb, WIRE_WB_DELETE, 0, at(B, "gone2"), NULL, 0);
  file(&wb, 0644, at(B, "keep"), "file");
  CHECK(wb.refused == 1 && strcmp(content(at(B, "keep/old1")), "old1") == 0);
  /* A file replaced by a directory. */
  put_file(at(B, "todir"), "file");
  change(&wb, WIRE_WB_DELETE, 0, at(B, "todir"), NULL, 0);
  change(&wb, WIRE_WB_DIR, 0755, at(B, "todir"), NULL, 0);
  file(&wb, 0644, at(B, "todir/x"), "x");
  /* The end of the write-back completes the last one. */
  change(&wb, WIRE_WB_DELETE, 0, at(B, "o2"), NULL, 0);
  change(&wb, WIRE_WB_DIR, 0755, at(B, "o2"), NULL, 0);
  file(&wb, 0644, at(B, "o2/new"), "new");
  CHECK(strcmp(content(at(B, "o2/old1")), "old1") == 0);
  writeback_finish(&wb);
  CHECK(strcmp(content(at(B, "o2/new")), "new") == 0);
  CHECK(!exists(at(B, "o2/old1")));
  CHECK(!exists(at(B, "gone")));
  CHECK(strcmp(content(at(B, "tofile")), "file") == 0);
  CHECK(strcmp(content(at(B, "todir/x")), "x") == 0);
  CHECK(leftovers(B) == 0);
  CHECK(wb.refused == 1);
}

/* Defect 5: a write-back cut short (the connection lost) leaves the old tree
 * whole, and no temporary file. */
static void interrupted(void)
{
  setup();
  old_tree(at(B, "o"));
  old_tree(at(B, "gone"));
  struct writeback wb;
  writeback_init(&wb, &roots);
  change(&wb, WIRE_WB_DELETE, 0, at(B, "gone"), NULL, 0);
  change(&wb, WIRE_WB_DELETE, 0, at(B, "o"), NULL, 0);
  change(&wb, WIRE_WB_DIR, 0755, at(B, "o"), NULL, 0);
  file(&wb, 0644, at(B, "o/new1"), "new1");
  change(&wb, WIRE_WB_FILE, 0644, at(B, "o/new2"), NULL, 100);
  writeback_frame(&wb, WIRE_WB_DATA, (const uint8_t *)"part", 4);
  writeback_abort(&wb);
  CHECK(strcmp(content(at(B, "o/old1")), "old1") == 0);
  CHECK(strcmp(content(at(B, "o/sub/old2")), "old2") == 0);
  CHECK(!exists(at(B, "o/new1")) && !exists(at(B, "o/new2")));
  CHECK(strcmp(content(at(B, "gone/old1")), "old1") == 0);
  CHECK(leftovers(B) == 0);
}

/* Defect 10: vmexec failing (fail() -> exit) in the middle of a write-back
 * leaves no temporary file; stale ones of a dead vmexec are swept. */
static void exit_mid_way(void)
{
  setup();
  old_tree(at(B, "o"));
  pid_t pid = fork();
  if (pid == 0) {
    static struct writeback wb;
    writeback_init(&wb, &roots);
    change(&wb, WIRE_WB_DELETE, 0, at(B, "o"), NULL, 0);
    change(&wb, WIRE_WB_DIR, 0755, at(B, "o"), NULL, 0);
    change(&wb, WIRE_WB_FILE, 0644, at(B, "o/new"), NULL, 100);
    exit(125);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(leftovers(B) == 0);
  CHECK(strcmp(content(at(B, "o/old1")), "old1") == 0);

  /* Leftovers of a dead vmexec (the pid of the child above), and of a live one. */
  char name[64];
  snprintf(name, sizeof name, ".vmexec-wb.%d.1", (int)pid);
  put_file(at(B, name), "stale");
  snprintf(name, sizeof name, ".vmexec-wb.%d.2", (int)pid);
  old_tree(at(B, name));
  snprintf(name, sizeof name, ".vmexec-wb.%d.3", (int)getpid());
  put_file(at(B, name), "live");
  struct writeback wb;
  writeback_init(&wb, &roots);
  file(&wb, 0644, at(B, "f"), "f");
  writeback_finish(&wb);
  CHECK(leftovers(B) == 1 && exists(at(B, name)));
  unlink(at(B, name));
}

/* Defect 10: a delete deeper than the fds a process may open. */
static void deep_delete(void)
{
  setup();
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/deep", B);
  for (int i = 0; i < 100; i++) {
    mkdir(path, 0755);
    put_file(at(path, "f"), "f");
    strcat(path, "/d");
  }
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit lim = { 40, 40 };
    setrlimit(RLIMIT_NOFILE, &lim);
    struct writeback wb;
    writeback_init(&wb, &roots);
    change(&wb, WIRE_WB_DELETE, 0, at(B, "deep"), NULL, 0);
    writeback_finish(&wb);
    _exit(exists(at(B, "deep")) && wb.refused == 0 ? 1 : 0);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(!exists(at(B, "deep")));
}

/* Hostile sizes: a file announced huge whose data stops after a few bytes,
 * and one sent more bytes than announced. Neither lands (the old contents
 * stay), nothing is allocated for the announced size, nothing is left, and
 * the next change applies. */
static void hostile_sizes(void)
{
  setup();
  put_file(at(B, "huge"), "old huge");
  put_file(at(B, "over"), "old over");
  struct writeback wb;
  writeback_init(&wb, &roots);
  change(&wb, WIRE_WB_FILE, 0644, at(B, "huge"), NULL, UINT64_MAX / 2);
  writeback_frame(&wb, WIRE_WB_DATA, (const uint8_t *)"abc", 3);
  change(&wb, WIRE_WB_FILE, 0644, at(B, "over"), NULL, 5);
  writeback_frame(&wb, WIRE_WB_DATA, (const uint8_t *)"0123456789", 10);
  file(&wb, 0644, at(B, "after"), "after");
  writeback_finish(&wb);
  CHECK(strcmp(content(at(B, "huge")), "old huge") == 0);
  CHECK(strcmp(content(at(B, "over")), "old over") == 0);
  CHECK(strcmp(content(at(B, "after")), "after") == 0);
  CHECK(leftovers(B) == 0);
}

int main(void)
{
  escape();
  hostile_sizes();
  root_swapped();
  modes();
  dir_on_file();
  replace_dir();
  interrupted();
  exit_mid_way();
  deep_delete();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", top);
  if (system(cmd) != 0)
    failures++;
  if (failures)
    fprintf(stderr, "%d checks failed\n", failures);
  return failures != 0;
}
