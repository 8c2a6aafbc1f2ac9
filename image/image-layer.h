/* The persistent writable layer of a full image (vmexec --image full
 * --persist): an ext4 filesystem image of its own, over the read-only root
 * filesystem, kept under cache_dir()/layers/ until 'vmexec image rm'. */
#ifndef VMEXEC_IMAGE_LAYER_H
#define VMEXEC_IMAGE_LAYER_H

#include "targets.h"

/* The layer of T over the full image in FULL_DIR into LAYER (PATH_MAX),
 * created empty on first use. Fails (125) with the cause and the fix. */
void image_layer(const struct target *t, const char *full_dir, char *layer);

/* Remove the layer of TARGET over the full image KEY, if there is one:
 * 1 removed, 0 none, -1 with errno. */
int image_layer_remove(const char *target, const char *key);

#endif
