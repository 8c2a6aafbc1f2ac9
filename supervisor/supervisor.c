/* The supervisor: one process per user and guest. It owns qemu, speaks to the
 * agent over the virtio-serial port, and routes the frames of every vmexec call
 * connected to its control socket to the agent and back, renumbering runs so
 * that concurrent calls share one guest. It stops after an idle time, on
 * `vmexec stop`, or when the guest dies; then every run in flight ends with
 * status 125 and a line naming the console log.
 *
 * One poll() loop; every fd is non-blocking. Stream data is bounded by the
 * credit window of each run, so a slow reader never makes the supervisor buffer
 * without limit, and one run's slow reader never stalls another run. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "console-log.h"
#include "env.h"
#include "fail.h"
#include "frame-conn.h"
#include "qemu-cmdline.h"
#include "qmp.h"
#include "replaced.h"
#include "nbdkit.h"
#include "rundir.h"
#include "host-files.h"
#include "share-host.h"
#include "snapshot.h"
#include "sockets.h"
#include "wire-msg.h"

/* A client may not push more into the agent's queue than this before the
 * supervisor stops reading from it (programs sent with --copy are large). */
#define AGENT_BACKLOG_LIMIT (4u * 1024 * 1024)

/* More than this queued for the agent means it stopped reading its port:
 * only the supervisor's own frames (credits, cancels) pass the limit above. */
#define AGENT_QUEUE_MAX (64u * 1024 * 1024)

/* Output of a run (stdout, stderr, write-back data) that the agent may have
 * sent toward its caller and the caller not yet acknowledged: the window,
 * and one more for credits in flight. Past it the agent ignores the credit:
 * the run is cancelled, so a flooding guest cannot grow our memory. */
#define RUN_OUTPUT_MAX (2u * WIRE_WINDOW)

struct client {
  int fd;
  struct frame_conn conn;
  bool shared;            /* a run of it used the share: the host may have changed under it */
  struct client *next;
};

struct run {
  uint32_t id;            /* the agent's run id */
  struct client *client;  /* NULL once the caller went away: output is dropped */
  uint32_t client_run;    /* the run id the caller uses */
  bool refused;           /* told the caller it failed: drop its frames */
  uint64_t unacked;       /* output sent to the caller that it has not credited yet */
  long long share_ns;     /* VMEXEC_TRACE: time to pick or make its share generation */
  const char *share_how;  /* ... and whether it was new, made ahead, patched (ahead) or reused */
  struct run *next;
};

struct supervisor {
  const struct target *t;
  char name[64];            /* the guest's: "s390x", "s390x-full" */
  char dir[PATH_MAX];
  char image_dir[PATH_MAX];
  char rootfs[PATH_MAX];    /* a full image's root filesystem, or "" */
  char root_sock[PATH_MAX];
  pid_t root_nbdkit;
  char layer[PATH_MAX];     /* its persistent writable layer, or "" */
  char layer_sock[PATH_MAX];
  pid_t layer_nbdkit;
  char control_path[PATH_MAX], serial_path[PATH_MAX], qmp_path[PATH_MAX], console_path[PATH_MAX];
  char qemu_log_path[PATH_MAX];
  int listen_fd, sig_fd;
  int lock_fd;              /* the guest's lock file (rundir.h), held from stop_listening on */
  pid_t qemu_pid;
  int agent_fd;
  struct frame_conn agent;
  bool ready;                /* the agent said hello */
  struct client *clients;
  struct run *runs;
  uint32_t next_run_id;
  unsigned long runs_served;
  long long started_ms, idle_since_ms, boot_deadline_ms;
  long long idle_ms;
  char kernel[256], machine[64]; /* as in struct wire_hello */
  struct share_host *share; /* NULL: no share (share_why says why) */
  uint32_t last_gen;        /* the share generation the last run got (for VMEXEC_TRACE) */
  uint32_t prepared_gen;    /* one made ahead (WIRE_GEN_PREPARE) no run got yet, or UINT32_MAX */
  bool prepared_patched;    /* ... of the same generation, over its new patches */
  unsigned patches_queued;  /* WIRE_PATCH frames of the share request at hand (VMEXEC_TRACE) */
  char share_why[512];
  struct qemu_options qo;   /* how qemu was started, to boot again */
  int boots;
  char snapshot[PATH_MAX];  /* the guest's snapshot file (snapshot.h), or "": none */
  bool restoring;           /* qemu loads the snapshot; the agent has not answered WIRE_RESUME */
  pid_t unpack_pid;         /* zstd feeding qemu the snapshot, or -1 */
  struct started_from started_from; /* vmexec's files as this guest started (replaced.h) */
  bool retiring;            /* they were replaced: no new calls; stop once the current ones end */
};

/* A restored guest answers WIRE_RESUME within this, or it boots instead. */
#define RESTORE_TIMEOUT_MS 30000

static long long now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long now_ms(void)
{
  return now_ns() / 1000000;
}

/* A WIRE_RUN_TRACE run is on its way to the agent: the caller hears what
 * the supervisor did for it (the agent's phases come later, forwarded). */
