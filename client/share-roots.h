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
  bool from_args; /* added for a path on the command line: may be merged */
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

/* Paths named in ARGV (the program's arguments, ARGC of them) become
 * roots when no root covers them yet: an argument, or the part after the
 * first '=' of one (--out=PATH, of=PATH), or the part after a one-letter
 * option (-o/PATH, absolute paths only). An existing directory is a root
 * itself; an existing file's directory is (and the directory of the file it
 * is a symlink to); a path that does not exist yet, with a slash, makes its
 * parent directory one (an output file). Each is writable when the caller
 * can write it (access W_OK), else read-only; never "/" nor the guest's
 * system directories (/usr, /lib*, /bin, /sbin, /etc, /proc, /sys, /dev,
 * /run). Within SHARE_MAX_ROOTS: nested ones merge, and past the limit a
 * root widens to the common ancestor of two, or the path is left out. */
void share_roots_add_args(struct share_roots *s, int argc, char *const *argv);

/* The innermost root holding PATH if it is writable, else NULL. */
const struct share_root *share_roots_writable(const struct share_roots *s, const char *path);

#endif
