/* Image synthesis entry points: scan (scan.c), lay out (layout.c), then
 * answer reads from the region table (regions.c) and host files
 * (hostfiles.c). See synth.h. */
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostfiles.h"
#include "layout.h"
#include "roots.h"
#include "tree.h"

struct synth_image {
  struct layout layout;
  struct hostfiles *files;
  struct synth_stats stats;
};

static void no_log(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  (void)fmt;
}

static double seconds_since(const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int synth_build(char *const *roots_in, size_t nroots, const struct synth_options *opt,
                struct synth_image **out, char *err, size_t errlen)
{
  unsigned bits = opt->blkszbits ? opt->blkszbits : 12;
  synth_log_fn log = opt->log ? opt->log : no_log;
  if (bits < 9 || bits > 16) {
    /* EROFS dirents address names with 16 bits: no block over 64 KiB */
    snprintf(err, errlen, "block size 2^%u is outside 512 B .. 64 KiB", bits);
    return -1;
  }

  struct roots roots;
  if (roots_from_array(&roots, roots_in, nroots, log, opt->log_opaque, err, errlen) == -1)
    return -1;

  struct synth_image *img = calloc(1, sizeof *img);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  clock_gettime(CLOCK_REALTIME, &now);
  struct tree t = {
    .blkszbits = bits, .now = now.tv_sec, .now_nsec = (uint32_t)now.tv_nsec,
    .log = log, .log_opaque = opt->log_opaque,
  };
  if (img)
    img->files = t.files = hostfiles_new(opt->cache_fds ? opt->cache_fds : 64, log, opt->log_opaque);
  if (!img || !img->files) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }

  if (tree_scan(&t, roots.v, roots.n, err, errlen) == -1)
    goto fail;
  img->stats.scan_seconds = seconds_since(&t0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (layout_build(&t, opt->max_size, &img->layout, err, errlen) == -1)
    goto fail;
  img->stats.layout_seconds = seconds_since(&t0);

  struct synth_stats *s = &img->stats;
  s->inodes = t.nnodes;
  s->files = t.count.files;
  s->dirs = t.count.dirs + t.count.synthesised + 1;
  s->symlinks = t.count.symlinks;
  s->hardlinks = t.count.hardlinks;
  s->skipped = t.count.skipped;
  s->chunked = t.count.chunked;
  s->image_size = regions_size(&img->layout.regions);
  s->meta_bytes = img->layout.meta_len + img->layout.dirs_len + img->layout.links_len;
  s->mapped_bytes = img->layout.mapped_bytes;
  tree_free(&t);
  roots_free(&roots);
  *out = img;
  return 0;

fail:
  tree_free(&t);
  roots_free(&roots);
  if (img) {
    hostfiles_free(img->files);
    free(img);
  }
  return -1;
}

int synth_read(struct synth_image *img, void *buf, size_t len, uint64_t offset)
{
  return regions_read(&img->layout.regions, buf, len, offset, hostfiles_read, img->files);
}

uint64_t synth_size(const struct synth_image *img)
{
  return img->stats.image_size;
}

const struct synth_stats *synth_stats(const struct synth_image *img)
{
  return &img->stats;
}

void synth_free(struct synth_image *img)
{
  if (!img)
    return;
  layout_free(&img->layout);
  hostfiles_free(img->files);
  free(img);
}
