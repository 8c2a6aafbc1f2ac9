/* Which host trees a call shares with the guest, at the same paths:
 *
 *   the working directory            writable
 *   the program's directory          read-only (writable when under a writable root)
 *   the build root around either     writable   (a directory with meson-private/
 *                                                or CMakeCache.txt)
 *   the source root it names         read-only
 *   --share DIR[:ro], $VMEXEC_SHARE  writable unless :ro
 *   /usr/TRIPLET (cross sysroot)     read-only, when present
 */
#include "share-roots.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"

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
  if (!realpath(path, real) || !is_dir(real))
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
    if (meson || exists(probe)) {
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

/* The source tree a build tree was configured from. */
static bool find_source_root(const char *build, char *out)
{
  char file[PATH_MAX + 64];
  snprintf(file, sizeof file, "%s/meson-info/meson-info.json", build);
  if (read_key(file, "\"source\": \"", true, out))
    return true;
  snprintf(file, sizeof file, "%s/CMakeCache.txt", build);
  return read_key(file, "CMAKE_HOME_DIRECTORY:INTERNAL=", false, out);
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

/* "DIR" or "DIR:ro". */
static void add_spec(struct share_roots *s, const char *spec)
{
  char path[PATH_MAX];
  size_t n = strlen(spec);
  bool ro = n > 3 && strcmp(spec + n - 3, ":ro") == 0;
  snprintf(path, sizeof path, "%.*s", (int)(ro ? n - 3 : n), spec);
  if (!is_dir(path))
    fail(EXIT_TOOL_FAILED, "cannot share %s: not a directory; fix --share or VMEXEC_SHARE", path);
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
      strcpy(progdir, "/");
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

  /* A tree under a writable root is writable with it. */
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = 0; j < s->n; j++) {
      size_t len = strlen(s->root[j].path);
      if (i != j && s->root[j].writable && strncmp(s->root[i].path, s->root[j].path, len) == 0 &&
          s->root[i].path[len] == '/')
        s->root[i].writable = true;
    }
}

const struct share_root *share_roots_writable(const struct share_roots *s, const char *path)
{
  const struct share_root *best = NULL;
  for (size_t i = 0; i < s->n; i++) {
    size_t len = strlen(s->root[i].path);
    if (strncmp(path, s->root[i].path, len) == 0 && (path[len] == '/' || path[len] == '\0') &&
        (!best || len > strlen(best->path)))
      best = &s->root[i];
  }
  return best && best->writable ? best : NULL;
}
