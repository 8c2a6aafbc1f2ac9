/* Small file-system helpers that the host and the static guest agent both
 * need, once: plain libc only (the agent is cross-compiled and static). */
#ifndef VMEXEC_FSUTIL_H
#define VMEXEC_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Write all LEN bytes of DATA to FD, again after EINTR and short writes.
 * 0, or -1 with errno. */
int write_all(int fd, const void *data, size_t len);

/* mkdir -p PATH: the missing parents with mode 0755, PATH itself with
 * LEAF_MODE. Directories that exist are fine. 0, or -1 with errno. */
int mkdir_p(const char *path, mode_t leaf_mode);

/* Remove the files of the flat directory DIR whose names start with PREFIX
 * (NULL: all of them), not the directory itself. Best effort: what cannot
 * be removed stays. */
void clear_dir(const char *dir, const char *prefix);

#endif
