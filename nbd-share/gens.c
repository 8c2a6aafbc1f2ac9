/* Generation table: see gens.h.
 *
 * Locking: reads of built generations share a rwlock (read side) and run in
 * parallel; building holds build_lock (one build at a time, so a burst of
 * reads into a new slot builds it once) and takes the write side only to
 * install or retire an image, after in-flight reads of that table finish. */
#include "gens.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "lazy.h"
#include "roots.h"
#include "synth.h"

enum gen_state { GEN_EMPTY, GEN_BUILT, GEN_FAILED };

struct gen {
  enum gen_state state;
  struct synth_image *img;   /* a scanned image of the roots, or */
  struct lazy_image *lazy;   /* the lazy image of the host's / */
};

struct gens {
  struct gens_config c;
  char *dir;
  uint64_t nslots;
  struct gen *slots;
  pthread_rwlock_t table;
  pthread_mutex_t build_lock;
  _Atomic uint64_t last_sweep_ms;
  bool watching;             /* gens_watch: */
  pthread_t watcher;
  int inotify_fd, stop_fd[2];
};

static void no_log(void *opaque, const char *fmt, ...)
{
  (void)opaque;
  (void)fmt;
}

static uint64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

struct gens *gens_new(const struct gens_config *c, char *err, size_t errlen)
{
  if (!c->control_dir || c->control_dir[0] != '/') {
    snprintf(err, errlen, "control=DIR must be an absolute path");
    return NULL;
  }
  unsigned bits = c->blkszbits ? c->blkszbits : 12;
  if (c->slot_size == 0 || c->slot_size & ((1u << bits) - 1) || c->export_size % c->slot_size ||
      c->export_size < c->slot_size) {
    snprintf(err, errlen, "slot=%llu must be a multiple of the block size and divide size=%llu",
             (unsigned long long)c->slot_size, (unsigned long long)c->export_size);
    return NULL;
  }
  struct gens *g = calloc(1, sizeof *g);
  if (!g || !(g->dir = strdup(c->control_dir)) ||
      !(g->slots = calloc(c->export_size / c->slot_size, sizeof *g->slots))) {
    snprintf(err, errlen, "out of memory");
    if (g)
      free(g->dir);
    free(g);
    return NULL;
  }
  g->c = *c;
  g->c.control_dir = g->dir;
  g->c.blkszbits = bits;
  if (!g->c.log)
    g->c.log = no_log;
  if (!g->c.error)
    g->c.error = g->c.log;
  g->nslots = c->export_size / c->slot_size;
  /* Writers first: a steady stream of reads must not starve the install
   * of a new generation (no thread ever takes the read side twice). */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&g->table, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&g->build_lock, NULL);
  atomic_init(&g->last_sweep_ms, now_ms());
  return g;
}

void gens_free(struct gens *g)
{
  if (!g)
    return;
  if (g->watching) {
    close(g->stop_fd[1]);
    pthread_join(g->watcher, NULL);
    close(g->stop_fd[0]);
    close(g->inotify_fd);
  }
  for (uint64_t i = 0; i < g->nslots; i++) {
    synth_free(g->slots[i].img);
    lazy_free(g->slots[i].lazy);
  }
  pthread_rwlock_destroy(&g->table);
  pthread_mutex_destroy(&g->build_lock);
  free(g->slots);
  free(g->dir);
  free(g);
}

static void control_path(const struct gens *g, char *buf, size_t len, uint64_t n, const char *what)
{
  snprintf(buf, len, "%s/gen-%llu.%s", g->dir, (unsigned long long)n, what);
}

static int control_exists(const struct gens *g, uint64_t n, const char *what)
{
  char p[4096];
  control_path(g, p, sizeof p, n, what);
  return access(p, F_OK) == 0;
}

/* Write TEXT to gen-N.WHAT atomically (temporary file, rename). */
static void control_write(struct gens *g, uint64_t n, const char *what, const char *text)
{
  char p[4096], tmp[4200];
  control_path(g, p, sizeof p, n, what);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  size_t len = strlen(text);
  if (fd == -1 || write(fd, text, len) != (ssize_t)len || close(fd) == -1 || rename(tmp, p) == -1)
    g->c.error(g->c.log_opaque, "%s: %s", p, strerror(errno));
}

