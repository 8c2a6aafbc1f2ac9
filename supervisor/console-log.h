/* Reading the guest console log: what a failure message shows of it. */
#ifndef VMEXEC_CONSOLE_LOG_H
#define VMEXEC_CONSOLE_LOG_H

#include <stddef.h>

/* The last N non-empty lines of the log at PATH, joined with "\n", into buf.
 * Carriage returns and other control characters are dropped. */
void console_tail(const char *path, int n, char *buf, size_t cap);

/* The last non-empty line, for a one-line message. */
void console_last_line(const char *path, char *buf, size_t cap);

/* What the console says about a failure: CAUSE gets the kernel's panic
 * message, else the agent's last word (empty if neither); EXCERPT gets the
 * last CONSOLE_LINES lines up to and including the panic, one per line. */
#define CONSOLE_LINES 10
void console_report(const char *path, char *cause, size_t cause_cap, char *excerpt, size_t excerpt_cap);

#endif
