/* Small helpers shared by the image builder: growable string vectors, files
 * read and written whole, recursive removal, sizes for people. Failures of
 * memory allocation end the program (fail()), everything else returns -1. */
#ifndef VMEXEC_UTIL_H
#define VMEXEC_UTIL_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A NULL-terminated vector of malloc'd strings, usable as an argv. */
struct strv {
  char **v;
  size_t n, cap;
};

void strv_push(struct strv *s, const char *str);
void strv_pushf(struct strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strv_pushv(struct strv *s, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void strv_sort_unique(struct strv *s);
void strv_free(struct strv *s);
/* The strings joined with SEP between them, malloc'd. */
char *strv_join(const struct strv *s, const char *sep);

char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
void *xrealloc(void *p, size_t n);

/* The whole file in a malloc'd buffer, NUL-terminated (len excludes the NUL). */
int read_file(const char *path, char **data, size_t *len);

/* Write DATA to PATH through PATH.tmp + rename, so readers never see half a file. */
int write_file_atomic(const char *path, const void *data, size_t len);

/* rm -rf PATH; also removes trees where a directory lacks the owner's write bit
 * (dpkg-deb extracts package modes as they are). ENOENT is success. */
int remove_tree(const char *path);

/* "23.1 MiB" into buf. */
const char *human_size(uint64_t bytes, char *buf, size_t cap);

/* Seconds since an arbitrary start, monotonic. */
double now_seconds(void);

/* The progress display of an image build: step lines on a terminal, the
 * final "done in" line always, nothing when quiet. */
struct progress {
  const char *name; /* the target's */
  bool steps;
  bool quiet;
  double start;
};

void progress_init(struct progress *p, const char *name, bool quiet);
void step(const struct progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* apt_download's announcement (ARG is the progress). */
void announce_download(size_t n, void *arg);
/* "done in N s[ (cached)]: DIR" */
void progress_done(const struct progress *p, const char *dir, bool built);

#endif