/* Under build_lock: slot N is empty again. Its control files go, gen-N.retired
 * last: that removal tells the supervisor it may put a new generation there. */
static void free_slot(struct gens *g, uint64_t n)
{
  static const char *const files[] = { "info", "error", "stale", "changed", "ask", "roots", "retired" };
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char p[4096];
    control_path(g, p, sizeof p, n, files[i]);
    if (unlink(p) == -1 && errno != ENOENT)
      g->c.error(g->c.log_opaque, "%s: %s", p, strerror(errno));
  }
}

/* Under build_lock: free the generations the supervisor retired. */
static void sweep_locked(struct gens *g)
{
  for (uint64_t n = 0; n < g->nslots; n++) {
    if (g->slots[n].state == GEN_EMPTY)
      continue;
    if (!control_exists(g, n, "retired") && control_exists(g, n, "roots"))
      continue;
    pthread_rwlock_wrlock(&g->table);
    struct gen old = g->slots[n];
    g->slots[n] = (struct gen){ .state = GEN_EMPTY };
    pthread_rwlock_unlock(&g->table);
    synth_free(old.img);
    lazy_free(old.lazy);
    free_slot(g, n);
    g->c.log(g->c.log_opaque, "generation %llu retired; its slot is free", (unsigned long long)n);
  }
  atomic_store(&g->last_sweep_ms, now_ms());
}

void gens_sweep(struct gens *g)
{
  pthread_mutex_lock(&g->build_lock);
  sweep_locked(g);
  pthread_mutex_unlock(&g->build_lock);
}

int gens_stale(struct gens *g, uint64_t n)
{
  if (n >= g->nslots)
    return 1;
  pthread_rwlock_rdlock(&g->table);
  const struct gen *s = &g->slots[n];
  int stale = s->state == GEN_FAILED || (s->lazy && lazy_stale(s->lazy));
  pthread_rwlock_unlock(&g->table);
  return stale;
}

char *gens_take_changed(struct gens *g, uint64_t n, size_t *len)
{
  *len = 0;
  if (n >= g->nslots)
    return NULL;
  pthread_rwlock_rdlock(&g->table);
  const struct gen *s = &g->slots[n];
  char *p = s->lazy ? lazy_take_changed(s->lazy, len) : NULL;
  pthread_rwlock_unlock(&g->table);
  return p;
}

/* Append the changed files' paths to gen-N.changed, which the supervisor
 * reads and removes when it next hands out N (the asks after a write-back
 * may come before that). */
static void append_changed(struct gens *g, uint64_t n)
{
  size_t len;
  char *paths = gens_take_changed(g, n, &len);
  if (!paths)
    return;
  char p[4096];
  control_path(g, p, sizeof p, n, "changed");
  int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd == -1 || write(fd, paths, len) != (ssize_t)len || close(fd) == -1) {
    g->c.error(g->c.log_opaque, "%s: %s", p, strerror(errno));
    control_write(g, n, "stale", "1\n"); /* the guest would not learn of the change */
  }
  free(paths);
}

/* gen-N.ask: the supervisor wants to know whether N is still true to the
 * host. The answer is gen-N.stale, or else the files to patch appended to
 * gen-N.changed, written before gen-N.ask is removed.
 * Every change that happened before the ask is in the image's inotify
 * queue by then (inotify queues events in the changing system call). */
static void answer(struct gens *g, uint64_t n)
{
  if (!control_exists(g, n, "ask"))
    return;
  if (gens_stale(g, n))
    control_write(g, n, "stale", "1\n");
  else
    append_changed(g, n);
  char p[4096];
  control_path(g, p, sizeof p, n, "ask");
  unlink(p);
}

/* The watcher thread: a sweep whenever the control directory changes, so a
 * retired slot is free (its gen-N.retired gone) within moments, even when
 * the guest reads nothing. */
