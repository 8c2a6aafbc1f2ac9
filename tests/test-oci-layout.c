/* Drives hub/oci-layout.c for test-oci-layout.py, no registry, no guest:
 *   test-oci-layout write LAYOUT FILE   FILE as the one layer of an image
 *   test-oci-layout read LAYOUT DEST    that layer, checked, into DEST
 * Failures are oci-layout.c's: one line, status 125. */
#include <stdio.h>
#include <string.h>

#include "oci-layout.h"

#define LAYER_TYPE "application/vnd.vmexec.test.v1+gzip"

static int write_layout(const char *layout, const char *file)
{
  oci_layout_init(layout);
  struct json_object *config = json_object_new_object(), *layers = json_object_new_array();
  json_object_object_add(config, "test", json_object_new_boolean(1));
  json_object_array_add(layers, oci_blob_put_file(layout, file, LAYER_TYPE));
  struct json_object *manifest = json_object_new_object();
  json_object_object_add(manifest, "schemaVersion", json_object_new_int(2));
  json_object_object_add(manifest, "mediaType", json_object_new_string(OCI_MANIFEST_TYPE));
  json_object_object_add(manifest, "config", oci_blob_put_json(layout, config, "application/vnd.vmexec.test+json"));
  json_object_object_add(manifest, "layers", layers);
  struct json_object *desc = oci_blob_put_json(layout, manifest, OCI_MANIFEST_TYPE);
  oci_layout_write_index(layout, desc, "test");
  json_object_put(desc);
  json_object_put(manifest);
  json_object_put(config);
  return 0;
}

static int read_layout(const char *layout, const char *dest)
{
  struct json_object *manifest = oci_layout_manifest(layout, "test", layout), *config, *layers;
  json_object_object_get_ex(manifest, "config", &config);
  json_object_put(oci_blob_json(layout, config, layout));
  json_object_object_get_ex(manifest, "layers", &layers);
  oci_blob_extract(layout, json_object_array_get_idx(layers, 0), dest, layout);
  json_object_put(manifest);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc == 4 && strcmp(argv[1], "write") == 0)
    return write_layout(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "read") == 0)
    return read_layout(argv[2], argv[3]);
  fputs("usage: test-oci-layout write|read LAYOUT FILE\n", stderr);
  return 2;
}
