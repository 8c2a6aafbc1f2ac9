/* The patch layer of a share generation: host files that changed in place
 * (or were made, or are gone: whiteouts), and directories made, after the
 * guest had read them or their directory (WIRE_PATCH from the supervisor's
 * share-patch.c), kept at their host paths under PATCH_DIR/GEN. The
 * generation's image never changes under the guest, so without this a
 * file that a test harness rewrites between two calls (xz's test_compress:
 * compress to a file, decompress it in the next call) cost a new
 * generation: a mount, a namespace made anew, every program read and
 * translated by qemu again, the old one's pages cleared, about 50 ms of
 * the guest's time under TCG. share.c mounts a root or view with patches
 * beneath it as an overlay over the patch directory and the generation's;
 * a namespace made before the latest patch is not kept as a spare.
 *
 * A file is written to a temporary name outside the tree and renamed into
 * place when whole, so a run (of another caller, at once) sees the old file
 * or the new one. The directories of the layer take the owner, mode and
 * times of the generation's, since an overlay shows the top layer's. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent.h"
#include "wire-msg.h"

#define PATCH_DIR RUN_DIR "/patch"

static struct {
  int fd;               /* the file being received, or -1 */
  uint64_t left;        /* its bytes still to come */
  struct wire_patch m;
  char tmp[64];
  bool dirs_made;       /* its make_parents made directories in the layer */
} cur = { .fd = -1 };

static unsigned serial; /* patches completed */

unsigned share_patch_serial(void)
{
  return serial;
}

/* A directory of GEN's layer made or removed at host PATH, or a name
 * hidden there (a whiteout): overlays mounted before that looked PATH up
 * (or lack the layer, made now) show what was (share_spare_layer_changed).
 * A file put in a directory the layer had is found by any later lookup. */
static void layer_changed(uint32_t gen, const char *path)
{
  share_spare_layer_changed(gen, path[0] ? path : "/");
}

static void patch_path(uint32_t gen, const char *path, char *buf, size_t cap)
{
  snprintf(buf, cap, PATCH_DIR "/%u%s", gen, path);
}

/* PATH in generation GEN's own (EROFS) tree, beneath its layer. */
static void generation_path(uint32_t gen, const char *path, char *buf, size_t cap)
{
  snprintf(buf, cap, SHARE_DIR "/%u%s", gen, path);
}

/* Set on a directory of the layer that replaces the generation's (an
 * overlay shows nothing of the layers below it). */
#define OPAQUE_XATTR "trusted.overlay.opaque"

/* DIR of the layer (PATCH_DIR/GEN + REL) takes the generation's REL's
 * owner, mode and times, unless it replaces that (a WIRE_WB_DIR patch:
 * it has the host's). */
static void dir_as_generation(uint32_t gen, const char *dir, const char *rel)
{
  char lower[PATH_MAX + 64];
  struct stat st;
  generation_path(gen, rel, lower, sizeof lower);
  if (stat(lower, &st) == -1 || getxattr(dir, OPAQUE_XATTR, NULL, 0) >= 0)
    return;
  if (chown(dir, st.st_uid, st.st_gid) == -1 || chmod(dir, st.st_mode & 07777) == -1)
    agent_log("cannot set the owner of %s: %s", dir, strerror(errno));
  struct timespec t[2] = { st.st_atim, st.st_mtim };
  utimensat(AT_FDCWD, dir, t, 0);
}

/* The directories above PATH in GEN's layer, made as the generation's (a
 * directory made in one changes its times: the generation's again). How
 * many were made, or -1. */
static int make_parents(uint32_t gen, const char *path)
{
  int made = 0;
  char dir[PATH_MAX + 64];
  patch_path(gen, "", dir, sizeof dir);
  mkdir(PATCH_DIR, 0755);
  if (mkdir(dir, 0755) == 0) {
    made++;
    layer_changed(gen, "/");
    dir_as_generation(gen, dir, "/");
  }
  size_t base = strlen(dir), parent = base;
  for (const char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    size_t len = base + (size_t)(slash - path);
    if (len >= sizeof dir)
      return -1;
    memcpy(dir + base, path, (size_t)(slash - path));
    dir[len] = '\0';
    if (mkdir(dir, 0755) == 0) {
      made++;
      layer_changed(gen, dir + base);
      dir_as_generation(gen, dir, dir + base);
      dir[parent] = '\0';
      dir_as_generation(gen, dir, parent > base ? dir + base : "/");
      dir[parent] = '/';
    } else if (errno != EEXIST) {
      return -1;
    }
    parent = len;
  }
  return made;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if ((type == FTW_DP ? rmdir(path) : unlink(path)) == -1)
    agent_log("cannot remove %s: %s", path, strerror(errno));
  return 0;
}

/* What GEN's layer has at PATH (IN_LAYER there: a file, or a directory of
 * earlier patches whose host directory was replaced or removed) goes: true
 * if there was something. */
