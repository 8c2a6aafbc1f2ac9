/* Root list: see roots.h. */
#include "roots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

void roots_init(struct roots *r)
{
  r->v = NULL;
  r->n = r->cap = 0;
}

void roots_free(struct roots *r)
{
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i]);
  free(r->v);
  roots_init(r);
}

int roots_add(struct roots *r, const char *path, char *err, size_t errlen)
{
  if (path[0] != '/') {
    snprintf(err, errlen, "root '%s' is not an absolute path", path);
    return -1;
  }
  size_t len = strlen(path);
  char *norm = malloc(len + 1);
  if (!norm) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  size_t o = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/')
      p++;
    const char *e = strchrnul(p, '/');
    size_t clen = (size_t)(e - p);
    if (clen == 0 || (clen == 1 && p[0] == '.')) {
      p = e;
      continue;
    }
    if (clen == 2 && p[0] == '.' && p[1] == '.') {
      snprintf(err, errlen, "root '%s' contains '..'; give the resolved path", path);
      free(norm);
      return -1;
    }
    norm[o++] = '/';
    memcpy(norm + o, p, clen);
    o += clen;
    p = e;
  }
  norm[o] = '\0';
  if (o == 0) {
    snprintf(err, errlen, "root '/' cannot be shared; share the directories under it");
    free(norm);
    return -1;
  }
  char **v = grow(r->v, &r->cap, r->n + 1, sizeof *v, 8);
  if (!v) {
    free(norm);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  r->v = v;
  r->v[r->n++] = norm;
  return 0;
}

int roots_read_file(struct roots *r, const char *file, char *err, size_t errlen)
{
  FILE *f = fopen(file, "re");
  if (!f) {
    int saved = errno;
    snprintf(err, errlen, "%s: %s", file, strerror(errno));
    errno = saved;
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int ret = 0;
  while (ret == 0 && (n = getline(&line, &cap, f)) != -1) {
    if (n > 0 && line[n - 1] == '\n')
      line[--n] = '\0';
    if (n > 0)
      ret = roots_add(r, line, err, errlen);
  }
  free(line);
  fclose(f);
  if (ret == -1)
    errno = EINVAL; /* a bad line, not a missing file */
  return ret;
}

/* Byte order with '/' lowest, so that "/a/b" sorts right after "/a" and
 * before "/a!": a tree's descendants are contiguous. */
static int root_cmp(const void *a, const void *b)
{
  const unsigned char *x = *(const unsigned char *const *)a;
  const unsigned char *y = *(const unsigned char *const *)b;
  for (;; x++, y++) {
    int cx = *x == '/' ? 1 : *x ? *x + 1 : 0;
    int cy = *y == '/' ? 1 : *y ? *y + 1 : 0;
    if (cx != cy || cx == 0)
      return cx - cy;
  }
}

static int is_under(const char *inner, const char *outer)
{
  size_t n = strlen(outer);
  return strncmp(inner, outer, n) == 0 && (inner[n] == '/' || inner[n] == '\0');
}

void roots_finish(struct roots *r, synth_log_fn log, void *log_opaque)
{
  qsort(r->v, r->n, sizeof *r->v, root_cmp);
  size_t kept = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (kept && is_under(r->v[i], r->v[kept - 1])) {
      if (log)
        log(log_opaque, "root %s is inside root %s: already shared", r->v[i], r->v[kept - 1]);
      free(r->v[i]);
      continue;
    }
    r->v[kept++] = r->v[i];
  }
  r->n = kept;
}

size_t roots_depth(const char *p)
{
  size_t d = 0;
  for (; *p; p++)
    d += *p == '/';
  return d;
}

int roots_from_array(struct roots *r, char *const *paths, size_t n, synth_log_fn log, void *log_opaque,
                     char *err, size_t errlen)
{
  roots_init(r);
  for (size_t i = 0; i < n; i++)
    if (roots_add(r, paths[i], err, errlen) == -1) {
      roots_free(r);
      return -1;
    }
  roots_finish(r, log, log_opaque);
  return 0;
}
