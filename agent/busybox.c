/* busybox applet links, so that "sh" and friends exist for later runs. Runs
 * once per boot as a child of PID 1 and is reaped by the event loop. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static pid_t install_pid;
static long long install_started;

pid_t busybox_install_start(void)
{
  struct stat st;
  if (stat("/bin/busybox", &st) == -1)
    return 0;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = { "busybox", "--install", "-s", "/bin", NULL };
  char *envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
  install_started = now_ms();
  int err = posix_spawn(&install_pid, "/bin/busybox", NULL, &attr, argv, envp);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    agent_log("cannot run /bin/busybox --install: %s", strerror(err));
    install_pid = 0;
  }
  return install_pid;
}

void busybox_install_reaped(pid_t pid, int status)
{
  if (pid != install_pid || pid == 0)
    return;
  install_pid = 0;
  long long ms = now_ms() - install_started;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    agent_log("busybox --install took %lld ms", ms);
  else
    agent_log("busybox --install failed (status 0x%x) after %lld ms", (unsigned)status, ms);
}

void busybox_install_wait(void)
{
  if (install_pid == 0)
    return;
  int status = 0;
  pid_t pid = install_pid;
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
  }
  busybox_install_reaped(pid, status);
}
