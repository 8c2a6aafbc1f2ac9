/* Work done once per boot, as children of PID 1, beside the module loading,
 * and finished before the hello (boot_jobs_wait):
 *
 *  - busybox's applet links in /bin and /usr/bin, so that "sh" and friends
 *    exist for later runs;
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
#include <errno.h>
#include <signal.h>
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
  pid_t pid;
  long long started;
};

static char *const busybox_argv[] = { "/bin/busybox", "--install", "-s", "/bin", NULL };
/* And in /usr/bin, where a Debian system (merged /usr: /bin is /usr/bin)
 * has every one of them: `#!/usr/bin/env sh`, patch's /usr/bin/ed. The
 * image's own programs there (getent, iconv...) stay: existing names are
 * not replaced. */
static char *const busybox_usr_argv[] = { "/bin/busybox", "--install", "-s", "/usr/bin", NULL };
static char *const ldconfig_argv[] = { "/sbin/ldconfig", NULL };

static struct boot_job jobs[] = {
  { "busybox --install", NULL, busybox_argv, 0, 0 },
  { "busybox --install /usr/bin", NULL, busybox_usr_argv, 0, 0 },
  { "ldconfig", "/etc/ld.so.cache", ldconfig_argv, 0, 0 },
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
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
      agent_log("%s took %lld ms", j->what, ms);
    else
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
