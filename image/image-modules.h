/* Which kernel modules the guest loads, and in which order, found from the
 * modules themselves (their .modinfo sections) rather than by running the
 * host's depmod/modprobe, which may not know the target's ELF flavour. */
#ifndef VMEXEC_IMAGE_MODULES_H
#define VMEXEC_IMAGE_MODULES_H

#include <stddef.h>

#include "util.h"

/* Resolve the modules WANTED (names) of the kernel tree MODDIR
 * (ROOT/lib/modules/VERSION): their hard dependencies (depends=) and soft
 * ones (softdep=, where a name that is no module is an alias, and every
 * module providing it is taken). Built-in modules (modules.builtin) are
 * skipped. Appends to ORDER the module paths relative to MODDIR, dependencies
 * first. Fails (exit 125) when a wanted module or a hard dependency is
 * neither present nor built in. */
void modules_resolve(const char *moddir, const char *const *wanted, size_t n_wanted, struct strv *order);

/* The size of a module file without its appended signature (the kernel
 * checks no signatures here, and unsigned modules load faster under TCG). */
size_t module_unsigned_size(const unsigned char *data, size_t size);

#endif
