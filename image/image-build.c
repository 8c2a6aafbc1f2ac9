/* image_build: resolve the packages, and unless the cache already holds the
 * image they make, download, extract, pick the kernel modules and write the
 * initramfs into a temporary directory that is renamed into place. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fail.h"
#include "image-apt.h"
#include "image-cache.h"
#include "image-cross.h"
#include "image-initramfs.h"
#include "image-kernel.h"
#include "image-modules.h"
#include "subprocess.h"
#include "util.h"
#include "image.h"
#include "paths.h"

/* The user space of every image: the agent is static, but the programs it
 * runs need the target's libc, and busybox gives the guest a shell. */
/* busybox gives the common commands. Under qemu-user a program that runs a
 * helper runs the host's own: Debian's /bin/sh (dash) and the GNU tools. So
 * /bin/sh is dash here too, the compressors and ed are the real ones (test
 * suites run them on data they compare byte for byte: libarchive's gzip and
 * lzop filters, xz -d refusing gzip data, patch's `ed -`), and busybox is
 * Debian's dynamic build: busybox-static prefers its applets, whatever PATH
 * says, in its sh, env, xargs and find -exec, so system("gzip ...") and
 * `env sh` never reached the real programs. (It starts no slower here: 25 ms
 * for a `cat` run from dash under TCG, either way.) dash brings dpkg and tar
 * by its dependencies. bash and the GNU tools of every Debian system
 * (coreutils, diffutils, findutils, grep, sed) for the options and output
 * busybox's lack (gawk's tests run `ls -f` and `cksum`, scripts start with
 * #!/bin/bash): 11 MB more initramfs, 4 MB more snapshot, no slower restore
 * (bench/coldstart.py). busybox fills in the names they do not have. */
static const char *const base_packages[] = {"busybox", "libc6",  "libgcc-s1", "libstdc++6", "libc-bin", "dash",
                                            "bash", "coreutils", "diffutils", "findutils", "grep", "sed", "gzip", "xz-utils", "bzip2", "lzop", "ed"};

char *image_extra(const struct target *t, const char *agent, size_t agent_len, const char *kernel_key, size_t *len)
{
  struct strv parts = {0};
  for (size_t i = 0; i < sizeof base_packages / sizeof base_packages[0]; i++)
    strv_push(&parts, base_packages[i]);
  CLEANUP_FREE char *base = strv_join(&parts, " ");
  strv_free(&parts);
  CLEANUP_FREE char *kernel = kernel_key[0] ? kernel_inputs(t) : NULL;
  CLEANUP_FREE char *tail = kernel ? xasprintf("%s%c%s", kernel_key, 0, kernel) : NULL;
  /* agent \0 "base " names [\0 "kernel " key \0 inputs] */
  size_t b = strlen(base) + 6, k = tail ? strlen(kernel_key) + 1 + strlen(kernel) + 8 : 0;
  char *extra = xrealloc(NULL, agent_len + b + k + 1);
  memcpy(extra, agent, agent_len);
  memcpy(extra + agent_len, "\0base ", 6);
  memcpy(extra + agent_len + 6, base, b - 6);
  if (k) {
    memcpy(extra + agent_len + b, "\0kernel ", 8);
    memcpy(extra + agent_len + b + 8, tail, k - 8);
  }
  *len = agent_len + b + k;
  return extra;
}

/* What the agent needs from the kernel: the console port, the share disk,
 * loop and overlay for writes, and the file systems of share generations;
 * 9p only so that bench/ can compare the share with virtio-9p. */
static const char *const base_modules[] = {"virtio_console", "virtio_blk", "loop",         "overlay",
                                           "erofs",          "ext4",       "9pnet_virtio", "9p"};

/* Package content the guest never reads. The kernel and its modules are
 * added by hand (only the modules the agent loads). */
static const char *const pruned[] = {
  "boot", "lib/modules", "usr/lib/linux-image-*", "usr/share/doc", "usr/share/man", "usr/share/info",
  "usr/share/locale", "usr/share/lintian", "usr/share/bug", NULL,
};

