/* A run's stdout or stderr when the caller's is a regular file
 * (WIRE_RUN_STDOUT_FILE, WIRE_RUN_STDERR_FILE): the program gets a regular
 * file too, not a pipe, so that it can seek it, fstat it and reopen it
 * through /dev/stdout as natively (gnulib's test-lseek, automake's
 * `prog >log 2>&1`). The file is an O_TMPFILE in the agent's tmpfs with the
 * host file's size (sparse) and offset. The agent keeps a descriptor of the
 * same open file, so it reads the offset the program left at the end.
 *
 * Its bytes go to the host as they are written: an inotify watch wakes the
 * agent on each write, and what lies past what was sent goes in
 * WIRE_OUTPUT_AT frames (at their offsets) within the output credit. Bytes
 * more than KEEP behind are punched out of the file, so a long log does not
 * fill guest memory. At the end the last bytes are sent again whole (at most
 * KEEP of them) unless the file only appends, since a program may have
 * written again behind what was sent (a seek back, pwrite) without the file
 * growing; then WIRE_OUTPUT_END gives the offset and size.
 *
 * A file that cannot be made here leaves the pipe: the host writes what
 * comes as WIRE_STDOUT at its offset, as before. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runs.h"
#include "wire.h"

#define READ_CHUNK (64 * 1024)
/* Sent bytes kept for the final pass; more than twice this behind are punched. */
#define KEEP (64 * 1024)

struct out_file {
  int fd;         /* the agent's descriptor of the program's open file */
  int watch;      /* inotify, IN_MODIFY of it */
  int wd;         /* ... its watch descriptor there */
  uint32_t host_fd; /* 1 or 2 */
  bool append;
  uint64_t start;   /* where the program's bytes begin: the host file's end or offset */
  uint64_t sent;    /* bytes before this went (or were dropped) */
  uint64_t punched; /* bytes before this are holes now */
  uint64_t longest; /* the file's size at its longest */
  bool truncated;   /* it was shorter than that since */
  bool closed;      /* the host takes no more (WIRE_OUTPUT_CLOSED) */
  bool behind;      /* the credit ran out before all was sent */
  bool finishing, done;
  uint64_t again, again_end; /* the final pass: what is sent again */
};

/* Closing an inotify instance waits for a grace period of fsnotify's SRCU
 * (its mark reaper): 40-90 ms under TCG at 100 Hz, in the agent's loop, which
 * delayed the next call of every `prog >log`. So instances are kept for the
 * next files: the watch is removed (its teardown is asynchronous) and the
 * instance reused; an IN_IGNORED left in it only wakes the next pump once. */
#define SPARE_WATCHES 4
static int spare_watches[SPARE_WATCHES];
static int nspare_watches;

