/* Running the Debian tools (apt-get, apt-cache, dpkg-deb) as child processes:
 * fork/exec with an argv, never a shell, with their output captured so that a
 * failure can be reported as one line instead of a screenful. */
#ifndef VMEXEC_IMAGE_RUN_H
#define VMEXEC_IMAGE_RUN_H

#include <stddef.h>

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

/* The line that explains a failure: the first "E: " line of stderr (apt's
 * specific error; its summary comes last), else the first "W: " line, else
 * the last non-empty line of stderr, else of stdout. Into buf (cap bytes). */
const char *run_error_line(const struct run_output *out, char *buf, size_t cap);

#endif
