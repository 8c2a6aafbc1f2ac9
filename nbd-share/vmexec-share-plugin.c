/* nbdkit plugin "vmexec-share": serves host directory trees to a guest as
 * read-only EROFS images synthesised on the fly, one generation per slot of
 * one large export. Thin glue: configuration and pread; the work is in
 * gens.c (slots, control directory) and synth.c (the image). */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gens.h"

static char *control_dir;
static int64_t export_size = (int64_t)16 << 40; /* 16 TiB: the most a 32-bit guest's page cache indexes */
static int64_t slot_size = (int64_t)256 << 30;  /* 256 GiB: 64 generations */
static unsigned blkszbits = 12;
static bool inline_data;    /* inline=: see lazy.h */
static struct gens *gens;

static void log_debug(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  va_list ap;
  va_start(ap, fmt);
  nbdkit_vdebug(fmt, ap);
  va_end(ap);
}

static void log_error(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  va_list ap;
  va_start(ap, fmt);
  nbdkit_verror(fmt, ap);
  va_end(ap);
}

/* Each generation keeps up to 64 host files open, the scan one directory
 * per level: take the hard limit on descriptors, not the usual soft 1024. */
static void share_load(void)
{
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

static void share_unload(void)
{
  gens_free(gens);
  free(control_dir);
}

static int share_config(const char *key, const char *value)
{
  if (strcmp(key, "control") == 0) {
    free(control_dir);
    control_dir = nbdkit_absolute_path(value);
    return control_dir ? 0 : -1;
  }
  if (strcmp(key, "size") == 0 || strcmp(key, "slot") == 0) {
    int64_t v = nbdkit_parse_size(value);
    if (v <= 0) {
      if (v == 0)
        nbdkit_error("%s must be more than 0", key);
      return -1;
    }
    if (strcmp(key, "size") == 0)
      export_size = v;
    else
      slot_size = v;
    return 0;
  }
  if (strcmp(key, "blocksize") == 0) {
    int64_t v = nbdkit_parse_size(value);
    if (v < 512 || v > 65536 || (v & (v - 1))) {
      nbdkit_error("blocksize must be a power of two from 512 to 64K (the guest's page size)");
      return -1;
    }
    blkszbits = (unsigned)__builtin_ctzll((unsigned long long)v);
    return 0;
  }
  if (strcmp(key, "inline") == 0) {
    int v = nbdkit_parse_bool(value);
    if (v == -1)
      return -1;
    inline_data = v;
    return 0;
  }
  nbdkit_error("unknown parameter '%s'", key);
  return -1;
}

static int share_config_complete(void)
{
  if (!control_dir) {
    nbdkit_error("control=DIR is required: the directory where gen-N.roots files appear");
    return -1;
  }
  char err[512];
  struct gens_config c = {
    .control_dir = control_dir, .export_size = (uint64_t)export_size, .slot_size = (uint64_t)slot_size,
    .blkszbits = blkszbits, .inline_data = inline_data, .log = log_debug, .error = log_error,
  };
  gens = gens_new(&c, err, sizeof err);
  if (!gens) {
    nbdkit_error("%s", err);
    return -1;
  }
  return 0;
}

/* The thread that frees retired slots promptly: after the fork, as nbdkit
 * asks of plugins with threads. */
static int share_after_fork(void)
{
  char err[512];
  if (gens_watch(gens, err, sizeof err) == -1) {
    nbdkit_error("%s", err);
    return -1;
  }
  return 0;
}

#define share_config_help \
  "control=DIR     (required) directory of gen-N.roots requests\n" \
  "size=SIZE       export size (default 16T)\n" \
  "slot=SIZE       bytes per generation (default 256G)\n" \
  "blocksize=SIZE  EROFS block size = guest page size (default 4K)\n" \
  "inline=BOOL     small files' data after their inodes (default false)"

static void *share_open(int readonly)
{
  (void)readonly;
  return NBDKIT_HANDLE_NOT_NEEDED; /* no per-connection state */
}

/* The answers of the negotiation: the same for every connection. */
#define SHARE_ANSWER(fn, type, value) \
  static type fn(void *handle)        \
  {                                   \
    (void)handle;                     \
    return value;                     \
  }
SHARE_ANSWER(share_get_size, int64_t, export_size)
SHARE_ANSWER(share_can_write, int, 0)
/* Read-only and immutable per generation: every connection sees the same bytes. */
SHARE_ANSWER(share_can_multi_conn, int, 1)
SHARE_ANSWER(share_can_cache, int, NBDKIT_CACHE_EMULATE)

static int share_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  (void)handle;
  (void)flags;
  if (gens_read(gens, buf, count, offset) == -1) {
    nbdkit_error("pread at %llu: %m", (unsigned long long)offset);
    return -1;
  }
  return 0;
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name = "vmexec-share",
  .longname = "vmexec host trees as EROFS generations",
  .version = "0.1.0",
  .load = share_load,
  .unload = share_unload,
  .config = share_config,
  .config_complete = share_config_complete,
  .config_help = share_config_help,
  .after_fork = share_after_fork,
  .magic_config_key = "control",
  .open = share_open,
  .get_size = share_get_size,
  .can_write = share_can_write,
  .can_multi_conn = share_can_multi_conn,
  .can_cache = share_can_cache,
  .pread = share_pread,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN(plugin)
