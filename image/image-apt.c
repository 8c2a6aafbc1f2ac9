#include "image-apt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cleanup.h"
#include "fail.h"
#include "subprocess.h"
#include "fsutil.h"
#include "paths.h"

/* Package lists older than this are refreshed (when the network allows). */
#define LISTS_MAX_AGE (24 * 60 * 60)
/* After a failed refresh, the next try comes this much later. */
#define RETRY_AFTER (60 * 60)

static const char sources_fix[] = "check the network or the sources in /etc/apt/sources.list.d";

/* ---- running apt ---------------------------------------------------------- */

/* Run PROG (apt-get or apt-cache) with our options and ARGS; fail with apt's
 * last error line and FIX unless it succeeds. */
static void apt_run(struct apt *a, const char *what, const char *fix, const char *cwd, const char *prog,
                    char *const args[], struct run_output *out)
{
  struct strv argv = {0};
  strv_push(&argv, prog);
  strv_push(&argv, "-q");
  for (size_t i = 0; i < a->opts.n; i++)
    strv_push(&argv, a->opts.v[i]);
  for (size_t i = 0; args[i]; i++)
    strv_push(&argv, args[i]);
  CLEANUP_FREE char *conf = xasprintf("APT_CONFIG=%s/apt.conf", a->dir);
  /* apt's messages are parsed, so they must not be translated. */
  char *env[] = {conf, "LC_ALL=C", NULL};
  int st = run_capture(argv.v, cwd, env, out);
  int e = errno;
  strv_free(&argv);
  if (st == -1)
    fail(EXIT_TOOL_FAILED, "cannot run %s: %s; install apt (it is part of every Debian system)", prog, strerror(e));
  if (st != 0) {
    char line[512];
    fail(EXIT_TOOL_FAILED, "[%s] %s failed: %s; %s", a->t->name, what, run_error_line(out, line, sizeof line), fix);
  }
}

/* ---- the private state directory ------------------------------------------ */

static void write_or_fail(const char *path, const void *data, size_t len)
{
  if (write_file_atomic(path, data, len) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space and permissions of %s", path, strerror(errno),
         cache_dir());
}

/* rm -rf PATH, then an empty PATH. */
static void recreate_dir(const char *path)
{
  if (remove_tree(path) == -1)
    fail(EXIT_TOOL_FAILED, "cannot remove %s: %s; remove it by hand", path, strerror(errno));
  cache_mkdir(path);
}

static int has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* apt only reads parts whose names are made of these (and ignores others silently). */
static int apt_part_name(const char *name)
{
  return name[0] != '.' && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") == strlen(name);
}

/* Copy into DEST the regular files of SRCDIR that ACCEPT takes; feed names and contents to H. */
static void copy_parts(const char *srcdir, const char *dest, int (*accept)(const char *), XXH3_state_t *h)
{
  struct dirent **names;
  int n = scandir(srcdir, &names, NULL, alphasort);
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    CLEANUP_FREE char *from = xasprintf("%s/%s", srcdir, name);
    CLEANUP_FREE char *data = NULL;
    size_t len;
    struct stat st;
    if (accept(name) && stat(from, &st) == 0 && S_ISREG(st.st_mode) && read_file(from, &data, &len) == 0) {
      CLEANUP_FREE char *to = xasprintf("%s/%s", dest, name);
      write_or_fail(to, data, len);
      if (h) {
        XXH3_128bits_update(h, name, strlen(name) + 1);
        XXH3_128bits_update(h, data, len);
      }
    }
    free(names[i]);
  }
  if (n >= 0)
    free(names);
}

static int source_name(const char *name)
{
  return apt_part_name(name) && (has_suffix(name, ".list") || has_suffix(name, ".sources"));
}

static int conf_name(const char *name)
{
  return apt_part_name(name);
}

