/* The few things vmexec asks of a running qemu, through its QMP monitor. */
#ifndef VMEXEC_QMP_H
#define VMEXEC_QMP_H

#include <stddef.h>
#include <sys/types.h>

/* A QMP connection in command mode. */
struct qmp {
  int fd;
  char buf[16384];  /* what was read and not yet taken as a line */
  size_t len;
  char line[16384]; /* the last line: the last command's answer */
};

/* Connect to the QMP socket at PATH, read the greeting and leave
 * negotiation mode; every read and write waits at most TIMEOUT_MS. 0, or -1
 * (nothing to close then). */
int qmp_open(struct qmp *q, const char *path, int timeout_ms);
void qmp_close(struct qmp *q);

/* Send COMMAND (one JSON object, no newline), with descriptor FD attached
 * when FD >= 0 (for "getfd"), and read up to its answer, skipping events:
 * 0 for a "return", -1 for an "error", a timeout or a closed connection.
 * The answer is in q->line. */
int qmp_command(struct qmp *q, const char *command, int fd);

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
