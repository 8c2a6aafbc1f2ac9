/* Kernels built from Debian's linux-source for the targets Debian ships no
 * kernel for (a kernel_arch in targets.def): make allnoconfig with the
 * config fragments as KCONFIG_ALLCONFIG, then make the kernel file, with
 * the target's cross compiler, as the calling user. Everything is built in:
 * the image has no modules. Cached like an image (image-cache.c), keyed by
 * the source package's file name, the fragments and the compiler's version. */
#include "image-kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "image-cache.h"
#include "paths.h"
#include "subprocess.h"
#include "util.h"

/* Bump when the way the kernel is built changes. */
#define KERNEL_FORMAT 1

/* common.EXT and NAME.EXT beside each other (kernel-configs), concatenated;
 * a missing one is an error if REQUIRED, else left out ("" when both are). */
static char *read_common_and_own(const struct target *t, const char *ext, const char *what, bool required)
{
  const char *names[] = {"common", t->name};
  struct strv parts = {0};
  for (size_t i = 0; i < 2; i++) {
    CLEANUP_FREE char *file = xasprintf("%s.%s", names[i], ext);
    CLEANUP_FREE char *path = kernel_config_path(file);
    char *text;
    if (read_file(path, &text, NULL) == 0) {
      strv_push(&parts, text);
      free(text);
    } else if (required || errno != ENOENT) {
      fail(EXIT_TOOL_FAILED, "[%s] cannot read the kernel %s %s: %s; reinstall vmexec", t->name, what, path,
           strerror(errno));
    }
  }
  char *all = strv_join(&parts, "\n");
  strv_free(&parts);
  return all;
}

/* The fragments: common.config (what the agent needs) and NAME.config (the
 * board). */
static char *read_fragments(const struct target *t)
{
  return read_common_and_own(t, "config", "config fragment", true);
}

/* common.patch and NAME.patch (patch(1) applies one diff after the other),
 * applied to the source before make: the changes every kernel vmexec builds
 * carries, then the target's, each explained at its top. */
static char *read_patch(const struct target *t)
{
  return read_common_and_own(t, "patch", "patch", false);
}

/* "powerpc-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0": the first line of --version. */
static char *compiler_version(const struct target *t)
{
  CLEANUP_FREE char *cc = xasprintf("%s-gcc", t->triplet);
  char *argv[] = {cc, "--version", NULL};
  struct run_output out;
  int st = run_capture(argv, NULL, NULL, &out);
  if (st != 0) {
    run_output_free(&out);
    fail(EXIT_TOOL_FAILED, "[%s] the kernel is built with %s, which %s; install it (apt-get install gcc-%s)", t->name,
         cc, st == -1 ? "is not installed" : "failed", t->triplet);
  }
  char *line = xasprintf("%.*s", (int)strcspn(out.out, "\n"), out.out);
  run_output_free(&out);
  return line;
}

static void run_or_fail(const struct target *t, char *const argv[], const char *what, const char *log)
{
  char why[512];
  int st = run_checked(argv, why, sizeof why);
  if (st != 0)
    fail(EXIT_TOOL_FAILED, "[%s] %s failed: %s; %s", t->name, what, why,
         st == -1 ? "install the tools (scripts/install-deps)" : log);
}

/* linux-source-6.1_*.deb holds usr/src/linux-source-6.1.tar.xz: into DIR/linux-source-6.1. */
static char *extract_source(const struct image_job *j, const char *dir)
{
  CLEANUP_FREE char *deb = xasprintf("%s/%s", j->debs, j->r.kernel.file);
  CLEANUP_FREE char *pkg = xasprintf("%s/pkg", dir);
  step(&j->p, "extracting %s", j->r.kernel.name);
  char *x[] = {"dpkg-deb", "-x", deb, pkg, NULL};
  run_or_fail(j->t, x, "dpkg-deb -x", "remove the file and build again");
  CLEANUP_FREE char *tarball = xasprintf("%s/usr/src/%s.tar.xz", pkg, j->r.kernel.name);
  char *tar[] = {"tar", "-xf", tarball, "-C", (char *)dir, NULL};
  run_or_fail(j->t, tar, "unpacking the kernel source", "check the free space");
  remove_tree(pkg);
  return xasprintf("%s/%s", dir, j->r.kernel.name);
}

/* Whether a line after P sets the option P sets ("CONFIG_X="): the board's
 * fragment comes after common.config and overrides it, as Kconfig takes the
 * last value (m68k has no PCI: its fragment says CONFIG_PCI=n). */
static bool set_again(const char *p)
{
  size_t name = strcspn(p, "=\n");
  for (const char *q = strchr(p, '\n'); q; q = strchr(q + 1, '\n'))
    if (strncmp(q + 1, p, name) == 0 && q[1 + name] == '=')
      return true;
  return false;
}

/* Every "CONFIG_X=V" of the fragments must be in .config: Kconfig drops what
 * an unmet dependency forbids, silently. */