/* Copy the host's sources; returns whether they differ from the last copy. */
static int sync_sources(struct apt *a)
{
  CLEANUP_FREE char *dest = xasprintf("%s/etc/sources.list.d", a->dir);
  recreate_dir(dest);
  XXH3_state_t *h = XXH3_createState();
  XXH3_128bits_reset(h);
  CLEANUP_FREE char *main_list = NULL;
  size_t len;
  if (read_file("/etc/apt/sources.list", &main_list, &len) == 0) {
    CLEANUP_FREE char *to = xasprintf("%s/host-sources.list", dest);
    write_or_fail(to, main_list, len);
    XXH3_128bits_update(h, main_list, len);
  }
  copy_parts("/etc/apt/sources.list.d", dest, source_name, h);
  XXH128_hash_t sum = XXH3_128bits_digest(h);
  XXH3_freeState(h);

  char hex[40];
  snprintf(hex, sizeof hex, "%016llx%016llx\n", (unsigned long long)sum.high64, (unsigned long long)sum.low64);
  CLEANUP_FREE char *hash_path = xasprintf("%s/sources.hash", a->dir);
  CLEANUP_FREE char *old = NULL;
  int changed = read_file(hash_path, &old, NULL) == -1 || strcmp(old, hex) != 0;
  if (changed)
    write_or_fail(hash_path, hex, strlen(hex));
  return changed;
}

/* The host's apt configuration (proxies, pinning) applies, but its hook
 * scripts must not run for our private lists: they act on the host's state
 * (PackageKit, AppStream, docker-clean's rm of /var/cache/apt). APT_CONFIG
 * points at apt.conf, which redirects the parts directory to a copy that ends
 * with a file clearing the hooks. */
static void write_config(struct apt *a)
{
  CLEANUP_FREE char *parts = xasprintf("%s/etc/apt.conf.d", a->dir);
  recreate_dir(parts);
  copy_parts("/etc/apt/apt.conf.d", parts, conf_name, NULL);
  CLEANUP_FREE char *host_main = NULL;
  size_t len;
  if (read_file("/etc/apt/apt.conf", &host_main, &len) == 0) {
    CLEANUP_FREE char *to = xasprintf("%s/zy-host-apt.conf", parts);
    write_or_fail(to, host_main, len);
  }
  static const char clear[] =
    "// written by vmexec: the host's hooks must not run for vmexec's private package lists\n"
    "#clear APT::Update::Pre-Invoke;\n#clear APT::Update::Post-Invoke;\n#clear APT::Update::Post-Invoke-Success;\n"
    "#clear DPkg::Pre-Invoke;\n#clear DPkg::Post-Invoke;\n#clear DPkg::Pre-Install-Pkgs;\n"
    "#clear APT::Architectures;\n";
  CLEANUP_FREE char *zz = xasprintf("%s/zz-vmexec", parts);
  write_or_fail(zz, clear, sizeof clear - 1);
  CLEANUP_FREE char *conf = xasprintf("Dir::Etc::parts \"%s\";\nDir::Etc::main \"/dev/null\";\n", parts);
  CLEANUP_FREE char *conf_path = xasprintf("%s/apt.conf", a->dir);
  write_or_fail(conf_path, conf, strlen(conf));
}

static int lists_exist(const struct apt *a)
{
  CLEANUP_FREE char *path = xasprintf("%s/lists", a->dir);
  DIR *d = opendir(path);
  if (!d)
    return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)))
    found = strstr(e->d_name, "_Packages") != NULL;
  closedir(d);
  return found;
}

/* mtime of the stamp written after the last successful update, or 0. */
static time_t lists_updated(const struct apt *a)
{
  CLEANUP_FREE char *stamp = xasprintf("%s/updated", a->dir);
  struct stat st;
  return stat(stamp, &st) == 0 ? st.st_mtime : 0;
}

static void update_lists(struct apt *a)
{
  struct strv argv = {0};
  strv_push(&argv, "apt-get");
  strv_push(&argv, "-q");
  for (size_t i = 0; i < a->opts.n; i++)
    strv_push(&argv, a->opts.v[i]);
  strv_push(&argv, "update");
  CLEANUP_FREE char *conf = xasprintf("APT_CONFIG=%s/apt.conf", a->dir);
  char *env[] = {conf, "LC_ALL=C", NULL};
  struct run_output out;
  int st = run_capture(argv.v, NULL, env, &out);
  strv_free(&argv);
  /* apt-get update exits 0 when some sources failed; it says so with W: lines. */
  int failed = st != 0 || strstr(out.err, "Failed to fetch") || strstr(out.err, "index files failed");
  char line[512];
  run_error_line(&out, line, sizeof line);
  if (failed && !lists_exist(a))
    fail(EXIT_TOOL_FAILED, "[%s] cannot download the package lists: %s; %s", a->t->name, line, sources_fix);
  /* Whatever was fetched changes what the lists resolve to. */
  clear_dir(a->dir, "resolved-");
  CLEANUP_FREE char *stamp = xasprintf("%s/updated", a->dir);
  write_or_fail(stamp, "", 0);
  if (failed) {
    /* Offline or a mirror in sync: go on with the lists we have, and try
     * again in an hour rather than on every build. */
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = time(NULL) - LISTS_MAX_AGE + RETRY_AFTER}};
    utimensat(AT_FDCWD, stamp, ts, 0);
    if (!a->quiet)
      warning("[%s] cannot refresh all package lists (%s); using the lists there are", a->t->name, line);
  }
  run_output_free(&out);
}

