/* How a vmexec call reaches the supervisor of its guest (see guest-connect.c):
 * which guest, and connecting to its supervisor, started on first use. */
#ifndef VMEXEC_GUEST_CONNECT_H
#define VMEXEC_GUEST_CONNECT_H

#include "targets.h"

#include <stddef.h>

/* Which image a guest boots: the minimal one (busybox and libc in the
 * initramfs: the exe_wrapper case) or the full Debian userland (the minimal
 * image's kernel and agent, with a root filesystem image), either with a
 * fresh root per run or with one persistent writable layer (--persist).
 * Each is its own guest: "s390x", "s390x-full", "s390x-full-persist". */
enum image_kind { IMAGE_MINIMAL, IMAGE_FULL, IMAGE_FULL_PERSIST, N_IMAGE_KINDS };

/* "minimal", "full" or "full-persist" (--image NAME); -1 for anything else. */
int image_kind_parse(const char *name);

/* The guest's name: the target's, with "-full" for the full image. */
void guest_name(const struct target *t, enum image_kind kind, char *buf, size_t cap);

/* Connect to the supervisor of T's guest of KIND, starting it with
 * guest_starter if none runs. Returns a blocking socket. Fails (125) with
 * the cause and the fix. */
int guest_connect(const struct target *t, enum image_kind kind);

/* How guest_connect starts a guest: guest_start in vmexec-tools; the light
 * vmexec's hands the whole call to vmexec-tools instead. Never returns
 * without a connected socket. */
extern int (*guest_starter)(const struct target *t, enum image_kind kind);

/* guest-start.c: take the guest's lock, build the image if needed (no race
 * when many calls start at once), start its supervisor and connect. */
int guest_start(const struct target *t, enum image_kind kind);

/* Connect only if a supervisor runs: the socket, or -1. */
int guest_connect_existing(const char *name);

#endif
