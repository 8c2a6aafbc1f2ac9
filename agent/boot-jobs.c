/* Work done once per boot, as children of PID 1, beside the module loading,
 * and finished before the hello (boot_jobs_wait):
 *
 *  - busybox's applet links in /bin, so that "sh" and friends exist for
 *    later runs, then /bin and /usr/bin made to show the same commands
 *    (merge_bin_dirs);
 *  - the dynamic loader's cache, /etc/ld.so.cache, when the image has the
 *    target's ldconfig but no cache (the packages were extracted, not
 *    installed, so no trigger made one). Without it, ld.so looks for each
 *    library in every legacy hwcaps directory (on s390x, some 250 paths
 *    like /lib/s390x-linux-gnu/tls/z15/vxe2/vxe/vx/...) before the right
 *    one: a dynamically linked hello took 50 ms in an s390x guest instead of
 *    6 ms, each failed open being a system call under TCG.
 *
 * The hello comes after both, since the host may save the guest as it is at
 * its hello (a memory snapshot, supervisor/snapshot.c) and every guest
 * restored from it would otherwise redo the work. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

struct boot_job {
  const char *what;   /* for the log */
  const char *needed; /* run only if this file is absent (NULL: always) */
  char *const *argv;  /* argv[0] is the program's path; run only if it exists */
  void (*then)(void); /* after it succeeded */
  pid_t pid;
  long long started;
};

/* Existing names are kept: the image's own programs in /bin (gzip, ed...)
 * stay themselves. */
static char *const busybox_argv[] = { "/bin/busybox", "--install", "-s", "/bin", NULL };
static char *const ldconfig_argv[] = { "/sbin/ldconfig", NULL };

static bool is_applet_link(const char *path)
{
  char to[PATH_MAX];
  ssize_t n = readlink(path, to, sizeof to - 1);
  if (n < 0)
    return false;
  to[n] = '\0';
  const char *base = strrchr(to, '/');
  return strcmp(base ? base + 1 : to, "busybox") == 0;
}

/* Link NAME of FROM into INTO (INTO/NAME -> FROM/NAME) where INTO has no
 * such name, or only a busybox applet when REPLACE_APPLETS. */
static unsigned link_names(const char *from, const char *into, bool replace_applets)
{
  DIR *d = opendir(from);
  if (!d)
    return 0;
  unsigned linked = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char to[PATH_MAX], at[PATH_MAX];
    if (e->d_name[0] == '.' || (size_t)snprintf(to, sizeof to, "%s/%s", from, e->d_name) >= sizeof to ||
        (size_t)snprintf(at, sizeof at, "%s/%s", into, e->d_name) >= sizeof at)
      continue;
    if (replace_applets && is_applet_link(at) && !is_applet_link(to))
      unlink(at);
    if (symlink(to, at) == 0)
      linked++;
    else if (errno != EEXIST) {
      agent_log("cannot link %s to %s: %s", at, to, strerror(errno));
      break;
    }
  }
  closedir(d);
  return linked;
}

/* Make /bin and /usr/bin show the same commands, as on a Debian system
 * (merged /usr), with the image's real programs before busybox's applets:
 * the programs of /usr/bin (xz, getent, iconv...) replace applets of their
 * name in /bin, then each name of /bin that /usr/bin lacks is linked there
 * (`#!/usr/bin/env sh`, patch's /usr/bin/ed). So a PATH in either order
 * (runs carry the host's) finds the same program. Nothing to do where /bin
 * is /usr/bin. */
static void merge_bin_dirs(void)
{
  struct stat b, u;
  if (stat("/bin", &b) == -1 || stat("/usr/bin", &u) == -1 || (b.st_dev == u.st_dev && b.st_ino == u.st_ino))
    return;
  unsigned into_bin = link_names("/usr/bin", "/bin", true);
  unsigned into_usr = link_names("/bin", "/usr/bin", false);
  agent_log("linked %u names of /usr/bin into /bin, %u of /bin into /usr/bin", into_bin, into_usr);
}

static struct boot_job jobs[] = {
  { "busybox --install", NULL, busybox_argv, merge_bin_dirs, 0, 0 },
  { "ldconfig", "/etc/ld.so.cache", ldconfig_argv, NULL, 0, 0 },
};
enum { NJOBS = sizeof jobs / sizeof jobs[0] };

static void start(struct boot_job *j)
{
  struct stat st;
  if (stat(j->argv[0], &st) == -1 || (j->needed && stat(j->needed, &st) == 0))
    return;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
  j->started = now_ms();
  int err = posix_spawn(&j->pid, j->argv[0], NULL, &attr, j->argv, envp);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    agent_log("cannot run %s: %s", j->argv[0], strerror(err));
    j->pid = 0;
  }
}

void boot_jobs_start(void)
{
  for (size_t i = 0; i < NJOBS; i++)
    start(&jobs[i]);
}

bool boot_jobs_reaped(pid_t pid, int status)
{
  for (size_t i = 0; i < NJOBS; i++) {
    struct boot_job *j = &jobs[i];
    if (pid == 0 || pid != j->pid)
      continue;
    j->pid = 0;
    long long ms = now_ms() - j->started;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      agent_log("%s took %lld ms", j->what, ms);
      if (j->then)
        j->then();
    } else
      agent_log("%s failed (status 0x%x) after %lld ms", j->what, (unsigned)status, ms);
    return true;
  }
  return false;
}

void boot_jobs_wait(void)
{
  for (size_t i = 0; i < NJOBS; i++) {
    pid_t pid = jobs[i].pid;
    if (pid == 0)
      continue;
    int status = 0;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    boot_jobs_reaped(pid, status);
  }
}