static void check_config(const struct target *t, const char *fragments, const char *config_path)
{
  CLEANUP_FREE char *config = NULL;
  if (read_file(config_path, &config, NULL) == -1)
    fail(EXIT_TOOL_FAILED, "[%s] make allnoconfig wrote no %s", t->name, config_path);
  for (const char *p = fragments; *p; p += strcspn(p, "\n"), p += *p == '\n') {
    size_t n = strcspn(p, "\n");
    if (strncmp(p, "CONFIG_", 7) != 0 || (n > 2 && strncmp(p + n - 2, "=n", 2) == 0) || set_again(p))
      continue;
    CLEANUP_FREE char *want = xasprintf("\n%.*s\n", (int)n, p);
    if (!strstr(config, want))
      fail(EXIT_TOOL_FAILED, "[%s] the kernel config does not have %.*s (a dependency is missing); fix %s", t->name,
           (int)n, p, "image/kernel-configs");
  }
}

/* ARGV with stdout and stderr on one pipe (make's warnings are many, and a
 * second pipe read only at the end could fill up); returns the pid. */
static pid_t spawn_merged(const struct target *t, char *const argv[], int *out_fd)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) == -1)
    fail(EXIT_TOOL_FAILED, "[%s] pipe: %s", t->name, strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (err != 0)
    fail(EXIT_TOOL_FAILED, "[%s] cannot run %s: %s; install it (scripts/install-deps)", t->name, argv[0],
         strerror(err));
  *out_fd = p[0];
  return pid;
}

/* The first line of LOG with "error" in it, into buf. */
static const char *first_error(const char *log, char *buf, size_t cap)
{
  snprintf(buf, cap, "no error message");
  FILE *f = fopen(log, "r");
  char line[1024];
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "error") || strstr(line, "Error")) {
      snprintf(buf, cap, "%.*s", (int)strcspn(line, "\n"), line);
      break;
    }
  if (f)
    fclose(f);
  return buf;
}

/* make, with a step line every 100 files compiled; its output is kept in LOG. */
static void make_kernel(const struct image_job *j, char *const argv[], const char *log)
{
  int fd;
  pid_t pid = spawn_merged(j->t, argv, &fd);
  FILE *keep = fopen(log, "w");
  char buf[8192 + 8] = "\n";
  size_t carry = 1; /* the end of the previous read, so that a split "\n  CC " counts */
  unsigned files = 0, shown = 0;
  ssize_t n;
  while ((n = read(fd, buf + carry, sizeof buf - carry - 1)) != 0) {
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      break;
    if (keep)
      fwrite(buf + carry, 1, (size_t)n, keep);
    size_t len = carry + (size_t)n;
    buf[len] = '\0';
    for (const char *p = buf; (p = strstr(p, "\n  CC ")); p++)
      files++;
    if (files / 100 > shown / 100)
      step(&j->p, "compiling the kernel: %u files", shown = files);
    carry = len < 5 ? len : 5;
    memmove(buf, buf + len - carry, carry);
  }
  close(fd);
  if (keep)
    fclose(keep);
  int status;
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
  }
  char why[1024];
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail(EXIT_TOOL_FAILED, "[%s] building the kernel failed: %s; the output of make is in %s", j->t->name,
         first_error(log, why, sizeof why), log);
}

