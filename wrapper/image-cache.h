/* The image cache: cache_dir()/images/KEY/{kernel,initrd,manifest}, where KEY
 * hashes everything the image is made of, and cache_dir()/images/TARGET, a
 * symlink to the KEY last built for TARGET. */
#ifndef VMEXEC_IMAGE_CACHE_H
#define VMEXEC_IMAGE_CACHE_H

#include <stddef.h>

#include "image-util.h"
#include "targets.h"

/* Bump when the layout or contents of images change in a way the other key
 * inputs do not show, so that old images are not reused. */
#define IMAGE_FORMAT 1

#define IMAGE_KEY_LEN 32

/* cache_dir()/images (created). Returns a static string. */
const char *images_dir(void);

/* XXH3-128 of the target name, IMAGE_FORMAT, the sorted .deb file names
 * (which carry the versions), the --with list and the agent's bytes. */
void image_key(const struct target *t, const struct strv *deb_files, const char *with, const void *agent,
               size_t agent_len, char key[IMAGE_KEY_LEN + 1]);

/* The value of "NAME value" in a manifest text, into buf; 0, or -1 if absent. */
int manifest_value(const char *manifest, const char *name, char *buf, size_t cap);

/* Point cache_dir()/images/TARGET at KEY (atomically). */
void image_set_current(const struct target *t, const char *key);

/* vmexec image list: prints the images; returns the exit status. */
int images_list(void);

/* vmexec image rm: removes the images of T, or all when T is NULL; the
 * package cache stays. Returns the exit status. */
int images_rm(const struct target *t);

#endif
