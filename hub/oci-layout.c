/* The OCI image layout (see oci-layout.h): content-addressed blobs, sha256 by
 * libcrypto, gzip by zlib, JSON by json-c. A digest is checked to be
 * "sha256:" and 64 hex digits before it becomes a path. */
#include "oci-layout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cleanup.h"
#include "fail.h"
#include "util.h"

#define CHUNK (1 << 20)
/* Manifests and configs are small; anything bigger is not ours. */
#define JSON_MAX (4 << 20)
/* Holes are made of whole blocks of zeroes. */
#define SPARSE_BLOCK 4096

struct sha256 {
  EVP_MD_CTX *ctx;
};

static void sha256_init(struct sha256 *h)
{
  h->ctx = EVP_MD_CTX_new();
  if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
    fail(EXIT_TOOL_FAILED, "libcrypto cannot compute SHA-256; check the installation of libssl");
}

static void sha256_update(struct sha256 *h, const void *data, size_t len)
{
  if (EVP_DigestUpdate(h->ctx, data, len) != 1)
    fail(EXIT_TOOL_FAILED, "libcrypto cannot compute SHA-256; check the installation of libssl");
}

/* "sha256:" and the hex digest, into out (72 bytes). */
static void sha256_final(struct sha256 *h, char out[72])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
    fail(EXIT_TOOL_FAILED, "libcrypto cannot compute SHA-256; check the installation of libssl");
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
  strcpy(out, "sha256:");
  for (unsigned int i = 0; i < n; i++)
    sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

const char *oci_string(struct json_object *obj, const char *name)
{
  struct json_object *v;
  if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

static struct json_object *descriptor(const char *media_type, const char *digest, uint64_t size)
{
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "mediaType", json_object_new_string(media_type));
  json_object_object_add(d, "digest", json_object_new_string(digest));
  json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
  return d;
}

