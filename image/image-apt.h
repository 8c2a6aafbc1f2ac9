/* Debian packages of a target architecture without root and without touching
 * the host's apt or dpkg state: a private apt state directory per Debian
 * architecture under cache_dir()/apt/ARCH (its own package lists, an empty
 * dpkg status, copies of the host's sources and apt.conf.d with the host's
 * hook scripts cleared), and one .deb cache shared by every target. */
#ifndef VMEXEC_IMAGE_APT_H
#define VMEXEC_IMAGE_APT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "util.h"
#include "targets.h"

/* One package as apt-get download names its file: NAME_VERSION_ARCH.deb,
 * with the epoch colon written as %3a. */
struct deb {
  char *name, *version, *arch, *file;
};

struct apt_resolution {
  struct deb kernel;  /* the real linux-image-VERSION-FLAVOUR package (all NULL when none was asked for) */
  struct deb *debs;   /* the user-space packages and their dependency closure */
  size_t n;
};

struct apt {
  const struct target *t;
  char dir[PATH_MAX];  /* cache_dir()/apt/ARCH */
  struct strv opts;    /* the -o options every apt call gets */
  int lock_fd;         /* flock on dir/lock while we use the state */
  bool quiet;
};

/* Prepare (and lock) the private state for T; refresh the package lists when
 * they are missing, older than a day or the host's sources changed. Without
 * network, existing lists are used as they are. Fails (exit 125) with a fix. */
void apt_open(struct apt *a, const struct target *t, bool quiet);

/* Resolve KERNEL_META (unless NULL) to its kernel package, and PKGS (names
 * or apt patterns such as ?essential) to their closure (without recommends),
 * from the lists; R->debs is in apt's installation order. Cached per request
 * until the lists are refreshed, so a repeated build runs no apt at all. */
void apt_resolve(struct apt *a, const char *kernel_meta, const struct strv *pkgs, struct apt_resolution *r);

/* Make sure every package of R is in DEBS_DIR; returns how many were downloaded. */
size_t apt_download(struct apt *a, const struct apt_resolution *r, const char *debs_dir,
                    void (*announce)(size_t missing, void *arg), void *arg);

/* Release the lock and free A. */
void apt_close(struct apt *a);

void apt_resolution_free(struct apt_resolution *r);

#endif
