/* vmexec-agent: PID 1 of a vmexec guest.
 *
 * Boot: mount the pseudo filesystems, load the kernel modules the image lists,
 * find the virtio-serial port and say hello to the host. Then one event loop
 * (tini / dumb-init style): signals arrive through a signalfd, every child is
 * reaped, and frames from the host are read as they come.
 *
 * PID 1 must never exit (the kernel would panic); a fatal error is logged on
 * the console and powers the guest off, so qemu exits with the reason shown. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static void reap_children(void)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    if (!runs_reaped(pid, status) && !share_reaped(pid, status))
      boot_jobs_reaped(pid, status);
  }
}

int main(void)
{
  if (getpid() != 1) {
    static const char msg[] = "vmexec-agent: this is the init of a vmexec guest; it runs only as PID 1\n";
    if (write(2, msg, sizeof msg - 1) < 0)
      return 1;
    return 1;
  }

  /* The signals PID 1 handles, all through the signalfd. The kernel never
   * delivers a signal to PID 1 that it has no handler for, so blocking them
   * loses nothing; children get an empty mask back (see boot-jobs.c). */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGIO);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGPIPE);
  if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
    agent_fatal("sigprocmask: %s", strerror(errno));
  mount_all();
  log_open_console();
  loopback_up();
  int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd == -1)
    agent_fatal("signalfd: %s", strerror(errno));
  /* The agent moves every byte of every run through the port: when the runs
   * keep the guest's CPUs busy, an agent at the default priority gets a slice
   * only now and then, and the port stalls (16 busy calls took 55 s instead
   * of 17). Runs go back to nice 0 before exec (runs.c). */
  if (setpriority(PRIO_PROCESS, 0, -20) == -1)
    agent_log("cannot raise the agent's priority: %s", strerror(errno));
  runs_init();
  boot_jobs_start();
  load_modules();
  root_init();
  /* Before the hello, which the host may save as a snapshot (boot-jobs.c). */
  boot_jobs_wait();
  struct conn *conn = conn_start();
  conn_tick(conn, 0); /* the host may already be there */

  /* Two slots for the signalfd and the port, then the runs' pipes. */
  enum { MAX_POLL = 2 + RUN_POLLFDS_MAX * 512 };
  static struct pollfd p[MAX_POLL];
  for (;;) {
    p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    p[1] = (struct pollfd){ .fd = -1 };
    p[1].fd = conn_fd(conn, &p[1].events);
    size_t nruns = runs_pollfds(p + 2, MAX_POLL - 2);
    int conn_timeout = conn_timeout_ms(conn), held = runs_timeout_ms();
    int timeout = held >= 0 && (conn_timeout < 0 || held < conn_timeout) ? held : conn_timeout;
    long long before = now_ms();
    int n = poll(p, 2 + nruns, timeout);
    /* Ready, yet only when poll looked again at its timeout: the port's
     * interrupt never came (conn.c, disk-watch.c). */
    bool at_timeout = timeout > 0 && timeout == conn_timeout && now_ms() - before >= timeout;
    if (n == -1) {
      if (errno == EINTR)
        continue;
      agent_fatal("poll: %s", strerror(errno));
    }
    bool port_event = false;
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
          reap_children();
          break;
        case SIGIO:
          port_event = true;
          break;
        default:
          /* SIGTERM/SIGINT/SIGHUP (e.g. ctrl-alt-del): nothing to stop. */
          break;
        }
      }
    }
    runs_events(p + 2, nruns);
    if (p[1].fd >= 0 && p[1].revents) {
      if (at_timeout && !(p[1].revents & (POLLHUP | POLLERR)))
        interrupt_lost("the port was ready but poll saw it only at its timeout");
      conn_tick(conn, p[1].revents);
    } else if (n == 0 || port_event) {
      conn_tick(conn, 0);
    }
    /* Write-backs go on as credit came and the port drained; then send
     * what the runs queued (output, exits) without waiting a round. */
    runs_continue();
    conn_tick(conn, 0);
    if (runs_active())
      disks_watch();
  }
}
