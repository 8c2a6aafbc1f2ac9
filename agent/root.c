/* A full image's root filesystem: the disk whose serial is WIRE_ROOT_SERIAL
 * (ext4, served read-only by nbdkit on the host). It is mounted once at boot;
 * every run then gets its own root: an overlay with the disk below and a
 * tmpfs above (what a run writes outside the shared trees is dropped when it
 * ends, and runs never see each other's changes), the pseudo filesystems of
 * the guest bound into it, and the shared trees mounted at their paths inside
 * (share.c) before the run chroots.
 *
 * With a persistent layer (a second, writable disk: vmexec --persist) there
 * is one overlay for the whole guest instead, its upper directory on that
 * disk, and every run's root is a bind mount of it: what a run installs stays,
 * for the runs after it and the guests after this one (synced to the disk
 * when each run ends).
 *
 * On the first boot of a full image (the kernel command line says
 * "vmexec.firstboot") the disk is writable: the agent runs the image's
 * /var/lib/vmexec/firstboot in it, which configures the packages the host
 * unpacked (dpkg --configure -a), and powers off. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

#define ROOT_BASE "/vroot"
#define ROOT_LOWER ROOT_BASE "/lower" /* the disk */
#define ROOT_RW ROOT_BASE "/rw"       /* a run's tmpfs: upper/ and work/ */
#define ROOT_NEW ROOT_BASE "/root"    /* a run's root, before the chroot */
#define ROOT_LAYER ROOT_BASE "/layer" /* the persistent layer's disk */
#define ROOT_SHARED ROOT_BASE "/shared" /* the one overlay over both */
#define FIRSTBOOT_SCRIPT "/var/lib/vmexec/firstboot"

static bool present;
static int layer_fd = -1; /* ROOT_LAYER, for syncfs; -1 without a layer */

bool root_present(void)
{
  return present;
}

const char *root_prefix(void)
{
  return present ? ROOT_NEW : "";
}

