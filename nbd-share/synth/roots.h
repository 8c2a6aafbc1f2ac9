/* The list of host trees one image shows: absolute paths, normalised
 * lexically ("//", "/." and a trailing "/" go; ".." is refused: the share
 * never resolves paths for the caller), sorted so that a tree's
 * subdirectories follow it, and without roots that lie inside another root
 * (the outer scan already has them). */
#ifndef NBD_SHARE_ROOTS_H
#define NBD_SHARE_ROOTS_H

#include <stddef.h>

#include "synth-log.h"

struct roots {
  char **v;
  size_t n, cap;
};

void roots_init(struct roots *r);
void roots_free(struct roots *r);

/* Add one root. 0, or -1 with a message in ERR (not absolute, "..", "/",
 * out of memory). */
int roots_add(struct roots *r, const char *path, char *err, size_t errlen);

/* Add every line of FILE (one absolute path a line; empty lines ignored).
 * 0, or -1 with a message in ERR; errno is ENOENT if FILE does not exist. */
int roots_read_file(struct roots *r, const char *file, char *err, size_t errlen);

/* Sort and drop nested roots (each with a log line). */
void roots_finish(struct roots *r, synth_log_fn log, void *log_opaque);

/* Number of components of normalised root P ("/a/b" has 2). */
size_t roots_depth(const char *p);

/* roots_init, roots_add of each of PATHS, roots_finish: 0, or -1 with ERR
 * (and R freed). */
int roots_from_array(struct roots *r, char *const *paths, size_t n, synth_log_fn log, void *log_opaque,
                     char *err, size_t errlen);

#endif
