#include "image-cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cleanup.h"
#include "fail.h"
#include "image-kernel.h"
#include "image-layer.h"
#include "image.h"
#include "fsutil.h"
#include "paths.h"

const char *images_dir(void)
{
  static char *dir;
  if (!dir)
    dir = cache_subdir("images");
  return dir;
}

void image_key(const struct target *t, const char *kind, int format, const struct strv *deb_files, const char *with,
               const void *extra, size_t extra_len, char key[IMAGE_KEY_LEN + 1])
{
  XXH3_state_t *h = XXH3_createState();
  if (!h)
    fail(EXIT_TOOL_FAILED, "out of memory");
  XXH3_128bits_reset(h);
  CLEANUP_FREE char *version = xasprintf("vmexec-%s-%d", kind, format);
  /* Every string with its NUL, so that no two different inputs hash the same bytes. */
  XXH3_128bits_update(h, version, strlen(version) + 1);
  XXH3_128bits_update(h, t->name, strlen(t->name) + 1);
  for (size_t i = 0; i < deb_files->n; i++)
    XXH3_128bits_update(h, deb_files->v[i], strlen(deb_files->v[i]) + 1);
  XXH3_128bits_update(h, "", 1);
  XXH3_128bits_update(h, with ? with : "", strlen(with ? with : "") + 1);
  XXH3_128bits_update(h, extra, extra_len);
  XXH128_hash_t sum = XXH3_128bits_digest(h);
  XXH3_freeState(h);
  snprintf(key, IMAGE_KEY_LEN + 1, "%016llx%016llx", (unsigned long long)sum.high64, (unsigned long long)sum.low64);
}

bool image_key_matches(const struct target *t, const char *dir, const char *kind, int format, const void *extra,
                       size_t extra_len)
{
  CLEANUP_FREE char *manifest_path = xasprintf("%s/manifest", dir);
  CLEANUP_FREE char *manifest = NULL;
  size_t len;
  if (read_file(manifest_path, &manifest, &len) == -1)
    return false;
  static char packages[65536];
  char with[1024] = "", key[IMAGE_KEY_LEN + 1], want[IMAGE_KEY_LEN + 1];
  if (manifest_value(manifest, "packages", packages, sizeof packages) != 0 ||
      manifest_value(manifest, "key", key, sizeof key) != 0)
    return false;
  manifest_value(manifest, "with", with, sizeof with);
  struct strv files = {0};
  char *save = NULL;
  for (char *w = strtok_r(packages, " ", &save); w; w = strtok_r(NULL, " ", &save))
    strv_push(&files, w);
  strv_sort_unique(&files);
  image_key(t, kind, format, &files, with, extra, extra_len, want);
  strv_free(&files);
  return strcmp(key, want) == 0;
}

int manifest_value(const char *manifest, const char *name, char *buf, size_t cap)
{
  size_t k = strlen(name);
  for (const char *p = manifest; *p;) {
    size_t n = strcspn(p, "\n");
    if (n > k && strncmp(p, name, k) == 0 && p[k] == ' ') {
      snprintf(buf, cap, "%.*s", (int)(n - k - 1), p + k + 1);
      return 0;
    }
    if (n == k && strncmp(p, name, k) == 0) {
      snprintf(buf, cap, "%s", "");
      return 0;
    }
    p += n;
    if (*p)
      p++;
  }
  return -1;
}

void image_set_link(const char *name, const char *key)
{
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), name);
  CLEANUP_FREE char *tmp = xasprintf("%s/.%s.%ld", images_dir(), name, (long)getpid());
  unlink(tmp);
  if (symlink(key, tmp) == -1 || rename(tmp, link) == -1) {
    int e = errno;
    unlink(tmp);
    fail(EXIT_TOOL_FAILED, "cannot update %s: %s; check the permissions of %s", link, strerror(e), images_dir());
  }
}

int image_link_dir(const char *name, char *dir)
{
  char key[IMAGE_KEY_LEN + 2];
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), name);
  ssize_t n = readlink(link, key, sizeof key - 1);
  if (n <= 0 || n > IMAGE_KEY_LEN)
    return -1;
  key[n] = '\0';
  if (snprintf(dir, PATH_MAX, "%s/%s", images_dir(), key) >= PATH_MAX)
    return -1;
  CLEANUP_FREE char *manifest = xasprintf("%s/manifest", dir);
  return access(manifest, R_OK) == 0 ? 0 : -1;
}

int image_find(const struct target *t, char *dir)
{
  return image_link_dir(t->name, dir);
}

int image_current(const struct target *t, char *dir)
{
  if (image_find(t, dir) != 0)
    return -1;
  return image_is_ours(t, dir) ? 0 : -1;
}

