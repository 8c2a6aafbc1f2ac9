/* Moving an OCI image layout directory: to and from a registry with skopeo
 * (its authentication: --authfile, REGISTRY_AUTH_FILE, ~/.docker/config.json,
 * 'skopeo login'; its TLS rules), and to and from a tar file (libarchive),
 * the same bytes as skopeo's oci-archive: transport. Failures are one line
 * and exit 125 (fail()). */
#ifndef VMEXEC_OCI_TRANSFER_H
#define VMEXEC_OCI_TRANSFER_H

#include <stdbool.h>

struct oci_registry {
  const char *authfile; /* skopeo --authfile, or NULL */
  bool tls_verify_off;  /* --tls-verify=false, only when the user says so */
};

/* REF with the docker:// transport skopeo needs (malloc'd); REF may carry it. */
char *oci_docker_ref(const char *ref);

/* skopeo copy oci:LAYOUT:TAG docker://REF */
void oci_registry_push(const struct oci_registry *r, const char *layout, const char *tag, const char *ref);

/* skopeo copy docker://REF oci:LAYOUT:TAG (LAYOUT need not exist). */
void oci_registry_pull(const struct oci_registry *r, const char *ref, const char *layout, const char *tag);

/* The layout directory LAYOUT as the tar FILE (written whole, then renamed). */
void oci_tar_write(const char *layout, const char *file);

/* The tar FILE unpacked into LAYOUT (created): only oci-layout, index.json
 * and blobs/sha256/HEX are taken, anything else is refused. */
void oci_tar_read(const char *file, const char *layout);

#endif