/* One "-o NAME=VALUE" for every apt call. */
static void opt(struct apt *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void opt(struct apt *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  strv_push(&a->opts, "-o");
  strv_pushv(&a->opts, fmt, ap);
  va_end(ap);
}

/* The Debian architecture whose packages T's images are made of: the
 * host's for targets whose libraries come from -cross packages (arch all;
 * Debian 12 has no package lists for powerpc or mips). */
static const char *apt_arch(const struct target *t)
{
  if (!t->cross_userland)
    return t->debian_arch;
  static char host[64];
  if (!host[0]) {
    char *argv[] = {"dpkg", "--print-architecture", NULL};
    struct run_output out;
    if (run_capture(argv, NULL, NULL, &out) != 0 || sscanf(out.out, "%63s", host) != 1)
      fail(EXIT_TOOL_FAILED, "[%s] dpkg --print-architecture failed; install dpkg", t->name);
    run_output_free(&out);
  }
  return host;
}

void apt_open(struct apt *a, const struct target *t, bool quiet)
{
  const char *arch = apt_arch(t);
  memset(a, 0, sizeof *a);
  a->t = t;
  a->quiet = quiet;
  a->lock_fd = -1;
  if (snprintf(a->dir, sizeof a->dir, "%s/apt/%s", cache_dir(), arch) >= (int)sizeof a->dir)
    fail(EXIT_TOOL_FAILED, "cache directory path is too long; set XDG_CACHE_HOME to a shorter path");
  const char *subdirs[] = {"lists/partial", "cache/archives/partial", "etc"};
  for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
    CLEANUP_FREE char *p = xasprintf("%s/%s", a->dir, subdirs[i]);
    cache_mkdir(p);
  }
  /* One vmexec at a time uses a state directory (apt's own locks are off:
   * they live in the host's /var/lib/dpkg and need root). */
  CLEANUP_FREE char *lock = xasprintf("%s/lock", a->dir);
  a->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (a->lock_fd == -1 || flock(a->lock_fd, LOCK_EX) == -1)
    fail(EXIT_TOOL_FAILED, "cannot lock %s: %s; check the permissions of %s", lock, strerror(errno), cache_dir());

  /* An empty dpkg status: apt resolves as for an empty system, so the
   * closure includes everything the packages need. */
  CLEANUP_FREE char *status = xasprintf("%s/status", a->dir);
  if (access(status, F_OK) == -1)
    write_or_fail(status, "", 0);

  int sources_changed = sync_sources(a);
  write_config(a);

  const char *d = a->dir;
  opt(a, "APT::Architecture=%s", arch);
  opt(a, "APT::Architectures=%s", arch);
  opt(a, "Dir::State=%s", d);
  opt(a, "Dir::State::Lists=%s/lists", d);
  opt(a, "Dir::State::status=%s/status", d);
  opt(a, "Dir::Cache=%s/cache", d);
  opt(a, "Dir::Cache::archives=%s/cache/archives", d);
  opt(a, "Dir::Etc::SourceList=/dev/null");
  opt(a, "Dir::Etc::SourceParts=%s/etc/sources.list.d", d);
  opt(a, "Debug::NoLocking=1");
  opt(a, "Acquire::Languages=none");
  /* As root apt downloads as the _apt user, who cannot write into our cache. */
  if (geteuid() == 0)
    opt(a, "APT::Sandbox::User=root");

  time_t updated = lists_updated(a);
  if (sources_changed || !lists_exist(a) || updated == 0 || time(NULL) - updated > LISTS_MAX_AGE)
    update_lists(a);
}

void apt_close(struct apt *a)
{
  if (a->lock_fd >= 0)
    close(a->lock_fd);
  a->lock_fd = -1;
  strv_free(&a->opts);
}

/* ---- resolution ------------------------------------------------------------ */

