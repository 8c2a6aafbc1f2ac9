/* First boot of a full userland image: the root filesystem image, unpacked on
 * the host, is configured by the guest itself. qemu boots the minimal image's
 * kernel and initramfs with ROOTFS attached writable (served by nbdkit) and
 * "vmexec.firstboot" on the kernel command line; the agent then mounts it,
 * runs /var/lib/vmexec/firstboot in it (chroot, as root, output on the
 * console) and powers off. No qemu-user or binfmt_misc on the host. */
#ifndef VMEXEC_IMAGE_FIRSTBOOT_H
#define VMEXEC_IMAGE_FIRSTBOOT_H

#include <stdbool.h>

#include "targets.h"

/* The agent's console line after a good first boot (agent/root.c; a bad
 * one says "first boot failed: ..."). */
#define FIRSTBOOT_DONE "vmexec-agent: first boot done"

/* Boot T's minimal image in IMAGE_DIR (kernel, initrd) with ROOTFS (a
 * filesystem image file) writable, and wait until the guest powered off.
 * The console goes to CONSOLE_LOG. Returns 0 when the agent said
 * FIRSTBOOT_DONE; otherwise prints one line (the cause, the log) and exits
 * with 125. Waits at most VMEXEC_FIRSTBOOT_TIMEOUT seconds (default 3600). */
int image_firstboot(const struct target *t, const char *image_dir, const char *rootfs, const char *console_log);

#endif
