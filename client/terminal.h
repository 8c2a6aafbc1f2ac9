/* The caller's terminal while a shell runs on a pseudo-terminal in the guest
 * (vmexec --shell): raw mode, so that every key goes to the guest's line
 * discipline, and the window size. */
#ifndef VMEXEC_TERMINAL_H
#define VMEXEC_TERMINAL_H

#include <stdbool.h>
#include <stdint.h>

/* If FD is a terminal, put it in raw mode (cfmakeraw) until terminal_restore,
 * which runs at exit and before death by the signals of terminal_die_on.
 * False (and nothing changed) when FD is not a terminal. */
bool terminal_make_raw(int fd);

/* Put the terminal back as it was. Idempotent and async-signal-safe. */
void terminal_restore(void);

/* On SIG, restore the terminal and die of SIG. */
void terminal_die_on(int sig);

/* The window size of the first of stdin, stdout, stderr that is a terminal. */
bool terminal_size(uint32_t *rows, uint32_t *cols);

#endif