bool image_is_ours(const struct target *t, const char *dir)
{
  CLEANUP_FREE char *agent = agent_path(t);
  CLEANUP_FREE char *agent_bytes = NULL;
  size_t agent_len;
  if (read_file(agent, &agent_bytes, &agent_len) == -1)
    return false;
  /* A kernel built from source: the image names its key (image-kernel.c). */
  char kernel_key[IMAGE_KEY_LEN + 1] = "";
  CLEANUP_FREE char *manifest_path = xasprintf("%s/manifest", dir);
  CLEANUP_FREE char *manifest = NULL;
  if (t->kernel_arch && (read_file(manifest_path, &manifest, NULL) == -1 ||
                         manifest_value(manifest, "kernel-key", kernel_key, sizeof kernel_key) != 0))
    return false;
  size_t extra_len;
  CLEANUP_FREE char *extra = image_extra(t, agent_bytes, agent_len, kernel_key, &extra_len);
  return image_key_matches(t, dir, "image", IMAGE_FORMAT, extra, extra_len);
}

/* ---- the build's discipline ------------------------------------------------ */

char *image_with(const char *with, struct strv *pkgs)
{
  struct strv list = {0};
  CLEANUP_FREE char *copy = xstrdup(with ? with : "");
  char *save;
  for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
    /* Debian package names; this also keeps options away from apt's command line. */
    if (strspn(tok, "abcdefghijklmnopqrstuvwxyz0123456789.+-") != strlen(tok) || tok[0] == '-' || tok[0] == '.')
      fail(EXIT_TOOL_FAILED, "--with: '%s' is not a Debian package name; give names like 'python3,strace'", tok);
    strv_push(&list, tok);
  }
  strv_sort_unique(&list);
  for (size_t i = 0; i < list.n; i++)
    strv_push(pkgs, list.v[i]);
  char *joined = strv_join(&list, ",");
  strv_free(&list);
  return joined;
}

bool image_exists(const char *dir)
{
  CLEANUP_FREE char *manifest = xasprintf("%s/manifest", dir);
  return access(manifest, F_OK) == 0;
}

int image_lock(const char *key)
{
  CLEANUP_FREE char *dir = xasprintf("%s/locks", cache_dir());
  CLEANUP_FREE char *path = xasprintf("%s/%s", dir, key);
  int fd = -1;
  if (mkdir_p(dir, 0755) == -1 || (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1 ||
      flock(fd, LOCK_EX) == -1)
    fail(EXIT_TOOL_FAILED, "cannot lock %s: %s; check the permissions of %s", path, strerror(errno), cache_dir());
  return fd;
}

/* The staging directories of the builds in progress (a full image's build
 * may build the minimal image inside it), removed however the process ends
 * (fail() exits); a build killed by a signal leaves its directory for the
 * next build of the same key to remove. */
static struct strv stagings;

void image_staging_remove(const char *path)
{
  size_t i = 0;
  while (i < stagings.n) {
    if (path && strcmp(stagings.v[i], path) != 0) {
      i++;
      continue;
    }
    remove_tree(stagings.v[i]);
    free(stagings.v[i]);
    stagings.v[i] = stagings.v[--stagings.n];
    stagings.v[stagings.n] = NULL;
  }
}

static void remove_stagings(void)
{
  image_staging_remove(NULL);
}

/* Remove what killed builds of KEY left behind (we hold KEY's lock). */
static void remove_stale_staging(const char *tmp, const char *key)
{
  DIR *d = opendir(tmp);
  struct dirent *e;
  CLEANUP_FREE char *prefix = xasprintf("build-%s-", key);
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      CLEANUP_FREE char *path = xasprintf("%s/%s", tmp, e->d_name);
      remove_tree(path);
    }
  if (d)
    closedir(d);
}

char *image_staging(const char *key)
{
  CLEANUP_FREE char *tmp = cache_subdir("tmp");
  remove_stale_staging(tmp, key);
  static bool registered;
  if (!registered && atexit(remove_stagings) == 0)
    registered = true;
  char *path = xasprintf("%s/build-%s-XXXXXX", tmp, key);
  if (!mkdtemp(path))
    fail(EXIT_TOOL_FAILED, "cannot create a directory in %s: %s; check its permissions", tmp, strerror(errno));
  strv_push(&stagings, path);
  return path;
}

static void job_free(struct image_job *j)
{
  apt_resolution_free(&j->r);
  strv_free(&j->files);
  free(j->debs);
  free(j->staging);
  j->debs = j->staging = NULL;
  if (j->lock >= 0)
    close(j->lock);
  j->lock = -1;
}

