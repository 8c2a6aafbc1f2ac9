/* The light vmexec: the executable that build systems and binfmt_misc start
 * for every test program, so it carries only what a call to a running guest
 * needs (ELF detection with libelf, the shared roots, the relay and its
 * write-back). Loading vmexec-tools' libraries (libarchive with libxml2 and
 * ICU, libcrypto, json-c...) cost a warm call 10-15 ms, about as much as
 * the program's run in the guest.
 *
 * `vmexec PATH ARGS...` (a program given by a path, no options,
 * VMEXEC_IMAGE unset or minimal) runs here when its guest is up. Anything
 * else -- commands, options, a program looked up on PATH, the binfmt_misc
 * start, a guest to boot -- is vmexec-tools' job: this process becomes it,
 * with the same arguments, and it does the whole call. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "fail.h"
#include "paths.h"
#include "run.h"
#include "trace.h"

static char **saved_argv;

static noreturn void become_tools(void)
{
  char *tools = tools_path();
  execv(tools, saved_argv);
  fail(EXIT_TOOL_FAILED, "cannot run %s: %s; reinstall vmexec", tools, strerror(errno));
}

/* guest_starter: no guest runs; vmexec-tools builds the image and boots it. */
static int start_with_tools(const struct target *t, enum image_kind kind)
{
  (void)t;
  (void)kind;
  become_tools();
}

static bool light_call(int argc, char **argv)
{
  if (argc < 2 || argv[1][0] == '-' || !strchr(argv[1], '/'))
    return false;
  const char *self = strrchr(argv[0], '/');
  if (strcmp(self ? self + 1 : argv[0], BINFMT_INTERP_NAME) == 0)
    return false;
  const char *image = getenv("VMEXEC_IMAGE");
  return !image || !*image || strcmp(image, "minimal") == 0;
}

int main(int argc, char **argv)
{
  trace_begin();
  saved_argv = argv;
  if (!light_call(argc, argv))
    become_tools();
  guest_starter = start_with_tools;
  static struct run_options o = { .kind = IMAGE_MINIMAL };
  client_run_program(&o, argv[1], argc - 1, argv + 1);
}
