/* The block device a share generation is mounted from: a partition of the
 * share disk over the generation's byte range, or else a loop device.
 *
 * A partition (BLKPG_ADD_PARTITION, no table on the disk) remaps each
 * request in place. A loop device hands each one to a worker thread and
 * submits it again: under TCG a 4 KiB read of the share cost 390-415 us
 * through the loop device and 200-250 us through the partition (s390x, the
 * same guest, alternating), and a walk through small files pays that once
 * per file. A partition's page cache also ends
 * at its end and dies with it (delete_partition invalidates it and unhashes
 * its inode), so a slot the host reuses for a newer generation is never
 * read from a cache of the old one; that is why the loop device had to use
 * direct I/O. Its read-ahead is the disk's (one bdi for the disk and its
 * partitions), set here to 1 MiB.
 *
 * The loop device remains for kernels or disks that refuse partitions. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/blkpg.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent.h"

/* Partition numbers in use (the kernel takes 1 .. DISK_MAX_PARTS - 1). */
#define MAX_PART 255
static bool part_used[MAX_PART + 1];

/* Read ahead 1 MiB instead of the default 128 KiB: under emulation each
 * request costs much, and a 256 MiB file then reads at 270 MB/s instead of
 * 116 (measured on s390x through a loop device; virtio-9p: 221). */
static void set_readahead(int fd, const char *name)
{
  if (ioctl(fd, BLKRASET, 2048UL) == -1)
    agent_log("cannot set the read-ahead of %s: %s", name, strerror(errno));
}

/* Open NAME, a device node devtmpfs may not have made yet. */
static int open_new_node(const char *name, int flags)
{
  int fd = -1;
  for (int i = 0; i < 100 && (fd = open(name, flags | O_CLOEXEC)) == -1 && errno == ENOENT; i++)
    usleep(1000);
  return fd;
}

static int blkpg(int disk_fd, int op, int part, uint64_t offset, uint64_t size)
{
  struct blkpg_partition p = { .start = (long long)offset, .length = (long long)size, .pno = part };
  struct blkpg_ioctl_arg a = { .op = op, .datalen = sizeof p, .data = &p };
  return ioctl(disk_fd, BLKPG, &a);
}

/* A partition of DISK over the range; its number, or -1 (errno set). */
static int part_attach(int disk_fd, const char *disk, uint64_t offset, uint64_t size, struct share_dev *d)
{
  for (int part = 1; part <= MAX_PART; part++) {
    if (part_used[part])
      continue;
    if (blkpg(disk_fd, BLKPG_ADD_PARTITION, part, offset, size) == -1) {
      if (errno == EBUSY && part < MAX_PART)
        continue; /* a number taken outside this table, or an overlap: the next one tells */
      return -1;
    }
    size_t n = strlen(disk);
    snprintf(d->path, sizeof d->path, "%s%s%d", disk, n && isdigit((unsigned char)disk[n - 1]) ? "p" : "", part);
    int fd = open_new_node(d->path, O_RDONLY);
    if (fd == -1) {
      int e = errno;
      blkpg(disk_fd, BLKPG_DEL_PARTITION, part, 0, 0);
      errno = e;
      return -1;
    }
    set_readahead(fd, d->path);
    close(fd);
    part_used[part] = true;
    return part;
  }
  errno = ENOSPC;
  return -1;
}

/* A read-only loop device over the range of DISK_FD; its fd, or -1. */
static int loop_attach(int disk_fd, uint64_t offset, uint64_t size, struct share_dev *d, char *err, size_t cap)
{
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl == -1) {
    snprintf(err, cap, "cannot open /dev/loop-control: %s (the image lacks the loop module)", strerror(errno));
    return -1;
  }
  int fd = -1;
  for (int attempt = 0; attempt < 5 && fd == -1; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      snprintf(err, cap, "no free loop device: %s", strerror(errno));
      break;
    }
    snprintf(d->path, sizeof d->path, "/dev/loop%d", n);
    if ((fd = open_new_node(d->path, O_RDWR)) == -1) {
      snprintf(err, cap, "cannot open %s: %s", d->path, strerror(errno));
      break;
    }
    /* Direct I/O: the disk's page cache would keep a slot's old image. */
    struct loop_config cfg = { .fd = (uint32_t)disk_fd };
    cfg.info.lo_offset = offset;
    cfg.info.lo_sizelimit = size;
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
      break;
    if (errno == EINVAL || errno == ENOTTY) {
      /* Before Linux 5.8: attach, then set the range. */
      struct loop_info64 info = cfg.info;
      info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
      if (ioctl(fd, LOOP_SET_FD, disk_fd) == 0) {
        if (ioctl(fd, LOOP_SET_STATUS64, &info) == 0)
          break;
        int e = errno;
        ioctl(fd, LOOP_CLR_FD, 0);
        errno = e;
      }
    }
    snprintf(err, cap, "cannot set up %s over the share disk: %s", d->path, strerror(errno));
    close(fd);
    fd = -1;
    if (errno != EBUSY)
      break; /* EBUSY: someone took it first; try the next free one */
  }
  close(ctl);
  if (fd != -1)
    set_readahead(fd, d->path);
  return fd;
}

int share_dev_attach(const char *disk, uint64_t offset, uint64_t size, struct share_dev *d, char *err, size_t cap)
{
  *d = (struct share_dev){ .part = 0, .loop_fd = -1 };
  int disk_fd = open(disk, O_RDONLY | O_CLOEXEC);
  if (disk_fd == -1) {
    snprintf(err, cap, "cannot open the share disk %s: %s", disk, strerror(errno));
    return -1;
  }
  snprintf(d->disk, sizeof d->disk, "%s", disk);
  int part = part_attach(disk_fd, disk, offset, size, d);
  if (part > 0) {
    d->part = part;
  } else {
    static bool said;
    if (!said)
      agent_log("cannot add a partition to %s (%s): share generations use loop devices", disk, strerror(errno));
    said = true;
    d->loop_fd = loop_attach(disk_fd, offset, size, d, err, cap);
  }
  close(disk_fd); /* the partition or loop device holds the disk */
  return d->part > 0 || d->loop_fd != -1 ? 0 : -1;
}

void share_dev_forget(struct share_dev *d)
{
  if (d->part > 0)
    part_used[d->part] = false;
  d->part = 0;
}

int share_dev_detach(struct share_dev *d)
{
  if (d->loop_fd != -1) {
    /* Attached with LO_FLAGS_AUTOCLEAR: closing its last fd detaches it,
     * without LOOP_CLR_FD's freeze of the request queue, which waits for an
     * RCU grace period: 11-15 ms under TCG with Debian's kernel, 40-50 ms
     * with a 100 Hz one. */
    close(d->loop_fd);
    d->loop_fd = -1;
    return 0;
  }
  if (d->part == 0)
    return 0;
  int disk_fd = open(d->disk, O_RDONLY | O_CLOEXEC);
  if (disk_fd == -1)
    return -1;
  /* EBUSY while the file system is still mounted somewhere (a lazy unmount
   * whose last user has not let go yet). */
  int rc = blkpg(disk_fd, BLKPG_DEL_PARTITION, d->part, 0, 0);
  int e = errno;
  close(disk_fd);
  if (rc == -1 && e != ENXIO) {
    errno = e;
    return -1;
  }
  part_used[d->part] = false;
  d->part = 0;
  return 0;
}
