/* The host files whose data an image maps, read lazily at the time the guest
 * reads them: files are opened on first use and kept in a small cache of
 * descriptors, never copied. A file that shrank reads as zeroes past its end, a
 * file that disappeared or cannot be opened reads as zeroes (with one log
 * line): the guest gets bytes, never an error that looks like a broken disk.
 * A file is reopened by its scanned path following no symlink, without
 * blocking (a fifo put in its place), and only if it is still the regular
 * file scanned (device and inode): anything else reads as zeroes, never
 * another file's bytes. */
#ifndef NBD_SHARE_HOSTFILES_H
#define NBD_SHARE_HOSTFILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "synth-log.h"

struct hostfiles;

/* CACHE_FDS descriptors stay open at most. NULL if memory ran out. */
struct hostfiles *hostfiles_new(unsigned cache_fds, synth_log_fn log, void *log_opaque);
void hostfiles_free(struct hostfiles *h); /* closes the cached descriptors */

/* Register the file at absolute PATH (LEN bytes), seen at scan time as
 * DEV/INO. Returns its id, or -1 if memory ran out. */
int64_t hostfiles_add(struct hostfiles *h, const char *path, size_t len, dev_t dev, ino_t ino);

/* A region_file_reader (OPAQUE is the struct hostfiles): LEN bytes at OFFSET
 * of file ID, zero-filled past its end. Safe to call from many threads.
 * 0, or -1 with errno on a read error of an open file. */
int hostfiles_read(void *opaque, uint32_t id, void *buf, size_t len, uint64_t offset);

/* Close the cached descriptors of files deleted on the host (no name
 * left): held open, their space would never be freed (a test's scratch
 * file of gigabytes filled the host's disk so). A read after that finds
 * the file gone and reads zeroes, as any file gone does. */
void hostfiles_close_deleted(struct hostfiles *h);

/* Open absolute PATH with FLAGS following no symlink in any component, also
 * when it is longer than PATH_MAX: deep trees are legal and we must serve them. */
int hostfiles_open_path(const char *path, int flags);

#endif
