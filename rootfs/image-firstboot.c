/* image_firstboot: one boot of the minimal image with a full image's root
 * filesystem writable, in which the agent configures it (see
 * image-firstboot.h). The sockets live in a private directory of the runtime
 * directory, removed afterwards; the console log is the caller's. */
#include "image-firstboot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "console-log.h"
#include "env.h"
#include "fail.h"
#include "util.h"
#include "nbdkit.h"
#include "qemu-cmdline.h"
#include "qmp.h"
#include "rundir.h"

#define DEFAULT_FIRSTBOOT_TIMEOUT 3600 /* seconds: dpkg --configure -a under TCG takes minutes */

static double firstboot_timeout(void)
{
  return env_number("VMEXEC_FIRSTBOOT_TIMEOUT", DEFAULT_FIRSTBOOT_TIMEOUT, 1, 86400);
}

/* Whether the console log has a line starting with WHAT. */
static bool console_says(const char *log, const char *what)
{
  CLEANUP_FREE char *text = NULL;
  size_t len;
  if (read_file(log, &text, &len) == -1)
    return false;
  size_t k = strlen(what);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    while (*p == '\r')
      p++;
    if (strncmp(p, what, k) == 0)
      return true;
  }
  return false;
}

int image_firstboot(const struct target *t, const char *image_dir, const char *rootfs, const char *console_log)
{
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/firstboot-XXXXXX", rundir_base()) >= (int)sizeof dir || !mkdtemp(dir))
    fail(EXIT_TOOL_FAILED, "cannot create a directory in %s: %s; check its permissions", rundir_base(),
         strerror(errno));
  char root_sock[PATH_MAX], serial[PATH_MAX], nbdkit_log[PATH_MAX], qemu_log[PATH_MAX];
  rundir_file(dir, "root.sock", 1, root_sock);
  rundir_file(dir, "serial.sock", 1, serial);
  rundir_file(dir, "nbdkit.log", 0, nbdkit_log);
  rundir_file(dir, "qemu.log", 0, qemu_log);

  char why[512];
  CLEANUP_FREE char *file_arg = xasprintf("file=%s", rootfs);
  char *const args[] = { "file", file_arg, NULL };
  pid_t nbdkit = nbdkit_start(root_sock, nbdkit_log, args, why, sizeof why);
  if (nbdkit == -1)
    fail(EXIT_TOOL_FAILED, "[%s] first boot: %s", t->name, why);
  struct qemu_options qo = {
    .target = t,
    .image_dir = image_dir,
    .serial_socket = serial,
    .console_log = console_log,
    .qemu_log = qemu_log,
    .root_socket = root_sock,
    .root_writable = true,
    .append = "vmexec.firstboot",
    .memory_mib = 1024,
  };
  pid_t qemu = qemu_spawn(&qo, sigmask_empty());
  if (qemu < 0) {
    nbdkit_stop(nbdkit, root_sock);
    fail(EXIT_TOOL_FAILED, "cannot start %s: %s; install it with 'apt-get install %s'", t->qemu_binary,
         strerror(-(int)qemu), t->qemu_package);
  }
  /* Past the deadline it is stopped (SIGTERM, then SIGKILL). */
  double ms = firstboot_timeout() * 1000;
  bool exited = qemu_wait_exit(qemu, ms < INT_MAX ? (int)ms : INT_MAX);
  if (!exited)
    qemu_stop(NULL, qemu);
  nbdkit_stop(nbdkit, root_sock);
  if (exited && console_says(console_log, FIRSTBOOT_DONE)) {
    unlink(serial);
    unlink(nbdkit_log);
    unlink(qemu_log);
    rmdir(dir);
    return 0;
  }
  char cause[512], excerpt[CONSOLE_LINES * 260];
  console_report(console_log, cause, sizeof cause, excerpt, sizeof excerpt);
  char last[512];
  console_last_line(console_log, last, sizeof last);
  if (!last[0]) /* qemu may have refused the disk before the guest said a word */
    console_last_line(qemu_log, last, sizeof last);
  /* qemu.log and nbdkit.log stay in DIR for a look. */
  fail(EXIT_TOOL_FAILED, "[%s] the first boot of the full image %s: %s; see %s",
       t->name, exited ? "did not finish" : "timed out (set VMEXEC_FIRSTBOOT_TIMEOUT to wait longer)",
       cause[0] ? cause : last[0] ? last : "no message", console_log);
}
