/* Where vmexec keeps and finds things on the host. */
#ifndef VMEXEC_PATHS_H
#define VMEXEC_PATHS_H

#include "targets.h"

/* $XDG_CACHE_HOME/vmexec, or ~/.cache/vmexec; created (0700) if missing.
 * Returns a static string. Fails (125) if there is no home to put it in. */
const char *cache_dir(void);

/* mkdir -p PATH (a directory in the cache); fails (125) with the fix. */
void cache_mkdir(const char *path);

/* cache_dir()/NAME, created; malloc'd. Fails (125) with the fix. */
char *cache_subdir(const char *name);

/* The agent executable for target T: $VMEXEC_AGENT_DIR, else the build tree
 * when vmexec runs from it, else the installed one. Fails (125) with the fix
 * when it does not exist. Returns a malloc'd string. */
char *agent_path(const struct target *t);

/* FILE in image/kernel-configs: a fragment NAME.config or a patch NAME.patch (malloc'd). */
char *kernel_config_path(const char *file);

/* The nbd-share nbdkit plugin: $VMEXEC_SHARE_PLUGIN, else the build tree when
 * vmexec runs from it, else the installed one. NULL when it does not exist.
 * Returns a malloc'd string. */
char *share_plugin_path(void);

/* vmexec-tools, the executable with every command: beside the running
 * vmexec (the build tree, or a copy of both), else the installed one.
 * Returns a malloc'd string. */
char *tools_path(void);

#endif
