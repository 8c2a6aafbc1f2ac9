/* image_full_build: the full Debian userland of a target, as an ext4 root
 * filesystem image. apt resolves the package set with the private state of
 * image-apt.c; the packages are unpacked on the host as the invoking user
 * (image-dpkg.c), mke2fs -d turns the tree into rootfs.img without root, and
 * the guest configures it on a first boot of the minimal image
 * (image-firstboot.c). The image directory, cache_dir()/images/KEY:
 *   rootfs.img     ext4, no journal (a build that dies is redone, not repaired)
 *   firstboot.log  the console of the first boot
 *   manifest       kind full, target, packages, key, created, with, format, size
 * and cache_dir()/images/TARGET-full names the one last built. The key covers
 * the package files, --with, IMAGE_FULL_FORMAT and the first-boot script, not
 * the agent: the image holds none (the minimal image's agent boots it). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "image-cache.h"
#include "image-dpkg.h"
#include "image-firstboot.h"
#include "subprocess.h"
#include "util.h"
#include "image.h"
#include "image-full.h"
#include "paths.h"

/* The package set. The Essential packages alone lack some of what scripts
 * take for granted on any Debian system, such as mount (the first-boot
 * script needs it too): Priority: required is debootstrap's minbase, and
 * costs 6 packages and 5 MiB more. Then what builds and tests software. usr-is-merged stands for the merged /usr
 * the root is unpacked into: without it apt picks usrmerge for
 * init-system-helpers' "usrmerge | usr-is-merged", whose postinst would
 * convert a layout that is merged already. */
static const char *const full_packages[] = {
  "?essential", "?priority(required)", "usr-is-merged", "build-essential", "make", "meson", "ninja-build", "cmake",
  "pkgconf",
};

/* The file system: twice what the files take, plus 512 MiB, for what the
 * first boot and the users' runs in their overlays add (the file is sparse:
 * only what is written takes disk space); inodes likewise. */
#define HEADROOM_BYTES (512ULL << 20)
#define HEADROOM_INODES 65536ULL

static const char *script(void)
{
  return dpkg_firstboot_script;
}

/* A minimal image with this vmexec's agent boots the first boot: the one the
 * target uses if it is current, else the plain one (built if need be). */
static void minimal_image(const struct target *t, const struct image_options *opt, char *dir)
{
  if (image_current(t, dir) == 0)
    return;
  struct image_options plain = {.quiet = opt && opt->quiet};
  image_build(t, &plain, dir);
}

static struct dpkg_totals unpack(struct image_job *j, const char *root)
{
  step(&j->p, "extracting %zu packages", j->r.n);
  struct dpkg_root *r = dpkg_root_new(root, j->t->name);
  for (size_t i = 0; i < j->r.n; i++) {
    CLEANUP_FREE char *deb = xasprintf("%s/%s", j->debs, j->r.debs[i].file);
    dpkg_root_unpack(r, deb);
  }
  step(&j->p, "writing the dpkg database");
  struct dpkg_totals totals;
  dpkg_root_finish(r, &totals);
  return totals;
}

/* mke2fs -d makes the file system from the tree as it is, as any user; the
 * files then belong to that user, which the first boot puts right. */
static uint64_t make_filesystem(struct image_job *j, const char *root, const struct dpkg_totals *totals,
                                const char *image)
{
  uint64_t bytes = (2 * totals->bytes + HEADROOM_BYTES + (1 << 20) - 1) / (1 << 20) * (1 << 20);
  char size[32], used[32];
  step(&j->p, "making the file system (%s, %s of files)", human_size(bytes, size, sizeof size),
       human_size(totals->bytes, used, sizeof used));
  CLEANUP_FREE char *inodes = xasprintf("%llu", (unsigned long long)(2 * totals->inodes + HEADROOM_INODES));
  CLEANUP_FREE char *blocks = xasprintf("%lluk", (unsigned long long)(bytes >> 10));
  char *argv[] = {"mke2fs", "-q", "-t", "ext4", "-O", "^has_journal", "-b", "4096", "-N", inodes, "-d", (char *)root,
                  "-E", "root_owner=0:0", "-L", "vmexec-root", (char *)image, blocks, NULL};
  char line[512];
  int st = run_checked(argv, line, sizeof line);
  if (st != 0)
    fail(EXIT_TOOL_FAILED, "[%s] mke2fs cannot make %s: %s; %s", j->t->name, image, line,
         st == -1 ? "install e2fsprogs" : "check the free space in the cache");
  return bytes;
}

int image_full_build(const struct target *t, const struct image_options *opt, char *dir)
{
  struct strv pkgs = {0};
  for (size_t i = 0; i < sizeof full_packages / sizeof full_packages[0]; i++)
    strv_push(&pkgs, full_packages[i]);
  CLEANUP_FREE char *with = image_with(opt ? opt->with : NULL, &pkgs);
  CLEANUP_FREE char *link = xasprintf("%s-full", t->name);
  struct image_spec spec = {
    .kind = "full", .format = IMAGE_FULL_FORMAT, .link = link, .kernel_meta = NULL, .pkgs = &pkgs, .with = with,
    .extra = script(), .extra_len = strlen(script()), .quiet = opt && opt->quiet,
  };
  struct image_job j;
  bool build = image_job_start(&j, t, &spec, dir);
  strv_free(&pkgs);
  if (!build)
    return 0;

  char minimal[PATH_MAX];
  minimal_image(t, opt, minimal);

  CLEANUP_FREE char *root = xasprintf("%s/root", j.staging);
  CLEANUP_FREE char *out = xasprintf("%s/image", j.staging);
  if (mkdir(root, 0755) == -1 || mkdir(out, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create a directory in %s: %s; check the free space", j.staging, strerror(errno));
  struct dpkg_totals totals = unpack(&j, root);
  CLEANUP_FREE char *rootfs = xasprintf("%s/rootfs.img", out);
  uint64_t size = make_filesystem(&j, root, &totals, rootfs);
  /* The tree is in the image now; the disk space is better left to the boot. */
  remove_tree(root);

  /* The console log outlives a failed boot (the staging directory does not). */
  step(&j.p, "first boot: the guest configures %zu packages (this takes minutes under TCG)", totals.packages);
  CLEANUP_FREE char *log = xasprintf("%s/tmp/firstboot-%s.log", cache_dir(), j.key);
  CLEANUP_FREE char *kept_log = xasprintf("%s/firstboot.log", out);
  unlink(log);
  image_firstboot(t, minimal, rootfs, log);
  if (rename(log, kept_log) == -1)
    fail(EXIT_TOOL_FAILED, "cannot move %s to %s: %s; check the permissions of %s", log, kept_log, strerror(errno),
         cache_dir());

  CLEANUP_FREE char *manifest_lines = xasprintf("kind full\nsize %llu\n", (unsigned long long)size);
  image_job_finish(&j, out, manifest_lines, dir);
  return 0;
}

int image_full_current(const struct target *t, char *dir)
{
  CLEANUP_FREE char *link = xasprintf("%s-full", t->name);
  if (image_link_dir(link, dir) != 0)
    return -1;
  return image_key_matches(t, dir, "full", IMAGE_FULL_FORMAT, script(), strlen(script())) ? 0 : -1;
}
