/* Debian packages unpacked into a root directory as dpkg --unpack leaves
 * them, without root and without the target's dpkg (which the host cannot
 * run): the files (conffiles as PATH.dpkg-new), var/lib/dpkg with every
 * package "install ok unpacked", and what the guest's first boot needs to
 * finish the job as root: the owners list and the first-boot script, which
 * runs the preinsts and the target's own `dpkg --configure -a`.
 *
 * The root has the merged /usr of Debian 12 (bin, sbin, lib and lib*
 * are symlinks into usr/), so paths are resolved as dpkg in a chroot would:
 * through the symlinks of the root, never out of it.
 *
 * Written in the root:
 *   var/lib/dpkg/{status,available,diversions,statoverride,info/,updates/,
 *                 triggers/,alternatives/,parts/}
 *   var/lib/vmexec/owners     "MODE USER GROUP UID GID PATH" (MODE octal):
 *                             each file that is not root:root or has a
 *                             setuid, setgid or sticky bit (a user cannot
 *                             create those)
 *   var/lib/vmexec/order      "INFONAME PACKAGE ARCH": the packages whose
 *                             preinst runs first to last
 *   var/lib/vmexec/firstboot  dpkg_firstboot_script */
#ifndef VMEXEC_IMAGE_DPKG_H
#define VMEXEC_IMAGE_DPKG_H

#include <stddef.h>
#include <stdint.h>

struct dpkg_root;

/* What the unpacked packages take, for sizing the file system. */
struct dpkg_totals {
  size_t packages;
  uint64_t bytes;  /* file data and directories in 4 KiB blocks */
  uint64_t inodes; /* files, directories and symlinks */
};

/* Start unpacking into ROOT, an empty directory. NAME goes in messages
 * ("[NAME] ..."). Fails (125) with a fix. */
struct dpkg_root *dpkg_root_new(const char *root, const char *name);

/* Unpack one .deb file: its files, its info files and its status entry.
 * Call in apt's installation order: later packages win shared files. */
void dpkg_root_unpack(struct dpkg_root *r, const char *deb);

/* Write the status file, the owners list, the order and the first-boot
 * script; fill TOTALS and free R. */
void dpkg_root_finish(struct dpkg_root *r, struct dpkg_totals *totals);

/* The text of var/lib/vmexec/firstboot: part of the full image's key. */
extern const char dpkg_firstboot_script[];

#endif
