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

/* The kernel-version of the kernel in KDIR (malloc'd). */
char *kernel_release(const char *kdir);

#endif
