/* Applying a run's changes to the host's trees (WIRE_WB frames).
 *
 * What the guest may change: a path must be absolute and normalised (no
 * empty, "." or ".." component, no trailing slash), under a writable root of
 * the call whose innermost root is writable (a read-only tree nested in a
 * writable one stays read-only), not a root itself, and a change that would
 * remove or replace a directory holding another root is refused. The roots
 * are opened at init, before the run starts, following no symlink; every
 * parent is resolved beneath its root's fd with openat2, following no symlink
 * at all (the agent sends the physical paths of its overlay, so a symlink on
 * the way is never legitimate) and crossing no mount.
 *
 * What the host sees: each file is written under a temporary name next to
 * its place (WB_TEMP_PREFIX) and renamed into place, so a file is its old or
 * its new content, never a part, whenever vmexec or the guest dies. Nothing
 * is fsync'ed: a program under qemu-user gets no more than the page cache
 * either, and a sync per file cost 4 ms (3719 files in 15 s, against 0.1 s). A directory the guest replaced
 * (DELETE, then DIR of the same path, then its contents: the agent sends
 * parents before children) is built under a temporary name and swapped in
 * with one renameat2(RENAME_EXCHANGE) when its subtree is complete (the first
 * change outside it, or the end), then the old tree is removed. Other DELETEs
 * wait for the end of the write-back. Modes never carry setuid, setgid or
 * sticky bits from the guest, and the caller's umask applies. A write-back
 * cut short (lost connection, vmexec failing) removes its temporary files
 * (writeback_abort, also at exit); those of a killed vmexec are swept from a
 * directory the next write-back touches. */
#include "writeback.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "fsutil.h"
#include "wire-msg.h"
#include "writeback-fs.h"

/* The write-back in progress, for the exit handler. */
static struct writeback *active;

static void abort_at_exit(void)
{
  if (active)
    writeback_abort(active);
}

void writeback_init(struct writeback *wb, const struct share_roots *roots)
{
  static bool registered;
  memset(wb, 0, sizeof *wb);
  wb->roots = roots;
  wb->file_fd = wb->parent_fd = wb->repl.parent_fd = wb->repl.temp_fd = -1;
  for (size_t i = 0; i < SHARE_MAX_ROOTS; i++)
    wb->root_fd[i] = i < roots->n && roots->root[i].writable ? wb_open_root(roots->root[i].path) : -1;
  mode_t mask = umask(0);
  umask(mask);
  wb->umask = mask;
  if (!registered)
    atexit(abort_at_exit);
  registered = true;
  active = wb;
}

static void refuse(struct writeback *wb, const char *path, const char *why)
{
  wb->refused++;
  warning("write-back of %s refused: %s", path, why);
}

/* A change the host could not apply for error E. A full or failing disk
 * loses the program's output: the call then fails (writeback.h, lost). */
static void refuse_errno(struct writeback *wb, const char *path, int e)
{
  if (e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG)
    wb->lost++;
  refuse(wb, path, strerror(e));
}

/* The guest's mode as the host gets it: permissions only, less the umask. */
static mode_t host_mode(const struct writeback *wb)
{
  return wb->mode & 0777 & ~wb->umask;
}

static bool is_under(const char *path, const char *dir)
{
  size_t len = strlen(dir);
  return strncmp(path, dir, len) == 0 && path[len] == '/';
}

/* "/a/b": no empty, "." or ".." component, no trailing slash. */
static bool is_normal(const char *path)
{
  if (path[0] != '/')
    return false;
  for (const char *c = path + 1;; ) {
    size_t len = strcspn(c, "/");
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (!c[len])
      return true;
    c += len + 1;
  }
}

/* May the guest make a change of KIND at PATH? Refuses it if not. */
static bool allowed(struct writeback *wb, uint32_t kind, const char *path)
{
  if (!is_normal(path)) {
    refuse(wb, path, "the guest sent a path with an empty, \".\" or \"..\" component");
    return false;
  }
  const struct share_root *root = share_roots_writable(wb->roots, path);
  if (!root) {
    refuse(wb, path, "it is outside the writable roots (the build tree and the working directory; "
                     "--share DIR makes more writable)");
    return false;
  }
  if (strcmp(root->path, path) == 0) {
    refuse(wb, path, "it is a shared tree itself");
    return false;
  }
  for (size_t i = 0; kind != WIRE_WB_DIR && i < wb->roots->n; i++)
    if (is_under(wb->roots->root[i].path, path)) {
      refuse(wb, path, "it holds another shared tree");
      return false;
    }
  return true;
}

