/* Starting and stopping nbdkit, the NBD server of every disk vmexec gives a
 * guest: the share (our plugin) and a full image's root filesystem (nbdkit's
 * file plugin). */
#ifndef VMEXEC_NBDKIT_H
#define VMEXEC_NBDKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Run "nbdkit --exit-with-parent -f -U SOCKET ARGS..." (ARGS: plugin and
 * its parameters, NULL-terminated; "-r" first for a read-only export) with
 * its output in LOG, and wait until it listens. Returns its pid, or -1 with
 * the reason (and its fix) in WHY. */
pid_t nbdkit_start(const char *socket, const char *log, char *const args[], char *why, size_t cap);

/* If nbdkit *PID ended (killed, crashed), reap it, set *PID to -1 and say
 * how in WHY: "nbdkit was killed by signal 9". False while it runs. */
bool nbdkit_reap(pid_t *pid, char *why, size_t cap);

/* SIGTERM and wait; removes SOCKET. */
void nbdkit_stop(pid_t pid, const char *socket);

#endif
