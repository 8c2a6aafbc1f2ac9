/* vmexec image build|list|rm|test|push|pull|export|import: managing the
 * guest images (the work is in image-*.c). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "fail.h"
#include "image-cache.h"
#include "image.h"
#include "image-full.h"
#include "image-oci.h"
#include "image-test.h"
#include "targets.h"

static const char help[] =
  "Usage: vmexec image build [TARGET] [--full] [--with PKG,...] [--quiet]\n"
  "       vmexec image list\n"
  "       vmexec image rm [TARGET|--all]\n"
  "       vmexec image test [TARGET]\n"
  "       vmexec image push TARGET [--full] REF [--tls-verify=false] [--authfile FILE]\n"
  "       vmexec image pull REF [--target TARGET] [--tls-verify=false] [--authfile FILE]\n"
  "       vmexec image export TARGET [--full] FILE\n"
  "       vmexec image import FILE [--target TARGET]\n"
  "\n"
  "build  assemble the guest image of TARGET (default s390x) from Debian packages of\n"
  "       its architecture: kernel, busybox, libc6, libgcc-s1, libstdc++6,\n"
  "       libc-bin, dash, bash, coreutils, diffutils, findutils, grep, sed, gzip,\n"
  "       xz-utils, bzip2, lzop, ed, and the --with packages with their\n"
  "       dependencies. apt runs as you, with private package lists; the\n"
  "       host's apt and dpkg state are not touched.\n"
  "       Where the targets table says so (s390x, and targets Debian has no kernel\n"
  "       for), the kernel is built from Debian's linux-source with the target's\n"
  "       cross compiler instead (minutes, once; cached apart from the image).\n"
  "       An image that is already cached is reused at once.\n"
  "       --full builds the full Debian userland instead (vmexec --image full): the\n"
  "       Essential and required packages, build-essential, make, meson, ninja-build,\n"
  "       cmake, pkgconf and the --with packages, unpacked as you and configured by\n"
  "       the guest's own dpkg on a first boot (minutes under TCG, once), kept as an\n"
  "       ext4 root filesystem image.\n"
  "list   the cached images, minimal and full; '*' marks the one of each kind that\n"
  "       each target uses\n"
  "rm     remove the images of TARGET (minimal and full), or every image with --all.\n"
  "       The downloaded packages and package lists stay (so images can be rebuilt\n"
  "       offline); to drop everything, remove the cache directory:\n"
  "       ${XDG_CACHE_HOME:-~/.cache}/vmexec\n"
  "test   boot the image of TARGET (building it if needed) and wait for the agent\n"
  "push   store TARGET's current image (with --full the full one, with the minimal\n"
  "       image that boots it) in an OCI registry as REF (host/repository:tag), with\n"
  "       skopeo: its authentication (--authfile, REGISTRY_AUTH_FILE,\n"
  "       ~/.docker/config.json, 'skopeo login') and TLS rules apply\n"
  "pull   fetch the image REF into the cache, check every layer's sha256, and make it\n"
  "       the current image of its kind for its target: calls then use it without\n"
  "       building. Refused: another target than --target's, another vmexec's image\n"
  "       or format. 'vmexec --image REF' (VMEXEC_IMAGE=REF) pulls on first use\n"
  "export the same as push, into FILE: an OCI layout in a tar, for machines offline\n"
  "import the same as pull, from such a FILE\n";

static const struct target *target_arg(const char *name)
{
  const struct target *t = target_by_name(name ? name : "s390x");
  if (!t)
    fail(EXIT_TOOL_FAILED, "unknown target '%s'; the targets are: %s", name, target_names());
  return t;
}

static int build(int argc, char **argv)
{
  struct image_options opt = {0};
  const char *name = NULL;
  bool full = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--full") == 0)
      full = true;
    else if (strcmp(argv[i], "--with") == 0 && i + 1 < argc)
      opt.with = argv[++i];
    else if (strncmp(argv[i], "--with=", 7) == 0)
      opt.with = argv[i] + 7;
    else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
      opt.quiet = true;
    else if (argv[i][0] == '-' || name)
      fail(EXIT_TOOL_FAILED,
           "image build: unexpected '%s'; usage: vmexec image build [TARGET] [--full] [--with PKG,...]", argv[i]);
    else
      name = argv[i];
  }
  char dir[PATH_MAX];
  if (full)
    return image_full_build(target_arg(name), &opt, dir);
  return image_build(target_arg(name), &opt, dir);
}

static int rm(int argc, char **argv)
{
  if (argc != 2)
    fail(EXIT_TOOL_FAILED, "image rm: give one TARGET or --all; the targets are: %s", target_names());
  if (strcmp(argv[1], "--all") == 0)
    return images_rm(NULL);
  return images_rm(target_arg(argv[1]));
}

static int test(int argc, char **argv)
{
  const char *name = NULL, *image_dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      image_dir = argv[++i];
    else if (argv[i][0] == '-' || name)
      fail(EXIT_TOOL_FAILED, "image test: unexpected '%s'; usage: vmexec image test [TARGET] [--dir DIR]", argv[i]);
    else
      name = argv[i];
  }
  const struct target *t = target_arg(name);
  /* An image directory made elsewhere (tests boot deliberately broken ones). */
  if (image_dir)
    return image_test(t, image_dir);
  /* Building is instant when the image is current, and tests the agent as built. */
  char dir[PATH_MAX];
  struct image_options opt = {0};
  int st = image_build(t, &opt, dir);
  if (st != 0)
    return st;
  return image_test(t, dir);
}

