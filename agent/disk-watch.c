/* A watch on the guest's virtio disks for requests that never complete.
 *
 * Where qemu 7.2's TCG drops the guest's memory barriers (the thread=single
 * rows, see supervisor/qemu-cmdline.c), a virtio notification can be lost:
 * the guest's kick that tells qemu of a new request, or qemu's interrupt that
 * tells the guest a request is done. Either way the request waits for the
 * next one on that disk, and a program blocked on a page of the share may be
 * the only reader there is. So while runs go on, the agent looks at each
 * disk's counters once a second; when requests were in flight at the last
 * look and none completed since, it reads one block of that disk itself: the
 * read's kick and its completion's interrupt carry the lost one along (there
 * the disks' queues go without event_idx, so any later kick or interrupt
 * covers the earlier ones). The read is done by a child, since it could wait
 * as long. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

#define MAX_WATCHED 8
#define LOOK_EVERY_S 1.0
#define MAX_LOGGED 10

struct watched {
  char name[32];
  unsigned long long completed; /* requests completed, at the last look */
  bool in_flight;               /* some were in flight at the last look */
};

static struct watched disks[MAX_WATCHED];
static size_t ndisks;
static double last_look;
static pid_t reader;
static unsigned logged;

/* /sys/block/NAME/stat: reads, writes (fields 1 and 5), discards and
 * flushes (12 and 16, where the kernel has them) completed; in flight (9). */
static bool read_stat(const char *name, unsigned long long *completed, unsigned long long *in_flight)
{
  char path[64];
  snprintf(path, sizeof path, "/sys/block/%.31s/stat", name);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  unsigned long long v[17] = { 0 };
  int n = 0;
  while (n < 17 && fscanf(f, "%llu", &v[n]) == 1)
    n++;
  fclose(f);
  if (n < 9)
    return false;
  *completed = v[0] + v[4] + v[11] + v[15];
  *in_flight = v[8];
  return true;
}

static struct watched *slot(const char *name)
{
  for (size_t i = 0; i < ndisks; i++)
    if (!strcmp(disks[i].name, name))
      return &disks[i];
  if (ndisks == MAX_WATCHED)
    return NULL;
  struct watched *w = &disks[ndisks++];
  snprintf(w->name, sizeof w->name, "%.31s", name);
  return w;
}

/* The next virtio disk (vdX) of the listing of /sys/block, or NULL. */
static const char *next_disk(DIR *d)
{
  for (struct dirent *e; (e = readdir(d));)
    if (!strncmp(e->d_name, "vd", 2) && strlen(e->d_name) < sizeof disks[0].name)
      return e->d_name;
  return NULL;
}

/* One O_DIRECT read of the disk's first block, in a child. */
static void read_a_block(const char *name)
{
  if (reader > 0 && kill(reader, 0) == 0)
    return; /* the last one still waits: another would only wait beside it */
  reader = fork();
  if (reader == 0) {
    static _Alignas(4096) char buf[4096];
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/%s", name);
    int fd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
    _exit(fd >= 0 && pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf ? 0 : 1);
  }
  if (reader == -1)
    agent_log("cannot fork to read %s: %s", name, strerror(errno));
}

void disks_watch(void)
{
  double now = uptime_seconds();
  if (now - last_look < LOOK_EVERY_S)
    return;
  last_look = now;
  DIR *d = opendir("/sys/block");
  if (!d)
    return;
  for (const char *name; (name = next_disk(d));) {
    unsigned long long completed, in_flight;
    struct watched *w;
    if (!read_stat(name, &completed, &in_flight) || !(w = slot(name)))
      continue;
    if (w->in_flight && in_flight > 0 && completed == w->completed) {
      if (logged < MAX_LOGGED) {
        logged++;
        agent_log("%s: requests in flight for over %.0f s and none completed; reading a block to wake its queue "
                  "(a lost virtio notification?)", w->name, LOOK_EVERY_S);
      }
      read_a_block(w->name);
    }
    w->completed = completed;
    w->in_flight = in_flight > 0;
  }
  closedir(d);
}

/* qemu 7.2's MIPS CPU keeps its interrupt lines in CP0 Cause, which the
 * vCPU thread changes without qemu's lock when the guest sets the timer
 * (cpu_mips_store_compare) while the main loop sets a line there under the
 * lock: the line of the i8259 can be lost (seen: the port's IRQ 10 pending
 * in the slave PIC, IRQ 2 in the master, Cause IP2 clear, for 14 minutes).
 * The PIC raises its line again only when one of its inputs changes, and
 * virtio's own line stays high until the driver reads its ISR, which it does
 * only on the interrupt. A disk read's completion is such a change. */
void interrupt_lost(const char *what)
{
  if (logged < MAX_LOGGED) {
    logged++;
    agent_log("%s: a lost virtio interrupt; reading a disk block so that qemu raises it again", what);
  }
  DIR *d = opendir("/sys/block");
  if (!d)
    return;
  const char *name = next_disk(d);
  if (name)
    read_a_block(name);
  closedir(d);
}
