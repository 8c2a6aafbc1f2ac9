/* Write-back: what a run changed under its writable roots, sent to the host
 * after the program ended and before WIRE_EXIT.
 *
 * The overlay's upper layer of a writable root holds exactly what the run
 * created, changed or deleted: new and changed files, symlinks and
 * directories (a file opened for writing is copied up whole, so every upper
 * file counts as changed), whiteouts (character devices 0:0) for deletions,
 * and opaque directories (xattr trusted.overlay.opaque "y") that replaced a
 * directory of the share. It is walked in pre-order, so parents come before
 * their children, and each entry becomes one WIRE_WB frame; a file's bytes
 * follow in WIRE_WB_DATA frames of at most 64 KiB, counted against the run's
 * output credit like stdout.
 *
 * The walk is an iterator (a stack of open directories) that the event loop
 * advances while there is credit and the port keeps up, so a large write-back
 * never blocks other runs. Hard links in the upper layer go as separate files.
 * Sockets, fifos and devices are left out, with a line in the log. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent.h"
#include "wire-msg.h"

#define WB_CHUNK (64 * 1024)
/* Stop adding frames while this much waits for the port. */
#define WB_BACKLOG (256 * 1024)

struct level {
  DIR *d;
  size_t rel_len; /* length of rel for this directory */
};

struct writeback {
  const struct share *s;
  uint32_t run;
  size_t root;         /* the root being walked; s->nroots when done */
  bool walking;        /* the root's upper dir is open */
  struct level *stack;
  size_t depth, cap;
  char *rel;           /* the current path below the root: "" or "/a/b" */
  size_t rel_cap;
  int file_fd;         /* the file whose bytes are being sent, or -1 */
  uint64_t file_left;
};

struct writeback *writeback_start(const struct share *s, uint32_t run)
{
  struct writeback *wb = calloc(1, sizeof *wb);
  if (!wb)
    return NULL;
  wb->s = s;
  wb->run = run;
  wb->file_fd = -1;
  wb->rel_cap = 256;
  if (!(wb->rel = calloc(1, wb->rel_cap))) {
    free(wb);
    return NULL;
  }
  return wb;
}

void writeback_free(struct writeback *wb)
{
  if (!wb)
    return;
  for (size_t i = 0; i < wb->depth; i++)
    closedir(wb->stack[i].d);
  if (wb->file_fd >= 0)
    close(wb->file_fd);
  free(wb->stack);
  free(wb->rel);
  free(wb);
}

static bool rel_push(struct writeback *wb, const char *name)
{
  size_t len = strlen(wb->rel), n = strlen(name);
  if (len + n + 2 > wb->rel_cap) {
    size_t cap = (len + n + 2) * 2;
    char *p = realloc(wb->rel, cap);
    if (!p)
      return false;
    wb->rel = p;
    wb->rel_cap = cap;
  }
  wb->rel[len] = '/';
  memcpy(wb->rel + len + 1, name, n + 1);
  return true;
}

/* The current entry (its guest path: root + rel) as a WIRE_WB of KIND; ST:
 * the file's, for WIRE_WB_FILE (size and mtime); NULL otherwise. False if
 * it could not be sent (a path longer than the host takes). */
static bool send_wb(struct writeback *wb, uint32_t kind, uint32_t mode, const char *target, const struct stat *st)
{
  static struct wire_wb m; /* the agent is single-threaded */
  static uint8_t buf[sizeof m.path + sizeof m.target + 64];
  m.kind = kind;
  m.mode = mode;
  int n = snprintf(m.path, sizeof m.path, "%s%s", wb->s->roots[wb->root].path, wb->rel);
  bool fits = n >= 0 && (size_t)n < sizeof m.path;
  if (kind == WIRE_WB_SYMLINK)
    fits = fits && snprintf(m.target, sizeof m.target, "%s", target) < (int)sizeof m.target;
  if (kind == WIRE_WB_FILE) {
    m.size = (uint64_t)st->st_size;
    m.mtime_sec = (uint64_t)st->st_mtim.tv_sec;
    m.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
  }
  size_t len;
  if (!fits || !wire_encode_wb(&m, buf, sizeof buf, &len)) {
    agent_log("run %u: path too long to write back: %.200s...", wb->run, m.path);
    return false;
  }
  agent_send(WIRE_WB, wb->run, buf, len);
  return true;
}

/* What the generation has at the current path: 'd' a directory, 'o' something
 * else, 0 nothing. */
static char lower_kind(const struct writeback *wb)
{
  char *p;
  if (asprintf(&p, SHARE_DIR "/%u%s%s", wb->s->gen, wb->s->roots[wb->root].path, wb->rel) < 0)
    return 0;
  struct stat st;
  char k = lstat(p, &st) == -1 ? 0 : S_ISDIR(st.st_mode) ? 'd' : 'o';
  free(p);
  return k;
}

static bool is_opaque(int fd)
{
  char v[4];
  ssize_t n = fgetxattr(fd, "trusted.overlay.opaque", v, sizeof v);
  return n == 1 && v[0] == 'y';
}

