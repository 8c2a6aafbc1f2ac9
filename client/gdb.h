/* Debugging a program of the guest with the host's gdb (see gdb.c). */
#ifndef VMEXEC_GDB_H
#define VMEXEC_GDB_H

#include <stdnoreturn.h>

#include "run.h"

/* --gdbserver: fetch T's gdbserver (once), share its directory read-only
 * and remember it in O. Fails (125) with --copy. */
void gdbserver_prepare(struct run_options *o, const struct target *t);

/* --gdbserver: the run of FILE with ARGV becomes gdbserver's run of it,
 * speaking the remote protocol on the run's stdin and stdout. */
void gdbserver_wrap(const struct run_options *o, const char **file, int *argc, char ***argv);

/* Both, for run_options.gdbserver. */
extern const struct gdbserver_steps gdbserver_steps;

/* --gdb: gdb-multiarch (or $VMEXEC_GDB) for the program PATH with ARGV,
 * attached through 'vmexec --gdbserver'. With a terminal it runs gdb;
 * without one it prints that gdb command line on stdout and exits 0. */
noreturn void client_run_gdb(const char *path, int argc, char **argv);

#endif