static void send_trace(struct run *r)
{
  struct wire_trace m = { .n = 1 };
  snprintf(m.phase[0].name, sizeof m.phase[0].name, "supervisor: share generation (%s)",
           r->share_how ? r->share_how : "none");
  m.phase[0].ns = (uint64_t)r->share_ns;
  uint8_t b[256];
  size_t len;
  if (wire_encode_trace(&m, b, sizeof b, &len))
    frame_conn_queue(&r->client->conn, WIRE_TRACE, r->client_run, b, len);
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  /* Milliseconds: a cold start's steps take fractions of a second. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%H:%M:%S", localtime(&ts.tv_sec));
  fprintf(stderr, "%s.%03ld ", stamp, ts.tv_nsec / 1000000);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static struct run *run_by_id(struct supervisor *s, uint32_t id)
{
  for (struct run *r = s->runs; r; r = r->next)
    if (r->id == id)
      return r;
  return NULL;
}

static struct run *run_by_client(struct supervisor *s, struct client *c, uint32_t client_run)
{
  for (struct run *r = s->runs; r; r = r->next)
    if (r->client == c && r->client_run == client_run)
      return r;
  return NULL;
}

static void run_remove(struct supervisor *s, struct run *gone)
{
  for (struct run **p = &s->runs; *p; p = &(*p)->next)
    if (*p == gone) {
      *p = gone->next;
      free(gone);
      return;
    }
}

static void queue_to_agent(struct supervisor *s, uint16_t type, uint32_t run, const void *p, size_t n)
{
  if (frame_conn_queue(&s->agent, type, run, p, n) == -1)
    logf_("out of memory queueing for the agent");
}

/* Tell a caller its run failed in vmexec's own way (status 125..127). */
static void send_failed(struct frame_conn *c, uint32_t run, uint32_t status, const char *msg)
{
  static struct wire_exit m;
  m.how = WIRE_FAILED;
  m.value = status;
  snprintf(m.msg, sizeof m.msg, "%s", msg);
  uint8_t b[sizeof m.msg + 16];
  size_t len;
  if (wire_encode_exit(&m, b, sizeof b, &len))
    frame_conn_queue(c, WIRE_EXIT, run, b, len);
}

/* A caller whose run used the share went away: if the host changed under
 * the current generation meanwhile (its write-back applied, or its output
 * written to a file in a shared tree: `./test > test.log` in a test
 * script), make the next generation now, or send the changed files as
 * patches of the current one, and have the agent mount it and make the
 * next run's namespace, while the caller's harness starts the next test
 * (which would otherwise wait for it: some 20 ms of the guest's time under
 * TCG). */
static void queue_patch(void *arg, uint16_t type, const uint8_t *p, size_t n);

static void prepare_next_generation(struct supervisor *s)
{
  static uint8_t buf[WIRE_MAX_PAYLOAD];
  struct wire_share next;
  size_t len;
  if (!s->share || s->agent_fd < 0 || s->restoring)
    return;
  enum share_next how = share_host_prepare(s->share, queue_patch, s, &next);
  if (how == SHARE_NEXT_NONE)
    return;
  /* Nothing changed: the generation is sent again all the same, for the
   * agent to make the next run's namespace if the caller's run left none to
   * reuse (it wrote in the guest: a file in the scratch /tmp, or output the
   * host took back unchanged); the next run's is no generation made ahead. */
  if (how == SHARE_NEXT_CHANGED) {
    s->prepared_patched = next.gen == s->last_gen;
    s->last_gen = s->prepared_gen = next.gen;
  }
  if (wire_encode_share(&next, buf, sizeof buf, &len))
    queue_to_agent(s, WIRE_GEN_PREPARE, 0, buf, len);
}

static void client_drop(struct supervisor *s, struct client *gone)
{
  bool shared = gone->shared;
  for (struct run *r = s->runs, *next; r; r = next) {
    next = r->next;
    if (r->client != gone)
      continue;
    if (r->refused) {
      run_remove(s, r);
      continue;
    }
    /* The caller died (a harness SIGKILL): kill the program and all it spawned. */
    r->client = NULL;
    queue_to_agent(s, WIRE_CANCEL, r->id, NULL, 0);
  }
  for (struct client **p = &s->clients; *p; p = &(*p)->next)
    if (*p == gone) {
      *p = gone->next;
      break;
    }
  close(gone->fd);
  frame_conn_free(&gone->conn);
  free(gone);
  if (shared)
    prepare_next_generation(s);
}

static unsigned runs_going(const struct supervisor *s)
{
  unsigned n = 0;
  for (const struct run *r = s->runs; r; r = r->next)
    n++;
  return n;
}

static void status_text(struct supervisor *s, char *buf, size_t cap)
{
  unsigned running = runs_going(s);
  long rss_mib = qemu_rss_kib(s->qemu_pid) / 1024;
  snprintf(buf, cap, "%s\t%s\tuptime %llds\truns %lu (%u running)\tmemory %ld MiB\tqemu pid %d\tkernel %s",
           s->name, s->ready ? "ready" : "booting", (now_ms() - s->started_ms) / 1000, s->runs_served, running,
           rss_mib, (int)s->qemu_pid, s->kernel[0] ? s->kernel : "-");
}

/* Stop taking calls: remove the socket under the lock, so that the next call
 * starts a fresh supervisor instead of connecting to a dying one. The lock
 * stays ours until we exit: the fresh supervisor starts only once qemu and
 * nbdkit are gone and their sockets removed (not its own, which have the
 * same paths). */
static void stop_listening(struct supervisor *s)
{
  if (s->listen_fd < 0)
    return;
  while (flock(s->lock_fd, LOCK_EX) == -1 && errno == EINTR)
    ;
  unlink(s->control_path);
  close(s->listen_fd);
  s->listen_fd = -1;
}

/* The guest is gone (or going): end every run with status 125 and MSG. */
static void fail_all_runs(struct supervisor *s, const char *msg)
{
  while (s->runs) {
    struct run *r = s->runs;
    if (r->client)
      send_failed(&r->client->conn, r->client_run, 125, msg);
    run_remove(s, r);
  }
}

static noreturn void shut_down(struct supervisor *s, const char *why)
{
  logf_("stopping: %s", why);
  stop_listening(s);
  if (s->qemu_pid > 0) {
    qemu_stop(s->qmp_path, s->qemu_pid);
    s->qemu_pid = -1;
  }
  share_host_stop(s->share);
  s->share = NULL;
  if (s->root_nbdkit > 0)
    nbdkit_stop(s->root_nbdkit, s->root_sock);
  s->root_nbdkit = -1;
  if (s->layer_nbdkit > 0)
    nbdkit_stop(s->layer_nbdkit, s->layer_sock);
  s->layer_nbdkit = -1;
  /* Last words to the callers (the guest is down by now): blocking, but never
   * for long. */
  for (struct client *c = s->clients; c; c = c->next) {
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
    frame_conn_flush(&c->conn);
    close(c->fd);
  }
  unlink(s->serial_path);
  unlink(s->qmp_path);
  exit(0);
}

/* How qemu ended, if it did within a moment: "qemu exited with status 1". */
static void qemu_fate(struct supervisor *s, char *buf, size_t cap)
{
  buf[0] = '\0';
  for (int waited = 0; s->qemu_pid > 0 && waited < 2000; waited += 20) {
    int status;
    if (waitpid(s->qemu_pid, &status, WNOHANG) == s->qemu_pid) {
      s->qemu_pid = -1;
      qemu_exit_reason(status, buf, cap);
      return;
    }
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
}

/* The guest is gone: every run in flight ends with 125 and one line that
 * says why (qemu's fate, the kernel's panic or the agent's last word) and
 * where the console log is. */
static noreturn void guest_gone(struct supervisor *s, const char *what)
{
  char fate[128], cause[512], excerpt[CONSOLE_LINES * 260], msg[PATH_MAX + 1024];
  qemu_fate(s, fate, sizeof fate);
  console_report(s->console_path, cause, sizeof cause, excerpt, sizeof excerpt);
  /* Only a panic or the agent's fatal last words explain a death; an older
   * agent line would mislead. */
  if (!strstr(cause, "Kernel panic") && !strstr(cause, "powering off"))
    cause[0] = '\0';
  snprintf(msg, sizeof msg, "the %s guest %s%s%s%s%s%s; console log: %s; the next call starts a fresh guest",
           s->name, what, fate[0] ? " (" : "", fate, fate[0] ? ")" : "", cause[0] ? ": " : "", cause,
           s->console_path);
  logf_("%s", msg);
  stop_listening(s);
  fail_all_runs(s, msg);
  shut_down(s, "guest died");
}

static void start_qemu(struct supervisor *s)
{
  s->qemu_pid = qemu_spawn(&s->qo, sigmask_empty());
  if (s->qemu_pid < 0)
    fail(EXIT_TOOL_FAILED, "cannot start %s: %s; install it with 'apt-get install %s'", s->t->qemu_binary,
         strerror(-(int)s->qemu_pid), s->t->qemu_package);
  s->boots++;
  s->boot_deadline_ms = now_ms() + (long long)(env_boot_timeout() * 1000);
}

/* Forget the connection to a guest that is gone, and its sockets' files;
 * what was queued for it stays queued for the next one. */
static void forget_guest(struct supervisor *s)
{
  if (s->agent_fd >= 0)
    close(s->agent_fd);
  s->agent_fd = s->agent.fd = -1;
  s->agent.in_start = s->agent.in_end = 0;
  unlink(s->serial_path);
  unlink(s->qmp_path);
}

/* A guest that dies before its agent said hello is booted once more: a rare
 * fault of qemu's emulation while the kernel loads modules (s390x, about one
 * boot in twenty with many modules: an init routine run from a stale
 * translation, "Driver 'virtio_blk' is already registered", then a panic)
 * should cost a boot, not the calls. Nothing was sent to the agent before its
 * hello, so the queued runs simply go to the new one. */
static void restore_failed(struct supervisor *s, const char *what);

static void guest_died(struct supervisor *s, const char *what)
{
  if (s->restoring) {
    restore_failed(s, what);
    return;
  }
  if (s->ready || s->boots > 1)
    guest_gone(s, what);
  char fate[128], old[PATH_MAX + 8];
  qemu_fate(s, fate, sizeof fate);
  if (s->qemu_pid > 0) {
    kill(s->qemu_pid, SIGKILL);
    waitpid(s->qemu_pid, NULL, 0);
    s->qemu_pid = -1;
  }
  snprintf(old, sizeof old, "%s.1", s->console_path);
  rename(s->console_path, old);
  logf_("the guest %s%s%s%s while booting (console log: %s); booting it once more", what, fate[0] ? " (" : "", fate,
        fate[0] ? ")" : "", old);
  forget_guest(s);
  start_qemu(s);
}

/* The snapshot's zstd is done (or must be: the restore failed). */
static void end_unpack(struct supervisor *s, bool kill_it)
{
  if (s->unpack_pid <= 0)
    return;
  if (kill_it)
    kill(s->unpack_pid, SIGKILL);
  while (waitpid(s->unpack_pid, NULL, 0) == -1 && errno == EINTR)
    ;
  s->unpack_pid = -1;
}

/* The snapshot did not give a guest that answers (qemu refused the stream,
 * zstd found it corrupt, the guest crashed or hung): remove it and boot as
 * if there had been none. Nothing was sent to the restored agent but
 * WIRE_RESUME, so the queued runs go to the booted one. */
static void restore_failed(struct supervisor *s, const char *what)
{
  char fate[128], last[512];
  qemu_fate(s, fate, sizeof fate);
  if (s->qemu_pid > 0) {
    kill(s->qemu_pid, SIGKILL);
    waitpid(s->qemu_pid, NULL, 0);
    s->qemu_pid = -1;
  }
  end_unpack(s, true);
  console_last_line(s->qemu_log_path, last, sizeof last);
  /* qemu's own words when the stream was bad; otherwise the guest it
   * loaded failed, and would again. */
  bool corrupt = strstr(last, "load of migration failed") != NULL;
  logf_("the snapshot %s did not restore: the guest %s%s%s%s%s%s; removed it, booting instead%s", s->snapshot, what,
        fate[0] ? " (" : "", fate, fate[0] ? ")" : "", last[0] ? "; qemu: " : "", last,
        corrupt ? "" : " (and saving none for these options: see its .failed marker)");
  snapshot_discard(s->snapshot, corrupt);
  s->restoring = false;
  forget_guest(s);
  s->qo.incoming = false;
  s->boots = 0;
  start_qemu(s);
}

/* After a boot, before the first run: the booted, idle guest becomes the
 * snapshot later cold starts restore (snapshot.h). The runs waiting for the
 * guest wait for this too (about a second, once per image and machine). */
static void save_snapshot(struct supervisor *s)
{
  if (!s->snapshot[0] || access(s->snapshot, F_OK) == 0)
    return;
  if (snapshot_failed_before(s->snapshot)) {
    logf_("no snapshot saved: one of this image and these options did not restore before (remove %s.failed to "
          "try again)", s->snapshot);
    return;
  }
  long long t = now_ms();
  char why[512];
  if (snapshot_save(s->qmp_path, s->snapshot, why, sizeof why) == -1) {
    logf_("no snapshot saved: %s", why);
    return;
  }
  struct stat st;
  logf_("snapshot saved to %s in %.2f s (%lld bytes)", s->snapshot, (now_ms() - t) / 1000.0,
        stat(s->snapshot, &st) == 0 ? (long long)st.st_size : -1LL);
}

/* The restored guest's first frame (see wire.h): the host's clock and a
 * fresh seed. Written straight to the port (a new socket: room for it), as
 * the frames queued for the agent wait for its answer. */
static void send_resume(struct supervisor *s)
{
  struct wire_resume m = { .seed_len = 64 };
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m.seconds = (uint64_t)ts.tv_sec;
  m.nanoseconds = (uint32_t)ts.tv_nsec;
  if (getrandom(m.seed, m.seed_len, 0) != (ssize_t)m.seed_len)
    fail(EXIT_TOOL_FAILED, "getrandom: %s", strerror(errno));
  uint8_t frame[WIRE_HEADER_SIZE + sizeof m + 16];
  size_t len;
  if (!wire_encode_resume(&m, frame + WIRE_HEADER_SIZE, sizeof frame - WIRE_HEADER_SIZE, &len))
    fail(EXIT_TOOL_FAILED, "cannot encode the resume frame");
  struct wire_header h = { .length = (uint32_t)len, .type = WIRE_RESUME, .run = 0 };
  wire_encode_header(frame, &h);
  if (write(s->agent_fd, frame, WIRE_HEADER_SIZE + len) != (ssize_t)(WIRE_HEADER_SIZE + len))
    logf_("cannot send the resume frame: %s", strerror(errno));
  explicit_bzero(&m, sizeof m);
}

/* A frame for the agent, run 0 (host_files_send's way out). */
static void queue_agent_frame(void *arg, uint16_t type, const uint8_t *p, size_t n)
{
  queue_to_agent(arg, type, 0, p, n);
}

/* The agent set its clock and reseeded: the restored guest takes runs. The
 * first WIRE_RESUME was stamped before qemu loaded the snapshot, so the guest's
 * clock is behind by the load (up to seconds under load: make would see the
 * host's new files as from the future); a second one, sent now and answered
 * before any run's frame, sets it to within a round trip. */
static void restore_done(struct supervisor *s)
{
  send_resume(s);
  host_files_send(queue_agent_frame, s);
  s->restoring = false;
  s->ready = true;
  end_unpack(s, false);
  logf_("restored from %s: agent ready after %.2f s", s->snapshot, (now_ms() - s->started_ms) / 1000.0);
}

static void handle_hello(struct supervisor *s, const uint8_t *p, size_t n)
{
  struct wire_hello m;
  bool ok = wire_decode_hello(p, n, &m);
  snprintf(s->kernel, sizeof s->kernel, "%s", m.kernel);
  snprintf(s->machine, sizeof s->machine, "%s", m.machine);
  if (!ok || m.version != WIRE_VERSION) {
    char msg[256];
    snprintf(msg, sizeof msg, "agent speaks protocol %u, vmexec %u; rebuild the image with 'vmexec image build %s'",
             m.version, WIRE_VERSION, s->t->name);
    fail_all_runs(s, msg);
    shut_down(s, msg);
  }
  logf_("agent hello after %.2f s: kernel %s, machine %s", (now_ms() - s->started_ms) / 1000.0, s->kernel,
        s->machine);
  save_snapshot(s); /* without the host's files: each start sends them as they are then */
  host_files_send(queue_agent_frame, s);
  s->ready = true;
}

static void from_agent(struct supervisor *s, const struct wire_header *h, const uint8_t *p)
{
  if (h->type == WIRE_RESUME) {
    if (s->restoring)
      restore_done(s);
    return; /* the answer to restore_done's second resume */
  }
  if (h->type == WIRE_HELLO && s->restoring) {
    /* The restored agent saw a hangup and connected again: our resume may
     * have been lost with the old connection. */
    send_resume(s);
    return;
  }
  if (h->type == WIRE_HELLO) {
    handle_hello(s, p, h->length);
    return;
  }
  if (h->type == WIRE_ERROR) {
    logf_("agent error: %.*s", (int)h->length, (const char *)p);
    return;
  }
  if (h->type == WIRE_GEN_RELEASED) {
    uint32_t gen;
    if (wire_decode_u32(p, h->length, &gen) && s->share)
      share_host_released(s->share, gen);
    return;
  }
  struct run *r = run_by_id(s, h->run);
  if (!r) {
    logf_("frame type %u for unknown run %u dropped", h->type, h->run);
    return;
  }
  if (h->type == WIRE_EXIT) {
    if (r->client) {
      frame_conn_queue(&r->client->conn, WIRE_EXIT, r->client_run, p, h->length);
    }
    s->runs_served++;
    run_remove(s, r);
    return;
  }
  bool output = h->type == WIRE_STDOUT || h->type == WIRE_STDERR || h->type == WIRE_OUTPUT_AT || h->type == WIRE_FD_OUTPUT ||
                h->type == WIRE_WB_DATA;
  if (r->client && output && (r->unacked += h->length) > RUN_OUTPUT_MAX) {
    char msg[256];
    snprintf(msg, sizeof msg, "the %s guest sent more output than its credit allows (a broken agent); "
             "the run was cancelled; stop the guest with 'vmexec stop'", s->name);
    logf_("run %u: %s", r->id, msg);
    send_failed(&r->client->conn, r->client_run, 125, msg);
    queue_to_agent(s, WIRE_CANCEL, r->id, NULL, 0);
    r->client = NULL;
  }
  if (!r->client) {
    /* Nobody reads this run's output any more: acknowledge it so the agent
     * drains the program until the cancel lands. */
    if (output)
      frame_conn_queue_u32(&s->agent, WIRE_CREDIT, r->id, h->length);
    return;
  }
  frame_conn_queue(&r->client->conn, h->type, r->client_run, p, h->length);
}

/* A share generation's patch frame (share-patch.h), for the agent. */
static void queue_patch(void *arg, uint16_t type, const uint8_t *p, size_t n)
{
  struct supervisor *s = arg;
  queue_to_agent(s, type, 0, p, n);
  s->patches_queued += type == WIRE_PATCH;
}

/* A frame from a caller. Returns false when the caller broke the protocol. */
static bool from_client(struct supervisor *s, struct client *c, const struct wire_header *h, const uint8_t *p)
{
  char text[1024];
  switch (h->type) {
  case WIRE_STATUS:
    status_text(s, text, sizeof text);
    frame_conn_queue(&c->conn, WIRE_STATUS, 0, text, strlen(text));
    return true;
  case WIRE_STOP:
    fail_all_runs(s, "the guest was stopped by 'vmexec stop'");
    shut_down(s, "vmexec stop");
  default:
    break;
  }
  if (!wire_is_run_request(h->type) || h->run == 0)
    return false;
  struct run *r = run_by_client(s, c, h->run);
  if (!r) {
    if (h->type != WIRE_RUN && h->type != WIRE_FILE && h->type != WIRE_SHARE)
      return true; /* e.g. a credit racing with the run's end */
    r = calloc(1, sizeof *r);
    if (!r)
      return false;
    r->id = ++s->next_run_id;
    r->client = c;
    r->client_run = h->run;
    r->next = s->runs;
    s->runs = r;
  }
  if (r->refused)
    return true;
  uint32_t credit;
  if (h->type == WIRE_CREDIT && wire_decode_u32(p, h->length, &credit))
    r->unacked -= credit < r->unacked ? credit : r->unacked;
  if (h->type == WIRE_SHARE) {
    static uint8_t buf[WIRE_MAX_PAYLOAD];
    struct wire_share reply;
    size_t len;
    char err[1024];
    if (!s->share)
      snprintf(err, sizeof err, "the %s guest cannot share the host's trees: %s; run with --copy", s->t->name,
               s->share_why);
    long long t0 = now_ns();
    s->patches_queued = 0;
    bool ok = s->share && share_host_request(s->share, p, h->length, &reply, queue_patch, s, err, sizeof err);
    r->share_ns = now_ns() - t0;
    /* "patched": this call's request carried patches (also over a
     * generation prepared when the caller before went). */
    r->share_how = !ok                                                  ? NULL
                   : reply.gen == s->prepared_gen && !s->patches_queued ? (s->prepared_patched ? "patched ahead" : "made ahead")
                   : reply.gen != s->last_gen && !s->patches_queued     ? "new"
                   : s->patches_queued                                  ? "patched"
                                                                        : "reused";
    s->prepared_gen = UINT32_MAX;
    if (ok) {
      s->last_gen = reply.gen;
      c->shared = true;
    }
    if (ok && !wire_encode_share(&reply, buf, sizeof buf, &len)) {
      snprintf(err, sizeof err, "the share request is larger than a frame; share fewer directories");
      ok = false;
    }
    if (!ok) {
      send_failed(&c->conn, r->client_run, 125, err);
      r->refused = true;
      return true;
    }
    queue_to_agent(s, WIRE_SHARE, r->id, buf, len);
    return true;
  }
  if (h->type == WIRE_RUN && (wire_run_flags(p, h->length) & WIRE_RUN_TRACE))
    send_trace(r);
  queue_to_agent(s, h->type, r->id, p, h->length);
  return true;
}

static bool client_has_runs(const struct supervisor *s, const struct client *c)
{
  for (const struct run *r = s->runs; r; r = r->next)
    if (r->client == c)
      return true;
  return false;
}

static void accept_pending(struct supervisor *s)
{
  for (;;) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
      return;
    struct client *c = calloc(1, sizeof *c);
    if (!c || frame_conn_init(&c->conn, fd) == -1) {
      free(c);
      close(fd);
      return;
    }
    c->fd = fd;
    c->next = s->clients;
    s->clients = c;
  }
}

/* vmexec was rebuilt or upgraded since this guest started (WHAT is the first
 * file found replaced): a new call must get a guest of the new files, or it
 * would run on an old agent that ignores what it asks. Take no more calls:
 * those waiting to be accepted see their connection close unread and start
 * over (client/run.c), and wait for the lock, which stays ours until the runs
 * of the calls already here have ended and we stop (maybe_stop_idle). */
static void retire(struct supervisor *s, const char *what)
{
  logf_("%s was replaced since this guest started: new calls go to a fresh guest once the %u runs here end", what,
        runs_going(s));
  stop_listening(s);
  s->retiring = true;
}

/* New connections, once we know that vmexec's files are those we started from
 * (a few stat calls per call). */
static void accept_clients(struct supervisor *s)
{
  const char *replaced = started_from_replaced(&s->started_from);
  if (replaced)
    retire(s, replaced);
  else
    accept_pending(s);
}

static void try_connect_serial(struct supervisor *s)
{
  int fd = unix_connect(s->serial_path, true);
  if (fd == -1)
    return;
  s->agent_fd = fd;
  s->agent.fd = fd;
}

/* A disk server of the guest (nbdkit) died: the guest's reads of that disk
 * fail from now on, and a restarted server could not promise the same
 * bytes, so the guest goes; the next call starts a fresh one. */
static void reap_disk_servers(struct supervisor *s)
{
  char how[PATH_MAX + 128], what[PATH_MAX + 200];
  if (share_host_reap(s->share, how, sizeof how))
    snprintf(what, sizeof what, "lost its share server: %s", how);
  else if (nbdkit_reap(&s->root_nbdkit, how, sizeof how))
    snprintf(what, sizeof what, "lost the server of its root filesystem: %s", how);
  else if (nbdkit_reap(&s->layer_nbdkit, how, sizeof how))
    snprintf(what, sizeof what, "lost the server of its writable layer: %s", how);
  else
    return;
  guest_gone(s, what);
}

static void handle_signals(struct supervisor *s)
{
  struct signalfd_siginfo si;
  while (read(s->sig_fd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGCHLD) {
      reap_disk_servers(s);
      int status;
      if (s->qemu_pid > 0 && waitpid(s->qemu_pid, &status, WNOHANG) == s->qemu_pid) {
        s->qemu_pid = -1;
        char reason[48], fate[64];
        qemu_exit_reason(status, reason, sizeof reason);
        snprintf(fate, sizeof fate, "went away: %s", reason);
        guest_died(s, fate);
      }
    } else {
      fail_all_runs(s, "the guest's supervisor was terminated");
      shut_down(s, "terminated by a signal");
    }
  }
}

static void service_agent(struct supervisor *s, short revents)
{
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    int rc = frame_conn_fill(&s->agent);
    struct wire_header h;
    const uint8_t *p;
    int got;
    while ((got = frame_conn_next(&s->agent, &h, &p)) == 1)
      from_agent(s, &h, p);
    if (got == -1 || rc <= 0) {
      guest_died(s, got == -1 ? "sent a malformed frame" : "went away");
      return;
    }
  }
  if (s->ready && frame_conn_flush(&s->agent) == -1)
    guest_died(s, "stopped reading from the agent connection");
}

