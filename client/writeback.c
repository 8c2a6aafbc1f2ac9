/* Applying a run's changes to the host's trees (WIRE_WB frames).
 *
 * Every path must lie under a writable root of the call, and is resolved with
 * openat2(RESOLVE_BENEATH) from that root's directory: a "..", an absolute
 * symlink or any symlink that leads out of the root is refused by the kernel
 * itself, so a guest can never write outside the writable roots. Files and
 * symlinks are written under a temporary name and renamed into place, so a
 * crash of the guest or of vmexec never leaves a half-written file. */
#include "writeback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fail.h"
#include "fsutil.h"
#include "wire-msg.h"

static int openat2_beneath(int dirfd, const char *path, int flags)
{
  struct open_how how = { .flags = (uint64_t)flags, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

void writeback_init(struct writeback *wb, const struct share_roots *roots)
{
  memset(wb, 0, sizeof *wb);
  wb->roots = roots;
  wb->file_fd = wb->parent_fd = -1;
}

static void refuse(struct writeback *wb, const char *path, const char *why)
{
  wb->refused++;
  warning("write-back of %s refused: %s", path, why);
}

/* Open the parent directory of PATH beneath its writable root; the last
 * component goes to *base. -1 after reporting the refusal. */
static int open_parent(struct writeback *wb, const char *path, const char **base)
{
  const struct share_root *root = share_roots_writable(wb->roots, path);
  if (!root) {
    refuse(wb, path, "it is outside the writable roots (the build tree and the working directory; "
                     "--share DIR makes more writable)");
    return -1;
  }
  size_t len = strlen(root->path);
  const char *rel = path + len + (strcmp(root->path, "/") != 0);
  const char *slash = strrchr(rel, '/');
  *base = slash ? slash + 1 : rel;
  if (!**base || !strcmp(*base, ".") || !strcmp(*base, "..")) {
    refuse(wb, path, "it names a root or a parent directory");
    return -1;
  }
  int rootfd = open(root->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd == -1) {
    refuse(wb, path, strerror(errno));
    return -1;
  }
  int fd = rootfd;
  if (slash) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
    fd = openat2_beneath(rootfd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    close(rootfd);
    if (fd == -1) {
      refuse(wb, path, e == EXDEV ? "its directory leads out of the writable root (a symlink or ..)" : strerror(e));
      return -1;
    }
  }
  return fd;
}

/* rm -r NAME in directory AT, never following a symlink. */
static void remove_tree_at(int at, const char *name)
{
  if (unlinkat(at, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
    return;
  if (unlinkat(at, name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY)
    return;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      remove_tree_at(dirfd(d), e->d_name);
  closedir(d);
  unlinkat(at, name, AT_REMOVEDIR);
}

/* A name for a file being written next to its final name. */
static void temp_name(char *buf, size_t cap)
{
  static unsigned counter;
  snprintf(buf, cap, ".vmexec-wb.%d.%u", (int)getpid(), ++counter);
}

static void finish_file(struct writeback *wb)
{
  const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, wb->mtime };
  if (fchmod(wb->file_fd, wb->mode) == -1 || futimens(wb->file_fd, times) == -1 || close(wb->file_fd) == -1 ||
      renameat(wb->parent_fd, wb->temp, wb->parent_fd, wb->base) == -1) {
    refuse(wb, wb->path, strerror(errno));
    unlinkat(wb->parent_fd, wb->temp, 0);
  } else {
    wb->applied++;
  }
  wb->file_fd = -1;
  close(wb->parent_fd);
  wb->parent_fd = -1;
}

/* Drop a file in progress (the run failed, or vmexec is going down). */
void writeback_abort(struct writeback *wb)
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

static void start_change(struct writeback *wb, const uint8_t *p, size_t n)
{
  writeback_abort(wb); /* a file cut short by a new change: never half-written */
  static struct wire_wb m;
  bool ok = wire_decode_wb(p, n, &m); /* a bad path leaves m.path empty */
  wb->mode = m.mode & 07777;
  if (m.path[0] != '/') {
    refuse(wb, "(malformed)", "the guest sent a malformed change");
    return;
  }
  _Static_assert(sizeof wb->path == sizeof m.path, "the path is copied whole");
  memcpy(wb->path, m.path, sizeof wb->path);
  const char *base;
  int parent = open_parent(wb, wb->path, &base);
  if (parent == -1)
    return;
  switch (m.kind) {
  case WIRE_WB_FILE: {
    if (!ok || m.mtime_nsec >= 1000000000u) {
      refuse(wb, wb->path, "the guest sent a malformed change");
      close(parent);
      return;
    }
    wb->mtime = (struct timespec){ .tv_sec = (time_t)m.mtime_sec, .tv_nsec = m.mtime_nsec };
    temp_name(wb->temp, sizeof wb->temp);
    wb->file_fd = openat(parent, wb->temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (wb->file_fd == -1) {
      refuse(wb, wb->path, strerror(errno));
      close(parent);
      return;
    }
    snprintf(wb->base, sizeof wb->base, "%s", base);
    wb->parent_fd = parent;
    wb->file_left = m.size;
    if (m.size == 0)
      finish_file(wb);
    return;
  }
  case WIRE_WB_DIR:
    if (mkdirat(parent, base, wb->mode) == -1 && errno == EEXIST)
      fchmodat(parent, base, wb->mode, AT_SYMLINK_NOFOLLOW);
    wb->applied++;
    break;
  case WIRE_WB_SYMLINK:
    if (!ok) {
      refuse(wb, wb->path, "the guest sent a malformed symlink");
      break;
    }
    temp_name(wb->temp, sizeof wb->temp);
    if (symlinkat(m.target, parent, wb->temp) == -1 || renameat(parent, wb->temp, parent, base) == -1) {
      refuse(wb, wb->path, strerror(errno));
      unlinkat(parent, wb->temp, 0);
    } else {
      wb->applied++;
    }
    break;
  case WIRE_WB_DELETE:
    remove_tree_at(parent, base);
    wb->applied++;
    break;
  default:
    refuse(wb, wb->path, "the guest sent an unknown kind of change");
  }
  close(parent);
}

static void file_data(struct writeback *wb, const uint8_t *p, size_t n)
{
  if (wb->file_fd < 0)
    return; /* refused above: drop its bytes */
  if (n > wb->file_left) {
    refuse(wb, wb->path, "the guest sent more bytes than announced");
    writeback_abort(wb);
    return;
  }
  if (write_all(wb->file_fd, p, n) == -1) {
    refuse(wb, wb->path, strerror(errno));
    writeback_abort(wb);
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
