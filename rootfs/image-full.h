/* The full Debian userland of a target (see image-full.c): a root
 * filesystem image built from the target's packages on the host and
 * configured by the guest itself on its first boot. */
#ifndef VMEXEC_IMAGE_FULL_H
#define VMEXEC_IMAGE_FULL_H

#include "image.h"
#include "targets.h"

/* The full Debian userland of T (image-full.c): a root filesystem image
 * (DIR/rootfs.img) built from the target's packages and configured by the
 * guest on its first boot; booted with the minimal image's kernel and agent.
 * Like image_build: 0 with DIR filled, or one line and exit 125. */
int image_full_build(const struct target *t, const struct image_options *opt, char *dir);

/* The full image last built for T, without building, if this vmexec would
 * build it (its manifest gives its key again: packages, with, the first-boot
 * script); reads only files. 0 and DIR filled, or -1. */
int image_full_current(const struct target *t, char *dir);

#endif