/* Descend into the directory FD (the current path); false if it cannot be read. */
static bool push_dir(struct writeback *wb, int fd)
{
  DIR *d = NULL;
  if (fd >= 0 && wb->depth == wb->cap) {
    struct level *p = reallocarray(wb->stack, wb->cap * 2 + 8, sizeof *p);
    if (p) {
      wb->stack = p;
      wb->cap = wb->cap * 2 + 8;
    }
  }
  if (fd < 0 || wb->depth == wb->cap || !(d = fdopendir(fd))) {
    agent_log("run %u: cannot read the run's changes in %s%s: %s", wb->run, wb->s->roots[wb->root].path,
              wb->rel, strerror(errno));
    if (fd >= 0)
      close(fd);
    return false;
  }
  wb->stack[wb->depth++] = (struct level){ .d = d, .rel_len = strlen(wb->rel) };
  return true;
}

/* One entry of the directory on top of the stack. */
static void visit(struct writeback *wb, int dir_fd, const char *name)
{
  size_t rel_len = strlen(wb->rel);
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 || !rel_push(wb, name)) {
    agent_log("run %u: cannot write back %s/%s: %s", wb->run, wb->rel, name, strerror(errno));
    return;
  }
  uint32_t mode = st.st_mode & 07777;
  if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
    send_wb(wb, WIRE_WB_DELETE, 0, NULL, NULL); /* a whiteout */
  } else if (S_ISDIR(st.st_mode)) {
    int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* An opaque directory replaced the share's: its old contents go first. */
    if ((fd >= 0 && is_opaque(fd)) || lower_kind(wb) == 'o')
      send_wb(wb, WIRE_WB_DELETE, 0, NULL, NULL);
    send_wb(wb, WIRE_WB_DIR, mode, NULL, NULL);
    if (push_dir(wb, fd))
      return; /* rel stays: it is the new top's path */
  } else if (S_ISREG(st.st_mode)) {
    if (lower_kind(wb) == 'd')
      send_wb(wb, WIRE_WB_DELETE, 0, NULL, NULL);
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1) {
      agent_log("run %u: cannot write back %s%s: %s", wb->run, wb->s->roots[wb->root].path, wb->rel,
                strerror(errno));
    } else if (!send_wb(wb, WIRE_WB_FILE, mode, NULL, &st)) {
      close(fd); /* no data without its change */
    } else {
      wb->file_fd = fd;
      wb->file_left = (uint64_t)st.st_size;
    }
  } else if (S_ISLNK(st.st_mode)) {
    if (lower_kind(wb) == 'd')
      send_wb(wb, WIRE_WB_DELETE, 0, NULL, NULL);
    size_t cap = (size_t)st.st_size + 2;
    char *target = malloc(cap);
    ssize_t n = target ? readlinkat(dir_fd, name, target, cap) : -1;
    if (n >= 0 && (size_t)n < cap) {
      target[n] = '\0';
      send_wb(wb, WIRE_WB_SYMLINK, 0777, target, NULL);
    } else {
      agent_log("run %u: cannot write back the symlink %s%s", wb->run, wb->s->roots[wb->root].path, wb->rel);
    }
    free(target);
  } else {
    agent_log("run %u: not writing back %s%s: not a file, directory or symlink", wb->run,
              wb->s->roots[wb->root].path, wb->rel);
  }
  wb->rel[rel_len] = '\0';
}

/* Up to one chunk of the current file, within credit. */
static void send_data(struct writeback *wb, uint32_t *credit)
{
  static uint8_t buf[WB_CHUNK];
  size_t want = wb->file_left < WB_CHUNK ? (size_t)wb->file_left : WB_CHUNK;
  if (want > *credit)
    want = *credit;
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(wb->file_fd, buf + got, want - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      /* Shrunk or unreadable: the host still gets the size announced. */
      agent_log("run %u: short read writing back a file (%s); padded with zeroes", wb->run,
                n == 0 ? "end of file" : strerror(errno));
      memset(buf + got, 0, want - got);
      break;
    }
    got += (size_t)n;
  }
  agent_send(WIRE_WB_DATA, wb->run, buf, want);
  *credit -= (uint32_t)want;
  wb->file_left -= want;
  if (wb->file_left == 0) {
    close(wb->file_fd);
    wb->file_fd = -1;
  }
}

/* Open the next writable root's upper layer; false when there is none. */
static bool next_root(struct writeback *wb)
{
  if (wb->walking)
    wb->root++;
  wb->walking = false;
  for (; wb->root < wb->s->nroots; wb->root++) {
    if (!wb->s->roots[wb->root].writable)
      continue;
    char upper[160];
    snprintf(upper, sizeof upper, "%s/upper/%zu", wb->s->rw, wb->root);
    wb->rel[0] = '\0';
    if (push_dir(wb, open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC))) {
      wb->walking = true;
      return true;
    }
  }
  return false;
}

bool writeback_step(struct writeback *wb, uint32_t *credit)
{
  while (agent_backlog() < WB_BACKLOG) {
    if (wb->file_fd >= 0) {
      if (*credit == 0)
        return false;
      send_data(wb, credit);
      continue;
    }
    if (wb->depth == 0) {
      if (!next_root(wb))
        return true;
      continue;
    }
    struct level *top = &wb->stack[wb->depth - 1];
    wb->rel[top->rel_len] = '\0';
    errno = 0;
    struct dirent *e = readdir(top->d);
    if (!e) {
      if (errno)
        agent_log("run %u: cannot read the run's changes in %s%s: %s", wb->run,
                  wb->s->roots[wb->root].path, wb->rel, strerror(errno));
      closedir(top->d);
      wb->depth--;
      continue;
    }
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    visit(wb, dirfd(top->d), e->d_name);
  }
  return false;
}
