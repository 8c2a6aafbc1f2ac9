/* Running the Debian tools (apt-get, apt-cache, dpkg-deb) as child processes:
 * fork/exec with an argv, never a shell, with their output captured so that a
 * failure can be reported as one line instead of a screenful. */
#ifndef VMEXEC_SUBPROCESS_H
#define VMEXEC_SUBPROCESS_H

#include <stddef.h>
#include <sys/types.h>

struct run_output {
  char *out, *err; /* NUL-terminated, malloc'd */
  size_t out_len, err_len;
};

/* Run ARGV (argv[0] searched in PATH) in directory CWD (NULL: ours) with
 * ENV_ADD ("NAME=VALUE", NULL-terminated, may be NULL) added to our
 * environment, stdin from /dev/null, stdout and stderr captured into OUT.
 * Returns the exit status, 128+N when killed by signal N, or -1 with errno
 * when it could not be started. */
int run_capture(char *const argv[], const char *cwd, char *const env_add[], struct run_output *out);

void run_output_free(struct run_output *out);

/* Run ARGV as run_capture does, keeping only what explains a failure: 0, or
 * the status (-1: it could not be started) with one line in WHY (strerror,
 * else run_error_line). */
int run_checked(char *const argv[], char *why, size_t cap);

/* Start ARGV (stdin from /dev/null) with its stdout on a pipe whose read
 * end goes to *OUT_FD, for the caller to stream; stderr goes to a second
 * pipe that run_finish reads after stdout has ended (the tools run so say
 * little on stderr). Returns the pid, or -1 with errno. */
pid_t run_start(char *const argv[], int *out_fd, int *err_fd);

/* Read OUT_FD to its end (discarded) and close it, collect stderr into OUT (its
 * out is empty) and wait for PID: the status as run_capture's. */
int run_finish(pid_t pid, int out_fd, int err_fd, struct run_output *out);

/* The line that explains a failure: the first "E: " line of stderr (apt's
 * specific error; its summary comes last), else the first "W: " line, else
 * the last non-empty line of stderr, else of stdout. Into buf (cap bytes). */
const char *run_error_line(const struct run_output *out, char *buf, size_t cap);

#endif
