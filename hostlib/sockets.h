/* Unix stream sockets of the supervisor and its callers. */
#ifndef VMEXEC_SOCKETS_H
#define VMEXEC_SOCKETS_H

#include <stdbool.h>

/* Listen on PATH, non-blocking. The socket is bound under a temporary name and
 * renamed into place, so a caller never meets a socket that is not listening
 * yet. -1 on error (errno). */
int unix_listen(const char *path);

/* Connect to PATH; the result is non-blocking if asked. -1 on error (errno). */
int unix_connect(const char *path, bool nonblocking);

#endif
