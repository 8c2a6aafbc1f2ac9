/* The file-system steps of the write-back (see writeback-fs.c): opening
 * beneath a root without symlinks, removing trees, temporary names. */
#ifndef VMEXEC_WRITEBACK_FS_H
#define VMEXEC_WRITEBACK_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "wire.h"

/* Temporary names start with this, then "PID.N": a name whose PID is dead is
 * a leftover of a vmexec that was killed. */
#define WB_TEMP_PREFIX WIRE_WB_TEMP_PREFIX

/* Open PATH (absolute) following no symlink at all: a root of the call. */
int wb_open_root(const char *path);

/* Open REL beneath the directory AT: no "..", no symlink, no magic link, no
 * other mount on the way. -1 with errno (ELOOP: a symlink, EXDEV: out of
 * AT or across a mount). */
int wb_open_beneath(int at, const char *rel, int flags);

/* chmod the directory REL beneath AT (opened as wb_open_beneath does, so
 * nothing else is changed: a file there fails with ENOTDIR), unless it has
 * MODE already. 0, or an errno. */
int wb_chmod_dir(int at, const char *rel, unsigned mode);

/* rm -r NAME in the directory AT, never following a symlink, with at most
 * two fds open whatever the depth. 0, or an errno. */
int wb_remove_tree(int at, const char *name);

/* A fresh temporary name (WB_TEMP_PREFIX "PID.N") into BUF. */
void wb_temp_name(char *buf, size_t cap);

/* Remove the leftovers of dead vmexec processes in the directory AT. */
void wb_sweep_stale(int at);

/* Put TEMP in the place of NAME, both in AT, in one step whatever NAME is
 * (a file, a symlink, a directory with contents, or nothing), then remove
 * what NAME was. 0, or an errno (TEMP is left). */
int wb_replace(int at, const char *temp, const char *name);

#endif
