/* A layout to a registry and back through skopeo, never by our own HTTP; to
 * a tar and back through libarchive (see oci-transfer.h). */
#include "oci-transfer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "subprocess.h"
#include "util.h"

#define CHUNK (1 << 20)

char *oci_docker_ref(const char *ref)
{
  return strncmp(ref, "docker://", 9) == 0 ? xstrdup(ref) : xasprintf("docker://%s", ref);
}

/* skopeo copy [options] SRC DEST; one line and 125 when it fails. */
static void skopeo_copy(const struct oci_registry *r, bool push, const char *src, const char *dest, const char *ref)
{
  struct strv argv = {0};
  strv_push(&argv, "skopeo");
  strv_push(&argv, "copy");
  strv_push(&argv, "--quiet");
  if (r->authfile)
    strv_pushf(&argv, "--authfile=%s", r->authfile);
  if (r->tls_verify_off)
    strv_push(&argv, push ? "--dest-tls-verify=false" : "--src-tls-verify=false");
  strv_push(&argv, src);
  strv_push(&argv, dest);
  char line[1024];
  int st = run_checked(argv.v, line, sizeof line);
  strv_free(&argv);
  if (st == -1)
    fail(EXIT_TOOL_FAILED, "cannot run skopeo (%s); install it: apt-get install skopeo", line);
  if (st != 0)
    fail(EXIT_TOOL_FAILED, "skopeo cannot %s %s: %s; check the reference, 'skopeo login' or --tls-verify=false",
         push ? "push to" : "pull", ref, line);
}

void oci_registry_push(const struct oci_registry *r, const char *layout, const char *tag, const char *ref)
{
  CLEANUP_FREE char *src = xasprintf("oci:%s:%s", layout, tag);
  CLEANUP_FREE char *dest = oci_docker_ref(ref);
  skopeo_copy(r, true, src, dest, ref);
}

void oci_registry_pull(const struct oci_registry *r, const char *ref, const char *layout, const char *tag)
{
  CLEANUP_FREE char *src = oci_docker_ref(ref);
  CLEANUP_FREE char *dest = xasprintf("oci:%s:%s", layout, tag);
  skopeo_copy(r, false, src, dest, ref);
}

/* ---- tar ------------------------------------------------------------------- */

static noreturn void archive_failed(struct archive *a, const char *file)
{
  fail(EXIT_TOOL_FAILED, "%s: %s; check the file and the free space", file, archive_error_string(a));
}

/* The file LAYOUT/NAME as the entry NAME (a directory when DIR). */
static void add_entry(struct archive *a, struct archive_entry *ae, const char *layout, const char *name, const char *file)
{
  CLEANUP_FREE char *path = xasprintf("%s/%s", layout, name);
  struct stat st;
  if (stat(path, &st) == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", path, strerror(errno));
  archive_entry_clear(ae);
  archive_entry_set_pathname(ae, name);
  archive_entry_set_mode(ae, S_ISDIR(st.st_mode) ? S_IFDIR | 0755 : S_IFREG | 0644);
  archive_entry_set_size(ae, S_ISDIR(st.st_mode) ? 0 : st.st_size);
  archive_entry_set_mtime(ae, st.st_mtime, 0);
  if (archive_write_header(a, ae) != ARCHIVE_OK)
    archive_failed(a, file);
  if (S_ISDIR(st.st_mode))
    return;
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  CLEANUP_FREE char *buf = xrealloc(NULL, CHUNK);
  ssize_t n;
  if (fd == -1)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", path, strerror(errno));
  while ((n = read(fd, buf, CHUNK)) > 0)
    if (archive_write_data(a, buf, (size_t)n) != n)
      archive_failed(a, file);
  if (n < 0)
    fail(EXIT_TOOL_FAILED, "cannot read %s: %s", path, strerror(errno));
}

void oci_tar_write(const char *layout, const char *file)
{
  CLEANUP_FREE char *tmp = xasprintf("%s.tmp-%ld", file, (long)getpid());
  struct archive *a = archive_write_new();
  if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK || archive_write_add_filter_none(a) != ARCHIVE_OK ||
      archive_write_open_filename(a, tmp) != ARCHIVE_OK)
    archive_failed(a, file);
  struct archive_entry *ae = archive_entry_new();
  const char *fixed[] = {"oci-layout", "index.json", "blobs", "blobs/sha256"};
  for (size_t i = 0; i < 4; i++)
    add_entry(a, ae, layout, fixed[i], file);
  CLEANUP_FREE char *blobs = xasprintf("%s/blobs/sha256", layout);
  DIR *d = opendir(blobs);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      CLEANUP_FREE char *name = xasprintf("blobs/sha256/%s", e->d_name);
      add_entry(a, ae, layout, name, file);
    }
  if (d)
    closedir(d);
  archive_entry_free(ae);
  if (archive_write_close(a) != ARCHIVE_OK)
    archive_failed(a, file);
  archive_write_free(a);
  if (rename(tmp, file) == -1) {
    unlink(tmp);
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the permissions of its directory", file, strerror(errno));
  }
}

/* Whether NAME (without a leading "./") is a path of a layout we take. */
static bool layout_path(const char *name, bool dir)
{
  if (dir)
    return strcmp(name, "blobs") == 0 || strcmp(name, "blobs/sha256") == 0;
  if (strcmp(name, "oci-layout") == 0 || strcmp(name, "index.json") == 0)
    return true;
  return strncmp(name, "blobs/sha256/", 13) == 0 && strlen(name + 13) == 64 &&
         strspn(name + 13, "0123456789abcdef") == 64;
}

static noreturn void read_failed(struct archive *a, const char *file)
{
  fail(EXIT_TOOL_FAILED, "%s: %s; give a bundle made by 'vmexec image export' (an OCI layout in a tar)", file,
       archive_error_string(a));
}

static void extract_entry(struct archive *a, const char *path, const char *file)
{
  CLEANUP_CLOSE int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", path, strerror(errno));
  if (archive_read_data_into_fd(a, fd) != ARCHIVE_OK)
    read_failed(a, file);
}

void oci_tar_read(const char *file, const char *layout)
{
  struct archive *a = archive_read_new();
  if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK || archive_read_support_filter_all(a) != ARCHIVE_OK ||
      archive_read_open_filename(a, file, CHUNK) != ARCHIVE_OK)
    read_failed(a, file);
  CLEANUP_FREE char *blobs = xasprintf("%s/blobs", layout);
  CLEANUP_FREE char *sha = xasprintf("%s/blobs/sha256", layout);
  if (mkdir(layout, 0755) == -1 || mkdir(blobs, 0755) == -1 || mkdir(sha, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space", sha, strerror(errno));
  struct archive_entry *ae;
  int r;
  while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
    const char *name = archive_entry_pathname(ae);
    if (strncmp(name, "./", 2) == 0)
      name += 2;
    size_t len = strlen(name);
    CLEANUP_FREE char *clean = xstrdup(name);
    if (len && clean[len - 1] == '/')
      clean[len - 1] = '\0';
    bool dir = archive_entry_filetype(ae) == AE_IFDIR;
    if (!clean[0] || (dir && layout_path(clean, true)))
      continue;
    if (archive_entry_filetype(ae) != AE_IFREG || !layout_path(clean, false))
      fail(EXIT_TOOL_FAILED, "%s: '%s' is not part of an OCI image layout; it is not a vmexec image bundle", file, name);
    CLEANUP_FREE char *path = xasprintf("%s/%s", layout, clean);
    extract_entry(a, path, file);
  }
  if (r != ARCHIVE_EOF)
    read_failed(a, file);
  archive_read_free(a);
}