static void deb_set(struct deb *d, const char *name, const char *version, const char *arch)
{
  d->name = xstrdup(name);
  d->version = xstrdup(version);
  d->arch = xstrdup(arch);
  /* apt-get download quotes the epoch colon in file names. */
  const char *colon = strchr(version, ':');
  if (colon)
    d->file = xasprintf("%s_%.*s%%3a%s_%s.deb", name, (int)(colon - version), version, colon + 1, arch);
  else
    d->file = xasprintf("%s_%s_%s.deb", name, version, arch);
}

static void deb_free(struct deb *d)
{
  free(d->name);
  free(d->version);
  free(d->arch);
  free(d->file);
}

void apt_resolution_free(struct apt_resolution *r)
{
  deb_free(&r->kernel);
  for (size_t i = 0; i < r->n; i++)
    deb_free(&r->debs[i]);
  free(r->debs);
  memset(r, 0, sizeof *r);
}

static struct deb *add_deb(struct apt_resolution *r)
{
  r->debs = xrealloc(r->debs, (r->n + 1) * sizeof *r->debs);
  return &r->debs[r->n++];
}

/* Lines "kernel|deb NAME VERSION ARCH". */
static int parse_resolution(char *text, bool want_kernel, bool want_debs, struct apt_resolution *r)
{
  char *save, *line;
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char kind[16], name[256], version[256], arch[64];
    if (sscanf(line, "%15s %255s %255s %63s", kind, name, version, arch) != 4)
      return -1;
    if (strcmp(kind, "kernel") == 0 && !r->kernel.name)
      deb_set(&r->kernel, name, version, arch);
    else if (strcmp(kind, "deb") == 0)
      deb_set(add_deb(r), name, version, arch);
    else
      return -1;
  }
  return (r->kernel.name || !want_kernel) && (r->n > 0 || !want_debs) ? 0 : -1;
}

static char *format_resolution(const struct apt_resolution *r)
{
  struct strv lines = {0};
  if (r->kernel.name)
    strv_pushf(&lines, "kernel %s %s %s\n", r->kernel.name, r->kernel.version, r->kernel.arch);
  for (size_t i = 0; i < r->n; i++)
    strv_pushf(&lines, "deb %s %s %s\n", r->debs[i].name, r->debs[i].version, r->debs[i].arch);
  char *text = strv_join(&lines, "");
  strv_free(&lines);
  return text;
}

/* "  Depends: linux-image-6.1.0-50-s390x" in apt-cache depends output. */
static char *kernel_package(struct apt *a, const char *meta)
{
  struct run_output out;
  char *args[] = {"depends", (char *)meta, NULL};
  apt_run(a, "apt-cache depends", sources_fix, NULL, "apt-cache", args, &out);
  char *found = NULL;
  for (char *p = out.out; p && *p && !found; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    char name[256];
    /* linux-source-6.1 for the kernels built from source (image-kernel.c). */
    if (sscanf(p, " Depends: %255s", name) == 1 &&
        (strncmp(name, "linux-image-", 12) == 0 || strncmp(name, "linux-source-", 13) == 0))
      found = xstrdup(name);
  }
  run_output_free(&out);
  if (!found)
    fail(EXIT_TOOL_FAILED, "[%s] %s does not depend on a linux-image or linux-source package; %s", a->t->name, meta,
         sources_fix);
  return found;
}

/* Version and architecture of the candidate of NAME. */
static void package_version(struct apt *a, const char *name, struct deb *d)
{
  struct run_output out;
  char *args[] = {"show", "--no-all-versions", (char *)name, NULL};
  apt_run(a, "apt-cache show", sources_fix, NULL, "apt-cache", args, &out);
  char version[256] = "", arch[64] = "";
  for (char *p = out.out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (!version[0])
      sscanf(p, "Version: %255s", version);
    if (!arch[0])
      sscanf(p, "Architecture: %63s", arch);
  }
  run_output_free(&out);
  if (!version[0] || !arch[0])
    fail(EXIT_TOOL_FAILED, "[%s] apt-cache show %s gave no version; %s", a->t->name, name, sources_fix);
  deb_set(d, name, version, arch);
}

