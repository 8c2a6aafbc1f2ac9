/* The host trees a call shares with the guest (see share-roots.c). */
#ifndef VMEXEC_SHARE_ROOTS_H
#define VMEXEC_SHARE_ROOTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "targets.h"

#define SHARE_MAX_ROOTS 32

struct share_root {
  char path[PATH_MAX]; /* absolute, symlinks resolved */
  bool writable;
};

struct share_roots {
  struct share_root root[SHARE_MAX_ROOTS];
  size_t n;
};

/* The roots of a call of PROGRAM (NULL: a command of the guest, only the
 * working directory's trees) for target T, with the user's --share specs
 * (EXTRA, "DIR" or "DIR:ro"). Fails (125) on a bad spec. */
void share_roots_find(struct share_roots *s, const char *program, const struct target *t, char *const *extra,
                      size_t nextra);

/* The innermost root holding PATH if it is writable, else NULL. */
const struct share_root *share_roots_writable(const struct share_roots *s, const char *path);

#endif