static void *watch_main(void *arg)
{
  struct gens *g = arg;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  struct pollfd p[2] = { { .fd = g->inotify_fd, .events = POLLIN }, { .fd = g->stop_fd[0], .events = POLLIN } };
  for (;;) {
    if (poll(p, 2, -1) == -1 && errno != EINTR)
      break;
    if (p[1].revents)
      break;
    if (p[0].revents) {
      ssize_t len;
      while ((len = read(g->inotify_fd, buf, sizeof buf)) > 0)
        for (char *e = buf; e < buf + len; e += sizeof(struct inotify_event) + ((struct inotify_event *)e)->len) {
          const struct inotify_event *ev = (const struct inotify_event *)e;
          unsigned long long n;
          char tail[8];
          if (ev->len && sscanf(ev->name, "gen-%llu.%7s", &n, tail) == 2 && !strcmp(tail, "ask") && n < g->nslots)
            answer(g, n);
        }
      gens_sweep(g);
    }
  }
  return NULL;
}

int gens_watch(struct gens *g, char *err, size_t errlen)
{
  g->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (g->inotify_fd == -1 || inotify_add_watch(g->inotify_fd, g->dir, IN_CREATE | IN_MOVED_TO | IN_DELETE) == -1 ||
      pipe2(g->stop_fd, O_CLOEXEC) == -1) {
    snprintf(err, errlen, "cannot watch %s: %s", g->dir, strerror(errno));
    if (g->inotify_fd >= 0)
      close(g->inotify_fd);
    return -1;
  }
  int rc = pthread_create(&g->watcher, NULL, watch_main, g);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start a thread: %s", strerror(rc));
    close(g->inotify_fd);
    close(g->stop_fd[0]);
    close(g->stop_fd[1]);
    return -1;
  }
  g->watching = true;
  return 0;
}

/* Under build_lock: generation N cannot be built, because of ERR (one
 * line): its slot reads as zeroes, and gen-N.error says why. */
static void fail_gen(struct gens *g, uint64_t n, const char *err)
{
  g->slots[n].state = GEN_FAILED;
  char line[600];
  snprintf(line, sizeof line, "%s\n", err);
  control_write(g, n, "error", line);
  g->c.error(g->c.log_opaque, "generation %llu: %s", (unsigned long long)n, err);
}

/* A roots file holding the one line "/" asks for the lazy image of the
 * whole host. */
static bool lazy_roots(const char *path)
{
  char buf[8] = "";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0)
    close(fd);
  return len >= 0 && (!strcmp(buf, "/\n") || !strcmp(buf, "/"));
}

/* Under build_lock: generation N as the lazy image of the host's /. */
static void build_lazy(struct gens *g, uint64_t n)
{
  char err[512];
  struct lazy_options opt = { .root = "/", .blkszbits = g->c.blkszbits, .size = g->c.slot_size,
                              .inline_data = g->c.inline_data,
                              .log = g->c.log, .log_opaque = g->c.log_opaque };
  struct lazy_image *lazy;
  if (lazy_new(&opt, &lazy, err, sizeof err) == -1) {
    fail_gen(g, n, err);
    return;
  }
  control_write(g, n, "info", "lazy=1\n");
  g->c.log(g->c.log_opaque, "generation %llu: the lazy image of /", (unsigned long long)n);
  pthread_rwlock_wrlock(&g->table);
  g->slots[n] = (struct gen){ .state = GEN_BUILT, .lazy = lazy };
  pthread_rwlock_unlock(&g->table);
  sweep_locked(g);
}

/* Build generation N if it has a roots file. Returns 1 if the slot's state
 * changed (or another thread changed it), 0 if there is nothing to build. */
