/* WIRE_RESUME: the guest was restored from a memory snapshot (the host's
 * supervisor/snapshot.c), so its wall clock stands at the moment the snapshot
 * was taken and the kernel's random state is the snapshot's: every restore
 * would hand out the same "random" bytes. Set the clock from the host's and
 * reseed the kernel's generator with the host's bytes before any run starts,
 * then answer, so the host knows the guest is ready. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "wire-msg.h"

/* Mix SEED into the input pool, credited as entropy, and make the CRNG take a
 * new key from it now (not at its next periodic reseed): per-CPU keys and
 * batched entropy follow the new generation. */
static void reseed(const uint8_t *seed, uint32_t len)
{
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  struct rand_pool_info *info = malloc(sizeof *info + len);
  if (fd == -1 || !info) {
    agent_log("cannot reseed the random generator: %s", fd == -1 ? strerror(errno) : "out of memory");
  } else {
    info->entropy_count = (int)len * 8;
    info->buf_size = (int)len;
    memcpy(info->buf, seed, len);
    if (ioctl(fd, RNDADDENTROPY, info) == -1 || ioctl(fd, RNDRESEEDCRNG) == -1)
      agent_log("cannot reseed the random generator: %s", strerror(errno));
  }
  free(info);
  if (fd >= 0)
    close(fd);
}

void resume_guest(const uint8_t *p, size_t n)
{
  static struct wire_resume m;
  if (!wire_decode_resume(p, n, &m)) {
    agent_log("malformed resume request from the host (%zu bytes); not answered", n);
    return;
  }
  struct timespec ts = { .tv_sec = (time_t)m.seconds, .tv_nsec = (long)m.nanoseconds };
  if (clock_settime(CLOCK_REALTIME, &ts) == -1)
    agent_log("cannot set the clock after a restore: %s", strerror(errno));
  reseed(m.seed, m.seed_len);
  explicit_bzero(m.seed, sizeof m.seed);
  agent_log("restored from a snapshot: clock set, random generator reseeded");
  agent_send(WIRE_RESUME, 0, NULL, 0);
}
