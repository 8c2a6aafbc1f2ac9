/* vmexec --gdb and --gdbserver: a program of the guest under the target's
 * gdbserver, debugged by gdb-multiarch on the host.
 *
 * --gdbserver runs `gdbserver - PROGRAM ARGS` in the guest: the remote
 * protocol travels on the run's stdin and stdout, which the call already
 * relays, so it works as any run does (with the share, in parallel runs,
 * under a harness); gdbserver sends the program's own stdout to stderr.
 * gdbserver comes from Debian (image/image-tools.c), shared read-only.
 *
 * --gdb starts gdb on the host with the target's architecture, the cross
 * sysroot /usr/TRIPLET for the libraries, the program's symbols, and
 * `target remote | vmexec --gdbserver -- PROGRAM ARGS`: the program stops at
 * its first instruction. */
#include "gdb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "elf-detect.h"
#include "fail.h"
#include "image-tools.h"
#include "util.h"

void gdbserver_prepare(struct run_options *o, const struct target *t)
{
  if (o->copy)
    fail(EXIT_TOOL_FAILED, "--gdbserver runs the program from the share; it does not go with --copy, drop it");
  if (o->nshares == SHARE_MAX_ROOTS)
    fail(EXIT_TOOL_FAILED, "more than %d shared trees; share fewer directories", SHARE_MAX_ROOTS);
  CLEANUP_FREE char *dir = image_gdbserver_dir(t);
  o->gdbserver_file = xasprintf("%s/usr/bin/gdbserver", dir);
  o->shares[o->nshares++] = xasprintf("%s:ro", dir);
}

void gdbserver_wrap(const struct run_options *o, const char **file, int *argc, char ***argv)
{
  char **v = calloc((size_t)*argc + 5, sizeof *v);
  if (!v)
    fail(EXIT_TOOL_FAILED, "out of memory");
  v[0] = "gdbserver";
  v[1] = "--no-startup-with-shell"; /* the arguments as given: no $SHELL (bash) in the minimal image */
  v[2] = "--once";                  /* gdb gone (end of stdin): kill the program and exit, never wait */
  v[3] = "-";                       /* the remote protocol on stdin and stdout */
  v[4] = (char *)*file;
  for (int i = 1; i < *argc; i++)
    v[i + 4] = (*argv)[i];
  *argc += 4;
  *argv = v;
  *file = o->gdbserver_file;
}

/* S as one word for sh -c: as it is when it is plain, else in single quotes. */
static char *sh_quote(const char *s)
{
  if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=@%+,-") == strlen(s))
    return xstrdup(s);
  size_t n = 3;
  for (const char *p = s; *p; p++)
    n += *p == '\'' ? 4 : 1;
  char *q = malloc(n), *w = q;
  if (!q)
    fail(EXIT_TOOL_FAILED, "out of memory");
  *w++ = '\'';
  for (const char *p = s; *p; p++)
    if (*p == '\'')
      w = stpcpy(w, "'\\''");
    else
      *w++ = *p;
  strcpy(w, "'");
  return q;
}

/* "WORD WORD ..." of V, each quoted for sh. */
static char *sh_join(char *const *v, size_t n)
{
  struct strv q = {0};
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *w = sh_quote(v[i]);
    strv_push(&q, w);
  }
  char *line = strv_join(&q, " ");
  strv_free(&q);
  return line;
}

/* gdb's command line for PATH (of target T) with ARGV. */
static void gdb_argv(struct strv *g, const struct target *t, const char *path, int argc, char **argv)
{
  const char *gdb = getenv("VMEXEC_GDB");
  strv_push(g, gdb && *gdb ? gdb : "gdb-multiarch");
  strv_push(g, "-q");
  strv_push(g, "-ex");
  strv_pushf(g, "set architecture %s", t->gdb_arch);
  /* The guest's own libraries (image-tools.c), not the cross sysroot's. */
  CLEANUP_FREE char *dir = image_gdbserver_dir(t);
  strv_push(g, "-ex");
  strv_pushf(g, "set sysroot %s/sysroot", dir);
  /* The same vmexec as this one (a build tree's, or the installed one). */
  CLEANUP_FREE char *self = realpath("/proc/self/exe", NULL);
  struct strv server = {0};
  strv_push(&server, self ? self : "vmexec");
  strv_push(&server, "--gdbserver");
  strv_push(&server, "--");
  strv_push(&server, path);
  for (int i = 1; i < argc; i++)
    strv_push(&server, argv[i]);
  CLEANUP_FREE char *cmd = sh_join(server.v, server.n);
  strv_free(&server);
  /* An emulated guest under load answers in seconds, not gdb's default 2. */
  strv_push(g, "-ex");
  strv_push(g, "set remotetimeout 60");
  strv_push(g, "-ex");
  strv_pushf(g, "target remote | %s", cmd);
  /* The symbols: gdb takes a name starting with '-' for an option. */
  strv_pushf(g, "%s%s", path[0] == '-' ? "./" : "", path);
}

noreturn void client_run_gdb(const char *path, int argc, char **argv)
{
  struct elf_info info;
  char err[1024];
  int status = elf_detect(path, &info, err, sizeof err);
  if (status != 0)
    fail(status, "%s", err);
  struct strv g = {0};
  gdb_argv(&g, info.target, path, argc, argv);
  if (!isatty(0) || !isatty(1)) {
    /* No terminal to debug on: say how to attach, and run nothing. */
    CLEANUP_FREE char *line = sh_join(g.v, g.n);
    printf("%s\n", line);
    exit(fflush(stdout) == 0 ? 0 : EXIT_TOOL_FAILED);
  }
  execvp(g.v[0], g.v);
  fail(EXIT_TOOL_FAILED, "cannot run %s: %s; install gdb-multiarch "
       "(apt-get install gdb-multiarch) or set VMEXEC_GDB to a gdb for %s", g.v[0], strerror(errno), info.target->name);
}

const struct gdbserver_steps gdbserver_steps = { gdbserver_prepare, gdbserver_wrap };
