/* Guest images: kernel + initramfs (agent as /init, busybox, the target's libc
 * and the kernel modules the agent loads) built from Debian packages of the
 * target architecture, cached under cache_dir()/images/KEY/.
 *
 * An image directory holds:
 *   kernel     the kernel as qemu's -kernel takes it
 *   initrd     uncompressed cpio (newc) archive
 *   manifest   "key value" lines: target, kernel-version, packages (the .deb
 *              file names), key, created (unix time), with, format
 *   source     only in an image pulled or imported (image-oci.c): "pulled
 *              REF" or "imported FILE"; absent in one built here
 * and cache_dir()/images/TARGET is a symlink to the KEY last built for TARGET
 * (or pulled: image-oci.c).
 * A full image's directory holds rootfs.img instead (see image-full.c), and
 * TARGET-full names the last one built.
 * The implementation is in image-*.c (see image-build.c).
 */
#ifndef VMEXEC_IMAGE_H
#define VMEXEC_IMAGE_H

#include <limits.h>
#include <stdbool.h>

#include "targets.h"

struct image_options {
  const char *with; /* extra runtime packages, comma separated, or NULL */
  bool quiet;       /* no progress display even on a terminal */
};

/* Build (or find in the cache) the image for T. On success fills dir
 * (PATH_MAX bytes) with the image directory and returns 0. On failure prints
 * one line and exits with 125 (fail()); callers may still treat a non-zero
 * return as failure. Progress goes to stderr: step lines on a terminal, the
 * final "done in" line always, nothing with opt->quiet. */
int image_build(const struct target *t, const struct image_options *opt, char *dir);

/* The image last built for T, without building: 0 and dir filled, or -1. */
int image_find(const struct target *t, char *dir);

/* Like image_find, and only if that image holds this vmexec's agent: its
 * manifest's packages and the agent give its key again. Reads only files, so
 * users who cannot write the cache can use it. */
int image_current(const struct target *t, char *dir);

/* Whether the minimal image in DIR is what this vmexec would build: its
 * manifest's key again from its packages, this vmexec's agent and, for a
 * kernel built from source, the kernel key the manifest names. */
bool image_is_ours(const struct target *t, const char *dir);

#endif
