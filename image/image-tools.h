/* Debugging tools of a target, fetched from Debian on demand (see image-tools.c). */
#ifndef VMEXEC_IMAGE_TOOLS_H
#define VMEXEC_IMAGE_TOOLS_H

#include "targets.h"

/* The directory holding T's gdbserver (DIR/usr/bin/gdbserver), extracted
 * from Debian's gdbserver:ARCH under cache_dir()/tools on first use, and
 * DIR/sysroot, the guest's libraries for gdb (without the loader). Fails
 * (125) with the fix when it cannot be fetched. Returns a malloc'd string. */
char *image_gdbserver_dir(const struct target *t);

#endif
