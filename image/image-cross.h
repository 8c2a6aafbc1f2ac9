/* User space from Debian's -cross packages (image-cross.c). */
#ifndef VMEXEC_IMAGE_CROSS_H
#define VMEXEC_IMAGE_CROSS_H

#include "targets.h"
#include "util.h"

/* The packages of T's libraries: libc6-ARCH-cross and friends. */
void cross_packages(const struct target *t, struct strv *pkgs);

/* Move what they put in ROOT/usr/TRIPLET/lib* to ROOT/lib*. */
void cross_relocate(const struct target *t, const char *root);

#endif
