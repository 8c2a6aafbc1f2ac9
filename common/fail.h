/* One way to report a failure of vmexec itself: one line on stderr that names
 * the cause and the fix, and the exit statuses of env(1) and timeout(1). */
#ifndef VMEXEC_FAIL_H
#define VMEXEC_FAIL_H

#include <stdnoreturn.h>

enum {
  EXIT_TOOL_FAILED = 125,    /* vmexec (or the guest) failed */
  EXIT_CANNOT_EXECUTE = 126, /* the program exists but cannot be run */
  EXIT_NOT_FOUND = 127,      /* the program does not exist */
};

/* Print "vmexec: MESSAGE" and exit with STATUS. */
noreturn void fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "vmexec: MESSAGE" and go on. */
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