/* Sweep the leftovers of killed vmexec calls from the directory FD, once per
 * write-back. */
static void sweep_once(struct writeback *wb, int fd)
{
  struct stat st;
  if (fstat(fd, &st) == -1)
    return;
  for (size_t i = 0; i < wb->nswept; i++)
    if (wb->swept[i].dev == st.st_dev && wb->swept[i].ino == st.st_ino)
      return;
  void *p = reallocarray(wb->swept, wb->nswept + 1, sizeof *wb->swept);
  if (!p)
    return;
  wb->swept = p;
  wb->swept[wb->nswept].dev = st.st_dev;
  wb->swept[wb->nswept++].ino = st.st_ino;
  wb_sweep_stale(fd);
}

/* Open the parent directory of PATH (allowed) beneath its writable root, or
 * beneath the directory being rebuilt when it is inside; the last component
 * goes to *base. -1 after reporting the refusal. */
static int open_parent(struct writeback *wb, const char *path, const char **base)
{
  int at;
  const char *rel;
  bool in_repl = wb->repl.path[0] && is_under(path, wb->repl.path);
  if (in_repl) {
    at = wb->repl.temp_fd;
    rel = path + strlen(wb->repl.path) + 1;
    if (at == -1) {
      refuse(wb, path, "its directory could not be made");
      return -1;
    }
  } else {
    const struct share_root *root = share_roots_writable(wb->roots, path);
    at = wb->root_fd[root - wb->roots->root];
    rel = path + strlen(root->path) + (strcmp(root->path, "/") != 0);
    if (at == -1) {
      refuse(wb, path, "its shared tree could not be opened (it is gone, or a symlink now)");
      return -1;
    }
  }
  const char *slash = strrchr(rel, '/');
  *base = slash ? slash + 1 : rel;
  int fd;
  if (slash) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
    fd = wb_open_beneath(at, parent, O_PATH | O_DIRECTORY);
  } else {
    fd = fcntl(at, F_DUPFD_CLOEXEC, 3);
  }
  if (fd == -1) {
    refuse(wb, path, errno == ELOOP ? "a symlink is on its way (the guest sends real paths)"
                     : errno == EXDEV ? "its directory leads out of the writable root or across a mount"
                                      : strerror(errno));
    return -1;
  }
  if (!in_repl)
    sweep_once(wb, fd);
  return fd;
}

/* rm -r PATH (allowed), now. */
static void apply_delete(struct writeback *wb, const char *path)
{
  const char *base;
  int parent = open_parent(wb, path, &base);
  if (parent == -1)
    return;
  int e = wb_remove_tree(parent, base);
  if (e)
    refuse_errno(wb, path, e);
  else
    wb->applied++;
  close(parent);
}

/* A DELETE not followed by a new tree at its path waits for the end. */
static void defer_delete(struct writeback *wb, const char *path)
{
  char *copy = strdup(path);
  char **p = copy ? reallocarray(wb->late, wb->nlate + 1, sizeof *wb->late) : NULL;
  if (!p) {
    free(copy);
    apply_delete(wb, path);
    return;
  }
  wb->late = p;
  wb->late[wb->nlate++] = copy;
}

static void end_replacement(struct writeback *wb)
{
  struct wb_replacement *r = &wb->repl;
  if (r->temp_fd >= 0)
    close(r->temp_fd);
  if (r->parent_fd >= 0)
    close(r->parent_fd);
  r->temp_fd = r->parent_fd = -1;
  r->path[0] = '\0';
}

/* The new tree is whole: swap it in, remove the old one. */
static void complete_replacement(struct writeback *wb)
{
  struct wb_replacement *r = &wb->repl;
  if (r->temp_fd == -1) { /* refused at its start, with its contents */
    end_replacement(wb);
    return;
  }
  int e = wb_replace(r->parent_fd, r->temp, r->base);
  if (e) {
    refuse_errno(wb, r->path, e);
    wb_remove_tree(r->parent_fd, r->temp);
  } else {
    wb->applied++;
  }
  end_replacement(wb);
}

/* DIR PATH after DELETE PATH: the new directory, under a temporary name.
 * When it cannot be made, its contents are refused with it (temp_fd -1): they
 * never mix with the old tree. */
