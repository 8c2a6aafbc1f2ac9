/* Unpacking packages as dpkg --unpack would (see image-dpkg.h). Each .deb is
 * read twice through dpkg-deb, the canonical reader of the format: its
 * control archive (dpkg-deb --ctrl-tarfile) into memory, then its data
 * archive (dpkg-deb --fsys-tarfile) streamed through libarchive onto the
 * disk, which gives the file list and the owners in the same pass.
 *
 * Not dpkg-deb -x: its tar replaces the root's bin -> usr/bin symlinks with
 * directories, so the packages would land in an unmerged /usr. dpkg itself
 * follows a symlink where a package has a directory, and so do we, within
 * the root (resolve_parent).
 *
 * The formats follow dpkg 1.21 (src/main/unpack.c, lib/dpkg/dump.c): every
 * control file but "control" and names with a dot become
 * info/NAME.FILE, NAME being PACKAGE:ARCH for Multi-Arch: same packages; the
 * status entry is the control file with "Status: install ok unpacked" and a
 * Conffiles field whose hashes are "newconffile" (dpkg's mark for a conffile
 * that has no configured version yet; configure then installs PATH.dpkg-new
 * as PATH). triggers/ is left without its Unincorp file: dpkg then derives
 * every package's trigger interests from info/NAME.triggers when it first
 * opens the database for writing (trig_transitional_activate in
 * src/main/trigproc.c), as unpacking would have recorded them. */
#include "image-dpkg.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdnoreturn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "subprocess.h"
#include "util.h"
#include "paths.h"

/* The packages' files are owned by the user who unpacked them and carry no
 * setuid bits: the first boot gives them to root, runs the preinsts (which
 * dpkg runs before unpacking; base-passwd's writes /etc/passwd and
 * /etc/group), puts back the owners and modes a user could not set, and
 * lets the target's dpkg configure everything. POSIX sh, run by the agent as
 * root in the image with /proc, /sys and /dev mounted, its output on the
 * console. No --force option: a package that does not configure is an
 * error worth seeing, not one to paper over. It needs mount (util-linux's
 * mount, Priority: required) for the bind mount of /. */
const char dpkg_firstboot_script[] =
  "#!/bin/sh\n"
  "# vmexec: the first boot of a full image configures the packages that the\n"
  "# host unpacked without root. Any failure ends it with a non-zero status.\n"
  "set -u\n"
  "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \\\n"
  "  DEBIAN_FRONTEND=noninteractive\n"
  "lib=/var/lib/vmexec\n"
  "# The image's file system alone, without what is mounted on it (the\n"
  "# directories /proc, /dev, /tmp... under the mounts are the image's too).\n"
  "top=/run/vmexec-firstboot\n"
  "start=$(date +%s)\n"
  "say() { echo \"vmexec firstboot: $* ($(($(date +%s) - start)) s)\"; }\n"
  "die() { echo \"vmexec firstboot: failed: $*\" >&2; exit 1; }\n"
  "cd / || die \"cannot change into /\"\n"
  "[ -r $lib/owners ] && [ -r $lib/order ] ||\n"
  "  die \"no $lib/owners or $lib/order: configured already, or not unpacked by vmexec\"\n"
  "mkdir -p $top && mount --bind / $top || die \"cannot bind-mount / on $top\"\n"
  "\n"
  "say \"giving the files to root\"\n"
  "find $top -xdev \\( ! -user 0 -o ! -group 0 \\) -exec chown -h 0:0 {} + || die \"cannot give the files to root\"\n"
  "\n"
  "say \"running the preinsts\"\n"
  "running=$(dpkg-query -W -f '${Version}' dpkg) || die \"dpkg-query cannot read the package database\"\n"
  "while read -r info pkg arch; do\n"
  "  script=/var/lib/dpkg/info/$info.preinst\n"
  "  [ -e \"$script\" ] || continue\n"
  "  DPKG_MAINTSCRIPT_PACKAGE=$pkg DPKG_MAINTSCRIPT_ARCH=$arch DPKG_MAINTSCRIPT_NAME=preinst \\\n"
  "    DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 DPKG_RUNNING_VERSION=$running DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT='' \\\n"
  "    \"$script\" install </dev/null || die \"the preinst of $info\"\n"
  "done <$lib/order\n"
  "\n"
  "say \"restoring owners and modes\"\n"
  "while read -r mode user group uid gid path; do\n"
  "  f=$top$path\n"
  "  chown -h \"$user:$group\" \"$f\" 2>/dev/null || chown -h \"$uid:$gid\" \"$f\" || die \"chown $path\"\n"
  "  # chown clears the setuid and setgid bits: the mode comes after it.\n"
  "  [ -h \"$f\" ] || chmod \"$mode\" \"$f\" || die \"chmod $mode $path\"\n"
  "done <$lib/owners\n"
  "umount $top && rmdir $top || die \"cannot unmount $top\"\n"
  "\n"
  "say \"dpkg --configure -a\"\n"
  "# dpkg.cfg, which names the log, is one of the conffiles not in place yet.\n"
  "dpkg --log=/var/log/dpkg.log --configure -a || die \"dpkg --configure -a\"\n"
  "audit=$(dpkg --audit) || die \"dpkg --audit\"\n"
  "[ -z \"$audit\" ] || die \"dpkg --audit: $audit\"\n"
  "rm -f $lib/owners $lib/order || die \"cannot remove $lib/owners\"\n"
  "say \"configured\"\n";

