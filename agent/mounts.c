/* The pseudo filesystems every program expects. */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

struct mnt {
  const char *type, *dir, *options;
  unsigned long flags;
  mode_t mode;
  bool required;
};

static const struct mnt mounts[] = {
  { "proc",     "/proc",    NULL,                  MS_NOSUID | MS_NODEV | MS_NOEXEC, 0555,  true },
  { "sysfs",    "/sys",     NULL,                  MS_NOSUID | MS_NODEV | MS_NOEXEC, 0555,  true },
  { "devtmpfs", "/dev",     "mode=0755",           MS_NOSUID,                        0755,  true },
  { "devpts",   "/dev/pts", "mode=0620,ptmxmode=0666", MS_NOSUID | MS_NOEXEC,        0755,  false },
  { "tmpfs",    "/dev/shm", "mode=1777",           MS_NOSUID | MS_NODEV,             01777, false },
  { "tmpfs",    "/tmp",     "mode=1777",           MS_NOSUID | MS_NODEV,             01777, false },
  { "tmpfs",    "/run",     "mode=0755",           MS_NOSUID | MS_NODEV,             0755,  false },
};

/* What udev or an initramfs adds to a devtmpfs, and programs and tests open
 * by name ("prog /dev/stdin < file", bash's /dev/fd/N): the kernel does not
 * make these links itself. */
static const struct {
  const char *path, *target;
} dev_links[] = {
  { "/dev/fd",     "/proc/self/fd" },
  { "/dev/stdin",  "/proc/self/fd/0" },
  { "/dev/stdout", "/proc/self/fd/1" },
  { "/dev/stderr", "/proc/self/fd/2" },
};

void mount_all(void)
{
  for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
    const struct mnt *m = &mounts[i];
    if (mkdir(m->dir, m->mode) == -1 && errno != EEXIST) {
      if (m->required)
        agent_fatal("cannot create %s: %s", m->dir, strerror(errno));
      agent_log("cannot create %s: %s", m->dir, strerror(errno));
      continue;
    }
    if (mount(m->type, m->dir, m->type, m->flags, m->options) == -1 && errno != EBUSY) {
      if (m->required)
        agent_fatal("cannot mount %s on %s: %s", m->type, m->dir, strerror(errno));
      agent_log("cannot mount %s on %s: %s", m->type, m->dir, strerror(errno));
    }
  }
  for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++)
    if (symlink(dev_links[i].target, dev_links[i].path) == -1 && errno != EEXIST)
      agent_log("cannot link %s to %s: %s", dev_links[i].path, dev_links[i].target, strerror(errno));
}
