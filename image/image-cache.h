/* The image cache: cache_dir()/images/KEY/, where KEY hashes everything the
 * image is made of, holding a minimal image ({kernel,initrd,manifest}) or a
 * full one ({rootfs.img,manifest,firstboot.log}); cache_dir()/images/TARGET
 * and TARGET-full are symlinks to the KEY last built of each kind. Also the
 * discipline every build follows: a lock per key, a staging directory under
 * cache_dir()/tmp renamed into place when whole. */
#ifndef VMEXEC_IMAGE_CACHE_H
#define VMEXEC_IMAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "image-apt.h"
#include "util.h"
#include "targets.h"

/* Bump when the layout or contents of images change in a way the other key
 * inputs do not show, so that old images are not reused. 2: dash, gzip,
 * xz-utils, bzip2, lzop and ed in the minimal image's packages (which are
 * part of image_extra since). */
#define IMAGE_FORMAT 2
/* The same for full images (image-full.c, image-dpkg.c). */
#define IMAGE_FULL_FORMAT 1

#define IMAGE_KEY_LEN 32

/* cache_dir()/images (created). Returns a static string. */
const char *images_dir(void);

/* The extra key input of a minimal image of T (image_key): the agent's bytes,
 * the names of the packages every minimal image has (so that changing that
 * list changes the key), and if KERNEL_KEY is not "" the key of the kernel
 * built from source and that kernel's inputs (kernel_inputs: the image keeps
 * the kernel key it was built with, which a changed patch does not change). */
char *image_extra(const struct target *t, const char *agent, size_t agent_len, const char *kernel_key, size_t *len);

/* XXH3-128 of KIND ("image" for the minimal image, "full") and FORMAT, the
 * target name, the sorted .deb file names (which carry the versions), the
 * --with list and EXTRA (the agent's bytes for the minimal image, the
 * first-boot script for the full one). */
void image_key(const struct target *t, const char *kind, int format, const struct strv *deb_files, const char *with,
               const void *extra, size_t extra_len, char key[IMAGE_KEY_LEN + 1]);

/* Whether DIR's manifest names the key that its packages, its with and
 * EXTRA give again (the image is what this vmexec would build). */
bool image_key_matches(const struct target *t, const char *dir, const char *kind, int format, const void *extra,
                       size_t extra_len);

/* The value of "NAME value" in a manifest text, into buf; 0, or -1 if absent. */
int manifest_value(const char *manifest, const char *name, char *buf, size_t cap);

/* Point cache_dir()/images/LINK at KEY (atomically). */
void image_set_link(const char *link, const char *key);

/* The image cache_dir()/images/LINK points at, if it has a manifest: 0 and
 * dir (PATH_MAX bytes) filled, or -1. */
int image_link_dir(const char *link, char *dir);

/* --with "a, b,a" -> "a,b" (sorted, unique, malloc'd), each name also pushed
 * to PKGS; fails (125) on what is not a Debian package name. */
char *image_with(const char *with, struct strv *pkgs);

/* Whether DIR holds a whole image (its manifest is written last). */
bool image_exists(const char *dir);

/* Lock KEY against other builds of it (waits); returns the lock's fd. */
int image_lock(const char *key);

/* A new staging directory cache_dir()/tmp/build-KEY-XXXXXX (malloc'd),
 * after removing what killed builds of KEY left (call with KEY locked). It
 * is removed when the process exits, also by fail(), unless
 * image_staging_remove(PATH) removed it before (NULL: all of them). */
char *image_staging(const char *key);
void image_staging_remove(const char *path);

/* What a build makes, as far as the cache is concerned. */
struct image_spec {
  const char *kind;         /* the key's: "image" (minimal) or "full" */
  int format;               /* IMAGE_FORMAT or IMAGE_FULL_FORMAT */
  const char *link;         /* cache_dir()/images/LINK names the image last built */
  const char *kernel_meta;  /* the kernel metapackage, or NULL for none */
  const struct strv *pkgs;  /* what apt installs (names or apt patterns) */
  const char *with;         /* the normalized --with list (image_with) */
  const void *extra;        /* more key input (image_key) */
  size_t extra_len;
  bool quiet;
};

/* One build, from the package lists to the image directory renamed into place. */
struct image_job {
  const struct target *t;
  struct image_spec spec;
  struct progress p;
  struct apt_resolution r; /* the packages, and the kernel if any */
  struct strv files;       /* their .deb file names, sorted */
  char key[IMAGE_KEY_LEN + 1];
  char *debs;              /* cache_dir()/debs: the packages of R are there */
  char *staging;           /* an empty staging directory (image_staging) */
  int lock;
};

/* Resolve SPEC's packages and key the image; DIR (PATH_MAX bytes) becomes
 * images_dir()/KEY. Returns false when the cache holds the image (cached, or
 * built meanwhile by another vmexec): then the link is updated and the final
 * line printed. Returns true when it must be built: the key is locked, the
 * packages are downloaded and the staging directory exists. */
bool image_job_start(struct image_job *j, const struct target *t, const struct image_spec *spec, char *dir);

/* The build made OUT (a directory in the staging directory): write
 * OUT/manifest last (target, packages, key, created, with, format, then
 * MANIFEST_LINES, the kind's own "name value\n" lines), move OUT to DIR,
 * point the link at it, print the final line. */
void image_job_finish(struct image_job *j, const char *out, const char *manifest_lines, const char *dir);

/* vmexec image list: prints the images; returns the exit status. */
int images_list(void);

/* vmexec image rm: removes the images of T, or all when T is NULL; the
 * package cache stays. Returns the exit status. */
int images_rm(const struct target *t);

#endif