/* Whose preinst runs before all others: base-passwd's creates /etc/passwd
 * and /etc/group, which other preinsts and the owners list need. */
static const char first_preinst[] = "base-passwd";

/* Top-level directories that are symlinks into usr/ (merged /usr): the first
 * three always, the others when a package has files there (as usrmerge's
 * convert-usrmerge and debootstrap make them). */
static const char *const aliased[] = {"bin", "sbin", "lib", "lib32", "lib64", "libo32", "libx32"};
#define ALWAYS_ALIASED 3

/* The longest symlink chain followed (the kernel's limit). */
#define MAX_LINKS 40

struct dpkg_root {
  char *root, *name;
  FILE *status, *owners;
  struct strv order;
  struct dpkg_totals totals;
  /* The last parent directory resolved, and what it resolved to. */
  char *cached_parent, *cached_resolved;
};

/* One control file of a package, in memory. */
struct member {
  char *name, *data;
  size_t len;
  mode_t mode;
};

struct package {
  const char *deb;
  struct member *members;
  size_t n_members;
  char *name, *arch, *info; /* info: the info file base name */
  struct strv conffiles;    /* the paths dpkg installs as PATH.dpkg-new */
  char *conffiles_field;    /* the status entry's Conffiles field, or "" */
};

/* ---- small helpers ------------------------------------------------------------ */

static void mkdir_or_fail(const struct dpkg_root *r, const char *rel, mode_t mode)
{
  CLEANUP_FREE char *path = xasprintf("%s/%s", r->root, rel);
  if (mkdir(path, mode) == -1 && errno != EEXIST)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space in %s", path, strerror(errno), cache_dir());
}