static void service_client(struct supervisor *s, struct client *c, short revents)
{
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    int rc = frame_conn_fill(&c->conn);
    struct wire_header h;
    const uint8_t *p;
    int got;
    while ((got = frame_conn_next(&c->conn, &h, &p)) == 1)
      if (!from_client(s, c, &h, p)) {
        got = -1;
        break;
      }
    if (got == -1 || rc <= 0) {
      client_drop(s, c);
      return;
    }
  }
  if (frame_conn_flush(&c->conn) == -1)
    client_drop(s, c);
}

/* Idle: nothing running (a `vmexec status` is no activity). Stop only if no
 * call is starting right now (it would hold the lock) or waiting to be
 * accepted; a call connected without a run yet sees the connection close
 * before any answer, and starts over. */
static void maybe_stop_idle(struct supervisor *s, int lock_fd)
{
  if (s->retiring) {
    if (!s->runs && !s->clients)
      shut_down(s, "vmexec was replaced");
    return;
  }
  if (s->runs || !s->ready) {
    s->idle_since_ms = now_ms();
    return;
  }
  if (now_ms() - s->idle_since_ms < s->idle_ms)
    return;
  if (flock(lock_fd, LOCK_EX | LOCK_NB) == -1)
    return;
  struct pollfd pf = { .fd = s->listen_fd, .events = POLLIN };
  if (poll(&pf, 1, 0) == 1) {
    flock(lock_fd, LOCK_UN);
    return;
  }
  stop_listening(s);
  shut_down(s, "idle");
}

