/* The few things vmexec asks of a running qemu, through its QMP monitor. */
#ifndef VMEXEC_QMP_H
#define VMEXEC_QMP_H

#include <stddef.h>
#include <sys/types.h>

/* Stop qemu PID: QMP "quit" on QMP_SOCKET (NULL: none), then SIGTERM, then
 * SIGKILL, each given a few seconds; reaps it. */
void qemu_stop(const char *qmp_socket, pid_t pid);

/* Wait up to MS milliseconds for PID to exit; 1 if it did (and was reaped). */
int qemu_wait_exit(pid_t pid, int ms);

/* How qemu ended, from its wait STATUS: "qemu exited with status 1" or
 * "qemu was killed by signal 9", into buf. */
void qemu_exit_reason(int status, char *buf, size_t cap);

/* Resident memory of process PID in KiB, or 0 if unknown. */
long qemu_rss_kib(pid_t pid);

#endif