static void write_or_fail(const struct dpkg_root *r, const char *rel, const void *data, size_t len, mode_t mode)
{
  CLEANUP_FREE char *path = xasprintf("%s/%s", r->root, rel);
  /* The mode as given, whatever the umask. */
  if (write_file_atomic(path, data, len) == -1 || chmod(path, mode) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space in %s", path, strerror(errno), cache_dir());
}

static FILE *open_or_fail(const struct dpkg_root *r, const char *rel)
{
  CLEANUP_FREE char *path = xasprintf("%s/%s", r->root, rel);
  FILE *f = fopen(path, "we");
  if (!f)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space in %s", path, strerror(errno), cache_dir());
  return f;
}

static void close_or_fail(const struct dpkg_root *r, FILE *f, const char *what)
{
  if (ferror(f) | (fclose(f) != 0))
    fail(EXIT_TOOL_FAILED, "[%s] cannot write %s in %s; check the free space in %s", r->name, what, r->root,
         cache_dir());
}

/* The value of control field NAME (its first line), malloc'd, or NULL. */
static char *control_field(const char *control, const char *name)
{
  size_t k = strlen(name);
  for (const char *p = control; *p;) {
    if (strncmp(p, name, k) == 0 && p[k] == ':') {
      const char *v = p + k + 1;
      v += strspn(v, " \t");
      size_t n = strcspn(v, "\n");
      while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
      return xasprintf("%.*s", (int)n, v);
    }
    p += strcspn(p, "\n");
    if (*p)
      p++;
  }
  return NULL;
}

/* A tar member name as dpkg lists it: "./usr/bin/x/" -> "usr/bin/x"; the
 * root itself is "". */
static char *relative_name(const char *name)
{
  while (name[0] == '.' && name[1] == '/')
    name += 2;
  while (name[0] == '/')
    name++;
  if (strcmp(name, ".") == 0)
    name = "";
  size_t n = strlen(name);
  while (n > 0 && name[n - 1] == '/')
    n--;
  return xasprintf("%.*s", (int)n, name);
}

static bool in_strv(const struct strv *s, const char *str)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i], str) == 0)
      return true;
  return false;
}

/* ---- paths within the root ------------------------------------------------------ */

/* DIR (relative to the root) with every symlink in it followed as in a
 * chroot to the root: absolute targets start again at the root, and ".."
 * never leaves it. Components that do not exist are taken as they are. */
static char *resolve_dir(const struct dpkg_root *r, const char *dir)
{
  char todo[2 * PATH_MAX], done[PATH_MAX] = "";
  snprintf(todo, sizeof todo, "%s", dir);
  const char *p = todo;
  int links = 0;
  while (*p) {
    p += strspn(p, "/");
    size_t n = strcspn(p, "/");
    if (n == 0)
      break;
    char comp[NAME_MAX + 1];
    snprintf(comp, sizeof comp, "%.*s", (int)n, p);
    p += n;
    if (strcmp(comp, ".") == 0)
      continue;
    if (strcmp(comp, "..") == 0) {
      char *slash = strrchr(done, '/');
      *(slash ? slash : done) = '\0';
      continue;
    }
    char candidate[PATH_MAX];
    if (snprintf(candidate, sizeof candidate, "%s%s%s", done, done[0] ? "/" : "", comp) >= (int)sizeof candidate)
      fail(EXIT_TOOL_FAILED, "[%s] path too long in a package: %s; report it", r->name, dir);
    CLEANUP_FREE char *full = xasprintf("%s/%s", r->root, candidate);
    char target[PATH_MAX];
    ssize_t len = readlink(full, target, sizeof target - 1);
    if (len < 0) {
      snprintf(done, sizeof done, "%s", candidate);
      continue;
    }
    target[len] = '\0';
    if (++links > MAX_LINKS)
      fail(EXIT_TOOL_FAILED, "[%s] too many levels of symlinks at /%s in the image; report it", r->name, candidate);
    if (target[0] == '/')
      done[0] = '\0';
    char next[2 * PATH_MAX];
    if (snprintf(next, sizeof next, "%s/%s", target, p) >= (int)sizeof next)
      fail(EXIT_TOOL_FAILED, "[%s] path too long in a package: %s; report it", r->name, dir);
    memcpy(todo, next, strlen(next) + 1);
    p = todo;
  }
  return xstrdup(done);
}

/* REL's parent directories resolved (resolve_dir), its last component kept:
 * where dpkg in the guest would put REL. */
