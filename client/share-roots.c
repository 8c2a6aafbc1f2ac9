/* Which host trees a call shares with the guest, at the same paths:
 *
 *   the working directory            writable
 *   the program's directory          read-only (writable when under a writable root)
 *   the build root around either     writable   (a directory with meson-private/,
 *                                                CMakeCache.txt or config.status)
 *   the source root it names         read-only
 *   --share DIR[:ro], $VMEXEC_SHARE  writable unless :ro
 *   /usr/TRIPLET (cross sysroot)     read-only, when present
 *   /usr/share/zoneinfo              read-only, when present
 *   paths named in the arguments     writable when the caller can write them
 *     outside all of these           (share_roots_add_args)
 *
 * A tree under a writable root is writable with it, and a root under
 * another that covers it is dropped (absorb_covered). */
#include "share-roots.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"

#define ZONEINFO "/usr/share/zoneinfo"

static bool is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
  return access(path, F_OK) == 0;
}

static void add(struct share_roots *s, const char *path, bool writable)
{
  char real[PATH_MAX];
  /* "/" is never a root: it would hide the guest's system (the agent
   * refuses it, and the plugin cannot build a generation with it). A call
   * run from "/" has the guest's "/" as its working directory. */
  if (!realpath(path, real) || !is_dir(real) || strcmp(real, "/") == 0)
    return;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->root[i].path, real) == 0) {
      s->root[i].writable |= writable;
      return;
    }
  if (s->n == SHARE_MAX_ROOTS)
    fail(EXIT_TOOL_FAILED, "more than %d shared trees; share fewer directories", SHARE_MAX_ROOTS);
  snprintf(s->root[s->n].path, sizeof s->root[s->n].path, "%s", real);
  s->root[s->n].writable = writable;
  s->root[s->n].from_args = false;
  s->n++;
}

/* The nearest directory at or above DIR that is a build tree, into out. */
static bool find_build_root(const char *dir, char *out)
{
  char cur[PATH_MAX];
  if (!realpath(dir, cur))
    return false;
  for (;;) {
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/meson-private", cur);
    bool meson = is_dir(probe);
    snprintf(probe, sizeof probe, "%s/CMakeCache.txt", cur);
    bool cmake = exists(probe);
    snprintf(probe, sizeof probe, "%s/config.status", cur); /* autoconf */
    if (meson || cmake || exists(probe)) {
      snprintf(out, PATH_MAX, "%s", cur);
      return true;
    }
    char *slash = strrchr(cur, '/');
    if (!slash || slash == cur)
      return false;
    *slash = '\0';
  }
}

/* The value of KEY in FILE: the rest of the first line starting with KEY, or
 * for JSON ("KEY": "value") the quoted value. */
static bool read_key(const char *file, const char *key, bool json, char *out)
{
  FILE *f = fopen(file, "re");
  if (!f)
    return false;
  char line[PATH_MAX + 256];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char *at = json ? strstr(line, key) : (strncmp(line, key, strlen(key)) == 0 ? line : NULL);
    if (!at)
      continue;
    at += strlen(key);
    char *end = json ? strchr(at, '"') : at + strcspn(at, "\n");
    if (!end)
      continue;
    snprintf(out, PATH_MAX, "%.*s", (int)(end - at), at);
    found = out[0] == '/';
  }
  fclose(f);
  return found;
}

/* An autoconf build tree's source tree from its config.status, whose line
 * srcdir='DIR' holds it, relative to the build tree or absolute. */
static bool autoconf_srcdir(const char *build, char *out)
{
  char file[PATH_MAX + 64], line[PATH_MAX + 64];
  snprintf(file, sizeof file, "%s/config.status", build);
  FILE *f = fopen(file, "re");
  if (!f)
    return false;
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    if (strncmp(line, "srcdir='", 8) == 0) {
      char *dir = line + 8, joined[PATH_MAX + sizeof line + 8];
      dir[strcspn(dir, "'\n")] = '\0';
      snprintf(joined, sizeof joined, "%s/%s", dir[0] == '/' ? "" : build, dir);
      found = realpath(joined, out) != NULL;
    }
  fclose(f);
  return found;
}

/* The source tree a build tree was configured from: Meson's, CMake's, or
 * autoconf's (automake's Makefile names it; else config.status). */
static bool find_source_root(const char *build, char *out)
{
  char file[PATH_MAX + 64];
  snprintf(file, sizeof file, "%s/meson-info/meson-info.json", build);
  if (read_key(file, "\"source\": \"", true, out))
    return true;
  snprintf(file, sizeof file, "%s/CMakeCache.txt", build);
  if (read_key(file, "CMAKE_HOME_DIRECTORY:INTERNAL=", false, out))
    return true;
  snprintf(file, sizeof file, "%s/Makefile", build);
  if (exists(file) && read_key(file, "abs_top_srcdir = ", false, out))
    return true;
  return autoconf_srcdir(build, out);
}

