/* The qemu command line of a guest, and starting qemu with it. Used by
 * `vmexec image test` and by the supervisor of persistent guests.
 *
 * The guest gets: the image's kernel and initrd, the kernel console on a log
 * file (-serial), one virtio-serial port named WIRE_PORT_NAME whose host end is
 * a unix socket qemu listens on (server=on,wait=off: the host side may connect
 * any time; guest writes wait for it), optionally a QMP socket. A kernel panic
 * exits qemu (panic=-1 with -no-reboot), and so does the agent's poweroff. */
#ifndef VMEXEC_QEMU_CMDLINE_H
#define VMEXEC_QEMU_CMDLINE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "targets.h"

struct qemu_options {
  const struct target *target;
  const char *image_dir;     /* holds "kernel" and "initrd" (see image.h) */
  const char *serial_socket; /* unix socket of the virtio-serial port (qemu listens) */
  const char *console_log;   /* file the guest console goes to; NULL: qemu's stdout */
  const char *qmp_socket;    /* unix socket of a QMP monitor (qemu listens), or NULL */
  const char *qemu_log;      /* file for qemu's own stdout/stderr, or NULL: inherited */
  const char *share_socket;  /* unix socket of the nbd-share export (nbdkit), or NULL */
  const char *root_socket;   /* unix socket of a full image's root filesystem (nbdkit), or NULL */
  bool root_writable;        /* the root disk takes writes (first boot); else read-only */
  const char *layer_socket;  /* unix socket of the persistent layer over the root (nbdkit), or NULL */
  const char *append;        /* more kernel parameters, or NULL */
  int memory_mib;            /* 0: QEMU_DEFAULT_MEMORY_MIB */
  int cpus;                  /* 0: qemu_default_cpus */
  /* Restore a snapshot instead of booting: qemu reads the migration stream
   * from INCOMING_FD (as its fd 3: -incoming fd:3) and runs the guest once
   * it is loaded (snapshot.h). */
  bool incoming;
  int incoming_fd;
};

#define QEMU_DEFAULT_MEMORY_MIB 512
#define QEMU_MAX_CPUS 64

/* The guest's vCPUs unless VMEXEC_CPUS says otherwise: the host cores this
 * process may use where T's TCG is multi-threaded, else 1. */
int qemu_default_cpus(const struct target *t);

/* The argv (NULL-terminated, malloc'd, argv[0] = the target's qemu binary
 * name) for O. Free with qemu_argv_free(). Fails (125) when out of memory. */
char **qemu_argv(const struct qemu_options *o);
void qemu_argv_free(char **argv);

/* Whether the guest of T runs under KVM rather than TCG (see qemu-cmdline.c). */
bool qemu_use_kvm(const struct target *t);

/* Full path of T's qemu binary in PATH into buf (cap bytes): 0, or -1 when it
 * is not installed (the fix: apt-get install t->qemu_package). */
int qemu_find(const struct target *t, char *buf, size_t cap);

/* Start qemu for O: stdin from /dev/null, stdout and stderr to o->qemu_log
 * (or inherited), signal mask MASK in the child (the caller may block signals
 * for its signalfd), SIGTERM when the caller dies. Returns the pid, or -errno
 * (-ENOENT: the qemu binary is not installed). */
pid_t qemu_spawn(const struct qemu_options *o, const sigset_t *mask);

/* An empty signal set, for qemu_spawn's MASK. */
const sigset_t *sigmask_empty(void);

#endif
