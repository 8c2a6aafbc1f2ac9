/* sharetest: a target program for the share tests. argv[1] picks the job:
 *
 *   cat PATH              print the file at PATH (e.g. a data file of the source tree)
 *   mmap PATH             map PATH shared and private; change both; print what the
 *                         file holds afterwards through read()
 *   locks PATH            take an flock and an fcntl lock on PATH, print "locked"
 *   mutate DIR            in DIR: rename a -> b, delete c, mkdir d, symlink e -> b,
 *                         write d/f, chmod g 0700
 *   write PATH TEXT       write TEXT into PATH (creating it)
 *   stat PATH             print "missing" or the file type and size
 *   bench DIR [TAG]       (as root) time reading DIR/big.bin and walking and reading
 *                         DIR/small/ through the share; with TAG, also through
 *                         virtio-9p (mount_tag TAG, msize 512 KiB, the host's DIR);
 *                         prints "KIND-WHAT seconds MB/s files" (WHAT: read,
 *                         walk, rewalk: the walk again, all cached)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int die(const char *what)
{
  printf("error: %s: %s\n", what, strerror(errno));
  return 1;
}

static int cat(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return die(path);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, stdout);
  fclose(f);
  return 0;
}

static int map(const char *path)
{
  int fd = open(path, O_RDWR);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 2)
    return die(path);
  char *priv = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  char *shared = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (priv == MAP_FAILED || shared == MAP_FAILED)
    return die("mmap");
  priv[0] = 'P';   /* stays in this process */
  shared[1] = 'S'; /* reaches the file */
  msync(shared, (size_t)st.st_size, MS_SYNC);
  char buf[64] = { 0 };
  if (pread(fd, buf, sizeof buf - 1, 0) < 0)
    return die("pread");
  printf("private %c file %s", priv[0], buf);
  return 0;
}

static int locks(const char *path)
{
  int fd = open(path, O_RDWR);
  if (fd < 0)
    return die(path);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0)
    return die("flock");
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
  if (fcntl(fd, F_SETLK, &fl) < 0)
    return die("fcntl lock");
  printf("locked\n");
  return 0;
}

static int put(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  if (!f)
    return die(path);
  fputs(text, f);
  return fclose(f) == 0 ? 0 : die(path);
}

static int mutate(const char *dir)
{
  if (chdir(dir) < 0)
    return die(dir);
  if (rename("a", "b") < 0)
    return die("rename a b");
  if (unlink("c") < 0)
    return die("unlink c");
  if (mkdir("d", 0750) < 0)
    return die("mkdir d");
  if (symlink("b", "e") < 0)
    return die("symlink e");
  if (put("d/f", "new file\n"))
    return 1;
  if (chmod("g", 0700) < 0)
    return die("chmod g");
  printf("mutated\n");
  return 0;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void drop_caches(void)
{
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd >= 0) {
    if (write(fd, "3", 1) < 0)
      perror("drop_caches");
    close(fd);
  }
}

static long long read_file(const char *path)
{
  static char buf[1 << 20];
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  long long total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    total += n;
  close(fd);
  return total;
}

static long walk(const char *dir, long long *bytes)
{
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  long files = 0;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      long sub = walk(path, bytes);
      files += sub > 0 ? sub : 0;
    } else if (S_ISREG(st.st_mode)) {
      *bytes += read_file(path);
      files++;
    }
  }
  closedir(d);
  return files;
}

/* One result line, sent at once: bench/share.py samples qemu's CPU time as
 * each line arrives. */
static void report(const char *kind, const char *what, double dt, long long bytes, long files)
{
  printf("%s-%s %.3f %.1f %ld\n", kind, what, dt, bytes / dt / 1e6, files);
  fflush(stdout);
}

static void bench_dir(const char *kind, const char *dir)
{
  char path[4096];
  drop_caches();
  snprintf(path, sizeof path, "%s/big.bin", dir);
  double t = now();
  long long n = read_file(path);
  double dt = now() - t;
  report(kind, "read", dt, n, 1);
  drop_caches();
  snprintf(path, sizeof path, "%s/small", dir);
  long long bytes = 0;
  t = now();
  long files = walk(path, &bytes);
  dt = now() - t;
  report(kind, "walk", dt, bytes, files);
  /* Again with every block cached: what the guest's system calls cost
   * alone, the floor of the walk above. */
  bytes = 0;
  t = now();
  files = walk(path, &bytes);
  dt = now() - t;
  report(kind, "rewalk", dt, bytes, files);
}

static int bench(const char *dir, const char *tag)
{
  bench_dir("share", dir);
  if (tag) {
    mkdir("/run/bench9p", 0755);
    if (mount(tag, "/run/bench9p", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,msize=524288,cache=loose") < 0)
      return die("mount 9p");
    bench_dir("9p", "/run/bench9p");
  }
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc == 3 && !strcmp(argv[1], "cat"))
    return cat(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "mmap"))
    return map(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "locks"))
    return locks(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "mutate"))
    return mutate(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "write"))
    return put(argv[2], argv[3]);
  if (argc == 3 && !strcmp(argv[1], "stat")) {
    struct stat st;
    if (lstat(argv[2], &st) < 0) {
      printf("missing\n");
      return 0;
    }
    printf("%s %lld\n", S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : "file",
           (long long)st.st_size);
    return 0;
  }
  if ((argc == 3 || argc == 4) && !strcmp(argv[1], "bench"))
    return bench(argv[2], argc == 4 ? argv[3] : NULL);
  return 2;
}
