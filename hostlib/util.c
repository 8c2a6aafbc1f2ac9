#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "fsutil.h"

static noreturn void out_of_memory(void)
{
  fail(EXIT_TOOL_FAILED, "out of memory");
}

void *xrealloc(void *p, size_t n)
{
  p = realloc(p, n ? n : 1);
  if (!p)
    out_of_memory();
  return p;
}

char *xstrdup(const char *s)
{
  char *d = strdup(s);
  if (!d)
    out_of_memory();
  return d;
}

char *xvasprintf(const char *fmt, va_list ap)
{
  char *s;
  if (vasprintf(&s, fmt, ap) < 0)
    out_of_memory();
  return s;
}

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = xvasprintf(fmt, ap);
  va_end(ap);
  return s;
}

static void strv_take(struct strv *s, char *str)
{
  if (s->n + 2 > s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->v = xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = str;
  s->v[s->n] = NULL;
}

void strv_push(struct strv *s, const char *str)
{
  strv_take(s, xstrdup(str));
}

void strv_pushv(struct strv *s, const char *fmt, va_list ap)
{
  strv_take(s, xvasprintf(fmt, ap));
}

void strv_pushf(struct strv *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  strv_pushv(s, fmt, ap);
  va_end(ap);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort_unique(struct strv *s)
{
  if (s->n == 0)
    return;
  qsort(s->v, s->n, sizeof *s->v, cmp_str);
  size_t j = 1;
  for (size_t i = 1; i < s->n; i++) {
    if (strcmp(s->v[i], s->v[j - 1]) == 0)
      free(s->v[i]);
    else
      s->v[j++] = s->v[i];
  }
  s->n = j;
  s->v[j] = NULL;
}

void strv_free(struct strv *s)
{
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
}

char *strv_join(const struct strv *s, const char *sep)
{
  size_t len = 1;
  for (size_t i = 0; i < s->n; i++)
    len += strlen(s->v[i]) + strlen(sep);
  char *joined = xrealloc(NULL, len);
  char *p = joined;
  *p = '\0';
  for (size_t i = 0; i < s->n; i++)
    p = stpcpy(stpcpy(p, i ? sep : ""), s->v[i]);
  return joined;
}

int read_file(const char *path, char **data, size_t *len)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  size_t cap = 4096, n = 0;
  char *buf = xrealloc(NULL, cap);
  for (;;) {
    if (n + 1 >= cap)
      buf = xrealloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      int e = errno;
      free(buf);
      errno = e;
      return -1;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *data = buf;
  if (len)
    *len = n;
  return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
  CLEANUP_FREE char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1)
    return -1;
  if (write_all(fd, data, len) == -1 || close(fd) == -1 || rename(tmp, path) == -1) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

/* Remove the contents of directory DFD, then the caller removes the directory. */
static int remove_contents(int dfd)
{
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0)
      continue;
    if (errno != EISDIR && errno != EPERM) {
      rc = -1;
      continue;
    }
    /* A directory: make sure we may delete its entries first. */
    fchmodat(dirfd(d), e->d_name, 0700, 0);
    int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub == -1 || remove_contents(sub) == -1 || unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == -1)
      rc = -1;
  }
  closedir(d);
  return rc;
}

int remove_tree(const char *path)
{
  if (unlink(path) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return -1;
  chmod(path, 0700);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -1)
    return -1;
  if (remove_contents(fd) == -1)
    return -1;
  return rmdir(path);
}

const char *human_size(uint64_t bytes, char *buf, size_t cap)
{
  if (bytes >= 1024 * 1024 * 1024)
    snprintf(buf, cap, "%.1f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
  else if (bytes >= 1024 * 1024)
    snprintf(buf, cap, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
  else if (bytes >= 1024)
    snprintf(buf, cap, "%.1f KiB", (double)bytes / 1024.0);
  else
    snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
  return buf;
}

double now_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, const char *name, bool quiet)
{
  p->name = name;
  p->quiet = quiet;
  p->steps = !quiet && isatty(2);
  p->start = now_seconds();
}

void step(const struct progress *p, const char *fmt, ...)
{
  if (!p->steps)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "vmexec: [%s] %s\n", p->name, line);
}

void announce_download(size_t n, void *arg)
{
  step(arg, "downloading %zu package%s", n, n == 1 ? "" : "s");
}

void progress_done(const struct progress *p, const char *dir, bool built)
{
  if (!p->quiet)
    fprintf(stderr, "vmexec: [%s] done in %.1f s%s: %s\n", p->name, now_seconds() - p->start,
            built ? "" : " (cached)", dir);
}