/* The call that started us waits on this pipe until we listen. */
/* Serve FILE on DIR/NAME.sock with nbdkit's file plugin; fails (125). */
static pid_t serve_file(struct supervisor *s, const char *file, bool writable, const char *name, char *sock)
{
  char log[PATH_MAX], why[512], sock_name[64], log_name[64];
  snprintf(sock_name, sizeof sock_name, "%s.sock", name);
  snprintf(log_name, sizeof log_name, "nbdkit-%s.log", name);
  rundir_file(s->dir, sock_name, 1, sock);
  rundir_file(s->dir, log_name, 0, log);
  CLEANUP_FREE char *file_arg = NULL;
  if (asprintf(&file_arg, "file=%s", file) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  /* One guest at a time may write a layer (another cache user's guest, say):
   * the lock is held as long as this process lives. */
  if (writable) {
    int fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1)
      fail(EXIT_TOOL_FAILED, "cannot use %s: %s; stop the guest that uses it ('vmexec stop --all')", file,
           fd == -1 ? strerror(errno) : "another guest writes it");
  }
  char *const ro_args[] = { "-r", "file", file_arg, NULL }, *const rw_args[] = { "file", file_arg, NULL };
  pid_t pid = nbdkit_start(sock, log, writable ? rw_args : ro_args, why, sizeof why);
  if (pid == -1)
    fail(EXIT_TOOL_FAILED, "cannot serve %s to the guest: %s", file, why);
  return pid;
}

