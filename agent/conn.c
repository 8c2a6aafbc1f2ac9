/* The connection to the host: one virtio-serial port carrying wire frames
 * (buffered by common/frame-conn.c).
 *
 * virtio_console tells the guest whether the host end is open: while it is
 * closed, poll() reports POLLHUP, read() returns 0 and writes would block.
 * The host (a unix socket chardev of qemu) may connect at any time, go away
 * and come back. So the connection has two states:
 *   WAITING    port open, host not connected: check again on SIGIO (the
 *              driver signals O_ASYNC owners when the host opens or closes its
 *              end) and, as a fallback, every WAIT_STEP_MS;
 *   CONNECTED  hello sent, frames are read as they come.
 * A host disconnect or a malformed frame closes the port, reopens it and
 * goes back to WAITING; the next connection gets a fresh hello. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent.h"
#include "frame-conn.h"
#include "wire-msg.h"

#define PORT_TIMEOUT_MS 30000 /* for the port to appear after virtio_console loads */
#define WAIT_STEP_MS 100
/* poll never waits on the port for good: virtio_console reports data and
 * room by looking at the queues on each poll, but wakes the poller only on
 * the device's interrupt, and an interrupt can be lost under TCG (main.c
 * says when one was, and recovers). While something may wait on the host
 * (frames not yet written, runs whose output may wait for credit) the port
 * is looked at this often, else once a second. */
#define STALL_CHECK_MS 250
#define IDLE_CHECK_MS 1000

enum state { WAITING, CONNECTED };

struct conn {
  struct frame_conn fc;
  enum state state;
  bool said_hello; /* at least once since boot */
};

static void set_async(int fd, bool on)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl != -1)
    fcntl(fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

static void open_port(struct conn *c)
{
  int fd = port_open(PORT_TIMEOUT_MS);
  if (fd == -1)
    agent_fatal("no virtio-serial port named %s after %d s (%s): the image lacks virtio_console in "
                "/etc/vmexec/modules, or qemu was started without -device virtserialport,name=%s",
                WIRE_PORT_NAME, PORT_TIMEOUT_MS / 1000, strerror(errno), WIRE_PORT_NAME);
  /* SIGIO (see main.c's signalfd) when the host connects. */
  if (fcntl(fd, F_SETOWN, getpid()) == -1)
    agent_log("cannot get SIGIO for the port: %s (polling instead)", strerror(errno));
  set_async(fd, true);
  frame_conn_free(&c->fc);
  if (frame_conn_init(&c->fc, fd) == -1)
    agent_fatal("out of memory");
  c->state = WAITING;
}

static struct conn the_conn;

static void reopen(struct conn *c, const char *why)
{
  agent_log("connection closed: %s; waiting for the host", why);
  /* Nobody is left to read the runs' output or to get their exit. */
  runs_cancel_all();
  close(c->fc.fd);
  open_port(c);
}

struct conn *conn_start(void)
{
  open_port(&the_conn);
  return &the_conn;
}

void agent_send(uint16_t type, uint32_t run, const void *payload, size_t len)
{
  if (the_conn.state != CONNECTED)
    return;
  if (frame_conn_queue(&the_conn.fc, type, run, payload, len) == -1)
    agent_log("out of memory queueing a frame for run %u", (unsigned)run);
}

size_t agent_backlog(void)
{
  return the_conn.state == CONNECTED ? frame_conn_pending(&the_conn.fc) : 0;
}

int conn_fd(const struct conn *c, short *events)
{
  if (c->state != CONNECTED)
    return -1;
  *events = POLLIN;
  if (frame_conn_pending(&c->fc) > 0)
    *events |= POLLOUT;
  return c->fc.fd;
}

int conn_timeout_ms(const struct conn *c)
{
  if (c->state == WAITING)
    return WAIT_STEP_MS;
  return frame_conn_pending(&c->fc) > 0 || runs_active() ? STALL_CHECK_MS : IDLE_CHECK_MS;
}

static void say_hello(struct conn *c)
{
  struct utsname u;
  if (uname(&u) == -1)
    memset(&u, 0, sizeof u);
  struct wire_hello m = { .version = WIRE_VERSION };
  snprintf(m.kernel, sizeof m.kernel, "%.*s", (int)sizeof m.kernel - 1, u.release);
  snprintf(m.machine, sizeof m.machine, "%.*s", (int)sizeof m.machine - 1, u.machine);
  uint8_t buf[sizeof m + 16];
  size_t len;
  wire_encode_hello(&m, buf, sizeof buf, &len); /* fits: the fields' sizes */
  if (frame_conn_queue(&c->fc, WIRE_HELLO, 0, buf, len) == -1)
    agent_fatal("out of memory");
  if (frame_conn_flush(&c->fc) == -1) {
    reopen(c, strerror(errno));
    return;
  }
  c->state = CONNECTED;
  /* From now on poll() reports data and hangup; SIGIO would only add a
   * wakeup per arriving chunk. */
  set_async(c->fc.fd, false);
  if (!c->said_hello)
    agent_log("ready in %.2f s (uptime)", uptime_seconds());
  else
    agent_log("host connected again, hello sent");
  c->said_hello = true;
}

static void handle_frame(const struct wire_header *h, const uint8_t *payload)
{
  if (wire_is_run_request(h->type) && h->run != 0)
    runs_frame(h, payload);
  else if (h->type == WIRE_RESUME && h->run == 0)
    resume_guest(payload, h->length);
  else if (h->type == WIRE_GEN_PREPARE && h->run == 0)
    share_gen_prepare(payload, h->length);
  else if (h->type == WIRE_PATCH && h->run == 0)
    share_patch_begin(payload, h->length);
  else if (h->type == WIRE_PATCH_DATA && h->run == 0)
    share_patch_data(payload, h->length);
  else if (h->type == WIRE_HOST_FILE && h->run == 0)
    host_file_receive(payload, h->length);
  else
    agent_log("ignoring frame of type %u (%u bytes, run %u)", (unsigned)h->type, (unsigned)h->length,
              (unsigned)h->run);
}

void conn_tick(struct conn *c, short revents)
{
  if (c->state == WAITING) {
    if (port_host_connected(c->fc.fd))
      say_hello(c);
    return;
  }
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    /* Data the host sent before it closed its end is still read first;
     * then read() returns 0. */
    int r = frame_conn_fill(&c->fc);
    for (;;) {
      struct wire_header h;
      const uint8_t *payload;
      int f = frame_conn_next(&c->fc, &h, &payload);
      if (f == -1) {
        reopen(c, "malformed frame header");
        return;
      }
      if (f == 0)
        break;
      handle_frame(&h, payload);
    }
    if (r == 0) {
      reopen(c, "the host disconnected");
      return;
    }
    if (r == -1) {
      reopen(c, strerror(errno));
      return;
    }
  }
  if (frame_conn_pending(&c->fc) > 0 && frame_conn_flush(&c->fc) == -1)
    reopen(c, strerror(errno));
}
