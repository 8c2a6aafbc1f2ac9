/* Guest images through OCI registries and as offline bundles: an image of
 * the cache becomes an OCI artifact (image-oci.c gives its schema), pushed
 * and pulled with skopeo, or exported and imported as an OCI layout in a
 * tar. A pulled or imported image enters the cache only whole, after every
 * blob's sha256 was checked and its key found to be the one this vmexec
 * would build; it then is its target's current image of its kind. */
#ifndef VMEXEC_IMAGE_OCI_H
#define VMEXEC_IMAGE_OCI_H

#include <stdbool.h>

#include "oci-transfer.h"
#include "targets.h"

struct oci_options {
  struct oci_registry registry;
  const struct target *want; /* refuse an image of another target; NULL: any */
  bool quiet;                /* no progress lines */
};

/* vmexec image push TARGET [--full] REF: T's current image (the full one
 * with its minimal image when FULL) to REF. Returns the exit status. */
int image_push(const struct target *t, bool full, const char *ref, const struct oci_options *o);

/* vmexec image export TARGET [--full] FILE: the same as a tar. */
int image_export(const struct target *t, bool full, const char *file, const struct oci_options *o);

/* vmexec image pull REF / import FILE. Returns the exit status. */
int image_pull(const char *ref, const struct oci_options *o);
int image_import(const char *file, const struct oci_options *o);

/* Whether an --image value is a registry reference (it has a '/' and only
 * the characters of references), not an image kind. */
bool image_ref_like(const char *s);

/* --image REF on a call: the image REF names, pulled on first use (a later
 * call finds it by REF in the cache); its target into *T and whether it is
 * a full image into *FULL. Fails (125) as a pull does. */
void image_ref_use(const char *ref, const struct oci_options *o, const struct target **t, bool *full);

#endif