static bool remove_in_layer(uint32_t gen, const char *path, const char *in_layer)
{
  struct stat st;
  if (lstat(in_layer, &st) == -1)
    return false;
  if (S_ISDIR(st.st_mode)) {
    layer_changed(gen, path);
    nftw(in_layer, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  }
  else if (unlink(in_layer) == -1)
    agent_log("cannot remove %s: %s", in_layer, strerror(errno));
  return true;
}

static void abandon(void)
{
  if (cur.fd >= 0) {
    close(cur.fd);
    unlink(cur.tmp);
  }
  cur.fd = -1;
}

/* The directory of host PATH (into BUF, PATH_MAX bytes), "/" for a top one. */
static const char *parent_of(const char *path, char *buf)
{
  snprintf(buf, PATH_MAX, "%.*s", (int)(strrchr(path, '/') - path), path);
  return buf[0] ? buf : "/";
}

/* PATH of GEN, at IN_LAYER in the layer, was patched: the directory the
 * change was made in gets the generation's times again, and namespaces
 * made before are not kept. */
static void patched(uint32_t gen, char *in_layer, const char *path, bool replaced_file)
{
  *strrchr(in_layer, '/') = '\0';
  char rel[PATH_MAX];
  dir_as_generation(gen, in_layer, parent_of(path, rel));
  serial++;
  share_spare_patched(gen, path, replaced_file);
}

/* The file is whole: into place, as the host has it. */
static void finish(void)
{
  const struct wire_wb *f = &cur.m.file;
  struct timespec t[2] = { { .tv_sec = (time_t)f->mtime_sec, .tv_nsec = f->mtime_nsec },
                           { .tv_sec = (time_t)f->mtime_sec, .tv_nsec = f->mtime_nsec } };
  char final[PATH_MAX + 64];
  patch_path(cur.m.gen, f->path, final, sizeof final);
  struct stat st;
  /* A regular file by one of that name, in the layer or (not hidden) in the
   * generation, the layer's directories as they were (a spare's overlays
   * know where it has some): the name's dentries stay positive and the
   * file is found where they look (share_spare_patched). */
  bool replaced_file = f->kind == WIRE_WB_FILE && !cur.dirs_made;
  if (lstat(final, &st) == 0) {
    replaced_file = replaced_file && S_ISREG(st.st_mode);
    if (S_ISDIR(st.st_mode))
      remove_in_layer(cur.m.gen, f->path, final); /* the host's directory became this file */
  } else { /* the generation's, unless the layer's directory hides it (opaque) */
    char lower[PATH_MAX + 64], parent[PATH_MAX], layer_dir[PATH_MAX + 64];
    generation_path(cur.m.gen, f->path, lower, sizeof lower);
    replaced_file = replaced_file && lstat(lower, &st) == 0 && S_ISREG(st.st_mode) &&
                    !share_patch_whole(cur.m.gen, parent_of(f->path, parent), layer_dir, sizeof layer_dir);
  }
  if (fchown(cur.fd, cur.m.uid, cur.m.gid) == -1 || fchmod(cur.fd, f->mode & 07777) == -1 ||
      futimens(cur.fd, t) == -1 || close(cur.fd) == -1 || rename(cur.tmp, final) == -1) {
    agent_log("cannot patch %s in share generation %u: %s", f->path, cur.m.gen, strerror(errno));
    cur.fd = -1;
    unlink(cur.tmp);
    return;
  }
  cur.fd = -1;
  patched(cur.m.gen, final, f->path, replaced_file);
}

/* An absolute path of plain names: no "", ".", ".." component. */
static bool plain_path(const char *p)
{
  if (p[0] != '/')
    return false;
  for (const char *c = p + 1;; c = strchr(c, '/') + 1) {
    size_t len = strcspn(c, "/");
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (!c[len])
      return true;
  }
}

/* The host's PATH is gone: its file in the layer goes, and a whiteout (a
 * character device 0:0, which an overlay's lower layer may hold too) hides
 * the generation's, if it has one. */
static void patch_delete(uint32_t gen, const char *path)
{
  char in_layer[PATH_MAX + 64], lower[PATH_MAX + 64];
  struct stat st;
  patch_path(gen, path, in_layer, sizeof in_layer);
  generation_path(gen, path, lower, sizeof lower);
  bool hide = lstat(lower, &st) == 0;
  if (!remove_in_layer(gen, path, in_layer) && !hide)
    return; /* a name made and removed between two calls */
  if (hide)
    layer_changed(gen, path);
  if (hide && (make_parents(gen, path) == -1 || mknod(in_layer, S_IFCHR | 0600, makedev(0, 0)) == -1)) {
    agent_log("cannot hide %s in share generation %u: %s", path, gen, strerror(errno));
    return;
  }
  patched(gen, in_layer, path, false);
}

/* The host's PATH is a directory made since the guest listed its parent,
 * or made anew (the generation's was removed): made anew in the layer,
 * empty (what the layer had there goes), as the host has it; the
 * generation's, if it has one, hidden (opaque). What it holds comes in
 * the patches that follow. Namespaces made before are kept when nothing
 * was at PATH: none of them can have looked it up but as missing. */
static void patch_dir(uint32_t gen, const struct wire_patch *m)
{
  const char *path = m->file.path;
  char in_layer[PATH_MAX + 64], lower[PATH_MAX + 64];
  struct stat st;
  patch_path(gen, path, in_layer, sizeof in_layer);
  generation_path(gen, path, lower, sizeof lower);
  bool replaces = lstat(lower, &st) == 0;
  bool had = remove_in_layer(gen, path, in_layer);
  struct timespec t[2] = { { .tv_sec = (time_t)m->file.mtime_sec, .tv_nsec = m->file.mtime_nsec },
                           { .tv_sec = (time_t)m->file.mtime_sec, .tv_nsec = m->file.mtime_nsec } };
  if (make_parents(gen, path) == -1 || mkdir(in_layer, 0700) == -1 ||
      (replaces && setxattr(in_layer, OPAQUE_XATTR, "y", 1, 0) == -1) || chown(in_layer, m->uid, m->gid) == -1 ||
      chmod(in_layer, m->file.mode & 07777) == -1 || utimensat(AT_FDCWD, in_layer, t, 0) == -1) {
    agent_log("cannot patch directory %s in share generation %u: %s", path, gen, strerror(errno));
    return;
  }
  if (replaces || had)
    layer_changed(gen, path);
  patched(gen, in_layer, path, false);
}

void share_patch_begin(const uint8_t *p, size_t n)
{
  abandon();
  if (!wire_decode_patch(p, n, &cur.m) || !plain_path(cur.m.file.path)) {
    agent_log("ignoring a malformed WIRE_PATCH");
    return;
  }
  if (cur.m.file.kind == WIRE_WB_DELETE) {
    patch_delete(cur.m.gen, cur.m.file.path);
    return;
  }
  if (cur.m.file.kind == WIRE_WB_DIR) {
    patch_dir(cur.m.gen, &cur.m);
    return;
  }
  snprintf(cur.tmp, sizeof cur.tmp, PATCH_DIR "/%u.tmp", cur.m.gen);
  int made = make_parents(cur.m.gen, cur.m.file.path);
  cur.dirs_made = made > 0;
  if (made == -1 ||
      (cur.fd = open(cur.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1) {
    agent_log("cannot patch %s in share generation %u: %s", cur.m.file.path, cur.m.gen, strerror(errno));
    return;
  }
  cur.left = cur.m.file.size;
  if (cur.left == 0)
    finish();
}

void share_patch_data(const uint8_t *p, size_t n)
{
  if (cur.fd < 0)
    return;
  if (n > cur.left) {
    agent_log("WIRE_PATCH_DATA beyond the size of %s", cur.m.file.path);
    abandon();
    return;
  }
  for (size_t done = 0; done < n;) {
    ssize_t w = write(cur.fd, p + done, n - done);
    if (w == -1 && errno == EINTR)
      continue;
    if (w <= 0) {
      agent_log("cannot patch %s in share generation %u: %s", cur.m.file.path, cur.m.gen, strerror(errno));
      abandon();
      return;
    }
    done += (size_t)w;
  }
  if ((cur.left -= n) == 0)
    finish();
}

bool share_patch_dir(uint32_t gen, const char *path, char *buf, size_t cap)
{
  struct stat st;
  patch_path(gen, path, buf, cap);
  return lstat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

bool share_patch_whole(uint32_t gen, const char *path, char *buf, size_t cap)
{
  if (!share_patch_dir(gen, path, buf, cap))
    return false;
  char lower[PATH_MAX + 64], up[PATH_MAX + 64];
  struct stat st;
  generation_path(gen, path, lower, sizeof lower);
  if (stat(lower, &st) == -1 || !S_ISDIR(st.st_mode))
    return true;
  patch_path(gen, "", up, sizeof up);
  size_t base = strlen(up);
  snprintf(up, sizeof up, "%s", buf);
  for (char *slash; strlen(up) > base; *slash = '\0') {
    char v;
    if (getxattr(up, OPAQUE_XATTR, &v, 1) == 1 && v == 'y')
      return true;
    slash = strrchr(up, '/');
  }
  return false;
}

int share_patch_open(uint32_t gen, const char *path)
{
  char in_layer[PATH_MAX + 64], dir[PATH_MAX + 64];
  struct stat st;
  if (!plain_path(path))
    return -1;
  patch_path(gen, path, in_layer, sizeof in_layer);
  if (lstat(in_layer, &st) == 0) /* patched, or hidden (a whiteout) */
    return S_ISREG(st.st_mode) ? open(in_layer, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
  /* Not in a directory the layer holds whole (the generation's is hidden). */
  snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
  if (dir[0] && share_patch_whole(gen, dir, in_layer, sizeof in_layer))
    return -1;
  generation_path(gen, path, in_layer, sizeof in_layer);
  int fd = open(in_layer, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))) {
    close(fd);
    return -1;
  }
  return fd;
}

void share_patch_drop(uint32_t gen)
{
  char dir[64];
  patch_path(gen, "", dir, sizeof dir);
  remove_in_layer(gen, "/", dir);
}