/* A full image's root filesystem, read-only (every run gets its own overlay
 * in the guest, and many guests may use the same image file), and the
 * persistent layer over it, writable. */
static void start_root_disk(struct supervisor *s)
{
  s->root_nbdkit = serve_file(s, s->rootfs, false, "root", s->root_sock);
  if (s->layer[0])
    s->layer_nbdkit = serve_file(s, s->layer, true, "layer", s->layer_sock);
}

static void tell_ready(void)
{
  const char *v = getenv("VMEXEC_READY_FD");
  if (!v)
    return;
  int fd = atoi(v);
  unsetenv("VMEXEC_READY_FD");
  if (fd > 2) {
    ssize_t ignored = write(fd, "1", 1);
    (void)ignored;
    close(fd);
  }
}

/* The supervisor's state for guest NAME, its paths in the runtime directory,
 * nothing started yet. */
static struct supervisor *supervisor_new(const struct target *t, const char *name, const char *image_dir,
                                         const char *rootfs, const char *layer)
{
  struct supervisor *s = calloc(1, sizeof *s);
  if (!s)
    fail(EXIT_TOOL_FAILED, "out of memory");
  s->t = t;
  snprintf(s->name, sizeof s->name, "%s", name);
  snprintf(s->image_dir, sizeof s->image_dir, "%s", image_dir);
  snprintf(s->rootfs, sizeof s->rootfs, "%s", rootfs ? rootfs : "");
  snprintf(s->layer, sizeof s->layer, "%s", layer ? layer : "");
  s->root_nbdkit = s->layer_nbdkit = -1;
  rundir_guest(name, s->dir);
  rundir_file(s->dir, "control.sock", 1, s->control_path);
  rundir_file(s->dir, "serial.sock", 1, s->serial_path);
  rundir_file(s->dir, "qmp.sock", 1, s->qmp_path);
  rundir_file(s->dir, "console.log", 0, s->console_path);
  rundir_file(s->dir, "qemu.log", 0, s->qemu_log_path);
  s->agent_fd = -1;
  s->qemu_pid = -1;
  s->unpack_pid = -1;
  s->last_gen = UINT32_MAX;
  s->prepared_gen = UINT32_MAX;
  s->idle_ms = (long long)(env_number("VMEXEC_IDLE_TIMEOUT", 300, 0, 1000000) * 1000);
  s->started_ms = s->idle_since_ms = now_ms();
  started_from_note(&s->started_from, t);
  if (frame_conn_init(&s->agent, -1) == -1)
    fail(EXIT_TOOL_FAILED, "out of memory");
  return s;
}

