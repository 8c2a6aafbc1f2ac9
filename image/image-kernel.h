/* Kernels built from Debian's linux-source (image-kernel.c) for the targets
 * whose row has a kernel_arch. */
#ifndef VMEXEC_IMAGE_KERNEL_H
#define VMEXEC_IMAGE_KERNEL_H

#include <stdbool.h>

#include "image-cache.h"
#include "targets.h"

/* Build (or find in the cache) T's kernel: DIR (PATH_MAX bytes) becomes its
 * directory ({kernel, config, manifest}) and KEY its cache key. Fails (125)
 * with one line. */
void kernel_build(const struct target *t, bool quiet, char *dir, char key[IMAGE_KEY_LEN + 1]);

/* The files of this vmexec that make T's kernel: its config fragments and its
 * patch, as text (malloc'd). A minimal image records them (image_extra), so
 * that a changed fragment or patch makes the image, and so its kernel, stale
 * on the next call: the image's own check reads no apt index nor compiler. */
char *kernel_inputs(const struct target *t);

/* The kernel-version of the kernel in KDIR (malloc'd). */
char *kernel_release(const char *kdir);

#endif