static bool cmdline_has(const char *word)
{
  char buf[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  size_t k = strlen(word);
  for (char *p = buf; (p = strstr(p, word)); p += k)
    if ((p == buf || p[-1] == ' ') && (p[k] == ' ' || p[k] == '\n' || p[k] == '\0'))
      return true;
  return false;
}

/* Mount the guest's pseudo filesystems into ROOT (a directory tree that is
 * about to become a run's /). -1 with a message. */
static int bind_system(const char *root, char *err, size_t cap)
{
  static const struct {
    const char *src, *dir, *type, *opts;
    unsigned long flags;
  } m[] = {
    { "proc", "/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
    { "/sys", "/sys", NULL, NULL, MS_BIND | MS_REC },
    { "/dev", "/dev", NULL, NULL, MS_BIND | MS_REC }, /* with /dev/pts and /dev/shm */
    { "tmpfs", "/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV },
    { "tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV },
    /* Files sent with --copy are in RUN_DIR/ID (not a mount of its own). */
    { RUN_DIR, RUN_DIR, NULL, NULL, MS_BIND },
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s%s", root, m[i].dir);
    mkdir(dir, 0755);
    if (mount(m[i].src, dir, m[i].type, m[i].flags, m[i].opts) == -1) {
      snprintf(err, cap, "cannot mount %s on %s in the full image's root", m[i].src, m[i].dir);
      return -1;
    }
  }
  return 0;
}

/* The first boot: configure the image, then power off. Never returns. */
static noreturn void first_boot(void)
{
  agent_log("first boot: configuring the full image (%s)", FIRSTBOOT_SCRIPT);
  double start = uptime_seconds();
  char err[256] = "";
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpriority(PRIO_PROCESS, 0, 0);
    if (unshare(CLONE_NEWNS) == -1 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
        bind_system(ROOT_LOWER, err, sizeof err) == -1 || chroot(ROOT_LOWER) == -1 || chdir("/") == -1) {
      agent_log("first boot: %s: %s", err[0] ? err : "cannot enter the image", strerror(errno));
      _exit(125);
    }
    int console = open("/dev/console", O_RDWR | O_CLOEXEC);
    if (console >= 0) {
      dup2(console, 0);
      dup2(console, 1);
      dup2(console, 2);
    }
    char *const argv[] = { "/bin/sh", FIRSTBOOT_SCRIPT, NULL };
    char *const envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                           "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", "TERM=dumb", NULL };
    execve(argv[0], argv, envp);
    agent_log("first boot: cannot run /bin/sh in the image: %s", strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) == -1 && errno == EINTR)
    ;
  /* Everything on the disk before qemu goes: the image is then read-only. */
  sync();
  if (mount(NULL, ROOT_LOWER, NULL, MS_REMOUNT | MS_RDONLY, NULL) == -1)
    agent_log("cannot remount the image read-only: %s", strerror(errno));
  if (umount(ROOT_LOWER) == -1)
    agent_log("cannot unmount the image: %s", strerror(errno));
  sync();
  if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
    agent_log("first boot done in %.1f s", uptime_seconds() - start);
  else if (pid > 0 && WIFSIGNALED(status))
    agent_log("first boot failed: %s killed by signal %d", FIRSTBOOT_SCRIPT, WTERMSIG(status));
  else
    agent_log("first boot failed: %s", pid < 0 ? strerror(errno) : "the script exited with a non-zero status");
  reboot(RB_POWER_OFF);
  for (;;)
    pause();
}

/* The persistent layer on DEV and the guest-wide overlay with it. */
static void mount_layer(const char *dev)
{
  mkdir(ROOT_LAYER, 0755);
  mkdir(ROOT_SHARED, 0755);
  /* ext4 with a journal: a guest stopped by the host replays it next time. */
  /* noinit_itable: the host made it with lazy inode tables; zeroing them
   * in the background would write gigabytes through nbdkit. */
  if (mount(dev, ROOT_LAYER, "ext4", MS_NOSUID | MS_NODEV, "noinit_itable") == -1)
    agent_fatal("cannot mount the persistent layer %s: %s", dev, strerror(errno));
  if ((mkdir(ROOT_LAYER "/upper", 0755) == -1 && errno != EEXIST) ||
      (mkdir(ROOT_LAYER "/work", 0700) == -1 && errno != EEXIST))
    agent_fatal("cannot prepare the persistent layer: %s", strerror(errno));
  if (mount("overlay", ROOT_SHARED, "overlay", 0,
            "lowerdir=" ROOT_LOWER ",upperdir=" ROOT_LAYER "/upper,workdir=" ROOT_LAYER "/work") == -1)
    agent_fatal("cannot mount the overlay of the persistent layer: %s", strerror(errno));
  layer_fd = open(ROOT_LAYER, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  agent_log("persistent layer %s over the full image", dev);
}

void root_run_ended(void)
{
  if (layer_fd >= 0 && syncfs(layer_fd) == -1)
    agent_log("cannot sync the persistent layer: %s", strerror(errno));
}

void root_init(void)
{
  char dev[64];
  if (!find_disk_by_serial(WIRE_ROOT_SERIAL, dev, sizeof dev))
    return;
  bool firstboot = cmdline_has("vmexec.firstboot");
  mkdir(ROOT_BASE, 0755);
  mkdir(ROOT_LOWER, 0755);
  mkdir(ROOT_RW, 0755);
  mkdir(ROOT_NEW, 0755);
  if (mount(dev, ROOT_LOWER, "ext4", firstboot ? 0 : MS_RDONLY, NULL) == -1)
    agent_fatal("cannot mount the full image's root filesystem %s: %s", dev, strerror(errno));
  if (firstboot)
    first_boot();
  present = true;
  if (find_disk_by_serial(WIRE_LAYER_SERIAL, dev, sizeof dev))
    mount_layer(dev);
}

int root_enter(char *err, size_t cap)
{
  if (layer_fd >= 0) {
    if (mount(ROOT_SHARED, ROOT_NEW, NULL, MS_BIND, NULL) == -1) {
      snprintf(err, cap, "cannot mount the persistent root");
      return -1;
    }
    return bind_system(ROOT_NEW, err, cap);
  }
  /* The run's namespace is its own: this tmpfs and overlay go with it. */
  if (mount("tmpfs", ROOT_RW, "tmpfs", MS_NOSUID, "size=50%,mode=0755") == -1 || mkdir(ROOT_RW "/upper", 0755) == -1 ||
      mkdir(ROOT_RW "/work", 0700) == -1) {
    snprintf(err, cap, "cannot mount a tmpfs for the run's root");
    return -1;
  }
  if (mount("overlay", ROOT_NEW, "overlay", 0,
            "lowerdir=" ROOT_LOWER ",upperdir=" ROOT_RW "/upper,workdir=" ROOT_RW "/work") == -1) {
    snprintf(err, cap, "cannot mount the run's overlay of the full image's root");
    return -1;
  }
  return bind_system(ROOT_NEW, err, cap);
}

int root_switch(char *err, size_t cap)
{
  if (chroot(ROOT_NEW) == -1 || chdir("/") == -1) {
    snprintf(err, cap, "cannot change into the full image's root");
    return -1;
  }
  return 0;
}