static char *resolve_parent(struct dpkg_root *r, const char *rel)
{
  const char *slash = strrchr(rel, '/');
  if (!slash)
    return xstrdup(rel);
  CLEANUP_FREE char *parent = xasprintf("%.*s", (int)(slash - rel), rel);
  /* Members come directory by directory: one resolution serves many. */
  if (!r->cached_parent || strcmp(r->cached_parent, parent) != 0) {
    free(r->cached_parent);
    free(r->cached_resolved);
    r->cached_resolved = resolve_dir(r, parent);
    r->cached_parent = xstrdup(parent);
  }
  return xasprintf("%s%s%s", r->cached_resolved, r->cached_resolved[0] ? "/" : "", slash + 1);
}

static void forget_resolved(struct dpkg_root *r)
{
  free(r->cached_parent);
  free(r->cached_resolved);
  r->cached_parent = r->cached_resolved = NULL;
}

/* DIR -> usr/DIR, unless the root has DIR already; whether it made it. */
static bool alias_dir(const struct dpkg_root *r, const char *dir)
{
  CLEANUP_FREE char *link = xasprintf("%s/%s", r->root, dir);
  CLEANUP_FREE char *usr = xasprintf("usr/%s", dir);
  struct stat st;
  if (lstat(link, &st) == 0)
    return false;
  mkdir_or_fail(r, "usr", 0755);
  mkdir_or_fail(r, usr, 0755);
  if (symlink(usr, link) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space in %s", link, strerror(errno), cache_dir());
  return true;
}

/* A package has REL: if its first component is an aliased directory, make it one. */
static void alias_top(struct dpkg_root *r, const char *rel)
{
  size_t n = strcspn(rel, "/");
  for (size_t i = ALWAYS_ALIASED; i < sizeof aliased / sizeof aliased[0]; i++)
    if (strlen(aliased[i]) == n && strncmp(rel, aliased[i], n) == 0 && alias_dir(r, aliased[i]))
      forget_resolved(r);
}

/* ---- the control archive -------------------------------------------------------- */

/* dpkg-deb OPTION DEB, its output read as a tar archive. */
struct deb_tar {
  const char *option, *deb;
  pid_t pid;
  int out_fd, err_fd;
  struct archive *a;
};

/* Wait for dpkg-deb; its error line into buf, or NULL if it succeeded. */
static const char *deb_tar_end(struct deb_tar *t, char *buf, size_t cap)
{
  if (t->a)
    archive_read_free(t->a);
  t->a = NULL;
  struct run_output out;
  int st = run_finish(t->pid, t->out_fd, t->err_fd, &out);
  const char *line = st == 0 ? NULL : run_error_line(&out, buf, cap);
  run_output_free(&out);
  return line;
}

/* The archive cannot be read: dpkg-deb's complaint if it has one (a broken
 * package), else libarchive's. */
static noreturn void deb_tar_fail(const struct dpkg_root *r, struct deb_tar *t, const char *what)
{
  char libarchive[512], line[512];
  snprintf(libarchive, sizeof libarchive, "%s", archive_error_string(t->a) ? archive_error_string(t->a) : "?");
  const char *dpkg_deb = deb_tar_end(t, line, sizeof line);
  fail(EXIT_TOOL_FAILED, "[%s] cannot read %s of %s: %s; remove the file and build again", r->name, what, t->deb,
       dpkg_deb ? dpkg_deb : libarchive);
}

static void deb_tar_open(const struct dpkg_root *r, struct deb_tar *t, const char *option, const char *deb)
{
  *t = (struct deb_tar){.option = option, .deb = deb};
  char *argv[] = {"dpkg-deb", (char *)option, (char *)deb, NULL};
  t->pid = run_start(argv, &t->out_fd, &t->err_fd);
  if (t->pid == -1)
    fail(EXIT_TOOL_FAILED, "[%s] cannot run dpkg-deb: %s; install dpkg", r->name, strerror(errno));
  t->a = archive_read_new();
  if (!t->a)
    fail(EXIT_TOOL_FAILED, "out of memory");
  archive_read_support_format_tar(t->a);
  archive_read_support_filter_none(t->a);
  if (archive_read_open_fd(t->a, t->out_fd, 65536) != ARCHIVE_OK)
    deb_tar_fail(r, t, strcmp(option, "--ctrl-tarfile") == 0 ? "the control archive" : "the files");
}

static void deb_tar_close(const struct dpkg_root *r, struct deb_tar *t)
{
  char line[512];
  if (deb_tar_end(t, line, sizeof line))
    fail(EXIT_TOOL_FAILED, "[%s] dpkg-deb %s %s failed: %s; remove the file and build again", r->name, t->option,
         t->deb, line);
}

static void read_control(const struct dpkg_root *r, struct package *pkg)
{
  struct deb_tar t;
  deb_tar_open(r, &t, "--ctrl-tarfile", pkg->deb);
  struct archive_entry *e;
  int rc;
  while ((rc = archive_read_next_header(t.a, &e)) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG)
      continue;
    CLEANUP_FREE char *name = relative_name(archive_entry_pathname(e));
    size_t cap = (size_t)archive_entry_size(e);
    char *data = xrealloc(NULL, cap + 1);
    la_ssize_t got = archive_read_data(t.a, data, cap);
    if (got < 0 || (size_t)got != cap)
      deb_tar_fail(r, &t, "a control file");
    data[cap] = '\0';
    pkg->members = xrealloc(pkg->members, (pkg->n_members + 1) * sizeof *pkg->members);
    pkg->members[pkg->n_members++] =
      (struct member){.name = xstrdup(name), .data = data, .len = cap, .mode = archive_entry_perm(e)};
  }
  if (rc != ARCHIVE_EOF)
    deb_tar_fail(r, &t, "the control archive");
  deb_tar_close(r, &t);
}