/* The guest's lock file (see rundir.h), open; maybe_stop_idle takes it. */
static int open_lock(const struct supervisor *s)
{
  char lock_path[PATH_MAX];
  rundir_file(s->dir, "lock", 0, lock_path);
  int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd == -1)
    fail(EXIT_TOOL_FAILED, "cannot open %s: %s", lock_path, strerror(errno));
  return lock_fd;
}

/* SIGCHLD (qemu's death) and the signals that end us arrive on s->sig_fd,
 * read in the poll loop; a caller gone mid-write is no SIGPIPE. */
static void take_signals(struct supervisor *s)
{
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Connect to the virtio-serial socket of the qemu just started, waiting
 * for it to appear (qemu makes it before it loads a snapshot). */
static bool connect_serial_now(struct supervisor *s)
{
  for (int waited = 0; waited < 10000 && s->agent_fd < 0; waited += 5) {
    try_connect_serial(s);
    if (s->agent_fd < 0) {
      struct timespec ts = { 0, 5 * 1000 * 1000 };
      nanosleep(&ts, NULL);
    }
  }
  return s->agent_fd >= 0;
}

/* Start qemu on the snapshot instead of a boot: false (and a normal boot
 * follows) if it cannot even start. The supervisor is connected before the
 * load ends, so the restored agent keeps the connection it had. */
static bool start_restore(struct supervisor *s)
{
  char why[512];
  int fd;
  s->unpack_pid = snapshot_unpack(s->snapshot, &fd, why, sizeof why);
  if (s->unpack_pid == -1) {
    logf_("cannot restore the snapshot: %s; booting instead", why);
    return false;
  }
  s->qo.incoming = true;
  s->qo.incoming_fd = fd;
  s->restoring = true;
  start_qemu(s);
  close(fd);
  s->boot_deadline_ms = now_ms() + RESTORE_TIMEOUT_MS;
  logf_("started %s (pid %d) on the snapshot %s", s->t->qemu_binary, (int)s->qemu_pid, s->snapshot);
  if (!connect_serial_now(s)) {
    restore_failed(s, "opened no virtio-serial socket");
    return true;
  }
  send_resume(s);
  return true;
}

/* The share, the full image's disks and qemu, started. */
static void start_guest(struct supervisor *s)
{
  unlink(s->serial_path);
  unlink(s->qmp_path);
  s->share = share_host_start(s->t, s->dir, s->share_why, sizeof s->share_why);
  if (!s->share)
    logf_("no share: %s", s->share_why);
  if (s->rootfs[0])
    start_root_disk(s);
  s->qo = (struct qemu_options){
    .target = s->t,
    .image_dir = s->image_dir,
    .serial_socket = s->serial_path,
    .console_log = s->console_path,
    .qmp_socket = s->qmp_path,
    .qemu_log = s->qemu_log_path,
    .share_socket = s->share ? share_host_socket(s->share) : NULL,
    .root_socket = s->rootfs[0] ? s->root_sock : NULL,
    .layer_socket = s->layer[0] ? s->layer_sock : NULL,
    .memory_mib = (int)env_number("VMEXEC_MEMORY", 1024, 64, 1048576),
    .cpus = (int)env_number("VMEXEC_CPUS", qemu_default_cpus(s->t), 1, QEMU_MAX_CPUS),
  };
  char why[512];
  if (!snapshot_path(&s->qo, s->snapshot, sizeof s->snapshot, why, sizeof why)) {
    s->snapshot[0] = '\0';
    logf_("no snapshot: %s", why);
  }
  if (s->snapshot[0] && access(s->snapshot, F_OK) == 0 && start_restore(s))
    return;
  start_qemu(s);
  logf_("started %s (pid %d) for image %s%s%s", s->t->qemu_binary, (int)s->qemu_pid, s->image_dir,
        s->rootfs[0] ? " with the root filesystem " : "", s->rootfs);
}

/* One turn of the event loop: poll the signals, the control socket, the
 * agent and every client, serve what is ready, flush what was queued, and
 * stop if idle. A full agent queue stops reading from the clients. */
static void serve_once(struct supervisor *s, int lock_fd)
{
  size_t nclients = 0;
  for (struct client *c = s->clients; c; c = c->next)
    nclients++;
  struct pollfd *pfds = calloc(3 + nclients, sizeof *pfds);
  struct client **who = calloc(nclients + 1, sizeof *who);
  if (!pfds || !who)
    fail(EXIT_TOOL_FAILED, "out of memory");
  size_t n = 0;
  pfds[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
  pfds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
  size_t agent_slot = n;
  pfds[n++] = (struct pollfd){ .fd = s->agent_fd,
                               .events = POLLIN | (s->ready && frame_conn_pending(&s->agent) ? POLLOUT : 0) };
  bool agent_full = frame_conn_pending(&s->agent) > AGENT_BACKLOG_LIMIT;
  size_t first_client = n;
  for (struct client *c = s->clients; c; c = c->next) {
    who[n - first_client] = c;
    /* A full agent queue pauses the callers with runs; `vmexec status` and
     * `vmexec stop` (no runs) are answered all the same. */
    bool paused = agent_full && client_has_runs(s, c);
    pfds[n++] = (struct pollfd){ .fd = c->fd,
                                 .events = (paused ? 0 : POLLIN) | (frame_conn_pending(&c->conn) ? POLLOUT : 0) };
  }
  int timeout = s->agent_fd < 0 ? 50 : 1000;
  if (poll(pfds, n, timeout) == -1 && errno != EINTR)
    fail(EXIT_TOOL_FAILED, "poll: %s", strerror(errno));

  if (pfds[0].revents)
    handle_signals(s);
  if (s->agent_fd < 0)
    try_connect_serial(s);
  else if (pfds[agent_slot].revents)
    service_agent(s, pfds[agent_slot].revents);
  if (s->restoring && now_ms() > s->boot_deadline_ms)
    restore_failed(s, "did not answer in time");
  else if (!s->ready && now_ms() > s->boot_deadline_ms)
    guest_gone(s, "did not say hello in time (set VMEXEC_BOOT_TIMEOUT to wait longer)");
  for (size_t i = first_client; i < n; i++)
    if (pfds[i].revents)
      service_client(s, who[i - first_client], pfds[i].revents);
  if (pfds[1].revents)
    accept_clients(s);
  /* Flush what routing queued (the poll events only cover earlier queues). */
  if (s->ready && s->agent_fd >= 0 && frame_conn_flush(&s->agent) == -1)
    guest_died(s, "stopped reading from the agent connection");
  if (frame_conn_pending(&s->agent) > AGENT_QUEUE_MAX)
    guest_gone(s, "stopped reading its port (64 MiB waiting for the agent)");
  for (struct client *c = s->clients, *next; c; c = next) {
    next = c->next;
    if (frame_conn_flush(&c->conn) == -1)
      client_drop(s, c);
  }
  free(pfds);
  free(who);
  maybe_stop_idle(s, lock_fd);
}

int supervisor_main(const struct target *t, const char *name, const char *image_dir, const char *rootfs,
                    const char *layer)
{
  struct supervisor *s = supervisor_new(t, name, image_dir, rootfs, layer);
  int lock_fd = s->lock_fd = open_lock(s);
  take_signals(s);

  /* Listen first: the call that started us waits for this socket. */
  s->listen_fd = unix_listen(s->control_path);
  if (s->listen_fd == -1)
    fail(EXIT_TOOL_FAILED, "cannot listen on %s: %s", s->control_path, strerror(errno));
  tell_ready();

  start_guest(s);
  for (;;)
    serve_once(s, lock_fd);
}
