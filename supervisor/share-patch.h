/* The files of the current share generation that changed on the host since
 * the guest read them (the plugin lists them in gen-S.changed), sent to the
 * agent as WIRE_PATCH frames: it shows them over the generation in the
 * next runs, which saves a new generation (nbd-share/README.md). */
#ifndef VMEXEC_SHARE_PATCH_H
#define VMEXEC_SHARE_PATCH_H

#include <stddef.h>
#include <stdint.h>

/* Queues one frame of TYPE for the agent (run 0). */
typedef void share_patch_emit(void *arg, uint16_t type, const uint8_t *p, size_t n);

/* The files named in LIST (a gen-S.changed: host paths, each ending with a
 * NUL), read now and sent as generation GEN's patches through EMIT, in the
 * list's order (a path listed twice where it comes last); LIST is removed;
 * a path that is gone goes as a deletion, a directory as one made anew,
 * empty (what it holds follows in the list). The bytes sent (0: no list),
 * or -1 when a file cannot be sent whole (no longer a regular file of one
 * name or a directory, bigger than WIRE_PATCH_FILE_MAX, or more than MAX
 * bytes in all): nothing is sent then, and the caller makes a new
 * generation. */
long long share_patch_send(const char *list, uint32_t gen, uint64_t max, share_patch_emit *emit, void *arg);

#endif
