/* vmexec's images as OCI artifacts (see image-oci.h). One artifact holds one
 * image of the cache with what it boots with:
 *   manifest  annotations dev.vmexec.target, dev.vmexec.kind, dev.vmexec.key
 *   config    CONFIG_TYPE: {"format": ARTIFACT_FORMAT, "target", "kind",
 *             "images": {"minimal": {"key", "manifest"}, ["full": {...}]}},
 *             "manifest" being the text of the image directory's manifest
 *   layers    the files of the image directories, gzip'd, one media type
 *             each (layer_types); annotations: the file's name (OCI title)
 *             and the image it belongs to (dev.vmexec.image)
 * A full image's artifact carries the minimal image too: its kernel and
 * agent boot it. The transfers use a layout directory in a staging directory
 * of the cache (image_staging), so that a killed push or pull leaves nothing
 * that the next one does not remove. */
#include "image-oci.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "image-cache.h"
#include "image-dpkg.h"
#include "image.h"
#include "image-full.h"
#include "oci-layout.h"
#include "paths.h"
#include "util.h"

#define CONFIG_TYPE "application/vnd.vmexec.image.config.v1+json"
/* Bump when the artifact's schema changes; pulls refuse other formats. */
#define ARTIFACT_FORMAT 1
/* The tag of the image in our layout directories. */
#define LAYOUT_TAG "vmexec"
#define ANNOTATION_IMAGE "dev.vmexec.image"

static const struct layer_type {
  const char *image; /* "minimal" or "full" */
  const char *file;  /* in the image directory */
  const char *media_type;
  bool optional;
} layer_types[] = {
  {"minimal", "kernel", "application/vnd.vmexec.kernel.v1+gzip", false},
  {"minimal", "initrd", "application/vnd.vmexec.initrd.v1.cpio+gzip", false},
  {"full", "rootfs.img", "application/vnd.vmexec.rootfs.v1.ext4+gzip", false},
  /* The guest's memory after its boot, restored instead of booting, where
   * an image has one (none has yet): it travels as any other layer. */
  {"minimal", "memory.snapshot", "application/vnd.vmexec.snapshot.v1+gzip", true},
  {"full", "memory.snapshot", "application/vnd.vmexec.snapshot.v1+gzip", true},
};
#define N_LAYER_TYPES (sizeof layer_types / sizeof layer_types[0])

static const char *const image_names[] = {"minimal", "full"};

/* The work area of one transfer: the staging directory and its layout. */
struct transfer {
  int lock;
  char *staging;
  char *layout;
};

/* Every transfer holds the one lock "oci" (they are rare and long): the
 * staging directories it removes are those of killed transfers. */
static void transfer_start(struct transfer *x)
{
  x->lock = image_lock("oci");
  x->staging = image_staging("oci");
  x->layout = xasprintf("%s/layout", x->staging);
}

static void transfer_end(struct transfer *x)
{
  image_staging_remove(x->staging);
  free(x->staging);
  free(x->layout);
  close(x->lock);
}

/* A progress line, as a build's steps: on a terminal only, so that a
 * failure is the one line on stderr of a script or a harness. */