static const struct member *member(const struct package *pkg, const char *name)
{
  for (size_t i = 0; i < pkg->n_members; i++)
    if (strcmp(pkg->members[i].name, name) == 0)
      return &pkg->members[i];
  return NULL;
}

/* Package, Architecture, the info name, and the conffiles (lines "/PATH"
 * or "FLAG /PATH"; only remove-on-upgrade exists, for a file the package
 * no longer has). */
static void parse_control(const struct dpkg_root *r, struct package *pkg)
{
  const struct member *control = member(pkg, "control");
  if (!control)
    fail(EXIT_TOOL_FAILED, "[%s] %s has no control file; remove the file and build again", r->name, pkg->deb);
  pkg->name = control_field(control->data, "Package");
  pkg->arch = control_field(control->data, "Architecture");
  CLEANUP_FREE char *multiarch = control_field(control->data, "Multi-Arch");
  if (!pkg->name || !pkg->arch || !pkg->name[0] || strchr(pkg->name, '/') || strchr(pkg->arch, '/'))
    fail(EXIT_TOOL_FAILED, "[%s] %s has no valid Package or Architecture field; remove the file and build again",
         r->name, pkg->deb);
  bool same = multiarch && strcmp(multiarch, "same") == 0;
  pkg->info = same ? xasprintf("%s:%s", pkg->name, pkg->arch) : xstrdup(pkg->name);

  struct strv field = {0};
  const struct member *conffiles = member(pkg, "conffiles");
  CLEANUP_FREE char *text = xstrdup(conffiles ? conffiles->data : "");
  char *save;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (n == 0)
      continue;
    const char *flag = "", *path = line;
    if (line[0] != '/') {
      char *space = strchr(line, ' ');
      if (!space || strncmp(line, "remove-on-upgrade ", 18) != 0 || space[1] != '/')
        fail(EXIT_TOOL_FAILED, "[%s] %s: conffiles line '%s' is not understood; report it", r->name, pkg->deb, line);
      *space = '\0';
      flag = " remove-on-upgrade";
      path = space + 1;
    } else {
      strv_push(&pkg->conffiles, path);
    }
    strv_pushf(&field, " %s newconffile%s\n", path, flag);
  }
  CLEANUP_FREE char *lines = strv_join(&field, "");
  pkg->conffiles_field = field.n ? xasprintf("Conffiles:\n%s", lines) : xstrdup("");
  strv_free(&field);
}

