#include "image-cache.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cleanup.h"
#include "fail.h"
#include "image.h"
#include "paths.h"

const char *images_dir(void)
{
  static char dir[PATH_MAX];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s/images", cache_dir());
    if (make_dirs(dir, 0) == -1)
      fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the permissions of %s", dir, strerror(errno), cache_dir());
  }
  return dir;
}

void image_key(const struct target *t, const struct strv *deb_files, const char *with, const void *agent,
               size_t agent_len, char key[IMAGE_KEY_LEN + 1])
{
  XXH3_state_t *h = XXH3_createState();
  if (!h)
    fail(EXIT_TOOL_FAILED, "out of memory");
  XXH3_128bits_reset(h);
  char format[32];
  int n = snprintf(format, sizeof format, "vmexec-image-%d", IMAGE_FORMAT);
  /* Every string with its NUL, so that no two different inputs hash the same bytes. */
  XXH3_128bits_update(h, format, (size_t)n + 1);
  XXH3_128bits_update(h, t->name, strlen(t->name) + 1);
  for (size_t i = 0; i < deb_files->n; i++)
    XXH3_128bits_update(h, deb_files->v[i], strlen(deb_files->v[i]) + 1);
  XXH3_128bits_update(h, "", 1);
  XXH3_128bits_update(h, with ? with : "", strlen(with ? with : "") + 1);
  XXH3_128bits_update(h, agent, agent_len);
  XXH128_hash_t sum = XXH3_128bits_digest(h);
  XXH3_freeState(h);
  snprintf(key, IMAGE_KEY_LEN + 1, "%016llx%016llx", (unsigned long long)sum.high64, (unsigned long long)sum.low64);
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

void image_set_current(const struct target *t, const char *key)
{
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), t->name);
  CLEANUP_FREE char *tmp = xasprintf("%s/.%s.%ld", images_dir(), t->name, (long)getpid());
  unlink(tmp);
  if (symlink(key, tmp) == -1 || rename(tmp, link) == -1) {
    int e = errno;
    unlink(tmp);
    fail(EXIT_TOOL_FAILED, "cannot update %s: %s; check the permissions of %s", link, strerror(e), images_dir());
  }
}

int image_find(const struct target *t, char *dir)
{
  char key[IMAGE_KEY_LEN + 2];
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), t->name);
  ssize_t n = readlink(link, key, sizeof key - 1);
  if (n <= 0 || n > IMAGE_KEY_LEN)
    return -1;
  key[n] = '\0';
  if (snprintf(dir, PATH_MAX, "%s/%s", images_dir(), key) >= PATH_MAX)
    return -1;
  CLEANUP_FREE char *manifest = xasprintf("%s/manifest", dir);
  return access(manifest, R_OK) == 0 ? 0 : -1;
}

int image_current(const struct target *t, char *dir)
{
  if (image_find(t, dir) != 0)
    return -1;
  CLEANUP_FREE char *manifest_path = xasprintf("%s/manifest", dir);
  CLEANUP_FREE char *manifest = NULL, *agent_bytes = NULL;
  size_t len, agent_len;
  if (read_file(manifest_path, &manifest, &len) == -1)
    return -1;
  static char packages[65536];
  char with[1024] = "", key[IMAGE_KEY_LEN + 1], want[IMAGE_KEY_LEN + 1];
  if (manifest_value(manifest, "packages", packages, sizeof packages) != 0 ||
      manifest_value(manifest, "key", key, sizeof key) != 0)
    return -1;
  manifest_value(manifest, "with", with, sizeof with);
  CLEANUP_FREE char *agent = agent_path(t);
  if (read_file(agent, &agent_bytes, &agent_len) == -1)
    return -1;
  struct strv files = {0};
  char *save = NULL;
  for (char *w = strtok_r(packages, " ", &save); w; w = strtok_r(NULL, " ", &save))
    strv_push(&files, w);
  strv_sort_unique(&files);
  image_key(t, &files, with, agent_bytes, agent_len, want);
  strv_free(&files);
  return strcmp(key, want) == 0 ? 0 : -1;
}

/* ---- list and rm ----------------------------------------------------------- */

struct listed {
  char key[IMAGE_KEY_LEN + 1];
  char target[32], kernel[64], with[256];
  long long created;
  unsigned long long initrd_size;
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
    CLEANUP_FREE char *ipath = xasprintf("%s/%s/initrd", images_dir(), e->d_name);
    CLEANUP_FREE char *m = NULL;
    if (read_file(mpath, &m, NULL) == -1)
      continue;
    v = xrealloc(v, (n + 1) * sizeof *v);
    struct listed *l = &v[n++];
    memset(l, 0, sizeof *l);
    memcpy(l->key, e->d_name, IMAGE_KEY_LEN); /* length checked above */
    char created[32] = "0";
    manifest_value(m, "target", l->target, sizeof l->target);
    manifest_value(m, "kernel-version", l->kernel, sizeof l->kernel);
    manifest_value(m, "with", l->with, sizeof l->with);
    manifest_value(m, "created", created, sizeof created);
    l->created = atoll(created);
    struct stat st;
    if (stat(ipath, &st) == 0)
      l->initrd_size = (unsigned long long)st.st_size;
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

static int is_current(const struct listed *l)
{
  char key[IMAGE_KEY_LEN + 2];
  CLEANUP_FREE char *link = xasprintf("%s/%s", images_dir(), l->target);
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
    fprintf(stderr, "vmexec: no images in %s; build one with 'vmexec image build [TARGET]'\n", images_dir());
    free(v);
    return 0;
  }
  qsort(v, n, sizeof *v, by_target_then_created);
  printf("  %-9s %-24s %10s  %-16s  %s\n", "TARGET", "KERNEL", "INITRD", "CREATED", "KEY");
  for (size_t i = 0; i < n; i++) {
    char size[32], date[32] = "?";
    time_t created = (time_t)v[i].created;
    struct tm tm;
    if (localtime_r(&created, &tm))
      strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    printf("%c %-9s %-24s %10s  %-16s  %s%s%s\n", is_current(&v[i]) ? '*' : ' ', v[i].target, v[i].kernel,
           human_size(v[i].initrd_size, size, sizeof size), date, v[i].key, v[i].with[0] ? "  with " : "",
           v[i].with);
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
  if (make_dirs(tmpdir, 0) == -1 || rename(dir, gone) == -1 || remove_tree(gone) == -1) {
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
      printf("removed %s image %s\n", v[i].target, v[i].key);
      removed++;
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
    unlink(link);
  }
  if (removed == 0 && status == 0)
    fprintf(stderr, "vmexec: no %s%simages in %s\n", t ? t->name : "", t ? " " : "", images_dir());
  return status;
}
