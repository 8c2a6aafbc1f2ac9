/* vmexec [OPTIONS] PROGRAM [ARGS...] and vmexec --target TARGET [--shell]
 * -- COMMAND [ARGS...]: the options of a call; the call itself is the
 * client's (client/run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "commands.h"
#include "fail.h"
#include "gdb.h"
#include "image-oci.h"
#include "run.h"

/* PROGRAM as an emulator finds it: with a slash as given; a bare name in
 * the working directory first, as qemu-user opens its PROGRAM (never on PATH):
 * CMake's add_test(NAME ${CMAKE_CROSSCOMPILING_EMULATOR} prog), the old
 * signature, passes the bare name of a program of the build directory, its
 * cwd (libjpeg-turbo's tjunittest); else on PATH, as exec would. */
static char *find_program(const char *prog)
{
  if (strchr(prog, '/'))
    return strdup(prog);
  struct stat here;
  if (stat(prog, &here) == 0 && S_ISREG(here.st_mode) && access(prog, X_OK) == 0) {
    char *cand;
    if (asprintf(&cand, "./%s", prog) == -1)
      fail(EXIT_TOOL_FAILED, "out of memory");
    return cand;
  }
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path;;) {
    const char *colon = strchrnul(p, ':');
    char *cand;
    if (asprintf(&cand, "%.*s%s%s", (int)(colon - p), p, colon == p ? "" : "/", prog) == -1)
      fail(EXIT_TOOL_FAILED, "out of memory");
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
      return cand;
    free(cand);
    if (*colon == '\0')
      return NULL;
    p = colon + 1;
  }
}

/* --image REF or VMEXEC_IMAGE=REF: an image in a registry, resolved once
 * all options are read (--target may come after it). */
static const char *image_ref;

/* PATH is a vmexec (this one, or another called so): the exe_wrapper that
 * meson test --gdb puts in front of the program. */
static bool is_self(const char *path)
{
  struct stat a, b;
  const char *base = strrchr(path, '/');
  if (strcmp(base ? base + 1 : path, "vmexec") == 0)
    return true;
  return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* --quiet is gdb's when --args follows (meson test --gdb --gdb-path vmexec). */
static bool gdb_quiet_ok(int argc, char **argv, int i)
{
  for (int j = i + 1; j < argc && argv[j][0] == '-'; j++)
    if (strcmp(argv[j], "--args") == 0)
      return true;
  return false;
}

/* vmexec --gdb [--] vmexec PROGRAM ARGS: PROGRAM, found as a call would find it. */
static int cmd_run_gdb(int argc, char **argv)
{
  CLEANUP_FREE char *path = find_program(argv[0]);
  if (!path)
    fail(EXIT_NOT_FOUND, "%s: not found in the working directory or on PATH; give the program's path", argv[0]);
  client_run_gdb(path, argc, argv);
}

static enum image_kind parse_kind(const char *name, const char *what)
{
  int kind = image_kind_parse(name);
  image_ref = NULL; /* --image full overrides VMEXEC_IMAGE=REF */
  if (kind < 0 && image_ref_like(name)) {
    image_ref = name;
    return IMAGE_MINIMAL; /* until resolve_ref knows */
  }
  if (kind < 0)
    fail(EXIT_TOOL_FAILED, "%s %s: the images are 'minimal' (the default), 'full' (a Debian userland) or a registry "
         "reference (host/repository:tag)", what, name);
  return (enum image_kind)kind;
}

/* The kind of IMAGE_REF's image, pulled on first use (quietly for a
 * harness); refused when it is not of O's --target. */
static void resolve_ref(struct run_options *o)
{
  if (!image_ref)
    return;
  struct oci_options opt = { .want = o->target, .quiet = !isatty(STDERR_FILENO) };
  const struct target *t;
  bool full;
  image_ref_use(image_ref, &opt, &t, &full);
  o->kind = full ? IMAGE_FULL : IMAGE_MINIMAL;
}

/* VMEXEC_IMAGE: the image when no --image says (a cross file's exe_wrapper
 * cannot pass options to every call). */
static enum image_kind default_kind(void)
{
  const char *env = getenv("VMEXEC_IMAGE");
  return env && *env ? parse_kind(env, "VMEXEC_IMAGE") : IMAGE_MINIMAL;
}

int cmd_run(int argc, char **argv)
{
  struct run_options o = { .copy = false, .kind = default_kind() };
  bool persist = false, image_given = false, gdb = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (strcmp(argv[i], "--copy") == 0)
      o.copy = true;
    else if (strcmp(argv[i], "--share") == 0 && i + 1 < argc && o.nshares < SHARE_MAX_ROOTS)
      o.shares[o.nshares++] = argv[++i];
    else if (strcmp(argv[i], "--root") == 0)
      o.root = true;
    else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
      if (!(o.target = target_by_name(argv[++i])))
        fail(EXIT_TOOL_FAILED, "unknown target %s; the targets are: %s", argv[i], target_names());
    } else if (strcmp(argv[i], "--shell") == 0 || strcmp(argv[i], "-it") == 0)
      o.pty = true;
    else if (strcmp(argv[i], "--image") == 0 && i + 1 < argc) {
      o.kind = parse_kind(argv[++i], "--image");
      image_given = true;
    } else if (strcmp(argv[i], "--persist") == 0)
      persist = true;
    else if (strcmp(argv[i], "--gdbserver") == 0)
      o.gdbserver = &gdbserver_steps;
    else if (strcmp(argv[i], "--gdb") == 0)
      gdb = true;
    else if (strcmp(argv[i], "--args") == 0) {
      /* meson test --gdb --gdb-path vmexec: GDB --quiet --args EXE_WRAPPER PROGRAM ARGS... */
      gdb = true;
      i++;
      break;
    } else if (strcmp(argv[i], "--quiet") == 0 && gdb_quiet_ok(argc, argv, i))
      continue; /* gdb's, from meson test --gdb; vmexec --gdb passes -q always */
    else
      fail(EXIT_TOOL_FAILED, "unknown option %s; see 'vmexec --help'", argv[i]);
  }
  resolve_ref(&o);
  if (persist) {
    /* --persist is a property of the full image's root; it implies --image full. */
    if (o.kind == IMAGE_MINIMAL && !image_given)
      o.kind = IMAGE_FULL;
    if (o.kind == IMAGE_MINIMAL)
      fail(EXIT_TOOL_FAILED, "--persist keeps changes to the full image's root; it does not go with the minimal "
           "image: use --image full");
    o.kind = IMAGE_FULL_PERSIST;
  }
  if (o.target)
    client_run_command(&o, argc - i, argv + i);
  if (o.pty)
    fail(EXIT_TOOL_FAILED, "--shell needs the guest to open it in: vmexec --target TARGET --shell (targets: %s)",
         target_names());
  if (i >= argc)
    fail(EXIT_TOOL_FAILED, "no program given; usage: vmexec [--root] [--copy] PROGRAM [ARGS...]");

  CLEANUP_FREE char *path = find_program(argv[i]);
  if (!path)
    fail(EXIT_NOT_FOUND, "%s: not found in the working directory or on PATH; give the program's path", argv[i]);
  if (gdb && is_self(path) && i + 1 < argc)
    return cmd_run_gdb(argc - i - 1, argv + i + 1);
  if (gdb)
    client_run_gdb(path, argc - i, argv + i);
  client_run_program(&o, path, argc - i, argv + i);
}

int cmd_run_file(const char *path, int argc, char **argv)
{
  struct run_options o = { .copy = false, .kind = default_kind() };
  resolve_ref(&o);
  client_run_program(&o, path, argc, argv);
}