static void start_replacement(struct writeback *wb, const char *path)
{
  struct wb_replacement *r = &wb->repl;
  snprintf(r->path, sizeof r->path, "%s", path);
  const char *base;
  int parent = open_parent(wb, path, &base);
  if (parent == -1)
    return;
  wb_temp_name(r->temp, sizeof r->temp);
  if (mkdirat(parent, r->temp, host_mode(wb)) == -1 ||
      (r->temp_fd = wb_open_beneath(parent, r->temp, O_PATH | O_DIRECTORY)) == -1) {
    refuse_errno(wb, path, errno);
    unlinkat(parent, r->temp, AT_REMOVEDIR);
    close(parent);
    return;
  }
  r->parent_fd = parent;
  snprintf(r->base, sizeof r->base, "%s", base);
}

/* Before a change of KIND at PATH: the directory being rebuilt is complete
 * when the change is outside it; a DELETE waiting for this change becomes a
 * replacement when this is the same path. False when nothing more is to be
 * done (refused, a DELETE put aside, a replacement started). */
static bool prepare(struct writeback *wb, uint32_t kind, const char *path)
{
  wb->file_replaces = false;
  if (!allowed(wb, kind, path))
    return false;
  if (wb->repl.path[0] && !is_under(path, wb->repl.path))
    complete_replacement(wb);
  if (wb->deleted[0] && strcmp(wb->deleted, path) != 0) {
    defer_delete(wb, wb->deleted);
    wb->deleted[0] = '\0';
  }
  bool replaces = wb->deleted[0] != '\0'; /* this change follows a DELETE of its path */
  if (replaces && kind == WIRE_WB_DELETE)
    return false; /* the same DELETE twice */
  wb->deleted[0] = '\0';
  if (kind == WIRE_WB_DELETE && !wb->repl.path[0]) {
    snprintf(wb->deleted, sizeof wb->deleted, "%s", path);
    return false;
  }
  if (replaces && kind == WIRE_WB_DIR) {
    start_replacement(wb, path);
    return false;
  }
  wb->file_replaces = replaces;
  return true;
}

static void finish_file(struct writeback *wb)
{
  const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, wb->mtime };
  int e = 0;
  if (fchmod(wb->file_fd, host_mode(wb)) == -1 || futimens(wb->file_fd, times) == -1)
    e = errno;
  if (close(wb->file_fd) == -1 && !e)
    e = errno;
  if (!e && wb->file_replaces)
    e = wb_replace(wb->parent_fd, wb->temp, wb->base);
  else if (!e && renameat(wb->parent_fd, wb->temp, wb->parent_fd, wb->base) == -1)
    e = errno;
  if (e) {
    refuse_errno(wb, wb->path, e);
    unlinkat(wb->parent_fd, wb->temp, 0);
  } else {
    wb->applied++;
  }
  wb->file_fd = -1;
  close(wb->parent_fd);
  wb->parent_fd = -1;
}

/* Drop the file in progress: never half-written. */
static void drop_file(struct writeback *wb)
{
  if (wb->file_fd >= 0) {
    close(wb->file_fd);
    unlinkat(wb->parent_fd, wb->temp, 0);
    wb->file_fd = -1;
  }
  if (wb->parent_fd >= 0)
    close(wb->parent_fd);
  wb->parent_fd = -1;
  wb->file_left = 0;
}

/* Close what init opened and forget the write-back. */
static void release(struct writeback *wb)
{
  for (size_t i = 0; i < wb->nlate; i++)
    free(wb->late[i]);
  free(wb->late);
  wb->late = NULL;
  wb->nlate = 0;
  free(wb->swept);
  wb->swept = NULL;
  wb->nswept = 0;
  wb->deleted[0] = '\0';
  for (size_t i = 0; i < SHARE_MAX_ROOTS; i++)
    if (wb->root_fd[i] >= 0) {
      close(wb->root_fd[i]);
      wb->root_fd[i] = -1;
    }
  if (active == wb)
    active = NULL;
}

void writeback_abort(struct writeback *wb)
{
  drop_file(wb);
  if (wb->repl.path[0]) {
    if (wb->repl.temp_fd >= 0)
      wb_remove_tree(wb->repl.parent_fd, wb->repl.temp);
    end_replacement(wb);
  }
  release(wb);
}

void writeback_finish(struct writeback *wb)
{
  if (wb->file_fd >= 0)
    refuse(wb, wb->path, "the guest sent fewer bytes than announced");
  drop_file(wb);
  if (wb->repl.path[0])
    complete_replacement(wb);
  if (wb->deleted[0])
    apply_delete(wb, wb->deleted);
  for (size_t i = 0; i < wb->nlate; i++)
    apply_delete(wb, wb->late[i]);
  release(wb);
}

