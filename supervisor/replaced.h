/* Whether vmexec was rebuilt or upgraded under a running guest: the files its
 * supervisor and guest were started from (vmexec itself, the agent, the share
 * plugin, the kernel's config and patch) are no longer those at their paths.
 * Such a guest takes no new calls (they go to a fresh supervisor, which boots
 * the new files) and stops once its runs have ended. */
#ifndef VMEXEC_REPLACED_H
#define VMEXEC_REPLACED_H

#include <stdbool.h>
#include <sys/stat.h>

#include "targets.h"

#define REPLACED_MAX_FILES 8

struct started_from {
  size_t n;
  struct {
    char *path;
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
  } file[REPLACED_MAX_FILES];
};

/* Note what T's guest is started from, now. */
void started_from_note(struct started_from *w, const struct target *t);

/* The first noted file that is gone, new or changed since (a few stat calls),
 * or NULL. */
const char *started_from_replaced(const struct started_from *w);

#endif
