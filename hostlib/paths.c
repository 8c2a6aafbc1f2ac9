#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fail.h"
#include "fsutil.h"

const char *cache_dir(void)
{
  static char dir[PATH_MAX];
  if (dir[0])
    return dir;
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  int n;
  if (xdg && xdg[0] == '/')
    n = snprintf(dir, sizeof dir, "%s/vmexec", xdg);
  else if (home && home[0] == '/')
    n = snprintf(dir, sizeof dir, "%s/.cache/vmexec", home);
  else
    fail(EXIT_TOOL_FAILED, "no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path; set one of them");
  if (n >= (int)sizeof dir)
    fail(EXIT_TOOL_FAILED, "cache directory path is too long; set XDG_CACHE_HOME to a shorter path");
  if (mkdir_p(dir, 0700) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create cache directory %s: %s; set XDG_CACHE_HOME to a writable directory", dir,
         strerror(errno));
  return dir;
}

void cache_mkdir(const char *path)
{
  if (mkdir_p(path, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the permissions of %s", path, strerror(errno), cache_dir());
}

char *cache_subdir(const char *name)
{
  char *dir;
  if (asprintf(&dir, "%s/%s", cache_dir(), name) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  cache_mkdir(dir);
  return dir;
}

/* Directory of the running vmexec executable. */
static int self_dir(char *buf, size_t cap)
{
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *slash = strrchr(buf, '/');
  if (!slash)
    return -1;
  *slash = '\0';
  return 0;
}

/* Where vmexec's own files are: $ENV if set (ENV may be NULL), else the build tree when vmexec
 * runs from it, else where meson installs them. */
static const char *own_dir(const char *env, const char *build_dir, const char *install_dir)
{
  const char *dir = env ? getenv(env) : NULL;
  if (dir && dir[0])
    return dir;
  char self[PATH_MAX];
  if (self_dir(self, sizeof self) == 0 && strcmp(self, VMEXEC_BUILD_DIR) == 0)
    return build_dir;
  return install_dir;
}

char *share_plugin_path(void)
{
  const char *env = getenv("VMEXEC_SHARE_PLUGIN");
  char *path;
  if (env && env[0])
    path = strdup(env);
  else if (asprintf(&path, "%s/nbdkit-vmexec-share-plugin.so",
                    own_dir(NULL, VMEXEC_PLUGIN_BUILD_DIR, VMEXEC_PLUGIN_INSTALL_DIR)) == -1)
    path = NULL;
  if (path && access(path, R_OK) == -1) {
    free(path);
    path = NULL;
  }
  return path;
}

char *tools_path(void)
{
  /* Beside this vmexec first: the build tree, or a copy of both (a test's). */
  char self[PATH_MAX], *path;
  if (self_dir(self, sizeof self) == 0) {
    if (asprintf(&path, "%s/vmexec-tools", self) == -1)
      fail(EXIT_TOOL_FAILED, "out of memory");
    if (access(path, X_OK) == 0)
      return path;
    free(path);
  }
  if (asprintf(&path, "%s/vmexec-tools", VMEXEC_TOOLS_INSTALL_DIR) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  return path;
}

char *kernel_config_path(const char *file)
{
  const char *dir = own_dir("VMEXEC_KERNEL_CONFIG_DIR", VMEXEC_KERNEL_CONFIG_BUILD_DIR, VMEXEC_KERNEL_CONFIG_INSTALL_DIR);
  char *path;
  if (asprintf(&path, "%s/%s", dir, file) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  return path;
}

char *agent_path(const struct target *t)
{
  const char *dir = own_dir("VMEXEC_AGENT_DIR", VMEXEC_AGENT_BUILD_DIR, VMEXEC_AGENT_INSTALL_DIR);
  char *path;
  if (asprintf(&path, "%s/vmexec-agent-%s", dir, t->name) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  if (access(path, R_OK) == -1)
    fail(EXIT_TOOL_FAILED,
         "no guest agent for %s at %s: install the cross compiler (apt-get install gcc-%s) and rebuild vmexec",
         t->name, path, t->triplet);
  return path;
}
