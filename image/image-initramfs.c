#include "image-initramfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "image-modules.h"
#include "util.h"

struct entry {
  char *path;      /* in the archive, no leading '/' */
  char *host_path; /* file data or symlink target source; NULL for none */
  char *data;      /* literal contents (add_bytes, NUL-terminated) or symlink target */
  mode_t mode;     /* type and permissions */
  unsigned major, minor;
  int is_module;
  uint64_t size;   /* for the estimate */
  time_t mtime;
  size_t seq;      /* order of addition, so later entries win */
};

struct initramfs {
  struct entry *v;
  size_t n, cap;
  uint64_t data_size;
};

struct initramfs *initramfs_new(void)
{
  struct initramfs *ir = xrealloc(NULL, sizeof *ir);
  memset(ir, 0, sizeof *ir);
  return ir;
}

void initramfs_free(struct initramfs *ir)
{
  if (!ir)
    return;
  for (size_t i = 0; i < ir->n; i++) {
    free(ir->v[i].path);
    free(ir->v[i].host_path);
    free(ir->v[i].data);
  }
  free(ir->v);
  free(ir);
}

static struct entry *add(struct initramfs *ir, const char *path, mode_t mode)
{
  if (ir->n == ir->cap) {
    ir->cap = ir->cap ? ir->cap * 2 : 1024;
    ir->v = xrealloc(ir->v, ir->cap * sizeof *ir->v);
  }
  struct entry *e = &ir->v[ir->n];
  memset(e, 0, sizeof *e);
  e->path = xstrdup(path);
  e->mode = mode;
  e->seq = ir->n++;
  return e;
}

void initramfs_add_dir(struct initramfs *ir, const char *path, mode_t mode)
{
  add(ir, path, S_IFDIR | (mode & 07777));
}

void initramfs_add_chardev(struct initramfs *ir, const char *path, mode_t mode, unsigned major, unsigned minor)
{
  struct entry *e = add(ir, path, S_IFCHR | (mode & 07777));
  e->major = major;
  e->minor = minor;
}

void initramfs_add_symlink(struct initramfs *ir, const char *path, const char *target)
{
  struct entry *e = add(ir, path, S_IFLNK | 0777);
  e->data = xstrdup(target);
}

void initramfs_add_file(struct initramfs *ir, const char *path, const char *host_path, mode_t mode)
{
  struct stat st;
  if (stat(host_path, &st) == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", host_path, strerror(errno));
  struct entry *e = add(ir, path, S_IFREG | (mode & 07777));
  e->host_path = xstrdup(host_path);
  e->size = (uint64_t)st.st_size;
  e->mtime = st.st_mtime;
  ir->data_size += e->size;
}

void initramfs_add_bytes(struct initramfs *ir, const char *path, const void *data, size_t len, mode_t mode)
{
  struct entry *e = add(ir, path, S_IFREG | (mode & 07777));
  e->data = xrealloc(NULL, len + 1);
  memcpy(e->data, data, len);
  e->data[len] = '\0';
  e->size = len;
  ir->data_size += e->size;
}

void initramfs_add_data(struct initramfs *ir, const char *path, const char *data, mode_t mode)
{
  initramfs_add_bytes(ir, path, data, strlen(data), mode);
}

void initramfs_add_module(struct initramfs *ir, const char *path, const char *host_path)
{
  initramfs_add_file(ir, path, host_path, 0644);
  ir->v[ir->n - 1].is_module = 1;
}

static int skipped(const char *rel, const char *const *skip)
{
  for (size_t i = 0; skip && skip[i]; i++)
    if (fnmatch(skip[i], rel, FNM_PATHNAME) == 0)
      return 1;
  return 0;
}

static void walk(struct initramfs *ir, const char *dir, const char *rel, const char *const *skip)
{
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  if (n == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", dir, strerror(errno));
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
      CLEANUP_FREE char *path = xasprintf("%s/%s", dir, name);
      CLEANUP_FREE char *r = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
      struct stat st;
      if (skipped(r, skip))
        ;
      else if (lstat(path, &st) == -1)
        fail(EXIT_TOOL_FAILED, "cannot read %s: %s", path, strerror(errno));
      else if (S_ISDIR(st.st_mode)) {
        /* No mtime: extracting several packages into one directory changes
         * it, and the archive should only depend on the packages. */
        add(ir, r, st.st_mode);
        walk(ir, path, r, skip);
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len == -1)
          fail(EXIT_TOOL_FAILED, "cannot read the link %s: %s", path, strerror(errno));
        target[len] = '\0';
        initramfs_add_symlink(ir, r, target);
        ir->v[ir->n - 1].mtime = st.st_mtime;
      } else if (S_ISREG(st.st_mode)) {
        initramfs_add_file(ir, r, path, st.st_mode);
      }
      /* Packages ship no device nodes, sockets or fifos we would need. */
    }
    free(names[i]);
  }
  free(names);
}

