/* Tree fingerprint: see fingerprint.h. */
#include "fingerprint.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "roots.h"
#include "walk.h"

/* Hash PATH and the metadata of ST (or "missing" when ST is NULL). */
static void add_entry(XXH3_state_t *h, const char *path, size_t len, const struct stat *st)
{
  uint64_t rec[11] = { 0 };
  if (st) {
    rec[0] = st->st_mode;
    rec[1] = st->st_uid;
    rec[2] = st->st_gid;
    rec[3] = (uint64_t)st->st_size;
    rec[4] = (uint64_t)st->st_mtim.tv_sec;
    rec[5] = (uint64_t)st->st_mtim.tv_nsec;
    rec[6] = (uint64_t)st->st_ctim.tv_sec;
    rec[7] = (uint64_t)st->st_ctim.tv_nsec;
    rec[8] = st->st_ino;
    rec[9] = st->st_dev;
    rec[10] = st->st_nlink;
  }
  XXH3_128bits_update(h, path, len + 1); /* with the NUL: "a" "b" != "ab" */
  XXH3_128bits_update(h, rec, sizeof rec);
}

static int visit(void *ctx, uint64_t parent, const struct walk_entry *e, uint64_t *descend)
{
  (void)parent;
  add_entry(ctx, e->path, e->pathlen, e->st);
  if (S_ISDIR(e->st->st_mode))
    *descend = 0;
  return 0;
}

int synth_fingerprint(char *const *roots_in, size_t nroots, struct synth_fingerprint *out,
                      synth_log_fn log, void *log_opaque, char *err, size_t errlen)
{
  struct roots roots;
  if (roots_from_array(&roots, roots_in, nroots, NULL, NULL, err, errlen) == -1)
    return -1;

  XXH3_state_t *h = XXH3_createState();
  int ret = h ? 0 : -1;
  if (h)
    XXH3_128bits_reset(h);
  for (size_t i = 0; i < roots.n && ret == 0; i++) {
    struct stat st;
    const char *r = roots.v[i];
    if (stat(r, &st) == -1) {
      add_entry(h, r, strlen(r), NULL);
      continue;
    }
    add_entry(h, r, strlen(r), &st);
    if (S_ISDIR(st.st_mode))
      ret = walk_tree(r, 0, visit, h, log, log_opaque);
  }
  if (ret == 0) {
    XXH128_hash_t v = XXH3_128bits_digest(h);
    out->low = v.low64;
    out->high = v.high64;
  } else {
    snprintf(err, errlen, "out of memory");
  }
  XXH3_freeState(h);
  roots_free(&roots);
  return ret;
}
