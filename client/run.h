/* The client side of one call: send the run to the guest's supervisor,
 * relay stdin, stdout, stderr, signals and write-back until the run ends,
 * then exit as the program did (see run.c). */
#ifndef VMEXEC_RUN_H
#define VMEXEC_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "guest-connect.h"
#include "share-roots.h"

struct run_options;
/* --gdbserver's two steps (gdb.c's gdbserver_steps): a hook, so that the
 * light vmexec does not link the image code that fetches gdbserver. */
struct gdbserver_steps {
  void (*prepare)(struct run_options *o, const struct target *t);
  void (*wrap)(const struct run_options *o, const char **file, int *argc, char ***argv);
};

struct run_options {
  bool copy;          /* send the program into guest memory instead of sharing trees */
  bool root;
  char *shares[SHARE_MAX_ROOTS]; /* --share DIR[:ro] */
  size_t nshares;
  const struct target *target; /* --target: run a command of that guest */
  bool pty;           /* --shell: on a pseudo-terminal in the guest */
  uint32_t run_flags; /* WIRE_RUN_* besides WIRE_RUN_COPY */
  enum image_kind kind; /* --image: the guest's image */
  /* --gdbserver: under the target's gdbserver, the protocol on stdin/stdout */
  const struct gdbserver_steps *gdbserver;
  char *gdbserver_file; /* its path, shared with the guest (gdb.c) */
};

/* Run the file PATH with ARGV (ARGV[0] is what the program gets as argv[0])
 * in the guest of its architecture; exit as it did. */
noreturn void client_run_program(struct run_options *o, const char *path, int argc, char **argv);

/* --target T [--shell] [--] [COMMAND [ARGS...]]: COMMAND (default /bin/sh
 * with --shell) as the guest's shell would find it on the PATH of the
 * environment; the trees around the working directory are shared. */
noreturn void client_run_command(struct run_options *o, int argc, char **argv);

#endif