/* Simulated install on an empty system: "Inst NAME (VERSION RELEASE [ARCH])". */
static void closure(struct apt *a, const struct strv *pkgs, struct apt_resolution *r)
{
  struct strv args = {0};
  strv_push(&args, "-s");
  strv_push(&args, "install");
  strv_push(&args, "--no-install-recommends");
  for (size_t i = 0; i < pkgs->n; i++)
    strv_push(&args, pkgs->v[i]);
  struct run_output out;
  apt_run(a, "resolving the packages", "check the --with package names (apt-cache search NAME) and " /* */
          "the sources in /etc/apt/sources.list.d", NULL, "apt-get", args.v, &out);
  strv_free(&args);
  for (char *p = out.out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    char name[256], version[256];
    if (sscanf(p, "Inst %255s (%255s", name, version) != 2)
      continue;
    char *eol = strchr(p, '\n');
    char *open = strchr(p, '[');
    char *close = open ? strchr(open, ']') : NULL;
    if (!open || !close || (eol && close > eol))
      continue;
    name[strcspn(name, ":")] = '\0'; /* "libc6:s390x" on some apt versions */
    CLEANUP_FREE char *arch = xasprintf("%.*s", (int)(close - open - 1), open + 1);
    deb_set(add_deb(r), name, version, arch);
  }
  run_output_free(&out);
  if (r->n == 0)
    fail(EXIT_TOOL_FAILED, "[%s] apt resolved no packages; %s", a->t->name, sources_fix);
}

void apt_resolve(struct apt *a, const char *kernel_meta, const struct strv *pkgs, struct apt_resolution *r)
{
  memset(r, 0, sizeof *r);
  XXH3_state_t *h = XXH3_createState();
  XXH3_128bits_reset(h);
  /* No kernel hashes as "", which no metapackage is called. */
  XXH3_128bits_update(h, kernel_meta ? kernel_meta : "", strlen(kernel_meta ? kernel_meta : "") + 1);
  for (size_t i = 0; i < pkgs->n; i++)
    XXH3_128bits_update(h, pkgs->v[i], strlen(pkgs->v[i]) + 1);
  XXH128_hash_t sum = XXH3_128bits_digest(h);
  XXH3_freeState(h);
  CLEANUP_FREE char *path = xasprintf("%s/resolved-%016llx%016llx", a->dir, (unsigned long long)sum.high64,
                                      (unsigned long long)sum.low64);

  /* A resolution stays valid until the lists are refreshed (which removes it). */
  CLEANUP_FREE char *text = NULL;
  if (read_file(path, &text, NULL) == 0) {
    if (parse_resolution(text, kernel_meta != NULL, pkgs->n > 0, r) == 0)
      return;
    apt_resolution_free(r);
  }

  if (kernel_meta) {
    CLEANUP_FREE char *kname = kernel_package(a, kernel_meta);
    package_version(a, kname, &r->kernel);
  }
  /* A kernel built from source needs only the source package. */
  if (pkgs->n > 0)
    closure(a, pkgs, r);
  CLEANUP_FREE char *out = format_resolution(r);
  write_or_fail(path, out, strlen(out));
}

/* ---- download -------------------------------------------------------------- */

size_t apt_download(struct apt *a, const struct apt_resolution *r, const char *debs_dir,
                    void (*announce)(size_t missing, void *arg), void *arg)
{
  const struct deb *missing[r->n + 1];
  size_t n = 0;
  for (size_t i = 0; i <= r->n; i++) {
    const struct deb *d = i == r->n ? &r->kernel : &r->debs[i];
    if (!d->file)
      continue;
    CLEANUP_FREE char *path = xasprintf("%s/%s", debs_dir, d->file);
    if (access(path, F_OK) == -1)
      missing[n++] = d;
  }
  if (n == 0)
    return 0;
  if (announce)
    announce(n, arg);

  /* Download into a private directory and rename into the shared one, so
   * that other builds never see a partial .deb. */
  CLEANUP_FREE char *dl = xasprintf("%s/download", a->dir);
  recreate_dir(dl);
  struct strv args = {0};
  strv_push(&args, "download");
  for (size_t i = 0; i < n; i++)
    strv_pushf(&args, "%s=%s", missing[i]->name, missing[i]->version);
  struct run_output out;
  apt_run(a, "downloading packages", sources_fix, dl, "apt-get", args.v, &out);
  run_output_free(&out);
  strv_free(&args);
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *from = xasprintf("%s/%s", dl, missing[i]->file);
    CLEANUP_FREE char *to = xasprintf("%s/%s", debs_dir, missing[i]->file);
    if (rename(from, to) == -1)
      fail(EXIT_TOOL_FAILED, "[%s] apt-get download gave no %s (%s); remove %s and try again", a->t->name,
           missing[i]->file, strerror(errno), a->dir);
  }
  remove_tree(dl);
  return n;
}
