/* Host file table and descriptor cache: see hostfiles.h. */
#include "hostfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "grow.h"

struct hostfile {
  uint64_t path_off;  /* into paths */
  uint64_t ino;
  uint64_t dev;
  bool warned;        /* one log line per file at most; guarded by lock */
};

struct cached_fd {
  int64_t id;         /* -1: free */
  int fd;
  unsigned refs;      /* readers using fd right now: not evicted while > 0 */
  uint64_t last_use;
};

struct hostfiles {
  struct hostfile *files;
  size_t n, cap;
  char *paths;
  size_t paths_len, paths_cap;

  pthread_mutex_t lock;  /* guards cache[], clock and warned flags */
  struct cached_fd *cache;
  unsigned ncache;
  uint64_t clock;

  synth_log_fn log;
  void *log_opaque;
};

struct hostfiles *hostfiles_new(unsigned cache_fds, synth_log_fn log, void *log_opaque)
{
  struct hostfiles *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->ncache = cache_fds ? cache_fds : 1;
  h->cache = calloc(h->ncache, sizeof *h->cache);
  if (!h->cache) {
    free(h);
    return NULL;
  }
  for (unsigned i = 0; i < h->ncache; i++)
    h->cache[i].id = -1;
  pthread_mutex_init(&h->lock, NULL);
  h->log = log;
  h->log_opaque = log_opaque;
  return h;
}

void hostfiles_free(struct hostfiles *h)
{
  if (!h)
    return;
  for (unsigned i = 0; i < h->ncache; i++)
    if (h->cache[i].id >= 0)
      close(h->cache[i].fd);
  pthread_mutex_destroy(&h->lock);
  free(h->cache);
  free(h->files);
  free(h->paths);
  free(h);
}

/* Under the lock: the lazy image (lazy.c) adds files while other threads read. */
int64_t hostfiles_add(struct hostfiles *h, const char *path, size_t len, dev_t dev, ino_t ino)
{
  int64_t id = -1;
  pthread_mutex_lock(&h->lock);
  struct hostfile *f = grow(h->files, &h->cap, h->n + 1, sizeof *f, 256);
  if (f)
    h->files = f;
  char *p = f ? grow(h->paths, &h->paths_cap, h->paths_len + len + 1, 1, 16384) : NULL;
  if (p) {
    h->paths = p;
    memcpy(h->paths + h->paths_len, path, len);
    h->paths[h->paths_len + len] = '\0';
    h->files[h->n] = (struct hostfile){ .path_off = h->paths_len, .ino = ino, .dev = dev };
    h->paths_len += len + 1;
    id = (int64_t)h->n++;
  }
  pthread_mutex_unlock(&h->lock);
  return id;
}

/* Open REL beneath directory DFD (or absolute, with AT_FDCWD) following no
 * symlink in any component: a directory swapped for a symlink after the scan
 * fails with ELOOP instead of leading elsewhere. openat2 does it in one call;
 * before Linux 5.6, one O_NOFOLLOW openat per component. */