static void extract(const struct progress *p, const struct apt_resolution *r, const char *debs, const char *root)
{
  step(p, "extracting %zu packages", r->n + (r->kernel.file != NULL));
  for (size_t i = 0; i <= r->n; i++) {
    const struct deb *d = i == r->n ? &r->kernel : &r->debs[i];
    if (!d->file)
      continue; /* the kernel is built from source (image-kernel.c) */
    CLEANUP_FREE char *deb = xasprintf("%s/%s", debs, d->file);
    char *argv[] = {"dpkg-deb", "-x", deb, (char *)root, NULL};
    char line[512];
    int st = run_checked(argv, line, sizeof line);
    if (st != 0)
      fail(EXIT_TOOL_FAILED, "[%s] cannot extract %s: %s; %s", p->name, deb, line,
           st == -1 ? "install dpkg" : "remove the file and build again");
  }
}

/* The one directory under ROOT/lib/modules. */
static char *kernel_version(const struct target *t, const char *root)
{
  CLEANUP_FREE char *dir = xasprintf("%s/lib/modules", root);
  DIR *d = opendir(dir);
  char *version = NULL;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      if (version)
        fail(EXIT_TOOL_FAILED, "[%s] more than one kernel in %s; remove %s/debs and build again", t->name, dir,
             cache_dir());
      version = xstrdup(e->d_name);
    }
  if (d)
    closedir(d);
  if (!version)
    fail(EXIT_TOOL_FAILED, "[%s] the kernel package has no modules (%s); check the kernel package %s", t->name, dir,
         t->kernel_package);
  return version;
}

/* Move boot/vmlinuz-VERSION (or vmlinux-, which ppc64el ships) to DEST. */
static void take_kernel(const struct target *t, const char *root, const char *version, const char *dest)
{
  const char *names[] = {"vmlinuz", "vmlinux"};
  for (size_t i = 0; i < 2; i++) {
    CLEANUP_FREE char *path = xasprintf("%s/boot/%s-%s", root, names[i], version);
    if (rename(path, dest) == 0)
      return;
  }
  fail(EXIT_TOOL_FAILED, "[%s] no boot/vmlinuz-%s or boot/vmlinux-%s in the kernel package; check %s", t->name, version,
       version, t->kernel_package);
}