/* ---- the data archive --------------------------------------------------------------- */

static void add_totals(struct dpkg_totals *t, struct archive_entry *e)
{
  const uint64_t block = 4096;
  uint64_t size = archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
  if (archive_entry_hardlink(e))
    return;
  t->inodes++;
  switch (archive_entry_filetype(e)) {
  case AE_IFREG:
    t->bytes += (size + block - 1) / block * block;
    break;
  case AE_IFDIR:
    t->bytes += block;
    break;
  case AE_IFLNK:
    /* ext4 keeps targets up to 59 bytes in the inode. */
    if (strlen(archive_entry_symlink(e) ? archive_entry_symlink(e) : "") > 59)
      t->bytes += block;
    break;
  default:
    break;
  }
}

/* A line of the owners list when E is something a user cannot unpack as is. */
static void note_owner(struct dpkg_root *r, struct archive_entry *e, const char *path)
{
  mode_t mode = archive_entry_mode(e);
  bool special = !S_ISLNK(mode) && (mode & 07000);
  if (archive_entry_uid(e) == 0 && archive_entry_gid(e) == 0 && !special)
    return;
  if (strchr(path, '\n'))
    fail(EXIT_TOOL_FAILED, "[%s] a file name with a newline in a package (%s); report it", r->name, path);
  char uid[32], gid[32];
  snprintf(uid, sizeof uid, "%lld", (long long)archive_entry_uid(e));
  snprintf(gid, sizeof gid, "%lld", (long long)archive_entry_gid(e));
  const char *user = archive_entry_uname(e), *group = archive_entry_gname(e);
  fprintf(r->owners, "%04o %s %s %s %s %s\n", (unsigned)(mode & 07777), user && *user ? user : uid,
          group && *group ? group : gid, uid, gid, path);
}

/* Where a member of type TYPE at REL goes (absolute on the host), or NULL
 * when dpkg would leave the disk alone: a directory where the root has a
 * symlink (dpkg follows it), a symlink where the root has a directory (dpkg
 * never replaces one). A conffile goes to PATH.dpkg-new, and *CONFFILE says so. */
static char *destination(struct dpkg_root *r, const struct package *pkg, const char *rel, mode_t type, bool *conffile)
{
  CLEANUP_FREE char *resolved = resolve_parent(r, rel);
  CLEANUP_FREE char *path = xasprintf("%s/%s", r->root, resolved);
  struct stat st;
  if (lstat(path, &st) == 0 && ((type == AE_IFDIR && S_ISLNK(st.st_mode)) || (type == AE_IFLNK && S_ISDIR(st.st_mode))))
    return NULL;
  CLEANUP_FREE char *abs = xasprintf("/%s", rel);
  *conffile = in_strv(&pkg->conffiles, abs);
  return *conffile ? xasprintf("%s.dpkg-new", path) : xstrdup(path);
}

static void copy_data(const struct dpkg_root *r, struct deb_tar *t, struct archive *w, const char *rel)
{
  const void *buf;
  size_t size;
  la_int64_t offset;
  int rc;
  while ((rc = archive_read_data_block(t->a, &buf, &size, &offset)) == ARCHIVE_OK)
    if (archive_write_data_block(w, buf, size, offset) < ARCHIVE_WARN)
      fail(EXIT_TOOL_FAILED, "[%s] cannot unpack /%s of %s: %s; check the free space in %s", r->name, rel, t->deb,
           archive_error_string(w), cache_dir());
  if (rc != ARCHIVE_EOF)
    deb_tar_fail(r, t, "the files");
}