static void write_text(const char *path, const char *text)
{
  if (write_file_atomic(path, text, strlen(text)) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", path, strerror(errno));
}

void oci_layout_init(const char *dir)
{
  CLEANUP_FREE char *blobs = xasprintf("%s/blobs", dir);
  CLEANUP_FREE char *sha = xasprintf("%s/blobs/sha256", dir);
  CLEANUP_FREE char *layout = xasprintf("%s/oci-layout", dir);
  if ((mkdir(dir, 0755) == -1 && errno != EEXIST) || (mkdir(blobs, 0755) == -1 && errno != EEXIST) ||
      (mkdir(sha, 0755) == -1 && errno != EEXIST))
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the permissions", sha, strerror(errno));
  write_text(layout, "{\"imageLayoutVersion\":\"1.0.0\"}");
}

/* A new temporary file in DIR's blobs, opened for writing; its path into tmp. */
static FILE *blob_tmp(const char *dir, char **tmp)
{
  *tmp = xasprintf("%s/blobs/sha256/.tmp-XXXXXX", dir);
  int fd = mkstemp(*tmp);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space", *tmp, strerror(errno));
  return f;
}

/* Close F, the blob TMP whose digest is DIGEST, and give it its name. */
static void blob_commit(const char *dir, FILE *f, const char *tmp, const char *digest)
{
  CLEANUP_FREE char *path = xasprintf("%s/blobs/sha256/%s", dir, digest + 7);
  if (fclose(f) != 0 || rename(tmp, path) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", path, strerror(errno));
}

/* Deflate what Z holds with FLUSH, out to F and into H. */
static void deflate_out(z_stream *z, int flush, FILE *f, struct sha256 *h, unsigned char *out, uint64_t *size,
                        const char *tmp)
{
  do {
    z->next_out = out;
    z->avail_out = CHUNK;
    int r = deflate(z, flush);
    if (r == Z_STREAM_ERROR)
      fail(EXIT_TOOL_FAILED, "zlib cannot compress into %s", tmp);
    size_t n = CHUNK - z->avail_out;
    if (n && fwrite(out, 1, n, f) != n)
      fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", tmp, strerror(errno));
    sha256_update(h, out, n);
    *size += n;
  } while (z->avail_out == 0);
}

struct json_object *oci_blob_put_file(const char *dir, const char *src, const char *media_type)
{
  CLEANUP_CLOSE int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", src, strerror(errno));
  CLEANUP_FREE char *tmp = NULL;
  FILE *f = blob_tmp(dir, &tmp);
  CLEANUP_FREE unsigned char *in = xrealloc(NULL, CHUNK);
  CLEANUP_FREE unsigned char *out = xrealloc(NULL, CHUNK);
  z_stream z = {0};
  /* 15 + 16: a gzip stream, as tar+gzip layers are. */
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail(EXIT_TOOL_FAILED, "zlib cannot compress %s", src);
  struct sha256 h;
  sha256_init(&h);
  uint64_t size = 0;
  for (;;) {
    ssize_t n = read(fd, in, CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail(EXIT_TOOL_FAILED, "cannot read %s: %s", src, strerror(errno));
    z.next_in = in;
    z.avail_in = (uInt)n;
    deflate_out(&z, n == 0 ? Z_FINISH : Z_NO_FLUSH, f, &h, out, &size, tmp);
    if (n == 0)
      break;
  }
  deflateEnd(&z);
  char digest[72];
  sha256_final(&h, digest);
  blob_commit(dir, f, tmp, digest);
  return descriptor(media_type, digest, size);
}

struct json_object *oci_blob_put_json(const char *dir, struct json_object *doc, const char *media_type)
{
  const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  size_t len = strlen(text);
  struct sha256 h;
  sha256_init(&h);
  sha256_update(&h, text, len);
  char digest[72];
  sha256_final(&h, digest);
  CLEANUP_FREE char *tmp = NULL;
  FILE *f = blob_tmp(dir, &tmp);
  if (fwrite(text, 1, len, f) != len)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", tmp, strerror(errno));
  blob_commit(dir, f, tmp, digest);
  return descriptor(media_type, digest, len);
}

void oci_layout_write_index(const char *dir, struct json_object *desc, const char *ref_name)
{
  struct json_object *entry = json_object_get(desc), *ann = json_object_new_object();
  json_object_object_add(ann, OCI_REF_NAME, json_object_new_string(ref_name));
  json_object_object_add(entry, "annotations", ann);
  struct json_object *index = json_object_new_object(), *list = json_object_new_array();
  json_object_array_add(list, entry);
  json_object_object_add(index, "schemaVersion", json_object_new_int(2));
  json_object_object_add(index, "manifests", list);
  CLEANUP_FREE char *path = xasprintf("%s/index.json", dir);
  write_text(path, json_object_to_json_string_ext(index, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(index);
}

/* ---- reading --------------------------------------------------------------- */

/* DESC's digest and size, checked: the blob's path (malloc'd). */
static char *blob_path(const char *dir, struct json_object *desc, const char *what, char digest[72], uint64_t *size)
{
  const char *d = oci_string(desc, "digest");
  struct json_object *s;
  if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71 || strspn(d + 7, "0123456789abcdef") != 64)
    fail(EXIT_TOOL_FAILED, "%s: a blob's digest '%s' is not sha256:HEX; it is not a vmexec image", what,
         d ? d : "(none)");
  if (!json_object_object_get_ex(desc, "size", &s) || !json_object_is_type(s, json_type_int) ||
      json_object_get_int64(s) < 0)
    fail(EXIT_TOOL_FAILED, "%s: blob %s has no valid size; it is not a vmexec image", what, d);
  strcpy(digest, d);
  *size = (uint64_t)json_object_get_int64(s);
  return xasprintf("%s/blobs/sha256/%s", dir, d + 7);
}

static noreturn void corrupt(const char *what, const char *digest, const char *why)
{
  fail(EXIT_TOOL_FAILED, "%s: blob %.19s... is corrupt (%s); nothing was stored, fetch the image again", what, digest,
       why);
}

/* The whole of PATH, LEN bytes expected; NUL-terminated (malloc'd). */
static char *read_checked(const char *path, uint64_t len, const char *digest, const char *what)
{
  if (len > JSON_MAX)
    fail(EXIT_TOOL_FAILED, "%s: a JSON blob of %llu bytes is too big; it is not a vmexec image", what,
         (unsigned long long)len);
  char *data = NULL;
  size_t got = 0;
  if (read_file(path, &data, &got) == -1)
    fail(EXIT_TOOL_FAILED, "%s: cannot read %s: %s; the layout is incomplete", what, path, strerror(errno));
  if (got != len) {
    free(data);
    corrupt(what, digest, "its size is not the one its descriptor gives");
  }
  struct sha256 h;
  char sum[72];
  sha256_init(&h);
  sha256_update(&h, data, got);
  sha256_final(&h, sum);
  if (strcmp(sum, digest) != 0) {
    free(data);
    corrupt(what, digest, "its sha256 does not match its digest");
  }
  return data;
}

static struct json_object *parse(const char *text, const char *name, const char *what)
{
  struct json_object *doc = json_tokener_parse(text);
  if (!doc || !json_object_is_type(doc, json_type_object))
    fail(EXIT_TOOL_FAILED, "%s: %s is not a JSON object; it is not a vmexec image", what, name);
  return doc;
}

struct json_object *oci_blob_json(const char *dir, struct json_object *desc, const char *what)
{
  char digest[72];
  uint64_t size;
  CLEANUP_FREE char *path = blob_path(dir, desc, what, digest, &size);
  CLEANUP_FREE char *text = read_checked(path, size, digest, what);
  return parse(text, digest, what);
}

/* Of index.json's MANIFESTS, the one tagged REF_NAME, else the only one. */
static struct json_object *pick(struct json_object *manifests, const char *ref_name, const char *what)
{
  size_t n = json_object_array_length(manifests);
  for (size_t i = 0; i < n; i++) {
    struct json_object *m = json_object_array_get_idx(manifests, i), *ann;
    const char *name = json_object_object_get_ex(m, "annotations", &ann) ? oci_string(ann, OCI_REF_NAME) : NULL;
    if (name && strcmp(name, ref_name) == 0)
      return m;
  }
  if (n != 1)
    fail(EXIT_TOOL_FAILED, "%s: the layout holds %zu images and none is tagged '%s'; give one vmexec image", what, n,
         ref_name);
  return json_object_array_get_idx(manifests, 0);
}

struct json_object *oci_layout_manifest(const char *dir, const char *ref_name, const char *what)
{
  CLEANUP_FREE char *path = xasprintf("%s/index.json", dir);
  CLEANUP_FREE char *text = NULL;
  if (read_file(path, &text, NULL) == -1)
    fail(EXIT_TOOL_FAILED, "%s: no index.json (%s); it is not an OCI image layout", what, strerror(errno));
  struct json_object *index = parse(text, "index.json", what), *manifests;
  if (!json_object_object_get_ex(index, "manifests", &manifests) || !json_object_is_type(manifests, json_type_array))
    fail(EXIT_TOOL_FAILED, "%s: index.json lists no manifests; it is not an OCI image layout", what);
  struct json_object *desc = pick(manifests, ref_name, what);
  const char *type = oci_string(desc, "mediaType");
  if (!type || strcmp(type, OCI_MANIFEST_TYPE) != 0)
    fail(EXIT_TOOL_FAILED, "%s: its manifest is of type %s, not an OCI image manifest; it is not a vmexec image", what,
         type ? type : "(none)");
  struct json_object *manifest = oci_blob_json(dir, desc, what);
  json_object_put(index);
  return manifest;
}

/* Write the N bytes of BUF to F, seeking over whole blocks of zeroes. */
static void write_sparse(FILE *f, const unsigned char *buf, size_t n, const char *dest)
{
  static const unsigned char zero[SPARSE_BLOCK];
  for (size_t off = 0; off < n; off += SPARSE_BLOCK) {
    size_t k = n - off < SPARSE_BLOCK ? n - off : SPARSE_BLOCK;
    bool hole = k == SPARSE_BLOCK && memcmp(buf + off, zero, k) == 0;
    if (hole ? fseeko(f, (off_t)k, SEEK_CUR) != 0 : fwrite(buf + off, 1, k, f) != k)
      fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", dest, strerror(errno));
  }
}

/* Inflate what Z holds into F: 1 at the stream's end, 0 for more, -1 when
 * it is not a gzip stream (the caller checks the digest first, which names
 * a corrupt blob better). */
static int inflate_some(z_stream *z, unsigned char *out, FILE *f, const char *dest)
{
  int r = Z_OK;
  while (z->avail_in > 0 && r != Z_STREAM_END) {
    z->next_out = out;
    z->avail_out = CHUNK;
    r = inflate(z, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
      return -1;
    write_sparse(f, out, CHUNK - z->avail_out, dest);
  }
  if (r == Z_STREAM_END)
    return z->avail_in > 0 ? -1 : 1; /* nothing may follow the stream */
  return 0;
}

void oci_blob_extract(const char *dir, struct json_object *desc, const char *dest, const char *what)
{
  char digest[72], sum[72];
  uint64_t size, got = 0;
  CLEANUP_FREE char *path = blob_path(dir, desc, what, digest, &size);
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  FILE *f = fopen(dest, "wx");
  if (fd == -1 || !f)
    fail(EXIT_TOOL_FAILED, "%s: cannot %s: %s", what, fd == -1 ? "read a layer's blob" : "write a layer",
         strerror(errno));
  CLEANUP_FREE unsigned char *in = xrealloc(NULL, CHUNK);
  CLEANUP_FREE unsigned char *out = xrealloc(NULL, CHUNK);
  z_stream z = {0};
  if (inflateInit2(&z, 15 + 32) != Z_OK)
    fail(EXIT_TOOL_FAILED, "zlib cannot decompress %s", path);
  struct sha256 h;
  sha256_init(&h);
  int state = 0;
  for (;;) {
    ssize_t n = read(fd, in, CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail(EXIT_TOOL_FAILED, "%s: cannot read %s: %s", what, path, strerror(errno));
    if (n == 0)
      break;
    got += (uint64_t)n;
    sha256_update(&h, in, (size_t)n);
    if (state != 0) {
      state = -1; /* nothing may follow the stream; the digest is still checked first */
      continue;
    }
    z.next_in = in;
    z.avail_in = (uInt)n;
    state = inflate_some(&z, out, f, dest);
  }
  inflateEnd(&z);
  sha256_final(&h, sum);
  if (got != size || strcmp(sum, digest) != 0)
    corrupt(what, digest,
            got != size ? "its size is not the one its descriptor gives" : "its sha256 does not match its digest");
  if (state != 1)
    corrupt(what, digest, state == 0 ? "its gzip stream is cut short" : "it is not a gzip stream");
  /* A file that ends in a hole gets its length from the truncate. */
  off_t len = ftello(f);
  if (fflush(f) != 0 || ftruncate(fileno(f), len) == -1 || fclose(f) != 0)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", dest, strerror(errno));
}
