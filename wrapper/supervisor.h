/* The per-user, per-guest supervisor process (see supervisor.c) and how a
 * vmexec call reaches it. */
#ifndef VMEXEC_SUPERVISOR_H
#define VMEXEC_SUPERVISOR_H

#include "targets.h"

/* Run the supervisor for target T with the image in IMAGE_DIR; never returns.
 * If env VMEXEC_READY_FD names a descriptor, one byte is written to it once
 * the control socket listens, and it is closed. */
int supervisor_main(const struct target *t, const char *image_dir);

/* Connect to the supervisor of T's guest, starting it (and building the image
 * on first use) if none runs; no race when many calls start at once. Returns
 * a blocking socket. Fails (125) with the cause and the fix. */
int guest_connect(const struct target *t);

/* Connect only if a supervisor runs: the socket, or -1. */
int guest_connect_existing(const char *name);

#endif