bool image_job_start(struct image_job *j, const struct target *t, const struct image_spec *spec, char *dir)
{
  memset(j, 0, sizeof *j);
  j->t = t;
  j->spec = *spec;
  j->lock = -1;
  progress_init(&j->p, t->name, spec->quiet);

  struct apt apt;
  apt_open(&apt, t, spec->quiet);
  step(&j->p, "resolving packages");
  apt_resolve(&apt, spec->kernel_meta, spec->pkgs, &j->r);
  if (j->r.kernel.file)
    strv_push(&j->files, j->r.kernel.file);
  for (size_t i = 0; i < j->r.n; i++)
    strv_push(&j->files, j->r.debs[i].file);
  strv_sort_unique(&j->files);

  image_key(t, spec->kind, spec->format, &j->files, spec->with, spec->extra, spec->extra_len, j->key);
  if (snprintf(dir, PATH_MAX, "%s/%s", images_dir(), j->key) >= PATH_MAX)
    fail(EXIT_TOOL_FAILED, "cache directory path is too long; set XDG_CACHE_HOME to a shorter path");
  /* Another vmexec may be building the same image: wait for it, then use its result. */
  if (!image_exists(dir))
    j->lock = image_lock(j->key);
  if (image_exists(dir)) {
    apt_close(&apt);
    job_free(j);
    image_set_link(spec->link, j->key);
    progress_done(&j->p, dir, false);
    return false;
  }
  j->debs = cache_subdir("debs");
  apt_download(&apt, &j->r, j->debs, announce_download, &j->p);
  apt_close(&apt);
  j->staging = image_staging(j->key);
  return true;
}

/* OUT/manifest: what every image's manifest says, then LINES. */
static void write_manifest(const struct image_job *j, const char *out, const char *lines)
{
  CLEANUP_FREE char *path = xasprintf("%s/manifest", out);
  CLEANUP_FREE char *pkgs = strv_join(&j->files, " ");
  CLEANUP_FREE char *text = xasprintf("target %s\npackages %s\nkey %s\ncreated %lld\nwith %s\nformat %d\n%s", j->t->name,
                                      pkgs, j->key, (long long)time(NULL), j->spec.with, j->spec.format, lines);
  if (write_file_atomic(path, text, strlen(text)) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space in %s", path, strerror(errno), cache_dir());
}

void image_job_finish(struct image_job *j, const char *out, const char *manifest_lines, const char *dir)
{
  /* The manifest is written last and the directory appears whole. */
  write_manifest(j, out, manifest_lines);
  if (rename(out, dir) == -1)
    fail(EXIT_TOOL_FAILED, "cannot move the image to %s: %s; check the permissions of %s", dir, strerror(errno),
         images_dir());
  image_staging_remove(j->staging);
  job_free(j);
  image_set_link(j->spec.link, j->key);
  progress_done(&j->p, dir, true);
}

/* ---- list and rm ----------------------------------------------------------- */

struct listed {
  char key[IMAGE_KEY_LEN + 1];
  char target[32], kind[16], kernel[64], with[256];
  char source[512]; /* "built", or "pulled REF" / "imported FILE" (image-oci.c) */
  long long created;
  unsigned long long size; /* the initrd's, or the disk space of the root filesystem image */
};

/* The images in the cache, read from their manifests. */
static size_t read_images(struct listed **out)
{
  struct listed *v = NULL;
  size_t n = 0;
  DIR *d = opendir(images_dir());
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.' || strlen(e->d_name) != IMAGE_KEY_LEN)
      continue;
    CLEANUP_FREE char *mpath = xasprintf("%s/%s/manifest", images_dir(), e->d_name);
    CLEANUP_FREE char *m = NULL;
    if (read_file(mpath, &m, NULL) == -1)
      continue;
    v = xrealloc(v, (n + 1) * sizeof *v);
    struct listed *l = &v[n++];
    memset(l, 0, sizeof *l);
    memcpy(l->key, e->d_name, IMAGE_KEY_LEN); /* length checked above */
    char created[32] = "0";
    manifest_value(m, "target", l->target, sizeof l->target);
    if (manifest_value(m, "kind", l->kind, sizeof l->kind) != 0)
      snprintf(l->kind, sizeof l->kind, "minimal"); /* manifests older than full images */
    if (manifest_value(m, "kernel-version", l->kernel, sizeof l->kernel) != 0)
      snprintf(l->kernel, sizeof l->kernel, "-");
    manifest_value(m, "with", l->with, sizeof l->with);
    if (manifest_value(m, "source", l->source, sizeof l->source) != 0)
      snprintf(l->source, sizeof l->source, "built");
    manifest_value(m, "created", created, sizeof created);
    l->created = atoll(created);
    bool full = strcmp(l->kind, "full") == 0;
    bool kernel = strcmp(l->kind, "kernel") == 0; /* built from source, image-kernel.c */
    CLEANUP_FREE char *path =
      xasprintf("%s/%s/%s", images_dir(), e->d_name, full ? "rootfs.img" : kernel ? "kernel" : "initrd");
    struct stat st;
    /* The root filesystem image is sparse: what it takes is its blocks. */
    if (stat(path, &st) == 0)
      l->size = full ? (unsigned long long)st.st_blocks * 512 : (unsigned long long)st.st_size;
  }
  if (d)
    closedir(d);
  *out = v;
  return n;
}