static int open_nofollow(int dfd, const char *rel, int flags)
{
  struct open_how how = { .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC), .resolve = RESOLVE_NO_SYMLINKS };
  int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS)
    return fd;
  int cur = rel[0] == '/' ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : dfd;
  const char *p = rel;
  for (;;) {
    while (*p == '/')
      p++;
    size_t len = strcspn(p, "/");
    bool last = p[len + strspn(p + len, "/")] == '\0';
    char name[NAME_MAX + 1];
    if (cur < 0 && cur != AT_FDCWD)
      return -1;
    if (len > NAME_MAX) {
      fd = -1;
      errno = ENAMETOOLONG;
    } else {
      memcpy(name, p, len);
      name[len] = '\0';
      fd = openat(cur, name, last ? flags | O_NOFOLLOW | O_CLOEXEC : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int saved = errno;
    if (cur != dfd)
      close(cur);
    errno = saved;
    if (last || fd == -1)
      return fd;
    cur = fd;
    p += len;
  }
}

int hostfiles_open_path(const char *path, int flags)
{
  size_t len = strlen(path);
  if (len < PATH_MAX)
    return open_nofollow(AT_FDCWD, path, flags);

  /* Walk down in pieces shorter than PATH_MAX, cut at slashes. */
  int dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  const char *p = path;
  while (dfd >= 0) {
    while (*p == '/')
      p++;
    size_t rest = strlen(p);
    if (rest < PATH_MAX) {
      int fd = open_nofollow(dfd, p, flags);
      int saved = errno;
      close(dfd);
      errno = saved;
      return fd;
    }
    const char *cut = p + PATH_MAX - 1;
    while (cut > p && *cut != '/')
      cut--;
    if (cut == p) { /* a single component longer than PATH_MAX: impossible on Linux */
      close(dfd);
      errno = ENAMETOOLONG;
      return -1;
    }
    char piece[PATH_MAX];
    memcpy(piece, p, (size_t)(cut - p));
    piece[cut - p] = '\0';
    int next = open_nofollow(dfd, piece, O_PATH | O_DIRECTORY);
    int saved = errno;
    close(dfd);
    errno = saved;
    dfd = next;
    p = cut;
  }
  return -1;
}

/* Errors that mean "this file is not there as scanned" (gone, replaced by
 * something we do not follow, unreadable): its data reads as zeroes. Others
 * (out of descriptors, memory) are real errors: the guest gets EIO rather
 * than wrong bytes. */
static bool reads_as_zeroes(int err)
{
  return err == ENOENT || err == ENOTDIR || err == ELOOP || err == EACCES || err == EPERM ||
         err == ENAMETOOLONG || err == ENXIO || err == ENODEV || err == EISDIR || err == ESTALE;
}

/* Under lock: close every idle cached descriptor (we ran out of them). */
static void drop_idle(struct hostfiles *h)
{
  for (unsigned i = 0; i < h->ncache; i++)
    if (h->cache[i].id >= 0 && h->cache[i].refs == 0) {
      close(h->cache[i].fd);
      h->cache[i].id = -1;
    }
}

void hostfiles_close_deleted(struct hostfiles *h)
{
  pthread_mutex_lock(&h->lock);
  struct stat st;
  for (unsigned i = 0; i < h->ncache; i++)
    if (h->cache[i].id >= 0 && h->cache[i].refs == 0 && fstat(h->cache[i].fd, &st) == 0 && st.st_nlink == 0) {
      close(h->cache[i].fd);
      h->cache[i].id = -1;
    }
  pthread_mutex_unlock(&h->lock);
}

/* Open file ID as scanned: no symlink followed on the way, and the same
 * regular file (device and inode) that the scan saw, else -1 with ESTALE.
 * O_NONBLOCK: a fifo put in its place must not block the open (we hold the
 * lock); it is then refused like any other file that is not the one scanned. */
static int open_scanned(const struct hostfile *f, const char *path)
{
  int fd = hostfiles_open_path(path, O_RDONLY | O_NONBLOCK);
  if (fd == -1)
    return -1;
  struct stat st;
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_ino != f->ino || st.st_dev != f->dev) {
    close(fd);
    errno = ESTALE;
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/* Under lock: open file ID, logging (once) why it reads as zeroes. Returns
 * the fd, or -1 with errno. */
static int open_file(struct hostfiles *h, uint32_t id)
{
  struct hostfile *f = &h->files[id];
  const char *path = h->paths + f->path_off;
  int fd = open_scanned(f, path);
  if (fd == -1 && (errno == EMFILE || errno == ENFILE)) {
    drop_idle(h);
    fd = open_scanned(f, path);
  }
  if (fd == -1) {
    int saved = errno;
    if (!f->warned && h->log)
      h->log(h->log_opaque, "%s: cannot open (%s)%s", path,
             saved == ESTALE ? "not the file scanned: replaced, or reached through a symlink" : strerror(saved),
             reads_as_zeroes(saved) ? "; its data reads as zeroes" : "");
    f->warned = reads_as_zeroes(saved);
    errno = saved;
    return -1;
  }
  return fd;
}

/* Under lock: a cache entry holding file ID with a reference taken, or NULL
 * with *fd set to an uncached descriptor (all entries busy) or -1. */
static struct cached_fd *acquire(struct hostfiles *h, uint32_t id, int *fd)
{
  struct cached_fd *victim = NULL;
  h->clock++;
  for (unsigned i = 0; i < h->ncache; i++) {
    struct cached_fd *c = &h->cache[i];
    if (c->id == id) {
      c->refs++;
      c->last_use = h->clock;
      return c;
    }
    if (c->refs == 0 && (!victim || c->id == -1 || (victim->id != -1 && c->last_use < victim->last_use)))
      victim = c;
  }
  *fd = open_file(h, id);
  if (*fd == -1 || !victim)
    return NULL;
  if (victim->id >= 0)
    close(victim->fd);
  *victim = (struct cached_fd){ .id = id, .fd = *fd, .refs = 1, .last_use = h->clock };
  return victim;
}

int hostfiles_read(void *opaque, uint32_t id, void *buf, size_t len, uint64_t offset)
{
  struct hostfiles *h = opaque;
  int fd = -1;
  pthread_mutex_lock(&h->lock);
  struct cached_fd *c = acquire(h, id, &fd);
  int open_err = errno;
  if (c)
    fd = c->fd;
  pthread_mutex_unlock(&h->lock);
  if (fd == -1 && !reads_as_zeroes(open_err)) {
    errno = open_err;
    return -1;
  }

  int ret = 0, saved = 0;
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = fd >= 0 ? pread(fd, p, len, (off_t)offset) : 0;
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      ret = -1;
      saved = errno;
      break;
    }
    if (n == 0) { /* end of file (it shrank), or no file: zeroes */
      memset(p, 0, len);
      break;
    }
    p += n;
    offset += (uint64_t)n;
    len -= (size_t)n;
  }

  if (c) {
    pthread_mutex_lock(&h->lock);
    c->refs--;
    pthread_mutex_unlock(&h->lock);
  } else if (fd >= 0) {
    close(fd);
  }
  errno = saved;
  return ret;
}
