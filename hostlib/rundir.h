/* The per-user runtime directory: $XDG_RUNTIME_DIR/vmexec, or /tmp/vmexec-UID
 * (0700, owned by the user: only the user can reach the control sockets).
 * Each guest (one per target and image) has a subdirectory there:
 *   control.sock   the supervisor's socket, where vmexec calls connect
 *   lock           flock'ed while a supervisor is being started or stopped
 *   serial.sock    qemu's end of the virtio-serial port
 *   qmp.sock       qemu's QMP monitor
 *   console.log    the guest console
 *   supervisor.log what the supervisor had to say
 */
#ifndef VMEXEC_RUNDIR_H
#define VMEXEC_RUNDIR_H

#include <limits.h>

/* The base directory, created and checked. Fails (125) when it is not safe. */
const char *rundir_base(void);

/* The guest's directory for NAME (a target name), created. Fills dir
 * (PATH_MAX). */
void rundir_guest(const char *name, char *dir);

/* DIR/FILE into out (PATH_MAX); fails (125) when too long for a socket path
 * (108 bytes) if is_socket. */
void rundir_file(const char *dir, const char *file, int is_socket, char *out);

#endif
