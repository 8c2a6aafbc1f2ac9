/* The host end of nbd-share for one guest (see share-host.c). Used by the
 * supervisor only. */
#ifndef VMEXEC_SHARE_HOST_H
#define VMEXEC_SHARE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "share-patch.h"
#include "targets.h"
#include "wire-msg.h"

struct share_host;

/* Start nbdkit with the share plugin for target T, its files in the guest's
 * runtime directory DIR. NULL, with the reason in WHY, if sharing cannot work
 * here; the guest then runs without the share. */
struct share_host *share_host_start(const struct target *t, const char *dir, char *why, size_t cap);

/* The unix socket qemu connects its share disk to. */
const char *share_host_socket(const struct share_host *h);

/* A caller's WIRE_SHARE payload P of N bytes (generation fields unset) to
 * the agent's, in REPLY (its roots are valid until the next call): picks the
 * generation, making a new one when what the current one showed changed
 * on the host, except for changed regular files it can patch: their
 * WIRE_PATCH frames go through EMIT (ARG), to be queued before REPLY.
 * False with a one-line ERR when it cannot. */
bool share_host_request(struct share_host *h, const uint8_t *p, size_t n, struct wire_share *reply,
                        share_patch_emit *emit, void *arg, char *err, size_t cap);

/* A caller went. If the host changed since the current generation was made
 * (its write-back applied): if the plugin says the current generation is
 * stale, make the next one now, or if only files to patch changed, send
 * their WIRE_PATCH frames through EMIT (ARG). Then fill NEXT with that
 * generation, or the current one if nothing changed, and the roots of the
 * last request (valid until the next call), for WIRE_GEN_PREPARE. */
enum share_next { SHARE_NEXT_NONE, SHARE_NEXT_SAME, SHARE_NEXT_CHANGED };
enum share_next share_host_prepare(struct share_host *h, share_patch_emit *emit, void *arg, struct wire_share *next);

/* The guest let go of generation GEN: the plugin may free it. */
void share_host_released(struct share_host *h, uint32_t gen);

/* If the share's nbdkit ended (killed, crashed), reap it and say how in
 * WHY, naming its log. The guest's reads of the share fail from then on. */
bool share_host_reap(struct share_host *h, char *why, size_t cap);

void share_host_stop(struct share_host *h);

#endif
