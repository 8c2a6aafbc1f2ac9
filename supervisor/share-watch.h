/* Knowing cheaply whether anything changed under the shared trees since a
 * generation was made (see share-watch.c). */
#ifndef VMEXEC_SHARE_WATCH_H
#define VMEXEC_SHARE_WATCH_H

#include <stdbool.h>
#include <stddef.h>

struct share_watch;

/* Watch every directory under ROOTS but SKIP (vmexec's own runtime
 * directory: its logs change all the time and mean nothing to the guest).
 * NULL if inotify cannot cover them (the user's watch limit): the caller then
 * compares fingerprints instead. */
struct share_watch *share_watch_start(char *const *roots, size_t nroots, const char *skip);

/* True if anything under the roots changed since the start. Every change
 * made before this call is seen: the kernel queues inotify events within the
 * system call that makes the change. */
bool share_watch_changed(struct share_watch *w);

void share_watch_stop(struct share_watch *w);

#endif
