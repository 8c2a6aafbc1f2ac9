/* The pseudo filesystems every program expects. */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

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
}