/* The options of push, pull, export and import into O; the other words into WORDS. */
static int oci_args(int argc, char **argv, struct oci_options *o, bool *full, const char **words, int max)
{
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--full") == 0 && full)
      *full = true;
    else if (strcmp(argv[i], "--tls-verify=false") == 0)
      o->registry.tls_verify_off = true;
    else if (strcmp(argv[i], "--tls-verify=true") == 0 || strcmp(argv[i], "--tls-verify") == 0)
      o->registry.tls_verify_off = false;
    else if (strcmp(argv[i], "--authfile") == 0 && i + 1 < argc)
      o->registry.authfile = argv[++i];
    else if (strncmp(argv[i], "--authfile=", 11) == 0)
      o->registry.authfile = argv[i] + 11;
    else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc && !full)
      o->want = target_arg(argv[++i]);
    else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
      o->quiet = true;
    else if (argv[i][0] == '-' || n == max)
      fail(EXIT_TOOL_FAILED, "image %s: unexpected '%s'; see 'vmexec image --help'", argv[0], argv[i]);
    else
      words[n++] = argv[i];
  }
  if (n != max)
    fail(EXIT_TOOL_FAILED, "image %s: missing arguments; see 'vmexec image --help'", argv[0]);
  return n;
}

/* push and export: TARGET [--full] REF|FILE */
static int push_or_export(int argc, char **argv)
{
  struct oci_options o = {0};
  bool full = false;
  const char *words[2];
  oci_args(argc, argv, &o, &full, words, 2);
  if (strcmp(argv[0], "push") == 0)
    return image_push(target_arg(words[0]), full, words[1], &o);
  return image_export(target_arg(words[0]), full, words[1], &o);
}

/* pull and import: REF|FILE [--target TARGET] */
static int pull_or_import(int argc, char **argv)
{
  struct oci_options o = {0};
  const char *words[1];
  oci_args(argc, argv, &o, NULL, words, 1);
  if (strcmp(argv[0], "pull") == 0)
    return image_pull(words[0], &o);
  return image_import(words[0], &o);
}

int cmd_image(int argc, char **argv)
{
  const char *sub = argc > 1 ? argv[1] : NULL;
  if (!sub)
    fail(EXIT_TOOL_FAILED, "image: say build, list, rm, test, push, pull, export or import; see 'vmexec image --help'");
  if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
    fputs(help, stdout);
    return 0;
  }
  if (strcmp(sub, "build") == 0)
    return build(argc - 1, argv + 1);
  if (strcmp(sub, "list") == 0) {
    if (argc > 2)
      fail(EXIT_TOOL_FAILED, "image list takes no arguments");
    return images_list();
  }
  if (strcmp(sub, "rm") == 0)
    return rm(argc - 1, argv + 1);
  if (strcmp(sub, "test") == 0)
    return test(argc - 1, argv + 1);
  if (strcmp(sub, "push") == 0 || strcmp(sub, "export") == 0)
    return push_or_export(argc - 1, argv + 1);
  if (strcmp(sub, "pull") == 0 || strcmp(sub, "import") == 0)
    return pull_or_import(argc - 1, argv + 1);
  fail(EXIT_TOOL_FAILED, "image: unknown subcommand '%s'; say build, list, rm, test, push, pull, export or import",
       sub);
}
