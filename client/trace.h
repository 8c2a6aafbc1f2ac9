/* VMEXEC_TRACE=1: where one call's time went, printed on stderr as one block
 * when the call ends. The client's own phases on the host's clock; the
 * supervisor's and the guest's come in WIRE_TRACE frames (durations on their
 * own clocks), and what is left of the wait is the way between them. */
#ifndef VMEXEC_CLIENT_TRACE_H
#define VMEXEC_CLIENT_TRACE_H

#include <stdbool.h>

#include "wire-msg.h"

/* At the start of main: reads VMEXEC_TRACE and notes the time. */
void trace_begin(void);
bool trace_on(void);
/* The client's phase NAME ended now (it began where the last one ended). */
void trace_mark(const char *name);
/* The run went out: the wait for its end starts now. */
void trace_wait_start(void);
/* A WIRE_TRACE payload from the supervisor (it forwards the guest's too). */
void trace_remote(const uint8_t *p, size_t n);
/* The run's WIRE_EXIT came: the wait ends now. */
void trace_wait_end(void);
/* The last client phase ended now: print the block (nothing when off). */
void trace_print(const char *last);

#endif