/* Configure and build in the staging directory; the kernel file goes to OUT. */
static void build(const struct image_job *j, const char *fragments, const char *patch, const char *out,
                  char **release)
{
  const struct target *t = j->t;
  CLEANUP_FREE char *src = extract_source(j, j->staging);
  if (*patch) {
    CLEANUP_FREE char *patch_file = xasprintf("%s/vmexec.patch", j->staging);
    if (write_file_atomic(patch_file, patch, strlen(patch)) == -1)
      fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", patch_file, strerror(errno));
    step(&j->p, "patching the kernel source (image/kernel-configs/%s.patch)", t->name);
    char *argv[] = {"patch", "-p1", "--forward", "--batch", "--quiet", "-d", src, "-i", patch_file, NULL};
    run_or_fail(t, argv, "patch", "the patch no longer fits this linux-source: update image/kernel-configs");
  }
  CLEANUP_FREE char *obj = xasprintf("%s/build", j->staging);
  CLEANUP_FREE char *frag = xasprintf("%s/vmexec.config", j->staging);
  if (write_file_atomic(frag, fragments, strlen(fragments)) == -1)
    fail(EXIT_TOOL_FAILED, "cannot write %s: %s; check the free space", frag, strerror(errno));
  CLEANUP_FREE char *o = xasprintf("O=%s", obj);
  CLEANUP_FREE char *arch = xasprintf("ARCH=%s", t->kernel_arch);
  CLEANUP_FREE char *cross = xasprintf("CROSS_COMPILE=%s-", t->triplet);
  CLEANUP_FREE char *allconfig = xasprintf("KCONFIG_ALLCONFIG=%s", frag);
  CLEANUP_FREE char *jobs = xasprintf("-j%ld", sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1);
  CLEANUP_FREE char *log = xasprintf("%s/kernel-%s.log", cache_dir(), t->name);
  /* The kernel file's name is make's target: vmlinux, or arch/riscv/boot/Image from "Image". */
  const char *slash = strrchr(t->kernel_file, '/');
  char *goal = (char *)(slash ? slash + 1 : t->kernel_file);

  step(&j->p, "configuring the kernel (ARCH=%s)", t->kernel_arch);
  char *config[] = {"make", "-C", src, o, arch, cross, allconfig, "allnoconfig", NULL};
  make_kernel(j, config, log);
  CLEANUP_FREE char *dot_config = xasprintf("%s/.config", obj);
  check_config(t, fragments, dot_config);

  step(&j->p, "building the kernel with %s-gcc, %s (takes minutes)", t->triplet, jobs);
  char *make[] = {"make", "-C", src, o, arch, cross, jobs, goal, NULL};
  make_kernel(j, make, log);

  CLEANUP_FREE char *built = xasprintf("%s/%s", obj, t->kernel_file);
  CLEANUP_FREE char *kernel = xasprintf("%s/kernel", out);
  CLEANUP_FREE char *config_copy = xasprintf("%s/config", out);
  if (rename(built, kernel) == -1 || rename(dot_config, config_copy) == -1)
    fail(EXIT_TOOL_FAILED, "[%s] make gave no %s: %s; the output of make is in %s", t->name, built, strerror(errno), log);
  CLEANUP_FREE char *release_path = xasprintf("%s/include/config/kernel.release", obj);
  size_t len = 0;
  if (read_file(release_path, release, &len) == -1)
    *release = xstrdup("unknown");
  (*release)[strcspn(*release, "\n")] = '\0';
}

char *kernel_inputs(const struct target *t)
{
  CLEANUP_FREE char *fragments = read_fragments(t);
  CLEANUP_FREE char *patch = read_patch(t);
  return xasprintf("%s\npatch\n%s", fragments, patch);
}

void kernel_build(const struct target *t, bool quiet, char *dir, char key[IMAGE_KEY_LEN + 1])
{
  CLEANUP_FREE char *fragments = read_fragments(t);
  CLEANUP_FREE char *patch = read_patch(t);
  CLEANUP_FREE char *cc = compiler_version(t);
  /* What else makes the kernel: the compiler, the board's ARCH and file, the
   * patch (only when there is one: the keys of the kernels without stay). */
  CLEANUP_FREE char *extra = xasprintf("%s%c%s%c%s%c%s%s%s", fragments, 0, cc, 0, t->kernel_arch, 0, t->kernel_file,
                                       *patch ? "\npatch\n" : "", patch);
  size_t extra_len = strlen(fragments) + strlen(cc) + strlen(t->kernel_arch) + 3 + strlen(t->kernel_file) +
                     (*patch ? 7 + strlen(patch) : 0);
  struct strv none = {0};
  CLEANUP_FREE char *link = xasprintf("%s-kernel", t->name);
  struct image_spec spec = {
    .kind = "kernel", .format = KERNEL_FORMAT, .link = link, .kernel_meta = t->kernel_package, .pkgs = &none,
    .with = "", .extra = extra, .extra_len = extra_len, .quiet = quiet,
  };
  struct image_job j;
  bool building = image_job_start(&j, t, &spec, dir);
  snprintf(key, IMAGE_KEY_LEN + 1, "%s", j.key);
  if (!building)
    return;
  /* Minutes, on a call's first use too: say so even to a harness that reads
   * our stderr (as for the full image), rather than seem to hang. */
  if (quiet)
    fprintf(stderr, "vmexec: [%s] building the guest kernel from linux-source first (minutes, once; then cached)\n",
            t->name);
  CLEANUP_FREE char *out = xasprintf("%s/kernel", j.staging);
  if (mkdir(out, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create %s: %s; check the free space", out, strerror(errno));
  CLEANUP_FREE char *release = NULL;
  build(&j, fragments, patch, out, &release);
  CLEANUP_FREE char *lines = xasprintf("kind kernel\nkernel-version %s\ncompiler %s\n", release, cc);
  image_job_finish(&j, out, lines, dir);
}

char *kernel_release(const char *kdir)
{
  CLEANUP_FREE char *path = xasprintf("%s/manifest", kdir);
  CLEANUP_FREE char *manifest = NULL;
  char release[256];
  if (read_file(path, &manifest, NULL) == -1 || manifest_value(manifest, "kernel-version", release, sizeof release) != 0)
    fail(EXIT_TOOL_FAILED, "cannot read the kernel version from %s; remove %s and build again", path, kdir);
  return xstrdup(release);
}