static void add_build_and_source(struct share_roots *s, const char *dir)
{
  char build[PATH_MAX], source[PATH_MAX];
  if (!find_build_root(dir, build))
    return;
  add(s, build, true);
  if (find_source_root(build, source))
    add(s, source, false);
}

/* PATH is ROOT or under it. */
static bool under(const char *path, const char *root)
{
  size_t len = strlen(root);
  return strncmp(path, root, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

/* The innermost root holding PATH, or NULL. */
static const struct share_root *innermost(const struct share_roots *s, const char *path)
{
  const struct share_root *best = NULL;
  for (size_t i = 0; i < s->n; i++)
    if (under(path, s->root[i].path) && (!best || strlen(s->root[i].path) > strlen(best->path)))
      best = &s->root[i];
  return best;
}

/* A tree under a writable root is writable with it. */
static void inherit_writable(struct share_roots *s)
{
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = 0; j < s->n; j++)
      if (i != j && s->root[j].writable && under(s->root[i].path, s->root[j].path))
        s->root[i].writable = true;
}

/* Drop every root strictly under another that covers it (writable, or both
 * read-only): in the guest one overlay or bind mount serves both, and calls
 * of programs in different directories of one build tree (xz's tests/ and
 * src/xz/, meson's tests in its subdirectories) get the same roots, hence
 * each other's namespaces, kept or made ahead (agent/share-spare.c): a
 * namespace made anew costs the guest 6-10 ms under TCG, and each nested
 * root another overlay in every one. */
static void absorb_covered(struct share_roots *s)
{
  for (size_t j = 0; j < s->n;) {
    bool covered = false;
    for (size_t i = 0; i < s->n && !covered; i++)
      covered = i != j && under(s->root[j].path, s->root[i].path) && strcmp(s->root[j].path, s->root[i].path) != 0 &&
                (s->root[i].writable || !s->root[j].writable);
    if (covered)
      s->root[j] = s->root[--s->n];
    else
      j++;
  }
}

/* "DIR" or "DIR:ro". */
static void add_spec(struct share_roots *s, const char *spec)
{
  char path[PATH_MAX];
  size_t n = strlen(spec);
  bool ro = n > 3 && strcmp(spec + n - 3, ":ro") == 0;
  snprintf(path, sizeof path, "%.*s", (int)(ro ? n - 3 : n), spec);
  char real[PATH_MAX];
  if (!is_dir(path) || !realpath(path, real))
    fail(EXIT_TOOL_FAILED, "cannot share %s: not a directory; fix --share or VMEXEC_SHARE", path);
  if (strcmp(real, "/") == 0)
    fail(EXIT_TOOL_FAILED, "cannot share /: it would hide the guest's system; share the directories under it");
  add(s, path, !ro);
}

void share_roots_find(struct share_roots *s, const char *program, const struct target *t, char *const *extra,
                      size_t nextra)
{
  s->n = 0;
  char cwd[PATH_MAX], progdir[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd))
    fail(EXIT_TOOL_FAILED, "cannot get the current directory: %s", strerror(errno));
  add(s, cwd, true);
  add_build_and_source(s, cwd);
  if (program && realpath(program, progdir)) {
    *strrchr(progdir, '/') = '\0';
    if (!progdir[0])
      fail(EXIT_TOOL_FAILED, "cannot share / (the directory of %s) with the guest: it would hide the guest's "
           "system; move the program into a directory", program);
    add(s, progdir, false);
    add_build_and_source(s, progdir);
  }
  for (size_t i = 0; i < nextra; i++)
    add_spec(s, extra[i]);
  const char *env = getenv("VMEXEC_SHARE");
  if (env && *env) {
    char *copy = strdup(env), *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
      add_spec(s, w);
    free(copy);
  }
  char sysroot[PATH_MAX];
  snprintf(sysroot, sizeof sysroot, "/usr/%s", t->triplet);
  if (is_dir(sysroot))
    add(s, sysroot, false);
  /* The host's time zone data, the same on every architecture: TZ=Area/City
   * as under qemu-user (a minimal image has none). */
  if (is_dir(ZONEINFO))
    add(s, ZONEINFO, false);
  inherit_writable(s);
  absorb_covered(s);
}

/* ---- paths named on the command line ----------------------------------- */

