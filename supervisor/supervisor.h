/* The per-user, per-guest supervisor process (see supervisor.c). A vmexec
 * call reaches it through client/guest-connect.h. */
#ifndef VMEXEC_SUPERVISOR_H
#define VMEXEC_SUPERVISOR_H

#include "targets.h"

/* Run the supervisor of the guest NAME of target T, booting the image in
 * IMAGE_DIR with the root filesystem ROOTFS (a full image's; NULL for none)
 * and the persistent writable LAYER over it (NULL for none); never returns.
 * If env VMEXEC_READY_FD names a descriptor, one byte is written to it once
 * the control socket listens, and it is closed. */
int supervisor_main(const struct target *t, const char *name, const char *image_dir, const char *rootfs,
                    const char *layer);

#endif