void initramfs_add_tree(struct initramfs *ir, const char *root, const char *const *skip)
{
  walk(ir, root, "", skip);
}

static int by_path_then_seq(const void *a, const void *b)
{
  const struct entry *x = a, *y = b;
  int c = strcmp(x->path, y->path);
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort; of entries with the same path keep the last added. */
static void sort_entries(struct initramfs *ir)
{
  qsort(ir->v, ir->n, sizeof *ir->v, by_path_then_seq);
  size_t j = 0;
  for (size_t i = 0; i < ir->n; i++) {
    if (j > 0 && strcmp(ir->v[j - 1].path, ir->v[i].path) == 0) {
      struct entry *old = &ir->v[j - 1];
      ir->data_size -= old->size;
      free(old->path);
      free(old->host_path);
      free(old->data);
      *old = ir->v[i];
    } else {
      ir->v[j++] = ir->v[i];
    }
  }
  ir->n = j;
}

int initramfs_has(const struct initramfs *ir, const char *path)
{
  for (size_t i = 0; i < ir->n; i++)
    if (strcmp(ir->v[i].path, path) == 0)
      return 1;
  return 0;
}

uint64_t initramfs_data_size(const struct initramfs *ir)
{
  return ir->data_size;
}

/* The bytes of a regular entry: literal, a module without signature, or a file. */
static char *entry_bytes(struct entry *e, size_t *len)
{
  if (e->data) {
    *len = (size_t)e->size;
    char *copy = xrealloc(NULL, *len + 1);
    memcpy(copy, e->data, *len + 1);
    return copy;
  }
  char *buf;
  if (read_file(e->host_path, &buf, len) == -1) {
    /* dpkg-deb keeps the package's modes: a file may lack the owner's read bit. */
    if (errno != EACCES || chmod(e->host_path, (e->mode & 07777) | 0400) == -1 || read_file(e->host_path, &buf, len) == -1)
      fail(EXIT_TOOL_FAILED, "cannot read %s: %s", e->host_path, strerror(errno));
  }
  if (e->is_module)
    *len = module_unsigned_size((const unsigned char *)buf, *len);
  return buf;
}

static noreturn void archive_failed(struct archive *a, const char *out)
{
  fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space in %s", out, archive_error_string(a), out);
}

void initramfs_write(struct initramfs *ir, const char *out)
{
  sort_entries(ir);
  struct archive *a = archive_write_new();
  if (!a)
    fail(EXIT_TOOL_FAILED, "out of memory");
  /* The kernel unpacks newc; compression would only cost boot time. */
  if (archive_write_set_format_cpio_newc(a) != ARCHIVE_OK || archive_write_add_filter_none(a) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK || archive_write_open_filename(a, out) != ARCHIVE_OK)
    archive_failed(a, out);
  struct archive_entry *ae = archive_entry_new();
  for (size_t i = 0; i < ir->n; i++) {
    struct entry *e = &ir->v[i];
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, e->path);
    archive_entry_set_mode(ae, e->mode);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    /* Every entry is its own inode: the kernel links entries with nlink > 1
     * and equal inode numbers, and hard links from packages are rare. */
    archive_entry_set_nlink(ae, S_ISDIR(e->mode) ? 2 : 1);
    archive_entry_set_ino64(ae, (int64_t)i + 1);
    archive_entry_set_mtime(ae, e->mtime, 0);
    archive_entry_set_size(ae, 0); /* the newc writer wants a size on every entry */
    CLEANUP_FREE char *bytes = NULL;
    size_t len = 0;
    if (S_ISLNK(e->mode)) {
      archive_entry_set_symlink(ae, e->data);
    } else if (S_ISCHR(e->mode)) {
      archive_entry_set_rdevmajor(ae, e->major);
      archive_entry_set_rdevminor(ae, e->minor);
    } else if (S_ISREG(e->mode)) {
      bytes = entry_bytes(e, &len);
      archive_entry_set_size(ae, (la_int64_t)len);
    }
    if (archive_write_header(a, ae) != ARCHIVE_OK)
      archive_failed(a, out);
    if (len > 0 && archive_write_data(a, bytes, len) != (la_ssize_t)len)
      archive_failed(a, out);
  }
  archive_entry_free(ae);
  if (archive_write_close(a) != ARCHIVE_OK)
    archive_failed(a, out);
  archive_write_free(a);
}
