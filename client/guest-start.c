/* Starting a guest's supervisor when none runs: the image built on first
 * use, then "vmexec __supervise" detached. The lock file serialises
 * starting, so that eight calls started at the same moment boot exactly one
 * guest. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console-log.h"
#include "fail.h"
#include "guest-connect.h"
#include "image-full.h"
#include "image-layer.h"
#include "image.h"
#include "rundir.h"
#include "sockets.h"

/* Start "vmexec __supervise TARGET NAME IMAGE [ROOTFS [LAYER]]" detached from
 * the caller (its own session, stdio to supervisor.log), and wait until it
 * listens. */
static void spawn_supervisor(const struct target *t, const char *name, const char *image_dir, const char *rootfs,
                             const char *layer, const char *dir)
{
  char self[PATH_MAX], log_path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    fail(EXIT_TOOL_FAILED, "cannot find the vmexec executable: %s", strerror(errno));
  self[n] = '\0';
  rundir_file(dir, "supervisor.log", 0, log_path);

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) == -1)
    fail(EXIT_TOOL_FAILED, "pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == -1)
    fail(EXIT_TOOL_FAILED, "fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    if (fork() != 0)
      _exit(0);
    int null = open("/dev/null", O_RDWR);
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (null < 0 || log < 0)
      _exit(1);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    /* Only stdio and the ready pipe (as fd 3) go on: the supervisor, qemu and
     * nbdkit outlive the call, and must not keep a fd of the caller's open (a
     * harness waiting for EOF on a pipe it gave the call would hang). */
    if (ready[1] != 3 && dup2(ready[1], 3) == -1)
      _exit(1);
    fcntl(3, F_SETFD, 0); /* without FD_CLOEXEC, so it survives exec */
    if (close_range(4, ~0U, 0) == -1)
      for (long fd = 4, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
        close((int)fd);
    setenv("VMEXEC_READY_FD", "3", 1);
    execl(self, "vmexec", "__supervise", t->name, name, image_dir, rootfs, layer, (char *)NULL);
    /* The log's last line is what the caller shows. /proc/self/exe names a
     * file that is gone when vmexec was rebuilt or upgraded while this call
     * built the image. */
    int e = errno;
    dprintf(2, "cannot run %s: %s; %s\n", self, strerror(e),
            e == ENOENT ? "vmexec was replaced while it ran: run the command again" : "check its permissions");
    _exit(127);
  }
  close(ready[1]);
  waitpid(pid, NULL, 0);
  char byte;
  ssize_t got;
  do
    got = read(ready[0], &byte, 1);
  while (got == -1 && errno == EINTR);
  close(ready[0]);
  if (got != 1) {
    char last[512];
    console_last_line(log_path, last, sizeof last);
    fail(EXIT_TOOL_FAILED, "the %s guest's supervisor did not start: %s (log: %s)", t->name,
         last[0] ? last : "no message", log_path);
  }
}

/* The image of KIND for T: the last one built if it is current, else built
 * now (instant when cached). The full image also needs the minimal one, whose
 * kernel and agent boot it; ROOTFS gets its root filesystem, LAYER the
 * persistent layer over it (made on first use). */
static void find_images(const struct target *t, enum image_kind kind, char *image_dir, char *rootfs, char *layer)
{
  struct image_options opt = { .quiet = !isatty(STDERR_FILENO) }; /* a harness reads our stderr */
  if (image_current(t, image_dir) != 0 && image_build(t, &opt, image_dir) != 0)
    exit(EXIT_TOOL_FAILED);
  rootfs[0] = layer[0] = '\0';
  if (kind != IMAGE_MINIMAL) {
    char full[PATH_MAX];
    if (image_full_current(t, full) != 0) {
      /* Minutes on first use (the guest configures the packages): say so even to a harness. */
      opt.quiet = false;
      if (image_full_build(t, &opt, full) != 0)
        exit(EXIT_TOOL_FAILED);
    }
    if (snprintf(rootfs, PATH_MAX, "%s/rootfs.img", full) >= PATH_MAX)
      fail(EXIT_TOOL_FAILED, "cache directory path is too long; set XDG_CACHE_HOME to a shorter path");
    if (kind == IMAGE_FULL_PERSIST)
      image_layer(t, full, layer);
  }
}

int guest_start(const struct target *t, enum image_kind kind)
{
  char dir[PATH_MAX], sock[PATH_MAX], lock_path[PATH_MAX], name[64];
  guest_name(t, kind, name, sizeof name);
  rundir_guest(name, dir);
  rundir_file(dir, "control.sock", 1, sock);
  rundir_file(dir, "lock", 0, lock_path);
  int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock == -1 || flock(lock, LOCK_EX) == -1)
    fail(EXIT_TOOL_FAILED, "cannot lock %s: %s", lock_path, strerror(errno));
  int fd = unix_connect(sock, false);
  if (fd == -1) {
    char image_dir[PATH_MAX], rootfs[PATH_MAX], layer[PATH_MAX];
    find_images(t, kind, image_dir, rootfs, layer);
    spawn_supervisor(t, name, image_dir, rootfs[0] ? rootfs : NULL, layer[0] ? layer : NULL, dir);
    fd = unix_connect(sock, false);
    if (fd == -1)
      fail(EXIT_TOOL_FAILED, "cannot connect to %s: %s", sock, strerror(errno));
  }
  close(lock); /* releases the lock */
  return fd;
}
