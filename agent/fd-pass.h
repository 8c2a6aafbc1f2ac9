/* Open files handed between a run's child and the agent over a socketpair
 * (SCM_RIGHTS): its mount namespace, mount table and root, its stdin file. */
#ifndef VMEXEC_AGENT_FD_PASS_H
#define VMEXEC_AGENT_FD_PASS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FD_PASS_MAX 3

/* The N (at most FD_PASS_MAX) descriptors FDS and the LEN bytes DATA (at
 * least one) as one message on SOCK, without waiting. True if it went. */
bool fd_pass_send(int sock, const int *fds, size_t n, const void *data, size_t len);

/* One such message, without waiting: its bytes into DATA (CAP), exactly N
 * descriptors into FDS (close-on-exec). The bytes received (at least one),
 * or -1 when nothing or not N descriptors came; *CUT when the bytes did not
 * fit. */
ssize_t fd_pass_receive(int sock, int *fds, size_t n, void *data, size_t cap, bool *cut);

#endif