static void say(const struct oci_options *o, const char *fmt, const char *a, const char *b)
{
  if (!o->quiet && isatty(STDERR_FILENO)) {
    fputs("vmexec: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
  }
}

/* ---- writing an artifact ----------------------------------------------------- */

/* DIR's manifest without its "source" line: where this cache got the image
 * from is no part of the image. */
static char *image_manifest(const char *dir)
{
  CLEANUP_FREE char *path = xasprintf("%s/manifest", dir);
  CLEANUP_FREE char *text = NULL;
  if (read_file(path, &text, NULL) == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s; build the image again", path, strerror(errno));
  struct strv lines = {0};
  char *save = NULL;
  for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
    if (strncmp(l, "source ", 7) != 0 && strcmp(l, "source") != 0)
      strv_pushf(&lines, "%s\n", l);
  char *out = strv_join(&lines, "");
  strv_free(&lines);
  return out;
}

/* The layers of the image NAME in DIR, added to LAYERS; its entry to IMAGES. */
static void pack_image(const char *layout, const char *name, const char *dir, struct json_object *layers,
                       struct json_object *images, char key[IMAGE_KEY_LEN + 1])
{
  CLEANUP_FREE char *manifest = image_manifest(dir);
  if (manifest_value(manifest, "key", key, IMAGE_KEY_LEN + 1) != 0)
    fail(EXIT_TOOL_FAILED, "%s/manifest names no key; build the image again", dir);
  struct json_object *entry = json_object_new_object();
  json_object_object_add(entry, "key", json_object_new_string(key));
  json_object_object_add(entry, "manifest", json_object_new_string(manifest));
  json_object_object_add(images, name, entry);
  for (size_t i = 0; i < N_LAYER_TYPES; i++) {
    const struct layer_type *l = &layer_types[i];
    CLEANUP_FREE char *path = xasprintf("%s/%s", dir, l->file);
    if (strcmp(l->image, name) != 0 || (l->optional && access(path, F_OK) != 0))
      continue;
    struct json_object *desc = oci_blob_put_file(layout, path, l->media_type), *ann = json_object_new_object();
    json_object_object_add(ann, OCI_TITLE, json_object_new_string(l->file));
    json_object_object_add(ann, ANNOTATION_IMAGE, json_object_new_string(name));
    json_object_object_add(desc, "annotations", ann);
    json_object_array_add(layers, desc);
  }
}

/* The image directories of T to pack: the minimal one, and the full one. */
static void current_images(const struct target *t, bool full, char dirs[2][PATH_MAX])
{
  if (image_current(t, dirs[0]) != 0)
    fail(EXIT_TOOL_FAILED, "no current %s image in %s; build it with 'vmexec image build %s'", t->name, images_dir(),
         t->name);
  if (full && image_full_current(t, dirs[1]) != 0)
    fail(EXIT_TOOL_FAILED, "no current %s full image in %s; build it with 'vmexec image build %s --full'", t->name,
         images_dir(), t->name);
}

/* T's current image as an artifact in the layout LAYOUT (made here). */
static void write_artifact(const struct target *t, bool full, const char *layout)
{
  char dirs[2][PATH_MAX], key[IMAGE_KEY_LEN + 1];
  current_images(t, full, dirs);
  oci_layout_init(layout);
  struct json_object *layers = json_object_new_array(), *images = json_object_new_object();
  for (int i = 0; i <= (int)full; i++)
    pack_image(layout, image_names[i], dirs[i], layers, images, key);

  const char *kind = image_names[full];
  struct json_object *config = json_object_new_object();
  json_object_object_add(config, "format", json_object_new_int(ARTIFACT_FORMAT));
  json_object_object_add(config, "target", json_object_new_string(t->name));
  json_object_object_add(config, "kind", json_object_new_string(kind));
  json_object_object_add(config, "images", images);
  struct json_object *manifest = json_object_new_object(), *ann = json_object_new_object();
  json_object_object_add(manifest, "schemaVersion", json_object_new_int(2));
  json_object_object_add(manifest, "mediaType", json_object_new_string(OCI_MANIFEST_TYPE));
  json_object_object_add(manifest, "config", oci_blob_put_json(layout, config, CONFIG_TYPE));
  json_object_object_add(manifest, "layers", layers);
  json_object_object_add(ann, "dev.vmexec.target", json_object_new_string(t->name));
  json_object_object_add(ann, "dev.vmexec.kind", json_object_new_string(kind));
  json_object_object_add(ann, "dev.vmexec.key", json_object_new_string(key));
  json_object_object_add(manifest, "annotations", ann);
  struct json_object *desc = oci_blob_put_json(layout, manifest, OCI_MANIFEST_TYPE);
  oci_layout_write_index(layout, desc, LAYOUT_TAG);
  json_object_put(desc);
  json_object_put(manifest);
  json_object_put(config);
}

int image_push(const struct target *t, bool full, const char *ref, const struct oci_options *o)
{
  struct transfer x;
  transfer_start(&x);
  say(o, "packing the %s image of %s", full ? "full" : "minimal", t->name);
  write_artifact(t, full, x.layout);
  say(o, "pushing to %s%s", ref, "");
  oci_registry_push(&o->registry, x.layout, LAYOUT_TAG, ref);
  transfer_end(&x);
  printf("pushed %s %s image to %s\n", t->name, full ? "full" : "minimal", ref);
  return 0;
}

int image_export(const struct target *t, bool full, const char *file, const struct oci_options *o)
{
  struct transfer x;
  transfer_start(&x);
  say(o, "packing the %s image of %s", full ? "full" : "minimal", t->name);
  write_artifact(t, full, x.layout);
  oci_tar_write(x.layout, file);
  transfer_end(&x);
  printf("exported %s %s image to %s\n", t->name, full ? "full" : "minimal", file);
  return 0;
}

/* ---- reading an artifact ----------------------------------------------------- */

/* What an artifact says, checked. */
struct artifact {
  const struct target *t;
  bool full;
  char keys[2][IMAGE_KEY_LEN + 1]; /* of the minimal and the full image */
  char *manifests[2];              /* their manifests' text */
};

static bool is_key(const char *s)
{
  return s && strlen(s) == IMAGE_KEY_LEN && strspn(s, "0123456789abcdef") == IMAGE_KEY_LEN;
}

/* The entry of the image NAME in CONFIG's images, into A (index I). */
static void read_image_entry(struct json_object *images, int i, struct artifact *a, const char *what)
{
  struct json_object *e;
  if (!json_object_object_get_ex(images, image_names[i], &e))
    fail(EXIT_TOOL_FAILED, "%s: the artifact has no %s image; it is not a vmexec image", what, image_names[i]);
  const char *key = oci_string(e, "key"), *manifest = oci_string(e, "manifest");
  if (!is_key(key) || !manifest)
    fail(EXIT_TOOL_FAILED, "%s: the %s image's key or manifest is missing; it is not a vmexec image", what,
         image_names[i]);
  char v[64] = "";
  /* The directory's manifest must say what the artifact says. */
  if (manifest_value(manifest, "target", v, sizeof v) != 0 || strcmp(v, a->t->name) != 0 ||
      manifest_value(manifest, "key", v, sizeof v) != 0 || strcmp(v, key) != 0)
    fail(EXIT_TOOL_FAILED, "%s: the %s image's manifest does not match the artifact; it is not a vmexec image", what,
         image_names[i]);
  snprintf(a->keys[i], sizeof a->keys[i], "%s", key);
  a->manifests[i] = xstrdup(manifest);
}

/* The config of MANIFEST in LAYOUT, checked against this vmexec: into A. */
static void read_config(const char *layout, struct json_object *manifest, const struct oci_options *o,
                        struct artifact *a, const char *what)
{
  struct json_object *desc, *config, *format, *images;
  const char *type = json_object_object_get_ex(manifest, "config", &desc) ? oci_string(desc, "mediaType") : NULL;
  if (!type || strcmp(type, CONFIG_TYPE) != 0)
    fail(EXIT_TOOL_FAILED, "%s is not a vmexec image (its config is %s); give a reference pushed by 'vmexec image push'",
         what, type ? type : "missing");
  config = oci_blob_json(layout, desc, what);
  if (!json_object_object_get_ex(config, "format", &format) || !json_object_is_type(format, json_type_int) ||
      json_object_get_int(format) != ARTIFACT_FORMAT)
    fail(EXIT_TOOL_FAILED, "%s: vmexec image format %s is unknown to this vmexec (it reads %d); use the vmexec that "
         "pushed it", what, format ? json_object_get_string(format) : "(none)", ARTIFACT_FORMAT);
  const char *target = oci_string(config, "target"), *kind = oci_string(config, "kind");
  a->t = target ? target_by_name(target) : NULL;
  if (!a->t)
    fail(EXIT_TOOL_FAILED, "%s: target '%s' is unknown to this vmexec; the targets are: %s", what,
         target ? target : "(none)", target_names());
  if (o->want && o->want != a->t)
    fail(EXIT_TOOL_FAILED, "%s holds a %s image, not %s; give a reference of a %s image", what, a->t->name,
         o->want->name, o->want->name);
  if (!kind || (strcmp(kind, "minimal") != 0 && strcmp(kind, "full") != 0))
    fail(EXIT_TOOL_FAILED, "%s: image kind '%s' is unknown to this vmexec", what, kind ? kind : "(none)");
  a->full = strcmp(kind, "full") == 0;
  if (!json_object_object_get_ex(config, "images", &images))
    fail(EXIT_TOOL_FAILED, "%s: the artifact lists no images; it is not a vmexec image", what);
  for (int i = 0; i <= (int)a->full; i++)
    read_image_entry(images, i, a, what);
  json_object_put(config);
}

/* The layer type of DESC, or fail: an unknown layer is an unknown format. */
static const struct layer_type *layer_type(struct json_object *desc, const struct artifact *a, const char *what)
{
  struct json_object *ann = NULL;
  json_object_object_get_ex(desc, "annotations", &ann);
  const char *type = oci_string(desc, "mediaType");
  const char *file = ann ? oci_string(ann, OCI_TITLE) : NULL, *image = ann ? oci_string(ann, ANNOTATION_IMAGE) : NULL;
  for (size_t i = 0; i < N_LAYER_TYPES; i++) {
    const struct layer_type *l = &layer_types[i];
    if (type && file && image && strcmp(type, l->media_type) == 0 && strcmp(file, l->file) == 0 &&
        strcmp(image, l->image) == 0 && (a->full || strcmp(image, "full") != 0))
      return l;
  }
  fail(EXIT_TOOL_FAILED, "%s: layer %s (%s) is unknown to this vmexec; use the vmexec that pushed it", what,
       file ? file : "(untitled)", type ? type : "no media type");
}

/* Every layer of MANIFEST, checked, into STAGING/minimal and STAGING/full. */
static void extract_layers(const char *layout, struct json_object *manifest, const struct artifact *a,
                           const char *staging, const char *what)
{
  struct json_object *layers;
  if (!json_object_object_get_ex(manifest, "layers", &layers) || !json_object_is_type(layers, json_type_array))
    fail(EXIT_TOOL_FAILED, "%s: the manifest lists no layers; it is not a vmexec image", what);
  for (int i = 0; i <= (int)a->full; i++) {
    CLEANUP_FREE char *dir = xasprintf("%s/%s", staging, image_names[i]);
    if (mkdir(dir, 0755) == -1)
      fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space", dir, strerror(errno));
  }
  for (size_t i = 0; i < json_object_array_length(layers); i++) {
    struct json_object *desc = json_object_array_get_idx(layers, i);
    const struct layer_type *l = layer_type(desc, a, what);
    CLEANUP_FREE char *dest = xasprintf("%s/%s/%s", staging, l->image, l->file);
    if (access(dest, F_OK) == 0)
      fail(EXIT_TOOL_FAILED, "%s: layer %s of the %s image comes twice; it is not a vmexec image", what, l->file,
           l->image);
    oci_blob_extract(layout, desc, dest, what);
  }
  for (size_t i = 0; i < N_LAYER_TYPES; i++) {
    const struct layer_type *l = &layer_types[i];
    CLEANUP_FREE char *dest = xasprintf("%s/%s/%s", staging, l->image, l->file);
    if (!l->optional && (a->full || strcmp(l->image, "full") != 0) && access(dest, F_OK) != 0)
      fail(EXIT_TOOL_FAILED, "%s: the %s image has no %s layer; it is not a vmexec image", what, l->image, l->file);
  }
}

/* Whether DIR holds an image this vmexec would build: its manifest gives its
 * key again with this vmexec's agent (minimal) or first-boot script (full). */
static bool image_ours(const struct target *t, const char *dir, bool full)
{
  if (full)
    return image_key_matches(t, dir, "full", IMAGE_FULL_FORMAT, dpkg_firstboot_script, strlen(dpkg_firstboot_script));
  CLEANUP_FREE char *agent = agent_path(t);
  if (access(agent, R_OK) == -1)
    fail(EXIT_TOOL_FAILED, "cannot read the guest agent %s: %s; rebuild vmexec", agent, strerror(errno));
  return image_is_ours(t, dir); /* as image_current judges the cache's: with the kernel key, if any */
}

/* STAGING/NAME gets its manifest, with where it comes from, and must be
 * what this vmexec would build. */
static void prepare_image(const struct artifact *a, int i, const char *staging, const char *source, const char *what)
{
  CLEANUP_FREE char *staged = xasprintf("%s/%s", staging, image_names[i]);
  CLEANUP_FREE char *mpath = xasprintf("%s/manifest", staged);
  size_t n = strlen(a->manifests[i]);
  const char *nl = n && a->manifests[i][n - 1] != '\n' ? "\n" : "";
  CLEANUP_FREE char *text = xasprintf("%s%ssource %s\n", a->manifests[i], nl, source);
  if (write_file_atomic(mpath, text, strlen(text)) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space in %s", mpath, strerror(errno), cache_dir());
  if (!image_ours(a->t, staged, i == 1))
    fail(EXIT_TOOL_FAILED, "%s: its %s %s image was made by another vmexec (its key is not this vmexec's); push it "
         "again with this vmexec", what, a->t->name, image_names[i]);
}

/* STAGING/NAME renamed to images/KEY (unless the cache has that image
 * already), which becomes the current image of its kind. */
static void place_image(const struct artifact *a, int i, const char *staging)
{
  CLEANUP_FREE char *staged = xasprintf("%s/%s", staging, image_names[i]);
  CLEANUP_FREE char *dir = xasprintf("%s/%s", images_dir(), a->keys[i]);
  if (!image_exists(dir)) {
    int lock = image_lock(a->keys[i]);
    if (!image_exists(dir) && rename(staged, dir) == -1)
      fail(EXIT_TOOL_FAILED, "cannot move the image to %s: %s; check the permissions of %s", dir, strerror(errno),
           images_dir());
    close(lock);
  }
  CLEANUP_FREE char *link = i == 1 ? xasprintf("%s-full", a->t->name) : xstrdup(a->t->name);
  image_set_link(link, a->keys[i]);
}

/* The artifact in X's layout into the cache; its description into A. */
static void install(struct transfer *x, const char *source, const char *what, const struct oci_options *o,
                    struct artifact *a)
{
  struct json_object *manifest = oci_layout_manifest(x->layout, LAYOUT_TAG, what);
  read_config(x->layout, manifest, o, a, what);
  extract_layers(x->layout, manifest, a, x->staging, what);
  json_object_put(manifest);
  /* Everything is checked before anything is renamed into the cache; the
   * minimal image first, which boots the full one. */
  for (int i = 0; i <= (int)a->full; i++)
    prepare_image(a, i, x->staging, source, what);
  for (int i = 0; i <= (int)a->full; i++)
    place_image(a, i, x->staging);
}

static void artifact_free(struct artifact *a)
{
  free(a->manifests[0]);
  free(a->manifests[1]);
}

/* ---- pull, import and --image REF ------------------------------------------ */

/* cache_dir()/refs/NAME records what REF was pulled as ("target T\nkind
 * K\nkey KEY\n"), so that calls with --image REF pull only once. NAME is REF
 * with '/' as '+' (references have no '+'); NULL when too long to record. */
static char *ref_record(const char *ref)
{
  if (strlen(ref) > NAME_MAX - 8)
    return NULL;
  CLEANUP_FREE char *name = xstrdup(ref);
  for (char *p = name; *p; p++)
    if (*p == '/')
      *p = '+';
  return xasprintf("%s/refs/%s", cache_dir(), name);
}

static void ref_remember(const char *ref, const struct artifact *a)
{
  CLEANUP_FREE char *path = ref_record(ref);
  CLEANUP_FREE char *dir = xasprintf("%s/refs", cache_dir());
  CLEANUP_FREE char *text =
    xasprintf("target %s\nkind %s\nkey %s\n", a->t->name, image_names[a->full], a->keys[a->full]);
  if (path && (mkdir(dir, 0755) == 0 || errno == EEXIST))
    write_file_atomic(path, text, strlen(text)); /* only an optimisation: without it, calls pull again */
}

/* What REF was pulled as, if that image is still in the cache and current
 * (the link of its kind is pointed at it again): true with *T and *FULL. */
static bool ref_recalled(const char *ref, const struct target **t, bool *full)
{
  CLEANUP_FREE char *path = ref_record(ref);
  CLEANUP_FREE char *text = NULL;
  char target[32], kind[16], key[IMAGE_KEY_LEN + 1], dir[PATH_MAX];
  if (!path || read_file(path, &text, NULL) == -1 || manifest_value(text, "target", target, sizeof target) != 0 ||
      manifest_value(text, "kind", kind, sizeof kind) != 0 || manifest_value(text, "key", key, sizeof key) != 0 ||
      !is_key(key) || !(*t = target_by_name(target)))
    return false;
  *full = strcmp(kind, "full") == 0;
  CLEANUP_FREE char *image = xasprintf("%s/%s", images_dir(), key);
  if (!image_exists(image))
    return false;
  CLEANUP_FREE char *link = *full ? xasprintf("%s-full", target) : xstrdup(target);
  if (image_link_dir(link, dir) != 0 || strcmp(dir, image) != 0)
    image_set_link(link, key);
  if (image_current(*t, dir) != 0)
    return false;
  return !*full || image_full_current(*t, dir) == 0;
}

static void report(const struct artifact *a, const char *verb, const char *from)
{
  printf("%s %s %s image %s from %s\n", verb, a->t->name, image_names[a->full], a->keys[a->full], from);
}

/* Pull REF (the "oci" lock held by the caller): into the cache, into A. */
static void pull(struct transfer *x, const char *ref, const struct oci_options *o, struct artifact *a)
{
  say(o, "pulling %s%s", ref, "");
  oci_registry_pull(&o->registry, ref, x->layout, LAYOUT_TAG);
  CLEANUP_FREE char *source = xasprintf("pulled %s", ref);
  install(x, source, ref, o, a);
  ref_remember(ref, a);
}

int image_pull(const char *ref, const struct oci_options *o)
{
  struct transfer x;
  struct artifact a = {0};
  transfer_start(&x);
  pull(&x, ref, o, &a);
  transfer_end(&x);
  report(&a, "pulled", ref);
  artifact_free(&a);
  return 0;
}

int image_import(const char *file, const struct oci_options *o)
{
  char abs[PATH_MAX];
  if (!realpath(file, abs))
    fail(EXIT_TOOL_FAILED, "image import: cannot read %s: %s", file, strerror(errno));
  struct transfer x;
  struct artifact a = {0};
  transfer_start(&x);
  oci_tar_read(abs, x.layout);
  CLEANUP_FREE char *source = xasprintf("imported %s", abs);
  install(&x, source, abs, o, &a);
  transfer_end(&x);
  report(&a, "imported", abs);
  artifact_free(&a);
  return 0;
}

bool image_ref_like(const char *s)
{
  if (strncmp(s, "docker://", 9) == 0)
    s += 9;
  return strchr(s, '/') && s[0] != '/' && s[0] != '.' &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@") == strlen(s);
}

void image_ref_use(const char *ref, const struct oci_options *o, const struct target **t, bool *full)
{
  if (!ref_recalled(ref, t, full)) {
    struct transfer x;
    transfer_start(&x);
    /* Another call may have pulled it while we waited for the lock. */
    if (!ref_recalled(ref, t, full)) {
      struct artifact a = {0};
      pull(&x, ref, o, &a);
      *t = a.t;
      *full = a.full;
      artifact_free(&a);
    }
    transfer_end(&x);
  }
  if (o->want && o->want != *t)
    fail(EXIT_TOOL_FAILED, "%s holds a %s image, not %s; give a reference of a %s image", ref, (*t)->name,
         o->want->name, o->want->name);
}