static int build(struct gens *g, uint64_t n)
{
  pthread_mutex_lock(&g->build_lock);
  int ret = 1;
  if (g->slots[n].state != GEN_EMPTY)
    goto out;
  if (control_exists(g, n, "retired")) {
    free_slot(g, n); /* retired before its first read */
    ret = 0;
    goto out;
  }

  char err[512], path[4096];
  control_path(g, path, sizeof path, n, "roots");
  if (lazy_roots(path)) {
    build_lazy(g, n);
    goto out;
  }
  struct roots roots;
  roots_init(&roots);
  if (roots_read_file(&roots, path, err, sizeof err) == -1) {
    if (errno == ENOENT) {
      ret = 0;
    } else {
      fail_gen(g, n, err);
    }
    roots_free(&roots);
    goto out;
  }

  struct synth_options opt = {
    .blkszbits = g->c.blkszbits, .max_size = g->c.slot_size,
    .log = g->c.log, .log_opaque = g->c.log_opaque,
  };
  struct synth_image *img;
  if (synth_build(roots.v, roots.n, &opt, &img, err, sizeof err) == -1) {
    fail_gen(g, n, err);
  } else {
    const struct synth_stats *s = synth_stats(img);
    char info[1024];
    snprintf(info, sizeof info,
             "inodes=%llu\nfiles=%llu\ndirs=%llu\nsymlinks=%llu\nhardlinks=%llu\nskipped=%llu\n"
             "chunked=%llu\nimage_bytes=%llu\nmetadata_bytes=%llu\nmapped_bytes=%llu\n"
             "scan_ms=%.1f\nlayout_ms=%.1f\n",
             (unsigned long long)s->inodes, (unsigned long long)s->files, (unsigned long long)s->dirs,
             (unsigned long long)s->symlinks, (unsigned long long)s->hardlinks,
             (unsigned long long)s->skipped, (unsigned long long)s->chunked,
             (unsigned long long)s->image_size, (unsigned long long)s->meta_bytes,
             (unsigned long long)s->mapped_bytes, s->scan_seconds * 1e3, s->layout_seconds * 1e3);
    control_write(g, n, "info", info);
    g->c.log(g->c.log_opaque, "generation %llu built: %llu inodes, %llu bytes, scan %.0f ms, layout %.0f ms",
             (unsigned long long)n, (unsigned long long)s->inodes, (unsigned long long)s->image_size,
             s->scan_seconds * 1e3, s->layout_seconds * 1e3);
    pthread_rwlock_wrlock(&g->table);
    g->slots[n] = (struct gen){ .state = GEN_BUILT, .img = img };
    pthread_rwlock_unlock(&g->table);
  }
  roots_free(&roots);
  sweep_locked(g);

out:
  pthread_mutex_unlock(&g->build_lock);
  return ret;
}

static int read_slot(struct gens *g, uint64_t n, uint8_t *buf, size_t len, uint64_t offset)
{
  for (;;) {
    pthread_rwlock_rdlock(&g->table);
    enum gen_state st = g->slots[n].state;
    if (st == GEN_BUILT) {
      int r = g->slots[n].lazy ? lazy_read(g->slots[n].lazy, buf, len, offset)
                               : synth_read(g->slots[n].img, buf, len, offset);
      int saved = errno;
      pthread_rwlock_unlock(&g->table);
      errno = saved;
      return r;
    }
    pthread_rwlock_unlock(&g->table);
    if (st != GEN_EMPTY || build(g, n) == 0) {
      memset(buf, 0, len);
      return 0;
    }
  }
}

int gens_read(struct gens *g, void *buf, size_t len, uint64_t offset)
{
  uint8_t *p = buf;
  while (len > 0) {
    uint64_t n = offset / g->c.slot_size, within = offset % g->c.slot_size;
    size_t chunk = g->c.slot_size - within < len ? (size_t)(g->c.slot_size - within) : len;
    if (n >= g->nslots) {
      memset(p, 0, len);
      break;
    }
    if (read_slot(g, n, p, chunk, within) == -1)
      return -1;
    p += chunk;
    offset += chunk;
    len -= chunk;
  }
  if (now_ms() - atomic_load(&g->last_sweep_ms) >= 1000 && pthread_mutex_trylock(&g->build_lock) == 0) {
    sweep_locked(g);
    pthread_mutex_unlock(&g->build_lock);
  }
  return 0;
}
