/* Helpers of the fuzz targets that work on real trees. */
#ifndef VMEXEC_FUZZ_UTIL_H
#define VMEXEC_FUZZ_UTIL_H

#include <stddef.h>

/* Removes DIRFD/NAME and everything in it, whatever its modes. */
void fuzz_remove_tree(int dirfd, const char *name);

/* A new private directory for WHAT (on tmpfs when there is one), with its
 * symlinks resolved, into OUT. */
void fuzz_sandbox(const char *what, char *out, size_t cap);

#endif