/* Start receiving a file; its bytes follow in WIRE_WB_DATA. */
static void start_file(struct writeback *wb, int parent, const char *base, const struct wire_wb *m)
{
  wb->mtime = (struct timespec){ .tv_sec = (time_t)m->mtime_sec, .tv_nsec = m->mtime_nsec };
  wb_temp_name(wb->temp, sizeof wb->temp);
  wb->file_fd = openat(parent, wb->temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (wb->file_fd == -1) {
    refuse_errno(wb, wb->path, errno);
    close(parent);
    return;
  }
  snprintf(wb->base, sizeof wb->base, "%s", base);
  wb->parent_fd = parent;
  wb->file_left = m->size;
  if (m->size == 0)
    finish_file(wb);
}

/* A directory: made, or when one is there, given the mode; whatever else is
 * there (a file, maybe hard-linked from outside the roots) is left alone. */
static void apply_dir(struct writeback *wb, int parent, const char *base)
{
  if (mkdirat(parent, base, host_mode(wb)) == 0) {
    wb->applied++;
    return;
  }
  int e = errno;
  if (e == EEXIST)
    e = wb_chmod_dir(parent, base, host_mode(wb));
  if (e == 0)
    wb->applied++;
  else
    refuse(wb, wb->path, e == ENOTDIR || e == ELOOP ? "the host has something else than a directory there"
                                                   : strerror(e));
}

static void apply_symlink(struct writeback *wb, int parent, const char *base, const char *target)
{
  wb_temp_name(wb->temp, sizeof wb->temp);
  int e = symlinkat(target, parent, wb->temp) == -1 ? errno : 0;
  if (!e && wb->file_replaces)
    e = wb_replace(parent, wb->temp, base);
  else if (!e && renameat(parent, wb->temp, parent, base) == -1)
    e = errno;
  if (e) {
    refuse_errno(wb, wb->path, e);
    unlinkat(parent, wb->temp, 0);
  } else {
    wb->applied++;
  }
}

static void start_change(struct writeback *wb, const uint8_t *p, size_t n)
{
  drop_file(wb); /* a file cut short by a new change: never half-written */
  static struct wire_wb m;
  bool ok = wire_decode_wb(p, n, &m); /* a bad path leaves m.path empty */
  wb->mode = m.mode & 07777;
  if (m.path[0] != '/') {
    refuse(wb, "(malformed)", "the guest sent a malformed change");
    return;
  }
  _Static_assert(sizeof wb->path == sizeof m.path, "the path is copied whole");
  memcpy(wb->path, m.path, sizeof wb->path);
  if (!ok || (m.kind == WIRE_WB_FILE && m.mtime_nsec >= 1000000000u)) {
    refuse(wb, wb->path, "the guest sent a malformed change");
    return;
  }
  if (m.kind < WIRE_WB_FILE || m.kind > WIRE_WB_DELETE) {
    refuse(wb, wb->path, "the guest sent an unknown kind of change");
    return;
  }
  if (!prepare(wb, m.kind, wb->path))
    return;
  const char *base;
  int parent = open_parent(wb, wb->path, &base);
  if (parent == -1)
    return;
  switch (m.kind) {
  case WIRE_WB_FILE:
    start_file(wb, parent, base, &m);
    return; /* it keeps the parent */
  case WIRE_WB_DIR:
    apply_dir(wb, parent, base);
    break;
  case WIRE_WB_SYMLINK:
    apply_symlink(wb, parent, base, m.target);
    break;
  case WIRE_WB_DELETE: { /* inside a directory being rebuilt: its tree is new */
    int e = wb_remove_tree(parent, base);
    if (e)
      refuse_errno(wb, wb->path, e);
    else
      wb->applied++;
    break;
  }
  }
  close(parent);
}

static void file_data(struct writeback *wb, const uint8_t *p, size_t n)
{
  if (wb->file_fd < 0)
    return; /* refused above: drop its bytes */
  if (n > wb->file_left) {
    refuse(wb, wb->path, "the guest sent more bytes than announced");
    drop_file(wb);
    return;
  }
  if (write_all(wb->file_fd, p, n) == -1) {
    refuse_errno(wb, wb->path, errno);
    drop_file(wb);
    return;
  }
  wb->file_left -= n;
  if (wb->file_left == 0)
    finish_file(wb);
}

void writeback_frame(struct writeback *wb, uint16_t type, const uint8_t *p, size_t n)
{
  if (type == WIRE_WB)
    start_change(wb, p, n);
  else if (type == WIRE_WB_DATA)
    file_data(wb, p, n);
}
