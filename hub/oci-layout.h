/* The OCI image layout on disk (image-spec's image-layout.md): DIR/oci-layout,
 * DIR/index.json and DIR/blobs/sha256/HEX. Writing puts files in as gzip'd
 * blobs and JSON documents as blobs, then the index; reading checks every
 * blob's size and sha256 against its descriptor before its bytes are used.
 * Knows nothing of vmexec's images (image-oci.c gives the schema). Failures
 * are one line and exit 125 (fail()). */
#ifndef VMEXEC_OCI_LAYOUT_H
#define VMEXEC_OCI_LAYOUT_H

#include <stdint.h>

#include <json-c/json.h>

#define OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define OCI_TITLE "org.opencontainers.image.title"
#define OCI_REF_NAME "org.opencontainers.image.ref.name"

/* Make DIR/blobs/sha256 and DIR/oci-layout. */
void oci_layout_init(const char *dir);

/* The file SRC, gzip'd, as a blob of DIR: a new descriptor (mediaType
 * MEDIA_TYPE, digest, size). Holes of a sparse SRC cost no disk space. */
struct json_object *oci_blob_put_file(const char *dir, const char *src, const char *media_type);

/* JSON document DOC as a blob of DIR: its descriptor. */
struct json_object *oci_blob_put_json(const char *dir, struct json_object *doc, const char *media_type);

/* DIR/index.json naming the manifest DESC (tagged REF_NAME). */
void oci_layout_write_index(const char *dir, struct json_object *desc, const char *ref_name);

/* The image manifest of DIR: the one of index.json's manifests tagged
 * REF_NAME, else the only one; checked and parsed (put it). WHAT names the
 * layout in messages (a reference or a file). */
struct json_object *oci_layout_manifest(const char *dir, const char *ref_name, const char *what);

/* The JSON blob DESC names, checked and parsed (put it). */
struct json_object *oci_blob_json(const char *dir, struct json_object *desc, const char *what);

/* Inflate the gzip'd blob DESC names into DEST (sparse: runs of zero blocks
 * become holes), checking its size and sha256 as it is read; a mismatch
 * fails before the caller can use DEST. */
void oci_blob_extract(const char *dir, struct json_object *desc, const char *dest, const char *what);

/* The string member NAME of OBJ, or NULL. */
const char *oci_string(struct json_object *obj, const char *name);

#endif