static int watch_get(void)
{
  if (nspare_watches > 0)
    return spare_watches[--nspare_watches];
  return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

static void watch_put(int *fd, int wd)
{
  if (*fd < 0)
    return;
  if (wd >= 0)
    inotify_rm_watch(*fd, wd);
  if (nspare_watches < SPARE_WATCHES)
    spare_watches[nspare_watches++] = *fd;
  else
    close(*fd);
  *fd = -1;
}

static void free_out(struct out_file *f)
{
  if (!f)
    return;
  close_fd(&f->fd);
  watch_put(&f->watch, f->wd);
  free(f);
}

/* The file for stream WHICH (0 stdout, 1 stderr) in place of the pipe's
 * child end FDS[1 + WHICH]; the agent's pipe end closes. */
static void open_out(struct run *r, const struct wire_run *q, int which, int fds[3])
{
  const struct wire_out_file *o = &q->out_file[which];
  struct out_file *f = calloc(1, sizeof *f);
  if (!f)
    return;
  f->watch = f->wd = -1;
  f->host_fd = (uint32_t)which + 1;
  f->append = o->append != 0;
  /* Bytes before the file's end are the host's (zeroes here): never sent. */
  f->start = f->sent = o->offset > o->size ? o->offset : o->size;
  f->longest = o->size;
  f->fd = open(RUN_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  char proc[32];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
  int child = -1;
  /* The program may reopen it by /dev/stdout (as the caller may on the host: its file). */
  if (f->fd < 0 || fchown(f->fd, q->uid, q->gid) == -1 || ftruncate(f->fd, (off_t)o->size) == -1 ||
      lseek(f->fd, (off_t)o->offset, SEEK_SET) == -1 || (f->append && fcntl(f->fd, F_SETFL, O_APPEND) == -1) ||
      (f->watch = watch_get()) < 0 || (f->wd = inotify_add_watch(f->watch, proc, IN_MODIFY)) < 0 ||
      (child = fcntl(f->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
    agent_log("run %u: the %s file: %s; a pipe instead", r->id, which ? "stderr" : "stdout", strerror(errno));
    free_out(f);
    return;
  }
  close_fd(&fds[1 + which]);
  fds[1 + which] = child;
  close_fd(which ? &r->err_fd : &r->out_fd);
  r->out_file[which] = f;
}

void run_out_files_open(struct run *r, const struct wire_run *q, int fds[3])
{
  if (q->flags & WIRE_RUN_STDOUT_FILE)
    open_out(r, q, 0, fds);
  if (q->flags & WIRE_RUN_STDERR_FILE)
    open_out(r, q, 1, fds);
}

/* Bytes [*AT, END) of F to the host, as far as credit goes. False when the
 * credit ran out first. */
static bool send_range(struct run *r, struct out_file *f, uint64_t *at, uint64_t end)
{
  static uint8_t buf[WIRE_OUTPUT_AT_HEADER + READ_CHUNK];
  while (*at < end) {
    if (r->credit <= WIRE_OUTPUT_AT_HEADER)
      return false;
    uint64_t want = end - *at;
    if (want > READ_CHUNK)
      want = READ_CHUNK;
    if (want > r->credit - WIRE_OUTPUT_AT_HEADER)
      want = r->credit - WIRE_OUTPUT_AT_HEADER;
    ssize_t n = pread(f->fd, buf + WIRE_OUTPUT_AT_HEADER, (size_t)want, (off_t)*at);
    if (n <= 0) { /* truncated meanwhile: the size at the end tells the host */
      *at = end;
      break;
    }
    size_t h = wire_encode_output_at(buf, f->host_fd, *at);
    agent_send(WIRE_OUTPUT_AT, r->id, buf, h + (size_t)n);
    r->credit -= (uint32_t)(h + (size_t)n);
    *at += (uint64_t)n;
  }
  return true;
}

/* What the program wrote past what was sent goes; false if credit ran out. */
static bool pump(struct run *r, struct out_file *f)
{
  char events[4096];
  while (read(f->watch, events, sizeof events) > 0) {
  }
  struct stat st;
  if (fstat(f->fd, &st) == -1)
    return true;
  uint64_t size = (uint64_t)st.st_size;
  if (size < f->longest)
    f->truncated = true;
  else
    f->longest = size;
  if (size < f->sent) { /* truncated: what it writes from there on is its own */
    f->sent = size;
    if (f->start > size)
      f->start = size;
    if (f->punched > size)
      f->punched = size & ~(uint64_t)4095;
  }
  if (f->closed) /* dropped, and freed below */
    f->sent = size;
  f->behind = !send_range(r, f, &f->sent, size);
  /* Free what went long ago (the final pass sends at most KEEP again). */
  if (f->sent > f->punched + (f->closed ? 4096 : 2 * KEEP)) {
    uint64_t to = (f->sent - (f->closed ? 0 : KEEP)) & ~(uint64_t)4095;
    if (to > f->punched &&
        fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)f->punched, (off_t)(to - f->punched)) == 0)
      f->punched = to;
  }
  return !f->behind;
}

void run_out_files_pump(struct run *r)
{
  for (int i = 0; i < 2; i++)
    if (r->out_file[i] && r->out_file[i]->behind && !r->out_file[i]->finishing && r->credit > WIRE_OUTPUT_AT_HEADER)
      pump(r, r->out_file[i]);
}

/* The end, once the run was reaped: the rest, the last KEEP bytes again,
 * then WIRE_OUTPUT_END. False while credit is short (runs_continue calls
 * again). */
static bool finish(struct run *r, struct out_file *f)
{
  if (f->done)
    return true;
  if (!f->finishing) {
    if (!pump(r, f))
      return false;
    f->finishing = true;
    f->again = f->again_end = f->sent;
    if (!f->append && !f->closed) {
      uint64_t from = f->sent > KEEP ? f->sent - KEEP : 0;
      if (from < f->start)
        from = f->start;
      if (from < f->punched)
        from = f->punched;
      f->again = from < f->sent ? from : f->sent;
    }
  }
  if (!send_range(r, f, &f->again, f->again_end))
    return false;
  struct stat st;
  off_t at = lseek(f->fd, 0, SEEK_CUR);
  struct wire_output m = { .fd = f->host_fd, .offset = at < 0 ? 0 : (uint64_t)at, .size = WIRE_OUTPUT_KEPT };
  if (fstat(f->fd, &st) == 0 && (f->truncated || (uint64_t)st.st_size < f->longest))
    m.size = (uint64_t)st.st_size;
  uint8_t b[32];
  size_t len;
  if (wire_encode_output_end(&m, b, sizeof b, &len))
    agent_send(WIRE_OUTPUT_END, r->id, b, len);
  f->done = true;
  return true;
}

bool run_out_files_finish(struct run *r)
{
  for (int i = 0; i < 2; i++)
    if (r->out_file[i] && !finish(r, r->out_file[i]))
      return false;
  return true;
}

bool run_out_files_pending(const struct run *r)
{
  for (int i = 0; i < 2; i++)
    if (r->out_file[i] && !r->out_file[i]->done)
      return true;
  return false;
}

/* The host can take no more of it (its write failed): nothing more is
 * sent, and what the program writes is dropped (its writes still succeed:
 * a file in memory cannot fail them as the host's did). */
bool run_out_file_closed(struct run *r, uint32_t fd)
{
  struct out_file *f = fd == 1 || fd == 2 ? r->out_file[fd - 1] : NULL;
  if (!f)
    return false;
  f->closed = true;
  return true;
}

size_t run_out_files_pollfds(const struct run *r, struct pollfd *p)
{
  size_t n = 0;
  for (int i = 0; i < 2; i++) {
    const struct out_file *f = r->out_file[i];
    if (f && !f->finishing && r->credit > WIRE_OUTPUT_AT_HEADER)
      p[n++] = (struct pollfd){ .fd = f->watch, .events = POLLIN };
  }
  return n;
}

bool run_out_files_event(struct run *r, int fd)
{
  for (int i = 0; i < 2; i++)
    if (r->out_file[i] && r->out_file[i]->watch == fd) {
      pump(r, r->out_file[i]);
      return true;
    }
  return false;
}

void run_out_files_free(struct run *r)
{
  for (int i = 0; i < 2; i++) {
    free_out(r->out_file[i]);
    r->out_file[i] = NULL;
  }
}