static int by_target_then_created(const void *a, const void *b)
{
  const struct listed *x = a, *y = b;
  int c = strcmp(x->target, y->target);
  if (c)
    return c;
  return x->created < y->created ? -1 : x->created > y->created;
}

/* The link naming the image of L's target and kind last built. */
static char *link_name(const struct listed *l)
{
  if (strcmp(l->kind, "kernel") == 0)
    return xasprintf("%s-kernel", l->target);
  return strcmp(l->kind, "full") == 0 ? xasprintf("%s-full", l->target) : xstrdup(l->target);
}

static int is_current(const struct listed *l)
{
  char key[IMAGE_KEY_LEN + 2];
  CLEANUP_FREE char *name = link_name(l);
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), name);
  ssize_t n = readlink(link, key, sizeof key - 1);
  if (n <= 0)
    return 0;
  key[n] = '\0';
  return strcmp(key, l->key) == 0;
}

int images_list(void)
{
  struct listed *v;
  size_t n = read_images(&v);
  if (n == 0) {
    fprintf(stderr, "vmexec: no images in %s; build one with 'vmexec image build [TARGET] [--full]'\n", images_dir());
    free(v);
    return 0;
  }
  qsort(v, n, sizeof *v, by_target_then_created);
  printf("  %-9s %-7s %-24s %10s  %-16s  %-32s  %s\n", "TARGET", "KIND", "KERNEL", "SIZE", "CREATED", "KEY", "SOURCE");
  for (size_t i = 0; i < n; i++) {
    char size[32], date[32] = "?";
    time_t created = (time_t)v[i].created;
    struct tm tm;
    if (localtime_r(&created, &tm))
      strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    printf("%c %-9s %-7s %-24s %10s  %-16s  %s  %s%s%s\n", is_current(&v[i]) ? '*' : ' ', v[i].target, v[i].kind,
           v[i].kernel, human_size(v[i].size, size, sizeof size), date, v[i].key, v[i].source,
           v[i].with[0] ? "  with " : "", v[i].with);
  }
  free(v);
  return 0;
}

/* Move the image out of sight first, so that image_find never sees half of it. */
static int remove_image(const char *key)
{
  CLEANUP_FREE char *dir = xasprintf("%s/%s", images_dir(), key);
  CLEANUP_FREE char *tmpdir = xasprintf("%s/tmp", cache_dir());
  CLEANUP_FREE char *gone = xasprintf("%s/rm-%s-%ld", tmpdir, key, (long)getpid());
  if (mkdir_p(tmpdir, 0755) == -1 || rename(dir, gone) == -1 || remove_tree(gone) == -1) {
    warning("cannot remove %s: %s; remove it by hand", dir, strerror(errno));
    return -1;
  }
  return 0;
}

int images_rm(const struct target *t)
{
  struct listed *v;
  size_t n = read_images(&v);
  int status = 0;
  size_t removed = 0;
  for (size_t i = 0; i < n; i++) {
    if (t && strcmp(v[i].target, t->name) != 0)
      continue;
    if (remove_image(v[i].key) == 0) {
      printf("removed %s %s image %s\n", v[i].target, v[i].kind, v[i].key);
      removed++;
      /* A persistent layer over a full image means nothing without it. */
      int layer = image_layer_remove(v[i].target, v[i].key);
      if (layer == 1)
        printf("removed %s persistent layer over image %s\n", v[i].target, v[i].key);
      else if (layer == -1)
        warning("cannot remove the persistent layer of %s over %s: %s", v[i].target, v[i].key, strerror(errno));
    } else {
      status = EXIT_TOOL_FAILED;
    }
  }
  free(v);
  /* The "last built" links of the removed targets. */
  for (size_t i = 0; i < n_targets; i++) {
    if (t && t != &targets[i])
      continue;
    CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), targets[i].name);
    CLEANUP_FREE char *full = xasprintf("%s/%s-full", images_dir(), targets[i].name);
    unlink(link);
    unlink(full);
  }
  if (removed == 0 && status == 0)
    fprintf(stderr, "vmexec: no %s%simages in %s\n", t ? t->name : "", t ? " " : "", images_dir());
  return status;
}