/* "/" and the guest's own system directories, which the guest has its own
 * of: a path there is never shared (the agent refuses a root over any of
 * them, agent/share.c, and so the whole call). */
static bool is_system_dir(const char *real)
{
  static const char *const top[] = { "usr", "bin", "sbin", "etc", "proc", "sys", "dev", "run", "init" };
  const char *first = real + 1;
  size_t len = strcspn(first, "/");
  if (len == 0 || strncmp(first, "lib", 3) == 0) /* "/" itself, /lib, /lib64, /libx32... */
    return true;
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
    if (len == strlen(top[i]) && strncmp(first, top[i], len) == 0)
      return true;
  return false;
}

/* Drop the argument roots strictly under root I that it covers (its
 * writability at least theirs). */
static void absorb_nested(struct share_roots *s, size_t i)
{
  for (size_t j = 0; j < s->n;) {
    const struct share_root *in = &s->root[j];
    if (j != i && in->from_args && under(in->path, s->root[i].path) && strcmp(in->path, s->root[i].path) != 0 &&
        (s->root[i].writable || !in->writable)) {
      s->root[j] = s->root[--s->n];
      if (i == s->n)
        i = j;
    } else {
      j++;
    }
  }
}

/* No room for DIR: widen the argument root nearest to it to their common
 * ancestor, if that is not a system directory. */
static bool merge_into_nearest(struct share_roots *s, const char *dir, bool writable)
{
  size_t best = SIZE_MAX, best_len = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (!s->root[i].from_args)
      continue;
    size_t len = 0;
    for (size_t k = 0; s->root[i].path[k] && s->root[i].path[k] == dir[k]; k++)
      if (s->root[i].path[k + 1] == '/' || s->root[i].path[k + 1] == '\0')
        if (dir[k + 1] == '/' || dir[k + 1] == '\0')
          len = k + 1;
    if (len > best_len)
      best = i, best_len = len;
  }
  char common[PATH_MAX];
  if (best == SIZE_MAX)
    return false;
  snprintf(common, sizeof common, "%.*s", (int)best_len, dir);
  if (is_system_dir(common))
    return false;
  struct share_root *r = &s->root[best];
  r->writable = r->writable && writable && access(common, W_OK) == 0;
  /* No root is at COMMON already (the agent refuses a tree shared twice):
   * it would hold DIR, which no root holds. */
  snprintf(r->path, sizeof r->path, "%s", common);
  absorb_nested(s, best);
  return true;
}

/* DIR (a directory named by an argument, or holding one) as a root. */
static void add_arg_dir(struct share_roots *s, const char *dir)
{
  char real[PATH_MAX];
  if (!realpath(dir, real) || !is_dir(real) || is_system_dir(real))
    return;
  bool writable = access(real, W_OK) == 0;
  if (innermost(s, real))
    return; /* shown already, as its root says */
  if (s->n == SHARE_MAX_ROOTS) {
    merge_into_nearest(s, real, writable); /* else left out: the program sees ENOENT */
    return;
  }
  size_t n = s->n;
  add(s, real, writable);
  if (s->n == n)
    return;
  s->root[n].from_args = true;
  absorb_nested(s, n);
}

static void add_arg_path(struct share_roots *s, const char *path)
{
  char dir[PATH_MAX], real[PATH_MAX];
  struct stat st;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof dir)
    return;
  memcpy(dir, path, len + 1); /* not snprintf: gcc's -fsanitize build warns of a null %s there */
  char *slash = strrchr(dir, '/');
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    add_arg_dir(s, path);
    return;
  }
  if (!slash)
    return; /* a file in the working directory, a root already (or a word) */
  *slash = '\0';
  if (!dir[0])
    return; /* a file of "/" */
  bool present = access(path, F_OK) == 0;
  if (present || (errno == ENOENT && access(dir, W_OK) == 0))
    add_arg_dir(s, dir);
  if (present && realpath(path, real)) {
    *strrchr(real, '/') = '\0'; /* the directory of the file a symlink names */
    if (real[0])
      add_arg_dir(s, real);
  }
}

void share_roots_add_args(struct share_roots *s, int argc, char *const *argv)
{
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *eq = strchr(arg, '=');
    add_arg_path(s, arg);
    if (eq)
      add_arg_path(s, eq + 1);
    else if (arg[0] == '-' && arg[1] && arg[1] != '-' && arg[2] == '/')
      add_arg_path(s, arg + 2);
  }
  inherit_writable(s);
  absorb_covered(s);
}

const struct share_root *share_roots_writable(const struct share_roots *s, const char *path)
{
  const struct share_root *best = innermost(s, path);
  return best && best->writable ? best : NULL;
}