/* Add "lib/modules/..." and every parent directory of the module path to IR. */
static void add_parents(struct initramfs *ir, const char *path)
{
  CLEANUP_FREE char *copy = xstrdup(path);
  for (char *s = strchr(copy, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    initramfs_add_dir(ir, copy, 0755);
    *s = '/';
  }
}

static void write_initramfs(const struct progress *p, const char *root, const char *version, const char *agent,
                            size_t agent_len, const struct strv *modules, const char *out)
{
  struct initramfs *ir = initramfs_new();
  initramfs_add_tree(ir, root, pruned);
  const char *dirs[] = {"dev", "proc", "sys", "run", "etc", "etc/vmexec"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    initramfs_add_dir(ir, dirs[i], 0755);
  initramfs_add_dir(ir, "tmp", 01777);
  /* /init writes to the console before it can mount devtmpfs. */
  initramfs_add_chardev(ir, "dev/console", 0600, 5, 1);
  /* The bytes the image key was made from, not the file again: a rebuild of
   * the agent meanwhile would give the image a key that is not its agent's. */
  initramfs_add_bytes(ir, "init", agent, agent_len, 0755);
  if (initramfs_has(ir, "bin/busybox") && !initramfs_has(ir, "bin/sh"))
    initramfs_add_symlink(ir, "bin/sh", "busybox");

  struct strv list = {0};
  for (size_t i = 0; i < modules->n; i++) {
    CLEANUP_FREE char *path = xasprintf("lib/modules/%s/%s", version, modules->v[i]);
    CLEANUP_FREE char *host = xasprintf("%s/%s", root, path);
    add_parents(ir, path);
    initramfs_add_module(ir, path, host);
    strv_pushf(&list, "/%s\n", path);
  }
  CLEANUP_FREE char *text = strv_join(&list, "");
  strv_free(&list);
  /* The agent loads these in this order (dependencies first). */
  initramfs_add_data(ir, "etc/vmexec/modules", text, 0644);
  CLEANUP_FREE char *info = xasprintf("target %s\nkernel-version %s\n", p->name, version);
  initramfs_add_data(ir, "etc/vmexec/image", info, 0644);

  char size[32];
  step(p, "writing initramfs (%s)", human_size(initramfs_data_size(ir), size, sizeof size));
  initramfs_write(ir, out);
  initramfs_free(ir);
}

/* The modules the agent loads from ROOT's Debian kernel VERSION, in load order. */
static void resolve_modules(const struct image_job *j, const char *root, const char *version, struct strv *modules)
{
  step(&j->p, "resolving modules");
  CLEANUP_FREE char *moddir = xasprintf("%s/lib/modules/%s", root, version);
  const char *wanted[sizeof base_modules / sizeof base_modules[0] + 1];
  size_t n_wanted = 0;
  if (transport_module(j->t->transport))
    wanted[n_wanted++] = transport_module(j->t->transport);
  for (size_t i = 0; i < sizeof base_modules / sizeof base_modules[0]; i++)
    wanted[n_wanted++] = base_modules[i];
  modules_resolve(moddir, wanted, n_wanted, modules);
}

/* The kernel built from source (KDIR, image-kernel.c) into the image as DEST. */
static char *link_kernel(const char *kdir, const char *dest)
{
  CLEANUP_FREE char *from = xasprintf("%s/kernel", kdir);
  if (link(from, dest) == -1)
    fail(EXIT_TOOL_FAILED, "cannot link %s to %s: %s; check the permissions of %s", from, dest, strerror(errno),
         cache_dir());
  return kernel_release(kdir);
}

int image_build(const struct target *t, const struct image_options *opt, char *dir)
{
  struct strv pkgs = {0};
  if (t->cross_userland)
    cross_packages(t, &pkgs);
  else
    for (size_t i = 0; i < sizeof base_packages / sizeof base_packages[0]; i++)
      strv_push(&pkgs, base_packages[i]);
  CLEANUP_FREE char *with = image_with(opt ? opt->with : NULL, &pkgs);
  strv_sort_unique(&pkgs);

  CLEANUP_FREE char *agent = agent_path(t);
  CLEANUP_FREE char *agent_bytes = NULL;
  size_t agent_len;
  if (read_file(agent, &agent_bytes, &agent_len) == -1)
    fail(EXIT_TOOL_FAILED, "cannot read the guest agent %s: %s; rebuild vmexec", agent, strerror(errno));
  /* A kernel built from source is a cache entry of its own, keyed apart. */
  char kdir[PATH_MAX], kkey[IMAGE_KEY_LEN + 1] = "";
  if (t->kernel_arch)
    kernel_build(t, opt && opt->quiet, kdir, kkey);
  size_t extra_len;
  CLEANUP_FREE char *extra = image_extra(t, agent_bytes, agent_len, kkey, &extra_len);

  struct image_spec spec = {
    .kind = "image", .format = IMAGE_FORMAT, .link = t->name, .kernel_meta = t->kernel_arch ? NULL : t->kernel_package,
    .pkgs = &pkgs, .with = with, .extra = extra, .extra_len = extra_len, .quiet = opt && opt->quiet,
  };
  struct image_job j;
  bool build = image_job_start(&j, t, &spec, dir);
  strv_free(&pkgs);
  if (!build)
    return 0;

  CLEANUP_FREE char *root = xasprintf("%s/root", j.staging);
  CLEANUP_FREE char *out = xasprintf("%s/image", j.staging);
  if (mkdir(root, 0755) == -1 || mkdir(out, 0755) == -1)
    fail(EXIT_TOOL_FAILED, "cannot create a directory in %s: %s; check the free space", j.staging, strerror(errno));

  extract(&j.p, &j.r, j.debs, root);
  if (t->cross_userland)
    cross_relocate(t, root);
  CLEANUP_FREE char *initrd = xasprintf("%s/initrd", out);
  CLEANUP_FREE char *kernel = xasprintf("%s/kernel", out);
  /* A kernel built from source has everything built in: no modules. */
  struct strv modules = {0};
  CLEANUP_FREE char *version = t->kernel_arch ? link_kernel(kdir, kernel) : kernel_version(t, root);
  if (!t->kernel_arch)
    resolve_modules(&j, root, version, &modules);
  write_initramfs(&j.p, root, version, agent_bytes, agent_len, &modules, initrd);
  strv_free(&modules);
  if (!t->kernel_arch)
    take_kernel(t, root, version, kernel);
  CLEANUP_FREE char *manifest_lines =
    xasprintf("kernel-version %s\n%s%s%s", version, kkey[0] ? "kernel-key " : "", kkey, kkey[0] ? "\n" : "");
  image_job_finish(&j, out, manifest_lines, dir);
  return 0;
}
