#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

/* Our environment with the ENV_ADD names replaced. */
static char **merged_env(char *const env_add[], struct strv *keep)
{
  for (char **e = environ; *e; e++) {
    int overridden = 0;
    for (size_t i = 0; env_add && env_add[i]; i++) {
      size_t k = strcspn(env_add[i], "=");
      if (strncmp(*e, env_add[i], k + 1) == 0)
        overridden = 1;
    }
    if (!overridden)
      strv_push(keep, *e);
  }
  for (size_t i = 0; env_add && env_add[i]; i++)
    strv_push(keep, env_add[i]);
  return keep->v;
}

struct sink {
  int fd;
  char *buf;
  size_t len, cap;
};

/* Read what is available from one pipe; 0 at end of file. */
static int drain(struct sink *s)
{
  if (s->len + 4097 > s->cap) {
    s->cap = s->cap ? s->cap * 2 : 8192;
    s->buf = xrealloc(s->buf, s->cap);
  }
  ssize_t r = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
  if (r == -1 && (errno == EINTR || errno == EAGAIN))
    return 1;
  if (r <= 0)
    return 0;
  s->len += (size_t)r;
  return 1;
}

/* The exit status of PID as run_capture returns it. */
static int wait_status(pid_t pid)
{
  int status;
  while (waitpid(pid, &status, 0) == -1)
    if (errno != EINTR)
      return -1;
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

/* Start ARGV (in CWD, with ENV_ADD) with stdin from /dev/null and stdout and
 * stderr on pipes whose read ends go to *OUT_FD and *ERR_FD; the pid, or -1
 * with errno. */
static pid_t spawn_piped(char *const argv[], const char *cwd, char *const env_add[], int *out_fd, int *err_fd)
{
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) == -1)
    return -1;
  if (pipe2(pe, O_CLOEXEC) == -1) {
    close(po[0]);
    close(po[1]);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
  if (cwd)
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
  struct strv env = {0};
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, merged_env(env_add, &env));
  posix_spawn_file_actions_destroy(&fa);
  strv_free(&env);
  close(po[1]);
  close(pe[1]);
  if (err != 0) {
    close(po[0]);
    close(pe[0]);
    errno = err;
    return -1;
  }
  *out_fd = po[0];
  *err_fd = pe[0];
  return pid;
}

int run_capture(char *const argv[], const char *cwd, char *const env_add[], struct run_output *out)
{
  memset(out, 0, sizeof *out);
  struct sink s[2] = {{.fd = -1}, {.fd = -1}};
  pid_t pid = spawn_piped(argv, cwd, env_add, &s[0].fd, &s[1].fd);
  int err = pid == -1 ? errno : 0;
  if (pid != -1) {
    int open_fds = 2;
    while (open_fds > 0) {
      struct pollfd p[2] = {{.fd = s[0].fd, .events = POLLIN}, {.fd = s[1].fd, .events = POLLIN}};
      if (poll(p, 2, -1) == -1) {
        if (errno == EINTR)
          continue;
        break;
      }
      for (int i = 0; i < 2; i++)
        if (s[i].fd >= 0 && p[i].revents && !drain(&s[i])) {
          close(s[i].fd);
          s[i].fd = -1;
          open_fds--;
        }
    }
  }
  for (int i = 0; i < 2; i++) {
    if (s[i].fd >= 0)
      close(s[i].fd);
    if (!s[i].buf)
      s[i].buf = xrealloc(NULL, 1);
    s[i].buf[s[i].len] = '\0';
  }
  out->out = s[0].buf;
  out->out_len = s[0].len;
  out->err = s[1].buf;
  out->err_len = s[1].len;
  if (err != 0) {
    errno = err;
    return -1;
  }
  return wait_status(pid);
}

pid_t run_start(char *const argv[], int *out_fd, int *err_fd)
{
  return spawn_piped(argv, NULL, NULL, out_fd, err_fd);
}

int run_finish(pid_t pid, int out_fd, int err_fd, struct run_output *out)
{
  memset(out, 0, sizeof *out);
  /* What the reader left (tar's padding after its end) is read, so that the
   * child neither blocks on a full pipe nor dies of SIGPIPE. */
  char discard[65536];
  ssize_t r;
  while ((r = read(out_fd, discard, sizeof discard)) > 0 || (r == -1 && errno == EINTR))
    ;
  close(out_fd);
  struct sink e = {.fd = err_fd};
  while (drain(&e))
    ;
  close(err_fd);
  if (!e.buf)
    e.buf = xrealloc(NULL, 1);
  e.buf[e.len] = '\0';
  out->err = e.buf;
  out->err_len = e.len;
  out->out = xrealloc(NULL, 1);
  out->out[0] = '\0';
  return wait_status(pid);
}

int run_checked(char *const argv[], char *why, size_t cap)
{
  struct run_output out;
  int st = run_capture(argv, NULL, NULL, &out);
  if (st == -1)
    snprintf(why, cap, "%s", strerror(errno));
  else if (st != 0)
    run_error_line(&out, why, cap);
  run_output_free(&out);
  return st;
}

void run_output_free(struct run_output *out)
{
  free(out->out);
  free(out->err);
  out->out = out->err = NULL;
}

/* Copy into buf the first line of TEXT that starts with PREFIX (apt's
 * specific error comes first, its summary last), or with PREFIX NULL the
 * last non-empty line. */
static int find_line(const char *text, const char *prefix, char *buf, size_t cap)
{
  const char *found = NULL;
  size_t found_len = 0;
  for (const char *p = text; *p;) {
    size_t n = strcspn(p, "\n");
    if (n > 0 && (!prefix || strncmp(p, prefix, strlen(prefix)) == 0)) {
      found = p;
      found_len = n;
      if (prefix)
        break;
    }
    p += n;
    if (*p)
      p++;
  }
  if (!found)
    return 0;
  snprintf(buf, cap, "%.*s", (int)found_len, found);
  return 1;
}

const char *run_error_line(const struct run_output *out, char *buf, size_t cap)
{
  if (find_line(out->err, "E: ", buf, cap) || find_line(out->err, "W: ", buf, cap) || find_line(out->err, NULL, buf, cap) ||
      find_line(out->out, NULL, buf, cap))
    return buf;
  snprintf(buf, cap, "no error message");
  return buf;
}
