/* Resource cleanup in one place per function, as nbdkit does it. */
#ifndef VMEXEC_CLEANUP_H
#define VMEXEC_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free(void *p) { free(*(void **)p); }
static inline void cleanup_close(int *fd) { if (*fd >= 0) close(*fd); }
static inline void cleanup_fclose(FILE **f) { if (*f) fclose(*f); }

#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))
#define CLEANUP_FCLOSE __attribute__((cleanup(cleanup_fclose)))

#endif