/* Unpack the files of PKG, writing its file list. */
static void unpack_data(struct dpkg_root *r, const struct package *pkg)
{
  struct deb_tar t;
  deb_tar_open(r, &t, "--fsys-tarfile", pkg->deb);
  struct archive *w = archive_write_disk_new();
  if (!w)
    fail(EXIT_TOOL_FAILED, "out of memory");
  /* Modes and times as packaged; never owners (the first boot sets them);
   * a file replaces what an earlier package left at its path. */
  archive_write_disk_set_options(w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |
                                      ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  CLEANUP_FREE char *list_path = xasprintf("var/lib/dpkg/info/%s.list", pkg->info);
  FILE *list = open_or_fail(r, list_path);
  struct archive_entry *e;
  int rc;
  while ((rc = archive_read_next_header(t.a, &e)) == ARCHIVE_OK) {
    CLEANUP_FREE char *rel = relative_name(archive_entry_pathname(e));
    fprintf(list, "/%s\n", rel[0] ? rel : ".");
    if (!rel[0])
      continue;
    add_totals(&r->totals, e);
    alias_top(r, rel);
    mode_t type = archive_entry_filetype(e);
    bool conffile;
    CLEANUP_FREE char *dest = destination(r, pkg, rel, type, &conffile);
    if (!dest)
      continue;
    /* The guest finds a conffile where dpkg's unpack leaves it. */
    CLEANUP_FREE char *guest_path = xasprintf("/%s%s", rel, conffile ? ".dpkg-new" : "");
    note_owner(r, e, guest_path);
    archive_entry_copy_pathname(e, dest);
    if (archive_entry_hardlink(e)) {
      CLEANUP_FREE char *target_rel = relative_name(archive_entry_hardlink(e));
      bool target_conffile;
      CLEANUP_FREE char *target = destination(r, pkg, target_rel, AE_IFREG, &target_conffile);
      archive_entry_copy_hardlink(e, target);
    }
    if (archive_write_header(w, e) < ARCHIVE_WARN)
      fail(EXIT_TOOL_FAILED, "[%s] cannot unpack /%s of %s: %s; check the free space in %s", r->name, rel, pkg->deb,
           archive_error_string(w), cache_dir());
    if (archive_entry_size(e) > 0)
      copy_data(r, &t, w, rel);
    if (archive_write_finish_entry(w) < ARCHIVE_WARN)
      fail(EXIT_TOOL_FAILED, "[%s] cannot unpack /%s of %s: %s; check the free space in %s", r->name, rel, pkg->deb,
           archive_error_string(w), cache_dir());
    if (type == AE_IFLNK)
      forget_resolved(r);
  }
  if (rc != ARCHIVE_EOF)
    deb_tar_fail(r, &t, "the files");
  /* Directory modes and times are set last, now. */
  if (archive_write_close(w) < ARCHIVE_WARN)
    fail(EXIT_TOOL_FAILED, "[%s] cannot unpack %s: %s; check the free space in %s", r->name, pkg->deb,
         archive_error_string(w), cache_dir());
  archive_write_free(w);
  close_or_fail(r, list, list_path);
  deb_tar_close(r, &t);
}

/* ---- the database ----------------------------------------------------------------------- */

/* info/NAME.FILE for every control file but control (dpkg's pkg_infodb_update). */
static void write_info(const struct dpkg_root *r, const struct package *pkg)
{
  for (size_t i = 0; i < pkg->n_members; i++) {
    const struct member *m = &pkg->members[i];
    if (strcmp(m->name, "control") == 0 || strchr(m->name, '.') || strchr(m->name, '/') || strcmp(m->name, "list") == 0)
      continue;
    CLEANUP_FREE char *rel = xasprintf("var/lib/dpkg/info/%s.%s", pkg->info, m->name);
    write_or_fail(r, rel, m->data, m->len, m->mode & 0777);
  }
}

/* The package's entry in var/lib/dpkg/status: its control file with the
 * status after the Package line and the conffiles at the end. */
static void write_status(const struct dpkg_root *r, const struct package *pkg)
{
  const char *control = member(pkg, "control")->data;
  size_t len = strlen(control);
  while (len > 0 && (control[len - 1] == '\n' || control[len - 1] == '\r' || control[len - 1] == ' '))
    len--;
  size_t first = strcspn(control, "\n");
  if (first > len)
    first = len;
  fprintf(r->status, "%.*s\nStatus: install ok unpacked\n", (int)first, control);
  if (first < len)
    fprintf(r->status, "%.*s\n", (int)(len - first - 1), control + first + 1);
  fprintf(r->status, "%s\n", pkg->conffiles_field);
}

static void package_free(struct package *pkg)
{
  for (size_t i = 0; i < pkg->n_members; i++) {
    free(pkg->members[i].name);
    free(pkg->members[i].data);
  }
  free(pkg->members);
  free(pkg->name);
  free(pkg->arch);
  free(pkg->info);
  free(pkg->conffiles_field);
  strv_free(&pkg->conffiles);
}

void dpkg_root_unpack(struct dpkg_root *r, const char *deb)
{
  struct package pkg = {.deb = deb};
  read_control(r, &pkg);
  parse_control(r, &pkg);
  if (strncmp(member(&pkg, "control")->data, "Package:", 8) != 0)
    fail(EXIT_TOOL_FAILED, "[%s] the control file of %s does not start with Package:; report it", r->name, deb);
  unpack_data(r, &pkg);
  write_info(r, &pkg);
  write_status(r, &pkg);
  strv_pushf(&r->order, "%s %s %s\n", pkg.info, pkg.name, pkg.arch);
  r->totals.packages++;
  package_free(&pkg);
}

struct dpkg_root *dpkg_root_new(const char *root, const char *name)
{
  struct dpkg_root *r = xrealloc(NULL, sizeof *r);
  memset(r, 0, sizeof *r);
  r->root = xstrdup(root);
  r->name = xstrdup(name);
  for (size_t i = 0; i < ALWAYS_ALIASED; i++)
    alias_dir(r, aliased[i]);
  const char *dirs[] = {"var",
                        "var/lib",
                        "var/lib/dpkg",
                        "var/lib/dpkg/info",
                        "var/lib/dpkg/updates",
                        "var/lib/dpkg/triggers",
                        "var/lib/dpkg/alternatives",
                        "var/lib/dpkg/parts",
                        "var/lib/vmexec"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    mkdir_or_fail(r, dirs[i], 0755);
  const char *empty[] = {"var/lib/dpkg/available", "var/lib/dpkg/diversions", "var/lib/dpkg/statoverride"};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++)
    write_or_fail(r, empty[i], "", 0, 0644);
  write_or_fail(r, "var/lib/dpkg/info/format", "1\n", 2, 0644);
  r->status = open_or_fail(r, "var/lib/dpkg/status");
  r->owners = open_or_fail(r, "var/lib/vmexec/owners");
  return r;
}

void dpkg_root_finish(struct dpkg_root *r, struct dpkg_totals *totals)
{
  close_or_fail(r, r->status, "var/lib/dpkg/status");
  close_or_fail(r, r->owners, "var/lib/vmexec/owners");
  struct strv order = {0};
  for (size_t pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < r->order.n; i++) {
      size_t n = strcspn(r->order.v[i], " ");
      bool first = n == strlen(first_preinst) && strncmp(r->order.v[i], first_preinst, n) == 0;
      if (first == (pass == 0))
        strv_push(&order, r->order.v[i]);
    }
  CLEANUP_FREE char *text = strv_join(&order, "");
  write_or_fail(r, "var/lib/vmexec/order", text, strlen(text), 0644);
  write_or_fail(r, "var/lib/vmexec/firstboot", dpkg_firstboot_script, strlen(dpkg_firstboot_script), 0755);
  strv_free(&order);
  *totals = r->totals;
  strv_free(&r->order);
  forget_resolved(r);
  free(r->root);
  free(r->name);
  free(r);
}
