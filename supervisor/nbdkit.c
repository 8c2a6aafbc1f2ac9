#include "nbdkit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

pid_t nbdkit_start(const char *socket, const char *log, char *const args[], char *why, size_t cap)
{
  size_t nargs = 0;
  while (args[nargs])
    nargs++;
  char **argv = calloc(nargs + 6, sizeof *argv);
  if (!argv) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  size_t n = 0;
  argv[n++] = "nbdkit";
  argv[n++] = "--exit-with-parent"; /* a supervisor killed with SIGKILL leaves no server behind */
  argv[n++] = "-f";
  argv[n++] = "-U";
  argv[n++] = (char *)socket;
  for (size_t i = 0; i < nargs; i++)
    argv[n++] = args[i];
  argv[n] = NULL;

  unlink(socket);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  /* The supervisor blocks signals for its signalfd; nbdkit must get them. */
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawnp(&pid, "nbdkit", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  free(argv);
  if (rc != 0) {
    snprintf(why, cap, "cannot start nbdkit: %s (apt-get install nbdkit)", strerror(rc));
    return -1;
  }
  /* nbdkit creates the socket once it serves. */
  for (int waited = 0; waited < 20000; waited += 20) {
    struct stat st;
    if (stat(socket, &st) == 0)
      return pid;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      snprintf(why, cap, "nbdkit exited at start; see %s", log);
      return -1;
    }
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  snprintf(why, cap, "nbdkit did not listen within 20 s; see %s", log);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

bool nbdkit_reap(pid_t *pid, char *why, size_t cap)
{
  int status;
  if (*pid <= 0 || waitpid(*pid, &status, WNOHANG) != *pid)
    return false;
  *pid = -1;
  if (WIFSIGNALED(status))
    snprintf(why, cap, "nbdkit was killed by signal %d", WTERMSIG(status));
  else
    snprintf(why, cap, "nbdkit exited with status %d", WEXITSTATUS(status));
  return true;
}

void nbdkit_stop(pid_t pid, const char *socket)
{
  if (pid > 0) {
    kill(pid, SIGTERM);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
      ;
  }
  unlink(socket);
}
