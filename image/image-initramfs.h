/* The guest's initramfs: an uncompressed cpio (newc) archive, written with
 * libarchive. Entries are collected first and written sorted by path, so
 * every directory precedes its contents, the archive is the same for the same
 * inputs, and the total size is known before writing. Every entry is owned by
 * root, whoever builds it. */
#ifndef VMEXEC_IMAGE_INITRAMFS_H
#define VMEXEC_IMAGE_INITRAMFS_H

#include <stdint.h>
#include <sys/types.h>

struct initramfs;

struct initramfs *initramfs_new(void);
void initramfs_free(struct initramfs *ir);

/* Every file, directory and symlink below ROOT, except those whose path
 * relative to ROOT matches one of the fnmatch patterns SKIP (NULL-terminated;
 * a match skips the whole subtree). */
void initramfs_add_tree(struct initramfs *ir, const char *root, const char *const *skip);

/* Single entries; PATH is the path in the guest without the leading '/'.
 * A later entry for the same path replaces an earlier one. */
void initramfs_add_dir(struct initramfs *ir, const char *path, mode_t mode);
void initramfs_add_chardev(struct initramfs *ir, const char *path, mode_t mode, unsigned major, unsigned minor);
void initramfs_add_symlink(struct initramfs *ir, const char *path, const char *target);
void initramfs_add_file(struct initramfs *ir, const char *path, const char *host_path, mode_t mode);
void initramfs_add_data(struct initramfs *ir, const char *path, const char *data, mode_t mode);
/* LEN bytes from memory: what the caller has already read (and hashed), so the
 * archive holds the same bytes even if the file changes meanwhile. */
void initramfs_add_bytes(struct initramfs *ir, const char *path, const void *data, size_t len, mode_t mode);
/* A kernel module, written without its signature. */
void initramfs_add_module(struct initramfs *ir, const char *path, const char *host_path);

/* Whether the archive will contain PATH. */
int initramfs_has(const struct initramfs *ir, const char *path);

/* Bytes of file data to be written (for the progress display). */
uint64_t initramfs_data_size(const struct initramfs *ir);

/* Write the archive to OUT; fails (exit 125) with the cause. */
void initramfs_write(struct initramfs *ir, const char *out);

#endif
